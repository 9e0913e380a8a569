package jobs

import (
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/idmproject/idm/daemon/api"
	"github.com/idmproject/idm/daemon/auth"
	"github.com/idmproject/idm/store"
)

// lineIDs returns the IDs of jobs, in order.
func lineIDs(jobs []api.Job) []uint64 {
	var out []uint64
	for _, j := range jobs {
		out = append(out, j.ID)
	}
	return out
}

// lineQueue opens a queue with one slot, taken for good by job 1 (its
// only source refuses every connection, so it waits and never ends),
// and jobs 2 to 5 waiting in line: 2 with no owner, 3 and 5 another
// user's, 4 the daemon user's.
func lineQueue(t *testing.T) *Queue {
	t.Helper()
	dir := t.TempDir()
	db, err := store.Open(filepath.Join(dir, dbName), nil)
	if err != nil {
		t.Fatal(err)
	}
	self := &store.Owner{UID: os.Geteuid(), GID: os.Getegid()}
	other := &store.Owner{UID: os.Geteuid() + 1000, GID: 64000}
	newJob(t, db, []string{"idm://127.0.0.1:1"})
	for i, owner := range []*store.Owner{nil, other, self, other} {
		rec := &store.Record{Sources: []string{"idm://127.0.0.1:" + string(rune('2'+i))}, Dir: t.TempDir(), State: api.StateQueued, Owner: owner}
		if err := db.Create(rec, nil); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()
	q, err := Open(Config{StateDir: dir, MaxActive: 1, Logger: quietLog()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	waitFor(t, "job 1 started", 10*time.Second, func() bool {
		j, _ := q.Job(1)
		return j.State == api.StateDownloading || j.State == api.StateWaiting
	})
	return q
}

// The line of waiting jobs is in the order of creation, and Move changes
// it as aria2's changePosition does: from the front, from the job's own
// place, from the end, a place beyond either end being that end. The
// queue starts the first in line when a slot frees.
func TestQueue_Move(t *testing.T) {
	q := lineQueue(t)
	ctx := context.Background()
	if got := lineIDs(q.Waiting(ctx)); !slices.Equal(got, []uint64{2, 3, 4, 5}) {
		t.Fatalf("line %v, want [2 3 4 5]", got)
	}
	for _, step := range []struct {
		id   uint64
		pos  int
		from Whence
		dest int
		line []uint64
	}{
		{5, 0, FromStart, 0, []uint64{5, 2, 3, 4}},
		{2, 1, FromCurrent, 2, []uint64{5, 3, 2, 4}},
		{5, 0, FromEnd, 3, []uint64{3, 2, 4, 5}},
		{4, -1, FromEnd, 2, []uint64{3, 2, 4, 5}},
		{3, -10, FromCurrent, 0, []uint64{3, 2, 4, 5}},
		{3, 99, FromStart, 3, []uint64{2, 4, 5, 3}},
		{4, -1, FromCurrent, 0, []uint64{4, 2, 5, 3}},
		// Positions far beyond either end are that end, never a sum
		// that wraps around.
		{4, math.MaxInt, FromCurrent, 3, []uint64{2, 5, 3, 4}},
		{4, math.MinInt, FromEnd, 0, []uint64{4, 2, 5, 3}},
		{2, math.MaxInt, FromEnd, 3, []uint64{4, 5, 3, 2}},
		{2, math.MinInt, FromCurrent, 0, []uint64{2, 4, 5, 3}},
	} {
		dest, err := q.Move(ctx, step.id, step.pos, step.from)
		if err != nil {
			t.Fatalf("Move(%d, %d, %d): %v", step.id, step.pos, step.from, err)
		}
		if got := lineIDs(q.Waiting(ctx)); dest != step.dest || !slices.Equal(got, step.line) {
			t.Fatalf("Move(%d, %d, %d) = %d, line %v; want %d, %v", step.id, step.pos, step.from, dest, got, step.dest, step.line)
		}
	}
	// A paused job keeps its place in the line.
	if _, err := q.Pause(ctx, 2); err != nil {
		t.Fatal(err)
	}
	if got := lineIDs(q.Waiting(ctx)); !slices.Equal(got, []uint64{2, 4, 5, 3}) {
		t.Errorf("after pausing job 2 the line is %v, want [2 4 5 3]", got)
	}
	if _, err := q.Move(ctx, 1, 0, FromStart); !errors.Is(err, ErrConflict) {
		t.Errorf("Move of the running job: %v, want ErrConflict", err)
	}
	if _, err := q.Move(ctx, 99, 0, FromStart); !errors.Is(err, ErrNotFound) {
		t.Errorf("Move of no job: %v, want ErrNotFound", err)
	}
	// Two slots: the first queued job in line starts, not the oldest.
	if err := q.SetMaxActive(ctx, 2); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "job 4 started", 10*time.Second, func() bool {
		j, _ := q.Job(4)
		return j.State == api.StateDownloading || j.State == api.StateWaiting
	})
	if got := lineIDs(q.Waiting(ctx)); !slices.Equal(got, []uint64{2, 5, 3}) {
		t.Errorf("with job 4 started the line is %v, want [2 5 3]", got)
	}
	if q.MaxActive() != 2 {
		t.Errorf("MaxActive = %d, want 2", q.MaxActive())
	}
}

// The line outlasts the daemon: after a restart the waiting jobs are in
// the order Move left them, and a job made after goes to the end of it.
func TestQueue_Move_KeptAcrossRestart(t *testing.T) {
	q := lineQueue(t)
	ctx := context.Background()
	for _, m := range []struct {
		id   uint64
		pos  int
		from Whence
	}{{5, 0, FromStart}, {2, 0, FromEnd}} {
		if _, err := q.Move(ctx, m.id, m.pos, m.from); err != nil {
			t.Fatal(err)
		}
	}
	reopen := func() {
		t.Helper()
		q.Close()
		var err error
		if q, err = Open(Config{StateDir: q.cfg.StateDir, MaxActive: 1, Logger: quietLog()}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { q.Close() })
		waitFor(t, "job 1 started", 10*time.Second, func() bool {
			j, _ := q.Job(1)
			return j.State == api.StateDownloading || j.State == api.StateWaiting
		})
	}
	reopen()
	if got := lineIDs(q.Waiting(ctx)); !slices.Equal(got, []uint64{5, 3, 4, 2}) {
		t.Fatalf("after a restart the line is %v, want [5 3 4 2]", got)
	}
	j, _, err := q.Create(ctx, api.CreateRequest{Sources: []string{"idm://127.0.0.1:6"}, Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if got := lineIDs(q.Waiting(ctx)); !slices.Equal(got, []uint64{5, 3, 4, 2, j.ID}) {
		t.Fatalf("with a new job the line is %v, want it last", got)
	}
	if _, err := q.Move(ctx, j.ID, 1, FromStart); err != nil {
		t.Fatal(err)
	}
	reopen()
	if got := lineIDs(q.Waiting(ctx)); !slices.Equal(got, []uint64{5, j.ID, 3, 4, 2}) {
		t.Errorf("after a second restart the line is %v, want [5 %d 3 4 2]", got, j.ID)
	}
}

// An RPC caller sees and moves only the jobs it may change: places count
// among those, and the other jobs keep theirs.
func TestQueue_Move_RPCCaller(t *testing.T) {
	q := lineQueue(t)
	rpc := auth.WithPeer(context.Background(), auth.RPCPeer())
	if got := lineIDs(q.Waiting(rpc)); !slices.Equal(got, []uint64{2, 4}) {
		t.Fatalf("the RPC caller's line is %v, want [2 4]", got)
	}
	if got := lineIDs(q.ListFor(rpc, 0, -1)); !slices.Equal(got, []uint64{1, 2, 4}) {
		t.Errorf("ListFor the RPC caller = %v, want [1 2 4]", got)
	}
	if got := lineIDs(q.ListFor(rpc, 1, 1)); !slices.Equal(got, []uint64{2}) {
		t.Errorf("ListFor the RPC caller after 1, one job = %v, want [2]", got)
	}
	for id, want := range map[uint64]bool{1: true, 2: true, 3: false, 4: true, 5: false, 6: false} {
		if got := q.MayChange(rpc, id); got != want {
			t.Errorf("MayChange(%d) = %v, want %v", id, got, want)
		}
	}
	if dest, err := q.Move(rpc, 4, 0, FromStart); err != nil || dest != 0 {
		t.Fatalf("Move = %d, %v; want 0", dest, err)
	}
	if got := lineIDs(q.Waiting(context.Background())); !slices.Equal(got, []uint64{4, 3, 2, 5}) {
		t.Errorf("the whole line is %v, want [4 3 2 5]: 4 and 2 swap, 3 and 5 stay", got)
	}
	if _, err := q.Move(rpc, 3, 0, FromStart); !errors.Is(err, auth.ErrDenied) {
		t.Errorf("the RPC caller moved another user's job: %v", err)
	}
	if err := q.SetMaxActive(rpc, 5); !errors.Is(err, auth.ErrDenied) {
		t.Errorf("the RPC caller set the active jobs: %v", err)
	}
	if err := q.SetLimit(rpc, 5); !errors.Is(err, auth.ErrDenied) {
		t.Errorf("the RPC caller set the global limit: %v", err)
	}
	if err := q.SetMaxActive(context.Background(), 0); !errors.Is(err, ErrInvalid) {
		t.Errorf("SetMaxActive(0): %v, want ErrInvalid", err)
	}
}

// A job may be given its file's name; a path is refused.
func TestQueue_Create_Name(t *testing.T) {
	path, data := testFile(t, 1<<20, 77)
	srv := startServers(t, path, 0, 0)
	q, err := Open(Config{StateDir: t.TempDir(), Logger: quietLog()})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	ctx := context.Background()
	for _, bad := range []string{"a/b", "..", ".", "a\x00b", strings.Repeat("n", 256)} {
		if _, _, err := q.Create(ctx, api.CreateRequest{Sources: serverSources(srv...), Dir: t.TempDir(), Name: bad}); !errors.Is(err, ErrInvalid) {
			t.Errorf("name %.20q: %v, want ErrInvalid", bad, err)
		}
	}
	dir := t.TempDir()
	j, _, err := q.Create(ctx, api.CreateRequest{Sources: serverSources(srv...), Dir: dir, Name: "renamed.bin"})
	if err != nil {
		t.Fatal(err)
	}
	if j.Name != "renamed.bin" {
		t.Errorf("the new job's name is %q", j.Name)
	}
	waitFor(t, "the job completed", time.Minute, func() bool {
		j, _ = q.Job(j.ID)
		return j.State == api.StateCompleted
	})
	got, err := os.ReadFile(filepath.Join(dir, "renamed.bin"))
	if err != nil || string(got) != string(data) || j.Path != filepath.Join(dir, "renamed.bin") {
		t.Errorf("the file is not at %s as it should be (path %s): %v", filepath.Join(dir, "renamed.bin"), j.Path, err)
	}
}

// An RPC caller may download only into its directories and those in
// them, wherever a symbolic link points; nothing is written elsewhere.
func TestQueue_Create_RPCDirs(t *testing.T) {
	q, err := Open(Config{StateDir: t.TempDir(), Logger: quietLog()})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	downloads, outside := t.TempDir(), t.TempDir()
	sub := filepath.Join(downloads, "sub")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(downloads, "escape")); err != nil {
		t.Fatal(err)
	}
	rpc := auth.WithPeer(context.Background(), auth.RPCPeer(downloads))
	for i, tc := range []struct {
		dir string
		ok  bool
	}{
		{downloads, true},
		{sub, true},
		{outside, false},
		{filepath.Join(downloads, "escape"), false},
		{filepath.Join(sub, ".."), true},
	} {
		src := []string{"idm://127.0.0.1:" + string(rune('1'+i))}
		j, _, err := q.Create(rpc, api.CreateRequest{Sources: src, Dir: tc.dir})
		switch {
		case tc.ok && err != nil:
			t.Errorf("%s: %v", tc.dir, err)
		case tc.ok && j.Dir != filepath.Clean(tc.dir):
			t.Errorf("%s: the job's directory is %s", tc.dir, j.Dir)
		case !tc.ok && !errors.Is(err, auth.ErrDenied):
			t.Errorf("%s: %v, want a refusal", tc.dir, err)
		case !tc.ok && !strings.Contains(err.Error(), "not one of idmd's download directories ("+downloads+")"):
			t.Errorf("%s: the refusal does not say where to download: %v", tc.dir, err)
		}
	}
	if names := dirNames(t, outside); len(names) != 0 {
		t.Errorf("idmd wrote %v outside the download directories", names)
	}
}
