package daemon

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/idmproject/idm/daemon/api"
	"github.com/idmproject/idm/store"
	"github.com/idmproject/idm/transport"
)

// Transfer defaults.
const (
	// DefaultConns is the number of connections per source.
	DefaultConns = 1
	// DefaultDepth is how many requests each connection keeps outstanding,
	// so a fast link never idles between segments.
	DefaultDepth = 2
	// DefaultFlushInterval is how often the bitmap is written to the store.
	DefaultFlushInterval = time.Second
	// slowFactor and slowChecks: a source below a fifth of the median
	// speed for three checks in a row gives its segments back.
	slowFactor = 5
	slowChecks = 3
	// monitorInterval is how often speeds are compared.
	monitorInterval = time.Second
)

// ErrNoSource reports a job none of whose sources can serve it: each was
// rejected or quarantined.
var ErrNoSource = errors.New("no usable source")

// errCrash, as the cause of Run's context, makes Run return at once
// without writing anything more to the store: tests and benchmarks use
// it to stand in for a killed process.
var errCrash = errors.New("simulated crash")

// Transfer downloads one job of the store to completion: it pulls segments
// from every source at once, verifies each, writes it at its offset in the
// partial file, and keeps the job's record and bitmap in the store. Set
// the fields, then call Run once.
type Transfer struct {
	// DB holds the job. Required.
	DB *store.DB
	// Job is the job's ID in DB. Required.
	Job uint64
	// Conns is the number of connections per source (default 1).
	Conns int
	// Depth is the number of requests outstanding per connection
	// (default 2).
	Depth int
	// StallTimeout drops a connection on which no byte arrives for this
	// long (default transport.DefaultStallTimeout, 10 s).
	StallTimeout time.Duration
	// FlushInterval is how often the bitmap is written (default 1 s).
	FlushInterval time.Duration
	// Recheck hashes the whole partial file before starting, trusting
	// neither the bitmap nor the disk: set it after an unclean shutdown.
	Recheck bool
	// Limiters cap the download rate (a job's own limit and the global
	// one, say); nil entries are skipped.
	Limiters []*rate.Limiter
	// Logger receives one line per job event. Nil means slog.Default().
	Logger *slog.Logger
	// OnChange, if set, is called when a source's state changes, from the
	// goroutine that changed it; it must not block.
	OnChange func()

	t atomic.Pointer[transfer]
}

// transfer is the state of one Run.
type transfer struct {
	db         *store.DB
	log        *slog.Logger
	stall      time.Duration
	depth      int
	conns      int
	flushEvery time.Duration
	limiters   []*rate.Limiter
	onChange   func()
	cancel     context.CancelCauseFunc
	// complete stops the workers once every segment is verified, so
	// none waits out a back-off for a source no longer needed.
	complete context.CancelFunc

	mu         sync.Mutex // guards everything up to the next blank line
	rec        *store.Record
	man        *transport.Manifest
	manSummary transport.Summary // man's summary
	dir        *jobDir
	legacy     bool // the job was left by an idmd without partial file names of its own
	sched      *scheduler
	file       *os.File
	part       *segmentFile
	fatal      error
	done       bool
	stopped    bool // Run is over: a late vote timer must not decide
	// A new job's file is decided by the sources' votes (identity.go).
	votes       map[int]transport.Summary
	voteTimer   *time.Timer
	winner      *transport.Summary
	candidate   *transport.Manifest // the first answer's whole manifest
	decided     chan struct{}       // closed once the winner is decided
	fetching    bool                // a source is reading a whole manifest
	fetchDone   chan struct{}       // closed and replaced when it is done
	known       chan struct{}       // closed once man is set, or identityErr
	identityErr error

	sources  []*source
	workers  []*worker
	verified atomic.Int64
	fetched  atomic.Int64
	meter    meter
}

