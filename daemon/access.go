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
	"syscall"
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

// ErrNotSocket reports something at the control socket's path that is not
// a socket: a file, a directory or a symbolic link, which may be someone's
// and is never removed.
var ErrNotSocket = errors.New("not a socket")

// Listen creates the control socket at path with the given mode and, when
// gid >= 0, group. A socket on which something answers is never taken
// over, nor is anything at path that is not a socket; only a socket that
// refuses connections, as a crashed daemon leaves it, is replaced.
func Listen(path string, mode fs.FileMode, gid int) (net.Listener, error) {
	dirMode := fs.FileMode(0o700)
	if gid >= 0 {
		dirMode = 0o755
	}
	if err := os.MkdirAll(filepath.Dir(path), dirMode); err != nil {
		return nil, fmt.Errorf("socket directory: %w", err)
	}
	if err := removeStale(path); err != nil {
		return nil, err
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

// removeStale removes the socket at path if nothing answers on it. It
// leaves alone, and refuses, anything else found there.
func removeStale(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("control socket: %w", err)
	}
	if fi.Mode().Type() != fs.ModeSocket {
		return fmt.Errorf("cannot use %s as the control socket: it is %s, %w; only a socket left by a stopped idmd is replaced",
			path, fileKind(fi.Mode()), ErrNotSocket)
	}
	c, err := net.DialTimeout("unix", path, time.Second)
	if err == nil {
		c.Close()
		return fmt.Errorf("%w: %s", ErrSocketInUse, path)
	}
	// A socket we may not use, or one whose daemon is too busy to
	// accept, may be alive: only a refusal means that nobody listens.
	var ne net.Error
	if errors.Is(err, fs.ErrPermission) || errors.Is(err, syscall.EAGAIN) || (errors.As(err, &ne) && ne.Timeout()) {
		return fmt.Errorf("control socket %s may be in use: %w", path, err)
	}
	// The path must still hold the socket that refused, not something
	// put there since.
	if again, err := os.Lstat(path); err != nil || !os.SameFile(fi, again) {
		return fmt.Errorf("control socket %s changed while idmd looked at it; try again", path)
	}
	if err := os.Remove(path); err != nil {
		return fmt.Errorf("remove stale socket: %w", err)
	}
	return nil
}

// fileKind names what a file is, with its article.
func fileKind(m fs.FileMode) string {
	switch m.Type() {
	case 0:
		return "a regular file"
	case fs.ModeDir:
		return "a directory"
	case fs.ModeSymlink:
		return "a symbolic link"
	case fs.ModeNamedPipe:
		return "a named pipe"
	case fs.ModeDevice, fs.ModeDevice | fs.ModeCharDevice:
		return "a device"
	}
	return "not a regular file"
}

func pid() int { return os.Getpid() }
