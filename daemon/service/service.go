package service

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/kardianos/service"
)

// Errors of the service operations; callers compare with errors.Is.
var (
	// ErrNotInstalled reports a service that is not installed.
	ErrNotInstalled = errors.New("idmd is not installed as a service")
	// ErrInstalled reports an install over an installed service.
	ErrInstalled = errors.New("idmd is already installed as a service")
	// ErrPackaged reports a system unit that a package installed, and that
	// only the package manager may change.
	ErrPackaged = errors.New("idmd.service was installed by a package")
	// ErrNoUserManager reports a user service without a systemd user
	// manager to run it, as under su or sudo.
	ErrNoUserManager = errors.New("no systemd user manager runs for you (log in to a session, or: sudo loginctl enable-linger $USER)")
	// ErrNoServiceManager reports a machine on which no service manager
	// runs, such as a container whose first process is not an init
	// system: there is no service to ask about, start or stop.
	ErrNoServiceManager = errors.New("no service manager is running here")
)

// ManagerRunning returns an error wrapping ErrNoServiceManager when no
// service manager runs on this machine. The service library cannot tell:
// it falls back to SysV init scripts, which then fail with no reason given.
func ManagerRunning() error { return managerRunning("/") }

// Status is the state of the installed service.
type Status int

// The states of a service.
const (
	// NotInstalled: the service manager knows no idmd.
	NotInstalled Status = iota
	// Stopped: installed, not running.
	Stopped
	// Failed: installed, stopped after a failure (systemd).
	Failed
	// Running: installed and running (or starting).
	Running
)

// String returns the state in a few words.
func (st Status) String() string {
	switch st {
	case Stopped:
		return "installed but not running"
	case Failed:
		return "installed but not running (it failed)"
	case Running:
		return "running"
	}
	return "not installed"
}

// systemdPlatform is how kardianos/service names systemd.
const systemdPlatform = "linux-systemd"

// Units a package installs, which take the place of ours.
var packageUnits = []string{"/lib/systemd/system/idmd.service", "/usr/lib/systemd/system/idmd.service"}

// Service is idmd's service in the OS service manager.
type Service struct {
	cfg Config
	sys service.System
	svc service.Service

	// root prefixes the system paths that Service reads or creates
	// itself; tests point it at a temporary directory.
	root string
	// account makes sure the system service's user and group exist.
	account func() error
	// chown hands a directory to the system service's user.
	chown func(path string) error
	// userManager tells whether a systemd user manager runs for this user.
	userManager func() error
}

// New returns idmd's service as cfg describes it, in the service manager
// sys; nil means this machine's (service.ChosenSystem). It fills in cfg's
// defaults.
func New(cfg Config, sys service.System) (*Service, error) {
	if sys == nil {
		sys = service.ChosenSystem()
	}
	if sys == nil {
		return nil, service.ErrNoServiceSystemDetected
	}
	cfg, err := cfg.resolve()
	if err != nil {
		return nil, err
	}
	s := &Service{cfg: cfg, sys: sys, account: ensureAccount, chown: chownToAccount, userManager: userManagerRunning}
	kc := &service.Config{
		Name:        Name,
		DisplayName: Name,
		Description: "idm download daemon: downloads one file from several servers at once and resumes after crashes and reboots",
		Executable:  cfg.Executable,
		Arguments:   cfg.Arguments(),
		Option: service.KeyValue{
			"UserService": cfg.User,
			// Our own unit; every value in it is already quoted, and it
			// holds no template actions, so the library writes it as is.
			"SystemdScript": Unit(cfg),
			// launchd: start at boot or login, and again after a crash.
			"RunAtLoad": true,
			"KeepAlive": true,
		},
	}
	if s.svc, err = sys.New(nil, kc); err != nil {
		return nil, err
	}
	return s, nil
}

// Config returns the resolved configuration the service is installed with.
func (s *Service) Config() Config { return s.cfg }

// Platform names the service manager, such as "linux-systemd".
func (s *Service) Platform() string { return s.sys.String() }

func (s *Service) systemd() bool { return s.sys.String() == systemdPlatform }

