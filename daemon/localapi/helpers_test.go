package localapi

import (
	"encoding/binary"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"go.etcd.io/bbolt"

	"github.com/idmproject/idm/daemon/api"
	"github.com/idmproject/idm/daemon/jobs"
	"github.com/idmproject/idm/internal/servertest"
	"github.com/idmproject/idm/store"
)

var testFile = servertest.File

// startServers starts one server per rate (0 for none) on loopback, all
// serving path with the given segment size (0: default), and returns
// their sources.
func startServers(t testing.TB, path string, segSize int64, rates ...int64) []string {
	t.Helper()
	return servertest.Sources(servertest.Start(t, path, segSize, rates...)...)
}

// stateDir makes a state directory whose store holds a job for each of
// records, and returns it; a daemon opened on it finds them.
func stateDir(t testing.TB, records ...*store.Record) string {
	t.Helper()
	dir := t.TempDir()
	db, err := store.Open(filepath.Join(dir, "idmd.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range records {
		if err := db.Create(r, nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	return dir
}

// stateWithBadRecord makes a state directory holding a paused job and,
// after it, a job whose record is garbage. It returns the directory and
// the ID of the job that cannot be read.
func stateWithBadRecord(t testing.TB) (dir string, bad uint64) {
	t.Helper()
	sources := []string{"idm://127.0.0.1:1"}
	g := &store.Record{Sources: sources, Dir: t.TempDir(), State: api.StatePaused}
	b := &store.Record{Sources: sources, Dir: t.TempDir(), State: api.StatePaused}
	dir = stateDir(t, g, b)
	bb, err := bbolt.Open(filepath.Join(dir, "idmd.db"), 0o600, &bbolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer bb.Close()
	err = bb.Update(func(tx *bbolt.Tx) error {
		return tx.Bucket([]byte("jobs")).Put(binary.BigEndian.AppendUint64(nil, b.ID), []byte(`{"id":2,"sources":[`))
	})
	if err != nil {
		t.Fatal(err)
	}
	return dir, b.ID
}

// openQueue opens a job queue on dir, closed when the test ends.
func openQueue(t testing.TB, cfg jobs.Config) *jobs.Queue {
	t.Helper()
	if cfg.StateDir == "" {
		cfg.StateDir = t.TempDir()
	}
	cfg.Logger = quietLog()
	d, err := jobs.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
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
