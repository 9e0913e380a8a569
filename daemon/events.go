package daemon

import (
	"sync"

	"github.com/idmproject/idm/daemon/api"
)

// subscriberBuffer is how many events a subscriber may fall behind before
// it is dropped; a dropped watcher reconnects and starts from a snapshot.
const subscriberBuffer = 256

// hub fans events out to subscribers without ever blocking the sender.
type hub struct {
	mu     sync.Mutex
	subs   map[*subscriber]struct{}
	closed bool
}

type subscriber struct {
	job uint64 // 0 for all jobs
	ch  chan api.Event
}

func newHub() *hub { return &hub{subs: map[*subscriber]struct{}{}} }

func (h *hub) listening() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.subs) > 0
}

func (h *hub) subscribe(job uint64, initial []api.Event) (<-chan api.Event, func()) {
	s := &subscriber{job: job, ch: make(chan api.Event, subscriberBuffer+len(initial))}
	for _, e := range initial {
		s.ch <- e
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		close(s.ch)
		return s.ch, func() {}
	}
	h.subs[s] = struct{}{}
	return s.ch, func() { h.drop(s) }
}

func (h *hub) drop(s *subscriber) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.subs[s]; ok {
		delete(h.subs, s)
		close(s.ch)
	}
}

func (h *hub) send(e api.Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for s := range h.subs {
		if s.job != 0 && s.job != e.Job.ID {
			continue
		}
		select {
		case s.ch <- e:
		default:
			delete(h.subs, s)
			close(s.ch)
		}
	}
}

func (h *hub) close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	for s := range h.subs {
		delete(h.subs, s)
		close(s.ch)
	}
}
