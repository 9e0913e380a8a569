package transport

import (
	"bufio"
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/idmproject/idm/identity"
)

// DefaultStallTimeout is how long a client read may receive nothing at all
// before the connection counts as stalled.
const DefaultStallTimeout = 10 * time.Second

// DefaultMinRate is the slowest a connection may deliver, in bytes per
// second, over the stall time-out: below it the source is trickling.
const DefaultMinRate = 1 << 10

// ErrStalled reports a connection on which no byte arrived for the stall
// time-out, or too few to be of use.
var ErrStalled = errors.New("connection stalled")

// Dialer opens idm protocol connections. Its zero value is ready to use.
type Dialer struct {
	// StallTimeout is how long any read may receive no byte before it
	// fails with ErrStalled. Zero means DefaultStallTimeout.
	StallTimeout time.Duration
	// MinRate is the fewest bytes per second a connection must deliver
	// while it is being read from, measured over StallTimeout, before it
	// fails with ErrStalled: a server that sends a byte now and then is
	// as useless as a silent one. Zero means DefaultMinRate; negative,
	// no minimum.
	MinRate int64
	// Version is the protocol version to ask for first. Zero means
	// Version; a test sets 1 to speak as an older client.
	Version uint16
}

// Dial connects to the idm server at addr (host:port) with a zero Dialer.
func Dial(ctx context.Context, addr string) (*Conn, error) {
	var d Dialer
	return d.Dial(ctx, addr)
}

// Dial connects to the idm server at addr and completes the handshake, in
// the newest version both speak: a server that does not speak Version is
// asked again in MinVersion.
func (d *Dialer) Dial(ctx context.Context, addr string) (*Conn, error) {
	v := cmp.Or(d.Version, Version)
	cn, err := d.dial(ctx, addr, v)
	if errors.Is(err, ErrUnsupportedVersion) && v > MinVersion {
		return d.dial(ctx, addr, MinVersion)
	}
	return cn, err
}

// dial connects and opens in the given version.
func (d *Dialer) dial(ctx context.Context, addr string, version uint16) (*Conn, error) {
	var nd net.Dialer
	c, err := nd.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	stall := d.StallTimeout
	if stall <= 0 {
		stall = DefaultStallTimeout
	}
	minRate := d.MinRate
	if minRate == 0 {
		minRate = DefaultMinRate
	}
	cn := &Conn{c: c, stall: stall, minRate: minRate, version: version}
	cn.br = bufio.NewReaderSize(stallReader{cn}, 64<<10)
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if err := cn.handshake(); err != nil {
		c.Close()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, err
	}
	return cn, nil
}

// Conn is one idm protocol connection. Requests may be pipelined: send
// several with Request, then read the answers, which come in the same
// order, with Receive. Request and Receive may run in two goroutines at
// once (one sending, one reading), but neither in two.
type Conn struct {
	version uint16 // the protocol version spoken
	c       net.Conn
	br      *bufio.Reader
	wbuf    []byte
	stall   time.Duration
	minRate int64
	// waited is how long reads have waited for the server since got was
	// last reset, and got how many bytes they received meanwhile.
	waited time.Duration
	got    int64
}

// stallReader renews the read deadline before each read, so the deadline
// measures silence, not the length of a transfer; and it measures the
// rate while reads wait for the server, so that a trickle fails too.
// Time the reader spends elsewhere (throttled by its own rate limit, say)
// does not count against the server.
type stallReader struct{ cn *Conn }

func (s stallReader) Read(p []byte) (int, error) {
	cn := s.cn
	start := time.Now()
	cn.c.SetReadDeadline(start.Add(cn.stall))
	n, err := cn.c.Read(p)
	var ne net.Error
	if err != nil && errors.As(err, &ne) && ne.Timeout() {
		return n, fmt.Errorf("%w: no data for %v", ErrStalled, cn.stall)
	}
	cn.waited += time.Since(start)
	cn.got += int64(n)
	if cn.waited >= cn.stall {
		if cn.minRate > 0 && float64(cn.got) < float64(cn.minRate)*cn.waited.Seconds() {
			return n, fmt.Errorf("%w: %d bytes in %v, slower than %d bytes/s", ErrStalled, cn.got, cn.waited.Round(time.Millisecond), cn.minRate)
		}
		cn.waited, cn.got = 0, 0
	}
	return n, err
}

func (cn *Conn) handshake() error {
	hello := append([]byte(Magic), 0, 0)
	binary.BigEndian.PutUint16(hello[len(Magic):], cn.version)
	if _, err := cn.c.Write(hello); err != nil {
		return err
	}
	typ, n, err := readHeader(cn.br, 2+MaxErrorMessage+2)
	if err != nil {
		return fmt.Errorf("handshake: %w", err)
	}
	p := make([]byte, n)
	if _, err := io.ReadFull(cn.br, p); err != nil {
		return fmt.Errorf("handshake: %w", err)
	}
	switch {
	case typ == frameError:
		return errorFrame(p)
	case typ == frameHello && n == 2 && binary.BigEndian.Uint16(p) == cn.version:
		return nil
	}
	return protocolErr("handshake answered with frame 0x%02x of %d bytes", typ, n)
}

