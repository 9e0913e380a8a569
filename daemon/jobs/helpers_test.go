package jobs

import (
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/idmproject/idm/daemon/api"
	"github.com/idmproject/idm/internal/servertest"
	"github.com/idmproject/idm/store"
)

// The servers and files of these tests.
var (
	testFile      = servertest.File
	startServers  = servertest.Start
	serverSources = servertest.Sources
)

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
