package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestLinksNoProtocol keeps idmctl lean: every command pays for what the
// binary links before it does anything (see ctl/http1.go), and idmctl
// needs no download protocol, no TLS and no HTTP client of net/http's.
func TestLinksNoProtocol(t *testing.T) {
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is needed to list idmctl's packages: %v", err)
	}
	out, err := exec.Command(gobin, "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	banned := []string{
		"net/http",
		"crypto/tls",
		"github.com/zeebo/blake3",
		"github.com/idmproject/idm/transport",
		"github.com/idmproject/idm/transport/httpsrc",
		"github.com/idmproject/idm/daemon/engine",
		"go.etcd.io/bbolt",
	}
	deps := strings.Fields(string(out))
	for _, d := range deps {
		for _, b := range banned {
			if d == b {
				t.Errorf("idmctl links %s", d)
			}
		}
	}
	if len(deps) < 10 {
		t.Fatalf("go list -deps printed %d packages: %q", len(deps), out)
	}
}
