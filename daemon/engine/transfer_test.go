package engine

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/idmproject/idm/identity"
	"github.com/idmproject/idm/store"
	"github.com/idmproject/idm/transport"
)

// fastTransfer returns a Transfer with short time-outs, so failures show
// within a test's patience.
func fastTransfer(t testing.TB, db *store.DB, id uint64) *Transfer {
	tr := newTransfer(t, db, id, 500*time.Millisecond)
	tr.FlushInterval = 50 * time.Millisecond
	return tr
}

// sourceStat returns the stored counters of the source at addr.
func sourceStat(t *testing.T, rec *store.Record, addr string) store.SourceStat {
	t.Helper()
	for _, s := range rec.SourceStats {
		if s.Source == addr {
			return s
		}
	}
	t.Fatalf("no stats for %s", addr)
	return store.SourceStat{}
}

func TestTransfer_Run_FourServers(t *testing.T) {
	checkLeaks(t)
	path, want := testFile(t, 8<<20+12345, 1)
	srv := startServers(t, path, 0, 0, 0, 0, 0)
	db := openDB(t, "")
	rec := newJob(t, db, serverSources(srv...))
	if err := fastTransfer(t, db, rec.ID).Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := checkResult(t, db, rec.ID, want)
	var sum int64
	for _, s := range got.SourceStats {
		if s.Bytes == 0 {
			t.Errorf("source %s delivered nothing", s.Source)
		}
		sum += s.Bytes
	}
	if sum != int64(len(want)) {
		t.Errorf("sources delivered %d verified bytes in all, want %d", sum, len(want))
	}
	if filepath.Base(got.Path) != "video.bin" {
		t.Errorf("file published as %s, want video.bin", got.Path)
	}
}

func TestTransfer_Run_EmptyFile(t *testing.T) {
	path, want := testFile(t, 0, 1)
	srv := startServers(t, path, 0, 0, 0)
	db := openDB(t, "")
	rec := newJob(t, db, serverSources(srv...))
	if err := fastTransfer(t, db, rec.ID).Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	checkResult(t, db, rec.ID, want)
}

