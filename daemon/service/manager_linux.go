package service

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// initNames are what process 1 is called when it is a service manager
// the service library can drive: systemd, and the init of SysV, Upstart,
// OpenRC, BusyBox (rcS) and OpenWrt (procd).
var initNames = []string{"systemd", "init", "openrc-init", "procd", "upstart"}

// managerRunning looks below root for a running service manager: systemd
// when /run/systemd/system exists (as sd_booted does), any other by the
// name of process 1. In a container whose first process is a shell or the
// program itself, there is none.
func managerRunning(root string) error {
	if fi, err := os.Stat(filepath.Join(root, "/run/systemd/system")); err == nil && fi.IsDir() {
		return nil
	}
	b, err := os.ReadFile(filepath.Join(root, "/proc/1/comm"))
	if err != nil {
		// Without /proc nothing can be told; let the library try.
		return nil
	}
	name := strings.TrimSpace(string(b))
	if slices.Contains(initNames, name) {
		return nil
	}
	return fmt.Errorf("%w (process 1 is %q)", ErrNoServiceManager, name)
}
