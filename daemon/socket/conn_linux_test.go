package socket

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/idmproject/idm/daemon/auth"
)

// A connection accepted on the control socket carries its caller, as the
// kernel reports it, in the context ConnContext gives its requests.
func TestConnContext_AttachesPeer(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "s.sock")
	ln, err := Listen(sock, 0o600, -1)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			close(accepted)
			return
		}
		accepted <- c
	}()
	c, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	server, ok := <-accepted
	if !ok {
		t.Fatal("accept failed")
	}
	defer server.Close()
	p, ok := auth.PeerFrom(ConnContext(context.Background(), server))
	groups, _ := os.Getgroups()
	if !ok || p.UID != os.Geteuid() || p.GID != os.Getegid() || p.PID != os.Getpid() || !slices.Equal(p.Groups, groups) {
		t.Errorf("peer %+v (%v), want uid %d, gid %d, pid %d, groups %v", p, ok, os.Geteuid(), os.Getegid(), os.Getpid(), groups)
	}
}

// A connection that is not a Unix socket's has no credentials to read:
// its context carries no caller, which auth.Access.Check refuses here.
func TestConnContext_NoCredentials(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if p, ok := auth.PeerFrom(ConnContext(context.Background(), a)); ok {
		t.Errorf("a pipe's context carries %+v", p)
	}
}
