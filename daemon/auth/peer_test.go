package auth

import (
	"os"
	"testing"

	"github.com/idmproject/idm/store"
)

// An RPC caller is the daemon's user without its privileges: it may
// change the daemon user's jobs and those with no owner, no other user's
// job, and nothing that applies to every job.
func TestPeer_RPC_LeastRights(t *testing.T) {
	p := RPCPeer()
	if p.UID != os.Geteuid() || !p.RPC {
		t.Fatalf("RPCPeer = %+v, want the daemon's uid %d, marked RPC", p, os.Geteuid())
	}
	if p.Privileged() {
		t.Error("an RPC caller is privileged")
	}
	self := &store.Owner{UID: os.Geteuid(), GID: os.Getegid()}
	other := &store.Owner{UID: os.Geteuid() + 1000, GID: 64000}
	for _, tc := range []struct {
		name  string
		owner *store.Owner
		want  bool
	}{
		{"no owner", nil, true},
		{"the daemon's user", self, true},
		{"another user", other, false},
	} {
		if got := p.MayChange(tc.owner); got != tc.want {
			t.Errorf("%s: MayChange = %v, want %v", tc.name, got, tc.want)
		}
	}
	if o := p.Owner(); o.UID != os.Geteuid() {
		t.Errorf("the jobs it creates belong to uid %d, want the daemon's %d", o.UID, os.Geteuid())
	}
	// The same uid from the socket is the daemon's user, with its rights.
	if q := (Peer{UID: os.Geteuid()}); !q.Privileged() || !q.MayChange(other) {
		t.Error("the daemon's own user over the socket lost its privileges")
	}
}
