package engine

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/idmproject/idm/store"
)

// testScheduler is a scheduler over n segments of 1 MiB, with fetchers of
// the given speeds (bytes per second, 0 for unknown) and a clock the test
// moves.
type testScheduler struct {
	*scheduler
	clock time.Time
}

func newTestScheduler(n int, speeds ...float64) *testScheduler {
	ts := &testScheduler{clock: time.Unix(1000, 0)}
	ts.scheduler = newScheduler(store.NewBitmap(n), func(int) int64 { return 1 << 20 },
		func(f int) float64 { return speeds[f] })
	ts.now = func() time.Time { return ts.clock }
	return ts
}

func (ts *testScheduler) next(t *testing.T, f int) (int, bool) {
	t.Helper()
	seg, dup, _, complete := ts.scheduler.next(f)
	if complete {
		t.Fatalf("fetcher %d: complete, want a segment", f)
	}
	return seg, dup
}

func TestScheduler_HandsOutInOrder(t *testing.T) {
	s := newTestScheduler(4, 1e6, 1e6)
	for want := range 4 {
		if seg, dup := s.next(t, want%2); seg != want || dup {
			t.Fatalf("next = %d (dup %v), want %d", seg, dup, want)
		}
	}
	// A fetcher that already has a copy of every segment in flight that
	// it could take waits.
	s.next(t, 0)
	s.next(t, 0)
	if seg, _, wait, _ := s.scheduler.next(0); seg != -1 || wait == nil {
		t.Fatalf("next with nothing left = %d, want -1 and a channel to wait on", seg)
	}
}

// In the end-game a fast idle fetcher duplicates the segment expected to
// finish last, at most once: never a third copy, never its own segment.
func TestScheduler_EndgameDuplicatesAtMostOnce(t *testing.T) {
	s := newTestScheduler(3, 1e5, 1e5, 1e7, 1e7)
	for f := range 3 {
		s.next(t, f) // fetcher f takes segment f
	}
	// Segment 2 is the fast fetcher's own; 0 and 1 belong to slow ones and
	// would take 10 s each: the other fast fetcher takes one of them.
	seg, dup := s.next(t, 3)
	if !dup || (seg != 0 && seg != 1) {
		t.Fatalf("fast idle fetcher got %d (dup %v), want a copy of a slow fetcher's segment", seg, dup)
	}
	other := 1 - seg
	seg2, dup2 := s.next(t, 2)
	if !dup2 || seg2 != other {
		t.Fatalf("second fast fetcher got %d (dup %v), want a copy of segment %d", seg2, dup2, other)
	}
	// However often they ask, no segment gets a third copy and no
	// fetcher a second copy of its own.
	for range 3 {
		for f := range 4 {
			s.scheduler.next(f)
		}
	}
	for i, fl := range s.flights {
		if len(fl.owners) > maxOwners || len(slices.Compact(slices.Sorted(slices.Values(fl.owners)))) != len(fl.owners) {
			t.Errorf("segment %d has owners %v", i, fl.owners)
		}
	}
	// The first copy to be verified wins; the slow owner is told.
	losers, won := s.complete(3, seg)
	if !won || !slices.Equal(losers, []int{seg}) {
		t.Errorf("complete = %v, %v; want won, with fetcher %d the loser", losers, won, seg)
	}
	if _, won := s.complete(seg, seg); won {
		t.Error("the slow copy won too")
	}
}

// A fetcher slower than the owner does not duplicate its segment.
func TestScheduler_EndgameSkipsWhenNotFaster(t *testing.T) {
	s := newTestScheduler(1, 1e7, 1e5)
	s.next(t, 0)
	if seg, _, _, _ := s.scheduler.next(1); seg != -1 {
		t.Errorf("slow fetcher duplicated segment %d of a fast one", seg)
	}
}

