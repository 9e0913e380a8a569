package transport

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/idmproject/idm/identity"
)

// fileSize is the size of the file most tests serve: three default
// segments and a partial fourth.
const fileSize = 3*64<<10 + 1234

func TestServer_Manifest(t *testing.T) {
	path, _ := randomFile(t, fileSize, 1)
	srv := startServer(t, path, nil)
	cn := dial(t, addrOf(t, srv))
	for range 2 { // asking twice on one connection gives the same answer
		m, err := cn.Manifest(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		sameManifest(t, m, srv.Manifest)
		if err := m.Validate(); err != nil {
			t.Error(err)
		}
	}
}

func TestServer_Manifest_EmptyFile(t *testing.T) {
	path := writeFile(t, "empty", nil)
	srv := startServer(t, path, nil)
	cn := dial(t, addrOf(t, srv))
	m, err := cn.Manifest(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	sameManifest(t, m, srv.Manifest)
	if p, err := fetch(cn, 0, 0); err != nil || len(p) != 0 {
		t.Errorf("zero-length range of an empty file = %d bytes, %v", len(p), err)
	}
}

func TestServer_Range(t *testing.T) {
	path, data := randomFile(t, fileSize, 2)
	srv := startServer(t, path, nil)
	cn := dial(t, addrOf(t, srv))
	seg := srv.Manifest.SegmentSize
	tests := []struct {
		name   string
		off, n int64
	}{
		{"first byte", 0, 1},
		{"first segment", 0, seg},
		{"second segment", seg, seg},
		{"partial last segment", 3 * seg, fileSize - 3*seg},
		{"last byte", fileSize - 1, 1},
		{"across segments, unaligned", seg - 10, seg + 20},
		{"zero length at the start", 0, 0},
		{"zero length in the middle", 12345, 0},
		{"zero length at the end", fileSize, 0},
		{"whole file", 0, fileSize},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := fetch(cn, tt.off, tt.n)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(p, data[tt.off:tt.off+tt.n]) {
				t.Errorf("bytes %d+%d differ from the file", tt.off, tt.n)
			}
		})
	}
}

func TestServer_Range_Random(t *testing.T) {
	path, data := randomFile(t, fileSize, 3)
	srv := startServer(t, path, nil)
	cn := dial(t, addrOf(t, srv))
	r := rand.New(rand.NewPCG(3, 3))
	for range 300 {
		off := r.Int64N(fileSize + 1)
		n := r.Int64N(fileSize - off + 1)
		p, err := fetch(cn, off, n)
		if err != nil {
			t.Fatalf("range %d+%d: %v", off, n, err)
		}
		if !bytes.Equal(p, data[off:off+n]) {
			t.Fatalf("bytes %d+%d differ from the file", off, n)
		}
	}
}

// TestConn_Pipelining sends every request before reading any answer.
func TestConn_Pipelining(t *testing.T) {
	path, data := randomFile(t, fileSize, 4)
	srv := startServer(t, path, nil)
	cn := dial(t, addrOf(t, srv))
	type rng struct{ off, n int64 }
	var ranges []rng
	for i := range int64(32) {
		off := i * 6007 % fileSize
		ranges = append(ranges, rng{off, min(i*997, fileSize-off)})
	}
	for _, r := range ranges {
		if err := cn.Request(r.off, r.n); err != nil {
			t.Fatal(err)
		}
	}
	for i, r := range ranges {
		p := make([]byte, r.n)
		if err := cn.Receive(p); err != nil {
			t.Fatalf("answer %d: %v", i, err)
		}
		if !bytes.Equal(p, data[r.off:r.off+r.n]) {
			t.Fatalf("answer %d (%d+%d) differs from the file", i, r.off, r.n)
		}
	}
	// The pipeline is drained: the connection still answers.
	if p, err := fetch(cn, 5, 10); err != nil || !bytes.Equal(p, data[5:15]) {
		t.Fatalf("after the pipeline: %v", err)
	}
}

