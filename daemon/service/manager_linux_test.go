package service

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestManagerRunning(t *testing.T) {
	for _, tt := range []struct {
		name    string
		systemd bool   // /run/systemd/system exists
		pid1    string // process 1's name; "" for no /proc
		running bool
	}{
		{"systemd booted", true, "systemd", true},
		{"systemd in a container", true, "init", true},
		{"SysV init", false, "init", true},
		{"OpenRC", false, "openrc-init", true},
		{"OpenWrt", false, "procd", true},
		{"container with a shell", false, "bash", false},
		{"container with tini", false, "tini", false},
		{"Firecracker guest", false, "process_api", false},
		{"no /proc", false, "", true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			if tt.systemd {
				mkdir(t, filepath.Join(root, "run/systemd/system"))
			}
			if tt.pid1 != "" {
				mkdir(t, filepath.Join(root, "proc/1"))
				if err := os.WriteFile(filepath.Join(root, "proc/1/comm"), []byte(tt.pid1+"\n"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			err := managerRunning(root)
			if running := err == nil; running != tt.running {
				t.Fatalf("managerRunning: %v, want running %v", err, tt.running)
			}
			if err != nil && !errors.Is(err, ErrNoServiceManager) {
				t.Errorf("%v is not ErrNoServiceManager", err)
			}
		})
	}
}

func mkdir(t *testing.T, p string) {
	t.Helper()
	if err := os.MkdirAll(p, 0o755); err != nil {
		t.Fatal(err)
	}
}
