package ctl

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/idmproject/idm/daemon/api"
)

// systemUnits are where a system idmd.service is installed: by "idmd
// install", or by the Debian package.
var systemUnits = []string{
	"/etc/systemd/system/idmd.service",
	"/lib/systemd/system/idmd.service",
	"/usr/lib/systemd/system/idmd.service",
}

// defaultSocket returns the socket of a client given none: api.DefaultSocket,
// except that a user with no daemon of their own (no per-user socket and no
// user service) is sent to the system daemon, so that members of group idm
// reach the system service without saying where its socket is.
func defaultSocket() string {
	sock := api.DefaultSocket()
	if os.Getenv(api.EnvSocket) != "" || sock == api.SystemSocket || exists(sock) {
		return sock
	}
	if exists(api.SystemSocket) || (!userUnitInstalled() && anyExists(systemUnits)) {
		return api.SystemSocket
	}
	return sock
}

// notRunningMessage is what idmctl says when nothing answers on socket:
// that the service is installed but stopped, and how to start it, when it
// is installed.
func notRunningMessage(socket string) string {
	switch {
	case socket == api.SystemSocket && anyExists(systemUnits):
		return "idmd is installed but not running; start it with: sudo systemctl start idmd"
	case socket == api.DefaultSocket() && userUnitInstalled():
		return "idmd is installed but not running; start it with: systemctl --user start idmd"
	}
	return fmt.Sprintf("idmd is not running (no answer on %s); start it with \"idmd run\" or install it as a service (\"idmd install\")", socket)
}

// userUnitInstalled reports whether "idmd install --user" installed a
// systemd user unit.
func userUnitInstalled() bool {
	home, err := os.UserHomeDir()
	return err == nil && exists(filepath.Join(home, ".config/systemd/user/idmd.service"))
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

func anyExists(paths []string) bool {
	for _, p := range paths {
		if exists(p) {
			return true
		}
	}
	return false
}
