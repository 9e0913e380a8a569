package engine

import (
	"context"
	"errors"
	"io"
	"time"

	"github.com/idmproject/idm/identity"
)

// Source is one place a job's file can be fetched from.
type Source interface {
	// Open connects to the source.
	Open(ctx context.Context) (Conn, error)
	// String returns the source's address as the user gave it.
	String() string
}

// Conn is one open connection to a source.
type Conn interface {
	// Describe says what file the source holds. A source that knows only
	// the file's size describes it with no pieces (PieceLen 0).
	Describe(ctx context.Context) (*identity.Description, error)
	// Fetch writes the bytes [off, off+n) of the file to w as they
	// arrive.
	Fetch(ctx context.Context, off, n int64, w io.Writer) error
	// Close ends the connection; a Fetch or ReceiveTo blocked in another
	// goroutine returns. Closing twice is harmless.
	Close() error
}

// A PieceLister is a Conn whose description sums up a list of piece
// hashes, and which can give the list.
type PieceLister interface {
	// File returns the description and the file with its piece hashes.
	File(ctx context.Context) (*identity.Description, *identity.File, error)
}

// lister returns c as a PieceLister if it is one and can give a list now.
// A Conn may know only once it has described the file whether it can (an
// HTTP mirror that points to a Metalink): it has a method ListsPieces
// that says so.
func lister(c Conn) (PieceLister, bool) {
	pl, ok := c.(PieceLister)
	if m, can := c.(interface{ ListsPieces() bool }); ok && can && !m.ListsPieces() {
		return nil, false
	}
	return pl, ok
}

// A Pipeliner is a Conn that takes several requests at once and answers
// them in order, so a fast link never idles between pieces.
type Pipeliner interface {
	// Request asks for the bytes [off, off+n) without waiting.
	Request(off, n int64) error
	// ReceiveTo writes the oldest outstanding answer, n bytes, to w as it
	// arrives.
	ReceiveTo(w io.Writer, n int64) error
}

// A Streamer is a Conn that can send the whole file as one stream, in
// order, from its first byte to its last: an HTTP mirror that ignores
// ranges. Such a source says so when asked for a range, with an error
// that is permanent and has a method Whole returning the description of
// the file it sent in place of the range (nil when that answer cannot be
// taken as the file). The engine then reads the file from it as one
// stream when it is the job's only source (stream.go), and refuses it
// beside others, with which it could share no range.
type Streamer interface {
	// Stream writes the whole file, from its first byte to its last, to
	// w as it arrives. An error of w comes back as it is.
	Stream(ctx context.Context, w io.Writer) error
}

// wholeFile returns c as a Streamer, and the description of the file its
// source sent whole, when err says it answered a range with the whole
// file and c can stream it; nil otherwise.
func wholeFile(c Conn, err error) (Streamer, *identity.Description) {
	st, ok := c.(Streamer)
	var w interface{ Whole() *identity.Description }
	if !ok || !errors.As(err, &w) {
		return nil, nil
	}
	if d := w.Whole(); d != nil {
		return st, d
	}
	return nil, nil
}

// A Versioned source names the version of the file it holds, as an HTTP
// mirror's validators do. The engine records it with the source's
// statistics, for the next run to ask for that version only.
type Versioned interface {
	Version() (etag, lastModified string)
}

// A Typed source says what type of document its file is, as an HTTP
// mirror's Content-Type does. The engine records it with the source's
// statistics, where the job's owner reads it: a job whose file is a
// Metalink may become the Metalink's jobs.
type Typed interface {
	// MediaType returns the file's media type, or "" while not known.
	MediaType() string
}

// maxRetryAfter bounds the wait a source may ask for: a source that asks
// for more is still tried again within the hour.
const maxRetryAfter = time.Hour

// retryAfter returns the wait err asks for before the source is tried
// again (an HTTP mirror's Retry-After), at most maxRetryAfter, or 0: err
// has a method RetryAfter that returns it.
func retryAfter(err error) time.Duration {
	var r interface{ RetryAfter() time.Duration }
	if errors.As(err, &r) {
		return min(r.RetryAfter(), maxRetryAfter)
	}
	return 0
}

// Permanent reports whether err says that the source can never serve the
// job: it has a method Permanent that returns true.
func Permanent(err error) bool {
	var p interface{ Permanent() bool }
	return errors.As(err, &p) && p.Permanent()
}

// otherFile reports whether err says that the source holds another file
// than the job's, found before it could describe one (an HTTP mirror that
// answers with a Metalink): it has a method OtherFile that returns true.
// Such a source is rejected, as one whose description differs is.
func otherFile(err error) bool {
	var o interface{ OtherFile() bool }
	return errors.As(err, &o) && o.OtherFile()
}

// transient marks an error as one to retry, whatever the error it wraps
// says: a lone source's refusal of a range, say, which the next
// connection does without by reading the file as one stream.
type transient struct{ error }

func (transient) Permanent() bool { return false }
func (e transient) Unwrap() error { return e.error }

// permanent marks an error the engine finds in what a source sent as one
// that sets the source aside for the job.
type permanent struct{ error }

func (permanent) Permanent() bool { return true }
func (e permanent) Unwrap() error { return e.error }

// sequential makes a Conn that fetches one range at a time look like a
// Pipeliner of depth one.
type sequential struct {
	ctx    context.Context
	c      Conn
	off, n int64
	asked  bool
}

func (s *sequential) Request(off, n int64) error {
	if s.asked {
		return errors.New("engine: a second request on a connection that takes one at a time")
	}
	s.off, s.n, s.asked = off, n, true
	return nil
}

func (s *sequential) ReceiveTo(w io.Writer, n int64) error {
	if !s.asked || n != s.n {
		return errors.New("engine: receive without its request")
	}
	s.asked = false
	return s.c.Fetch(s.ctx, s.off, s.n, w)
}
