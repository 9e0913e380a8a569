package service

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"unicode"

	"github.com/idmproject/idm/daemon/api"
)

// Name is the service's name: the systemd unit idmd.service, the launchd
// label and the Windows service name.
const Name = "idmd"

// Account is the user and the group the system service runs as. Members of
// the group may use the control socket, and so idmctl.
const Account = "idm"

// EnvironmentFile holds the settings of the system service that an
// administrator may change without reinstalling it (IDMD_MAX_ACTIVE,
// IDMD_LIMIT and, for the packaged unit, IDMD_DOWNLOAD_DIRS).
const EnvironmentFile = "/etc/default/idmd"

// Config is what an installed idmd runs with. Install bakes it into the
// service definition; the zero value is the system service with idmd's
// defaults.
type Config struct {
	// User installs a per-user service (a systemd user unit, a launchd
	// agent) that runs as the user who installs it, instead of the system
	// service that runs as user idm.
	User bool

	// Executable is the idmd binary the service runs, an absolute path.
	// Empty means this program.
	Executable string

	// Socket is the control socket. Empty means /run/idmd/idmd.sock for
	// the system service and the per-user socket (api.DefaultSocket) for a
	// user service.
	Socket string

	// StateDir is where the service keeps its jobs. Empty means
	// /var/lib/idmd for the system service and the per-user state
	// directory (api.DefaultStateDir) for a user service.
	StateDir string

	// MaxActive is how many jobs download at once. Zero bakes nothing in,
	// so idmd's default, or IDMD_MAX_ACTIVE from /etc/default/idmd,
	// applies.
	MaxActive int

	// Limit is the global download cap, such as "20M". Empty bakes
	// nothing in, so IDMD_LIMIT from /etc/default/idmd, or no cap,
	// applies.
	Limit string

	// DownloadDirs are the directories, besides its state directory, that
	// the system service may write to under systemd, whose view of the
	// file system is otherwise read-only. Each must be an absolute path.
	// Downloads into any other directory fail with "idmd cannot write".
	// They are the daemon's download directories too (idmd run
	// --download-dir), the only ones an aria2 RPC caller may use.
	DownloadDirs []string

	// RPCListen, when set, is the address where the service answers
	// aria2's JSON-RPC (idmd run --rpc-listen). Empty bakes nothing in, so
	// IDMD_RPC_LISTEN from /etc/default/idmd, or no RPC, applies.
	RPCListen string
	// RPCListenAny lets RPCListen be an address other than loopback's:
	// then anyone who reaches it may try the secret.
	RPCListenAny bool
	// RPCSecretFile is where the RPC secret is kept. Empty means
	// rpc-secret in the state directory.
	RPCSecretFile string
}

// resolve fills in the defaults and checks what was given.
func (c Config) resolve() (Config, error) {
	if c.Executable == "" {
		exe, err := os.Executable()
		if err != nil {
			return c, fmt.Errorf("find idmd's own path: %w", err)
		}
		if exe, err = filepath.EvalSymlinks(exe); err != nil {
			return c, fmt.Errorf("find idmd's own path: %w", err)
		}
		c.Executable = exe
	}
	socket, stateDir := systemPaths()
	if c.User {
		socket, stateDir = api.DefaultSocket(), api.DefaultStateDir()
	}
	if c.Socket == "" {
		c.Socket = socket
	}
	if c.StateDir == "" {
		c.StateDir = stateDir
	}
	for name, p := range map[string]string{"executable": c.Executable, "socket": c.Socket, "state directory": c.StateDir} {
		if !filepath.IsAbs(p) {
			return c, fmt.Errorf("%s %q is not an absolute path", name, p)
		}
	}
	c.Socket, c.StateDir = filepath.Clean(c.Socket), filepath.Clean(c.StateDir)
	if c.RPCSecretFile != "" {
		if !filepath.IsAbs(c.RPCSecretFile) {
			return c, fmt.Errorf("RPC secret file %q is not an absolute path", c.RPCSecretFile)
		}
		c.RPCSecretFile = filepath.Clean(c.RPCSecretFile)
	}
	for _, v := range append([]string{c.Executable, c.Socket, c.StateDir, c.Limit, c.RPCListen, c.RPCSecretFile}, c.DownloadDirs...) {
		if strings.ContainsFunc(v, unicode.IsControl) {
			return c, fmt.Errorf("%q: control characters cannot go into a service definition", v)
		}
	}
	if c.MaxActive < 0 {
		return c, errors.New("max-active must be at least 1")
	}
	if c.User && len(c.DownloadDirs) > 0 {
		return c, errors.New("download directories are for the system service; a user service may write wherever its user may")
	}
	c.DownloadDirs = slices.Clone(c.DownloadDirs)
	for i, d := range c.DownloadDirs {
		if !filepath.IsAbs(d) {
			return c, fmt.Errorf("download directory %q is not an absolute path", d)
		}
		c.DownloadDirs[i] = filepath.Clean(d)
	}
	return c, nil
}

// Arguments returns the arguments of the service's command line, after
// the executable: "run" and the flags that carry c. c must be resolved.
func (c Config) Arguments() []string {
	args := []string{"run", "--socket", c.Socket, "--state-dir", c.StateDir}
	if !c.User {
		args = append(args, "--system", "--group", Account)
	}
	if c.MaxActive > 0 {
		args = append(args, "--max-active", strconv.Itoa(c.MaxActive))
	}
	if c.Limit != "" {
		args = append(args, "--limit", c.Limit)
	}
	for _, d := range c.DownloadDirs {
		args = append(args, "--download-dir", d)
	}
	if c.RPCListen != "" {
		args = append(args, "--rpc-listen", c.RPCListen)
	}
	if c.RPCListenAny {
		args = append(args, "--rpc-listen-any")
	}
	if c.RPCSecretFile != "" {
		args = append(args, "--rpc-secret-file", c.RPCSecretFile)
	}
	return args
}

// systemPaths returns the system service's default socket and state
// directory: /run/idmd/idmd.sock and /var/lib/idmd, or on Windows a
// directory idmd in %ProgramData%.
func systemPaths() (socket, stateDir string) {
	if runtime.GOOS != "windows" {
		return api.SystemSocket, api.SystemStateDir
	}
	base := os.Getenv("ProgramData")
	if base == "" {
		base = `C:\ProgramData`
	}
	dir := filepath.Join(base, Name)
	return filepath.Join(dir, Name+".sock"), dir
}
