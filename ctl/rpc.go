package ctl

import (
	"context"
	"fmt"
)

var rpcSecretCmd = &command{
	name:  "rpc-secret",
	args:  "[--json]",
	short: "print the secret of idmd's aria2 RPC, for a front-end such as AriaNg",
	long: `Rpc-secret prints the secret that every call to idmd's aria2-compatible
JSON-RPC must carry (a front-end's "RPC secret" or "token"); with --json,
the listener's address and URL too. idmd answers it when started with
--rpc-listen ADDR.`,
	run: (*cli).runRPCSecret,
}

func (c *cli) runRPCSecret(ctx context.Context, args []string) error {
	fs := newFlagSet("rpc-secret")
	fs.BoolVar(&c.json, "json", c.json, "print the address, the URL and the secret as JSON")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef(fs, "unexpected argument %q", fs.Arg(0))
	}
	r, err := c.client.RPC(ctx)
	if err != nil {
		return err
	}
	if c.json {
		return c.printJSON(r)
	}
	_, err = fmt.Fprintln(c.stdout, r.Secret)
	return err
}
