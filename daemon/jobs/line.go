package jobs

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"

	"github.com/idmproject/idm/daemon/api"
	"github.com/idmproject/idm/daemon/auth"
	"github.com/idmproject/idm/store"
)

// Whence says what a position given to Move counts from.
type Whence int

// The places a position counts from, as aria2's POS_SET, POS_CUR and
// POS_END.
const (
	// FromStart counts from the front of the line: 0 is the first.
	FromStart Whence = iota
	// FromCurrent counts from where the job is: -1 is one place ahead.
	FromCurrent
	// FromEnd counts from the end of the line: 0 is the last, -1 the one
	// before it.
	FromEnd
)

// waiting reports whether job j is in the line for a download slot:
// queued and not started, or paused (it keeps its place, and goes on
// from there when resumed).
func (j *job) waiting() bool {
	return j.bad == nil && (j.state == Queued || j.state == Paused)
}

// lineFor returns the waiting jobs the caller of ctx may change, in the
// order of the line. Called with mu held.
func (q *Queue) lineFor(ctx context.Context) []*job {
	var line []*job
	for _, id := range q.ids {
		if j := q.jobs[id]; j.waiting() && q.mayChange(ctx, j) {
			line = append(line, j)
		}
	}
	slices.SortFunc(line, func(a, b *job) int { return cmp.Compare(a.rank(), b.rank()) })
	return line
}

// Waiting returns the jobs waiting for a download slot, queued or
// paused, that the caller of ctx may change, in the order the queue will
// start them (a paused job is started in its place once resumed).
func (q *Queue) Waiting(ctx context.Context) []api.Job {
	q.mu.Lock()
	defer q.mu.Unlock()
	line := q.lineFor(ctx)
	out := make([]api.Job, 0, len(line))
	for _, j := range line {
		out = append(out, q.view(j))
	}
	return out
}

// Move changes job id's place in the line of waiting jobs and returns
// its new place, counted from 0 at the front. Places are among the
// waiting jobs the caller of ctx may change, the line Waiting shows it:
// the job moves ahead of or behind those, and every other job keeps its
// place. A position beyond either end of the line is that end. A job
// that is not waiting (running, or ended) cannot move (ErrConflict). The
// line is recorded: it outlasts a restart.
func (q *Queue) Move(ctx context.Context, id uint64, pos int, from Whence) (int, error) {
	q.wmu.Lock()
	defer q.wmu.Unlock()
	q.mu.Lock()
	cur, dest, ranks, err := q.planMove(ctx, id, pos, from)
	q.mu.Unlock()
	if err != nil || len(ranks) == 0 {
		return dest, err
	}
	ids := slices.Collect(maps.Keys(ranks))
	recs, err := q.db.ChangeAll(ids, func(r *store.Record) error {
		r.Rank = int64(ranks[r.ID])
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("record the line: %w", err)
	}
	q.mu.Lock()
	for _, r := range recs {
		q.jobs[r.ID].rec = r
	}
	q.events.send(api.EventState, id, nil)
	q.mu.Unlock()
	q.log.Info("job moved in the line", "job", id, "from", cur, "to", dest)
	return dest, nil
}

// planMove works out Move: job id's place in the line and its new one,
// and the new rank of every job whose rank changes. The ranks the
// caller's jobs hold are handed out again in the new order, so that the
// others keep theirs, and so their places. Called with mu held.
func (q *Queue) planMove(ctx context.Context, id uint64, pos int, from Whence) (cur, dest int, ranks map[uint64]uint64, err error) {
	j, err := q.authorize(ctx, id)
	if err == nil && j.bad != nil {
		err = j.bad
	}
	if err != nil {
		return 0, 0, nil, err
	}
	line := q.lineFor(ctx)
	cur = slices.Index(line, j)
	if cur < 0 {
		return 0, 0, nil, fmt.Errorf("%w: job %d is %s, not waiting", ErrConflict, id, apiState(j.state))
	}
	last := len(line) - 1
	// Past either end is that end: bounded so, no sum below wraps.
	pos = max(-len(line), min(pos, len(line)))
	switch from {
	case FromStart:
		dest = pos
	case FromCurrent:
		dest = cur + pos
	case FromEnd:
		dest = last + pos
	default:
		return 0, 0, nil, fmt.Errorf("%w: unknown whence %d", ErrInvalid, from)
	}
	dest = max(0, min(dest, last))
	moved := slices.Insert(slices.Delete(slices.Clone(line), cur, cur+1), dest, j)
	ranks = make(map[uint64]uint64)
	for i, l := range moved {
		if r := line[i].rank(); l.rank() != r {
			ranks[l.id] = r
		}
	}
	return cur, dest, ranks, nil
}

// mayChange reports whether the caller of ctx may change job j, as
// authorize decides, without a word in the log. Called with mu held.
func (q *Queue) mayChange(ctx context.Context, j *job) bool {
	p, known := auth.PeerFrom(ctx)
	switch {
	case !known:
		return true
	case j.bad != nil:
		return p.Privileged()
	}
	return p.MayChange(j.rec.Owner)
}

// MayChange reports whether the caller of ctx may change job id (see
// Pause): false too when there is no such job.
func (q *Queue) MayChange(ctx context.Context, id uint64) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	j := q.jobs[id]
	return j != nil && q.mayChange(ctx, j)
}

// ListFor is List, with only the jobs the caller of ctx may change.
func (q *Queue) ListFor(ctx context.Context, after uint64, n int) []api.Job {
	q.mu.Lock()
	defer q.mu.Unlock()
	i, _ := slices.BinarySearch(q.ids, after+1)
	if n < 0 {
		n = len(q.ids) - i
	}
	var out []api.Job
	for ; i < len(q.ids) && len(out) < n; i++ {
		if j := q.jobs[q.ids[i]]; j.bad == nil && q.mayChange(ctx, j) {
			out = append(out, q.view(j))
		}
	}
	return out
}
