// Package servertest starts idm servers, and HTTP servers on a loopback
// address of the test's choosing, in the test's own process, for the
// tests of the engine, the job queue, the control API and the HTTP
// source. It is imported only by tests.
package servertest

import (
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/idmproject/idm/transport"
)

// File writes size random bytes, the same for the same seed, to a file
// in a new temporary directory and returns its path and contents.
func File(t testing.TB, size int64, seed uint64) (string, []byte) {
	t.Helper()
	b := make([]byte, size)
	rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8)}).Read(b)
	path := filepath.Join(t.TempDir(), "video.bin")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return path, b
}

// Start starts one server per rate (bytes per second, 0 for no limit),
// all serving path cut into segments of segSize (0: the default).
func Start(t testing.TB, path string, segSize int64, rates ...int64) []*transport.Server {
	t.Helper()
	m, err := transport.BuildManifest(path, segSize)
	if err != nil {
		t.Fatal(err)
	}
	var out []*transport.Server
	for _, r := range rates {
		out = append(out, StartOne(t, path, m, r))
	}
	return out
}

// StartOne starts a server serving path as m describes it, stopped when
// the test ends. Its Addr is set to the port it took, so that a restart
// comes back on the same one.
func StartOne(t testing.TB, path string, m *transport.Manifest, rate int64) *transport.Server {
	t.Helper()
	s := &transport.Server{Addr: "127.0.0.1:0", Path: path, Manifest: m, Rate: rate, Logger: slog.New(slog.DiscardHandler)}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	s.Addr = s.ListenAddr().String()
	t.Cleanup(s.Stop)
	return s
}

// Sources returns the idm:// sources of servers.
func Sources(servers ...*transport.Server) []string {
	var addrs []string
	for _, s := range servers {
		addrs = append(addrs, s.Addr)
	}
	return SourcesOf(addrs...)
}

// SourcesOf returns the idm:// sources of the given host:port addresses.
func SourcesOf(addrs ...string) []string {
	var out []string
	for _, a := range addrs {
		out = append(out, "idm://"+a)
	}
	return out
}

// HTTPAt starts h on a port of the loopback address ip (127.0.0.2, say,
// which a test may make stand for a public server), until the test ends.
func HTTPAt(t testing.TB, ip string, h http.Handler) *httptest.Server {
	t.Helper()
	srv, err := HTTPOn(t, net.JoinHostPort(ip, "0"), h)
	if err != nil {
		t.Fatal(err)
	}
	return srv
}

// HTTPOn starts h on hostport, a loopback address and port, until the
// test ends; it fails when the port is taken.
func HTTPOn(t testing.TB, hostport string, h http.Handler) (*httptest.Server, error) {
	t.Helper()
	ln, err := net.Listen("tcp", hostport)
	if err != nil {
		return nil, err
	}
	srv := httptest.NewUnstartedServer(h)
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	t.Cleanup(srv.Close)
	return srv, nil
}
