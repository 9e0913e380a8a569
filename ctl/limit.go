package ctl

import (
	"context"
	"fmt"

	"github.com/idmproject/idm/daemon/api"
)

var limitCmd = &command{
	name:  "limit",
	args:  "[--json] [[ID] RATE]",
	short: "show or set the global rate cap, or set a job's",
	long: `Limit with no argument prints the global rate cap. With RATE it sets it;
with ID and RATE it sets that job's own cap. RATE is bytes per second:
a number with an optional K, M, G (powers of 1000) or Ki, Mi, Gi (powers
of 1024), such as 10M or 512Ki; 0, none or off removes the cap.`,
	run: (*cli).runLimit,
}

func (c *cli) runLimit(ctx context.Context, args []string) error {
	fs := newFlagSet("limit")
	fs.BoolVar(&c.json, "json", c.json, "print the answer as JSON")
	if err := parse(fs, args); err != nil {
		return err
	}
	args = fs.Args()
	switch len(args) {
	case 0:
		limit, err := c.client.Limit(ctx)
		if err != nil {
			return err
		}
		return c.printLimit(limit)
	case 1:
		rate, err := parseRate(args[0])
		if err != nil {
			return usagef(fs, "%v", err)
		}
		limit, err := c.client.SetLimit(ctx, rate)
		if err != nil {
			return err
		}
		return c.printLimit(limit)
	case 2:
		id, err := parseID(fs, args[0])
		if err != nil {
			return err
		}
		rate, err := parseRate(args[1])
		if err != nil {
			return usagef(fs, "%v", err)
		}
		j, err := c.client.SetJobLimit(ctx, id, rate)
		if err != nil {
			return err
		}
		if c.json {
			return c.printJSON(j)
		}
		_, err = fmt.Fprintf(c.stdout, "job %d limit: %s\n", j.ID, formatLimit(j.Limit))
		return err
	}
	return usagef(fs, "too many arguments")
}

func (c *cli) printLimit(limit int64) error {
	if c.json {
		return c.printJSON(api.LimitResponse{Limit: limit})
	}
	_, err := fmt.Fprintf(c.stdout, "global limit: %s\n", formatLimit(limit))
	return err
}
