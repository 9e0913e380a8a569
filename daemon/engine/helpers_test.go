package engine

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/idmproject/idm/identity"
	"github.com/idmproject/idm/internal/servertest"
	"github.com/idmproject/idm/store"
	"github.com/idmproject/idm/transport"
	"github.com/idmproject/idm/transport/addr"
)

// The servers and files of these tests.
var (
	testFile      = servertest.File
	startServers  = servertest.Start
	startServer   = servertest.StartOne
	sourcesOf     = servertest.SourcesOf
	serverSources = servertest.Sources
)

// openDB opens a store in a new temporary directory.
func openDB(t testing.TB, path string) *store.DB {
	t.Helper()
	if path == "" {
		path = filepath.Join(t.TempDir(), "state.db")
	}
	db, err := store.Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// newJob creates a queued job downloading from sources into a new
// temporary directory.
func newJob(t testing.TB, db *store.DB, sources []string) *store.Record {
	t.Helper()
	rec := &store.Record{Sources: sources, Dir: t.TempDir(), State: "queued"}
	if err := db.Create(rec, nil); err != nil {
		t.Fatal(err)
	}
	return rec
}

// runTransfer runs tr in the background and returns a function that waits
// for its result.
func runTransfer(t testing.TB, ctx context.Context, tr *Transfer) func() error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- tr.Run(ctx) }()
	return func() error {
		select {
		case err := <-done:
			return err
		case <-time.After(2 * time.Minute):
			t.Fatal("transfer did not end within 2 minutes")
			return nil
		}
	}
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

// checkResult asserts the job completed and its file equals want.
func checkResult(t testing.TB, db *store.DB, id uint64, want []byte) *store.Record {
	t.Helper()
	rec, err := db.Get(id)
	if err != nil {
		t.Fatal(err)
	}
	if rec.Path == "" {
		t.Fatalf("job not published (state %q, last error %q)", rec.State, rec.LastError)
	}
	got, err := os.ReadFile(rec.Path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("downloaded file differs from the original (%d bytes vs %d)", len(got), len(want))
	}
	if rec.Part == "" {
		t.Fatal("the job records no partial file")
	}
	if _, err := os.Lstat(filepath.Join(rec.Dir, rec.Part)); !os.IsNotExist(err) && filepath.Join(rec.Dir, rec.Part) != rec.Path {
		t.Fatalf("partial file left behind: %v", err)
	}
	return rec
}

func quietLog() *slog.Logger { return slog.New(slog.DiscardHandler) }

// testJournal is the engine's journal over a real store, as the job
// queue keeps one.
type testJournal struct {
	db *store.DB
	id uint64
}

func (j testJournal) Identified(f *identity.File, name string, own bool) error {
	return j.db.SetIdentity(j.id, f, name, own)
}
func (j testJournal) PartFile(name string, dir store.FileID) error {
	return j.db.SetPart(j.id, name, dir)
}
func (j testJournal) Checkpoint(c *store.Checkpoint) error { return j.db.Checkpoint(j.id, c) }
func (j testJournal) Published(path string, c *store.Checkpoint) error {
	return j.db.Publish(j.id, path, time.Now(), c)
}

// idmSource is an idm server as an engine Source.
type idmSource struct{ *transport.IDMSource }

func (s idmSource) Open(ctx context.Context) (Conn, error) { return s.Dial(ctx) }

// loadJob reads job id from the store as the job queue would hand it to
// the engine, with its sources' connections stalling after stall.
func loadJob(t testing.TB, db *store.DB, id uint64, stall time.Duration) Job {
	t.Helper()
	rec, err := db.Get(id)
	if err != nil {
		t.Fatal(err)
	}
	job := Job{ID: id, Dir: rec.Dir, DirID: rec.DirID, Name: rec.Name, Part: rec.Part, PartStamp: rec.PartStamp,
		OwnPieces: rec.OwnPieces, Expect: identity.Hash(rec.Expect), Verified: rec.Verified, Fetched: rec.Fetched, Stats: rec.SourceStats}
	for _, raw := range rec.Sources {
		a, err := addr.Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		src := &transport.IDMSource{Addr: a.Host}
		src.Dialer.StallTimeout = stall
		job.Sources = append(job.Sources, idmSource{src})
	}
	hashes, err := db.Hashes(id)
	if err != nil {
		t.Fatal(err)
	}
	if job.File, err = rec.File(hashes); err != nil {
		t.Fatal(err)
	}
	if job.File != nil {
		if job.Done, err = db.Bitmap(id); err != nil {
			t.Fatal(err)
		}
	}
	return job
}

// newTransfer returns a transfer of job id as the store has it, with the
// given stall time-out.
func newTransfer(t testing.TB, db *store.DB, id uint64, stall time.Duration) *Transfer {
	return &Transfer{Job: loadJob(t, db, id, stall), Journal: testJournal{db, id}, Logger: quietLog()}
}
