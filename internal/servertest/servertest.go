// Package servertest starts idm servers on loopback, in the test's own
// process, for the tests of the engine, the job queue and the control
// API. It is imported only by tests.
package servertest

import (
	"log/slog"
	"math/rand/v2"
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