// TestConn_Pipelining_TwoGoroutines sends from one goroutine while another
// reads the answers, as Conn's doc comment allows.
func TestConn_Pipelining_TwoGoroutines(t *testing.T) {
	path, data := randomFile(t, 1<<20, 5)
	srv := startServer(t, path, nil)
	cn := dial(t, addrOf(t, srv))
	const requests = 300
	rangeOf := func(i int64) (int64, int64) {
		off := i * 7919 % int64(len(data))
		return off, min(1+i*131%(16<<10), int64(len(data))-off)
	}
	sendErr := make(chan error, 1)
	go func() {
		for i := range int64(requests) {
			if err := cn.Request(rangeOf(i)); err != nil {
				sendErr <- err
				return
			}
		}
		sendErr <- nil
	}()
	for i := range int64(requests) {
		off, n := rangeOf(i)
		p := make([]byte, n)
		if err := cn.Receive(p); err != nil {
			cn.Close()
			<-sendErr
			t.Fatalf("answer %d: %v", i, err)
		}
		if !bytes.Equal(p, data[off:off+n]) {
			cn.Close()
			<-sendErr
			t.Fatalf("answer %d (%d+%d) differs from the file", i, off, n)
		}
	}
	if err := <-sendErr; err != nil {
		t.Fatal(err)
	}
}

// TestServer_BadRequest sends one malformed frame after a valid hello. The
// server must answer CodeBadRequest and close that connection only.
func TestServer_BadRequest(t *testing.T) {
	path, data := randomFile(t, fileSize, 6)
	srv := startServer(t, path, nil)
	addr := addrOf(t, srv)
	frame := func(typ byte, n uint32, payload ...byte) []byte {
		return append(append([]byte{typ}, binary.BigEndian.AppendUint32(nil, n)...), payload...)
	}
	tests := []struct {
		name string
		in   []byte
	}{
		{"unknown type", frame(0x07, 0)},
		{"unknown type with a payload", frame(0x7f, 3, 1, 2, 3)},
		{"answer type", frame(frameData, 1, 0)},
		{"oversize length", frame(frameRangeReq, maxRequestPayload+1)},
		{"length 2^32-1", frame(frameRangeReq, 0xFFFFFFFF)},
		{"range request with 8 bytes", frame(frameRangeReq, 8, make([]byte, 8)...)},
		{"range request with 15 bytes", frame(frameRangeReq, 15, make([]byte, 15)...)},
		{"manifest request with 4 bytes", frame(frameManifestReq, 4, 0, 0, 0, 0)},
		{"offset past 2^62", encodeRangeRequest(nil, 1<<62+1, 1)},
		{"negative length", encodeRangeRequest(nil, 0, -5)},
	}
	// A well-behaved client connected the whole time.
	other := dial(t, addr)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := rawIDM(t, addr)
			if _, err := c.Write(tt.in); err != nil {
				t.Fatal(err)
			}
			if e := readErrorFrame(t, c); e.Code != CodeBadRequest {
				t.Fatalf("answered %v, want bad request", e)
			}
			expectClosed(t, c)
			if p, err := fetch(other, 100, 1000); err != nil || !bytes.Equal(p, data[100:1100]) {
				t.Fatalf("the other client: %v", err)
			}
		})
	}
}

// TestServer_BadRequest_AfterGoodOnes checks that answers to the requests
// before a malformed one are all sent before the error.
func TestServer_BadRequest_AfterGoodOnes(t *testing.T) {
	path, data := randomFile(t, fileSize, 7)
	srv := startServer(t, path, nil)
	c := rawIDM(t, addrOf(t, srv))
	var in []byte
	in = encodeRangeRequest(in, 0, 10)
	in = encodeRangeRequest(in, 20, 10)
	in = append(in, 0x07, 0, 0, 0, 0)
	if _, err := c.Write(in); err != nil {
		t.Fatal(err)
	}
	for _, off := range []int{0, 20} {
		typ, p := readFrame(t, c)
		if typ != frameData || !bytes.Equal(p, data[off:off+10]) {
			t.Fatalf("answer at %d: frame 0x%02x % x", off, typ, p)
		}
	}
	if e := readErrorFrame(t, c); e.Code != CodeBadRequest {
		t.Fatalf("answered %v, want bad request", e)
	}
	expectClosed(t, c)
}

