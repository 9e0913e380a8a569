package service

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kardianos/service"
)

// newTestService returns a Service on a fake service manager, with the
// file system below a temporary root and an account that always exists.
func newTestService(t *testing.T, platform string, cfg Config) (*Service, *fakeSystem) {
	t.Helper()
	t.Setenv("HOME", filepath.Join(t.TempDir(), "home"))
	sys := &fakeSystem{name: platform, root: t.TempDir()}
	if cfg.Executable == "" {
		cfg.Executable = "/usr/bin/idmd"
	}
	s, err := New(cfg, sys)
	if err != nil {
		t.Fatal(err)
	}
	s.root = sys.root
	s.account = func() error { sys.record("account"); return nil }
	s.chown = func(p string) error {
		sys.mu.Lock()
		defer sys.mu.Unlock()
		sys.chowned = append(sys.chowned, strings.TrimPrefix(p, sys.root))
		return nil
	}
	s.userManager = func() error { return nil }
	return s, sys
}

func TestService_Install_System(t *testing.T) {
	s, sys := newTestService(t, systemdPlatform, Config{MaxActive: 2})
	if err := s.Install(); err != nil {
		t.Fatal(err)
	}
	if got, want := sys.Calls(), []string{"account", "install"}; !slices.Equal(got, want) {
		t.Errorf("calls %q, want %q", got, want)
	}
	unit, err := os.ReadFile(filepath.Join(sys.root, "etc/systemd/system/idmd.service"))
	if err != nil {
		t.Fatal(err)
	}
	if string(unit) != Unit(s.Config()) {
		t.Errorf("installed unit is not ours:\n%s", unit)
	}
	c := sys.config
	wantArgs := []string{"run", "--socket", "/run/idmd/idmd.sock", "--state-dir", "/var/lib/idmd", "--system", "--group", "idm", "--max-active", "2"}
	if c.Name != "idmd" || c.Executable != "/usr/bin/idmd" || !slices.Equal(c.Arguments, wantArgs) {
		t.Errorf("service config: name %q, executable %q, arguments %q", c.Name, c.Executable, c.Arguments)
	}
	if user, _ := c.Option["UserService"].(bool); user {
		t.Error("system service installed as a user service")
	}
	if st, err := s.Status(); err != nil || st != Stopped {
		t.Errorf("after install: %v, %v; want installed but not running", st, err)
	}
}

func TestService_Install_Twice(t *testing.T) {
	s, _ := newTestService(t, systemdPlatform, Config{})
	if err := s.Install(); err != nil {
		t.Fatal(err)
	}
	if err := s.Install(); !errors.Is(err, ErrInstalled) {
		t.Errorf("second install: %v, want ErrInstalled", err)
	}
}

func TestService_Install_User(t *testing.T) {
	s, sys := newTestService(t, systemdPlatform, Config{User: true, Socket: "/run/user/7/idmd/idmd.sock", StateDir: "/home/ann/.local/state/idmd"})
	if err := s.Install(); err != nil {
		t.Fatal(err)
	}
	if got, want := sys.Calls(), []string{"install"}; !slices.Equal(got, want) {
		t.Errorf("calls %q, want %q (no account for a user service)", got, want)
	}
	home, _ := os.UserHomeDir()
	unit, err := os.ReadFile(filepath.Join(home, ".config/systemd/user/idmd.service"))
	if err != nil {
		t.Fatal(err)
	}
	if got := unitSettings(t, string(unit))["Install.WantedBy"]; !slices.Equal(got, []string{"default.target"}) {
		t.Errorf("user unit WantedBy=%q", got)
	}
	if user, _ := sys.config.Option["UserService"].(bool); !user {
		t.Error("user service not installed as one")
	}
}

// The system unit of a package is the package manager's: idmd install and
// uninstall leave it alone.
func TestService_Packaged(t *testing.T) {
	s, sys := newTestService(t, systemdPlatform, Config{})
	p := filepath.Join(sys.root, "lib/systemd/system/idmd.service")
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(Unit(s.Config())), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := s.Install(); !errors.Is(err, ErrPackaged) {
		t.Errorf("install: %v, want ErrPackaged", err)
	}
	if err := s.Uninstall(); !errors.Is(err, ErrPackaged) {
		t.Errorf("uninstall: %v, want ErrPackaged", err)
	}
	if calls := sys.Calls(); len(calls) > 0 {
		t.Errorf("the service manager was asked to %q", calls)
	}
}

