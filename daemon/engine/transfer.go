package engine

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/idmproject/idm/identity"
	"github.com/idmproject/idm/store"
)

// Transfer defaults.
const (
	// DefaultConns is the number of connections per source.
	DefaultConns = 1
	// DefaultDepth is how many requests each connection keeps outstanding,
	// so a fast link never idles between pieces.
	DefaultDepth = 2
	// DefaultFlushInterval is how often progress goes to the journal.
	DefaultFlushInterval = time.Second
	// slowFactor and slowChecks: a source below a fifth of the median
	// speed for three checks in a row gives its pieces back.
	slowFactor = 5
	slowChecks = 3
	// monitorInterval is how often speeds are compared.
	monitorInterval = time.Second
)

// ErrNoSource reports a job none of whose sources can serve it: each was
// rejected, quarantined or failed.
var ErrNoSource = errors.New("no usable source")

// errCrash, as the cause of Run's context, makes Run return at once
// without another call to the journal: tests and benchmarks use it to
// stand in for a killed process.
var errCrash = errors.New("simulated crash")

// Transfer downloads one job to completion: it pulls pieces from every
// source at once, verifies each, writes it at its offset in the partial
// file, and reports to the journal what must survive a crash. Set the
// fields, then call Run once.
type Transfer struct {
	// Job is what is known of the download. Required.
	Job Job
	// Journal records what the transfer must not lose. Required.
	Journal Journal
	// Conns is the number of connections per source (default 1).
	Conns int
	// Depth is the number of requests outstanding per connection that
	// can take several (default 2).
	Depth int
	// FlushInterval is how often progress goes to the journal (default
	// 1 s).
	FlushInterval time.Duration
	// Limiters cap the download rate (a job's own limit and the global
	// one, say); nil entries are skipped. Bytes are paced as they are
	// read, in chunks of at most 64 KiB.
	Limiters []*rate.Limiter
	// Logger receives one line per event of the job. Nil means
	// slog.Default().
	Logger *slog.Logger
	// OnChange, if set, is called when a source's state or the phase
	// changes, from the goroutine that changed it. It must not block.
	OnChange func()

	t atomic.Pointer[transfer]
	// onWrite, when a test sets it, is called with each write of a
	// piece's bytes to the partial file.
	onWrite func(piece int, n int)
}

// transfer is the state of one Run.
type transfer struct {
	job        Job
	journal    Journal
	log        *slog.Logger
	depth      int
	conns      int
	flushEvery time.Duration
	limiters   []*rate.Limiter
	onChange   func()
	onWrite    func(piece int, n int)
	cancel     context.CancelCauseFunc
	// complete stops the workers once every piece is verified, so none
	// waits out a back-off for a source no longer needed.
	complete context.CancelFunc

	mu        sync.Mutex // guards everything up to the next blank line
	phase     Phase
	file      *identity.File // the job's file, once known
	summary   identity.Summary
	own       bool // file's piece hashes are the engine's own
	name      string
	checkAll  *identity.Digest // a whole-file digest to check at the end
	dir       *jobDir
	part      string
	partStamp store.FileStamp
	fh        *os.File // the partial file
	path      string   // where the file was published
	sched     *scheduler
	seg       *segmentFile
	fatal     error
	stopped   bool // the round is over: a late vote timer must not decide
	// A new job's file is decided by the sources' votes (vote.go).
	votes       map[int]identity.Summary
	names       map[int]string // the name each voter gave the file
	voteTimer   *time.Timer
	winner      *identity.Summary
	candidate   *identity.File // the first answer's whole file
	decided     chan struct{}  // closed once the winner is decided
	fetching    bool           // a source is reading a piece list, or the file is being prepared
	fetchDone   chan struct{}  // closed and replaced when it is done
	known       chan struct{}  // closed once file is set, or identityErr
	identityErr error

	// streaming is the worker that reads the file as one stream from a
	// source that sends it only whole, -1 for none: one connection does.
	streaming int

	sources  []*source
	workers  []*worker
	verified atomic.Int64
	fetched  atomic.Int64
	meter    meter
}

