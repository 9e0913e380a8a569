package ctl

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/idmproject/idm/daemon/api"
)

// Watcher reads an event stream, one event per Next.
type Watcher struct {
	cancel context.CancelFunc
	body   io.ReadCloser
	dec    *json.Decoder
	once   sync.Once
}

func (c *Client) watch(ctx context.Context, path string) (*Watcher, error) {
	ctx, cancel := context.WithCancel(ctx)
	res, err := c.send(ctx, "GET", path, nil)
	if err != nil {
		cancel()
		return nil, err
	}
	return &Watcher{cancel: cancel, body: res.body, dec: json.NewDecoder(res.body)}, nil
}

// Next blocks until the next event. It returns io.EOF when the daemon
// ended the stream cleanly: for a job's stream, after the job's final
// event; for any stream, when the daemon shuts down or dropped a watcher
// that fell too far behind. Any other error means the stream broke.
func (w *Watcher) Next() (api.Event, error) {
	var ev api.Event
	if err := w.dec.Decode(&ev); err != nil {
		if errors.Is(err, io.EOF) {
			return api.Event{}, io.EOF
		}
		return api.Event{}, fmt.Errorf("read event: %w", err)
	}
	return ev, nil
}

// Close ends the stream and unblocks a Next waiting in another
// goroutine. It is safe to call more than once.
func (w *Watcher) Close() error {
	var err error
	w.once.Do(func() {
		w.cancel()
		err = w.body.Close()
	})
	return err
}
