package ctl

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/idmproject/idm/daemon/api"
)

var getCmd = &command{
	name:    "get",
	follows: true,
	args:    "[-r] [--content HASH] -i SECONDS -o DIR -a IP -p PORT [PORT ...]",
	short:   "download a file from several servers and print reports until it is done",
	long: `Get asks idmd to download the file served by the servers at IP on each
PORT into DIR, then prints a report every SECONDS: each server's verified
bytes and speed, and the total. It exits 0 once the file is complete and
verified. A lone URL whose file turns out to be a Metalink is followed by
the Metalink's jobs once it completes: get then reports on each of them
in turn, and exits 0 once they all completed. Ctrl-C stops the reports
only: the download goes on in idmd.`,
	run: (*cli).runGet,
}

func (c *cli) runGet(ctx context.Context, args []string) error {
	fs := newFlagSet("get")
	resume := fs.Bool("r", false, "resume the unfinished download of the same servers into the same directory")
	var interval time.Duration
	fs.Func("i", "print a report every `SECONDS` (such as 1 or 0.5)", func(s string) (err error) {
		interval, err = parseInterval(s)
		return err
	})
	dir := fs.String("o", "", "download into `DIR`")
	name := fs.String("name", "", "save the file as `NAME` in DIR (default: the name its sources give)")
	var content contentFlag
	content.register(fs)
	var hf httpFlags
	hf.register(fs)
	conns := fs.Int("connections", 0, "open `N` connections to each source, 1 to 16 (default 4 to a lone HTTP mirror, else 1)")
	checksum := fs.String("checksum", "", "publish the file only if its whole-file digest is `ALGO=HEX` (sha-256, sha-512, sha-1 or blake3)")
	var src sourceArgs
	src.register(fs)
	if err := parseInterleaved(fs, args, src.positional); err != nil {
		return err
	}
	sources, err := src.list()
	switch {
	case err != nil:
		return usagef(fs, "%v", err)
	case len(sources) == 0:
		return usagef(fs, "missing the servers (-a IP -p PORT ...)")
	case interval == 0:
		return usagef(fs, "missing the report interval (-i SECONDS)")
	case *dir == "":
		return usagef(fs, "missing the output directory (-o DIR)")
	}
	abs, err := absDir(*dir)
	if err != nil {
		return err
	}
	// A lone URL may be a Metalink's, as for add: its jobs are reported
	// once they are made.
	follow := len(sources) == 1 && !strings.HasPrefix(sources[0], "idm://")
	req := api.CreateRequest{Sources: sources, Dir: abs, Name: *name, Content: string(content), Checksum: *checksum, Connections: *conns, Resume: *resume, FollowMetalink: follow}
	if err := hf.apply(&req); err != nil {
		return err
	}
	job, err := c.client.Create(ctx, req)
	if id, ok := ExistingJob(err); ok {
		return &exitError{ExitError, fmt.Sprintf("a download of the same servers into %s exists (job %d); use -r to resume it", abs, id)}
	}
	if err != nil {
		return err
	}
	last, err := c.report(ctx, job.ID, interval)
	if err != nil || len(last.FollowedBy) == 0 {
		return err
	}
	fmt.Fprintf(c.stderr, "Job %d's file is a Metalink: following its %s\n", job.ID, jobList(last.FollowedBy))
	var first *exitError
	for _, id := range last.FollowedBy {
		_, err := c.report(ctx, id, interval)
		var ee *exitError
		if err == nil {
			continue
		}
		if !errors.As(err, &ee) || ee.code == ExitInterrupted {
			return err
		}
		// A job that did not complete is said now, and the others are
		// still reported on; get exits as the first did.
		fmt.Fprintf(c.stderr, "idmctl: %s\n", ee.msg)
		if first == nil {
			first = &exitError{code: ee.code}
		}
	}
	if first != nil {
		return first
	}
	return nil
}

// report follows job id and prints the seed's report every interval and
// once more at the end. It returns the job as it completed.
func (c *cli) report(ctx context.Context, id uint64, interval time.Duration) (*api.Job, error) {
	w, err := c.client.WatchJob(ctx, id)
	if err != nil {
		if ctx.Err() != nil {
			return nil, c.detach(id)
		}
		return nil, err
	}
	f := c.followJob(ctx, id, w)
	defer f.Stop()
	tick := time.NewTicker(interval)
	defer tick.Stop()
	var r reporter
	o := &outage{after: c.outageAfter}
	defer o.stop()
	for {
		select {
		case <-o.C():
			o.fired()
			o.tell(c.stderr, time.Now())
		case ev, ok := <-f.C:
			if !ok {
				if ctx.Err() != nil {
					return nil, c.detach(id)
				}
				if err := f.Err(); err != nil {
					return nil, err
				}
				return nil, errStreamEnded
			}
			if ev.Job.ID != id {
				continue
			}
			if ev.Type != api.EventRemoved {
				o.observe(&ev.Job, time.Now())
				o.tell(c.stderr, time.Now())
			}
			if !isFinal(ev) {
				r.observe(&ev.Job.Progress)
				continue
			}
			if ev.Type != api.EventRemoved {
				r.observe(&ev.Job.Progress)
			}
			if err := r.print(c); err != nil {
				return nil, err
			}
			if err := jobOutcome(ev); err != nil {
				return nil, err
			}
			path := ev.Job.Path
			if path == "" {
				path = filepath.Join(ev.Job.Dir, ev.Job.Name)
			}
			fmt.Fprintf(c.stderr, "Saved %s (%d bytes, blake3 verified)\n", path, ev.Job.Size)
			return &ev.Job, nil
		case <-tick.C:
			if err := r.print(c); err != nil {
				return nil, err
			}
		case <-ctx.Done():
			return nil, c.detach(id)
		}
	}
}

// detach is get's answer to Ctrl-C.
func (c *cli) detach(id uint64) error {
	return &exitError{ExitInterrupted, fmt.Sprintf("job %d keeps running in idmd; follow it with: idmctl watch %d", id, id)}
}

// reporter keeps the progress needed for the next report. Speeds are over
// the interval between the previous report's snapshot and the latest one;
// the first report measures from the snapshot the stream started with.
type reporter struct {
	latest *api.Progress // the newest snapshot
	shown  *api.Progress // the snapshot the last report printed
	before *api.Progress // the one the last report measured from
}

func (r *reporter) observe(p *api.Progress) {
	switch {
	case r.latest == nil && !p.Time.IsZero():
		r.shown = p // the baseline of the first report
	case r.latest != nil && wentBack(r.latest, p):
		// The daemon recounted, as a restarted one does when it checks
		// the partial file: measure from here, not across the recount.
		r.shown, r.before = p, nil
	}
	r.latest = p
}

// wentBack reports whether any counter of cur is behind old's.
func wentBack(old, cur *api.Progress) bool {
	if cur.Verified < old.Verified || cur.Time.Before(old.Time) {
		return true
	}
	for i := range min(len(old.Sources), len(cur.Sources)) {
		if cur.Sources[i].Verified < old.Sources[i].Verified {
			return true
		}
	}
	return false
}

func (r *reporter) print(c *cli) error {
	if r.latest == nil {
		return nil
	}
	if r.latest != r.shown || r.before == nil {
		// Something new: measure from the last report. With nothing
		// new, print the last report's figures again rather than zero
		// speeds between two ticks of the daemon's.
		if r.latest != r.shown {
			r.before = r.shown
		}
		r.shown = r.latest
	}
	return api.WriteReport(c.stdout, r.before, r.shown)
}