// Run downloads until the file is complete and in place (nil, after the
// journal was told), ctx is cancelled (context.Cause(ctx), after a last
// checkpoint), or the job cannot go on (ErrNoSource, or a local error
// such as a full disk). While every source is down it keeps probing: a
// job waits, it does not fail.
func (tr *Transfer) Run(ctx context.Context) error {
	job := tr.Job
	t := &transfer{
		job:        job,
		journal:    tr.Journal,
		log:        cmp.Or(tr.Logger, slog.Default()).With("job", job.ID),
		depth:      cmp.Or(tr.Depth, DefaultDepth),
		conns:      cmp.Or(job.Conns, tr.Conns, DefaultConns),
		flushEvery: cmp.Or(tr.FlushInterval, DefaultFlushInterval),
		limiters:   tr.Limiters,
		onChange:   tr.OnChange,
		onWrite:    tr.onWrite,
		name:       job.Name,
		part:       job.Part,
		partStamp:  job.PartStamp,
		votes:      map[int]identity.Summary{},
		decided:    make(chan struct{}),
		fetchDone:  make(chan struct{}),
		known:      make(chan struct{}),
	}
	for i, src := range job.Sources {
		s := &source{idx: i, src: src}
		s.stat.Source = src.String()
		for _, st := range job.Stats {
			if st.Source == s.stat.Source {
				s.stat, s.state = st, stateOf(st)
			}
		}
		t.sources = append(t.sources, s)
	}
	t.fetched.Store(job.Fetched)
	t.verified.Store(job.Verified) // until the partial file is looked at
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	t.cancel = cancel
	tr.t.Store(t) // Progress shows the start, a long recheck included
	defer t.closeFiles()
	if job.File != nil {
		if t.name == "" {
			t.name = SanitizeName("") // a file decided without a name: the fallback
		}
		if err := t.prepare(ctx, job.File, job.OwnPieces, job.Recheck); err != nil {
			return err
		}
		close(t.known) // known already: no vote
	}
	t.setPhase(Connecting)
	for {
		front := new(frontier)
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
			t.closeFile()
			t.checkpoint()
			return fatal
		case t.finished():
			err := t.finish(ctx, front)
			if errors.Is(err, errRefetch) {
				continue
			}
			if err != nil && !errors.Is(err, errCrash) {
				t.checkpoint()
			}
			return err
		case ctx.Err() != nil:
			t.checkpoint()
			t.closeFile()
			return context.Cause(ctx)
		}
		t.checkpoint()
		t.closeFile()
		return fmt.Errorf("%w: %s", ErrNoSource, t.sourceReasons())
	}
}

// download runs one round of workers, with the checkpoints, the speed
// monitor and the frontier beside them, until every piece is verified,
// ctx ends, or no source is left.
func (t *transfer) download(ctx context.Context, front *frontier) {
	wctx, complete := context.WithCancel(ctx)
	defer complete()
	t.mu.Lock()
	t.complete = complete
	t.workers = t.workers[:0]
	t.streaming = -1
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
	bgWG.Go(func() { every(bg, t.flushEvery, t.checkpoint) })
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

// claimStream makes worker id the one that streams the file, unless
// another does already, and reports whether it is: a source that sends
// only the whole file is read over one connection, and its others would
// only read it again.
func (t *transfer) claimStream(id int) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.streaming < 0 {
		t.streaming = id
	}
	return t.streaming == id
}

// finished reports whether every piece is verified.
func (t *transfer) finished() bool {
	t.mu.Lock()
	sched := t.sched
	t.mu.Unlock()
	return sched != nil && sched.finished()
}

// crash makes a running Run return without another call to the journal,
// as if the process had been killed.
func (tr *Transfer) crash() {
	if t := tr.t.Load(); t != nil {
		t.cancel(errCrash)
	}
}

