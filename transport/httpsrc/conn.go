package httpsrc

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/idmproject/idm/identity"
)

// drainLimit is the most of an unwanted body that is read, so the
// connection can be reused; past it the connection is dropped, and a
// mirror cannot keep a client reading an error page forever.
const drainLimit = 4 << 10

// Conn is one connection to a mirror: requests, one at a time, over the
// Source's shared client. Close may be called from another goroutine.
type Conn struct {
	src *Source

	mu     sync.Mutex
	closed bool
	cancel context.CancelCauseFunc // ends the request under way, if any
	kept   *wholeAnswer            // a whole file Describe was sent, for Stream
}

// wholeAnswer is the answer of a mirror that sent the whole file in
// place of its first byte, and the file it described, kept unread for
// Stream.
type wholeAnswer struct {
	x *exchange
	d *identity.Description
}

// errClosed ends a request whose Conn was closed.
var errClosed = errors.New("connection closed")

// Describe asks for the file's first byte and returns what the answer
// says of the file: its size, name, modification time and any whole-file
// digests. It has no piece hashes (PieceLen 0). An empty file, which has
// no first byte, may be answered with a 416 or with an empty 200.
//
// A mirror that ignores ranges answers with the whole file: Describe then
// fails with ErrNoRanges, and when the answer can be taken as the file
// (see Error.Whole), the Conn keeps it, unread, until Stream reads it or
// the next request or Close drops it.
func (c *Conn) Describe(ctx context.Context) (*identity.Description, error) {
	x, err := c.start(ctx, 0, 1)
	if err != nil {
		return nil, err
	}
	kept := false
	defer func() {
		if !kept {
			x.end()
		}
	}()
	resp := x.resp
	if err := c.src.notTheFile(resp); err != nil {
		return nil, x.fail(err)
	}
	var (
		size  int64
		whole *identity.Description
	)
	switch cr, _ := parseContentRange(resp.Header.Get("Content-Range")); {
	case resp.StatusCode == http.StatusPartialContent:
		if size, err = rangeOf(resp, 0, 1); err != nil {
			return nil, x.fail(c.src.refused(err))
		}
	case resp.StatusCode == http.StatusRequestedRangeNotSatisfiable && cr.first < 0 && cr.size == 0:
		// Not even byte 0 exists: the file is empty.
	case resp.StatusCode == http.StatusOK && resp.ContentLength == 0 && !c.src.changed(resp.Header):
		// An empty file has no range to send, and Go's file server,
		// among others, answers with all of it.
	case c.src.wholeOf(resp) != nil:
		size, whole = resp.ContentLength, described(resp, resp.ContentLength)
	default:
		return nil, x.fail(c.src.statusError(resp))
	}
	if err := c.src.observe(size, validatorOf(resp.Header)); err != nil {
		return nil, x.fail(c.src.refused(err))
	}
	c.src.remember(resp.Request.URL, x.trip.allowed())
	// The copies of a Metalink taken as the file would only be more
	// copies of a small document, and more sources would make the job
	// one of several, where a Metalink is another file.
	if dups := duplicates(resp.Header, resp.Request.URL); len(dups) > 0 && c.src.onDuplicates != nil && !isMetalink(resp) {
		c.src.onDuplicates(dups, x.trip.Onward())
	}
	d := described(resp, size)
	if meta := describedBy(resp.Header, resp.Request.URL); meta != nil {
		if err := c.src.loadPieces(ctx, meta, size, x.trip.Onward()); err != nil {
			return nil, err
		}
	}
	c.src.mu.Lock()
	if f := c.src.file; f != nil {
		d.Summary = f.Summary()
	}
	c.src.mu.Unlock()
	if whole != nil {
		kept = c.keep(&wholeAnswer{x: x, d: d})
		return nil, &Error{src: c.src.shown, err: fmt.Errorf("%w: 200 with the whole file", ErrNoRanges), permanent: true, whole: d}
	}
	return d, nil
}

// keep holds a whole answer for Stream, unless the Conn is closed. It
// reports whether it did; if not, the caller ends the exchange.
func (c *Conn) keep(w *wholeAnswer) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return false
	}
	c.kept = w
	return true
}

// takeKept returns the whole answer the Conn holds, if any, and lets it
// go.
func (c *Conn) takeKept() *wholeAnswer {
	c.mu.Lock()
	defer c.mu.Unlock()
	w := c.kept
	c.kept = nil
	return w
}

