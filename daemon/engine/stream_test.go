package engine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/idmproject/idm/identity"
	"github.com/idmproject/idm/store"
	"github.com/idmproject/idm/transport/httpsrc"
)

// rangeless is an HTTP mirror that ignores Range, as some servers of
// generated or proxied files do: every answer is a 200 with the whole
// file. It sends its body in chunks of 16 KiB, a tick apart, and counts
// what it sends. The next cuts answers are cut off after cutAt bytes of
// body, the connection dropped. While honour is set (by the test, or by
// mend after a cut, until spoil), it serves ranges as a well-behaved
// mirror does.
type rangeless struct {
	data  []byte
	tick  time.Duration
	cutAt int64
	mend  bool
	other []byte // the file after a cut, when set: same size, other bytes
	spoil int64  // with honour set, the answers after this many ignore ranges again

	swapped atomic.Bool

	cuts     atomic.Int64
	honour   atomic.Bool
	requests atomic.Int64
	ranged   atomic.Int64 // requests answered with a 206
	sent     atomic.Int64 // body bytes sent
}

// modTime is the modification time the rangeless mirrors give their
// file.
var modTime = time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)

func (m *rangeless) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	m.requests.Add(1)
	data := m.data
	if m.swapped.Load() {
		data = m.other
	}
	if m.spoil > 0 && m.requests.Load() > m.spoil {
		m.honour.Store(false)
	}
	if m.honour.Load() {
		cw := &sentCounter{ResponseWriter: w, n: &m.sent}
		http.ServeContent(cw, r, "", modTime, bytes.NewReader(data))
		if cw.status == http.StatusPartialContent {
			m.ranged.Add(1)
		}
		return
	}
	w.Header().Set("Content-Length", fmt.Sprint(len(data)))
	w.Header().Set("Last-Modified", modTime.Format(http.TimeFormat))
	w.WriteHeader(http.StatusOK)
	limit, cut := int64(len(data)), m.cuts.Add(-1) >= 0
	if cut {
		limit = m.cutAt
	}
	const chunk = 16 << 10
	for off := int64(0); off < limit; off += chunk {
		n, err := w.Write(data[off:min(off+chunk, limit)])
		m.sent.Add(int64(n))
		if err != nil {
			return
		}
		w.(http.Flusher).Flush()
		if m.tick > 0 {
			select {
			case <-time.After(m.tick):
			case <-r.Context().Done():
				return
			}
		}
	}
	if cut {
		if c, _, err := http.NewResponseController(w).Hijack(); err == nil {
			c.Close()
		}
		if m.mend {
			m.honour.Store(true)
		}
		if m.other != nil {
			m.swapped.Store(true)
		}
	}
}

// sentCounter counts the body bytes and keeps the status a handler
// writes.
type sentCounter struct {
	http.ResponseWriter
	n      *atomic.Int64
	status int
}

func (c *sentCounter) WriteHeader(code int) {
	c.status = code
	c.ResponseWriter.WriteHeader(code)
}

func (c *sentCounter) Write(p []byte) (int, error) {
	if c.status == 0 {
		c.status = http.StatusOK
	}
	n, err := c.ResponseWriter.Write(p)
	c.n.Add(int64(n))
	return n, err
}

// startRangeless starts m on a loopback port for the test.
func startRangeless(t *testing.T, m *rangeless) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(m)
	t.Cleanup(srv.Close)
	return srv
}

// mirrorSource is an HTTP mirror as the engine sees a source, as the job
// queue makes it.
type mirrorSource struct{ *httpsrc.Source }

func (s mirrorSource) Open(ctx context.Context) (Conn, error) { return s.Source.Open(ctx) }