// Run downloads until the file is complete and in place (nil), ctx is
// cancelled (context.Cause(ctx), after the state is flushed), or the job
// cannot go on (ErrNoSource, or a local error such as a full disk). While
// every source is down it keeps probing: a job waits, it does not fail.
func (tr *Transfer) Run(ctx context.Context) error {
	rec, err := tr.DB.Get(tr.Job)
	if err != nil {
		return err
	}
	if rec.State == api.StateCompleted {
		return nil
	}
	t := &transfer{
		db:         tr.DB,
		log:        tr.Logger,
		stall:      cmp.Or(tr.StallTimeout, transport.DefaultStallTimeout),
		depth:      cmp.Or(tr.Depth, DefaultDepth),
		conns:      cmp.Or(tr.Conns, DefaultConns),
		flushEvery: cmp.Or(tr.FlushInterval, DefaultFlushInterval),
		limiters:   tr.Limiters,
		onChange:   tr.OnChange,
		rec:        rec,
		votes:      map[int]transport.Summary{},
		decided:    make(chan struct{}),
		fetchDone:  make(chan struct{}),
		known:      make(chan struct{}),
	}
	if t.log == nil {
		t.log = slog.Default()
	}
	t.log = t.log.With("job", rec.ID)
	for i, addr := range rec.Sources {
		src, err := transport.ParseSource(addr)
		if err != nil {
			return err
		}
		if s, ok := src.(*transport.IDMSource); ok {
			s.Dialer.StallTimeout = t.stall
		}
		s := &source{idx: i, src: src, state: api.SourceConnecting}
		for _, st := range rec.SourceStats {
			if st.Source == addr {
				s.verified, s.fetched, s.errors, s.corrupt = st.Bytes, st.Fetched, st.Errors, st.Corrupt
				s.lastErr = st.LastError
				switch {
				case st.Quarantined:
					s.state = api.SourceQuarantined
				case st.Rejected:
					s.state = api.SourceRejected
				}
			}
		}
		t.sources = append(t.sources, s)
	}
	t.fetched.Store(rec.Fetched)
	defer t.closeFiles()
	if rec.Name == "" && rec.Content != ([32]byte{}) {
		rec.Name = SanitizeName("") // identity set without a name: the fallback
	}
	if rec.Content != ([32]byte{}) {
		m, err := t.storedManifest()
		if err == nil {
			err = t.prepare(m, tr.Recheck)
		}
		if err != nil {
			t.rec.LastError = err.Error()
			t.flush()
			return err
		}
		close(t.known) // known from the store: no vote
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	t.cancel = cancel
	tr.t.Store(t)
	for {
		front := newFrontier()
		if !t.finished() {
			t.download(ctx, front)
		}
		if errors.Is(context.Cause(ctx), errCrash) {
			return errCrash
		}
		t.mu.Lock()
		fatal := t.fatal
		t.mu.Unlock()
		switch {
		case fatal != nil:
			t.rec.LastError = fatal.Error()
			t.closeFile()
			t.flush()
			return fatal
		case t.finished():
			err := t.finish(ctx, front)
			if errors.Is(err, errRefetch) {
				continue
			}
			if errors.Is(err, errCrash) {
				return err
			}
			if err != nil {
				t.rec.LastError = err.Error()
			}
			t.flush()
			return err
		case ctx.Err() != nil:
			t.flush()
			t.closeFile()
			return context.Cause(ctx)
		}
		err = fmt.Errorf("%w: %s", ErrNoSource, t.sourceReasons())
		t.rec.LastError = err.Error()
		t.flush()
		t.closeFile()
		return err
	}
}

// download runs one round of workers, with the flusher, the speed
// monitor and the frontier beside them, until every segment is verified,
// ctx ends, or no source is left.
func (t *transfer) download(ctx context.Context, front *frontier) {
	wctx, complete := context.WithCancel(ctx)
	defer complete()
	t.mu.Lock()
	t.complete = complete
	t.workers = t.workers[:0]
	var wg sync.WaitGroup
	for _, s := range t.sources {
		for range t.conns {
			w := &worker{t: t, id: len(t.workers), src: s, head: -1}
			t.workers = append(t.workers, w)
			wg.Go(func() { w.run(wctx) })
		}
	}
	t.mu.Unlock()
	bg, stopBG := context.WithCancel(ctx)
	var bgWG sync.WaitGroup
	bgWG.Go(func() {
		every(bg, t.flushEvery, func() {
			if err := t.flush(); err != nil {
				t.log.Error("flush job state", "err", err)
			}
		})
	})
	bgWG.Go(func() { every(bg, monitorInterval, t.monitor) })
	bgWG.Go(func() { front.run(bg, t) })
	wg.Wait()
	stopBG()
	bgWG.Wait()
	t.mu.Lock()
	t.stopped = true
	if t.voteTimer != nil {
		t.voteTimer.Stop()
	}
	t.mu.Unlock()
}

// finished reports whether every segment is verified.
func (t *transfer) finished() bool {
	t.mu.Lock()
	sched := t.sched
	t.mu.Unlock()
	return sched != nil && sched.finished()
}

// storedManifest reads the job's manifest from the store.
func (t *transfer) storedManifest() (*transport.Manifest, error) {
	rec := t.rec
	hashes, err := t.db.Hashes(rec.ID)
	if err != nil {
		return nil, err
	}
	m := &transport.Manifest{Name: rec.Name, Size: rec.Size, SegmentSize: rec.SegmentSize, Content: rec.Content}
	for h := range slices.Chunk(hashes, transport.HashSize) {
		m.Segments = append(m.Segments, transport.Hash(h))
	}
	if err := m.Validate(); err != nil {
		return nil, fmt.Errorf("job %d: stored manifest: %w", rec.ID, err)
	}
	return m, nil
}

// crash makes a running Run return without another write, as if the
// process had been killed.
func (tr *Transfer) crash() {
	if t := tr.t.Load(); t != nil {
		t.cancel(errCrash)
	}
}

// Update changes the job's record while Run owns it, so the next flush
// writes the change instead of undoing it. It reports false when Run has
// not started; the caller then writes the store itself.
func (tr *Transfer) Update(fn func(*store.Record)) bool {
	t := tr.t.Load()
	if t == nil {
		return false
	}
	t.mu.Lock()
	fn(t.rec)
	t.mu.Unlock()
	return true
}

// final returns a copy of the job's record as Run last left it, or nil
// before Run.
func (tr *Transfer) final() *store.Record {
	t := tr.t.Load()
	if t == nil {
		return nil
	}
	rec, _ := t.record()
	return rec
}

// Progress returns a snapshot of the transfer; before Run it is empty.
func (tr *Transfer) Progress() api.Progress {
	t := tr.t.Load()
	if t == nil {
		return api.Progress{State: api.StateQueued, Time: time.Now()}
	}
	return t.progress(time.Now())
}

func (t *transfer) progress(now time.Time) api.Progress {
	p := api.Progress{
		Verified: t.verified.Load(),
		Fetched:  t.fetched.Load(),
		Speed:    t.meter.rate(now),
		Time:     now,
		State:    api.StateWaiting,
	}
	t.mu.Lock()
	p.Size = t.rec.Size
	done := t.done
	t.mu.Unlock()
	for _, s := range t.sources {
		sp := s.snapshot(now)
		if sp.State == api.SourceUp || sp.State == api.SourceConnecting {
			p.State = api.StateDownloading
		}
		p.Sources = append(p.Sources, sp)
	}
	if done {
		p.State = api.StateCompleted
	}
	return p
}

func (t *transfer) prepare(m *transport.Manifest, recheckAll bool) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.prepareLocked(m, recheckAll)
}

