package engine

import (
	"slices"
	"sync"
	"time"

	"github.com/idmproject/idm/store"
)

// maxOwners is how many fetchers may fetch one segment at once: the first
// and one duplicate, in the end-game or when the first is too slow.
const maxOwners = 2

// segment states.
const (
	segPending uint8 = iota
	segInflight
	segDone
)

// A flight is a segment being fetched: who asked for it, and since when.
type flight struct {
	owners []int     // the fetchers with a request out for it, first asker first
	at     time.Time // when the first current owner asked for it
	freed  bool      // given back by a slow owner: others may duplicate it
	alone  bool      // taken by a stream (take): never duplicated
}

// scheduler hands segments to fetchers as they ask: there is no static
// split, so a faster source simply asks more often. When nothing is left
// unassigned, an idle fetcher duplicates the in-flight segment expected
// to finish last; the first verified copy wins and the other is
// cancelled. A fetcher is a number (a worker's index); the scheduler
// knows nothing else of it but its speed, through estimate.
//
// Only segments in flight cost more than a byte each, so a job of 2^20
// segments keeps its scheduler in a megabyte.
type scheduler struct {
	mu       sync.Mutex
	done     *store.Bitmap // verified segments; the flusher copies it
	state    []uint8       // each segment's state
	flights  map[int]*flight
	cursor   int   // no pending segment below this index
	freed    []int // segments given back by slow fetchers, oldest first
	left     int   // segments not yet done
	changed  chan struct{}
	segLen   func(i int) int64
	estimate func(fetcher int) float64 // bytes/s; 0 if unknown
	now      func() time.Time
}

func newScheduler(done *store.Bitmap, segLen func(int) int64, estimate func(int) float64) *scheduler {
	s := &scheduler{
		done:     done,
		state:    make([]uint8, done.Len()),
		flights:  map[int]*flight{},
		segLen:   segLen,
		estimate: estimate,
		changed:  make(chan struct{}),
		now:      time.Now,
	}
	for i := range s.state {
		if done.Has(i) {
			s.state[i] = segDone
		} else {
			s.left++
		}
	}
	return s
}

// broadcast wakes every fetcher waiting for work. Called with mu held.
func (s *scheduler) broadcast() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// next returns a segment for fetcher f, or -1 with a channel that is
// closed when the answer may change. It never returns a segment f already
// has a request out for. dup says another fetcher fetches the segment
// too; complete, that every segment is done.
func (s *scheduler) next(f int) (seg int, dup bool, wait <-chan struct{}, complete bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.left == 0 {
		return -1, false, nil, true
	}
	for len(s.freed) > 0 {
		i := s.freed[0]
		fl := s.flights[i]
		if fl == nil || !fl.freed || len(fl.owners) >= maxOwners {
			s.freed = s.freed[1:]
			continue
		}
		if slices.Contains(fl.owners, f) {
			break
		}
		s.freed = s.freed[1:]
		fl.owners = append(fl.owners, f)
		return i, true, nil, false
	}
	for i := s.cursor; i < len(s.state); i++ {
		if s.state[i] == segPending {
			s.cursor = i + 1
			s.state[i] = segInflight
			s.flights[i] = &flight{owners: []int{f}, at: s.now()}
			return i, false, nil, false
		}
	}
	s.cursor = len(s.state)
	if i := s.endgame(f); i >= 0 {
		fl := s.flights[i]
		fl.owners = append(fl.owners, f)
		return i, true, nil, false
	}
	return -1, false, s.changed, false
}

// endgame picks the in-flight segment expected to finish last that f is
// expected to finish sooner, or -1. Called with mu held.
func (s *scheduler) endgame(f int) int {
	now := s.now()
	best, bestFinish := -1, time.Time{}
	mine := s.estimate(f)
	for i, fl := range s.flights {
		if fl.alone || len(fl.owners) >= maxOwners || slices.Contains(fl.owners, f) {
			continue
		}
		n := float64(s.segLen(i))
		finish := fl.at.Add(time.Hour) // an owner of unknown speed: assume the worst
		if v := s.estimate(fl.owners[0]); v > 0 {
			took := time.Duration(n / v * float64(time.Second))
			// A segment queued behind another starts later than it was
			// asked for; one past its estimate may not have started at
			// all. Either way it needs up to a whole segment's time from
			// now, and a faster fetcher should take it.
			finish = fl.at.Add(took)
			if finish.Before(now) {
				finish = now.Add(took)
			}
		}
		if mine > 0 && now.Add(time.Duration(n/mine*float64(time.Second))).After(finish) {
			continue // f would not beat the owner
		}
		if best < 0 || finish.After(bestFinish) || (finish.Equal(bestFinish) && i < best) {
			best, bestFinish = i, finish
		}
	}
	return best
}

// take gives fetcher f segment i, if it is pending, to fetch alone, and
// reports whether it did. It is how a fetcher that reads the file in
// order, as one stream, asks for work in place of next: the segment it
// is at is the only one it can fetch. No other fetcher duplicates or is
// given back what it takes: the stream reads those bytes anyway, and a
// copy could only race it.
func (s *scheduler) take(f, i int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state[i] != segPending {
		return false
	}
	s.state[i] = segInflight
	s.flights[i] = &flight{owners: []int{f}, at: s.now(), alone: true}
	return true
}

// complete records that fetcher f verified segment i and returns the
// other fetchers fetching it, whose requests are now useless. It reports
// false when another copy already won.
func (s *scheduler) complete(f, i int) (losers []int, won bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state[i] == segDone {
		return nil, false
	}
	if fl := s.flights[i]; fl != nil {
		for _, o := range fl.owners {
			if o != f {
				losers = append(losers, o)
			}
		}
	}
	delete(s.flights, i)
	s.state[i] = segDone
	s.done.Set(i)
	s.left--
	s.broadcast()
	return losers, true
}

// release takes fetcher f off segment i; a segment nobody fetches any
// more is pending again.
func (s *scheduler) release(f, i int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	fl := s.flights[i]
	if s.state[i] != segInflight || fl == nil {
		return
	}
	fl.owners = slices.DeleteFunc(fl.owners, func(o int) bool { return o == f })
	if len(fl.owners) == 0 {
		delete(s.flights, i)
		s.state[i] = segPending
		s.cursor = min(s.cursor, i)
	}
	s.broadcast()
}

// giveBack offers every segment only fetcher f is fetching to the others,
// because f is too slow; f keeps its requests, and whichever copy is
// verified first wins.
func (s *scheduler) giveBack(f int) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	var given []int
	for i, fl := range s.flights {
		if !fl.alone && !fl.freed && len(fl.owners) == 1 && fl.owners[0] == f {
			fl.freed = true
			given = append(given, i)
		}
	}
	slices.Sort(given) // the oldest first, as they were asked for
	s.freed = append(s.freed, given...)
	if len(given) > 0 {
		s.broadcast()
	}
	return len(given)
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
	return s.state[i] == segDone
}

// changes returns a channel closed at the next change of any segment.
func (s *scheduler) changes() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.changed
}