func TestServer_OutOfRange(t *testing.T) {
	path, data := randomFile(t, fileSize, 8)
	srv := startServer(t, path, nil)
	cn := dial(t, addrOf(t, srv))
	tests := []struct {
		name   string
		off, n int64
	}{
		{"one byte past the end", fileSize - 10, 11},
		{"starts at the end", fileSize, 1},
		{"starts past the end", fileSize + 1, 0},
		{"far past the end", 1 << 62, 1},
		{"longest length past the end", 0, MaxRangeLen},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := fetch(cn, tt.off, tt.n)
			if !errors.Is(err, ErrOutOfRange) {
				t.Fatalf("range %d+%d: %v, want ErrOutOfRange", tt.off, tt.n, err)
			}
			// The connection stays usable.
			if p, err := fetch(cn, 1, 99); err != nil || !bytes.Equal(p, data[1:100]) {
				t.Fatalf("after the error: %v", err)
			}
		})
	}
}

// TestServer_OutOfRange_LongerThanMaxRangeLen sends by hand what
// Conn.Request refuses to send.
func TestServer_OutOfRange_LongerThanMaxRangeLen(t *testing.T) {
	path, data := randomFile(t, fileSize, 9)
	srv := startServer(t, path, nil)
	c := rawIDM(t, addrOf(t, srv))
	for _, n := range []int64{MaxRangeLen + 1, 1 << 40, 1 << 62} {
		if _, err := c.Write(encodeRangeRequest(nil, 0, n)); err != nil {
			t.Fatal(err)
		}
		if e := readErrorFrame(t, c); e.Code != CodeOutOfRange {
			t.Fatalf("length %d answered %v, want out of range", n, e)
		}
	}
	if _, err := c.Write(encodeRangeRequest(nil, 3, 4)); err != nil {
		t.Fatal(err)
	}
	if typ, p := readFrame(t, c); typ != frameData || !bytes.Equal(p, data[3:7]) {
		t.Fatalf("after the errors: frame 0x%02x % x", typ, p)
	}
}

func TestConn_Request_RefusesInvalidRange(t *testing.T) {
	path, _ := randomFile(t, 100, 10)
	srv := startServer(t, path, nil)
	cn := dial(t, addrOf(t, srv))
	for _, r := range []struct{ off, n int64 }{{-1, 1}, {0, -1}, {0, MaxRangeLen + 1}} {
		if err := cn.Request(r.off, r.n); err == nil {
			t.Errorf("Request(%d, %d) sent it", r.off, r.n)
		}
	}
	// Nothing was sent, so nothing is outstanding.
	if _, err := fetch(cn, 0, 10); err != nil {
		t.Fatal(err)
	}
}

func TestServer_UnsupportedVersion(t *testing.T) {
	path, _ := randomFile(t, 100, 11)
	srv := startServer(t, path, nil)
	addr := addrOf(t, srv)
	for _, v := range []uint16{0, 3, 0xFFFF} {
		t.Run(fmt.Sprint("version ", v), func(t *testing.T) {
			c := rawConn(t, addr)
			if _, err := c.Write(helloBytes(v)); err != nil {
				t.Fatal(err)
			}
			e := readErrorFrame(t, c)
			if !errors.Is(e, ErrUnsupportedVersion) {
				t.Fatalf("answered %v, want unsupported version", e)
			}
			expectClosed(t, c)
		})
	}
	dial(t, addr) // the current version still works
}

