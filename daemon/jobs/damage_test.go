package jobs

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.etcd.io/bbolt"

	"github.com/idmproject/idm/daemon/api"
	"github.com/idmproject/idm/internal/leaktest"
	"github.com/idmproject/idm/store"
)

// logBuffer collects a logger's lines safely.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// stateWithBadRecord makes a state directory holding a queued job of
// sources and, after it, a job whose record is garbage. It returns the
// directory and the two jobs' IDs.
func stateWithBadRecord(t *testing.T, sources []string) (dir string, good, bad uint64) {
	t.Helper()
	dir = t.TempDir()
	path := filepath.Join(dir, dbName)
	db, err := store.Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	g := newJob(t, db, sources)
	b := newJob(t, db, sources[:1])
	db.Close()

	bb, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: time.Second})
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
	return dir, g.ID, b.ID
}

// TestOpen_BadRecordSkipped opens a daemon on a state directory where one
// job's record is garbage: that job is reported once and set aside, and
// the other downloads to completion.
func TestOpen_BadRecordSkipped(t *testing.T) {
	leaktest.Check(t)
	path, want := testFile(t, 2<<20+777, 3)
	srv := startServers(t, path, 0, 0, 0)
	dir, good, bad := stateWithBadRecord(t, serverSources(srv...))

	var logs logBuffer
	d, err := Open(Config{StateDir: dir, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatalf("Open with one bad record: %v", err)
	}
	defer d.Close()
	waitFor(t, "the good job to complete", time.Minute, func() bool {
		j, err := d.Job(good)
		return err == nil && j.State == api.StateCompleted
	})
	rec, err := d.db.Get(good)
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(rec.Path)
	if err != nil || !bytes.Equal(got, want) {
		t.Errorf("the good job's file: %d bytes, %v; want the original's %d", len(got), err, len(want))
	}

	if n := strings.Count(logs.String(), "record cannot be read, skipped"); n != 1 {
		t.Errorf("the bad record was logged %d times, want once:\n%s", n, logs.String())
	}
	if !strings.Contains(logs.String(), fmt.Sprintf("job=%d", bad)) {
		t.Errorf("the log does not name job %d:\n%s", bad, logs.String())
	}
	if _, err := d.Job(bad); err == nil || !strings.Contains(err.Error(), "cannot be read") {
		t.Errorf("Job of the bad record: %v, want an error saying it cannot be read", err)
	}
	if jobs := d.Jobs(); len(jobs) != 1 || jobs[0].ID != good {
		t.Errorf("Jobs: %v; want the good job alone", jobs)
	}

	// Removing it clears it.
	if err := d.Remove(context.Background(), bad); err != nil {
		t.Fatalf("Remove of the bad record: %v", err)
	}
	if _, err := d.Job(bad); !errors.Is(err, ErrNotFound) {
		t.Errorf("Job after Remove: %v, want ErrNotFound", err)
	}
}
