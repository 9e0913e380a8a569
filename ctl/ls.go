package ctl

import (
	"bufio"
	"context"
	"fmt"
	"text/tabwriter"
)

var lsCmd = &command{
	name:  "ls",
	args:  "[--json]",
	short: "list the jobs",
	run:   (*cli).runLs,
}

func (c *cli) runLs(ctx context.Context, args []string) error {
	fs := newFlagSet("ls")
	fs.BoolVar(&c.json, "json", c.json, "print the jobs as JSON")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef(fs, "unexpected argument %q", fs.Arg(0))
	}
	if c.json {
		jobs, err := c.client.Jobs(ctx)
		if err != nil {
			return err
		}
		return c.printJSON(jobs)
	}
	jobs, err := c.client.Summaries(ctx)
	if err != nil {
		return err
	}
	bw := bufio.NewWriterSize(c.stdout, 64<<10)
	tw := tabwriter.NewWriter(bw, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSTATE\tPROGRESS\tSIZE\tSPEED\tNAME")
	for i := range jobs {
		j := &jobs[i]
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\n", j.ID, j.State, percentOf(j.Verified, j.Size), sizeOrDash(j.Size), speedOf(j.State, j.Speed), summaryName(j))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	return bw.Flush()
}
