package api

import (
	"os"
	"path/filepath"
)

// System-wide locations, for a daemon run as root or as a system service.
const (
	// SystemSocket is the system daemon's control socket.
	SystemSocket = "/run/idmd/idmd.sock"
	// SystemStateDir is the system daemon's state directory.
	SystemStateDir = "/var/lib/idmd"
)

// Environment variables that override the defaults, for idmd and idmctl
// alike.
const (
	// EnvSocket names the control socket.
	EnvSocket = "IDMD_SOCKET"
	// EnvStateDir names the state directory.
	EnvStateDir = "IDMD_STATE_DIR"
)

// DefaultSocket returns the control socket's path: $IDMD_SOCKET if set;
// as root, /run/idmd/idmd.sock; otherwise $XDG_RUNTIME_DIR/idmd/idmd.sock,
// or idmd.sock in the default state directory when there is no runtime
// directory.
func DefaultSocket() string {
	if s := os.Getenv(EnvSocket); s != "" {
		return s
	}
	if os.Geteuid() == 0 {
		return SystemSocket
	}
	if d := os.Getenv("XDG_RUNTIME_DIR"); d != "" {
		return filepath.Join(d, "idmd", "idmd.sock")
	}
	return filepath.Join(userStateDir(), "idmd.sock")
}

// DefaultStateDir returns the state directory: $IDMD_STATE_DIR if set;
// as root, /var/lib/idmd; otherwise $XDG_STATE_HOME/idmd, or
// ~/.local/state/idmd.
func DefaultStateDir() string {
	if s := os.Getenv(EnvStateDir); s != "" {
		return s
	}
	if os.Geteuid() == 0 {
		return SystemStateDir
	}
	return userStateDir()
}

func userStateDir() string {
	if d := os.Getenv("XDG_STATE_HOME"); d != "" {
		return filepath.Join(d, "idmd")
	}
	home, err := os.UserHomeDir()
	if err != nil {
		home = os.TempDir()
	}
	return filepath.Join(home, ".local", "state", "idmd")
}
