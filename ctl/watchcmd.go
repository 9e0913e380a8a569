package ctl

import (
	"context"
	"encoding/json"
	"time"

	"github.com/idmproject/idm/daemon/api"
)

var watchCmd = &command{
	name:    "watch",
	follows: true,
	args:    "[--json] [ID]",
	short:   "show live progress of one job or of all",
	long: `Watch shows the progress of job ID, or of every job, until the job ends
or Ctrl-C. On a terminal it draws a bar per job and per server; otherwise
it prints a line per running job every second. With --json it prints the
raw events, one JSON object per line. With an ID, it exits like wait.`,
	run: (*cli).runWatch,
}

func (c *cli) runWatch(ctx context.Context, args []string) error {
	fs := newFlagSet("watch")
	fs.BoolVar(&c.json, "json", c.json, "print the events as JSON lines")
	if err := parse(fs, args); err != nil {
		return err
	}
	var (
		f   *feed
		one bool
	)
	switch fs.NArg() {
	case 0:
		w, err := c.client.WatchAll(ctx)
		if err != nil {
			return err
		}
		f = c.followAll(ctx, w)
	case 1:
		id, err := parseID(fs, fs.Arg(0))
		if err != nil {
			return err
		}
		w, err := c.client.WatchJob(ctx, id)
		if err != nil {
			return err
		}
		f, one = c.followJob(ctx, id, w), true
	default:
		return usagef(fs, "want at most one job ID")
	}
	defer f.Stop()

	var (
		last api.Event
		err  error
	)
	switch {
	case c.json:
		last, err = c.watchJSON(f)
	case c.isTerminal(c.stdout):
		last, err = c.watchBars(ctx, f, one)
	default:
		last, err = c.watchLines(ctx, f, one)
	}
	if err != nil {
		return err
	}
	if ctx.Err() != nil {
		return nil // Ctrl-C is how watch ends
	}
	if err := f.Err(); err != nil {
		return err
	}
	if one {
		return jobOutcome(last)
	}
	return nil
}

// The watchXxx functions show f's events until it ends (returning the
// last one) or ctx is done. With one, f follows a single job, which is
// shown even if it has ended already.

func (c *cli) watchJSON(f *feed) (api.Event, error) {
	enc := json.NewEncoder(c.stdout)
	var last api.Event
	for ev := range f.C {
		last = ev
		if err := enc.Encode(ev); err != nil {
			return last, err
		}
	}
	return last, nil
}

func (c *cli) watchLines(ctx context.Context, f *feed, one bool) (api.Event, error) {
	v := newLineView(c.stdout)
	v.one = one
	tick := time.NewTicker(c.lineInterval)
	defer tick.Stop()
	var last api.Event
	for {
		select {
		case ev, ok := <-f.C:
			if !ok {
				return last, v.flush()
			}
			last = ev
			v.update(ev)
		case <-tick.C:
			if err := v.flush(); err != nil {
				return last, err
			}
		case <-ctx.Done():
			return last, nil
		}
	}
}

func (c *cli) watchBars(ctx context.Context, f *feed, one bool) (api.Event, error) {
	v := newBarView(c.stdout)
	v.one = one
	defer v.close()
	var last api.Event
	for {
		select {
		case ev, ok := <-f.C:
			if !ok {
				return last, nil
			}
			last = ev
			v.update(ev)
		case <-ctx.Done():
			return last, nil
		}
	}
}
