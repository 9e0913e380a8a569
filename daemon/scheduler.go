package daemon

import (
	"slices"
	"sync"
	"time"

	"github.com/idmproject/idm/store"
)

// maxOwners is how many workers may fetch one segment at once: the first
// and one duplicate, in the end-game or when the first is too slow.
const maxOwners = 2

// segment states.
const (
	segPending uint8 = iota
	segInflight
	segDone
)

// segState is the scheduler's view of one segment.
type segState struct {
	state  uint8
	owners []*worker // workers with a request out for it
	at     time.Time // when the first current owner asked for it
	freed  bool      // given back by a slow owner: others may duplicate it
}

// scheduler hands segments to workers as they ask: there is no static
// split, so a faster source simply asks more often. When nothing is left
// unassigned, an idle worker duplicates the in-flight segment expected to
// finish last; the first verified copy wins and the other is cancelled.
type scheduler struct {
	mu       sync.Mutex
	done     *store.Bitmap // verified segments; the flusher copies it
	segs     []segState
	cursor   int   // no pending segment below this index
	freed    []int // segments given back by slow sources, oldest first
	left     int   // segments not yet done
	changed  chan struct{}
	segLen   func(i int) int64
	estimate func(w *worker) float64 // a worker's speed, bytes/s; 0 if unknown
}

func newScheduler(done *store.Bitmap, segLen func(int) int64, estimate func(*worker) float64) *scheduler {
	s := &scheduler{
		done:     done,
		segs:     make([]segState, done.Len()),
		segLen:   segLen,
		estimate: estimate,
		changed:  make(chan struct{}),
	}
	for i := range s.segs {
		if done.Has(i) {
			s.segs[i].state = segDone
		} else {
			s.left++
		}
	}
	return s
}

// broadcast wakes every worker waiting for work. Called with mu held.
func (s *scheduler) broadcast() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// next returns a segment for w to fetch, or -1 with a channel that is
// closed when the answer may change. It never returns a segment w already
// has a request out for. dup says another worker fetches the segment too;
// complete, that every segment is done.
func (s *scheduler) next(w *worker) (seg int, dup bool, wait <-chan struct{}, complete bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.left == 0 {
		return -1, false, nil, true
	}
	now := time.Now()
	for len(s.freed) > 0 {
		i := s.freed[0]
		st := &s.segs[i]
		if st.state != segInflight || !st.freed || len(st.owners) >= maxOwners {
			s.freed = s.freed[1:]
			continue
		}
		if slices.Contains(st.owners, w) {
			break
		}
		s.freed = s.freed[1:]
		st.owners = append(st.owners, w)
		return i, true, nil, false
	}
	for i := s.cursor; i < len(s.segs); i++ {
		if s.segs[i].state == segPending {
			s.cursor = i + 1
			s.segs[i] = segState{state: segInflight, owners: []*worker{w}, at: now}
			return i, false, nil, false
		}
	}
	s.cursor = len(s.segs)
	if i := s.endgame(w, now); i >= 0 {
		st := &s.segs[i]
		st.owners = append(st.owners, w)
		return i, true, nil, false
	}
	return -1, false, s.changed, false
}

// endgame picks the in-flight segment expected to finish last that w is
// expected to finish sooner, or -1.
func (s *scheduler) endgame(w *worker, now time.Time) int {
	best, bestFinish := -1, time.Time{}
	mine := s.estimate(w)
	for i := range s.segs {
		st := &s.segs[i]
		if st.state != segInflight || len(st.owners) >= maxOwners || slices.Contains(st.owners, w) {
			continue
		}
		n := float64(s.segLen(i))
		finish := st.at.Add(time.Hour) // an owner of unknown speed: assume the worst
		if v := s.estimate(st.owners[0]); v > 0 {
			took := time.Duration(n / v * float64(time.Second))
			// A segment queued behind another starts later than it was
			// asked for; one past its estimate may not have started at
			// all. Either way it needs up to a whole segment's time from
			// now, and a faster worker should take it.
			finish = st.at.Add(took)
			if finish.Before(now) {
				finish = now.Add(took)
			}
		}
		if mine > 0 && now.Add(time.Duration(n/mine*float64(time.Second))).After(finish) {
			continue // w would not beat the owner
		}
		if best < 0 || finish.After(bestFinish) {
			best, bestFinish = i, finish
		}
	}
	return best
}

// complete records that w verified segment i and returns the other
// workers fetching it, whose requests are now useless. It reports false
// when another copy already won.
func (s *scheduler) complete(w *worker, i int) (losers []*worker, won bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := &s.segs[i]
	if st.state == segDone {
		return nil, false
	}
	for _, o := range st.owners {
		if o != w {
			losers = append(losers, o)
		}
	}
	*st = segState{state: segDone}
	s.done.Set(i)
	s.left--
	s.broadcast()
	return losers, true
}

// release takes w off segment i; a segment nobody fetches any more is
// pending again.
func (s *scheduler) release(w *worker, i int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := &s.segs[i]
	if st.state != segInflight {
		return
	}
	st.owners = slices.DeleteFunc(st.owners, func(o *worker) bool { return o == w })
	if len(st.owners) == 0 {
		*st = segState{state: segPending}
		s.cursor = min(s.cursor, i)
	}
	s.broadcast()
}

// giveBack offers every segment only w is fetching to the other workers,
// because w is too slow; w keeps its requests, and whichever copy is
// verified first wins.
func (s *scheduler) giveBack(w *worker) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for i := range s.segs {
		st := &s.segs[i]
		if st.state == segInflight && !st.freed && len(st.owners) == 1 && st.owners[0] == w {
			st.freed = true
			s.freed = append(s.freed, i)
			n++
		}
	}
	if n > 0 {
		s.broadcast()
	}
	return n
}

// snapshot returns a copy of the done bitmap and how many segments are
// left.
func (s *scheduler) snapshot() (*store.Bitmap, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.done.Clone(), s.left
}

// finished reports whether every segment is done.
func (s *scheduler) finished() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.left == 0
}

// isDone reports whether segment i is verified.
func (s *scheduler) isDone(i int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.segs[i].state == segDone
}

// changes returns a channel closed at the next change of any segment.
func (s *scheduler) changes() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.changed
}
