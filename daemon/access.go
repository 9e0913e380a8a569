package daemon

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"slices"
	"time"

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
}

// owner returns p as the owner of the jobs it asks for.
func (p Peer) owner() *store.Owner {
	return &store.Owner{UID: p.UID, GID: p.GID, Groups: slices.Clone(p.Groups)}
}

// mayChange reports whether p may change a job that o owns: its owner,
// root and the daemon's own user may. Anyone the socket admits may change
// a job with no recorded owner: one made before owners were recorded, or
// by a caller the platform could not identify.
func (p Peer) mayChange(o *store.Owner) bool {
	return o == nil || p.privileged() || p.UID == o.UID
}

// privileged reports whether p is root or the daemon's own user, who may
// change every job and what applies to all of them.
func (p Peer) privileged() bool { return p.UID == 0 || p.UID == os.Geteuid() }

type peerKey struct{}

// withPeer attaches the connection's peer credentials to its context.
func withPeer(ctx context.Context, c net.Conn) context.Context {
	if p, ok := peerCred(c); ok {
		return contextWithPeer(ctx, p)
	}
	return ctx
}

func contextWithPeer(ctx context.Context, p Peer) context.Context {
	return context.WithValue(ctx, peerKey{}, p)
}

func peerFrom(ctx context.Context) (Peer, bool) {
	p, ok := ctx.Value(peerKey{}).(Peer)
	return p, ok
}

// Access says who may use the control API: root, the daemon's own user,
// and members of Group when it is set. Membership is the caller's process
// having the group, as primary or supplementary group, which is what the
// kernel checked when that process opened the socket.
type Access struct {
	// UID is the daemon's user.
	UID int
	// Group is the group whose members may use the API; -1 for none.
	Group int
}

func (a Access) allows(p Peer) bool {
	if p.UID == 0 || p.UID == a.UID {
		return true
	}
	if a.Group < 0 {
		return false
	}
	return p.GID == a.Group || slices.Contains(p.Groups, a.Group)
}

// ErrSocketInUse reports a control socket on which a daemon answers.
var ErrSocketInUse = errors.New("another idmd is listening on the control socket")

// Listen creates the control socket at path with the given mode and, when
// gid >= 0, group. A socket file on which something answers is never
// taken over; one left by a crashed daemon is replaced.
func Listen(path string, mode fs.FileMode, gid int) (net.Listener, error) {
	dirMode := fs.FileMode(0o700)
	if gid >= 0 {
		dirMode = 0o755
	}
	if err := os.MkdirAll(filepath.Dir(path), dirMode); err != nil {
		return nil, fmt.Errorf("socket directory: %w", err)
	}
	if _, err := os.Lstat(path); err == nil {
		c, err := net.DialTimeout("unix", path, time.Second)
		if err == nil {
			c.Close()
			return nil, fmt.Errorf("%w: %s", ErrSocketInUse, path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("remove stale socket: %w", err)
		}
	}
	// The socket is created with no access for others, then opened up to
	// exactly what was asked: no moment with a wider mode.
	old := umask(0o177)
	ln, err := net.Listen("unix", path)
	umask(old)
	if err != nil {
		return nil, err
	}
	if gid >= 0 {
		if err := os.Chown(path, -1, gid); err != nil {
			ln.Close()
			return nil, fmt.Errorf("socket group: %w", err)
		}
	}
	if err := os.Chmod(path, mode); err != nil {
		ln.Close()
		return nil, err
	}
	return ln, nil
}

func pid() int { return os.Getpid() }