// The state directory and its downloads directory are created at install
// and handed to user idm, as the package does, and so is a socket's
// directory that systemd does not create; download directories must exist.
func TestService_Install_Directories(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want map[string]os.FileMode
	}{
		{
			name: "defaults",
			want: map[string]os.FileMode{
				"/var/lib/idmd":           0o750 | os.ModeDir,
				"/var/lib/idmd/downloads": 0o775 | os.ModeDir | os.ModeSetgid | os.ModeSticky,
			},
		},
		{
			name: "elsewhere",
			cfg:  Config{StateDir: "/srv/idmd/state", Socket: "/srv/idmd/sock/idmd.sock"},
			want: map[string]os.FileMode{
				"/srv/idmd/state":           0o750 | os.ModeDir,
				"/srv/idmd/state/downloads": 0o775 | os.ModeDir | os.ModeSetgid | os.ModeSticky,
				"/srv/idmd/sock":            0o755 | os.ModeDir,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, sys := newTestService(t, systemdPlatform, tt.cfg)
			if err := s.Install(); err != nil {
				t.Fatal(err)
			}
			for d, mode := range tt.want {
				fi, err := os.Stat(filepath.Join(sys.root, d))
				if err != nil {
					t.Errorf("%s not created: %v", d, err)
					continue
				}
				if fi.Mode() != mode {
					t.Errorf("%s: mode %v, want %v", d, fi.Mode(), mode)
				}
				if !slices.Contains(sys.chowned, d) {
					t.Errorf("%s not handed to idm: %q", d, sys.chowned)
				}
			}
		})
	}

	s, _ := newTestService(t, systemdPlatform, Config{DownloadDirs: []string{"/srv/missing"}})
	if err := s.Install(); err == nil {
		t.Error("install with a missing download directory succeeded")
	}
}

// A failed install leaves no unit behind to make the next one fail.
func TestService_Install_Fails(t *testing.T) {
	s, sys := newTestService(t, systemdPlatform, Config{})
	sys.enableErr = errors.New("exit status 1")
	if err := s.Install(); err == nil {
		t.Fatal("install succeeded although enabling failed")
	}
	if _, err := os.Stat(filepath.Join(sys.root, "etc/systemd/system/idmd.service")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("unit left behind: %v", err)
	}
	sys.enableErr = nil
	if err := s.Install(); err != nil {
		t.Errorf("install after a failed one: %v", err)
	}
}

// systemctl --user needs the user's manager, which su and sudo do not
// give: say so rather than "exit status 1".
func TestService_User_NoManager(t *testing.T) {
	s, sys := newTestService(t, systemdPlatform, Config{User: true, Socket: "/run/user/7/idmd/idmd.sock", StateDir: "/home/ann/.local/state/idmd"})
	s.userManager = userManagerRunning
	t.Setenv("XDG_RUNTIME_DIR", "")
	for name, op := range map[string]func() error{"install": s.Install, "uninstall": s.Uninstall, "start": s.Start} {
		if err := op(); !errors.Is(err, ErrNoUserManager) {
			t.Errorf("%s: %v, want ErrNoUserManager", name, err)
		}
	}
	if calls := sys.Calls(); len(calls) > 0 {
		t.Errorf("the service manager was asked to %q", calls)
	}
}

func TestService_Uninstall_StopsFirst(t *testing.T) {
	s, sys := newTestService(t, systemdPlatform, Config{})
	if err := s.Install(); err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	if err := s.Uninstall(); err != nil {
		t.Fatal(err)
	}
	if got, want := sys.Calls(), []string{"account", "install", "start", "stop", "uninstall"}; !slices.Equal(got, want) {
		t.Errorf("calls %q, want %q", got, want)
	}
	if _, err := os.Stat(filepath.Join(sys.root, "etc/systemd/system/idmd.service")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("unit file left behind: %v", err)
	}
	if st, err := s.Status(); err != nil || st != NotInstalled {
		t.Errorf("after uninstall: %v, %v", st, err)
	}
}

func TestService_NotInstalled(t *testing.T) {
	for _, platform := range []string{systemdPlatform, "darwin-launchd", "windows-service"} {
		t.Run(platform, func(t *testing.T) {
			s, sys := newTestService(t, platform, Config{})
			for name, op := range map[string]func() error{"uninstall": s.Uninstall, "start": s.Start, "stop": s.Stop, "restart": s.Restart} {
				if err := op(); !errors.Is(err, ErrNotInstalled) {
					t.Errorf("%s: %v, want ErrNotInstalled", name, err)
				}
			}
			if calls := sys.Calls(); len(calls) > 0 {
				t.Errorf("the service manager was asked to %q", calls)
			}
		})
	}
}