// Both versions are served, each with its manifest: version 1 sends the
// whole file's BLAKE3 as the content hash, version 2 the file's root.
func TestServer_BothVersions(t *testing.T) {
	path, _ := randomFile(t, fileSize, 13)
	srv := startServer(t, path, nil)
	addr := addrOf(t, srv)
	for _, v := range []uint16{1, 2} {
		cn, err := (&Dialer{}).dial(t.Context(), addr, v)
		if err != nil {
			t.Fatalf("version %d: %v", v, err)
		}
		d, f, err := cn.File(t.Context())
		cn.Close()
		if err != nil {
			t.Fatalf("version %d: %v", v, err)
		}
		if d.Root != identity.Hash(srv.Manifest.Root()) || f.Root() != d.Root {
			t.Errorf("version %d: root %s, want %s", v, d.Root, srv.Manifest.Root())
		}
		b3, ok := f.Digest(identity.BLAKE3)
		if v == 1 && (!ok || Hash(b3) != srv.Manifest.Content) {
			t.Errorf("version 1: whole-file BLAKE3 %x, want %s", b3, srv.Manifest.Content)
		}
		if v == 2 && ok {
			t.Errorf("version 2 carries a whole-file BLAKE3: %x", b3)
		}
	}
}

// A client asks a server that speaks only version 1 again in version 1.
func TestDial_FallsBackToVersion1(t *testing.T) {
	addr := fakeServer(t, func(c net.Conn) {
		var h [helloLen]byte
		if _, err := io.ReadFull(c, h[:]); err != nil {
			return
		}
		if v := binary.BigEndian.Uint16(h[len(Magic):]); v != 1 {
			c.Write(encodeError(&Error{Code: CodeUnsupportedVersion, Message: "version 1 only"}))
			return
		}
		c.Write(helloReplyVersion(1))
		silent(c)
	})
	cn, err := Dial(t.Context(), addr)
	if err != nil {
		t.Fatal(err)
	}
	defer cn.Close()
	if cn.version != 1 {
		t.Errorf("speaking version %d, want 1", cn.version)
	}
}

// A version 2 manifest whose segment hashes do not hash to its content
// hash is a protocol violation: the server lies about one hash at least.
func TestConn_Manifest_RootMismatch(t *testing.T) {
	path, _ := randomFile(t, fileSize, 14)
	m, err := BuildManifest(path, 0)
	if err != nil {
		t.Fatal(err)
	}
	enc, _ := m.encode(2)
	enc[len(enc)-1] ^= 1 // one bit of the last segment hash
	addr := fakeServer(t, func(c net.Conn) {
		if !acceptHello(c) {
			return
		}
		if _, err := readRequest(bufReader(c)); err != nil {
			return
		}
		c.Write(append(appendHeader(nil, frameManifest, len(enc)), enc...))
		silent(c)
	})
	cn := dial(t, addr)
	_, err = cn.Describe(t.Context())
	var perm interface{ Permanent() bool }
	if !errors.Is(err, ErrProtocol) || !errors.As(err, &perm) || !perm.Permanent() {
		t.Fatalf("Describe of a manifest whose hashes miss its root = %v, want a permanent protocol violation", err)
	}
}

// TestServer_Shutdown_IdleClients checks that an idle idm client, whether
// Conn or raw, is told the server is shutting down, and that Shutdown then
// returns without waiting for its context.
func TestServer_Shutdown_IdleClients(t *testing.T) {
	path, _ := randomFile(t, fileSize, 12)
	srv := startServer(t, path, nil)
	addr := addrOf(t, srv)
	cn := dial(t, addr)
	if _, err := fetch(cn, 0, 10); err != nil {
		t.Fatal(err)
	}
	raw := rawIDM(t, addr)

	ctx, cancel := context.WithTimeout(t.Context(), waitLimit)
	defer cancel()
	start := time.Now()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if d := time.Since(start); d > waitLimit/2 {
		t.Errorf("Shutdown took %v with only idle clients", d)
	}
	if srv.Alive() {
		t.Error("Alive after Shutdown")
	}
	if err := cn.Receive(nil); !errors.Is(err, ErrShuttingDown) {
		t.Errorf("Conn.Receive after Shutdown: %v, want ErrShuttingDown", err)
	}
	if e := readErrorFrame(t, raw); e.Code != CodeShuttingDown {
		t.Errorf("raw client got %v, want shutting down", e)
	}
	expectClosed(t, raw)
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Error("a new connection was accepted after Shutdown")
	}
}