// prepareLocked opens the job's directory and partial file and builds
// the scheduler from the stored bitmap, or from the disk itself when
// recheckAll is set or the file changed since the job last left it.
func (t *transfer) prepareLocked(m *transport.Manifest, recheckAll bool) error {
	if err := t.openDirLocked(); err != nil {
		return err
	}
	f, fresh, changed, err := t.openPartLocked()
	if err != nil {
		return err
	}
	if err := sizePart(f, m.Size); err != nil {
		f.Close()
		return err
	}
	bm, err := t.db.Bitmap(t.rec.ID)
	if err != nil {
		f.Close()
		return err
	}
	switch {
	case fresh:
		bm = store.NewBitmap(len(m.Segments))
	case recheckAll || changed:
		start, before := time.Now(), bm.Count()
		if bm, err = recheck(context.Background(), f, m); err != nil {
			f.Close()
			return err
		}
		why := "unclean shutdown"
		if !recheckAll {
			why = "the file changed since the job stopped"
		}
		t.log.Info("rechecked partial file", "why", why, "segments_before", before,
			"segments_verified", bm.Count(), "took", time.Since(start).Round(time.Millisecond))
	}
	t.man, t.manSummary, t.file = m, m.Summary(), f
	t.useBitmapLocked(bm)
	return nil
}

// openDirLocked opens the job's directory, once.
func (t *transfer) openDirLocked() error {
	if t.dir != nil {
		return nil
	}
	dir, id, err := openJobDir(t.rec.Dir, t.rec.DirID)
	if err != nil {
		return err
	}
	t.dir, t.rec.DirID = dir, id
	return nil
}

// useBitmapLocked makes bm the set of verified segments, with a new
// scheduler and segment file over it.
func (t *transfer) useBitmapLocked(bm *store.Bitmap) {
	m := t.man
	var verified int64
	for i := range m.Segments {
		if bm.Has(i) {
			_, n := m.Segment(i)
			verified += n
		}
	}
	t.verified.Store(verified)
	t.part = newSegmentFile(t.file, m, bm)
	t.sched = newScheduler(bm, func(i int) int64 { _, n := m.Segment(i); return n }, t.estimate)
}

