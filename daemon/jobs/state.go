package jobs

import "fmt"

// State is where a job stands. Every change of state is an Event applied
// through the table below, and nowhere else.
type State uint8

// The states of a job. Running is the only one that is not stored as
// itself: a running job is stored as queued, which is what it becomes
// when the daemon stops or dies, so starting a job writes nothing.
const (
	Queued    State = iota + 1 // waiting for a download slot
	Running                    // its transfer runs: downloading, or waiting for a source
	Paused                     // stopped until someone resumes it
	Completed                  // its file is verified and published; final
	Failed                     // stopped on an error retrying cannot cure; resumable
	Cancelled                  // stopped for good, its partial file deleted; final
)

// Event is something that happens to a job.
type Event uint8

// The events of a job's life.
const (
	Start    Event = iota + 1 // the queue gives it a download slot
	Complete                  // its transfer published the file
	Fail                      // it cannot start, or its transfer failed for good
	Pause                     // someone pauses it
	Resume                    // someone resumes it
	Cancel                    // someone cancels it
	Stop                      // the daemon stops; it goes on at the next start
)

// transitions is the whole state machine: the state each event leads to
// from each state. An event missing from a state's row is refused.
var transitions = [...]map[Event]State{
	Queued:    {Start: Running, Fail: Failed, Pause: Paused, Resume: Queued, Cancel: Cancelled},
	Running:   {Complete: Completed, Fail: Failed, Pause: Paused, Resume: Running, Cancel: Cancelled, Stop: Queued},
	Paused:    {Pause: Paused, Resume: Queued, Cancel: Cancelled},
	Failed:    {Pause: Paused, Resume: Queued, Cancel: Cancelled},
	Completed: {},
	Cancelled: {Cancel: Cancelled},
}

// On returns the state event e leads to from s; ok is false when s does
// not allow e, and the job stays as it is.
func (s State) On(e Event) (next State, ok bool) {
	if int(s) < len(transitions) {
		if next, ok := transitions[s][e]; ok {
			return next, true
		}
	}
	return s, false
}

// Final reports whether nothing can happen to a job in state s but its
// removal.
func (s State) Final() bool { return s == Completed || s == Cancelled }

// Unfinished reports whether a job in state s may still have a partial
// file that a later run will use.
func (s State) Unfinished() bool { return !s.Final() }

var stateNames = [...]string{
	Queued: "queued", Running: "running", Paused: "paused",
	Completed: "completed", Failed: "failed", Cancelled: "cancelled",
}

// String returns the state's name, as logs show it.
func (s State) String() string {
	if int(s) < len(stateNames) && stateNames[s] != "" {
		return stateNames[s]
	}
	return fmt.Sprintf("State(%d)", s)
}

var eventNames = [...]string{
	Start: "start", Complete: "complete", Fail: "fail", Pause: "pause",
	Resume: "resume", Cancel: "cancel", Stop: "stop",
}

// String returns the event's name as a verb.
func (e Event) String() string {
	if int(e) < len(eventNames) && eventNames[e] != "" {
		return eventNames[e]
	}
	return fmt.Sprintf("Event(%d)", e)
}

// stored returns the word the store keeps for s.
func (s State) stored() string {
	if s == Running {
		return Queued.String()
	}
	return s.String()
}

// parseStored reads the state the store keeps. Stores written before
// states were typed also hold "downloading" and "waiting": jobs that were
// running, queued again since.
func parseStored(word string) (State, error) {
	switch word {
	case "downloading", "waiting", "running":
		return Queued, nil
	}
	for s, name := range stateNames {
		if name == word && name != "" {
			return State(s), nil
		}
	}
	return 0, fmt.Errorf("unknown job state %q", word)
}