// newMirror returns the mirror at url as a source, with a client of its
// own whose idle connections close when the test ends.
func newMirror(t *testing.T, url string) Source {
	t.Helper()
	client := httpsrc.NewClient()
	t.Cleanup(client.CloseIdleConnections)
	s, err := httpsrc.New(url, httpsrc.Options{Client: client, StallTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return mirrorSource{s}
}

// writeCounter counts, through Transfer.onWrite, the bytes written to
// each piece of the partial file.
type writeCounter struct {
	mu      sync.Mutex
	written map[int]int64
}

func newWriteCounter(tr *Transfer) *writeCounter {
	wc := &writeCounter{written: map[int]int64{}}
	tr.onWrite = func(piece, n int) {
		wc.mu.Lock()
		wc.written[piece] += int64(n)
		wc.mu.Unlock()
	}
	return wc
}

func (wc *writeCounter) of(piece int) int64 {
	wc.mu.Lock()
	defer wc.mu.Unlock()
	return wc.written[piece]
}

// growingJournal fails the test if a checkpoint's bitmap lacks a piece an
// earlier one had: a verified piece stays verified.
type growingJournal struct {
	Journal
	t *testing.T

	mu   sync.Mutex
	last *store.Bitmap
	seen int // checkpoints with a bitmap
}

func (j *growingJournal) Checkpoint(c *store.Checkpoint) error {
	j.check(c)
	return j.Journal.Checkpoint(c)
}

func (j *growingJournal) Published(path string, c *store.Checkpoint) error {
	j.check(c)
	return j.Journal.Published(path, c)
}

func (j *growingJournal) check(c *store.Checkpoint) {
	if c.Done == nil {
		return
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.last != nil {
		for i := range j.last.Len() {
			if j.last.Has(i) && !c.Done.Has(i) {
				j.t.Errorf("piece %d lost its bit in a checkpoint", i)
			}
		}
	}
	j.last = c.Done.Clone()
	j.seen++
}

// streamJob creates a job of the one mirror at url, and its transfer.
func streamJob(t *testing.T, db *store.DB, url string) (*store.Record, *Transfer) {
	t.Helper()
	src := newMirror(t, url)
	rec := newJob(t, db, []string{src.String()})
	return rec, withSources(t, db, rec.ID, src)
}

// checkEachPieceWrittenOnce fails the test unless every piece of the
// job's file was written exactly once, whole.
func checkEachPieceWrittenOnce(t *testing.T, db *store.DB, id uint64, wc *writeCounter) {
	t.Helper()
	rec, err := db.Get(id)
	if err != nil {
		t.Fatal(err)
	}
	f, err := rec.File(nil)
	if err != nil || f == nil {
		t.Fatalf("the job's file: %v", err)
	}
	for i := range f.Count() {
		if _, n := f.Piece(i); wc.of(i) != n {
			t.Errorf("piece %d: %d bytes written, want its %d once", i, wc.of(i), n)
		}
	}
}

// A lone mirror that ignores ranges serves the job as one stream: the
// file is right and published, each piece written once, and the job says
// its piece hashes are its own.
func TestTransfer_Run_Stream(t *testing.T) {
	checkLeaks(t)
	_, want := testFile(t, 3<<20+777, 90)
	m := &rangeless{data: want}
	srv := startRangeless(t, m)
	db := openDB(t, "")
	rec, tr := streamJob(t, db, srv.URL+"/dir/plain.bin")
	wc := newWriteCounter(tr)
	if err := tr.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := checkResult(t, db, rec.ID, want)
	if filepath.Base(got.Path) != "plain.bin" || !got.OwnPieces {
		t.Errorf("published as %s, own pieces %v; want plain.bin, hashed by the engine", got.Path, got.OwnPieces)
	}
	checkEachPieceWrittenOnce(t, db, rec.ID, wc)
	// The answer to the first request, which described the file, is the
	// file: nothing is asked twice.
	if n, sent := m.requests.Load(), m.sent.Load(); n != 1 || sent != int64(len(want)) {
		t.Errorf("%d requests, %d bytes sent; want one request for the %d bytes", n, sent, len(want))
	}
	if p := tr.Progress(); !p.OwnPieces || p.Sources[0].State != SourceUp {
		t.Errorf("progress: own pieces %v, source %s", p.OwnPieces, p.Sources[0].State)
	}
}

// The mirror drops the connection 40 % into the stream: the next stream
// starts from the first byte again, reads the pieces verified before
// without writing them, and takes the rest. No piece loses its bit.
func TestTransfer_Run_Stream_CutMidway(t *testing.T) {
	checkLeaks(t)
	const size = 4 << 20
	_, want := testFile(t, size, 91)
	m := &rangeless{data: want, cutAt: size * 2 / 5}
	m.cuts.Store(1)
	srv := startRangeless(t, m)
	db := openDB(t, "")
	rec, tr := streamJob(t, db, srv.URL+"/plain.bin")
	wc := newWriteCounter(tr)
	j := &growingJournal{Journal: tr.Journal, t: t}
	tr.Journal = j
	if err := tr.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := checkResult(t, db, rec.ID, want)
	f, _ := got.File(nil)
	// Every piece verified before the cut was written once; the one cut
	// short was written in part, then whole.
	again := 0
	for i := range f.Count() {
		off, n := f.Piece(i)
		switch w := wc.of(i); {
		case w == n:
		case off < m.cutAt && off+n > m.cutAt && w == n+(m.cutAt-off):
			again++
		default:
			t.Errorf("piece %d at %d: %d bytes written, want %d", i, off, w, n)
		}
	}
	if again > 1 {
		t.Errorf("%d pieces written again, want at most the one cut short", again)
	}
	st := sourceStat(t, got, got.Sources[0])
	if st.Bytes != size || st.Fetched != size+m.cutAt || st.Errors != 1 {
		t.Errorf("the mirror: %d bytes verified, %d fetched, %d errors; want %d, %d (the file and its first 40 %% again), 1", st.Bytes, st.Fetched, st.Errors, size, size+m.cutAt)
	}
	if n := m.requests.Load(); n != 2 {
		t.Errorf("%d requests, want the first, cut, and one more", n)
	}
	if j.seen == 0 {
		t.Error("no checkpoint with a bitmap")
	}
}

// A mirror that starts to honour ranges after the stream was cut is
// asked for ranges again: the pieces verified from the stream are not
// fetched twice.
func TestTransfer_Run_Stream_RangesAgain(t *testing.T) {
	checkLeaks(t)
	const size = 4 << 20
	_, want := testFile(t, size, 92)
	m := &rangeless{data: want, cutAt: size/2 + 1000, mend: true}
	m.cuts.Store(1)
	srv := startRangeless(t, m)
	db := openDB(t, "")
	rec, tr := streamJob(t, db, srv.URL+"/plain.bin")
	wc := newWriteCounter(tr)
	if err := tr.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := checkResult(t, db, rec.ID, want)
	if m.ranged.Load() < 2 {
		t.Errorf("%d ranges asked after the mirror honoured them, want the description and more", m.ranged.Load())
	}
	// The cut piece's first part was sent twice; nothing else was.
	f, _ := got.File(nil)
	if extra := m.sent.Load() - size; extra < 0 || extra > f.PieceLen+1 {
		t.Errorf("%d bytes sent beyond the file's %d, want at most a piece", extra, size)
	}
	for i := range f.Count() {
		if off, n := f.Piece(i); wc.of(i) > n && !(off < m.cutAt && off+n > m.cutAt) {
			t.Errorf("piece %d written again", i)
		}
	}
}

// The mirror's file changes while the stream is cut, to one of the same
// size and date: the pieces verified before, read again, no longer match
// their recorded hashes, and the mirror is set aside rather than have
// the end of one file written after the start of another.
func TestTransfer_Run_Stream_FileChangedOnMirror(t *testing.T) {
	checkLeaks(t)
	const size = 2 << 20
	_, want := testFile(t, size, 95)
	_, other := testFile(t, size, 96)
	m := &rangeless{data: want, cutAt: size / 2, other: other}
	m.cuts.Store(1)
	srv := startRangeless(t, m)
	db := openDB(t, "")
	rec, tr := streamJob(t, db, srv.URL+"/plain.bin")
	j := &growingJournal{Journal: tr.Journal, t: t}
	tr.Journal = j
	wc := newWriteCounter(tr)
	err := tr.Run(context.Background())
	if !errors.Is(err, ErrNoSource) || !strings.Contains(err.Error(), "quarantined") {
		t.Fatalf("Run = %v, want ErrNoSource, the mirror quarantined", err)
	}
	got, _ := db.Get(rec.ID)
	if got.Path != "" {
		t.Fatalf("published %s, half one file and half another", got.Path)
	}
	f, _ := got.File(nil)
	bm, _ := db.Bitmap(rec.ID)
	for i := range f.Count() {
		off, n := f.Piece(i)
		if w := wc.of(i); (off+n <= m.cutAt && (w != n || !bm.Has(i))) || (off >= m.cutAt && w != 0) {
			t.Errorf("piece %d at %d: %d bytes written, verified %v; want only the first file's, kept", i, off, w, bm.Has(i))
		}
	}
}

// The job's only mirror honours ranges, then stops: the range it was
// asked for is refused, and the next connection reads the file as one
// stream, writing none of the pieces the ranges brought again.
func TestTransfer_Run_Stream_RangesStop(t *testing.T) {
	checkLeaks(t)
	const size = 4 << 20
	_, want := testFile(t, size, 97)
	m := &rangeless{data: want, spoil: 20}
	m.honour.Store(true)
	srv := startRangeless(t, m)
	db := openDB(t, "")
	rec, tr := streamJob(t, db, srv.URL+"/plain.bin")
	wc := newWriteCounter(tr)
	if err := tr.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := checkResult(t, db, rec.ID, want)
	checkEachPieceWrittenOnce(t, db, rec.ID, wc)
	if st := sourceStat(t, got, got.Sources[0]); st.Failed || st.Errors != 1 || !strings.Contains(st.LastError, "ignores ranges") {
		t.Errorf("the mirror: %+v; want one error, that it ignores ranges, and not set aside", st)
	}
	if m.ranged.Load() < 10 {
		t.Errorf("%d ranges served, want the first ones", m.ranged.Load())
	}
}

// A killed engine mid-stream: the next run rechecks the partial file
// against the piece hashes it recorded, streams the file from its first
// byte, and writes only the pieces it did not record.
func TestTransfer_Run_Stream_CrashAndRestart(t *testing.T) {
	checkLeaks(t)
	const size = 6 << 20
	_, want := testFile(t, size, 93)
	m := &rangeless{data: want, tick: 2 * time.Millisecond}
	srv := startRangeless(t, m)
	dbPath := filepath.Join(t.TempDir(), "state.db")
	db, err := store.Open(dbPath, nil)
	if err != nil {
		t.Fatal(err)
	}
	src := newMirror(t, srv.URL+"/plain.bin")
	rec := newJob(t, db, []string{src.String()})
	tr := withSources(t, db, rec.ID, src)
	wait := runTransfer(t, context.Background(), tr)
	waitFor(t, "a third verified", time.Minute, func() bool { return tr.Progress().Verified >= size/3 })
	waitFor(t, "a checkpoint with pieces", time.Minute, func() bool {
		bm, _ := db.Bitmap(rec.ID)
		return bm != nil && bm.Count() > 0
	})
	tr.crash()
	if err := wait(); !errors.Is(err, errCrash) {
		t.Fatalf("crashed Run = %v", err)
	}
	recorded, err := db.Bitmap(rec.ID)
	if err != nil {
		t.Fatal(err)
	}
	db.Close() // no clean mark

	db = openDB(t, dbPath)
	tr2 := withSources(t, db, rec.ID, newMirror(t, srv.URL+"/plain.bin"))
	tr2.Job.Recheck = !db.WasClean()
	wc := newWriteCounter(tr2)
	if err := tr2.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := checkResult(t, db, rec.ID, want)
	f, _ := got.File(nil)
	if recorded.Count() == 0 || recorded.Count() == f.Count() {
		t.Fatalf("%d of %d pieces recorded at the crash, want some", recorded.Count(), f.Count())
	}
	for i := range f.Count() {
		_, n := f.Piece(i)
		switch w := wc.of(i); {
		case recorded.Has(i) && w != 0:
			t.Errorf("piece %d, recorded at the crash, written again (%d bytes)", i, w)
		case !recorded.Has(i) && w != n:
			t.Errorf("piece %d, not recorded, %d bytes written after the restart, want %d", i, w, n)
		}
	}
}

// overrunning is a source that sends only the whole file and sends more
// than its size: the engine writes nothing past the size.
type overrunning struct {
	data, extra []byte
}

func (s *overrunning) String() string                     { return "test://overrunning" }
func (s *overrunning) Open(context.Context) (Conn, error) { return &overrunningConn{s}, nil }

type overrunningConn struct{ s *overrunning }

// wholeErr is a source's refusal of a range, with the whole file in its
// place.
type wholeErr struct{ d *identity.Description }

func (e wholeErr) Error() string                { return "ignores ranges" }
func (e wholeErr) Permanent() bool              { return true }
func (e wholeErr) Whole() *identity.Description { return e.d }
func (c *overrunningConn) Close() error         { return nil }
func (c *overrunningConn) Fetch(context.Context, int64, int64, io.Writer) error {
	return wholeErr{}
}

func (c *overrunningConn) Describe(context.Context) (*identity.Description, error) {
	return nil, wholeErr{&identity.Description{Name: "over.bin", Summary: identity.Summary{Size: int64(len(c.s.data))}}}
}

func (c *overrunningConn) Stream(_ context.Context, w io.Writer) error {
	_, err := w.Write(append(append([]byte(nil), c.s.data...), c.s.extra...))
	return err
}

// A stream longer than the file, or shorter, never completes the job:
// nothing is written past the size, the last piece is not taken from a
// stream that did not end at the size, and a short one is retried.
func TestTransfer_Run_Stream_LongAndShort(t *testing.T) {
	checkLeaks(t)
	const size = 1<<20 + 5
	_, want := testFile(t, size, 94)

	t.Run("longer than the file", func(t *testing.T) {
		db := openDB(t, "")
		src := &overrunning{data: want, extra: []byte("and more")}
		rec := newJob(t, db, []string{src.String()})
		tr := withSources(t, db, rec.ID, src)
		wc := newWriteCounter(tr)
		err := tr.Run(context.Background())
		if !errors.Is(err, ErrNoSource) || !strings.Contains(err.Error(), "longer than the file") {
			t.Fatalf("Run = %v, want ErrNoSource for a stream past the size", err)
		}
		got, _ := db.Get(rec.ID)
		if got.Path != "" {
			t.Fatalf("published %s from a stream longer than the file", got.Path)
		}
		fi, err := os.Stat(filepath.Join(got.Dir, got.Part))
		if err != nil || fi.Size() != size {
			t.Errorf("the partial file: %v, %v; want %d bytes, nothing past the size", fi, err, size)
		}
		f, _ := got.File(nil)
		bm, _ := db.Bitmap(rec.ID)
		if last := f.Count() - 1; bm.Has(last) {
			t.Error("the last piece was taken from a stream that did not end there")
		}
		var total int64
		for i := range f.Count() {
			total += wc.of(i)
		}
		if total != size {
			t.Errorf("%d bytes written, want the %d of the file and no more", total, size)
		}
	})

	t.Run("short, then whole", func(t *testing.T) {
		m := &rangeless{data: want, cutAt: size - 100}
		m.cuts.Store(2)
		srv := startRangeless(t, m)
		db := openDB(t, "")
		rec, tr := streamJob(t, db, srv.URL+"/plain.bin")
		if err := tr.Run(context.Background()); err != nil {
			t.Fatal(err)
		}
		got := checkResult(t, db, rec.ID, want)
		st := sourceStat(t, got, got.Sources[0])
		if st.Errors != 2 || !strings.Contains(st.LastError, "body ended after") {
			t.Errorf("the mirror: %d errors, last %q; want two short bodies", st.Errors, st.LastError)
		}
	})
}
