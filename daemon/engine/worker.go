package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/idmproject/idm/internal/safetext"
	"github.com/idmproject/idm/store"
)

// Errors that end a worker's session without marking its source down.
var (
	errCancelled = errors.New("request cancelled: another copy won")
	errOut       = errors.New("source set aside for this job")
	errComplete  = errors.New("download complete")
	errSpare     = errors.New("the source streams the file over another connection")
)

// corruptLimit is how many corrupt pieces quarantine a source.
const corruptLimit = 3

// Back-off between attempts to reach a source that is down.
const (
	backoffMin = 500 * time.Millisecond
	backoffMax = 30 * time.Second
)

// paceChunk is the most bytes a rate limit lets through at a time.
const paceChunk = 64 << 10

// maxErrText bounds a source's last error as the job keeps it.
const maxErrText = 512

// errText makes an error's text fit to keep and show: one line of at
// most maxErrText bytes, with nothing a server could use to move a
// terminal's cursor or reorder the text.
func errText(s string) string { return safetext.Line(s, '?', maxErrText) }

// source is one source of a job and what the job knows of it.
type source struct {
	idx   int
	src   Source
	meter meter

	mu        sync.Mutex
	stat      store.SourceStat // what it did, as checkpoints record it
	state     SourceState
	nextRetry time.Time
	slow      int // consecutive checks below a fifth of the median
}

func (s *source) snapshot(now time.Time) SourceProgress {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stat
	st.Quarantined, st.Rejected, st.Failed = s.state == SourceQuarantined, s.state == SourceRejected, s.state == SourceFailed
	if v, ok := s.src.(Versioned); ok {
		st.ETag, st.LastModified = v.Version()
	}
	if t, ok := s.src.(Typed); ok && t.MediaType() != "" {
		st.MediaType = t.MediaType() // else the one an earlier run recorded
	}
	p := SourceProgress{SourceStat: st, State: s.state, Speed: s.meter.rate(now)}
	if s.state == SourceDown {
		p.NextRetry = s.nextRetry
	}
	return p
}

// current returns the source's state.
func (s *source) current() SourceState {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.state
}

// out reports whether the source was set aside for the job.
func (s *source) out() bool { return s.current().out() }

// setState changes the source's state, unless it was set aside for the
// job, and returns the state it had.
func (s *source) setState(state SourceState, reason string) (was SourceState) {
	s.mu.Lock()
	defer s.mu.Unlock()
	was = s.state
	if s.state.out() {
		return was
	}
	s.state = state
	if reason != "" {
		s.stat.LastError = errText(reason)
	}
	return was
}

// worker is one connection to a source, pulling pieces from the
// scheduler with several requests outstanding where the source takes
// them.
type worker struct {
	t   *transfer
	id  int // its index in t.workers, the scheduler's name for it
	src *source
	in  streamer // receives pieces this worker alone fetches

	mu        sync.Mutex
	conn      Conn
	head      int // the piece being received, or -1
	cancelled bool
}

// cancel tells the worker that piece seg was verified from another
// source first. If the worker is receiving it, its connection is dropped
// at once; if the request is still queued behind another, the worker
// finishes the one it is receiving and then reconnects (see session), so
// the work under way is not thrown away.
func (w *worker) cancel(seg int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.conn != nil && w.head == seg {
		w.cancelled = true
		w.conn.Close()
	}
}

func (w *worker) setHead(seg int) {
	w.mu.Lock()
	w.head = seg
	w.mu.Unlock()
}

func (w *worker) setConn(c Conn) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.conn, w.cancelled = c, false
}

