package aria2rpc

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/idmproject/idm/daemon/api"
	"github.com/idmproject/idm/daemon/auth"
	"github.com/idmproject/idm/daemon/jobs"
)

// aria2's notifications.
const (
	notifyStart    = "aria2.onDownloadStart"
	notifyPause    = "aria2.onDownloadPause"
	notifyStop     = "aria2.onDownloadStop"
	notifyComplete = "aria2.onDownloadComplete"
	notifyError    = "aria2.onDownloadError"
)

// notification returns the notification of a download that has come to
// status st, if aria2 sends one then: none for a download that waits.
func notification(st string) string {
	return map[string]string{
		statusActive:   notifyStart,
		statusPaused:   notifyPause,
		statusRemoved:  notifyStop,
		statusComplete: notifyComplete,
		statusError:    notifyError,
	}[st]
}

// watch follows the job queue's events until ctx ends or the queue
// closes, and sends the WebSocket clients a notification each time a job
// the RPC caller may see changes its aria2 status. A subscription that
// falls behind is opened again: the statuses seen so far are kept, so
// only real changes are told.
func (s *Server) watch(ctx context.Context) {
	rpc := auth.WithPeer(ctx, auth.RPCPeer(s.Dirs...))
	seen := map[uint64]string{}
	// The jobs that exist when the server starts are where it starts
	// from: their states are news to no one.
	since := time.Now()
	for ctx.Err() == nil {
		sub, err := s.Queue.Subscribe(0)
		if err != nil {
			return
		}
		err = s.follow(ctx, rpc, sub, seen, since)
		sub.Close()
		if errors.Is(err, jobs.ErrShutdown) {
			return
		}
		since = time.Time{}
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// follow notifies the changes sub brings until it ends. A job first seen
// that was created before since is taken as it is.
func (s *Server) follow(ctx, rpc context.Context, sub *jobs.Subscription, seen map[uint64]string, since time.Time) error {
	for {
		ev, err := sub.Next(ctx)
		if err != nil {
			return err
		}
		id := ev.Job.ID
		prev, known := seen[id]
		var st string
		switch {
		case ev.Type == api.EventRemoved:
			delete(seen, id)
			if !known || stopped(prev) {
				continue
			}
			// Removed before it stopped: stopped by the user.
			st = statusRemoved
		case !known && !s.Queue.MayChange(rpc, id):
			continue
		default:
			st = statusOf(&ev.Job)
			seen[id] = st
			if !known && ev.Job.Created.Before(since) {
				continue
			}
			if !known {
				prev = statusWaiting // a new download waits first
			}
		}
		// A stopped download changes no more in aria2: a failed one that
		// is removed is forgotten, not stopped by the user.
		if st == prev || stopped(prev) && stopped(st) {
			continue
		}
		if name := notification(st); name != "" {
			s.notify(name, id)
		}
	}
}

// notify sends notification name of job id to every WebSocket client.
func (s *Server) notify(name string, id uint64) {
	params, _ := json.Marshal([]map[string]string{{"gid": gid(id)}})
	msg, _ := json.Marshal(struct {
		JSONRPC string          `json:"jsonrpc"`
		Method  string          `json:"method"`
		Params  json.RawMessage `json:"params"`
	}{"2.0", name, params})
	s.broadcast(msg)
}