func TestTransfer_Run_NeverOverwrites(t *testing.T) {
	path, want := testFile(t, 1<<20, 2)
	srv := startServers(t, path, 0, 0)
	db := openDB(t, "")
	rec := newJob(t, db, serverSources(srv...))
	for _, name := range []string{"video.bin", "video (1).bin"} {
		if err := os.WriteFile(filepath.Join(rec.Dir, name), []byte("mine"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := fastTransfer(t, db, rec.ID).Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := checkResult(t, db, rec.ID, want)
	if filepath.Base(got.Path) != "video (2).bin" {
		t.Errorf("published as %q, want video (2).bin", got.Path)
	}
	for _, name := range []string{"video.bin", "video (1).bin"} {
		if b, _ := os.ReadFile(filepath.Join(rec.Dir, name)); string(b) != "mine" {
			t.Errorf("%s was overwritten", name)
		}
	}
}

// The faster server must do proportionally more of the work.
func TestTransfer_Run_FasterServerDoesMore(t *testing.T) {
	checkLeaks(t)
	path, want := testFile(t, 6<<20, 3)
	// An unthrottled server beside one held to 500 kB/s: the gap is wide
	// enough that no load on the machine running the test closes it.
	srv := startServers(t, path, 64<<10, 0, 500e3)
	db := openDB(t, "")
	rec := newJob(t, db, serverSources(srv...))
	if err := fastTransfer(t, db, rec.ID).Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := checkResult(t, db, rec.ID, want)
	fast, slow := got.SourceStats[0].Bytes, got.SourceStats[1].Bytes
	t.Logf("fast %d bytes, slow %d bytes", fast, slow)
	if fast < 4*slow {
		t.Errorf("unthrottled server delivered %d bytes, 500 kB/s server %d: want the fast one to do far more", fast, slow)
	}
}

func TestTransfer_Run_ServerShutDownMidSegment(t *testing.T) {
	checkLeaks(t)
	path, want := testFile(t, 8<<20, 4)
	srv := startServers(t, path, 1<<20, 3e6, 3e6, 3e6, 3e6)
	db := openDB(t, "")
	rec := newJob(t, db, serverSources(srv...))
	tr := fastTransfer(t, db, rec.ID)
	wait := runTransfer(t, context.Background(), tr)
	// 1 MiB segments at 3 MB/s take a third of a second: stopping once a
	// quarter is verified lands in the middle of one.
	waitFor(t, "a quarter verified", time.Minute, func() bool { return tr.Progress().Verified >= 2<<20 })
	srv[1].Stop()
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	got := checkResult(t, db, rec.ID, want)
	if st := sourceStat(t, got, "idm://"+srv[1].Addr); st.Errors == 0 || st.LastError == "" {
		t.Errorf("stopped server shows no error: %+v", st)
	}
}

func TestTransfer_Run_AcceptsButNeverSends(t *testing.T) {
	checkLeaks(t)
	path, want := testFile(t, 4<<20, 5)
	srv := startServers(t, path, 0, 0, 2e6)
	hole := newFaultProxy(t, srv[0].Addr)
	hole.blackhole = true
	hole.start()
	db := openDB(t, "")
	rec := newJob(t, db, sourcesOf(hole.addr(), srv[1].Addr))
	if err := fastTransfer(t, db, rec.ID).Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := checkResult(t, db, rec.ID, want)
	if st := sourceStat(t, got, "idm://"+hole.addr()); st.Bytes != 0 || !strings.Contains(st.LastError, "connect") {
		t.Errorf("silent server: %+v, want no bytes and a connect error", st)
	}
}

func TestTransfer_Run_StallHalfwayThroughRange(t *testing.T) {
	checkLeaks(t)
	path, want := testFile(t, 4<<20, 6)
	srv := startServers(t, path, 256<<10, 0, 2e6)
	stall := newFaultProxy(t, srv[0].Addr)
	stall.stallAfter = 20<<10 + 128<<10 // the manifest, then half a segment
	stall.start()
	db := openDB(t, "")
	rec := newJob(t, db, sourcesOf(stall.addr(), srv[1].Addr))
	if err := fastTransfer(t, db, rec.ID).Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := checkResult(t, db, rec.ID, want)
	if st := sourceStat(t, got, "idm://"+stall.addr()); st.Bytes != 0 || !strings.Contains(st.LastError, "stalled") {
		t.Errorf("stalling server: %+v, want no verified bytes and a stall error", st)
	}
	// What arrived of the cut-off segment counts as fetched: the API's
	// fetched is every byte received.
	if st := sourceStat(t, got, "idm://"+stall.addr()); st.Fetched < 64<<10 {
		t.Errorf("stalling server: fetched %d bytes, want the half segment it sent counted", st.Fetched)
	}
}

func TestTransfer_Run_CorruptSegments(t *testing.T) {
	checkLeaks(t)
	path, want := testFile(t, 4<<20, 7)
	m, err := transport.BuildManifest(path, 64<<10)
	if err != nil {
		t.Fatal(err)
	}
	// Two bad segments: refetched elsewhere, the source stays in use.
	// They are in the middle of the file, which the fast source reaches
	// while the slow one still works on its first segments: at the
	// start, either may be handed segments 0 and 1.
	bad := startServer(t, corruptCopy(t, want, path, 20*64<<10+10, 40*64<<10+7), m, 0)
	good := startServer(t, path, m, 1e6)
	db := openDB(t, "")
	rec := newJob(t, db, serverSources(bad, good))
	if err := fastTransfer(t, db, rec.ID).Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := checkResult(t, db, rec.ID, want)
	st := sourceStat(t, got, "idm://"+bad.Addr)
	// After its first bad segment the source is down for a moment, and
	// the other may fetch the second bad one first.
	if st.Corrupt < 1 || st.Corrupt > 2 || st.Quarantined || st.Bytes == 0 {
		t.Errorf("source with two bad segments: %+v, want 1 or 2 corrupt, still used, not quarantined", st)
	}
}

func TestTransfer_Run_QuarantineAfterThreeCorrupt(t *testing.T) {
	checkLeaks(t)
	path, want := testFile(t, 4<<20, 8)
	m, err := transport.BuildManifest(path, 64<<10)
	if err != nil {
		t.Fatal(err)
	}
	var offs []int64
	for i := range int64(64) {
		offs = append(offs, i*64<<10+3)
	}
	bad := startServer(t, corruptCopy(t, want, path, offs...), m, 0)
	good := startServer(t, path, m, 2e6)
	db := openDB(t, "")
	rec := newJob(t, db, serverSources(bad, good))
	tr := fastTransfer(t, db, rec.ID)
	if err := tr.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := checkResult(t, db, rec.ID, want)
	st := sourceStat(t, got, "idm://"+bad.Addr)
	if !st.Quarantined || st.Corrupt != corruptLimit || !strings.Contains(st.LastError, "quarantined") {
		t.Errorf("source with every segment bad: %+v, want quarantined after %d with the reason", st, corruptLimit)
	}
	if p := tr.Progress(); p.Sources[0].State != SourceQuarantined {
		t.Errorf("source state %q, want quarantined", p.Sources[0].State)
	}
}

func TestTransfer_Run_RejectsDifferentFile(t *testing.T) {
	checkLeaks(t)
	path, want := testFile(t, 2<<20, 9)
	other, _ := testFile(t, 2<<20, 10)
	good := startServers(t, path, 0, 1e6)[0]
	wrong := startServers(t, other, 0, 0)[0]
	db := openDB(t, "")
	rec := newJob(t, db, serverSources(good, wrong))
	if err := fastTransfer(t, db, rec.ID).Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := checkResult(t, db, rec.ID, want)
	st := sourceStat(t, got, "idm://"+wrong.Addr)
	if st.Bytes != 0 || !strings.Contains(st.LastError, "different file") {
		t.Errorf("source with another file: %+v, want rejected as a different file", st)
	}
}

func TestTransfer_Run_NoUsableSource(t *testing.T) {
	path, _ := testFile(t, 1<<20, 11)
	other, _ := testFile(t, 1<<20, 12)
	b := startServers(t, other, 0, 0)[0]
	db := openDB(t, "")
	// The job already knows its file: its one source, which holds
	// another, may not change it.
	m, _ := transport.BuildManifest(path, 0)
	rec := newJob(t, db, serverSources(b))
	if err := db.SetIdentity(rec.ID, m.File(), m.Name, false); err != nil {
		t.Fatal(err)
	}
	err := fastTransfer(t, db, rec.ID).Run(context.Background())
	if !errors.Is(err, ErrNoSource) {
		t.Fatalf("Run = %v, want ErrNoSource", err)
	}
}

func TestTransfer_Run_AllServersDownThenBack(t *testing.T) {
	checkLeaks(t)
	path, want := testFile(t, 8<<20, 13)
	srv := startServers(t, path, 1<<20, 4e6, 4e6)
	db := openDB(t, "")
	rec := newJob(t, db, serverSources(srv...))
	tr := fastTransfer(t, db, rec.ID)
	wait := runTransfer(t, context.Background(), tr)
	waitFor(t, "a quarter verified", time.Minute, func() bool { return tr.Progress().Verified >= 2<<20 })
	for _, s := range srv {
		s.Stop()
	}
	waitFor(t, "the job waiting", 10*time.Second, func() bool { return tr.Progress().Phase == Waiting })
	// Every source retried and failed twice more: the job must keep
	// waiting, not fail.
	before := tr.Progress()
	waitFor(t, "every source retried twice", 30*time.Second, func() bool {
		p := tr.Progress()
		if p.Phase != Waiting {
			t.Fatalf("phase %s while every server is down, want waiting", p.Phase)
		}
		for i, s := range p.Sources {
			if s.Errors < before.Sources[i].Errors+2 {
				return false
			}
		}
		return true
	})
	for _, s := range srv {
		if err := s.Start(); err != nil {
			t.Fatal(err)
		}
	}
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	checkResult(t, db, rec.ID, want)
}

// A killed engine leaves the store without its last flush; the next run
// finds its way back from the store and the partial file.
func TestTransfer_Run_CrashAndRestart(t *testing.T) {
	checkLeaks(t)
	path, want := testFile(t, 8<<20, 14)
	srv := startServers(t, path, 256<<10, 4e6, 4e6)
	dbPath := filepath.Join(t.TempDir(), "state.db")
	db, err := store.Open(dbPath, nil)
	if err != nil {
		t.Fatal(err)
	}
	rec := newJob(t, db, serverSources(srv...))
	tr := fastTransfer(t, db, rec.ID)
	wait := runTransfer(t, context.Background(), tr)
	waitFor(t, "half verified", time.Minute, func() bool { return tr.Progress().Verified >= 4<<20 })
	tr.crash()
	if err := wait(); !errors.Is(err, errCrash) {
		t.Fatalf("crashed Run = %v", err)
	}
	db.Close() // no MarkClean: the next open sees an unclean shutdown

	db = openDB(t, dbPath)
	if db.WasClean() {
		t.Fatal("store reports a clean shutdown after a crash")
	}
	tr2 := fastTransfer(t, db, rec.ID)
	tr2.Job.Recheck = !db.WasClean()
	if err := tr2.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	checkResult(t, db, rec.ID, want)
	// What reached the partial file before the crash is found again by
	// the recheck, flushed or not: only the segments in flight at the
	// crash (two per connection) and end-game duplicates are fetched
	// twice. The servers count what they sent, partial segments too.
	again := srv[0].BytesSent() + srv[1].BytesSent() - int64(len(want))
	t.Logf("fetched twice: %d bytes of %d", again, len(want))
	if limit := int64(6 * 256 << 10); again > limit {
		t.Errorf("%d bytes fetched twice, want at most %d", again, limit)
	}
}

// The test the issue asks for: flush the bitmap, damage the partial file
// behind the engine's back, restart, and see exactly the damaged segments
// (and those never fetched) fetched again.
func TestTransfer_Run_DamagedPartialFile(t *testing.T) {
	checkLeaks(t)
	const segSize = 64 << 10
	path, want := testFile(t, 4<<20, 15)
	srv := startServers(t, path, segSize, 2e6)
	db := openDB(t, "")
	rec := newJob(t, db, serverSources(srv...))
	tr := fastTransfer(t, db, rec.ID)
	ctx, pause := context.WithCancel(context.Background())
	wait := runTransfer(t, ctx, tr)
	waitFor(t, "half verified", time.Minute, func() bool { return tr.Progress().Verified >= 2<<20 })
	pause() // a clean stop flushes the bitmap
	if err := wait(); !errors.Is(err, context.Canceled) {
		t.Fatalf("paused Run = %v", err)
	}
	bm, err := db.Bitmap(rec.ID)
	if err != nil {
		t.Fatal(err)
	}
	flushed, err := db.Get(rec.ID)
	if err != nil {
		t.Fatal(err)
	}
	// Damage three segments the bitmap calls complete.
	part := filepath.Join(rec.Dir, flushed.Part)
	f, err := os.OpenFile(part, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	damaged := map[int]bool{}
	for i := 0; i < bm.Len() && len(damaged) < 3; i += 7 {
		if bm.Has(i) {
			damaged[i] = true
			f.WriteAt([]byte("rot"), int64(i)*segSize+100)
		}
	}
	f.Close()
	if len(damaged) != 3 {
		t.Fatalf("only %d complete segments to damage", len(damaged))
	}
	missing := int64(0)
	for i := range bm.Len() {
		if !bm.Has(i) || damaged[i] {
			missing += segSize
		}
	}

	tr2 := fastTransfer(t, db, rec.ID)
	tr2.Job.Recheck = true
	if err := tr2.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := checkResult(t, db, rec.ID, want)
	// One source, so no duplicates: what it delivered now is exactly what
	// was missing.
	if again := got.SourceStats[0].Bytes - flushed.SourceStats[0].Bytes; again != missing {
		t.Errorf("second run verified %d bytes, want exactly the %d missing or damaged", again, missing)
	}
	if again := got.Fetched - flushed.Fetched; again != missing {
		t.Errorf("second run fetched %d bytes, want exactly the %d missing or damaged", again, missing)
	}
}

// Sources that disagree: the file most of them hold wins, even when the
// odd one is given first.
func TestTransfer_Run_MajorityDecidesIdentity(t *testing.T) {
	checkLeaks(t)
	path, want := testFile(t, 2<<20, 16)
	other, _ := testFile(t, 2<<20, 17)
	wrong := startServers(t, other, 0, 0)[0]
	good := startServers(t, path, 0, 1e6, 1e6)
	db := openDB(t, "")
	rec := newJob(t, db, serverSources(wrong, good[0], good[1]))
	if err := fastTransfer(t, db, rec.ID).Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := checkResult(t, db, rec.ID, want)
	if st := sourceStat(t, got, "idm://"+wrong.Addr); st.Bytes != 0 || !strings.Contains(st.LastError, "different file") {
		t.Errorf("the odd source: %+v, want it rejected", st)
	}
}

// slowJournal holds the journal's calls named in hold until released, as
// a disk that takes its time to sync would.
type slowJournal struct {
	Journal
	hold    map[string]bool
	entered chan string
	release chan struct{}
}

func (j slowJournal) wait(call string) {
	if j.hold[call] {
		j.entered <- call
		<-j.release
	}
}

func (j slowJournal) Identified(f *identity.File, name string, own bool) error {
	j.wait("Identified")
	return j.Journal.Identified(f, name, own)
}

func (j slowJournal) Checkpoint(c *store.Checkpoint) error {
	j.wait("Checkpoint")
	return j.Journal.Checkpoint(c)
}

// Progress never waits on the journal: while the file's identity, or a
// checkpoint, is being written, the transfer still says where it is.
func TestTransfer_Progress_DoesNotWaitOnJournal(t *testing.T) {
	checkLeaks(t)
	for _, call := range []string{"Identified", "Checkpoint"} {
		t.Run(call, func(t *testing.T) {
			path, want := testFile(t, 4<<20, 71)
			srv := startServers(t, path, 256<<10, 2e6, 2e6)
			db := openDB(t, "")
			rec := newJob(t, db, serverSources(srv...))
			tr := fastTransfer(t, db, rec.ID)
			j := slowJournal{Journal: tr.Journal, hold: map[string]bool{call: true}, entered: make(chan string), release: make(chan struct{})}
			tr.Journal = j
			wait := runTransfer(t, context.Background(), tr)
			select {
			case <-j.entered:
			case <-time.After(time.Minute):
				t.Fatalf("no call to %s", call)
			}
			got := make(chan Progress, 1)
			go func() { got <- tr.Progress() }()
			select {
			case p := <-got:
				t.Logf("while %s is held: phase %s, %d bytes verified", call, p.Phase, p.Verified)
			case <-time.After(time.Minute):
				t.Errorf("Progress waited on the journal's %s", call)
			}
			// Let every later call through.
			go func() {
				for range j.entered {
				}
			}()
			close(j.release)
			if err := wait(); err != nil {
				t.Fatal(err)
			}
			close(j.entered)
			checkResult(t, db, rec.ID, want)
		})
	}
}

// Pieces tells which pieces are verified, from the transfer's memory: a
// copy, which the transfer's own bits do not follow, that agrees with
// the verified bytes, and every piece once the file is published.
func TestTransfer_Pieces(t *testing.T) {
	checkLeaks(t)
	const segSize = 256 << 10
	path, want := testFile(t, 4<<20+1000, 72)
	srv := startServers(t, path, segSize, 1e6, 1e6)
	db := openDB(t, "")
	rec := newJob(t, db, serverSources(srv...))
	tr := fastTransfer(t, db, rec.ID)
	if bm := tr.Pieces(); bm != nil {
		t.Fatalf("Pieces before Run: %d bits", bm.Len())
	}
	wait := runTransfer(t, context.Background(), tr)
	var bm *store.Bitmap
	waitFor(t, "a piece verified", time.Minute, func() bool {
		bm = tr.Pieces()
		return bm != nil && bm.Count() > 0
	})
	const count = (4<<20 + 1000 + segSize - 1) / segSize
	if p := tr.Progress(); bm.Len() != count || p.PieceLen != segSize || p.Size != int64(len(want)) {
		t.Fatalf("%d pieces of %d bytes in a file of %d; want %d of %d in %d", bm.Len(), p.PieceLen, p.Size, count, segSize, len(want))
	}
	before := tr.Progress().Verified
	bm = tr.Pieces()
	after := tr.Progress().Verified
	var held int64
	for i := range bm.Len() {
		if bm.Has(i) {
			held += min(segSize, int64(len(want))-int64(i)*segSize)
		}
	}
	// A piece's bit is set just before its bytes are counted: each of
	// the two connections may be between the two.
	if held < before || held > after+2*segSize {
		t.Errorf("the pieces hold %d bytes; %d then %d were verified around the call", held, before, after)
	}
	for i := range bm.Len() {
		bm.Set(i)
	}
	if again := tr.Pieces(); again.Complete() && tr.Progress().Verified < int64(len(want)) {
		t.Error("setting the bits of the copy set the transfer's")
	}
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	if bm := tr.Pieces(); bm == nil || !bm.Complete() || bm.Len() != count {
		t.Errorf("after Run, Pieces is %v", bm)
	}
	checkResult(t, db, rec.ID, want)
}