// TestServer_Shutdown_FinishesAnswerInFlight starts a slow answer, shuts
// the server down in the middle of it, and expects the whole answer and
// then the shutting-down error.
func TestServer_Shutdown_FinishesAnswerInFlight(t *testing.T) {
	const size = 400 << 10
	path, data := randomFile(t, size, 13)
	// 1 MB/s: the answer takes about 0.4 s.
	srv := startServer(t, path, func(s *Server) { s.Rate = 1e6 })
	c := rawIDM(t, addrOf(t, srv))
	if _, err := c.Write(encodeRangeRequest(nil, 0, size)); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, frameHeaderLen+size)
	if _, err := io.ReadFull(c, got[:frameHeaderLen]); err != nil {
		t.Fatal(err)
	}
	var (
		wg          sync.WaitGroup
		shutdownErr error
	)
	wg.Go(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
		defer cancel()
		shutdownErr = srv.Shutdown(ctx)
	})
	defer wg.Wait()
	defer c.Close() // on failure, lets Shutdown end at once
	if _, err := io.ReadFull(c, got[frameHeaderLen:]); err != nil {
		t.Fatalf("answer cut by Shutdown: %v", err)
	}
	if !bytes.Equal(got[frameHeaderLen:], data) {
		t.Fatal("answer differs from the file")
	}
	if e := readErrorFrame(t, c); e.Code != CodeShuttingDown {
		t.Fatalf("after the answer: %v, want shutting down", e)
	}
	wg.Wait()
	if shutdownErr != nil {
		t.Fatalf("Shutdown: %v", shutdownErr)
	}
}

func TestServer_Shutdown_Stopped(t *testing.T) {
	path, _ := randomFile(t, 100, 14)
	srv := startServer(t, path, nil)
	srv.Stop()
	if err := srv.Shutdown(t.Context()); err != nil {
		t.Fatalf("Shutdown of a stopped server: %v", err)
	}
}

func TestServer_Busy(t *testing.T) {
	path, data := randomFile(t, fileSize, 15)
	srv := startServer(t, path, func(s *Server) { s.MaxConns = 2 })
	addr := addrOf(t, srv)
	first, second := dial(t, addr), dial(t, addr)

	ctx, cancel := context.WithTimeout(t.Context(), waitLimit)
	defer cancel()
	if cn, err := Dial(ctx, addr); !errors.Is(err, ErrBusy) {
		if err == nil {
			cn.Close()
		}
		t.Fatalf("third Dial: %v, want ErrBusy", err)
	}
	resp, err := httpClient(t).Get("http://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 503 {
		t.Errorf("HTTP while busy: %s, want 503", resp.Status)
	}
	for i, cn := range []*Conn{first, second} {
		if p, err := fetch(cn, 10, 100); err != nil || !bytes.Equal(p, data[10:110]) {
			t.Errorf("client %d after the refusal: %v", i+1, err)
		}
	}
	// One leaves, so a new one is let in. The server counts the
	// connection as gone only once it has seen it close, so retry until
	// the deadline.
	first.Close()
	for {
		cn, err := Dial(ctx, addr)
		if err == nil {
			cn.Close()
			break
		}
		if !errors.Is(err, ErrBusy) {
			t.Fatalf("Dial after one client left: %v", err)
		}
	}
}

// TestServer_FileChanged checks that a file changed under a running
// server is never served: the first range request fails with
// CodeInternal.
func TestServer_FileChanged(t *testing.T) {
	tests := []struct {
		name   string
		change func(path string) error
	}{
		{"truncated", func(path string) error { return os.Truncate(path, 100) }},
		{"grown", func(path string) error { return os.Truncate(path, fileSize+1) }},
		{"modification time changed", func(path string) error {
			mt := time.Now().Add(-time.Hour)
			return os.Chtimes(path, mt, mt)
		}},
		{"removed", os.Remove},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path, _ := randomFile(t, fileSize, 16+uint64(i))
			srv := startServer(t, path, nil)
			addr := addrOf(t, srv)
			if err := tt.change(path); err != nil {
				t.Fatal(err)
			}
			cn := dial(t, addr)
			if _, err := cn.Manifest(t.Context()); err != nil {
				t.Fatalf("the manifest is still known: %v", err)
			}
			if _, err := fetch(cn, 0, 10); !errors.Is(err, ErrInternal) {
				t.Fatalf("range request: %v, want ErrInternal", err)
			}
			resp, err := httpClient(t).Get("http://" + addr + "/")
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != 500 {
				t.Errorf("HTTP: %s, want 500", resp.Status)
			}
		})
	}
}

