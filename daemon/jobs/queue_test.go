package jobs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/idmproject/idm/daemon/api"
	"github.com/idmproject/idm/daemon/engine"
	"github.com/idmproject/idm/identity"
	"github.com/idmproject/idm/store"
)

func TestOpen_OneQueuePerStateDir(t *testing.T) {
	dir := t.TempDir()
	d, err := Open(Config{StateDir: dir, Logger: quietLog()})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	start := time.Now()
	if _, err := Open(Config{StateDir: dir, Logger: quietLog()}); err == nil || !strings.Contains(err.Error(), "another idmd") {
		t.Fatalf("second Open: %v", err)
	}
	if time.Since(start) > 5*time.Second {
		t.Errorf("second Open took %v to refuse", time.Since(start))
	}
}

// A limit set on a running job is the job's at once, in the answer and in
// its transfer, and for good: the transfer's checkpoints after it do not
// write the old one back, and a new queue on the same store has it.
func TestQueue_SetJobLimit_Running(t *testing.T) {
	path, _ := testFile(t, 8<<20, 41)
	srv := startServers(t, path, 256<<10, 1e6)
	dir := t.TempDir()
	q, err := Open(Config{StateDir: dir, Logger: quietLog(), FlushInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	j, _, err := q.Create(context.Background(), api.CreateRequest{Sources: serverSources(srv...), Dir: t.TempDir(), Limit: 4 << 20})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the job under way", time.Minute, func() bool {
		j, _ := q.Job(j.ID)
		return j.State == api.StateDownloading && j.Progress.Verified > 0
	})
	got, err := q.SetJobLimit(context.Background(), j.ID, 300<<10)
	if err != nil {
		t.Fatal(err)
	}
	if got.Limit != 300<<10 || got.State != api.StateDownloading {
		t.Errorf("SetJobLimit answered limit %d, state %s; want %d while downloading", got.Limit, got.State, 300<<10)
	}
	q.mu.Lock()
	lim := q.jobs[j.ID].run.limiter.Limit()
	q.mu.Unlock()
	if lim != 300<<10 {
		t.Errorf("the transfer's limiter is at %v B/s, want %d", lim, 300<<10)
	}
	// Checkpoints after the change keep it.
	before, _ := q.db.Get(j.ID)
	waitFor(t, "two more checkpoints", time.Minute, func() bool {
		r, _ := q.db.Get(j.ID)
		return r.Updated.After(before.Updated) && r.Verified > before.Verified
	})
	if r, _ := q.db.Get(j.ID); r.Limit != 300<<10 {
		t.Errorf("after the transfer's checkpoints the stored limit is %d, want %d", r.Limit, 300<<10)
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	q, err = Open(Config{StateDir: dir, Logger: quietLog()})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	if got, _ := q.Job(j.ID); got.Limit != 300<<10 {
		t.Errorf("after a restart the limit is %d, want %d", got.Limit, 300<<10)
	}
}

// stuckSource is a source whose fetches ignore every signal to stop, as a
// read from a hung network file system would.
type stuckSource struct {
	release  chan struct{}
	fetching chan struct{} // closed by the first fetch
	once     sync.Once
}

func (s *stuckSource) String() string { return "test://stuck" }
func (s *stuckSource) Open(context.Context) (engine.Conn, error) {
	return stuckConn{s}, nil
}

type stuckConn struct{ s *stuckSource }

func (c stuckConn) Describe(context.Context) (*identity.Description, error) {
	return &identity.Description{Name: "stuck.bin", Summary: identity.Summary{Size: 1 << 20}}, nil
}

func (c stuckConn) Fetch(context.Context, int64, int64, io.Writer) error {
	c.s.once.Do(func() { close(c.s.fetching) })
	<-c.s.release
	return errors.New("released")
}

func (c stuckConn) Close() error { return nil }

// Close waits for the transfers for a bounded time: one that does not
// stop is left behind, Close says which, and the store is not marked
// clean, so the next queue rechecks the job's partial file.
func TestQueue_Close_Bounded(t *testing.T) {
	stuck := &stuckSource{release: make(chan struct{}), fetching: make(chan struct{})}
	dir := t.TempDir()
	q, err := Open(Config{StateDir: dir, Logger: quietLog(), CloseTimeout: 200 * time.Millisecond,
		openSource: func(string) (engine.Source, error) { return stuck, nil }})
	if err != nil {
		t.Fatal(err)
	}
	j, _, err := q.Create(context.Background(), api.CreateRequest{Sources: []string{"idm://127.0.0.1:1"}, Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-stuck.fetching:
	case <-time.After(time.Minute):
		t.Fatal("the job never fetched")
	}
	closed := make(chan error, 1)
	go func() { closed <- q.Close() }()
	select {
	case err = <-closed:
	case <-time.After(time.Minute):
		close(stuck.release)
		t.Fatal("Close did not return while a transfer was stuck")
	}
	if err == nil || !strings.Contains(err.Error(), fmt.Sprint(j.ID)) {
		t.Errorf("Close = %v, want an error naming job %d", err, j.ID)
	}
	// Once the fetch returns, the transfer ends; the store was left open
	// and unmarked for the process's exit.
	close(stuck.release)
	q.mu.Lock()
	run := q.jobs[j.ID].run
	q.mu.Unlock()
	if run != nil {
		<-run.done
	}
	if err := q.db.Close(); err != nil {
		t.Fatal(err)
	}
	db, err := store.Open(filepath.Join(dir, dbName), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if db.WasClean() {
		t.Error("the store is marked clean after a transfer did not stop")
	}
}

// Reads never wait on the disk: while every write to the store is held
// up, as by an fsync that takes its time, listing jobs, reading one and
// following the event stream still answer, for a running job too.
func TestQueue_ReadsDoNotWaitOnWrites(t *testing.T) {
	path, _ := testFile(t, 8<<20, 43)
	srv := startServers(t, path, 256<<10, 1e6)
	q, err := Open(Config{StateDir: t.TempDir(), Logger: quietLog(), FlushInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	running, _, err := q.Create(context.Background(), api.CreateRequest{Sources: serverSources(srv...), Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the job under way", time.Minute, func() bool {
		j, _ := q.Job(running.ID)
		return j.Progress.Verified > 0
	})
	// bbolt takes one writer at a time: this one holds every other write
	// (the transfer's checkpoints, the queue's changes) until released.
	held, release := make(chan struct{}), make(chan struct{})
	writeDone := make(chan struct{})
	go func() {
		defer close(writeDone)
		q.db.Change(running.ID, func(*store.Record) error {
			close(held)
			<-release
			return nil
		})
	}()
	<-held
	// A caller's change now waits for the disk, and holds the queue's
	// write lock while it does.
	pauseDone := make(chan struct{})
	go func() {
		defer close(pauseDone)
		q.SetJobLimit(context.Background(), running.ID, 1<<20)
	}()
	sub, err := q.Subscribe(0)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	answered := make(chan error, 1)
	go func() {
		for range 20 {
			if all := q.Jobs(); len(all) != 1 || all[0].Progress.Verified == 0 {
				answered <- fmt.Errorf("Jobs = %+v", all)
				return
			}
			if _, err := q.Job(running.ID); err != nil {
				answered <- err
				return
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_, err := sub.Next(ctx)
		answered <- err
	}()
	select {
	case err := <-answered:
		if err != nil {
			t.Error(err)
		}
	case <-time.After(time.Minute):
		t.Error("reads waited on a write held up")
	}
	close(release)
	<-writeDone
	<-pauseDone
}

// Pieces says which pieces are verified: nothing before the file is
// known, nor before the job has started; a running job's from its transfer's memory, ahead of the store;
// a paused one's as stored; a completed one's, all. The view tells the
// piece length and count the bits are of.
func TestQueue_Pieces(t *testing.T) {
	const pieceLen = 256 << 10
	path, _ := testFile(t, 4<<20+1000, 42)
	srv := startServers(t, path, pieceLen, 1e6)
	// No checkpoint but when the transfer stops: the store lags behind.
	state := t.TempDir()
	db, err := store.Open(filepath.Join(state, dbName), nil)
	if err != nil {
		t.Fatal(err)
	}
	// A job whose file is known before it starts, as a Metalink's is.
	known := &store.Record{Sources: []string{"idm://127.0.0.1:1"}, Dir: t.TempDir(), State: api.StatePaused}
	known.SetFile(&identity.File{Size: 1 << 20, PieceLen: 64 << 10, Algo: identity.BLAKE3}, "known.bin", true)
	if err := db.Create(known, nil); err != nil {
		t.Fatal(err)
	}
	db.Close()
	q, err := Open(Config{StateDir: state, Logger: quietLog(), FlushInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	ctx := context.Background()
	if view, _ := q.Job(known.ID); view.Pieces != 16 || view.PieceLength != 64<<10 {
		t.Errorf("a job whose file is known: the view says %d pieces of %d bytes", view.Pieces, view.PieceLength)
	}
	if bm, err := q.Pieces(known.ID); bm != nil || err != nil {
		t.Errorf("a job not started: pieces %v, %v", bm, err)
	}

	down, _, err := q.Create(ctx, api.CreateRequest{Sources: []string{"idm://127.0.0.1:1"}, Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if bm, err := q.Pieces(down.ID); bm != nil || err != nil || down.PieceLength != 0 || down.Pieces != 0 {
		t.Errorf("a job whose file is not known: pieces %v, %v; view %d of %d bytes", bm, err, down.Pieces, down.PieceLength)
	}

	j, _, err := q.Create(ctx, api.CreateRequest{Sources: serverSources(srv...), Dir: t.TempDir(), Limit: 512 << 10})
	if err != nil {
		t.Fatal(err)
	}
	const count = (4<<20 + 1000 + pieceLen - 1) / pieceLen
	var bm *store.Bitmap
	waitFor(t, "a piece verified", time.Minute, func() bool {
		bm, err = q.Pieces(j.ID)
		return err == nil && bm != nil && bm.Count() > 0
	})
	view, _ := q.Job(j.ID)
	if bm.Len() != count || view.Pieces != count || view.PieceLength != pieceLen {
		t.Fatalf("%d bits; the view says %d pieces of %d bytes; want %d of %d", bm.Len(), view.Pieces, view.PieceLength, count, pieceLen)
	}
	if stored, err := q.db.Bitmap(j.ID); err != nil || stored.Count() >= bm.Count() {
		t.Errorf("the store has %d pieces, the transfer %d: Pieces read the store (%v)", stored.Count(), bm.Count(), err)
	}

	if _, err := q.Pause(ctx, j.ID); err != nil {
		t.Fatal(err)
	}
	bm, err = q.Pieces(j.ID)
	stored, _ := q.db.Bitmap(j.ID)
	if err != nil || bm == nil || bm.Count() == 0 || bm.Count() == count || !slices.Equal(setBits(bm), setBits(stored)) {
		t.Errorf("paused: pieces %v (%v), stored %v", setBits(bm), err, setBits(stored))
	}
	view, _ = q.Job(j.ID)
	if view.Pieces != count || view.PieceLength != pieceLen {
		t.Errorf("paused: the view says %d pieces of %d bytes", view.Pieces, view.PieceLength)
	}

	if _, err := q.Resume(ctx, j.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := q.SetJobLimit(ctx, j.ID, 0); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the job complete", time.Minute, func() bool {
		j, _ := q.Job(j.ID)
		return j.State == api.StateCompleted
	})
	if bm, err := q.Pieces(j.ID); err != nil || bm == nil || bm.Len() != count || !bm.Complete() {
		t.Errorf("completed: pieces %v, %v", bm, err)
	}

	if _, err := q.Pieces(1000); !errors.Is(err, ErrNotFound) {
		t.Errorf("an unknown job: %v", err)
	}
}

// setBits lists the set bits of bm, none for nil.
func setBits(bm *store.Bitmap) []int {
	var out []int
	if bm == nil {
		return nil
	}
	for i := range bm.Len() {
		if bm.Has(i) {
			out = append(out, i)
		}
	}
	return out
}