// Progress returns a snapshot of the transfer; before Run it is in phase
// Starting, with the counters the Job came with.
func (tr *Transfer) Progress() Progress {
	t := tr.t.Load()
	if t == nil {
		p := Progress{Phase: Starting, Name: tr.Job.Name, OwnPieces: tr.Job.OwnPieces, Verified: tr.Job.Verified, Fetched: tr.Job.Fetched, Time: time.Now()}
		if tr.Job.File != nil {
			p.Size, p.PieceLen = tr.Job.File.Size, tr.Job.File.PieceLen
		}
		for _, src := range tr.Job.Sources {
			sp := SourceProgress{SourceStat: store.SourceStat{Source: src.String()}}
			for _, st := range tr.Job.Stats {
				if st.Source == sp.Source {
					sp.SourceStat, sp.State = st, stateOf(st)
				}
			}
			p.Sources = append(p.Sources, sp)
		}
		return p
	}
	return t.progress(time.Now())
}

// Pieces returns a copy of the set of the file's verified pieces as the
// transfer holds it, or nil before it does: before Run, while the file is
// not decided, and while the partial file is opened or rechecked. It
// costs a copy of the bitmap, one bit a piece, and no disk I/O.
func (tr *Transfer) Pieces() *store.Bitmap {
	t := tr.t.Load()
	if t == nil {
		// Job.Done is not for the taking: once Run has begun, its
		// scheduler sets its bits under its own lock.
		return nil
	}
	t.mu.Lock()
	sched := t.sched
	t.mu.Unlock()
	if sched == nil {
		return nil
	}
	bm, _ := sched.snapshot()
	return bm
}

func (t *transfer) progress(now time.Time) Progress {
	p := Progress{
		Verified: t.verified.Load(),
		Fetched:  t.fetched.Load(),
		Speed:    t.meter.rate(now),
		Time:     now,
	}
	t.mu.Lock()
	p.Phase, p.Name = t.phase, t.name
	if t.file != nil {
		p.Size, p.PieceLen, p.OwnPieces = t.file.Size, t.file.PieceLen, t.own
		if !t.own {
			p.Root = t.summary.Root
		}
	}
	t.mu.Unlock()
	up, connecting := false, false
	for _, s := range t.sources {
		sp := s.snapshot(now)
		up = up || sp.State == SourceUp
		connecting = connecting || sp.State == SourceConnecting
		p.Sources = append(p.Sources, sp)
	}
	if p.Phase == Connecting {
		// While pieces are to be fetched, the sources say the phase.
		switch {
		case up:
			p.Phase = Downloading
		case !connecting:
			p.Phase = Waiting
		}
	}
	return p
}

// setPhase moves the transfer to phase p.
func (t *transfer) setPhase(p Phase) {
	t.mu.Lock()
	changed := t.phase != p
	t.phase = p
	t.mu.Unlock()
	if changed {
		t.sourcesChanged()
	}
}

