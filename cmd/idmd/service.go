package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/idmproject/idm/daemon/service"
	"github.com/idmproject/idm/internal/bytesize"
)

// Exit statuses of idmd status, as systemctl and LSB init scripts use them.
const (
	exitNotRunning   = 3
	exitNotInstalled = 4
)

const serviceUsageText = `usage: idmd install [--user] [flags of run] [--download-dir DIR]...
       idmd uninstall|start|stop|restart|status [--user]

install puts idmd in the OS service manager (systemd, launchd, Windows) so
that it starts at boot, and bakes --socket, --state-dir, --max-active,
--limit, --download-dir and the --rpc-* flags into the service. The system
service runs as user idm and members of group idm may use idmctl; --user
installs a service of your own instead. Under systemd the system service may
write only its state and the download directories given with --download-dir.
uninstall keeps the jobs.
`

// dirList is a repeatable flag.
type dirList []string

func (d *dirList) String() string     { return strings.Join(*d, ",") }
func (d *dirList) Set(v string) error { *d = append(*d, v); return nil }

// runService runs one of the service commands.
func runService(cmd string, args []string, stdout, stderr io.Writer) int {
	flags := flag.NewFlagSet("idmd "+cmd, flag.ContinueOnError)
	flags.SetOutput(io.Discard)
	user := flags.Bool("user", false, "")
	var socket, stateDir, limit, rpcListen, rpcSecretFile *string
	var maxActive *int
	var rpcAny *bool
	var downloadDirs dirList
	switch cmd {
	case "install":
		socket = flags.String("socket", "", "")
		stateDir = flags.String("state-dir", "", "")
		maxActive = flags.Int("max-active", 0, "")
		limit = flags.String("limit", "", "")
		flags.Var(&downloadDirs, "download-dir", "")
		rpcListen = flags.String("rpc-listen", "", "")
		rpcAny = flags.Bool("rpc-listen-any", false, "")
		rpcSecretFile = flags.String("rpc-secret-file", "", "")
	case "status":
		socket = flags.String("socket", "", "")
	}
	fail := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "idmd %s: "+format+"\n\n", append([]any{cmd}, a...)...)
		fmt.Fprint(stderr, serviceUsageText)
		return 2
	}
	onlyOnce(flags, "download-dir")
	if err := flags.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stdout, serviceUsageText)
			return 0
		}
		return fail("%s", flagMessage(flags, err))
	}
	if flags.NArg() > 0 {
		return fail("unexpected argument %q", flags.Arg(0))
	}
	cfg := service.Config{User: *user, DownloadDirs: downloadDirs}
	if socket != nil {
		cfg.Socket = *socket
	}
	if cmd == "install" {
		cfg.StateDir, cfg.MaxActive, cfg.Limit = *stateDir, *maxActive, *limit
		if cfg.MaxActive < 0 || (cfg.MaxActive == 0 && flagSet(flags, "max-active")) {
			return fail("--max-active %d: must be at least 1", cfg.MaxActive)
		}
		if cfg.Limit != "" {
			if _, err := bytesize.Parse(cfg.Limit); err != nil {
				return fail("--limit: %v", err)
			}
		}
		cfg.RPCListen, cfg.RPCListenAny, cfg.RPCSecretFile = *rpcListen, *rpcAny, *rpcSecretFile
		if cfg.RPCListen != "" {
			if err := checkRPCListen(cfg.RPCListen, cfg.RPCListenAny); err != nil {
				fmt.Fprintf(stderr, "idmd %s: %v\n", cmd, err)
				return 2
			}
		}
	}
	// Without a service manager there is no service to ask about or to
	// start; the library would try SysV scripts and fail with no reason.
	if err := service.ManagerRunning(); err != nil && cmd != "install" && cmd != "uninstall" {
		msg := fmt.Sprintf("%v; run the daemon in the foreground with: idmd run", err)
		if cmd == "status" {
			fmt.Fprintf(stdout, "idmd: %s\n", msg)
			return exitNotInstalled
		}
		fmt.Fprintf(stderr, "idmd %s: %s\n", cmd, msg)
		return 1
	}
	if msg := checkPrivilege(cmd, *user); msg != "" {
		fmt.Fprintf(stderr, "idmd %s: %s\n", cmd, msg)
		return 1
	}
	svc, err := service.New(cfg, nil)
	if err != nil {
		fmt.Fprintf(stderr, "idmd %s: %v\n", cmd, err)
		return 1
	}
	switch cmd {
	case "install":
		err = install(svc, stdout)
	case "uninstall":
		if err = svc.Uninstall(); err == nil {
			fmt.Fprintf(stdout, "idmd: uninstalled the %s; its jobs stay in %s\n", kind(svc), svc.Config().StateDir)
		}
	case "start":
		err = svc.Start()
	case "stop":
		err = svc.Stop()
	case "restart":
		err = svc.Restart()
	case "status":
		return status(svc, stdout)
	}
	if err != nil {
		fmt.Fprintf(stderr, "idmd %s: %v\n", cmd, err)
		if errors.Is(err, service.ErrNotInstalled) {
			fmt.Fprintf(stderr, "install it with: %s\n", installCommand(*user))
		}
		return 1
	}
	return 0
}

func flagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

// checkPrivilege returns why the command cannot work for this user, if it
// cannot: the system service belongs to root, a user service to a user.
func checkPrivilege(cmd string, user bool) string {
	if runtime.GOOS == "windows" || cmd == "status" {
		return ""
	}
	root := os.Geteuid() == 0
	switch {
	case user && root:
		return "--user is the service of the user who runs it; as root, leave --user out for the system service"
	case !user && !root:
		return fmt.Sprintf("the system service is root's: run sudo idmd %s (or idmd %s --user for a service of your own)", cmd, cmd)
	}
	return ""
}

func install(svc *service.Service, stdout io.Writer) error {
	if err := svc.Install(); err != nil {
		return err
	}
	cfg := svc.Config()
	where := svc.Platform()
	if p, ok := svc.UnitFile(); ok {
		where += ", " + p
	}
	fmt.Fprintf(stdout, "idmd: installed the %s (%s)\n", kind(svc), where)
	fmt.Fprintf(stdout, "  runs:   %s %s\n", cfg.Executable, strings.Join(cfg.Arguments(), " "))
	if cfg.User {
		fmt.Fprintf(stdout, "  starts: when you log in; to run it while you are logged out too: loginctl enable-linger\n")
	} else {
		fmt.Fprintf(stdout, "  starts: at boot, as user %s; members of group %s may use idmctl (sudo usermod -aG %s NAME)\n",
			service.Account, service.Account, service.Account)
	}
	fmt.Fprintf(stdout, "Start it now with: %s\n", svc.StartCommand())
	return nil
}

func status(svc *service.Service, stdout io.Writer) int {
	st, err := svc.Status()
	if err != nil {
		fmt.Fprintf(stdout, "idmd: the service manager (%s) cannot tell: %v\n", svc.Platform(), err)
		return exitNotInstalled
	}
	cfg := svc.Config()
	switch st {
	case service.NotInstalled:
		fmt.Fprintf(stdout, "idmd: not installed as a %s; install it with: %s\n", kind(svc), installCommand(cfg.User))
		return exitNotInstalled
	case service.Stopped, service.Failed:
		fmt.Fprintf(stdout, "idmd: %s; start it with: %s\n", st, svc.StartCommand())
		return exitNotRunning
	}
	fmt.Fprintf(stdout, "idmd: running (%s, %s); %s\n", kind(svc), svc.Platform(), answer(cfg.Socket))
	return 0
}

// answer says whether the daemon answers on its socket.
func answer(socket string) string {
	c, err := net.DialTimeout("unix", socket, time.Second)
	switch {
	case err == nil:
		c.Close()
		return "answering on " + socket
	case errors.Is(err, fs.ErrPermission):
		return fmt.Sprintf("%s refuses you: members of group %s may use it", socket, service.Account)
	}
	return "not answering on " + socket + " yet"
}

func kind(svc *service.Service) string {
	if svc.Config().User {
		return "user service"
	}
	return "system service"
}

func installCommand(user bool) string {
	if user {
		return "idmd install --user"
	}
	return "sudo idmd install"
}
