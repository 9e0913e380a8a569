package jobs

import (
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/idmproject/idm/daemon/api"
	"github.com/idmproject/idm/store"
	"github.com/idmproject/idm/transport"
)

// testFile writes size random bytes to a file in a new temporary
// directory and returns its path and contents.
func testFile(t testing.TB, size int64, seed uint64) (string, []byte) {
	t.Helper()
	b := make([]byte, size)
	r := rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8)})
	r.Read(b)
	path := filepath.Join(t.TempDir(), "video.bin")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return path, b
}

// startServers starts one virtual server per rate (0 for none) on
// loopback, all serving path with the given segment size (0: default).
func startServers(t testing.TB, path string, segSize int64, rates ...int64) []*transport.Server {
	t.Helper()
	m, err := transport.BuildManifest(path, segSize)
	if err != nil {
		t.Fatal(err)
	}
	var out []*transport.Server
	for _, r := range rates {
		out = append(out, startServer(t, path, m, r))
	}
	return out
}

// startServer starts a virtual server on loopback serving path as m
// describes it.
func startServer(t testing.TB, path string, m *transport.Manifest, rate int64) *transport.Server {
	t.Helper()
	s := &transport.Server{Addr: "127.0.0.1:0", Path: path, Manifest: m, Rate: rate, Logger: quietLog()}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	// Later restarts must come back on the same port.
	s.Addr = s.ListenAddr().String()
	t.Cleanup(s.Stop)
	return s
}

func sourcesOf(addrs ...string) []string {
	var out []string
	for _, a := range addrs {
		out = append(out, "idm://"+a)
	}
	return out
}

func serverSources(servers ...*transport.Server) []string {
	var addrs []string
	for _, s := range servers {
		addrs = append(addrs, s.Addr)
	}
	return sourcesOf(addrs...)
}

// newJob creates a queued job downloading from sources into a new
// temporary directory.
func newJob(t testing.TB, db *store.DB, sources []string) *store.Record {
	t.Helper()
	rec := &store.Record{Sources: sources, Dir: t.TempDir(), State: api.StateQueued}
	if err := db.Create(rec, nil); err != nil {
		t.Fatal(err)
	}
	return rec
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func quietLog() *slog.Logger { return slog.New(slog.DiscardHandler) }

// dirNames lists the names in dir.
func dirNames(t testing.TB, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}
