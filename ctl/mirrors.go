package ctl

import (
	"context"
	"fmt"

	"github.com/idmproject/idm/daemon/api"
	"github.com/idmproject/idm/transport/addr"
)

var mirrorsCmd = &command{
	name:  "mirrors",
	args:  "add [--netrc] ID SOURCE ... | rm ID SOURCE ...",
	short: "add sources to a job, or remove some",
	long: `Mirrors add gives job ID more sources (idm servers or HTTP(S) mirrors),
with --netrc the credentials ~/.netrc has for their hosts; mirrors rm
takes sources away, named as given or as status shows them. A running
job goes on at once with its new sources, keeping every verified byte:
this is how a fresh signed link replaces an expired one. A job keeps at
least one source.`,
	run: (*cli).runMirrors,
}

func (c *cli) runMirrors(ctx context.Context, args []string) error {
	fs := newFlagSet("mirrors")
	fs.BoolVar(&c.json, "json", c.json, "print the job as JSON")
	var hf httpFlags
	fs.BoolVar(&hf.netrc, "netrc", false, "add: log in to the HTTP mirrors with the credentials ~/.netrc has for their hosts")
	// Flags may come anywhere, after the verb too: mirrors add --netrc
	// ID URL.
	var pos []string
	if err := parseInterleaved(fs, args, func(a string) error { pos = append(pos, a); return nil }); err != nil {
		return err
	}
	args = pos
	if len(args) < 3 || (args[0] != "add" && args[0] != "rm") {
		return usagef(fs, "want add or rm, a job ID and at least one source")
	}
	if hf.netrc && args[0] != "add" {
		return usagef(fs, "--netrc is for mirrors add")
	}
	id, err := parseID(fs, args[1])
	if err != nil {
		return err
	}
	var req api.SourcesRequest
	if args[0] == "add" {
		logins, err := hf.netrcLogins()
		if err != nil {
			return err
		}
		for _, s := range args[2:] {
			// Said before asking idmd, which checks them again.
			if _, err := addr.Parse(s); err != nil {
				return usagef(fs, "%v", err)
			}
			if logins != nil {
				s = withLogin(s, logins)
			}
			req.Add = append(req.Add, s)
		}
	} else {
		req.Remove = args[2:]
	}
	j, err := c.client.SetSources(ctx, id, req)
	if err != nil {
		return err
	}
	if c.json {
		return c.printJSON(j)
	}
	for _, s := range j.Sources {
		if _, err := fmt.Fprintln(c.stdout, s); err != nil {
			return err
		}
	}
	return nil
}
