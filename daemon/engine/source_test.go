package engine

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"github.com/idmproject/idm/identity"
	"github.com/idmproject/idm/store"
)

// sizeOnly is a source written here that knows nothing of the file but
// its size and name, and serves ranges of it, a chunk every tick, as a
// plain HTTP mirror would: the engine must cut the file and hash the
// pieces itself.
type sizeOnly struct {
	name string
	data []byte
	tick time.Duration

	mu     sync.Mutex
	served map[int64]int // how many times each offset was served
	opens  atomic.Int64
}

func (s *sizeOnly) String() string { return "test://size-only/" + s.name }

func (s *sizeOnly) Open(context.Context) (Conn, error) {
	s.opens.Add(1)
	return &sizeOnlyConn{s: s}, nil
}

type sizeOnlyConn struct {
	s      *sizeOnly
	closed atomic.Bool
}

func (c *sizeOnlyConn) Describe(context.Context) (*identity.Description, error) {
	return &identity.Description{Name: c.s.name, Summary: identity.Summary{Size: int64(len(c.s.data))}}, nil
}

func (c *sizeOnlyConn) Fetch(ctx context.Context, off, n int64, w io.Writer) error {
	c.s.mu.Lock()
	c.s.served[off]++
	c.s.mu.Unlock()
	for done := int64(0); done < n; {
		if c.closed.Load() {
			return errors.New("closed")
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(c.s.tick):
		}
		k := min(n-done, 64<<10)
		if _, err := w.Write(c.s.data[off+done : off+done+k]); err != nil {
			return err
		}
		done += k
	}
	return nil
}

func (c *sizeOnlyConn) Close() error { c.closed.Store(true); return nil }

// withSources returns a transfer of job id with the given sources in
// place of those the store names.
func withSources(t testing.TB, db *store.DB, id uint64, srcs ...Source) *Transfer {
	t.Helper()
	rec, err := db.Get(id)
	if err != nil {
		t.Fatal(err)
	}
	raw := rec.Sources
	rec.Sources = nil
	for _, s := range srcs {
		rec.Sources = append(rec.Sources, s.String())
	}
	if len(raw) != len(srcs) || raw[0] != rec.Sources[0] {
		if err := db.Put(rec); err != nil {
			t.Fatal(err)
		}
	}
	job := Job{ID: id, Sources: srcs, Dir: rec.Dir, DirID: rec.DirID, Name: rec.Name, Part: rec.Part, PartStamp: rec.PartStamp,
		OwnPieces: rec.OwnPieces, Expect: identity.Hash(rec.Expect), Verified: rec.Verified, Fetched: rec.Fetched, Stats: rec.SourceStats}
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
	return &Transfer{Job: job, Journal: testJournal{db, id}, Logger: quietLog(), FlushInterval: 50 * time.Millisecond}
}