// Elsewhere than systemd the library's own service definition is used,
// with what install was given and launchd told to start it at load.
func TestService_Install_OtherPlatforms(t *testing.T) {
	s, sys := newTestService(t, "darwin-launchd", Config{User: true, Socket: "/Users/ann/idmd.sock", StateDir: "/Users/ann/idmd"})
	if err := s.Install(); err != nil {
		t.Fatal(err)
	}
	if err := s.Install(); !errors.Is(err, ErrInstalled) {
		t.Errorf("second install: %v, want ErrInstalled", err)
	}
	c := sys.config
	if run, _ := c.Option["RunAtLoad"].(bool); !run {
		t.Error("launchd would not start it at load")
	}
	if user, _ := c.Option["UserService"].(bool); !user {
		t.Error("user service not installed as one")
	}
	if !slices.Equal(c.Arguments, []string{"run", "--socket", "/Users/ann/idmd.sock", "--state-dir", "/Users/ann/idmd"}) {
		t.Errorf("arguments %q", c.Arguments)
	}
	if got := sys.Calls(); !slices.Equal(got, []string{"install"}) {
		t.Errorf("calls %q", got)
	}
}

func TestService_Status(t *testing.T) {
	tests := []struct {
		name                       string
		installed, running, failed bool
		statusErr                  error
		want                       Status
		wantErr                    bool
	}{
		{name: "not installed", want: NotInstalled},
		{name: "stopped", installed: true, want: Stopped},
		{name: "running", installed: true, running: true, want: Running},
		{name: "failed", installed: true, failed: true, want: Failed},
		{name: "manager unreachable", installed: true, statusErr: errors.New("no bus"), wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, sys := newTestService(t, systemdPlatform, Config{})
			sys.installed, sys.running, sys.failed, sys.statusErr = tt.installed, tt.running, tt.failed, tt.statusErr
			st, err := s.Status()
			if (err != nil) != tt.wantErr || (err == nil && st != tt.want) {
				t.Errorf("Status() = %v, %v; want %v (error %v)", st, err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestService_StartCommand(t *testing.T) {
	tests := []struct {
		platform string
		user     bool
		want     string
	}{
		{systemdPlatform, false, "sudo systemctl start idmd"},
		{systemdPlatform, true, "systemctl --user start idmd"},
		{"darwin-launchd", false, "sudo idmd start"},
		{"darwin-launchd", true, "idmd start --user"},
	}
	for _, tt := range tests {
		cfg := Config{User: tt.user}
		if tt.user {
			cfg.Socket, cfg.StateDir = "/tmp/s", "/tmp/d"
		}
		s, _ := newTestService(t, tt.platform, cfg)
		if got := s.StartCommand(); got != tt.want {
			t.Errorf("%s user=%v: %q, want %q", tt.platform, tt.user, got, tt.want)
		}
	}
}

// A stop request of the service manager cancels the daemon's context and
// is answered only once the daemon has finished.
func TestProgram_Stop_WaitsForTheDaemon(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	p := &program{cancel: cancel, done: make(chan struct{})}
	stopped := make(chan struct{})
	go func() {
		p.Stop(nil)
		close(stopped)
	}()
	select {
	case <-ctx.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("Stop did not cancel the daemon's context")
	}
	select {
	case <-stopped:
		t.Fatal("Stop returned before the daemon finished")
	default:
	}
	p.finish()
	p.finish() // safe twice
	select {
	case <-stopped:
	case <-time.After(10 * time.Second):
		t.Fatal("Stop did not return after the daemon finished")
	}
}

// The library's wait for a stop request also ends when the daemon ends by
// itself, so that a failed daemon exits.
func TestProgram_Wait_EndsWithTheDaemon(t *testing.T) {
	p := &program{cancel: func() {}, done: make(chan struct{})}
	waited := make(chan struct{})
	go func() {
		p.wait()
		close(waited)
	}()
	p.finish()
	select {
	case <-waited:
	case <-time.After(10 * time.Second):
		t.Fatal("wait did not end with the daemon")
	}
}

var _ service.System = (*fakeSystem)(nil)