// estimate returns the recent speed of worker id's source.
func (t *transfer) estimate(id int) float64 { return t.workers[id].src.meter.rate(time.Now()) }

// throttle waits until every limiter allows n more bytes.
func (t *transfer) throttle(ctx context.Context, n int64) error {
	for _, l := range t.limiters {
		if l == nil || l.Limit() == rate.Inf {
			continue
		}
		for rem := n; rem > 0; {
			k := min(rem, int64(max(l.Burst(), 1)))
			if err := l.WaitN(ctx, int(k)); err != nil {
				return err
			}
			rem -= k
		}
	}
	return nil
}

// fail stops the transfer for a reason retrying cannot cure.
func (t *transfer) fail(err error) {
	t.mu.Lock()
	if t.fatal == nil {
		t.fatal = err
	}
	t.mu.Unlock()
	t.cancel(err)
}

func (t *transfer) sourcesChanged() {
	if t.onChange != nil {
		t.onChange()
	}
}

func (t *transfer) sourceReasons() string {
	var b []byte
	for i, s := range t.sources {
		sp := s.snapshot(time.Now())
		if i > 0 {
			b = append(b, "; "...)
		}
		b = fmt.Appendf(b, "%s %s: %s", sp.Source, sp.State, sp.LastError)
	}
	return string(b)
}

// flush writes the record and the bitmap in one transaction.
func (t *transfer) flush() error {
	rec, sched := t.record()
	if sched == nil {
		return t.db.Put(rec)
	}
	bm, _ := sched.snapshot()
	return t.db.Save(rec, bm)
}

// record returns the job's record as it stands, counters and sources'
// statistics included, and the scheduler (nil before the file is known).
func (t *transfer) record() (*store.Record, *scheduler) {
	p := t.progress(time.Now())
	t.mu.Lock()
	if t.file != nil {
		if st, err := stampFile(t.file); err == nil {
			t.rec.PartStamp = st
		}
	}
	rec := *t.rec
	sched := t.sched
	t.mu.Unlock()
	rec.Verified, rec.Fetched = p.Verified, p.Fetched
	rec.SourceStats = rec.SourceStats[:0:0]
	for i, s := range t.sources {
		s.mu.Lock()
		rec.SourceStats = append(rec.SourceStats, store.SourceStat{
			Source: rec.Sources[i], Bytes: s.verified, Fetched: s.fetched, Errors: s.errors,
			Corrupt: s.corrupt, Quarantined: s.state == api.SourceQuarantined, Rejected: s.state == api.SourceRejected,
			LastError: s.lastErr,
		})
		s.mu.Unlock()
	}
	return &rec, sched
}

// monitor compares the sources' speeds (once a second) and makes a
// source that stays under a fifth of the median give its segments back.
func (t *transfer) monitor() {
	t.mu.Lock()
	sched := t.sched
	t.mu.Unlock()
	if sched == nil {
		return
	}
	now := time.Now()
	var speeds []float64
	for _, s := range t.sources {
		s.mu.Lock()
		up := s.state == api.SourceUp
		s.mu.Unlock()
		if up {
			speeds = append(speeds, s.meter.rate(now))
		}
	}
	if len(speeds) < 2 {
		return
	}
	sort.Float64s(speeds)
	median := speeds[len(speeds)/2]
	if len(speeds)%2 == 0 {
		median = (speeds[len(speeds)/2-1] + median) / 2
	}
	for _, s := range t.sources {
		s.mu.Lock()
		slow := s.state == api.SourceUp && s.meter.rate(now)*slowFactor < median
		if slow {
			s.slow++
		} else {
			s.slow = 0
		}
		n := s.slow
		s.mu.Unlock()
		if n < slowChecks {
			continue
		}
		given := 0
		for _, w := range t.workers {
			if w.src == s {
				given += sched.giveBack(w.id)
			}
		}
		if given > 0 {
			t.log.Info("slow source gives segments back", "source", s.src.String(), "segments", given)
		}
	}
}

// closeFile closes the partial file, once the round that wrote it is
// over.
func (t *transfer) closeFile() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.file != nil {
		t.file.Close()
		t.file = nil
	}
}

// closeFiles closes the partial file and the job's directory when Run
// ends.
func (t *transfer) closeFiles() {
	t.closeFile()
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.dir != nil {
		t.dir.close()
		t.dir = nil
	}
}

// every calls fn every d until ctx ends.
func every(ctx context.Context, d time.Duration, fn func()) {
	tick := time.NewTicker(d)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
			fn()
		case <-ctx.Done():
			return
		}
	}
}