// A slow fetcher's segments are given back: others take copies of them
// before anything else, and the slow one keeps its requests.
func TestScheduler_GiveBack(t *testing.T) {
	s := newTestScheduler(6, 1e5, 1e7)
	a, _ := s.next(t, 0)
	b, _ := s.next(t, 0)
	if n := s.giveBack(0); n != 2 {
		t.Fatalf("giveBack = %d, want 2", n)
	}
	for _, want := range []int{a, b} {
		if seg, dup := s.next(t, 1); seg != want || !dup {
			t.Fatalf("after give-back the fast fetcher got %d (dup %v), want a copy of %d", seg, dup, want)
		}
	}
	if seg, dup := s.next(t, 1); seg != 2 || dup {
		t.Fatalf("then %d (dup %v), want the next pending segment 2", seg, dup)
	}
	// Segments given back once are not given back again.
	if n := s.giveBack(0); n != 0 {
		t.Errorf("second giveBack = %d, want 0", n)
	}
	// The slow fetcher's copy may still win.
	if losers, won := s.complete(0, a); !won || !slices.Equal(losers, []int{1}) {
		t.Errorf("slow copy complete = %v, %v", losers, won)
	}
}

// A released segment is pending again and handed out once more.
func TestScheduler_Release(t *testing.T) {
	s := newTestScheduler(3, 1e6, 1e6)
	s.next(t, 0) // 0
	s.next(t, 0) // 1
	s.release(0, 0)
	if seg, dup := s.next(t, 1); seg != 0 || dup {
		t.Fatalf("after release got %d (dup %v), want 0 again", seg, dup)
	}
}

// Fetchers taking, losing, failing and finishing segments in a random
// order: every segment ends done exactly once, no segment ever has more
// than two owners, no fetcher is handed a segment it already has, and the
// scheduler says complete exactly when every segment is done.
func TestScheduler_RandomNoSegmentLostOrDoneTwice(t *testing.T) {
	for seed := range uint64(200) {
		r := rand.New(rand.NewPCG(seed, 7))
		const n, fetchers = 40, 5
		speeds := make([]float64, fetchers)
		for f := range speeds {
			speeds[f] = float64(r.IntN(4)) * 1e6 // some unknown (0)
		}
		s := newTestScheduler(n, speeds...)
		held := make([][]int, fetchers) // each fetcher's requests, in order
		doneCount := make([]int, n)
		for step := 0; step < 20000 && !s.finished(); step++ {
			s.clock = s.clock.Add(time.Duration(r.IntN(100)) * time.Millisecond)
			f := r.IntN(fetchers)
			switch op := r.IntN(10); {
			case op < 4: // ask
				seg, _, wait, complete := s.scheduler.next(f)
				if complete {
					t.Fatalf("seed %d: complete with segments left", seed)
				}
				if seg < 0 {
					if wait == nil {
						t.Fatalf("seed %d: no segment and nothing to wait on", seed)
					}
					continue
				}
				if slices.Contains(held[f], seg) {
					t.Fatalf("seed %d: fetcher %d handed segment %d it already has", seed, f, seg)
				}
				held[f] = append(held[f], seg)
				if fl := s.flights[seg]; len(fl.owners) > maxOwners {
					t.Fatalf("seed %d: segment %d has %d owners", seed, seg, len(fl.owners))
				}
			case op < 7 && len(held[f]) > 0: // verify the oldest request
				seg := held[f][0]
				held[f] = held[f][1:]
				losers, won := s.complete(f, seg)
				if won {
					doneCount[seg]++
					for _, l := range losers {
						held[l] = slices.DeleteFunc(held[l], func(x int) bool { return x == seg })
					}
				}
			case op < 8 && len(held[f]) > 0: // the connection fails
				for _, seg := range held[f] {
					s.release(f, seg)
				}
				held[f] = nil
			case op < 9:
				s.giveBack(f)
			}
		}
		if !s.finished() {
			t.Fatalf("seed %d: not finished after 20000 steps", seed)
		}
		for i, c := range doneCount {
			if c != 1 {
				t.Fatalf("seed %d: segment %d done %d times", seed, i, c)
			}
		}
		if _, _, _, complete := s.scheduler.next(0); !complete {
			t.Fatalf("seed %d: every segment done but next does not say complete", seed)
		}
		if len(s.flights) != 0 {
			t.Fatalf("seed %d: %d flights left", seed, len(s.flights))
		}
	}
}