// TestServer_Stop_DropsConnections checks that Stop closes open
// connections at once, as a crash would, and that the server starts again
// on the same address.
func TestServer_Stop_DropsConnections(t *testing.T) {
	path, data := randomFile(t, fileSize, 20)
	srv := startServer(t, path, nil)
	addr := addrOf(t, srv)
	if !srv.Alive() {
		t.Fatal("not Alive after Start")
	}
	cn := dial(t, addr)
	blocked := make(chan error, 1)
	go func() { blocked <- cn.Receive(nil) }() // nothing asked: waits

	start := time.Now()
	srv.Stop()
	select {
	case err := <-blocked:
		if err == nil {
			t.Fatal("Receive succeeded on a stopped server")
		}
		if errors.Is(err, ErrStalled) {
			t.Fatalf("Receive waited for the stall time-out: %v", err)
		}
	case <-time.After(waitLimit):
		cn.Close()
		<-blocked
		t.Fatal("Receive still blocked after Stop")
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Receive returned %v after Stop", d)
	}
	if srv.Alive() {
		t.Error("Alive after Stop")
	}
	if srv.ListenAddr() != nil {
		t.Error("ListenAddr not nil after Stop")
	}
	srv.Stop() // harmless
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Fatal("a stopped server accepted a connection")
	}

	srv.Addr = addr
	if err := srv.Start(); err != nil {
		t.Fatalf("Start again on %s: %v", addr, err)
	}
	if !srv.Alive() || addrOf(t, srv) != addr {
		t.Fatalf("restarted on %v, want %s", srv.ListenAddr(), addr)
	}
	if p, err := fetch(dial(t, addr), 0, fileSize); err != nil || !bytes.Equal(p, data) {
		t.Fatalf("after restart: %v", err)
	}
}

// TestServer_Stop_DuringRateLimitedAnswer checks that Stop does not wait
// for a throttled answer to finish.
func TestServer_Stop_DuringRateLimitedAnswer(t *testing.T) {
	const size = 1 << 20
	path, _ := randomFile(t, size, 21)
	srv := startServer(t, path, func(s *Server) { s.Rate = 100e3 }) // about 10 s
	c := rawIDM(t, addrOf(t, srv))
	if _, err := c.Write(encodeRangeRequest(nil, 0, size)); err != nil {
		t.Fatal(err)
	}
	// The answer has begun once its first byte is here.
	if _, err := io.ReadFull(c, make([]byte, frameHeaderLen+1)); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	srv.Stop()
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Stop took %v", d)
	}
	n, err := io.Copy(io.Discard, c)
	if err != nil && errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("connection still open after Stop: %v", err)
	}
	if n >= size-1 {
		t.Fatal("the whole answer arrived")
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("connection closed %v after Stop", d)
	}
}

// TestServer_IdleTimeout checks that a connection silent for longer than
// IdleTimeout is closed, and that one asking in time is not.
func TestServer_IdleTimeout(t *testing.T) {
	const idle = 300 * time.Millisecond
	path, data := randomFile(t, 100, 25)
	srv := startServer(t, path, func(s *Server) { s.IdleTimeout = idle })
	addr := addrOf(t, srv)

	busy := rawIDM(t, addr)
	quiet := rawIDM(t, addr)
	start := time.Now()
	tick := time.NewTicker(idle / 3)
	defer tick.Stop()
	for range 6 { // asks every 100 ms for 600 ms
		<-tick.C
		if _, err := busy.Write(encodeRangeRequest(nil, 0, 10)); err != nil {
			t.Fatal(err)
		}
		if typ, p := readFrame(t, busy); typ != frameData || !bytes.Equal(p, data[:10]) {
			t.Fatalf("answer while active: frame 0x%02x % x", typ, p)
		}
	}
	expectClosed(t, quiet)
	if d := time.Since(start); d < idle {
		t.Errorf("idle connection closed after %v, IdleTimeout is %v", d, idle)
	}
}