// Fetch asks for the bytes [off, off+n) and writes them to w as they
// arrive. Nothing is written unless the answer is that range of the file
// the mirror first described; an error from w comes back as it is.
func (c *Conn) Fetch(ctx context.Context, off, n int64, w io.Writer) error {
	if n == 0 {
		return nil
	}
	if off < 0 || n < 0 || off > identity.MaxSize-n {
		return &Error{src: c.src.shown, err: fmt.Errorf("invalid range %d+%d", off, n), permanent: true}
	}
	if size, ok := c.src.knownSize(); ok && off+n > size {
		return &Error{src: c.src.shown, err: fmt.Errorf("range %d+%d beyond the file's %d bytes", off, n, size), permanent: true}
	}
	x, err := c.start(ctx, off, n)
	if err != nil {
		return err
	}
	defer x.end()
	resp := x.resp
	if err := c.src.notTheFile(resp); err != nil {
		return x.fail(err)
	}
	if resp.StatusCode != http.StatusPartialContent {
		return x.fail(c.src.statusError(resp))
	}
	size, err := rangeOf(resp, off, n)
	if err == nil {
		err = c.src.observe(size, validatorOf(resp.Header))
	}
	if err != nil {
		return x.fail(c.src.refused(err))
	}
	c.src.remember(resp.Request.URL, x.trip.allowed())
	return x.deliver(w, n)
}

// Stream writes the whole file, from its first byte to its last, to w as
// it arrives: the way to have the file of a mirror that ignores ranges.
// It takes the answer Describe kept, if it holds one; otherwise it asks
// for all of the file as one range, and takes the answer if it is that
// range or the whole file, of the size and version first described. As
// with Fetch, nothing of any other answer is written, the body must be
// exactly the file's size (shorter is a transient failure, longer a
// permanent one, and nothing past the size is written), and an error
// from w comes back as it is. The Conn must have described the file, or
// its Source must know the size from another Conn.
func (c *Conn) Stream(ctx context.Context, w io.Writer) error {
	size, ok := c.src.knownSize()
	if !ok {
		return &Error{src: c.src.shown, err: errors.New("stream of a file whose size is not known yet"), permanent: true}
	}
	var x *exchange
	if k := c.takeKept(); k != nil {
		x = k.x
		// The answer was asked for under Describe's context: from here
		// on it is the caller's that ends it.
		x.ctx = ctx
		stop := context.AfterFunc(ctx, func() { x.cancel(context.Cause(ctx)) })
		defer stop()
	} else {
		if size == 0 {
			return nil
		}
		var err error
		if x, err = c.start(ctx, 0, size); err != nil {
			return err
		}
		if err := c.src.takeWhole(x.resp, size); err != nil {
			x.end()
			return x.fail(err)
		}
		c.src.remember(x.resp.Request.URL, x.trip.allowed())
	}
	defer x.end()
	return x.deliver(w, size)
}

// Close ends the connection: a Describe or Fetch under way in another
// goroutine returns at once, and later ones fail. Closing twice is
// harmless.
func (c *Conn) Close() error {
	c.mu.Lock()
	c.closed = true
	if c.cancel != nil {
		c.cancel(errClosed)
	}
	k := c.kept
	c.kept = nil
	c.mu.Unlock()
	if k != nil {
		k.x.drop()
	}
	return nil
}

// exchange is one request and its response, read through a stall timer.
type exchange struct {
	c          *Conn
	ctx        context.Context // the caller's
	rctx       context.Context // the request's, ended by a stall or Close
	cancel     context.CancelCauseFunc
	stall      *time.Timer
	url        string
	remembered bool  // url is where a redirect led
	trip       *Trip // the request's way through its redirects
	resp       *http.Response
}

// start sends the request for bytes [off, off+n) and returns the
// exchange once the response's header has arrived, whatever its status.
func (c *Conn) start(ctx context.Context, off, n int64) (*exchange, error) {
	s := c.src
	if k := c.takeKept(); k != nil {
		// A new request: the whole answer kept for Stream will not be read.
		k.x.drop()
	}
	rctx, cancel := context.WithCancelCause(ctx)
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		cancel(nil)
		return nil, &Error{src: s.shown, err: errClosed}
	}
	c.cancel = cancel
	c.mu.Unlock()
	x := &exchange{c: c, ctx: ctx, rctx: rctx, cancel: cancel}
	var reach Class
	x.url, reach, x.remembered = s.target()
	tctx, trip := WithReach(rctx, reach)
	x.trip = trip
	x.stall = time.AfterFunc(s.stall, func() { cancel(ErrStalled) })
	req, err := http.NewRequestWithContext(tctx, http.MethodGet, x.url, nil)
	if err != nil {
		// It parsed when the Source was made; the error would quote it.
		x.end()
		return nil, &Error{src: s.shown, err: errors.New("cannot make a request of the address"), permanent: true}
	}
	s.setHeader(req.Header, req.URL, off, n)
	resp, err := s.client.Do(req)
	x.stall.Stop()
	if err != nil {
		err = x.fail(err)
		x.end()
		return nil, err
	}
	x.resp = resp
	return x, nil
}

