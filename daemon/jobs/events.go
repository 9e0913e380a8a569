package jobs

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/idmproject/idm/daemon/api"
)

// maxPending is how many distinct jobs may wait to be written to one
// subscriber; a change to one more drops it. A dropped watcher reconnects
// and starts again from a snapshot.
const maxPending = 256

// Why a subscription ends before its client leaves, beside ErrShutdown.
var (
	// ErrFellBehind ends the subscription of a client that fell more
	// than 256 jobs behind.
	ErrFellBehind   = errors.New("fell more than 256 jobs behind")
	errUnsubscribed = errors.New("subscription closed")
)

// hub fans job changes out to subscribers. It holds no copies of jobs,
// only which jobs changed and how: each subscriber renders a job when it
// writes it, so a slow subscriber sees every job's latest state and only
// the changes in between merge. Sending never blocks: the hub's lock is
// held only to note a change, never across a write to a client.
//
// The queue calls send with its own lock held, and renders a snapshot
// under the same lock; that orders every change with a subscriber's walk
// over the jobs (see send and nextEvent).
type hub struct {
	mu     sync.Mutex
	subs   map[*subscriber]struct{}
	closed bool
}

// change is a job's change not yet written to one subscriber.
type change struct {
	id  uint64
	typ string // an api.Event* type
	// gone is a removed job's last snapshot: it is no longer in the
	// queue to render.
	gone *api.Job
}

// subscriber is one client's place in the stream of changes.
type subscriber struct {
	job  uint64        // 0 for all jobs
	wake chan struct{} // holds a token when a change is pending or it ended

	// Guarded by the hub's mu.
	walking bool   // the snapshot's walk over the jobs is under way
	cursor  uint64 // the last job the walk yielded
	pending map[uint64]change
	order   []uint64 // the pending jobs, oldest change first
	end     error    // why it ended, once it has
}

func newHub() *hub { return &hub{subs: map[*subscriber]struct{}{}} }

func (h *hub) listening() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.subs) > 0
}

// subscribe adds a subscriber to job's changes (0: every job's). One job's
// subscriber starts with that job's state pending, every job's with a walk
// over the jobs in ID order.
func (h *hub) subscribe(job uint64) *subscriber {
	s := &subscriber{job: job, wake: make(chan struct{}, 1), pending: map[uint64]change{}}
	if job != 0 {
		s.pending[job] = change{id: job, typ: api.EventState}
		s.order = append(s.order, job)
	} else {
		s.walking = true
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		h.endLocked(s, ErrShutdown)
		return s
	}
	h.subs[s] = struct{}{}
	return s
}

// unsubscribe removes s; it is safe to call more than once.
func (h *hub) unsubscribe(s *subscriber) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.endLocked(s, errUnsubscribed)
}

// endLocked removes s and frees what it held; next then returns why.
func (h *hub) endLocked(s *subscriber, why error) {
	delete(h.subs, s)
	if s.end == nil {
		s.end = why
	}
	s.pending, s.order = nil, nil
	s.notify()
}

func (s *subscriber) notify() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// rank orders the event types: a pending change takes the strongest type
// sent since it was last written.
func rank(typ string) int {
	switch typ {
	case api.EventProgress:
		return 1
	case api.EventState:
		return 2
	case api.EventRemoved:
		return 3
	}
	return 0
}

// send notes that job id changed; gone is its last snapshot when typ is
// api.EventRemoved. A subscriber with more than maxPending jobs waiting is
// dropped.
func (h *hub) send(typ string, id uint64, gone *api.Job) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for s := range h.subs {
		if s.job != 0 && s.job != id {
			continue
		}
		// The walk has not reached this job yet: it will render it as it
		// is then, or not at all if it is gone.
		if s.walking && id > s.cursor {
			continue
		}
		c, ok := s.pending[id]
		if !ok {
			if len(s.pending) >= maxPending {
				h.endLocked(s, ErrFellBehind)
				continue
			}
			c.id = id
			s.order = append(s.order, id)
		}
		if rank(typ) >= rank(c.typ) {
			c.typ, c.gone = typ, gone
		}
		s.pending[id] = c
		s.notify()
	}
}

// close ends every subscription.
func (h *hub) close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	for s := range h.subs {
		h.endLocked(s, ErrShutdown)
	}
}

// walk says where s's snapshot walk is: walking is false once it is over.
// err is why s ended, if it has.
func (h *hub) walk(s *subscriber) (cursor uint64, walking bool, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return s.cursor, s.walking && s.end == nil, s.end
}

// walked records that s's walk yielded job id, or, with done, that it
// found no job after the cursor and is over.
func (h *hub) walked(s *subscriber, id uint64, done bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if done {
		s.walking = false
		return
	}
	s.cursor = id
}

// next takes s's oldest pending change; ok is false when there is none.
// err is why s ended, if it has.
func (h *hub) next(s *subscriber) (c change, ok bool, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if s.end != nil {
		return change{}, false, s.end
	}
	if len(s.order) == 0 {
		return change{}, false, nil
	}
	id := s.order[0]
	s.order = s.order[1:]
	c = s.pending[id]
	delete(s.pending, id)
	return c, true, nil
}

// Subscription is one client's stream of job events, from Subscribe.
type Subscription struct {
	q *Queue
	s *subscriber
}

// Next waits for the next event and returns it, with the job rendered as
// it is now. It returns an error once the stream must end: the queue is
// closing, the subscriber fell more than 256 jobs behind and was dropped,
// Close was called, or ctx is done.
func (sub *Subscription) Next(ctx context.Context) (api.Event, error) {
	for {
		e, ok, err := sub.q.nextEvent(sub.s)
		if err != nil || ok {
			return e, err
		}
		select {
		case <-sub.s.wake:
		case <-ctx.Done():
			return api.Event{}, ctx.Err()
		}
	}
}

// Close ends the subscription. It is safe to call more than once.
func (sub *Subscription) Close() { sub.q.events.unsubscribe(sub.s) }

// nextEvent renders s's next event: the next job of its snapshot's walk,
// or its oldest pending change. ok is false when there is none yet.
//
// It holds the queue's lock, as send's callers do: a change to a job the
// walk has not reached is left to the walk, so the walk must read the job
// and move its cursor with no change in between.
func (q *Queue) nextEvent(s *subscriber) (e api.Event, ok bool, err error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	cursor, walking, err := q.events.walk(s)
	if err != nil {
		return api.Event{}, false, err
	}
	if walking {
		i, _ := slices.BinarySearch(q.ids, cursor+1)
		for ; i < len(q.ids) && q.jobs[q.ids[i]].bad != nil; i++ {
		}
		if i == len(q.ids) {
			q.events.walked(s, 0, true)
		} else {
			j := q.jobs[q.ids[i]]
			q.events.walked(s, j.id, false)
			return api.Event{Type: api.EventState, Job: q.view(j)}, true, nil
		}
	}
	c, ok, err := q.events.next(s)
	if err != nil || !ok {
		return api.Event{}, false, err
	}
	if c.gone != nil {
		return api.Event{Type: c.typ, Job: *c.gone}, true, nil
	}
	// The job is in the table: its removal would have replaced this
	// change with one carrying its last snapshot.
	j, err := q.lookup(c.id)
	if err != nil {
		return api.Event{}, false, fmt.Errorf("event stream: %w", err)
	}
	return api.Event{Type: c.typ, Job: q.view(j)}, true, nil
}
