package ctl

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/idmproject/idm/daemon/api"
	"github.com/idmproject/idm/internal/bytesize"
)

var statusCmd = &command{
	name:  "status",
	args:  "[--json] ID",
	short: "show a job in detail, with each server's part",
	run:   (*cli).runStatus,
}

func (c *cli) runStatus(ctx context.Context, args []string) error {
	fs := newFlagSet("status")
	fs.BoolVar(&c.json, "json", c.json, "print the job as JSON")
	id, err := parseOneID(fs, args)
	if err != nil {
		return err
	}
	j, err := c.client.Job(ctx, id)
	if err != nil {
		return err
	}
	if c.json {
		return c.printJSON(j)
	}
	return writeStatus(c.stdout, j, time.Now())
}

// writeStatus prints a job in detail: its fields, then a table of its
// sources. now dates the retries of the sources that are down.
func writeStatus(w io.Writer, j *api.Job, now time.Time) error {
	p := &j.Progress
	tw := tabwriter.NewWriter(w, 0, 0, 1, ' ', 0)
	row := func(k, v string) {
		if v != "" {
			fmt.Fprintf(tw, "%s:\t%s\n", k, v)
		}
	}
	row("Job", fmt.Sprint(j.ID))
	row("State", j.State)
	row("Name", oneLine(j.Name))
	row("Directory", oneLine(j.Dir))
	row("Path", oneLine(j.Path))
	if j.Size > 0 {
		row("Size", fmt.Sprintf("%s (%d bytes)", bytesize.Format(j.Size), j.Size))
		row("Verified", fmt.Sprintf("%s (%s)", bytesize.Format(p.Verified), percent(p.Verified, j.Size)))
	} else {
		row("Size", "not known yet")
		row("Verified", bytesize.Format(p.Verified))
	}
	row("Fetched", bytesize.Format(p.Fetched))
	row("Speed", formatRate(p.Speed))
	if j.Limit > 0 {
		row("Limit", formatLimit(j.Limit))
	}
	if j.Content != "" {
		row("Content", "blake3 "+j.Content)
	}
	row("Checksum", j.Checksum)
	if j.OwnHashes {
		row("Pieces", "no source published their hashes: idmd hashed them as they came")
	}
	if !j.Created.IsZero() {
		row("Created", j.Created.Local().Format(time.DateTime))
	}
	if !j.Finished.IsZero() {
		row("Finished", j.Finished.Local().Format(time.DateTime))
	}
	row("Last error", oneLine(j.LastError))
	if j.FollowMetalink && !j.Done() {
		row("Metalink", "if the file is one, its files become jobs once it completes")
	}
	row("Followed by", jobList(j.FollowedBy))
	if j.Following != 0 {
		row("Following", jobList([]uint64{j.Following}))
	}
	row("Not followed", oneLine(j.FollowError))
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(p.Sources) == 0 {
		return nil
	}
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "#\tSOURCE\tSTATE\tVERIFIED\tSPEED\tCORRUPT\tLAST ERROR")
	for i, s := range p.Sources {
		last := oneLine(s.LastError)
		if s.State == api.SourceDown && !s.NextRetry.IsZero() {
			retry := "retrying now"
			if d := s.NextRetry.Sub(now); d > 0 {
				retry = "retry in " + d.Round(time.Second).String()
			}
			if last == "" {
				last = retry
			} else {
				last += " (" + retry + ")"
			}
		}
		src := s.Source
		if s.Reach != "" {
			src += " (named by a server)"
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%d\t%s\n", i+1, src, orDash(s.State), bytesize.Format(s.Verified), formatRate(s.Speed), s.Corrupt, orDash(last))
	}
	return tw.Flush()
}

// jobList names jobs as a person reads them: "job 8", "jobs 8, 9", or
// "" for none.
func jobList(ids []uint64) string {
	switch len(ids) {
	case 0:
		return ""
	case 1:
		return fmt.Sprintf("job %d", ids[0])
	}
	var b strings.Builder
	b.WriteString("jobs ")
	for i, id := range ids {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprint(&b, id)
	}
	return b.String()
}