// Read reads the response's body; a read that receives nothing for the
// stall time-out fails.
func (x *exchange) Read(p []byte) (int, error) {
	x.stall.Reset(x.c.src.stall)
	n, err := x.resp.Body.Read(p)
	x.stall.Stop()
	return n, err
}

// end drains a little of what is left of the body, so a short answer
// leaves its connection reusable, and releases the request. The drain is
// bounded in bytes and, as a whole, by one stall time-out, so that an
// error page sent a byte at a time holds nobody up.
func (x *exchange) end() {
	if x.resp != nil {
		x.stall.Reset(x.c.src.stall)
		io.CopyN(io.Discard, x.resp.Body, drainLimit)
		x.resp.Body.Close()
	}
	x.stall.Stop()
	x.c.mu.Lock()
	x.c.cancel = nil
	x.c.mu.Unlock()
	x.cancel(nil)
}

// deliver writes exactly n bytes of the body to w. A body that ends
// sooner is a transient failure; one longer than n is a mirror sending
// something else, refused, and what goes past n is never written.
func (x *exchange) deliver(w io.Writer, n int64) error {
	dst := &recordingWriter{w: w}
	got, err := io.CopyN(dst, x, n)
	switch {
	case dst.err != nil:
		return dst.err
	case err == io.EOF || errors.Is(err, io.ErrUnexpectedEOF):
		return x.fail(&Error{src: x.c.src.shown, err: fmt.Errorf("body ended after %d of %d bytes", got, n)})
	case err != nil:
		return x.fail(err)
	}
	// With chunked encoding no length said so before.
	var one [1]byte
	switch k, err := io.ReadFull(x, one[:]); {
	case k > 0:
		return x.fail(x.c.src.refused(fmt.Errorf("%w: body longer than the %d bytes asked for", ErrProtocol, n)))
	case err != io.EOF:
		return x.fail(err)
	}
	return nil
}

// drop ends an exchange whose body will not be read: the rest of a whole
// file is not worth draining to keep its connection, so the request is
// cancelled first.
func (x *exchange) drop() {
	x.cancel(errClosed)
	x.end()
}

// fail turns what went wrong with the exchange into the error to return:
// the caller's context's, or an *Error of the right class that shows no
// secret.
func (x *exchange) fail(err error) error {
	s := x.c.src
	if x.ctx.Err() != nil {
		return x.ctx.Err()
	}
	cause := context.Cause(x.rctx)
	var e *Error
	var r *refusal
	switch {
	case errors.As(err, &r):
		// Wherever it was met, at the address a redirect led to too: the
		// source sent idmd where it may not, and asking again would only
		// send it there again.
		return &Error{src: s.shown, err: r, permanent: true}
	case errors.Is(cause, errClosed):
		// The caller's doing, not the mirror's: the redirect is kept.
		return &Error{src: s.shown, err: errClosed}
	case errors.Is(cause, ErrStalled):
		e = &Error{src: s.shown, err: fmt.Errorf("%w: no data for %v", ErrStalled, s.stall)}
	case errors.As(err, &e):
	default:
		e = &Error{src: s.shown, err: networkError(err)}
		e.permanent = errors.Is(e.err, ErrRedirect) || untrusted(e.err)
	}
	if x.remembered {
		// A signed link expires; the original address hands out a fresh
		// one, so this is no reason to give up on the mirror.
		s.forget(x.url)
		e = &Error{src: s.shown, err: fmt.Errorf("%w (at the address it redirected to; the next request starts from the original)", e.err), retryAfter: e.retryAfter}
	}
	return e
}

// untrusted reports whether err is the mirror's certificate failing
// verification. Retrying cannot help, and waiting forever on a mirror
// that will never be trusted hides the reason: the job is told at once,
// and the user can give the mirror's CA (Options of NewClientWith).
func untrusted(err error) bool {
	var (
		unknown  x509.UnknownAuthorityError
		invalid  x509.CertificateInvalidError
		hostname x509.HostnameError
		verify   *tls.CertificateVerificationError
	)
	return errors.As(err, &unknown) || errors.As(err, &invalid) || errors.As(err, &hostname) || errors.As(err, &verify)
}

// networkError returns err without the request's URL, which its text
// would name with all its secrets.
func networkError(err error) error {
	var ue *url.Error
	if !errors.As(err, &ue) {
		return err
	}
	if strings.HasPrefix(ue.Err.Error(), "failed to parse Location header") {
		// net/http quotes the Location, which may be a signed link.
		return fmt.Errorf("%w: to an address that does not parse", ErrRedirect)
	}
	return ue.Err
}

// recordingWriter keeps the error of the writer it passes to, to tell the
// caller's failures from the mirror's.
type recordingWriter struct {
	w   io.Writer
	err error
}

func (r *recordingWriter) Write(p []byte) (int, error) {
	n, err := r.w.Write(p)
	if err != nil {
		r.err = err
	}
	return n, err
}
