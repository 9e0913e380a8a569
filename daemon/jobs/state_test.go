package jobs

import (
	"strings"
	"testing"
)

// The state machine, written out in full: one row per state, one column
// per event, "-" where the event is refused. Every pair is checked.
const wantTransitions = `
            start    complete   fail     pause    resume   cancel     stop
queued      running  -          failed   paused   queued   cancelled  -
running     -        completed  failed   paused   running  cancelled  queued
paused      -        -          -        paused   queued   cancelled  -
completed   -        -          -        -        -        -          -
failed      -        -          -        paused   queued   cancelled  -
cancelled   -        -          -        -        -        cancelled  -
`

func TestState_On(t *testing.T) {
	lines := strings.Split(strings.TrimSpace(wantTransitions), "\n")
	events := strings.Fields(lines[0])
	all := map[State]bool{}
	for s := range State(len(stateNames)) {
		if s != 0 {
			all[s] = true
		}
	}
	checked := 0
	for _, line := range lines[1:] {
		f := strings.Fields(line)
		from := mustState(t, f[0])
		delete(all, from)
		if len(f) != len(events)+1 {
			t.Fatalf("row %q has %d cells, want %d", line, len(f)-1, len(events))
		}
		for i, want := range f[1:] {
			e := mustEvent(t, events[i])
			got, ok := from.On(e)
			switch {
			case want == "-" && ok:
				t.Errorf("%s on %s = %s, want refused", from, e, got)
			case want == "-" && got != from:
				t.Errorf("%s on %s refused but moved to %s", from, e, got)
			case want != "-" && !ok:
				t.Errorf("%s on %s refused, want %s", from, e, want)
			case want != "-" && got != mustState(t, want):
				t.Errorf("%s on %s = %s, want %s", from, e, got, want)
			}
			checked++
		}
	}
	for s := range all {
		t.Errorf("state %s has no row in the test's table", s)
	}
	if want := (len(stateNames) - 1) * (len(eventNames) - 1); checked != want {
		t.Errorf("checked %d transitions, want every one of %d", checked, want)
	}
	// Nothing outside the enumeration moves.
	if next, ok := State(0).On(Start); ok {
		t.Errorf("the zero state started: %s", next)
	}
	if next, ok := Queued.On(Event(0)); ok {
		t.Errorf("the zero event moved a queued job to %s", next)
	}
}

func TestState_Stored(t *testing.T) {
	for s := range State(len(stateNames)) {
		if s == 0 {
			continue
		}
		got, err := parseStored(s.stored())
		if err != nil {
			t.Fatalf("%s stored as %q does not read back: %v", s, s.stored(), err)
		}
		// A running job comes back queued: it goes on at the next start.
		want := s
		if s == Running {
			want = Queued
		}
		if got != want {
			t.Errorf("%s stored as %q reads back as %s, want %s", s, s.stored(), got, want)
		}
	}
	for _, word := range []string{"downloading", "waiting"} {
		if got, err := parseStored(word); err != nil || got != Queued {
			t.Errorf("stored %q = %s, %v; want queued", word, got, err)
		}
	}
	for _, word := range []string{"", "Queued", "done", "queued "} {
		if got, err := parseStored(word); err == nil {
			t.Errorf("stored %q read as %s, want an error", word, got)
		}
	}
}

func mustState(t *testing.T, name string) State {
	t.Helper()
	for s, n := range stateNames {
		if n == name {
			return State(s)
		}
	}
	t.Fatalf("no state %q", name)
	return 0
}

func mustEvent(t *testing.T, name string) Event {
	t.Helper()
	for e, n := range eventNames {
		if n == name {
			return Event(e)
		}
	}
	t.Fatalf("no event %q", name)
	return 0
}