// prepare opens the job's directory and partial file for f and builds
// the scheduler from the pieces already done, or from the disk itself
// when recheckAll is set or the file changed since the job last left it.
// It does its disk work without holding mu.
func (t *transfer) prepare(ctx context.Context, f *identity.File, own, recheckAll bool) error {
	if err := t.openDir(); err != nil {
		return err
	}
	fh, fresh, changed, err := t.openPart()
	if err != nil {
		return err
	}
	if err := sizePart(fh, f.Size); err != nil {
		fh.Close()
		return err
	}
	bm := t.job.Done
	if bm == nil || bm.Len() != f.Count() {
		bm = store.NewBitmap(f.Count())
	}
	switch {
	case fresh:
		bm = store.NewBitmap(f.Count())
	case recheckAll || changed:
		start, before := time.Now(), bm.Count()
		if bm, err = recheck(ctx, fh, f, own, bm); err != nil {
			fh.Close()
			return err
		}
		why := "unclean shutdown"
		if !recheckAll {
			why = "the file changed since the job stopped"
		}
		t.log.Info("rechecked partial file", "why", why, "pieces_before", before,
			"pieces_verified", bm.Count(), "took", time.Since(start).Round(time.Millisecond))
	}
	if own && f.Pieces == nil {
		f.Pieces = make([]byte, f.Count()*f.Algo.Size())
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.file, t.summary, t.own, t.fh = f, f.Summary(), own, fh
	t.checkAll = t.wholeFileCheck(f)
	t.useBitmapLocked(bm)
	return nil
}

// wholeFileCheck returns the whole-file digest to check once every piece
// is verified, or nil when the pieces prove the file. Only a job with a
// whole-file digest needs the pass, since the pieces do not prove it: the
// user's checksum first, else one the sources claimed (an idm server of
// protocol version 1, a mirror's Repr-Digest), the strongest.
func (t *transfer) wholeFileCheck(f *identity.File) *identity.Digest {
	if t.job.Checksum != nil {
		return t.job.Checksum
	}
	for _, a := range []identity.Algo{identity.BLAKE3, identity.SHA512, identity.SHA256, identity.SHA1} {
		if d, ok := f.Digest(a); ok {
			return &identity.Digest{Algo: a, Sum: d}
		}
	}
	return nil
}

// openDir opens the job's directory, once, and records its identity.
func (t *transfer) openDir() error {
	if t.dir != nil {
		return nil
	}
	dir, id, err := openJobDir(t.job.Dir, t.job.DirID)
	if err != nil {
		return err
	}
	t.mu.Lock()
	t.dir, t.job.DirID = dir, id
	t.mu.Unlock()
	return nil
}

// useBitmapLocked makes bm the set of verified pieces, with a new
// scheduler and segment file over it.
func (t *transfer) useBitmapLocked(bm *store.Bitmap) {
	f := t.file
	var verified int64
	for i := range f.Count() {
		if bm.Has(i) {
			_, n := f.Piece(i)
			verified += n
		}
	}
	t.verified.Store(verified)
	t.seg = newSegmentFile(t.fh, f, t.own, bm)
	t.seg.onWrite = t.onWrite
	t.sched = newScheduler(bm, func(i int) int64 { _, n := f.Piece(i); return n }, t.estimate)
}

// estimate returns the recent speed of worker id's source.
func (t *transfer) estimate(id int) float64 { return t.workers[id].src.meter.rate(time.Now()) }

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

// checkpoint hands the journal the progress as it stands. A failure is
// logged: the work is not lost, only what a crash now would keep.
func (t *transfer) checkpoint() {
	if err := t.journal.Checkpoint(t.snapshot()); err != nil {
		t.log.Error("record progress", "err", err)
	}
}

// snapshot returns the progress to record.
func (t *transfer) snapshot() *store.Checkpoint {
	p := t.progress(time.Now())
	c := &store.Checkpoint{Verified: p.Verified, Fetched: p.Fetched}
	for _, s := range p.Sources {
		c.Sources = append(c.Sources, s.SourceStat)
	}
	t.mu.Lock()
	if t.fh != nil {
		if st, err := stampFile(t.fh); err == nil {
			t.partStamp = st
		}
	}
	c.PartStamp = t.partStamp
	sched, seg := t.sched, t.seg
	t.mu.Unlock()
	if sched != nil {
		c.Done, _ = sched.snapshot()
	}
	if seg != nil {
		c.Pieces = seg.ownPieces()
	}
	return c
}

// monitor compares the sources' speeds (once a second) and makes a
// source that stays under a fifth of the median give its pieces back.
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
		if s.current() == SourceUp {
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
		slow := s.state == SourceUp && s.meter.rate(now)*slowFactor < median
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
			t.log.Info("slow source gives pieces back", "source", s.src.String(), "pieces", given)
		}
	}
}

// closeFile closes the partial file, once the round that wrote it is
// over.
func (t *transfer) closeFile() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.fh != nil {
		t.fh.Close()
		t.fh = nil
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
