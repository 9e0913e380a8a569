package localapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/idmproject/idm/daemon/api"
	"github.com/idmproject/idm/daemon/jobs"
)

// DefaultEventWriteTimeout is how long an event stream's client may leave
// a written event unread, its socket's buffer full, before it is dropped.
// A client that stopped reading costs the daemon little while it waits,
// and one that was merely slow reconnects.
const DefaultEventWriteTimeout = 5 * time.Second

func (s *Server) serveJobEvents(w http.ResponseWriter, r *http.Request) error {
	id, err := jobID(r)
	if err != nil {
		return err
	}
	return s.stream(w, r, id)
}

func (s *Server) serveEvents(w http.ResponseWriter, r *http.Request) error {
	return s.stream(w, r, 0)
}

// stream writes events as newline-delimited JSON, flushing each, until
// the client leaves, the daemon stops, (for one job) the job ends, or the
// client stops reading: a write that makes no progress for
// EventWriteTimeout, or falling more than 256 jobs behind, drops it.
func (s *Server) stream(w http.ResponseWriter, r *http.Request, id uint64) error {
	if r.Method != http.MethodGet {
		return methodNotAllowed(http.MethodGet)
	}
	sub, err := s.Queue.Subscribe(id)
	if err != nil {
		return err
	}
	defer sub.Close()
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	timeout := s.eventWriteTimeout()
	// net/http ends the response after we return: that write gets a
	// deadline of its own, not what is left of the last event's.
	defer rc.SetWriteDeadline(time.Now().Add(timeout))
	// A shutdown ends a write blocked on a client that does not read.
	stop := context.AfterFunc(r.Context(), func() { rc.SetWriteDeadline(time.Now()) })
	defer stop()
	enc := json.NewEncoder(w)
	for {
		e, err := sub.Next(r.Context())
		if err != nil {
			if errors.Is(err, jobs.ErrFellBehind) {
				s.logger().Info("event stream dropped", "reason", err, "job", id)
			} else if !errors.Is(err, jobs.ErrShutdown) && r.Context().Err() == nil {
				s.logger().Error("event stream", "err", err)
			}
			return nil
		}
		rc.SetWriteDeadline(time.Now().Add(timeout))
		err = enc.Encode(e)
		if err == nil {
			err = rc.Flush()
		}
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) && r.Context().Err() == nil {
				s.logger().Info("event stream dropped", "reason", fmt.Sprintf("a write made no progress for %v", timeout), "job", id)
			}
			return nil
		}
		if id != 0 && (e.Type == api.EventRemoved || e.Job.Done()) {
			return nil
		}
	}
}

func (s *Server) eventWriteTimeout() time.Duration {
	if s.EventWriteTimeout > 0 {
		return s.EventWriteTimeout
	}
	return DefaultEventWriteTimeout
}
