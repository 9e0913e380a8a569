package ctl

import (
	"context"
	"fmt"

	"github.com/idmproject/idm/daemon/api"
)

var versionCmd = &command{
	name:  "version",
	args:  "[--json]",
	short: "print idmctl's and idmd's versions",
	run:   (*cli).runVersion,
}

func (c *cli) runVersion(ctx context.Context, args []string) error {
	fs := newFlagSet("version")
	fs.BoolVar(&c.json, "json", c.json, "print the versions as JSON")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef(fs, "unexpected argument %q", fs.Arg(0))
	}
	v, err := c.client.Version(ctx)
	if c.json {
		if err != nil {
			return err
		}
		return c.printJSON(struct {
			Client string       `json:"client"`
			API    int          `json:"api"`
			Daemon *api.Version `json:"daemon"`
		}{Version, api.APIVersion, v})
	}
	fmt.Fprintf(c.stdout, "idmctl %s (api %d)\n", Version, api.APIVersion)
	if err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "idmd %s (api %d, pid %d, state %s)\n", v.Version, v.API, v.PID, v.StateDir)
	if v.API != api.APIVersion {
		fmt.Fprintf(c.stderr, "idmctl: warning: idmd speaks API %d, idmctl API %d\n", v.API, api.APIVersion)
	}
	return nil
}
