package jobs

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/idmproject/idm/daemon/api"
	"github.com/idmproject/idm/internal/proctest"
)

// Cancelling one job removes its own partial file, never another job's
// of the same name.
func TestQueue_Cancel_LeavesOtherJobAlone(t *testing.T) {
	path, want := testFile(t, 4<<20, 31)
	srv := startServers(t, path, 256<<10, 1e6, 1e6)
	d, err := Open(Config{StateDir: t.TempDir(), Logger: quietLog(), StallTimeout: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	out := t.TempDir()
	j1, _, err := d.Create(context.Background(), api.CreateRequest{Sources: serverSources(srv[0]), Dir: out})
	if err != nil {
		t.Fatal(err)
	}
	j2, _, err := d.Create(context.Background(), api.CreateRequest{Sources: serverSources(srv[1]), Dir: out})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "both jobs under way", time.Minute, func() bool {
		a, _ := d.Job(j1.ID)
		b, _ := d.Job(j2.ID)
		return a.Progress.Verified > 0 && b.Progress.Verified > 0
	})
	if _, err := d.Cancel(context.Background(), j2.ID); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "job 1 done", time.Minute, func() bool {
		j, _ := d.Job(j1.ID)
		return j.Done()
	})
	j, _ := d.Job(j1.ID)
	if j.State != api.StateCompleted {
		t.Fatalf("job 1 %s: %s", j.State, j.LastError)
	}
	got, err := os.ReadFile(j.Path)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("job 1's file differs (%v)", err)
	}
	if names := dirNames(t, out); len(names) != 1 {
		t.Errorf("output directory holds %v, want job 1's file only", names)
	}
}

// A file larger than the room left on the disk fails its job with the
// reason, never the daemon; once room is made, resuming finishes it.
func TestQueue_DiskFull_FailsJobThenResumes(t *testing.T) {
	out := proctest.Tmpfs(t, "20m")
	path, want := testFile(t, 32<<20, 35)
	srv := startServers(t, path, 0, 0)
	d, err := Open(Config{StateDir: t.TempDir(), Logger: quietLog(), StallTimeout: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	j, _, err := d.Create(context.Background(), api.CreateRequest{Sources: serverSources(srv...), Dir: out})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the job to end", time.Minute, func() bool {
		j, _ = d.Job(j.ID)
		return j.Done()
	})
	if j.State != api.StateFailed || !strings.Contains(j.LastError, "no space left on device") {
		t.Fatalf("job %s (%q), want failed for want of room", j.State, j.LastError)
	}
	proctest.ResizeTmpfs(t, out, "80m")
	if _, err := d.Resume(context.Background(), j.ID); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the resumed job to end", time.Minute, func() bool {
		j, _ = d.Job(j.ID)
		return j.Done()
	})
	if j.State != api.StateCompleted {
		t.Fatalf("resumed job %s: %s", j.State, j.LastError)
	}
	if got, err := os.ReadFile(j.Path); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("file differs after the resume (%v)", err)
	}
}
