package transport

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// waitLimit bounds every wait a test makes for something that should
// happen promptly; reaching it is a failure, not a timing.
const waitLimit = 10 * time.Second

// randomBytes returns n bytes that are the same on every run for a seed.
func randomBytes(n int, seed uint64) []byte {
	var key [32]byte
	binary.LittleEndian.PutUint64(key[:], seed)
	b := make([]byte, n)
	rand.NewChaCha8(key).Read(b)
	return b
}

// writeFile writes data to a file called name in a fresh temporary
// directory and returns its path.
func writeFile(t testing.TB, name string, data []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// randomFile writes size random bytes to a temporary file and returns its
// path and contents.
func randomFile(t testing.TB, size int, seed uint64) (string, []byte) {
	t.Helper()
	data := randomBytes(size, seed)
	return writeFile(t, "payload.bin", data), data
}

// quietLogger drops everything; the servers under test log malformed
// input on purpose.
func quietLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// startServer builds the manifest of the file at path, starts a Server
// for it on a loopback port with the options set by configure (which may
// be nil), and stops it when the test ends.
func startServer(t testing.TB, path string, configure func(*Server)) *Server {
	t.Helper()
	m, err := BuildManifest(path, 0)
	if err != nil {
		t.Fatal(err)
	}
	srv := &Server{Addr: "127.0.0.1:0", Path: path, Manifest: m, Logger: quietLogger()}
	if configure != nil {
		configure(srv)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	return srv
}

// addrOf returns the address a running server listens on.
func addrOf(t testing.TB, srv *Server) string {
	t.Helper()
	a := srv.ListenAddr()
	if a == nil {
		t.Fatal("server is not listening")
	}
	return a.String()
}

// dial opens an idm connection that is closed when the test ends.
func dial(t testing.TB, addr string) *Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	cn, err := Dial(ctx, addr)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { cn.Close() })
	return cn
}

// fetch asks for one range on cn and returns the answer.
func fetch(cn *Conn, off, n int64) ([]byte, error) {
	if err := cn.Request(off, n); err != nil {
		return nil, err
	}
	p := make([]byte, n)
	if err := cn.Receive(p); err != nil {
		return nil, err
	}
	return p, nil
}

// rawConn opens a plain TCP connection, closed when the test ends, whose
// reads and writes fail after waitLimit rather than hang the test.
func rawConn(t testing.TB, addr string) *net.TCPConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, waitLimit)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(waitLimit))
	return c.(*net.TCPConn)
}

// helloBytes is a client's opening for the given protocol version.
func helloBytes(version uint16) []byte {
	return binary.BigEndian.AppendUint16([]byte(Magic), version)
}

// helloReply is a server's answer to a hello it accepts.
func helloReply() []byte { return helloReplyVersion(Version) }

// helloReplyVersion is a server's answer to a hello of the given version.
func helloReplyVersion(v uint16) []byte {
	return binary.BigEndian.AppendUint16(appendHeader(nil, frameHello, 2), v)
}

// rawIDM opens a raw connection and completes the hello by hand.
func rawIDM(t testing.TB, addr string) *net.TCPConn {
	t.Helper()
	c := rawConn(t, addr)
	if _, err := c.Write(helloBytes(Version)); err != nil {
		t.Fatal(err)
	}
	typ, p := readFrame(t, c)
	if typ != frameHello || len(p) != 2 || binary.BigEndian.Uint16(p) != Version {
		t.Fatalf("hello answered with frame 0x%02x % x", typ, p)
	}
	return c
}

// readFrame reads one whole frame of any length from r.
func readFrame(t testing.TB, r io.Reader) (byte, []byte) {
	t.Helper()
	var h [frameHeaderLen]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		t.Fatalf("read frame header: %v", err)
	}
	p := make([]byte, binary.BigEndian.Uint32(h[1:]))
	if _, err := io.ReadFull(r, p); err != nil {
		t.Fatalf("read %d-byte frame payload: %v", len(p), err)
	}
	return h[0], p
}

// readErrorFrame reads one frame from r and requires it to be an error
// frame.
func readErrorFrame(t testing.TB, r io.Reader) *Error {
	t.Helper()
	typ, p := readFrame(t, r)
	if typ != frameError {
		t.Fatalf("got frame 0x%02x, want an error frame", typ)
	}
	e, err := decodeError(p)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// expectClosed requires the peer to have closed c: the next read finds no
// more bytes.
func expectClosed(t testing.TB, c net.Conn) {
	t.Helper()
	var b [1]byte
	n, err := c.Read(b[:])
	var ne net.Error
	if n > 0 || err == nil || (errors.As(err, &ne) && ne.Timeout()) {
		t.Fatalf("connection still open: read %d bytes, %v", n, err)
	}
}

// fakeServer listens on a loopback port and runs handle on every
// connection it accepts, each in its own goroutine. When the test ends it
// closes the listener and every connection and waits for the handlers.
func fakeServer(t testing.TB, handle func(net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		conns []net.Conn
	)
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Go(func() { handle(c) })
		}
	})
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String()
}

// silent reads from c until the peer goes away, answering nothing.
func silent(c net.Conn) { io.Copy(io.Discard, c) }

// httpClient returns an HTTP client with its own connection pool, emptied
// when the test ends.
func httpClient(t testing.TB) *http.Client {
	tr := &http.Transport{MaxIdleConnsPerHost: 200}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

// fetchAll reads a whole file of size bytes over cn, one segment at a time
// with every request sent first, and reports the first mismatch with want.
func fetchAll(cn *Conn, m *Manifest, want []byte) error {
	n := int(SegmentCount(m.Size, m.SegmentSize))
	for i := range n {
		off, ln := m.Segment(i)
		if err := cn.Request(off, ln); err != nil {
			return err
		}
	}
	buf := make([]byte, m.SegmentSize)
	for i := range n {
		off, ln := m.Segment(i)
		p := buf[:ln]
		if err := cn.Receive(p); err != nil {
			return err
		}
		if string(p) != string(want[off:off+ln]) {
			return fmt.Errorf("bytes differ in range %d+%d", off, ln)
		}
	}
	return nil
}

// sameManifest reports the first field in which a and b differ.
func sameManifest(t testing.TB, got, want *Manifest) {
	t.Helper()
	switch {
	case got.Name != want.Name:
		t.Errorf("Name = %q, want %q", got.Name, want.Name)
	case got.Size != want.Size:
		t.Errorf("Size = %d, want %d", got.Size, want.Size)
	case !got.ModTime.Equal(want.ModTime):
		t.Errorf("ModTime = %v, want %v", got.ModTime, want.ModTime)
	case got.SegmentSize != want.SegmentSize:
		t.Errorf("SegmentSize = %d, want %d", got.SegmentSize, want.SegmentSize)
	case got.Content != want.Content && got.Content != (Hash{}):
		// A version 2 manifest carries the root, not the whole file's
		// BLAKE3: the segment hashes are compared below.
		t.Errorf("Content = %v, want %v", got.Content, want.Content)
	case len(got.Segments) != len(want.Segments):
		t.Errorf("%d segments, want %d", len(got.Segments), len(want.Segments))
	default:
		for i := range got.Segments {
			if got.Segments[i] != want.Segments[i] {
				t.Errorf("segment %d hash = %v, want %v", i, got.Segments[i], want.Segments[i])
				return
			}
		}
	}
}

// bufReader wraps r the way the server reads requests.
func bufReader(r io.Reader) *bufio.Reader { return bufio.NewReaderSize(r, 4096) }
