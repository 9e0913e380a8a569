package main

import (
	"bytes"
	"os"
	"runtime"
	"strings"
	"testing"

	"github.com/idmproject/idm/daemon/service"
)

// Wrong command lines of the service commands are usage errors, caught
// before the service manager is asked anything.
func TestService_Usage(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"install", "--max-active", "0"}, "--max-active 0: must be at least 1"},
		{[]string{"install", "--max-active", "many"}, "invalid value"},
		{[]string{"install", "--limit", "fast"}, "--limit"},
		{[]string{"install", "--bogus"}, "flag provided but not defined"},
		{[]string{"start", "now"}, `unexpected argument "now"`},
		{[]string{"status", "--max-active", "2"}, "flag provided but not defined"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := run(tt.args, &stdout, &stderr); code != 2 {
				t.Errorf("exit %d, want 2; stderr:\n%s", code, stderr.String())
			}
			if !strings.Contains(stderr.String(), tt.want) || !strings.Contains(stderr.String(), "usage: idmd install") {
				t.Errorf("stderr does not say %q and show the usage:\n%s", tt.want, stderr.String())
			}
		})
	}
}

func TestService_Help(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run([]string{"install", "-h"}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d", code)
	}
	if !strings.Contains(stdout.String(), "--download-dir") {
		t.Errorf("install -h does not explain --download-dir:\n%s", stdout.String())
	}
	stdout.Reset()
	run([]string{"help"}, &stdout, &stderr)
	for _, cmd := range []string{"install", "uninstall", "start, stop, restart", "status"} {
		if !strings.Contains(stdout.String(), cmd) {
			t.Errorf("idmd help does not list %s", cmd)
		}
	}
}

// The system service is root's, a user service a user's: each refuses the
// other with a line that says what to type instead.
func TestService_Privilege(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no root on Windows")
	}
	args, want := []string{"install"}, "sudo idmd install"
	if os.Geteuid() == 0 {
		args, want = []string{"install", "--user"}, "leave --user out"
	}
	var stdout, stderr bytes.Buffer
	if code := run(args, &stdout, &stderr); code != 1 {
		t.Errorf("exit %d, want 1", code)
	}
	if !strings.Contains(stderr.String(), want) {
		t.Errorf("stderr does not say %q:\n%s", want, stderr.String())
	}
}

// Where no service manager runs (a container, this test's machine when
// it is one), status and the commands that need a manager say so, and
// how to run idmd without one, instead of the library's "exit status 1".
func TestService_NoServiceManager(t *testing.T) {
	if err := service.ManagerRunning(); err == nil {
		t.Skip("a service manager runs here")
	}
	var stdout, stderr bytes.Buffer
	if code := run([]string{"status"}, &stdout, &stderr); code != exitNotInstalled {
		t.Errorf("status: exit %d, want %d", code, exitNotInstalled)
	}
	want := "idmd: no service manager is running here"
	if out := stdout.String(); !strings.HasPrefix(out, want) || !strings.HasSuffix(out, "; run the daemon in the foreground with: idmd run\n") || strings.Count(out, "\n") != 1 {
		t.Errorf("status said %q, want one line starting %q and saying how to run idmd", out, want)
	}
	for _, cmd := range []string{"start", "stop", "restart"} {
		stdout.Reset()
		stderr.Reset()
		if code := run([]string{cmd}, &stdout, &stderr); code != 1 {
			t.Errorf("%s: exit %d, want 1", cmd, code)
		}
		if out := stderr.String(); !strings.HasPrefix(out, "idmd "+cmd+": no service manager is running here") || strings.Count(out, "\n") != 1 {
			t.Errorf("%s said %q", cmd, out)
		}
	}
}
