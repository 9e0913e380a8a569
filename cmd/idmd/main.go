// Command idmd is idm's download daemon: it owns the download engine and
// the job store, and answers idmctl over a Unix socket. See idmd --help.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/idmproject/idm/daemon/api"
	"github.com/idmproject/idm/daemon/aria2rpc"
	"github.com/idmproject/idm/daemon/auth"
	"github.com/idmproject/idm/daemon/jobs"
	"github.com/idmproject/idm/daemon/localapi"
	"github.com/idmproject/idm/daemon/service"
	"github.com/idmproject/idm/daemon/socket"
	"github.com/idmproject/idm/internal/bytesize"
	"github.com/idmproject/idm/transport"
)

const usageText = `usage: idmd <command> [flags]

Commands:
  run       run the daemon in the foreground (what a service manager starts)
  install   install idmd as a service that starts at boot (--user: at login)
  uninstall remove the service (its jobs are kept)
  start, stop, restart
            control the installed service
  status    say whether the service is installed and running
  check     verify the state database offline (stop idmd first); see idmd check -h
  version   print the version

Flags of run (each falls back to an environment variable):
  --socket PATH      control socket (IDMD_SOCKET; default: %s)
  --state-dir DIR    where jobs are kept (IDMD_STATE_DIR; default: %s)
  --max-active N     jobs downloading at once (IDMD_MAX_ACTIVE; default 3)
  --limit RATE       global download cap, e.g. 20M or 5Mi (IDMD_LIMIT; default none)
  --system           system daemon: socket mode 0660 with --group (IDMD_SYSTEM;
                     default when run as root)
  --group NAME       group allowed to use a system daemon (IDMD_GROUP; default idm)
  --stall DURATION   drop a connection silent this long (default 10s)
  --download-dir DIR a directory aria2 RPC callers may download into, besides the
                     default one (STATE-DIR/downloads for a system daemon, else
                     ~/Downloads, made at the start when missing); repeatable;
                     IDMD_DOWNLOAD_DIRS adds more
  --rpc-listen ADDR  answer aria2's JSON-RPC at http://ADDR/jsonrpc, for AriaNg and
                     the like (IDMD_RPC_LISTEN; default off); idmctl rpc-secret
                     prints its secret
  --rpc-listen-any   allow an --rpc-listen address other than loopback
                     (IDMD_RPC_LISTEN_ANY)
  --rpc-secret-file PATH
                     where the RPC secret is kept, made at the first start
                     (IDMD_RPC_SECRET_FILE; default STATE-DIR/rpc-secret)
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func usage(w io.Writer) {
	fmt.Fprintf(w, usageText, api.DefaultSocket(), api.DefaultStateDir())
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, "idmd: missing the command\n\n")
		usage(stderr)
		return 2
	}
	switch args[0] {
	case "run":
		return runDaemon(args[1:], stderr)
	case "install", "uninstall", "start", "stop", "restart", "status":
		return runService(args[0], args[1:], stdout, stderr)
	case "check":
		return runCheck(args[1:], stdout, stderr)
	case "version", "--version":
		if len(args) > 1 {
			fmt.Fprintf(stderr, "idmd version: unexpected argument %q\n", args[1])
			return 2
		}
		fmt.Fprintln(stdout, "idmd", localapi.Version)
		return 0
	case "-h", "--help", "help":
		usage(stdout)
		return 0
	}
	fmt.Fprintf(stderr, "idmd: unknown command %q\n\n", args[0])
	usage(stderr)
	return 2
}

func env(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func runDaemon(args []string, stderr io.Writer) int {
	flags := flag.NewFlagSet("idmd run", flag.ContinueOnError)
	flags.SetOutput(io.Discard)
	sockPath := flags.String("socket", api.DefaultSocket(), "")
	stateDir := flags.String("state-dir", api.DefaultStateDir(), "")
	maxActive := flags.String("max-active", env("IDMD_MAX_ACTIVE", "3"), "")
	limit := flags.String("limit", env("IDMD_LIMIT", ""), "")
	system := flags.Bool("system", os.Geteuid() == 0 || env("IDMD_SYSTEM", "") == "1", "")
	group := flags.String("group", env("IDMD_GROUP", "idm"), "")
	stall := flags.Duration("stall", transport.DefaultStallTimeout, "")
	var dirFlags dirList
	flags.Var(&dirFlags, "download-dir", "")
	rpcListen := flags.String("rpc-listen", env("IDMD_RPC_LISTEN", ""), "")
	rpcAny := flags.Bool("rpc-listen-any", isTrue(env("IDMD_RPC_LISTEN_ANY", "")), "")
	rpcSecretFile := flags.String("rpc-secret-file", env("IDMD_RPC_SECRET_FILE", ""), "")
	fail := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "idmd: "+format+"\n\n", a...)
		usage(stderr)
		return 2
	}
	onlyOnce(flags, "download-dir")
	if err := flags.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			usage(os.Stdout)
			return 0
		}
		return fail("%s", flagMessage(flags, err))
	}
	if *stall <= 0 {
		return fail("--stall %v: must be more than 0", *stall)
	}
	if flags.NArg() > 0 {
		return fail("unexpected argument %q", flags.Arg(0))
	}
	n, err := strconv.Atoi(*maxActive)
	if err != nil || n < 1 {
		return fail("--max-active %q: must be a whole number of at least 1", *maxActive)
	}
	var rate int64
	if *limit != "" && *limit != "0" && *limit != "none" {
		if rate, err = bytesize.Parse(*limit); err != nil {
			return fail("--limit: %v", err)
		}
	}
	dirs, err := downloadDirs(defaultDownloadDir(*system, *stateDir), dirFlags, os.Getenv("IDMD_DOWNLOAD_DIRS"))
	if err != nil {
		return fail("%v", err)
	}
	var secret string
	if *rpcListen != "" {
		if err := checkRPCListen(*rpcListen, *rpcAny); err != nil {
			// One line: the usage would bury the one thing to change.
			fmt.Fprintf(stderr, "idmd: %v\n", err)
			return 2
		}
		if *rpcSecretFile == "" {
			*rpcSecretFile = filepath.Join(*stateDir, rpcSecretName)
			if err := os.MkdirAll(*stateDir, 0o700); err != nil {
				fmt.Fprintf(stderr, "idmd: state directory: %v\n", err)
				return 1
			}
		}
		if secret, err = aria2rpc.SecretFile(*rpcSecretFile); err != nil {
			fmt.Fprintln(stderr, "idmd:", err)
			return 1
		}
	}
	// SIGINT or SIGTERM, or the service manager's stop request. Caught
	// from here on, however early it comes: idmd finishes starting, then
	// stops as at any other time, its state marked clean.
	ctx, stop := stopContext()
	defer stop()
	log := slog.New(slog.NewTextHandler(stderr, nil))

	mode, gid := fs.FileMode(0o600), -1
	if *system {
		if g, err := user.LookupGroup(*group); err == nil {
			mode, gid = 0o660, atoi(g.Gid)
		} else {
			log.Warn("socket group not found; only root and the daemon's user may connect", "group", *group)
		}
	}
	// The socket first: it sets the umask for a moment, before any
	// download creates a file.
	ln, err := socket.Listen(*sockPath, mode, gid)
	if err != nil {
		fmt.Fprintln(stderr, "idmd:", err)
		return 1
	}
	var rpcLn net.Listener
	if *rpcListen != "" {
		if rpcLn, err = net.Listen("tcp", *rpcListen); err != nil {
			ln.Close()
			fmt.Fprintln(stderr, "idmd: --rpc-listen:", err)
			return 1
		}
	}
	// SIGTERM must end the process within 5 seconds: 2 for requests
	// under way, 3 for the transfers to checkpoint.
	q, err := jobs.Open(jobs.Config{StateDir: *stateDir, MaxActive: n, Limit: rate, Logger: log, StallTimeout: *stall, CloseTimeout: 3 * time.Second,
		UserAgent: "idmd/" + localapi.Version})
	if err != nil {
		ln.Close()
		if rpcLn != nil {
			rpcLn.Close()
		}
		fmt.Fprintln(stderr, openFailed(err, *stateDir))
		return 1
	}
	srv := &localapi.Server{Queue: q, Access: auth.Access{UID: os.Geteuid(), Group: gid}, StateDir: *stateDir, Logger: log}
	served := make(chan error, 2)
	var rpc *aria2rpc.Server
	if rpcLn != nil {
		// Only where whoever reads the secret is root or the daemon's
		// user may the RPC change what applies to everyone's jobs.
		rpc = &aria2rpc.Server{Queue: q, Secret: secret, Dirs: dirs, GlobalChanges: gid < 0, Version: localapi.Version, Logger: log.With("rpc", "aria2")}
		addr := rpcLn.Addr().String()
		srv.RPC = &api.RPC{Listen: addr, URL: "http://" + addr + "/jsonrpc", Secret: secret}
		// Made before the first call: an addUri without dir goes there.
		// Only the package makes it for the system service; aria2c makes
		// its --dir too.
		perm, dirGID := downloadDirMode(gid)
		switch made, err := aria2rpc.MakeDownloadDir(dirs[0], perm, dirGID); {
		case made && err != nil:
			log.Warn("made the default download directory of RPC callers, but not as wanted", "dir", dirs[0], "err", err)
		case err != nil:
			log.Warn("the default download directory of RPC callers was not made", "dir", dirs[0], "err", err)
		case made && dirGID >= 0:
			log.Info("made the default download directory of RPC callers", "dir", dirs[0], "mode", octal(perm), "gid", dirGID)
		case made:
			log.Info("made the default download directory of RPC callers", "dir", dirs[0], "mode", octal(perm))
		}
		go func() { served <- rpc.Serve(rpcLn) }()
		log.Info("aria2 RPC listening", "url", srv.RPC.URL, "secret_file", *rpcSecretFile, "download_dirs", dirs)
	}
	go func() { served <- srv.Serve(ln) }()
	log.Info("idmd running", "version", localapi.Version, "socket", *sockPath, "state_dir", *stateDir, "max_active", n, "limit", rate)
	status := 0
	select {
	case <-ctx.Done():
		log.Info("stopping")
	case err := <-served:
		log.Error("a listener failed", "err", err)
		status = 1
	}
	// Shutdown stops the server even if Serve has not started yet.
	sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if rpc != nil {
		rpc.Shutdown(sctx)
	}
	srv.Shutdown(sctx)
	if err := q.Close(); err != nil {
		log.Error("close state", "err", err)
		status = 1
	}
	return status
}

// stopContext is service.StopContext; tests stop a daemon they run in
// their own process with a context of their own.
var stopContext = service.StopContext

// isTrue reports whether an environment variable's value turns a switch
// on.
func isTrue(v string) bool {
	switch strings.ToLower(v) {
	case "1", "true", "yes", "on":
		return true
	}
	return false
}

func atoi(s string) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		return -1
	}
	return n
}