// run keeps the worker connected and fetching until the download is
// complete, ctx ends, or its source is set aside. A failed session marks
// the source down and retries with exponential back-off and jitter; a
// permanent failure sets the source aside for the job.
func (w *worker) run(ctx context.Context) {
	delay := backoffMin
	for ctx.Err() == nil && !w.src.out() {
		delivered, err := w.session(ctx)
		switch {
		case errors.Is(err, errComplete), errors.Is(err, errOut), errors.Is(err, errSpare), ctx.Err() != nil:
			return
		case errors.Is(err, errCancelled):
			continue
		case otherFile(err):
			w.src.setState(SourceRejected, err.Error())
			w.t.log.Warn("source rejected", "source", w.src.src.String(), "reason", err)
			w.t.sourcesChanged()
			return
		case Permanent(err):
			w.src.mu.Lock()
			w.src.stat.Errors++
			w.src.mu.Unlock()
			w.src.setState(SourceFailed, err.Error())
			w.t.log.Warn("source failed for good", "source", w.src.src.String(), "err", err)
			w.t.sourcesChanged()
			return
		}
		if delivered {
			delay = backoffMin
		}
		// Jitter keeps the sources' retries from marching in step; a
		// source that said how long to wait (429, 503) gets that long.
		wait := max(time.Duration(float64(delay)*(0.8+0.4*rand.Float64())), retryAfter(err))
		w.src.mu.Lock()
		w.src.stat.Errors++
		w.src.stat.LastError = errText(err.Error())
		wasUp := w.src.state == SourceUp
		if !w.src.state.out() {
			w.src.state = SourceDown
			w.src.nextRetry = time.Now().Add(wait)
		}
		w.src.mu.Unlock()
		// One line when a source goes down; its retries are not news.
		level := slog.LevelDebug
		if wasUp {
			level = slog.LevelWarn
		}
		w.t.log.Log(ctx, level, "source down", "source", w.src.src.String(), "retry_in", wait.Round(time.Millisecond), "err", err)
		w.t.sourcesChanged()
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return
		}
		delay = min(2*delay, backoffMax)
	}
}

// session is one connection's life: connect, check what the source
// holds, then fetch until something fails. It reports whether any piece
// was verified, so a flapping source's back-off is reset only by real
// work.
func (w *worker) session(ctx context.Context) (delivered bool, err error) {
	t := w.t
	c, err := w.src.src.Open(ctx)
	if err != nil {
		return false, fmt.Errorf("connect: %w", err)
	}
	w.setConn(c)
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer func() {
		stop()
		c.Close()
		w.setConn(nil)
	}()
	desc, err := t.describe(ctx, c)
	var whole Streamer
	if err != nil {
		// A source that sends only the whole file can serve a job alone,
		// over one connection; beside others it could share no piece,
		// and is refused for the reason it gave.
		st, d := wholeFile(c, err)
		if st == nil || len(t.sources) > 1 {
			return false, fmt.Errorf("describe the file: %w", err)
		}
		if !t.claimStream(w.id) {
			return false, errSpare
		}
		whole, desc = st, d
	}
	if err := t.adopt(ctx, w.src.idx, desc, c); err != nil {
		var bad *mismatchError
		if errors.As(err, &bad) {
			w.src.setState(SourceRejected, bad.Error())
			t.log.Warn("source rejected", "source", w.src.src.String(), "reason", bad.Error())
			t.sourcesChanged()
			return false, errOut
		}
		if ctx.Err() != nil {
			return false, ctx.Err()
		}
		return false, fmt.Errorf("describe the file: %w", err)
	}
	if w.src.setState(SourceUp, "") == SourceDown {
		t.log.Info("source back", "source", w.src.src.String())
	}
	t.sourcesChanged()

	t.mu.Lock()
	sched, seg, f := t.sched, t.seg, t.file
	t.mu.Unlock()
	if whole != nil {
		return w.stream(ctx, whole, sched, seg, f)
	}
	pipe, ok := c.(Pipeliner)
	depth := t.depth
	if !ok {
		pipe, depth = &sequential{ctx: ctx, c: c}, 1
	}
	type ask struct {
		seg int
		dup bool // another worker fetches it too: buffer, then write
	}
	var queue []ask // pieces asked for, in order
	defer func() {
		for _, a := range queue {
			sched.release(w.id, a.seg)
		}
	}()
	for {
		for len(queue) < depth {
			i, dup, wait, complete := sched.next(w.id)
			if complete {
				t.complete()
				return delivered, errComplete
			}
			if i < 0 {
				if len(queue) > 0 {
					break
				}
				select {
				case <-wait:
					continue
				case <-ctx.Done():
					return delivered, ctx.Err()
				}
			}
			off, n := f.Piece(i)
			queue = append(queue, ask{i, dup})
			if err := pipe.Request(off, n); err != nil {
				return delivered, w.failure(fmt.Errorf("request segment %d: %w", i, err))
			}
		}
		a := queue[0]
		if sched.isDone(a.seg) {
			// Another source delivered it while it waited in this
			// connection's queue: reconnect rather than receive it.
			return delivered, errCancelled
		}
		_, n := f.Piece(a.seg)
		var (
			sum []byte
			buf *[]byte
			err error
			got int64 // bytes received, whole piece or not
		)
		w.setHead(a.seg)
		if a.dup {
			buf = seg.getBuf()
			fl := filler{b: (*buf)[:n]}
			err = pipe.ReceiveTo(t.paced(ctx, &fl), n)
			sum, got = f.Algo.Sum((*buf)[:n]), int64(fl.n)
		} else {
			w.in.reset(seg, a.seg)
			err = pipe.ReceiveTo(t.paced(ctx, &w.in), n)
			sum, got = w.in.sum(), w.in.received
		}
		w.setHead(-1)
		w.src.mu.Lock()
		w.src.stat.Fetched += got
		w.src.mu.Unlock()
		t.fetched.Add(got)
		if err != nil {
			if buf != nil {
				seg.putBuf(buf)
			}
			var de *diskError
			if errors.As(err, &de) {
				t.fail(de)
				return delivered, de
			}
			err = w.failure(fmt.Errorf("segment %d: %w", a.seg, err))
			if st, _ := wholeFile(c, err); st != nil && len(t.sources) == 1 {
				// The job's only source stopped sending ranges: the next
				// connection reads the file from it as one stream.
				return delivered, transient{err}
			}
			return delivered, err
		}
		queue = queue[1:]
		now := time.Now()
		if !seg.verify(a.seg, sum) {
			if buf != nil {
				seg.putBuf(buf)
			}
			sched.release(w.id, a.seg)
			return delivered, w.corrupt(a.seg)
		}
		var verified []byte
		if buf != nil {
			verified = (*buf)[:n]
		}
		won, err := seg.commit(a.seg, verified, sum)
		if buf != nil {
			seg.putBuf(buf)
		}
		if err != nil {
			t.fail(err)
			return delivered, err
		}
		if !won {
			continue
		}
		losers, _ := sched.complete(w.id, a.seg)
		delivered = true
		w.credit(now, n)
		for _, l := range losers {
			t.workers[l].cancel(a.seg)
		}
	}
}

