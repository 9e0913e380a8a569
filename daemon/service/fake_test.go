package service

import (
	"errors"
	"os"
	"path/filepath"
	"sync"

	"github.com/kardianos/service"
)

// fakeSystem is a service manager that keeps its services in memory and,
// when it plays systemd, writes unit files where kardianos/service would,
// below root (and below $HOME for user units).
type fakeSystem struct {
	name string
	root string

	mu        sync.Mutex
	installed bool
	running   bool
	failed    bool
	calls     []string
	chowned   []string
	config    *service.Config
	statusErr error
	// enableErr makes Install fail after it wrote the unit, as
	// kardianos/service does when systemctl enable fails.
	enableErr error
}

func (f *fakeSystem) String() string    { return f.name }
func (f *fakeSystem) Detect() bool      { return true }
func (f *fakeSystem) Interactive() bool { return true }

func (f *fakeSystem) New(i service.Interface, c *service.Config) (service.Service, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.config = c
	return &fakeService{sys: f, cfg: c}, nil
}

func (f *fakeSystem) record(call string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, call)
}

func (f *fakeSystem) Calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

// fakeService is one service of a fakeSystem.
type fakeService struct {
	sys *fakeSystem
	cfg *service.Config
}

func (s *fakeService) unitPath() (string, error) {
	if user, _ := s.cfg.Option["UserService"].(bool); user {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", err
		}
		return filepath.Join(home, ".config/systemd/user", s.cfg.Name+".service"), nil
	}
	return filepath.Join(s.sys.root, "/etc/systemd/system", s.cfg.Name+".service"), nil
}

func (s *fakeService) Install() error {
	s.sys.record("install")
	if s.sys.installed {
		return errors.New("Init already exists")
	}
	if s.sys.name == systemdPlatform {
		p, err := s.unitPath()
		if err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		script, _ := s.cfg.Option["SystemdScript"].(string)
		if err := os.WriteFile(p, []byte(script), 0o644); err != nil {
			return err
		}
		if s.sys.enableErr != nil {
			return s.sys.enableErr
		}
	}
	s.sys.installed = true
	return nil
}

func (s *fakeService) Uninstall() error {
	s.sys.record("uninstall")
	if !s.sys.installed {
		return errors.New("not installed")
	}
	if s.sys.name == systemdPlatform {
		p, err := s.unitPath()
		if err != nil {
			return err
		}
		if err := os.Remove(p); err != nil {
			return err
		}
	}
	s.sys.installed, s.sys.running = false, false
	return nil
}

func (s *fakeService) Start() error {
	s.sys.record("start")
	if !s.sys.installed {
		return errors.New("not installed")
	}
	s.sys.running, s.sys.failed = true, false
	return nil
}

func (s *fakeService) Stop() error {
	s.sys.record("stop")
	s.sys.running = false
	return nil
}

func (s *fakeService) Restart() error {
	s.sys.record("restart")
	s.sys.running = true
	return nil
}

func (s *fakeService) Status() (service.Status, error) {
	switch {
	case s.sys.statusErr != nil:
		return service.StatusUnknown, s.sys.statusErr
	case !s.sys.installed:
		return service.StatusUnknown, service.ErrNotInstalled
	case s.sys.failed:
		return service.StatusUnknown, errors.New("service in failed state")
	case s.sys.running:
		return service.StatusRunning, nil
	}
	return service.StatusStopped, nil
}

func (s *fakeService) Run() error                                  { return nil }
func (s *fakeService) Logger(chan<- error) (service.Logger, error) { return service.ConsoleLogger, nil }
func (s *fakeService) SystemLogger(chan<- error) (service.Logger, error) {
	return service.ConsoleLogger, nil
}
func (s *fakeService) String() string   { return s.cfg.Name }
func (s *fakeService) Platform() string { return s.sys.name }
