package ctl

// idmctl lives a few milliseconds, and most of them are the process
// starting. Linking net/http's client links crypto/tls, x509 and HTTP/2
// with it and doubles that start: `idmctl version` took 4.9 ms with it
// and a program that makes the same request without it 2.3 ms (hyperfine,
// median of 300, on the README's machine). The control API is a local
// socket to one known server, so idmctl speaks the small part of
// HTTP/1.1 it needs itself: one request per connection, closed after the
// answer; an answer framed by Content-Length, by chunks, or by the end of
// the connection; interim 1xx answers skipped. The tests run it against
// net/http's server and fuzz it against net/http's parsers.

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/textproto"
	"strconv"
	"strings"
	"sync"
)

const (
	// maxHeaderBytes bounds the status line and header of an answer.
	maxHeaderBytes = 64 << 10
	// maxInterim bounds the 1xx answers skipped before the real one.
	maxInterim = 8
)

// response is an answer of idmd, its body unread.
type response struct {
	status int
	text   string // the reason phrase of the status line
	header textproto.MIMEHeader
	body   io.ReadCloser
}

// errMalformed marks an answer that is not HTTP/1.x.
var errMalformed = errors.New("malformed answer")

// roundTrip sends one request on conn and reads the answer's status line
// and header. conn is closed when the body is closed, when reading the
// answer fails, or when ctx is done; errors that follow ctx's end are
// ctx's error.
func roundTrip(ctx context.Context, conn net.Conn, method, path string, header [][2]string, body []byte) (*response, error) {
	// The connection is closed once, by whichever comes first: the end of
	// ctx, a failure, or the body's Close, which then reports no error.
	var once sync.Once
	var closeErr error
	closeConn := func() error {
		once.Do(func() { closeErr = conn.Close() })
		return closeErr
	}
	stop := context.AfterFunc(ctx, func() { closeConn() })
	fail := func(err error) (*response, error) {
		stop()
		closeConn()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, err
	}
	for _, s := range append([]string{method, path}, flat(header)...) {
		if strings.ContainsAny(s, "\r\n") {
			return fail(fmt.Errorf("a line break in request line or header %q", clip(s)))
		}
	}
	var req bytes.Buffer
	req.Grow(256 + len(body))
	fmt.Fprintf(&req, "%s %s HTTP/1.1\r\nHost: idmd\r\nConnection: close\r\n", method, path)
	for _, h := range header {
		fmt.Fprintf(&req, "%s: %s\r\n", h[0], h[1])
	}
	if body != nil || method == "POST" || method == "PUT" {
		fmt.Fprintf(&req, "Content-Length: %d\r\n", len(body))
	}
	req.WriteString("\r\n")
	req.Write(body)
	if _, err := conn.Write(req.Bytes()); err != nil {
		return fail(err)
	}

	lim := &budgetReader{r: conn, n: maxHeaderBytes}
	br := bufio.NewReader(lim)
	res, err := readResponse(br, method)
	if err != nil {
		return fail(err)
	}
	lim.n = -1
	res.body = &answerBody{r: res.body, closer: func() error { stop(); return closeConn() }, ctx: ctx}
	return res, nil
}

// flat lists the names and values of a header.
func flat(header [][2]string) []string {
	var s []string
	for _, h := range header {
		s = append(s, h[0], h[1])
	}
	return s
}

// readResponse reads an answer's status line and header from br, skipping
// interim answers, and frames its body.
func readResponse(br *bufio.Reader, method string) (*response, error) {
	tp := textproto.NewReader(br)
	for range maxInterim + 1 {
		line, err := tp.ReadLine()
		if err != nil {
			return nil, noEOF(err)
		}
		res, err := parseStatus(line)
		if err != nil {
			return nil, err
		}
		if res.header, err = tp.ReadMIMEHeader(); err != nil {
			return nil, fmt.Errorf("%w: header: %w", errMalformed, noEOF(err))
		}
		if res.status >= 100 && res.status < 200 {
			if res.status == 101 {
				return nil, fmt.Errorf("%w: 101 Switching Protocols", errMalformed)
			}
			continue
		}
		if res.body, err = frame(br, res, method); err != nil {
			return nil, err
		}
		return res, nil
	}
	return nil, fmt.Errorf("%w: more than %d interim answers", errMalformed, maxInterim)
}

// parseStatus reads a status line such as "HTTP/1.1 404 Not Found".
func parseStatus(line string) (*response, error) {
	proto, rest, ok := strings.Cut(line, " ")
	if !ok || (proto != "HTTP/1.1" && proto != "HTTP/1.0") {
		return nil, fmt.Errorf("%w: status line %q", errMalformed, clip(line))
	}
	code, text, _ := strings.Cut(rest, " ")
	status, err := strconv.Atoi(code)
	if err != nil || len(code) != 3 || status < 100 {
		return nil, fmt.Errorf("%w: status line %q", errMalformed, clip(line))
	}
	return &response{status: status, text: text}, nil
}

