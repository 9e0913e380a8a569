package jobs

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/idmproject/idm/daemon/api"
	"github.com/idmproject/idm/store"
)

// subscribeWalked subscribes to every job's changes with the snapshot's
// walk already over, as after an empty store's.
func subscribeWalked(h *hub) *subscriber {
	s := h.subscribe(0)
	h.walked(s, 0, true)
	return s
}

// drain takes every change pending for s.
func drain(t *testing.T, h *hub, s *subscriber) []change {
	t.Helper()
	var out []change
	for {
		c, ok, err := h.next(s)
		if err != nil {
			t.Fatalf("next: %v", err)
		}
		if !ok {
			return out
		}
		out = append(out, c)
	}
}

// A subscriber that never reads neither blocks the sender nor delays one
// that does; it holds at most maxPending changes and is dropped, its
// memory freed, when one more job changes.
func TestHub_Send_SlowSubscriberDropped(t *testing.T) {
	h := newHub()
	slow, fast := subscribeWalked(h), subscribeWalked(h)
	for id := uint64(1); id <= 2*maxPending; id++ {
		// Every job changes many times; only distinct jobs count.
		for range 10 {
			h.send(api.EventProgress, id, nil)
		}
		h.send(api.EventState, id, nil)
		if got := drain(t, h, fast); len(got) != 1 || got[0].id != id || got[0].typ != api.EventState {
			t.Fatalf("after job %d's changes the reading subscriber got %+v, want one state change of it", id, got)
		}
		h.mu.Lock()
		held, end := len(slow.pending), slow.end
		h.mu.Unlock()
		switch {
		case id <= maxPending && (held != int(id) || end != nil):
			t.Fatalf("after %d jobs changed the slow subscriber holds %d (ended: %v)", id, held, end)
		case id > maxPending && (held != 0 || !errors.Is(end, ErrFellBehind)):
			t.Fatalf("after %d jobs changed the slow subscriber holds %d, ended with %v; want dropped", id, held, end)
		}
	}
	if _, _, err := h.next(slow); !errors.Is(err, ErrFellBehind) {
		t.Fatalf("next of the dropped subscriber: %v", err)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.subs[slow]; ok || len(h.subs) != 1 {
		t.Fatalf("the hub still holds the dropped subscriber (%d subscribers)", len(h.subs))
	}
}

// Changes to a job not yet written merge into one, in the order the jobs
// first changed, with the strongest type; a removed job keeps its last
// snapshot.
func TestHub_Send_Coalesces(t *testing.T) {
	h := newHub()
	s := subscribeWalked(h)
	one := h.subscribe(2)
	gone := &api.Job{ID: 3, State: api.StateCancelled}
	h.send(api.EventProgress, 1, nil)
	h.send(api.EventProgress, 2, nil)
	h.send(api.EventState, 1, nil)
	h.send(api.EventProgress, 1, nil)
	h.send(api.EventProgress, 3, nil)
	h.send(api.EventRemoved, 3, gone)
	h.send(api.EventProgress, 2, nil)
	want := []change{
		{id: 1, typ: api.EventState},
		{id: 2, typ: api.EventProgress},
		{id: 3, typ: api.EventRemoved, gone: gone},
	}
	if got := drain(t, h, s); !reflect.DeepEqual(got, want) {
		t.Errorf("every job's subscriber got %+v, want %+v", got, want)
	}
	// One job's subscriber starts with that job's state, which the
	// progress ticks do not weaken, and sees no other job.
	if got := drain(t, h, one); !reflect.DeepEqual(got, []change{{id: 2, typ: api.EventState}}) {
		t.Errorf("job 2's subscriber got %+v, want its state", got)
	}
}

// Closing the hub ends every subscription, and one made after it.
func TestHub_Close(t *testing.T) {
	h := newHub()
	s := subscribeWalked(h)
	h.send(api.EventState, 1, nil)
	h.close()
	if _, _, err := h.next(s); !errors.Is(err, ErrShutdown) {
		t.Errorf("next after close: %v", err)
	}
	if _, _, err := h.next(h.subscribe(0)); !errors.Is(err, ErrShutdown) {
		t.Errorf("next of a subscription made after close: %v", err)
	}
}

// openWithJobs opens a daemon whose store holds n paused jobs, which do
// not start by themselves; edit changes each record before it is stored.
func openWithJobs(t testing.TB, n int, edit func(*store.Record)) *Queue {
	t.Helper()
	dir := t.TempDir()
	db, err := store.Open(filepath.Join(dir, "idmd.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	for range n {
		r := &store.Record{Sources: []string{"idm://127.0.0.1:1"}, Dir: t.TempDir(), State: api.StatePaused}
		if edit != nil {
			edit(r)
		}
		if err := db.Create(r, nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	d, err := Open(Config{StateDir: dir, Logger: quietLog()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// next reads one event with a deadline.
func next(t *testing.T, sub *Subscription) api.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	e, err := sub.Next(ctx)
	if err != nil {
		t.Fatalf("next event: %v", err)
	}
	return e
}

// The snapshot walks every job in ID order and yields each once: jobs
// created during it once, a job removed before the walk reaches it never;
// changes to the jobs it has passed follow it.
func TestSubscription_SnapshotWalk(t *testing.T) {
	d := openWithJobs(t, 20, nil)
	sub, err := d.Subscribe(0)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	var got []uint64
	for range 5 {
		got = append(got, next(t, sub).Job.ID)
	}
	// Two new jobs: they start, fail to connect and change state, all
	// during the walk.
	for range 2 {
		if _, _, err := d.Create(context.Background(), api.CreateRequest{Sources: []string{"idm://127.0.0.1:1"}, Dir: t.TempDir()}); err != nil {
			t.Fatal(err)
		}
	}
	if err := d.Remove(context.Background(), 10); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Resume(context.Background(), 2); err != nil {
		t.Fatal(err)
	}
	if err := d.Remove(context.Background(), 3); err != nil {
		t.Fatal(err)
	}
	var want []uint64
	for id := uint64(1); id <= 22; id++ {
		if id != 10 {
			want = append(want, id)
		}
	}
	for len(got) < len(want) {
		e := next(t, sub)
		if e.Type != api.EventState {
			t.Fatalf("a %s event for job %d during the snapshot", e.Type, e.Job.ID)
		}
		got = append(got, e.Job.ID)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("snapshot yielded jobs %v, want %v", got, want)
	}
	// After it, in the order they first changed: job 2 resumed, then job
	// 3 removed; job 10 went before the walk reached it, and so before
	// job 3, so nothing of it comes.
	var resumed bool
	for {
		e := next(t, sub)
		switch {
		case e.Job.ID == 10:
			t.Fatalf("a %s event for job 10, removed before the snapshot reached it", e.Type)
		case e.Job.ID == 2 && e.Type == api.EventState:
			resumed = true
		case e.Job.ID == 3:
			if e.Type != api.EventRemoved || e.Job.State != api.StateCancelled || !resumed {
				t.Fatalf("job 3: %s event in state %s (job 2's resume seen first: %v); want removed, its last snapshot", e.Type, e.Job.State, resumed)
			}
			return
		}
	}
}

// A subscriber that reads nothing while a job runs to its end still gets
// the job's final state, with its path, as the changes in between merge.
func TestSubscription_SlowSubscriberGetsFinalState(t *testing.T) {
	path, want := testFile(t, 1<<20, 7)
	srvs := startServers(t, path, 0, 2<<20, 2<<20)
	d, err := Open(Config{StateDir: t.TempDir(), Logger: quietLog()})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	j, _, err := d.Create(context.Background(), api.CreateRequest{Sources: serverSources(srvs...), Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	// Every job's subscriber reads the job's snapshot, then nothing more
	// until the end; one job's reads nothing at all.
	all, err := d.Subscribe(0)
	if err != nil {
		t.Fatal(err)
	}
	defer all.Close()
	if e := next(t, all); e.Job.ID != j.ID {
		t.Fatalf("snapshot of job %d, want %d", e.Job.ID, j.ID)
	}
	one, err := d.Subscribe(j.ID)
	if err != nil {
		t.Fatal(err)
	}
	defer one.Close()
	waitFor(t, "the job to complete", time.Minute, func() bool {
		j, err := d.Job(j.ID)
		return err == nil && j.State == api.StateCompleted
	})
	for name, sub := range map[string]*Subscription{"job's": one, "every job's": all} {
		var events int
		for {
			e := next(t, sub)
			events++
			if e.Job.ID == j.ID && e.Job.Done() {
				if e.Job.State != api.StateCompleted {
					t.Fatalf("%s stream: job ended %s", name, e.Job.State)
				}
				if got, err := os.ReadFile(e.Job.Path); err != nil || string(got) != string(want) {
					t.Fatalf("%s stream: the final event's path %q does not hold the file (%v)", name, e.Job.Path, err)
				}
				break
			}
		}
		// One change was pending, whatever the ticks: the job's.
		if events > 1 {
			t.Errorf("%s stream: %d events before the final state, want the changes merged", name, events)
		}
	}
}