// errorFrame turns an error frame's payload into the error it carries.
func errorFrame(p []byte) error {
	e, err := decodeError(p)
	if err != nil {
		return err
	}
	return e
}

// RemoteAddr returns the server's address.
func (cn *Conn) RemoteAddr() net.Addr { return cn.c.RemoteAddr() }

// Manifest asks for the file's manifest. Call it with no range
// outstanding.
func (cn *Conn) Manifest(ctx context.Context) (*Manifest, error) {
	d, f, err := cn.manifest(ctx, true)
	if err != nil {
		return nil, err
	}
	m := &Manifest{Name: d.Name, Size: f.Size, ModTime: d.ModTime, SegmentSize: f.PieceLen, Segments: make([]Hash, f.Count())}
	for i := range m.Segments {
		copy(m.Segments[i][:], f.PieceHash(i))
	}
	if content, ok := f.Digest(identity.BLAKE3); ok {
		copy(m.Content[:], content)
	}
	return m, nil
}

// Describe asks for the file's manifest and returns what it says, the
// segment hashes summed up in the root. Its memory does not grow with the
// number of segments. Call it with no range outstanding.
func (cn *Conn) Describe(ctx context.Context) (*identity.Description, error) {
	d, _, err := cn.manifest(ctx, false)
	return d, err
}

// File asks for the file's manifest and returns what it says with the
// segment hashes. Call it with no range outstanding.
func (cn *Conn) File(ctx context.Context) (*identity.Description, *identity.File, error) {
	return cn.manifest(ctx, true)
}

// manifest asks for the manifest and reads it as it arrives.
func (cn *Conn) manifest(ctx context.Context, keep bool) (*identity.Description, *identity.File, error) {
	stop := context.AfterFunc(ctx, func() { cn.c.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	cn.c.SetWriteDeadline(time.Now().Add(cn.stall))
	if _, err := cn.c.Write(appendHeader(nil, frameManifestReq, 0)); err != nil {
		return nil, nil, cn.ctxErr(ctx, err)
	}
	typ, n, err := readHeader(cn.br, maxManifestPayload)
	if err != nil {
		return nil, nil, cn.ctxErr(ctx, err)
	}
	switch typ {
	case frameManifest:
		m, s, err := readManifest(io.LimitReader(cn.br, int64(n)), n, keep, cn.version)
		return m, s, cn.ctxErr(ctx, err)
	case frameError:
		if n > 4+MaxErrorMessage {
			return nil, nil, protocolErr("error frame of %d bytes", n)
		}
		p := make([]byte, n)
		if _, err := io.ReadFull(cn.br, p); err != nil {
			return nil, nil, cn.ctxErr(ctx, err)
		}
		return nil, nil, errorFrame(p)
	}
	return nil, nil, protocolErr("manifest answered with frame 0x%02x", typ)
}

func (cn *Conn) ctxErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}

// Request asks for the bytes [off, off+n) of the file without waiting for
// the answer.
func (cn *Conn) Request(off, n int64) error {
	if off < 0 || n < 0 || n > MaxRangeLen {
		return fmt.Errorf("range %d+%d: invalid or longer than %d", off, n, MaxRangeLen)
	}
	cn.wbuf = encodeRangeRequest(cn.wbuf[:0], off, n)
	cn.c.SetWriteDeadline(time.Now().Add(cn.stall))
	_, err := cn.c.Write(cn.wbuf)
	return err
}

// Receive reads the answer to the oldest outstanding request into p,
// which must be exactly as long as the range asked for. An error frame
// from the server comes back as an *Error; after one with
// CodeOutOfRange the connection is still usable.
func (cn *Conn) Receive(p []byte) error {
	return cn.receive(int64(len(p)), func() error {
		_, err := io.ReadFull(cn.br, p)
		return err
	})
}

// ReceiveTo is Receive for a caller that takes the n bytes of the answer
// as they arrive, written to w in pieces, rather than in one buffer.
func (cn *Conn) ReceiveTo(w io.Writer, n int64) error {
	return cn.receive(n, func() error {
		k, err := io.Copy(w, io.LimitReader(cn.br, n))
		if err == nil && k < n {
			err = io.ErrUnexpectedEOF
		}
		return err
	})
}

// receive reads the next answer's header and, for data of the expected
// length n, lets body read the n bytes.
func (cn *Conn) receive(n int64, body func() error) error {
	typ, ln, err := readHeader(cn.br, max(MaxRangeLen, 4+MaxErrorMessage))
	if err != nil {
		return err
	}
	switch typ {
	case frameData:
		if int64(ln) != n {
			return protocolErr("answer of %d bytes to a request for %d", ln, n)
		}
		return body()
	case frameError:
		if ln > 4+MaxErrorMessage {
			return protocolErr("error frame of %d bytes", ln)
		}
		b := make([]byte, ln)
		if _, err := io.ReadFull(cn.br, b); err != nil {
			return err
		}
		return errorFrame(b)
	}
	return protocolErr("range answered with frame 0x%02x", typ)
}

// Close closes the connection; a Receive blocked in another goroutine
// returns at once. Closing twice is harmless.
func (cn *Conn) Close() error {
	err := cn.c.Close()
	if errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}
