package ctl

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/idmproject/idm/daemon/api"
)

var lineCmd = &command{
	name:  "line",
	args:  "[--json]",
	short: "list the jobs waiting to start, in the order they start",
	long: `Line lists the queued and paused jobs you may change, first to start
first: when a download slot frees, idmd starts the first queued job in
it. A paused job keeps its place, and starts from there once resumed.
move changes the order; idmd keeps it across restarts.`,
	run: (*cli).runLine,
}

func (c *cli) runLine(ctx context.Context, args []string) error {
	fs := newFlagSet("line")
	fs.BoolVar(&c.json, "json", c.json, "print the jobs as JSON")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef(fs, "unexpected argument %q", fs.Arg(0))
	}
	line, err := c.client.Line(ctx)
	if err != nil {
		return err
	}
	if c.json {
		return c.printJSON(line)
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "#\tID\tSTATE\tPROGRESS\tSIZE\tNAME")
	for i := range line {
		j := &line[i]
		fmt.Fprintf(tw, "%d\t%d\t%s\t%s\t%s\t%s\n", i+1, j.ID, j.State, percentOf(j.Verified, j.Size), sizeOrDash(j.Size), summaryName(j))
	}
	return tw.Flush()
}

var moveCmd = &command{
	name:  "move",
	args:  "[--json] ID PLACE",
	short: "move a waiting job in the line",
	long: `Move changes a queued or paused job's place in the line that idmctl line
shows. PLACE is a number, 1 for the front; first or last; or +N or -N to
move it N places back or forward. A place past either end of the line is
that end. Only the jobs you may change count: the others keep their
places.`,
	run: (*cli).runMove,
}

func (c *cli) runMove(ctx context.Context, args []string) error {
	fs := newFlagSet("move")
	fs.BoolVar(&c.json, "json", c.json, "print the answer as JSON (its position counts from 0)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 2 {
		return usagef(fs, "want a job ID and a place")
	}
	id, err := parseID(fs, fs.Arg(0))
	if err != nil {
		return err
	}
	req, err := parsePlace(fs.Arg(1))
	if err != nil {
		return usagef(fs, "%v", err)
	}
	pos, err := c.client.Move(ctx, id, req)
	if err != nil {
		return err
	}
	if c.json {
		return c.printJSON(api.MoveResponse{Position: pos})
	}
	_, err = fmt.Fprintf(c.stdout, "job %d is number %d in line\n", id, pos+1)
	return err
}

// parsePlace reads move's PLACE as the API's move request.
func parsePlace(s string) (api.MoveRequest, error) {
	switch s {
	case "first":
		return api.MoveRequest{Position: 0, From: "start"}, nil
	case "last":
		return api.MoveRequest{Position: 0, From: "end"}, nil
	}
	n, err := strconv.Atoi(s)
	switch {
	case err != nil:
		return api.MoveRequest{}, fmt.Errorf("place %q: want a number, first, last, +N or -N", s)
	case strings.HasPrefix(s, "+") || strings.HasPrefix(s, "-"):
		return api.MoveRequest{Position: n, From: "current"}, nil
	case n < 1:
		return api.MoveRequest{}, fmt.Errorf("place %q: the front of the line is 1", s)
	}
	return api.MoveRequest{Position: n - 1, From: "start"}, nil
}