func TestServer_Start_Twice(t *testing.T) {
	path, _ := randomFile(t, 100, 22)
	srv := startServer(t, path, nil)
	if err := srv.Start(); !errors.Is(err, ErrRunning) {
		t.Fatalf("second Start: %v, want ErrRunning", err)
	}
	dial(t, addrOf(t, srv))
}

func TestServer_Start_Fails(t *testing.T) {
	path, _ := randomFile(t, 100, 23)
	running := startServer(t, path, nil)
	m := running.Manifest
	tests := []struct {
		name string
		srv  *Server
	}{
		{"no manifest", &Server{Addr: "127.0.0.1:0", Path: path}},
		{"invalid manifest", &Server{Addr: "127.0.0.1:0", Path: path, Manifest: &Manifest{Name: "x", SegmentSize: 1}}},
		{"address in use", &Server{Addr: addrOf(t, running), Path: path, Manifest: m}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.srv.Start(); err == nil {
				tt.srv.Stop()
				t.Fatal("Start succeeded")
			}
			if tt.srv.Alive() {
				t.Error("Alive after a failed Start")
			}
		})
	}
}

// TestServer_ManyClients has 100 idm clients fetch the whole file at once.
func TestServer_ManyClients(t *testing.T) {
	const clients = 100
	path, data := randomFile(t, 4<<20, 24)
	srv := startServer(t, path, func(s *Server) { s.MaxConns = clients + 10 })
	addr := addrOf(t, srv)
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for i := range clients {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			cn, err := Dial(ctx, addr)
			if err != nil {
				errs <- fmt.Errorf("client %d: %w", i, err)
				return
			}
			defer cn.Close()
			m, err := cn.Manifest(ctx)
			if err != nil {
				errs <- fmt.Errorf("client %d: %w", i, err)
				return
			}
			if err := fetchAll(cn, m, data); err != nil {
				errs <- fmt.Errorf("client %d: %w", i, err)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestServer_BytesSent checks that the counter adds up the file bytes sent
// over the idm protocol, not manifests and not HTTP, across a restart.
func TestServer_BytesSent(t *testing.T) {
	path, _ := randomFile(t, fileSize, 26)
	srv := startServer(t, path, nil)
	addr := addrOf(t, srv)
	// The server counts a range once its write returns, which may be just
	// after the client has read it: wait for the count, with a deadline.
	waitSent := func(want int64) {
		t.Helper()
		deadline := time.Now().Add(waitLimit)
		for srv.BytesSent() != want {
			if time.Now().After(deadline) {
				t.Fatalf("BytesSent = %d, want %d", srv.BytesSent(), want)
			}
			runtime.Gosched()
		}
	}
	waitSent(0)
	cn := dial(t, addr)
	if _, err := cn.Manifest(t.Context()); err != nil {
		t.Fatal(err)
	}
	for _, r := range []struct{ off, n int64 }{{0, 1000}, {5, 0}, {100, fileSize - 100}} {
		if _, err := fetch(cn, r.off, r.n); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := fetch(cn, fileSize, 1); !errors.Is(err, ErrOutOfRange) {
		t.Fatalf("out-of-range request: %v", err)
	}
	want := int64(1000 + fileSize - 100)
	waitSent(want)
	if resp, body := httpGet(t, httpClient(t), "GET", "http://"+addr+"/", nil); resp.StatusCode != 200 || len(body) != fileSize {
		t.Fatalf("HTTP GET: %s, %d bytes", resp.Status, len(body))
	}
	srv.Stop()
	srv.Addr = addr
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	if _, err := fetch(dial(t, addr), 0, 10); err != nil {
		t.Fatal(err)
	}
	waitSent(want + 10)
}
