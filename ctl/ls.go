package ctl

import (
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
	jobs, err := c.client.Jobs(ctx)
	if err != nil {
		return err
	}
	if c.json {
		return c.printJSON(jobs)
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSTATE\tPROGRESS\tSIZE\tSPEED\tNAME")
	for i := range jobs {
		j := &jobs[i]
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\n", j.ID, j.State, percentOrDash(j), sizeOrDash(j.Size), speedOrDash(j), jobName(j))
	}
	return tw.Flush()
}
