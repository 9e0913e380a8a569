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
}

// errClosed ends a request whose Conn was closed.
var errClosed = errors.New("connection closed")

// Describe asks for the file's first byte and returns what the answer
// says of the file: its size, name, modification time and any whole-file
// digests. It has no piece hashes (PieceLen 0). An empty file, which has
// no first byte, may be answered with a 416 or with an empty 200.
func (c *Conn) Describe(ctx context.Context) (*identity.Description, error) {
	x, err := c.start(ctx, 0, 1)
	if err != nil {
		return nil, err
	}
	defer x.end()
	resp := x.resp
	if err := c.src.notTheFile(resp); err != nil {
		return nil, x.fail(err)
	}
	var size int64
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
	default:
		return nil, x.fail(c.src.statusError(resp))
	}
	if err := c.src.observe(size, validatorOf(resp.Header)); err != nil {
		return nil, x.fail(c.src.refused(err))
	}
	c.src.remember(resp.Request.URL)
	// The copies of a Metalink taken as the file would only be more
	// copies of a small document, and more sources would make the job
	// one of several, where a Metalink is another file.
	if dups := duplicates(resp.Header, resp.Request.URL); len(dups) > 0 && c.src.onDuplicates != nil && !isMetalink(resp) {
		c.src.onDuplicates(dups)
	}
	d := &identity.Description{Name: fileName(resp), Summary: identity.Summary{Size: size, Digests: digests(resp.Header)}}
	if t, err := http.ParseTime(resp.Header.Get("Last-Modified")); err == nil {
		d.ModTime = t
	}
	if meta := describedBy(resp.Header, resp.Request.URL); meta != nil {
		if err := c.src.loadPieces(ctx, meta, size); err != nil {
			return nil, err
		}
	}
	c.src.mu.Lock()
	if f := c.src.file; f != nil {
		d.Summary = f.Summary()
	}
	c.src.mu.Unlock()
	return d, nil
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
	c.src.remember(resp.Request.URL)
	dst := &recordingWriter{w: w}
	got, err := io.CopyN(dst, x, n)
	switch {
	case dst.err != nil:
		return dst.err
	case err == io.EOF || errors.Is(err, io.ErrUnexpectedEOF):
		return x.fail(&Error{src: c.src.shown, err: fmt.Errorf("body ended after %d of %d bytes", got, n)})
	case err != nil:
		return x.fail(err)
	}
	// A body longer than its range is a mirror sending something else;
	// with chunked encoding no length said so before.
	var one [1]byte
	switch k, err := io.ReadFull(x, one[:]); {
	case k > 0:
		return x.fail(c.src.refused(fmt.Errorf("%w: body longer than the %d bytes asked for", ErrProtocol, n)))
	case err != io.EOF:
		return x.fail(err)
	}
	return nil
}

// Close ends the connection: a Describe or Fetch under way in another
// goroutine returns at once, and later ones fail. Closing twice is
// harmless.
func (c *Conn) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	if c.cancel != nil {
		c.cancel(errClosed)
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
	remembered bool // url is where a redirect led
	resp       *http.Response
}

// start sends the request for bytes [off, off+n) and returns the
// exchange once the response's header has arrived, whatever its status.
func (c *Conn) start(ctx context.Context, off, n int64) (*exchange, error) {
	s := c.src
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
	x.url, x.remembered = s.target()
	x.stall = time.AfterFunc(s.stall, func() { cancel(ErrStalled) })
	req, err := http.NewRequestWithContext(rctx, http.MethodGet, x.url, nil)
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
	switch {
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