// frame returns the reader of res's body, framed as RFC 9112 section 6
// says for an answer on a connection that closes after it.
func frame(br *bufio.Reader, res *response, method string) (io.ReadCloser, error) {
	if method == "HEAD" || res.status == 204 || res.status == 304 {
		return io.NopCloser(strings.NewReader("")), nil
	}
	if te := res.header.Values("Transfer-Encoding"); len(te) > 0 {
		if len(te) != 1 || !strings.EqualFold(strings.TrimSpace(te[0]), "chunked") {
			return nil, fmt.Errorf("%w: transfer coding %q", errMalformed, clip(strings.Join(te, ", ")))
		}
		return io.NopCloser(&chunkedReader{r: br}), nil
	}
	if cl := res.header.Values("Content-Length"); len(cl) > 0 {
		n, err := strconv.ParseInt(strings.TrimSpace(cl[0]), 10, 64)
		for _, v := range cl[1:] {
			if strings.TrimSpace(v) != strings.TrimSpace(cl[0]) {
				err = errMalformed
			}
		}
		if err != nil || n < 0 {
			return nil, fmt.Errorf("%w: Content-Length %q", errMalformed, clip(strings.Join(cl, ", ")))
		}
		return io.NopCloser(&exactReader{r: br, n: n}), nil
	}
	return io.NopCloser(br), nil
}

// answerBody is an answer's body: closing it closes the connection, and
// a read that fails because ctx ended says so.
type answerBody struct {
	r      io.ReadCloser
	closer func() error
	ctx    context.Context
}

func (b *answerBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err != nil && err != io.EOF && b.ctx.Err() != nil {
		err = b.ctx.Err()
	}
	return n, err
}

func (b *answerBody) Close() error { return b.closer() }

// exactReader reads a body of n bytes: a connection that ends sooner is
// io.ErrUnexpectedEOF, not a short body taken for a whole one.
type exactReader struct {
	r io.Reader
	n int64
}

func (e *exactReader) Read(p []byte) (int, error) {
	if e.n <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > e.n {
		p = p[:e.n]
	}
	n, err := e.r.Read(p)
	e.n -= int64(n)
	if err == io.EOF && e.n > 0 {
		err = io.ErrUnexpectedEOF
	}
	if e.n == 0 && err == nil {
		err = io.EOF
	}
	return n, err
}

// chunkedReader decodes the chunked transfer coding (RFC 9112 section
// 7.1). A connection that ends before the last chunk is
// io.ErrUnexpectedEOF: that is how a stream cut by a dying daemon differs
// from one it ended.
type chunkedReader struct {
	r   *bufio.Reader
	n   int64 // bytes left in the current chunk
	err error
}

func (c *chunkedReader) Read(p []byte) (int, error) {
	for c.err == nil {
		if c.n == 0 {
			c.err = c.beginChunk()
			continue
		}
		if len(p) == 0 {
			return 0, nil
		}
		if int64(len(p)) > c.n {
			p = p[:c.n]
		}
		n, err := c.r.Read(p)
		c.n -= int64(n)
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		if err == nil && c.n == 0 {
			err = c.crlf()
		}
		c.err = err
		if n > 0 {
			return n, nil
		}
	}
	return 0, c.err
}

// beginChunk reads a chunk's size line; after the last chunk it reads the
// trailer and returns io.EOF.
func (c *chunkedReader) beginChunk() error {
	line, err := c.line()
	if err != nil {
		return err
	}
	// White space may end the line, as net/http allows, but not stand
	// between the size and an extension: net/http refuses that.
	size, _, _ := strings.Cut(strings.TrimRight(line, " \t"), ";")
	n, err := strconv.ParseInt(size, 16, 64)
	if err != nil || n < 0 || size == "" || size[0] == '+' || size[0] == '-' {
		return fmt.Errorf("%w: chunk size %q", errMalformed, clip(line))
	}
	if n > 0 {
		c.n = n
		return nil
	}
	for {
		line, err := c.line()
		if err != nil {
			return err
		}
		if line == "" {
			return io.EOF
		}
	}
}

// crlf reads the line end that closes a chunk's data.
func (c *chunkedReader) crlf() error {
	line, err := c.line()
	if err == nil && line != "" {
		err = fmt.Errorf("%w: chunk longer than its size", errMalformed)
	}
	return err
}

// line reads one line, at most the reader's buffer long, without its
// CRLF.
func (c *chunkedReader) line() (string, error) {
	b, err := c.r.ReadSlice('\n')
	if err != nil {
		if err == bufio.ErrBufferFull {
			return "", fmt.Errorf("%w: chunk line too long", errMalformed)
		}
		return "", noEOF(err)
	}
	// A bare LF is refused, as net/http does: a reader that took it would
	// frame the body differently from a proxy in front of it.
	if len(b) < 2 || b[len(b)-2] != '\r' || bytes.IndexByte(b[:len(b)-2], '\r') >= 0 {
		return "", fmt.Errorf("%w: chunk line with a bare CR or LF", errMalformed)
	}
	return string(b[:len(b)-2]), nil
}

// budgetReader reads at most n bytes from r, and then fails; n < 0 is no
// bound. It keeps an answer's header from growing without end.
type budgetReader struct {
	r io.Reader
	n int64
}

func (b *budgetReader) Read(p []byte) (int, error) {
	if b.n < 0 {
		return b.r.Read(p)
	}
	if b.n == 0 {
		return 0, fmt.Errorf("%w: header longer than %d bytes", errMalformed, maxHeaderBytes)
	}
	if int64(len(p)) > b.n {
		p = p[:b.n]
	}
	n, err := b.r.Read(p)
	b.n -= int64(n)
	return n, err
}

// noEOF turns the end of the connection inside an answer into
// io.ErrUnexpectedEOF.
func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// clip shortens text quoted in an error.
func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}
