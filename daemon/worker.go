package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/idmproject/idm/daemon/api"
	"github.com/idmproject/idm/internal/safetext"
	"github.com/idmproject/idm/transport"
)

// Errors that end a worker's session without marking its source down.
var (
	errCancelled = errors.New("request cancelled: another copy won")
	errOut       = errors.New("source set aside for this job")
	errComplete  = errors.New("download complete")
)

// corruptLimit is how many corrupt segments quarantine a source.
const corruptLimit = 3

// Back-off between attempts to reach a source that is down.
const (
	backoffMin = 500 * time.Millisecond
	backoffMax = 30 * time.Second
)

// maxErrText bounds a source's last error as the job keeps it.
const maxErrText = 512

// errText makes an error's text fit to keep and show: one line of at
// most maxErrText bytes, with nothing a server could use to move a
// terminal's cursor or reorder the text.
func errText(s string) string { return safetext.Line(s, '?', maxErrText) }

// source is one server of a job and what the job knows of it.
type source struct {
	idx   int
	src   transport.Source
	meter meter

	mu        sync.Mutex
	state     string
	nextRetry time.Time
	lastErr   string
	verified  int64
	fetched   int64
	errors    int
	corrupt   int
	slow      int // consecutive checks below a fifth of the median
}

func (s *source) snapshot(now time.Time) api.SourceProgress {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := api.SourceProgress{
		Source:    s.src.String(),
		State:     s.state,
		Verified:  s.verified,
		Fetched:   s.fetched,
		Corrupt:   s.corrupt,
		LastError: s.lastErr,
		Speed:     s.meter.rate(now),
	}
	if s.state == api.SourceDown {
		p.NextRetry = s.nextRetry
	}
	return p
}

// out reports whether the source was set aside for the job.
func (s *source) out() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.state == api.SourceQuarantined || s.state == api.SourceRejected
}

// setState changes the source's state, unless it was set aside for the
// job, and returns the state it had.
func (s *source) setState(state, reason string) (was string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	was = s.state
	if s.state == api.SourceQuarantined || s.state == api.SourceRejected {
		return was
	}
	s.state = state
	if reason != "" {
		s.lastErr = errText(reason)
	}
	return was
}

// worker is one connection to a source, pulling segments from the
// scheduler with several requests outstanding.
type worker struct {
	t   *transfer
	id  int // its index in t.workers, the scheduler's name for it
	src *source
	in  streamer // receives segments this worker alone fetches

	mu        sync.Mutex
	stream    transport.Stream
	head      int // the segment being received, or -1
	cancelled bool
}

// cancel tells the worker that segment seg was verified from another
// source first. If the worker is receiving it, its connection is dropped
// at once; if the request is still queued behind another, the worker
// finishes the one it is receiving and then reconnects (see session), so
// the work under way is not thrown away.
func (w *worker) cancel(seg int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.stream != nil && w.head == seg {
		w.cancelled = true
		w.stream.Close()
	}
}

func (w *worker) setHead(seg int) {
	w.mu.Lock()
	w.head = seg
	w.mu.Unlock()
}

func (w *worker) setStream(s transport.Stream) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.stream, w.cancelled = s, false
}