// A source that knows only the file's size: the engine cuts the file into
// pieces and records its own hash of each as it is written; killed half
// way, it finds on restart exactly the pieces whose hashes it recorded,
// checks them against the disk, and fetches again only the others and the
// one damaged meanwhile.
func TestTransfer_Run_SizeOnlySource(t *testing.T) {
	checkLeaks(t)
	_, want := testFile(t, 8<<20, 60)
	src := &sizeOnly{name: "plain.bin", data: want, tick: 2 * time.Millisecond, served: map[int64]int{}}
	dbPath := filepath.Join(t.TempDir(), "state.db")
	db, err := store.Open(dbPath, nil)
	if err != nil {
		t.Fatal(err)
	}
	rec := newJob(t, db, []string{src.String()})
	tr := withSources(t, db, rec.ID, src)
	wait := runTransfer(t, context.Background(), tr)
	waitFor(t, "half verified", time.Minute, func() bool { return tr.Progress().Verified >= 4<<20 })
	waitFor(t, "a checkpoint with pieces", time.Minute, func() bool {
		h, _ := db.Hashes(rec.ID)
		return h != nil
	})
	tr.crash()
	if err := wait(); !errors.Is(err, errCrash) {
		t.Fatalf("crashed Run = %v", err)
	}
	crashed, err := db.Get(rec.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !crashed.OwnPieces || crashed.Root != ([32]byte{}) {
		t.Fatalf("record after the crash: own pieces %v, root %x; want own pieces and no root", crashed.OwnPieces, crashed.Root)
	}
	hashes, _ := db.Hashes(rec.ID)
	bm, _ := db.Bitmap(rec.ID)
	f, err := crashed.File(hashes)
	if err != nil {
		t.Fatal(err)
	}
	if bm.Count() == 0 || bm.Count() == f.Count() {
		t.Fatalf("%d of %d pieces recorded at the crash, want some", bm.Count(), f.Count())
	}
	var damaged = -1
	for i := range f.Count() {
		if !bm.Has(i) {
			continue
		}
		off, n := f.Piece(i)
		if !bytes.Equal(f.PieceHash(i), identity.BLAKE3.Sum(want[off:off+n])) {
			t.Fatalf("recorded hash of piece %d is not the hash of its bytes", i)
		}
		damaged = i
	}
	db.Close() // no clean mark

	// The last recorded piece rots on disk before the restart.
	part := filepath.Join(crashed.Dir, crashed.Part)
	pf, err := os.OpenFile(part, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	off, _ := f.Piece(damaged)
	pf.WriteAt([]byte("rot"), off+10)
	pf.Close()

	db = openDB(t, dbPath)
	src.mu.Lock()
	before := map[int64]int{}
	for k, v := range src.served {
		before[k] = v
	}
	src.mu.Unlock()
	tr2 := withSources(t, db, rec.ID, src)
	tr2.Job.Recheck = true
	if err := tr2.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	checkResult(t, db, rec.ID, want)
	src.mu.Lock()
	defer src.mu.Unlock()
	for i := range f.Count() {
		off, _ := f.Piece(i)
		again := src.served[off] - before[off]
		switch {
		case i == damaged && again != 1:
			t.Errorf("damaged piece %d served %d times after the restart, want once", i, again)
		case i != damaged && bm.Has(i) && again != 0:
			t.Errorf("piece %d, recorded and intact, served %d times after the restart", i, again)
		case !bm.Has(i) && again != 1:
			t.Errorf("piece %d, not recorded, served %d times after the restart, want once", i, again)
		}
	}
}

// permanentErr is what a source says when it can never serve the job.
type permanentErr struct{}

func (permanentErr) Error() string   { return "unsupported protocol version 9" }
func (permanentErr) Permanent() bool { return true }

// failing is a source that answers every connection with a permanent
// error.
type failing struct{ opens atomic.Int64 }

func (f *failing) String() string { return "test://failing" }
func (f *failing) Open(context.Context) (Conn, error) {
	f.opens.Add(1)
	return nil, permanentErr{}
}

// A source whose error is permanent is set aside for the job with its
// reason, at once and for good: it is not asked again, whatever the
// others do.
func TestTransfer_Run_PermanentErrorNotRetried(t *testing.T) {
	checkLeaks(t)
	path, want := testFile(t, 4<<20, 61)
	srv := startServers(t, path, 64<<10, 4e6)
	db := openDB(t, "")
	rec := newJob(t, db, serverSources(srv...))
	good := loadJob(t, db, rec.ID, 500*time.Millisecond).Sources[0]
	bad := &failing{}
	tr := withSources(t, db, rec.ID, bad, good)
	wait := runTransfer(t, context.Background(), tr)
	waitFor(t, "the failing source set aside", time.Minute, func() bool {
		p := tr.Progress()
		return len(p.Sources) > 0 && p.Sources[0].State == SourceFailed
	})
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	got := checkResult(t, db, rec.ID, want)
	st := sourceStat(t, got, bad.String())
	if !st.Failed || st.LastError == "" || st.Errors != 1 {
		t.Errorf("failing source recorded as %+v, want failed once with its reason", st)
	}
	if n := bad.opens.Load(); n != 1 {
		t.Errorf("the failing source was opened %d times, want once", n)
	}
}

// A rate limit holds over every short window, not only on average: the
// bytes are paced as they are read.
func TestTransfer_Run_RateLimitHolds(t *testing.T) {
	checkLeaks(t)
	const limit = 4e6
	path, _ := testFile(t, 30e6, 62)
	srv := startServers(t, path, 64<<10, 0, 0) // unthrottled: only the limit holds it back
	db := openDB(t, "")
	rec := newJob(t, db, serverSources(srv...))
	tr := fastTransfer(t, db, rec.ID)
	tr.Limiters = []*rate.Limiter{rate.NewLimiter(limit, 64<<10)}
	ctx, stop := context.WithCancel(context.Background())
	wait := runTransfer(t, ctx, tr)
	type sample struct {
		at    time.Time
		bytes int64
	}
	var samples []sample
	deadline := time.Now().Add(6 * time.Second)
	for time.Now().Before(deadline) {
		samples = append(samples, sample{time.Now(), tr.Progress().Fetched})
		time.Sleep(10 * time.Millisecond)
	}
	stop()
	wait()
	// Over the last 5 s: within 10 % of the limit.
	first, last := samples[0], samples[len(samples)-1]
	for _, s := range samples {
		if last.at.Sub(s.at) <= 5*time.Second {
			first = s
			break
		}
	}
	avg := float64(last.bytes-first.bytes) / last.at.Sub(first.at).Seconds()
	t.Logf("%.2f MB/s over %v", avg/1e6, last.at.Sub(first.at).Round(time.Millisecond))
	if avg > 1.1*limit || avg < 0.9*limit {
		t.Errorf("%.2f MB/s over 5 s under a limit of %.0f MB/s, want within 10 %%", avg/1e6, limit/1e6)
	}
	// No 250 ms window carries more than twice the limit's share.
	for i, a := range samples {
		for _, b := range samples[i+1:] {
			if b.at.Sub(a.at) > 250*time.Millisecond {
				break
			}
			if n := b.bytes - a.bytes; float64(n) > 2*limit/4 {
				t.Fatalf("%d bytes in %v, more than twice the limit's %d", n, b.at.Sub(a.at).Round(time.Millisecond), int64(limit/4))
			}
		}
	}
}

// typed is a sizeOnly source that says what type of document its file
// is, as an HTTP mirror's Content-Type does.
type typed struct {
	*sizeOnly
	media string
}

func (s typed) MediaType() string { return s.media }

// A Typed source's media type is recorded with its statistics, by the
// very checkpoint that publishes the file, and the published file can be
// opened again, as long as it is the same file.
func TestTransfer_Run_TypedSourceRecorded(t *testing.T) {
	checkLeaks(t)
	_, want := testFile(t, 300<<10, 61)
	src := typed{&sizeOnly{name: "list.meta4", data: want, served: map[int64]int{}}, "application/metalink4+xml"}
	db := openDB(t, "")
	rec := newJob(t, db, []string{src.String()})
	if err := withSources(t, db, rec.ID, src).Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	done := checkResult(t, db, rec.ID, want)
	if len(done.SourceStats) != 1 || done.SourceStats[0].MediaType != src.media {
		t.Errorf("stats %+v; want the source's media type recorded", done.SourceStats)
	}
	name := filepath.Base(done.Path)
	f, err := OpenPublished(done.Dir, done.DirID, name, done.PartStamp.ID)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(f)
	f.Close()
	if !bytes.Equal(got, want) {
		t.Errorf("OpenPublished read %d bytes, want the file's %d", len(got), len(want))
	}
	// Another file under its name is not the job's.
	other := filepath.Join(done.Dir, "other")
	if err := os.WriteFile(other, want, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(other, done.Path); err != nil {
		t.Fatal(err)
	}
	if f, err := OpenPublished(done.Dir, done.DirID, name, done.PartStamp.ID); err == nil {
		f.Close()
		t.Error("OpenPublished opened a file put in the published one's place")
	}
	if err := os.Symlink(other, filepath.Join(done.Dir, "link")); err != nil {
		t.Fatal(err)
	}
	if f, err := OpenPublished(done.Dir, done.DirID, "link", store.FileID{}); err == nil {
		f.Close()
		t.Error("OpenPublished followed a symlink")
	}
}