// credit counts n verified bytes of a piece done for good: the source's
// and the job's totals and speeds.
func (w *worker) credit(now time.Time, n int64) {
	w.src.mu.Lock()
	w.src.stat.Bytes += n
	w.src.mu.Unlock()
	w.src.meter.add(now, n)
	w.t.meter.add(now, n)
	w.t.verified.Add(n)
}

// failure turns a receive error into errCancelled when the worker's
// connection was closed on purpose.
func (w *worker) failure(err error) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.cancelled {
		return errCancelled
	}
	return err
}

// corrupt counts a piece that failed verification and quarantines the
// source at the limit.
func (w *worker) corrupt(i int) error {
	err := fmt.Errorf("segment %d failed verification", i)
	w.src.mu.Lock()
	w.src.stat.Corrupt++
	n := w.src.stat.Corrupt
	w.src.mu.Unlock()
	w.t.log.Warn("corrupt segment", "source", w.src.src.String(), "segment", i, "count", n)
	if n >= corruptLimit {
		reason := fmt.Sprintf("quarantined after %d corrupt segments (last: segment %d)", n, i)
		w.src.setState(SourceQuarantined, reason)
		w.t.log.Warn("source quarantined", "source", w.src.src.String(), "reason", reason)
		w.t.sourcesChanged()
		return errOut
	}
	return err
}

// paced returns w, or, under a rate limit, w behind a writer that lets
// the bytes through as the limiters allow, paceChunk at a time: the
// limit holds over every short window, not only on average.
func (t *transfer) paced(ctx context.Context, w io.Writer) io.Writer {
	for _, l := range t.limiters {
		if l != nil && l.Limit() != rate.Inf {
			return &pacer{ctx: ctx, w: w, limiters: t.limiters}
		}
	}
	return w
}

// pacer is a writer paced by rate limiters.
type pacer struct {
	ctx      context.Context
	w        io.Writer
	limiters []*rate.Limiter
}

func (p *pacer) Write(b []byte) (int, error) {
	chunk := paceChunk
	for _, l := range p.limiters {
		if l != nil && l.Limit() != rate.Inf {
			chunk = min(chunk, max(l.Burst(), 1))
		}
	}
	written := 0
	for len(b) > 0 {
		k := min(len(b), chunk)
		for _, l := range p.limiters {
			if l == nil || l.Limit() == rate.Inf {
				continue
			}
			if err := l.WaitN(p.ctx, k); err != nil {
				return written, err
			}
		}
		n, err := p.w.Write(b[:k])
		written += n
		if err != nil {
			return written, err
		}
		b = b[k:]
	}
	return written, nil
}
