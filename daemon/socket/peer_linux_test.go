//go:build linux && (amd64 || arm64)

// usertest.DialAs is for these only.

package socket

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/idmproject/idm/daemon/auth"
	"github.com/idmproject/idm/internal/usertest"
)

// The peer's credentials as the kernel reports them, supplementary groups
// included.
func TestPeerCred_Groups(t *testing.T) {
	usertest.NeedRoot(t)
	ann := usertest.Ann
	sock := filepath.Join(usertest.ReachableTempDir(t), "s.sock")
	ln, err := Listen(sock, 0o666, -1)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan auth.Peer, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			close(accepted)
			return
		}
		defer c.Close()
		p, _ := peerCred(c)
		accepted <- p
	}()
	c, err := usertest.DialAs(ann, sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	p := <-accepted
	if p.UID != ann.UID || p.GID != ann.GID || !slices.Equal(p.Groups, ann.Groups) || p.PID != os.Getpid() {
		t.Errorf("peer %+v, want uid %d, gid %d, groups %v, pid %d", p, ann.UID, ann.GID, ann.Groups, os.Getpid())
	}
}
