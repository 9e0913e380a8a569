// Command idmctl controls idmd, the idm download daemon, over its Unix
// socket. See idmctl help.
package main

import (
	"context"
	"os"

	"github.com/idmproject/idm/ctl"
)

func main() {
	os.Exit(ctl.Main(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}