// run keeps the worker connected and fetching until the download is
// complete, ctx ends, or its source is set aside. A failed session marks
// the source down and retries with exponential back-off and jitter.
func (w *worker) run(ctx context.Context) {
	delay := backoffMin
	for ctx.Err() == nil && !w.src.out() {
		delivered, err := w.session(ctx)
		switch {
		case errors.Is(err, errComplete), errors.Is(err, errOut), ctx.Err() != nil:
			return
		case errors.Is(err, errCancelled):
			continue
		}
		if delivered {
			delay = backoffMin
		}
		// Jitter keeps the sources' retries from marching in step.
		wait := time.Duration(float64(delay) * (0.8 + 0.4*rand.Float64()))
		w.src.mu.Lock()
		w.src.errors++
		w.src.lastErr = errText(err.Error())
		wasUp := w.src.state == api.SourceUp
		if w.src.state != api.SourceQuarantined && w.src.state != api.SourceRejected {
			w.src.state = api.SourceDown
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

// session is one connection's life: connect, check the manifest, then
// fetch until something fails. It reports whether any segment was
// verified, so a flapping source's back-off is reset only by real work.
func (w *worker) session(ctx context.Context) (delivered bool, err error) {
	t := w.t
	dctx, cancel := context.WithTimeout(ctx, t.stall)
	st, err := w.src.src.Open(dctx)
	cancel()
	if err != nil {
		return false, fmt.Errorf("connect: %w", err)
	}
	w.setStream(st)
	stop := context.AfterFunc(ctx, func() { st.Close() })
	defer func() {
		stop()
		st.Close()
		w.setStream(nil)
	}()
	sum, err := t.describe(ctx, st)
	if err != nil {
		return false, fmt.Errorf("manifest: %w", err)
	}
	if err := t.adopt(ctx, w.src.idx, sum, st); err != nil {
		var bad *mismatchError
		if errors.As(err, &bad) {
			w.src.setState(api.SourceRejected, bad.Error())
			t.log.Warn("source rejected", "source", w.src.src.String(), "reason", bad.Error())
			t.sourcesChanged()
			return false, errOut
		}
		if ctx.Err() != nil {
			return false, ctx.Err()
		}
		return false, fmt.Errorf("manifest: %w", err)
	}
	if w.src.setState(api.SourceUp, "") == api.SourceDown {
		t.log.Info("source back", "source", w.src.src.String())
	}
	t.sourcesChanged()

	sched, part := t.sched, t.part
	type ask struct {
		seg int
		dup bool // another worker fetches it too: buffer, then write
	}
	var queue []ask // segments asked for, in order
	defer func() {
		for _, a := range queue {
			sched.release(w.id, a.seg)
		}
	}()
	for {
		for len(queue) < t.depth {
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
			off, n := t.man.Segment(i)
			queue = append(queue, ask{i, dup})
			if err := t.throttle(ctx, n); err != nil {
				return delivered, err
			}
			if err := st.Request(off, n); err != nil {
				return delivered, w.failure(fmt.Errorf("request segment %d: %w", i, err))
			}
		}
		a := queue[0]
		if sched.isDone(a.seg) {
			// Another source delivered it while it waited in this
			// connection's queue: reconnect rather than receive it.
			return delivered, errCancelled
		}
		_, n := t.man.Segment(a.seg)
		var (
			sum transport.Hash
			buf *[]byte
			err error
			got int64 // bytes received, whole segment or not
		)
		w.setHead(a.seg)
		if a.dup {
			buf = part.getBuf()
			f := filler{b: (*buf)[:n]}
			err = st.ReceiveTo(&f, n)
			sum, got = transport.SumSegment((*buf)[:n]), int64(f.n)
		} else {
			w.in.reset(part, a.seg)
			err = st.ReceiveTo(&w.in, n)
			sum, got = w.in.sum(), w.in.received
		}
		w.setHead(-1)
		w.src.mu.Lock()
		w.src.fetched += got
		w.src.mu.Unlock()
		t.fetched.Add(got)
		if err != nil {
			if buf != nil {
				part.putBuf(buf)
			}
			var de *diskError
			if errors.As(err, &de) {
				t.fail(de)
				return delivered, de
			}
			return delivered, w.failure(fmt.Errorf("segment %d: %w", a.seg, err))
		}
		queue = queue[1:]
		now := time.Now()
		if sum != t.man.Segments[a.seg] {
			if buf != nil {
				part.putBuf(buf)
			}
			sched.release(w.id, a.seg)
			return delivered, w.corrupt(a.seg)
		}
		var verified []byte
		if buf != nil {
			verified = (*buf)[:n]
		}
		won, err := part.commit(a.seg, verified)
		if buf != nil {
			part.putBuf(buf)
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
		w.src.mu.Lock()
		w.src.verified += n
		w.src.mu.Unlock()
		w.src.meter.add(now, n)
		t.meter.add(now, n)
		t.verified.Add(n)
		for _, l := range losers {
			t.workers[l].cancel(a.seg)
		}
	}
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

// corrupt counts a segment that failed verification and quarantines the
// source at the limit.
func (w *worker) corrupt(i int) error {
	err := fmt.Errorf("segment %d failed verification", i)
	w.src.mu.Lock()
	w.src.corrupt++
	n := w.src.corrupt
	w.src.mu.Unlock()
	w.t.log.Warn("corrupt segment", "source", w.src.src.String(), "segment", i, "count", n)
	if n >= corruptLimit {
		reason := fmt.Sprintf("quarantined after %d corrupt segments (last: segment %d)", n, i)
		w.src.setState(api.SourceQuarantined, reason)
		w.t.log.Warn("source quarantined", "source", w.src.src.String(), "reason", reason)
		w.t.sourcesChanged()
		return errOut
	}
	return err
}
