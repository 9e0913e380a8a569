package ctl

import (
	"context"
	"errors"
	"fmt"

	"github.com/idmproject/idm/daemon/api"
)

var waitCmd = &command{
	name:    "wait",
	follows: true,
	args:    "[--json] ID",
	short:   "wait for a job to end; exit 0 if it completed",
	long: `Wait blocks until the job ends. It exits 0 if the job completed, 1 if
it failed (the reason goes to stderr), 4 if it was cancelled or removed.
A job whose file turned out to be a Metalink is followed by the
Metalink's jobs when it completes: wait then waits for them too, and
exits as the first of them that did not complete. If idmd goes away
meanwhile, wait tries to reach it again for a minute.`,
	run: (*cli).runWait,
}

func (c *cli) runWait(ctx context.Context, args []string) error {
	fs := newFlagSet("wait")
	fs.BoolVar(&c.json, "json", c.json, "print the job as JSON when it ends, and each job of its Metalink when that ends")
	id, err := parseOneID(fs, args)
	if err != nil {
		return err
	}
	last, err := c.waitJob(ctx, id)
	if err != nil {
		return err
	}
	if err := c.printEnded(last); err != nil {
		return err
	}
	if err := jobOutcome(last); err != nil || len(last.Job.FollowedBy) == 0 {
		return err
	}
	fmt.Fprintf(c.stderr, "Job %d's file is a Metalink: waiting for its %s\n", id, jobList(last.Job.FollowedBy))
	var first *exitError
	for _, f := range last.Job.FollowedBy {
		ev, err := c.waitJob(ctx, f)
		if err != nil {
			return err
		}
		if err := c.printEnded(ev); err != nil {
			return err
		}
		var ee *exitError
		if errors.As(jobOutcome(ev), &ee) {
			// Said now, and the others still waited for: wait exits as
			// the first that did not complete.
			fmt.Fprintf(c.stderr, "idmctl: %s\n", ee.msg)
			if first == nil {
				first = &exitError{code: ee.code}
			}
		}
	}
	if first != nil {
		return first
	}
	return nil
}

// printEnded prints the job of ev, its final event, as JSON when asked
// to: one object for each job waited for, in the order they are waited
// for. A job removed is not there to print.
func (c *cli) printEnded(ev api.Event) error {
	if !c.json || ev.Type == api.EventRemoved {
		return nil
	}
	return c.printJSON(&ev.Job)
}

// waitJob waits for job id to end and returns its final event.
func (c *cli) waitJob(ctx context.Context, id uint64) (api.Event, error) {
	w, err := c.client.WatchJob(ctx, id)
	if err != nil {
		return api.Event{}, err
	}
	f := c.followJob(ctx, id, w)
	var last api.Event
	for ev := range f.C {
		last = ev
	}
	return last, f.Err()
}
