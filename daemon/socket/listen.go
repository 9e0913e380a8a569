package socket

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

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
