package ctl

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A user whose own daemon is installed as a systemd user unit but stopped
// is told how to start it; any other socket gets the general message.
func TestNotRunningMessage(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	sock := filepath.Join(t.TempDir(), "idmd.sock")
	t.Setenv("IDMD_SOCKET", sock)

	if got := notRunningMessage(sock); !strings.Contains(got, "idmd is not running (no answer on "+sock+")") {
		t.Errorf("no user unit: %q", got)
	}

	unit := filepath.Join(home, ".config/systemd/user/idmd.service")
	if err := os.MkdirAll(filepath.Dir(unit), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(unit, []byte("[Service]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	want := "idmd is installed but not running; start it with: systemctl --user start idmd"
	if got := notRunningMessage(sock); got != want {
		t.Errorf("user unit installed: %q, want %q", got, want)
	}
	if got := notRunningMessage(filepath.Join(t.TempDir(), "other.sock")); strings.Contains(got, "installed") {
		t.Errorf("a socket that is not the user's default: %q", got)
	}
}

// $IDMD_SOCKET is used as it is, whatever else exists.
func TestDefaultSocket_Env(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "missing.sock")
	t.Setenv("IDMD_SOCKET", sock)
	if got := defaultSocket(); got != sock {
		t.Errorf("defaultSocket() = %q, want $IDMD_SOCKET %q", got, sock)
	}
}
