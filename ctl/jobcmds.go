package ctl

import (
	"context"
	"fmt"
	"regexp"
	"strconv"

	"github.com/idmproject/idm/daemon/api"
)

var (
	pauseCmd = &command{
		name:  "pause",
		args:  "ID ...",
		short: "pause jobs",
		run:   jobAction("pause", (*Client).Pause),
	}
	resumeCmd = &command{
		name:  "resume",
		args:  "ID ...",
		short: "resume paused, waiting or failed jobs",
		run:   jobAction("resume", (*Client).Resume),
	}
	cancelCmd = &command{
		name:  "cancel",
		args:  "ID ...",
		short: "cancel jobs for good, deleting their partial files",
		run:   jobAction("cancel", (*Client).Cancel),
	}
	rmCmd = &command{
		name:  "rm",
		args:  "ID ...",
		short: "remove jobs (cancelling running ones; finished files are kept)",
		run: jobAction("rm", func(c *Client, ctx context.Context, id uint64) (*api.Job, error) {
			return nil, c.Remove(ctx, id)
		}),
	}
)

// jobAction makes a command that applies do to each job given, prints a
// line per job and fails if any of them failed.
func jobAction(name string, do func(*Client, context.Context, uint64) (*api.Job, error)) func(*cli, context.Context, []string) error {
	return func(c *cli, ctx context.Context, args []string) error {
		fs := newFlagSet(name)
		if err := parse(fs, args); err != nil {
			return err
		}
		ids, err := parseIDs(fs, fs.Args())
		if err != nil {
			return err
		}
		failed := false
		for _, id := range ids {
			j, err := do(c.client, ctx, id)
			switch {
			case IsDaemonNotRunning(err) || ctx.Err() != nil:
				return err
			case err != nil:
				fmt.Fprintf(c.stderr, "idmctl: %s\n", aboutJob(id, err))
				failed = true
			case j == nil:
				fmt.Fprintf(c.stdout, "job %d: removed\n", id)
			default:
				fmt.Fprintf(c.stdout, "job %d: %s\n", id, j.State)
			}
		}
		if failed {
			return &exitError{code: ExitError}
		}
		return nil
	}
}

// aboutJob is err's message, prefixed with the job it is about unless it
// names the job already.
func aboutJob(id uint64, err error) string {
	msg := err.Error()
	re := regexp.MustCompile(`\b` + strconv.FormatUint(id, 10) + `\b`)
	if re.MatchString(msg) {
		return msg
	}
	return fmt.Sprintf("job %d: %s", id, msg)
}
