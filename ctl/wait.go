package ctl

import (
	"context"

	"github.com/idmproject/idm/daemon/api"
)

var waitCmd = &command{
	name:    "wait",
	follows: true,
	args:    "[--json] ID",
	short:   "wait for a job to end; exit 0 if it completed",
	long: `Wait blocks until the job ends. It exits 0 if the job completed, 1 if
it failed (the reason goes to stderr), 4 if it was cancelled or removed.
If idmd goes away meanwhile, wait tries to reach it again for a minute.`,
	run: (*cli).runWait,
}

func (c *cli) runWait(ctx context.Context, args []string) error {
	fs := newFlagSet("wait")
	fs.BoolVar(&c.json, "json", c.json, "print the job as JSON when it ends")
	id, err := parseOneID(fs, args)
	if err != nil {
		return err
	}
	w, err := c.client.WatchJob(ctx, id)
	if err != nil {
		return err
	}
	f := c.followJob(ctx, id, w)
	var last api.Event
	for ev := range f.C {
		last = ev
	}
	if err := f.Err(); err != nil {
		return err
	}
	if c.json && last.Type != api.EventRemoved {
		if err := c.printJSON(&last.Job); err != nil {
			return err
		}
	}
	return jobOutcome(last)
}
