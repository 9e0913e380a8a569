// Command idmctl controls idmd, the idm download daemon, over its Unix
// socket. See idmctl help.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/idmproject/idm/ctl"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := ctl.Main(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