// unitFilePath returns the file that Install writes on systemd: the system unit
// in /etc/systemd/system or the user unit in ~/.config/systemd/user.
func (s *Service) unitFilePath() (string, error) {
	if !s.cfg.User {
		return filepath.Join(s.root, "/etc/systemd/system", Name+".service"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(home, ".config/systemd/user", Name+".service"), nil
}

// UnitFile returns the systemd unit file that Install writes, and false
// when the service manager is not systemd.
func (s *Service) UnitFile() (string, bool) {
	if !s.systemd() {
		return "", false
	}
	p, err := s.unitFilePath()
	return p, err == nil
}

// packageUnit returns the unit a package installed, if any.
func (s *Service) packageUnit() (string, bool) {
	if s.cfg.User || !s.systemd() {
		return "", false
	}
	for _, p := range packageUnits {
		if _, err := os.Stat(filepath.Join(s.root, p)); err == nil {
			return p, true
		}
	}
	return "", false
}

// ownUnit returns the path of our unit file and whether it exists
// (systemd only).
func (s *Service) ownUnit() (string, bool, error) {
	p, err := s.unitFilePath()
	if err != nil {
		return "", false, err
	}
	_, err = os.Stat(p)
	return p, err == nil, nil
}

// Install installs the service and enables it, so that it starts at boot
// (or, for a user service, at login). It does not start it. For the system
// service under systemd it first creates user and group idm and the state
// directory, as the Debian package does.
func (s *Service) Install() error {
	if s.systemd() {
		if p, ok := s.packageUnit(); ok {
			return fmt.Errorf("%w (%s); its settings are in %s", ErrPackaged, p, EnvironmentFile)
		}
		p, ok, err := s.ownUnit()
		if err != nil {
			return err
		}
		if ok {
			return fmt.Errorf("%w (%s)", ErrInstalled, p)
		}
		if s.cfg.User {
			if err := s.userManager(); err != nil {
				return err
			}
		} else if err := s.prepareSystem(); err != nil {
			return err
		}
		if err := s.svc.Install(); err != nil {
			// The library writes the unit, then enables it: a failure
			// must not leave a unit that is installed but not enabled.
			os.Remove(p)
			return fmt.Errorf("install: %w", err)
		}
		return nil
	}
	if st, err := s.Status(); err == nil && st != NotInstalled {
		return ErrInstalled
	}
	if err := s.svc.Install(); err != nil {
		return fmt.Errorf("install: %w", err)
	}
	return nil
}

// prepareSystem readies what the system unit needs before its first
// start: the account, the state directory with its downloads directory,
// and a socket directory that systemd does not create. The download
// directories are the administrator's and must exist.
func (s *Service) prepareSystem() error {
	for _, d := range s.cfg.DownloadDirs {
		if fi, err := os.Stat(filepath.Join(s.root, d)); err != nil || !fi.IsDir() {
			return fmt.Errorf("download directory %s: not a directory", d)
		}
	}
	if err := s.account(); err != nil {
		return fmt.Errorf("create user %s: %w", Account, err)
	}
	// As the Debian package does: the state directory, and in it the
	// downloads directory of group idm, sticky so that members cannot
	// delete or rename each other's files or idmd's.
	type dir struct {
		path string
		mode fs.FileMode
	}
	dirs := []dir{
		{s.cfg.StateDir, 0o750},
		{filepath.Join(s.cfg.StateDir, "downloads"), 0o775 | fs.ModeSetgid | fs.ModeSticky},
	}
	if d := filepath.Dir(s.cfg.Socket); !within(d, runtimeRoot) && !within(d, s.cfg.StateDir) {
		dirs = append(dirs, dir{d, 0o755})
	}
	for _, d := range dirs {
		path := filepath.Join(s.root, d.path)
		if _, err := os.Stat(path); err == nil {
			continue
		}
		if err := os.MkdirAll(path, 0o755); err != nil {
			return err
		}
		if err := s.chown(path); err != nil {
			return fmt.Errorf("hand %s to user %s: %w", d.path, Account, err)
		}
		if err := os.Chmod(path, d.mode); err != nil {
			return err
		}
	}
	return nil
}

// Uninstall stops the service and removes it. It keeps the state
// directory, and with it the jobs, and the account.
func (s *Service) Uninstall() error {
	if s.systemd() {
		if s.cfg.User {
			if err := s.userManager(); err != nil {
				return err
			}
		}
		_, ok, err := s.ownUnit()
		if err != nil {
			return err
		}
		if !ok {
			if p, ok := s.packageUnit(); ok {
				return fmt.Errorf("%w (%s); remove the package instead", ErrPackaged, p)
			}
			return ErrNotInstalled
		}
	} else if st, err := s.Status(); err == nil && st == NotInstalled {
		return ErrNotInstalled
	}
	if st, err := s.Status(); err == nil && st == Running {
		if err := s.svc.Stop(); err != nil {
			return fmt.Errorf("stop: %w", err)
		}
	}
	if err := s.svc.Uninstall(); err != nil {
		return fmt.Errorf("uninstall: %w", err)
	}
	return nil
}

// Start asks the service manager to start the service.
func (s *Service) Start() error { return s.control("start", s.svc.Start) }

// Stop asks the service manager to stop the service.
func (s *Service) Stop() error { return s.control("stop", s.svc.Stop) }

// Restart asks the service manager to stop the service and start it again.
func (s *Service) Restart() error { return s.control("restart", s.svc.Restart) }

func (s *Service) control(action string, do func() error) error {
	if s.systemd() && s.cfg.User {
		if err := s.userManager(); err != nil {
			return err
		}
	}
	if st, err := s.Status(); err == nil && st == NotInstalled {
		return ErrNotInstalled
	}
	if err := do(); err != nil {
		return fmt.Errorf("%s: %w", action, err)
	}
	return nil
}

// Status asks the service manager for the service's state.
func (s *Service) Status() (Status, error) {
	st, err := s.svc.Status()
	switch {
	case errors.Is(err, service.ErrNotInstalled):
		return NotInstalled, nil
	case err != nil && strings.Contains(err.Error(), "failed state"):
		return Failed, nil
	case err != nil:
		return NotInstalled, err
	case st == service.StatusRunning:
		return Running, nil
	case st == service.StatusStopped:
		return Stopped, nil
	}
	return NotInstalled, nil
}

// StartCommand returns what a person types to start the installed service.
func (s *Service) StartCommand() string {
	switch {
	case s.systemd() && s.cfg.User:
		return "systemctl --user start " + Name
	case s.systemd():
		return "sudo systemctl start " + Name
	case s.cfg.User:
		return "idmd start --user"
	}
	return "sudo idmd start"
}

// ensureAccount creates the system user and group idm when they are
// missing, as the Debian package's postinst does.
func ensureAccount() error {
	if _, err := user.Lookup(Account); err == nil {
		return nil
	}
	if _, err := user.LookupGroup(Account); err != nil {
		if out, err := exec.Command("groupadd", "--system", Account).CombinedOutput(); err != nil {
			return fmt.Errorf("groupadd: %v: %s", err, strings.TrimSpace(string(out)))
		}
	}
	out, err := exec.Command("useradd", "--system", "--gid", Account,
		"--home-dir", "/var/lib/idmd", "--no-create-home", "--shell", "/usr/sbin/nologin",
		"--comment", "idm download daemon", Account).CombinedOutput()
	if err != nil {
		return fmt.Errorf("useradd: %v: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}

// chownToAccount makes user and group idm own path.
func chownToAccount(path string) error {
	u, err := user.Lookup(Account)
	if err != nil {
		return err
	}
	uid, err := strconv.Atoi(u.Uid)
	if err != nil {
		return err
	}
	gid, err := strconv.Atoi(u.Gid)
	if err != nil {
		return err
	}
	return os.Chown(path, uid, gid)
}

// userManagerRunning reports ErrNoUserManager unless a systemd user manager
// runs for this user: systemctl --user needs one.
func userManagerRunning() error {
	dir := os.Getenv("XDG_RUNTIME_DIR")
	if dir == "" {
		return ErrNoUserManager
	}
	if _, err := os.Stat(filepath.Join(dir, "systemd", "private")); err != nil {
		return ErrNoUserManager
	}
	return nil
}
