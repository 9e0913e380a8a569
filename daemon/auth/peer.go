package auth

import (
	"context"
	"os"
	"slices"

	"github.com/idmproject/idm/store"
)

// Peer is the process at the other end of a control connection, as the
// kernel reports it.
type Peer struct {
	// UID and GID are the process's effective user and group IDs, and PID
	// its process ID, when it connected.
	UID, GID, PID int
	// Groups are the process's supplementary groups when it connected.
	Groups []int
	// RPC marks a caller of the aria2 RPC listener (package
	// daemon/aria2rpc): no kernel told who it is, it only proved that it
	// knows the RPC secret, which idmctl gives every user the socket
	// admits. It acts with the least rights: its UID is the daemon's, so
	// the jobs it creates are the daemon user's, but it has none of that
	// user's privileges (Privileged is false). It may change the jobs of
	// the daemon's user and those with no owner, no one else's, and
	// download only into Dirs.
	RPC bool
	// Dirs are the only directories an RPC caller may download into,
	// with those in them (see WithinDirs): the daemon's download
	// directories.
	Dirs []string
}

// RPCPeer returns the caller that an aria2 RPC request acts as: the
// daemon's own user, without its privileges, who may download only into
// dirs (see Peer.RPC).
func RPCPeer(dirs ...string) Peer {
	return Peer{UID: os.Geteuid(), GID: os.Getegid(), PID: -1, RPC: true, Dirs: dirs}
}

// Owner returns p as the owner of the jobs it asks for.
func (p Peer) Owner() *store.Owner {
	return &store.Owner{UID: p.UID, GID: p.GID, Groups: slices.Clone(p.Groups)}
}

// MayChange reports whether p may change a job that o owns: its owner,
// root and the daemon's own user may. Anyone the socket admits may change
// a job with no recorded owner: one made before owners were recorded, or
// by a caller the platform could not identify.
func (p Peer) MayChange(o *store.Owner) bool {
	return o == nil || p.Privileged() || p.UID == o.UID
}

// Privileged reports whether p is root or the daemon's own user, who may
// change every job and what applies to all of them. An RPC caller never
// is, whatever its UID: anyone the socket admits may learn the secret.
func (p Peer) Privileged() bool { return !p.RPC && (p.UID == 0 || p.UID == os.Geteuid()) }

type peerKey struct{}

// WithPeer returns a copy of ctx that carries p as the caller of the
// request it belongs to.
func WithPeer(ctx context.Context, p Peer) context.Context {
	return context.WithValue(ctx, peerKey{}, p)
}

// PeerFrom returns the caller that ctx carries. ok is false when it
// carries none: the caller's credentials could not be read, or the call
// comes from within the daemon.
func PeerFrom(ctx context.Context) (p Peer, ok bool) {
	p, ok = ctx.Value(peerKey{}).(Peer)
	return p, ok
}
