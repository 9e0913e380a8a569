package ctl

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/idmproject/idm/daemon/api"
)

// errStreamEnded is a stream that ended cleanly before its job did: the
// daemon stopped, or dropped a watcher that fell behind.
var errStreamEnded = errors.New("the event stream ended before the job did")

// feed delivers the events of a stream on C, reconnecting when the
// stream breaks, until a final event, an error or Stop. C is closed at
// the end; Err then says why.
type feed struct {
	// C delivers the events in order; a reconnection starts again with
	// a snapshot.
	C      <-chan api.Event
	cancel context.CancelFunc
	err    error // set before C is closed
}

// followJob starts a feed of job id's events from w, its stream already
// open. The feed ends after the job's final event (completed, failed,
// cancelled or removed).
func (c *cli) followJob(ctx context.Context, id uint64, w *Watcher) *feed {
	open := func(ctx context.Context) (*Watcher, error) { return c.client.WatchJob(ctx, id) }
	return c.follow(ctx, w, open, func(ev api.Event) bool { return ev.Job.ID == id && isFinal(ev) })
}

// followAll starts a feed of every job's events from w, its stream
// already open. It ends only with ctx or an error.
func (c *cli) followAll(ctx context.Context, w *Watcher) *feed {
	return c.follow(ctx, w, c.client.WatchAll, func(api.Event) bool { return false })
}

func isFinal(ev api.Event) bool { return ev.Type == api.EventRemoved || ev.Job.Done() }

func (c *cli) follow(ctx context.Context, w *Watcher, open func(context.Context) (*Watcher, error), final func(api.Event) bool) *feed {
	ctx, cancel := context.WithCancel(ctx)
	ch := make(chan api.Event)
	f := &feed{C: ch, cancel: cancel}
	go func() {
		defer close(ch)
		f.err = c.reconnect(ctx, w, open, final, ch)
	}()
	return f
}

// Stop ends the feed and waits for it; it returns Err. It is safe to call
// more than once.
func (f *feed) Stop() error {
	f.cancel()
	for range f.C {
	}
	return f.err
}

// Err is why the feed ended: nil after a final event, ctx's error, or the
// last failure to reach the daemon. Call it only once C is closed.
func (f *feed) Err() error { return f.err }

// reconnect pumps w's events into out and, whenever the stream breaks
// before a final event, opens a new one every retryInterval for up to
// retryTimeout.
func (c *cli) reconnect(ctx context.Context, w *Watcher, open func(context.Context) (*Watcher, error), final func(api.Event) bool, out chan<- api.Event) error {
	for {
		ended, err := pump(ctx, w, final, out)
		w.Close()
		if ended {
			return nil
		}
		lost := time.Now()
		for {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if time.Since(lost) >= c.retryTimeout {
				return fmt.Errorf("no answer from idmd for %v: %w", c.retryTimeout, err)
			}
			t := time.NewTimer(c.retryInterval)
			select {
			case <-ctx.Done():
				t.Stop()
				return ctx.Err()
			case <-t.C:
			}
			if w, err = open(ctx); err == nil {
				break
			}
			if !retryable(err) {
				return err
			}
		}
	}
}

// pump copies events from w to out until a final event (ended is true),
// the stream's end or an error.
func pump(ctx context.Context, w *Watcher, final func(api.Event) bool, out chan<- api.Event) (ended bool, err error) {
	for {
		ev, err := w.Next()
		if err == io.EOF {
			return false, errStreamEnded
		}
		if err != nil {
			return false, err
		}
		select {
		case out <- ev:
		case <-ctx.Done():
			return false, ctx.Err()
		}
		if final(ev) {
			return true, nil
		}
	}
}

// retryable reports whether a failure to open a stream may pass: the
// daemon is down, failing, shutting down or restarting, not refusing the
// request.
func retryable(err error) bool {
	var ae *APIError
	if errors.As(err, &ae) {
		return IsUnavailable(err) || ae.Status >= 500
	}
	return true
}

// jobOutcome turns a job's final event into the command's result: nil
// for a completed job, an *exitError otherwise.
func jobOutcome(ev api.Event) error {
	j := ev.Job
	switch {
	case ev.Type == api.EventRemoved:
		return &exitError{ExitCancelled, fmt.Sprintf("job %d was removed", j.ID)}
	case j.State == api.StateCompleted:
		return nil
	case j.State == api.StateCancelled:
		return &exitError{ExitCancelled, fmt.Sprintf("job %d was cancelled", j.ID)}
	}
	reason := j.LastError
	if reason == "" {
		reason = "no reason given"
	}
	return &exitError{ExitError, fmt.Sprintf("job %d failed: %s", j.ID, oneLine(reason))}
}
