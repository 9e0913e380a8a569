package engine

import (
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/idmproject/idm/internal/leaktest"
)

// checkLeaks fails the test if it leaves goroutines or descriptors
// behind. Call it first, so its cleanup runs last.
func checkLeaks(t *testing.T) { leaktest.Check(t) }

// faultProxy stands between the engine and a real server and misbehaves
// on purpose. With blackhole set it accepts connections and never sends a
// byte; with stallAfter > 0 it forwards that many bytes from the server
// to the client on each connection and then nothing more.
type faultProxy struct {
	ln         net.Listener
	target     string
	blackhole  bool
	stallAfter int64

	mu    sync.Mutex
	conns []net.Conn
	wg    sync.WaitGroup
}

func newFaultProxy(t *testing.T, target string) *faultProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &faultProxy{ln: ln, target: target}
	t.Cleanup(p.close)
	return p
}

func (p *faultProxy) addr() string { return p.ln.Addr().String() }

func (p *faultProxy) start() {
	p.wg.Go(func() {
		for {
			c, err := p.ln.Accept()
			if err != nil {
				return
			}
			p.track(c)
			if p.blackhole {
				continue
			}
			s, err := net.Dial("tcp", p.target)
			if err != nil {
				c.Close()
				continue
			}
			p.track(s)
			p.wg.Go(func() { io.Copy(s, c) })
			p.wg.Go(func() {
				if p.stallAfter > 0 {
					io.CopyN(c, s, p.stallAfter)
					io.Copy(io.Discard, s) // hold the connection, send nothing
					return
				}
				io.Copy(c, s)
			})
		}
	})
}

func (p *faultProxy) track(c net.Conn) {
	p.mu.Lock()
	p.conns = append(p.conns, c)
	p.mu.Unlock()
}

func (p *faultProxy) close() {
	p.ln.Close()
	p.mu.Lock()
	for _, c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

// corruptCopy copies the file at path to a new one whose bytes at the
// given offsets are flipped, with the same modification time, so a server
// started on it with the original's manifest serves bad data for those
// segments, as a disk with bit rot would.
func corruptCopy(t *testing.T, orig []byte, path string, offsets ...int64) string {
	t.Helper()
	b := append([]byte(nil), orig...)
	for _, off := range offsets {
		b[off] ^= 0xFF
	}
	out := strings.TrimSuffix(path, ".bin") + "-bad.bin"
	if err := os.WriteFile(out, b, 0o644); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(out, fi.ModTime(), fi.ModTime()); err != nil {
		t.Fatal(err)
	}
	return out
}
