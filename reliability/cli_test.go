package reliability

import (
	"context"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/idmproject/idm/internal/proctest"
)

// badLine is one wrong command line of one of the three binaries, and
// what it must get: its exit status and the first line of its stderr.
type badLine struct {
	bin  string   // idmctl, idmd or idm-server
	args []string // after the binary's name
	code int      // the exact exit status
	// first is the exact first line of stderr, or, when it starts with
	// "~", a distinctive part of it.
	first string

	// bare runs idmctl without the daemon's socket, for rows that are
	// about the socket.
	bare bool
	// env is added to the environment.
	env []string
	// nobody runs the command as user nobody when the test runs as root:
	// to make a file unreadable, and as a fuse for the service commands,
	// which as root would install or start a real service if a row ever
	// got past its flags.
	nobody bool
}

// lines is what the table's rows may refer to: a scratch directory in
// which nothing may appear, and things in it.
type lines struct {
	dir        string // the scratch directory, cwd of every command
	out        string // the output directory of idmctl's rows, in dir
	file       string // a readable sample file
	unreadable string // a file only root may read
	regular    string // a regular file, where a socket or directory is wanted
	subdir     string // a directory, where a file or socket is wanted
	taken      string // a loopback port something listens on
	free       string // a loopback port nothing listens on
	socket     string // the socket of a running idmd
	stateDir   string // that idmd's state directory
}

// badLines returns the table. Every row's first line says what is wrong
// and names the binary (and the subcommand of idmctl and of idmd's
// service commands).
func badLines(l lines) []badLine {
	f, p := l.file, l.free
	srv := func(args ...string) []string { return args }
	// run gives idmd run a socket and state in the scratch directory, so
	// that a row that got past its flags could not touch the system's.
	run := func(args ...string) []string {
		return append([]string{"run", "--system=false", "--socket", filepath.Join(l.dir, "s.sock"), "--state-dir", filepath.Join(l.dir, "state")}, args...)
	}
	src := "idm://127.0.0.1:" + p
	sizeErr := func(v string) string {
		return fmt.Sprintf("invalid size %q: want a positive number with an optional K, M, G (powers of 1000) or Ki, Mi, Gi (powers of 1024)", v)
	}
	return []badLine{
		// idmctl get
		{bin: "idmctl", args: []string{"get"}, code: 2, first: "idmctl get: missing the servers (-a IP -p PORT ...)"},
		{bin: "idmctl", args: []string{"get", "-i", "1", "-o", l.out, "-a", "127.0.0.1"}, code: 2, first: "idmctl get: -a needs the servers' ports (-p)"},
		{bin: "idmctl", args: []string{"get", "-i", "1", "-o", l.out, "-p", p}, code: 2, first: "idmctl get: -p needs the servers' address (-a)"},
		{bin: "idmctl", args: []string{"get", "-o", l.out, "-a", "127.0.0.1", "-p", p}, code: 2, first: "idmctl get: missing the report interval (-i SECONDS)"},
		{bin: "idmctl", args: []string{"get", "-i", "1", "-a", "127.0.0.1", "-p", p}, code: 2, first: "idmctl get: missing the output directory (-o DIR)"},
		{bin: "idmctl", args: []string{"get", "-i", "0", "-o", l.out, "-a", "127.0.0.1", "-p", p}, code: 2, first: `idmctl get: invalid value "0" for flag -i: invalid interval "0": must be more than 0`},
		{bin: "idmctl", args: []string{"get", "-i", "soon", "-o", l.out, "-a", "127.0.0.1", "-p", p}, code: 2, first: `idmctl get: invalid value "soon" for flag -i: invalid interval "soon": want seconds, such as 1 or 0.5`},
		{bin: "idmctl", args: []string{"get", "-i", "1", "-i", "2", "-o", l.out, "-a", "127.0.0.1", "-p", p}, code: 2, first: "idmctl get: -i given twice"},
		{bin: "idmctl", args: []string{"get", "-i", "1", "-o", l.out, "-a", "127.0.0.1", "-p", p, "70000"}, code: 2, first: `idmctl get: invalid port "70000": want 1..65535`},
		{bin: "idmctl", args: []string{"get", "-i", "1", "-o", l.out, "-a", "127.0.0.1", "-p", p + "," + p}, code: 2, first: "idmctl get: source " + src + " given twice"},
		{bin: "idmctl", args: []string{"get", "-i", "1", p, "-o", l.out, "-a", "127.0.0.1", "-p", p}, code: 2, first: fmt.Sprintf("idmctl get: unexpected argument %q", p)},
		{bin: "idmctl", args: []string{"get", "-x"}, code: 2, first: "idmctl get: flag provided but not defined: -x"},
		{bin: "idmctl", args: []string{"get", "-i", "1", "-o", l.out, "-a", "bad host", "-p", p}, code: 2, first: "~idmctl get: source \"idm://bad host:" + p + "\""},
		{bin: "idmctl", args: []string{"get", "-i", "1", "-o", filepath.Join(l.dir, "none"), "-a", "127.0.0.1", "-p", p}, code: 1, first: "idmctl: invalid request: output directory " + filepath.Join(l.dir, "none") + " does not exist"},
		{bin: "idmctl", args: []string{"get", "-i", "1", "-o", l.regular, "-a", "127.0.0.1", "-p", p}, code: 1, first: "idmctl: invalid request: output directory " + l.regular + " is not a directory"},
		// idmctl add
		{bin: "idmctl", args: []string{"add"}, code: 2, first: "idmctl add: missing the sources"},
		{bin: "idmctl", args: []string{"add", "ftp://127.0.0.1:" + p}, code: 2, first: `idmctl add: source "ftp://127.0.0.1:` + p + `": want idm://host:port or an http:// or https:// URL`},
		{bin: "idmctl", args: []string{"add", "https://u:secret@127.0.0.1:0/f?sig=secret"}, code: 2, first: `idmctl add: source "https://u:xxxxx@127.0.0.1:0/f?sig=xxxxx": port must be 1..65535`},
		{bin: "idmctl", args: []string{"add", "idm://127.0.0.1"}, code: 2, first: `idmctl add: source "idm://127.0.0.1": want idm://host:port`},
		{bin: "idmctl", args: []string{"add", "idm://127.0.0.1:99999"}, code: 2, first: `idmctl add: source "idm://127.0.0.1:99999": port must be 1..65535`},
		{bin: "idmctl", args: []string{"add", "--limit", "fast", src}, code: 2, first: `idmctl add: invalid value "fast" for flag --limit: ` + sizeErr("fast")},
		{bin: "idmctl", args: []string{"add", "--limit", "1M", "--limit", "2M", src}, code: 2, first: "idmctl add: --limit given twice"},
		{bin: "idmctl", args: []string{"add", src, src}, code: 2, first: "idmctl add: source " + src + " given twice"},
		{bin: "idmctl", args: []string{"add", "-o", "none", src}, code: 1, first: "idmctl: invalid request: output directory " + filepath.Join(l.out, "none") + " does not exist"},
		{bin: "idmctl", args: []string{"add", "--", "-x"}, code: 2, first: `idmctl add: unexpected argument "-x"`},
		{bin: "idmctl", args: []string{"add", src, "-o"}, code: 2, first: "idmctl add: flag needs an argument: -o"},
		// idmctl ls, status, wait, watch
		{bin: "idmctl", args: []string{"ls", "extra"}, code: 2, first: `idmctl ls: unexpected argument "extra"`},
		{bin: "idmctl", args: []string{"ls", "--bogus"}, code: 2, first: "idmctl ls: flag provided but not defined: -bogus"},
		{bin: "idmctl", args: []string{"status"}, code: 2, first: "idmctl status: want one job ID"},
		{bin: "idmctl", args: []string{"status", "0"}, code: 2, first: `idmctl status: invalid job ID "0"`},
		{bin: "idmctl", args: []string{"status", "abc"}, code: 2, first: `idmctl status: invalid job ID "abc"`},
		{bin: "idmctl", args: []string{"status", "1", "2"}, code: 2, first: "idmctl status: want one job ID"},
		{bin: "idmctl", args: []string{"status", "99"}, code: 1, first: "idmctl: no such job: 99"},
		{bin: "idmctl", args: []string{"wait"}, code: 2, first: "idmctl wait: want one job ID"},
		{bin: "idmctl", args: []string{"wait", "x"}, code: 2, first: `idmctl wait: invalid job ID "x"`},
		{bin: "idmctl", args: []string{"wait", "99"}, code: 1, first: "idmctl: no such job: 99"},
		{bin: "idmctl", args: []string{"watch", "x"}, code: 2, first: `idmctl watch: invalid job ID "x"`},
		{bin: "idmctl", args: []string{"watch", "1", "2"}, code: 2, first: "idmctl watch: want at most one job ID"},
		{bin: "idmctl", args: []string{"watch", "99"}, code: 1, first: "idmctl: no such job: 99"},
		// idmctl pause, resume, cancel, rm
		{bin: "idmctl", args: []string{"pause"}, code: 2, first: "idmctl pause: missing job ID"},
		{bin: "idmctl", args: []string{"pause", "99"}, code: 1, first: "idmctl: no such job: 99"},
		{bin: "idmctl", args: []string{"resume", "0"}, code: 2, first: `idmctl resume: invalid job ID "0"`},
		{bin: "idmctl", args: []string{"resume", "99"}, code: 1, first: "idmctl: no such job: 99"},
		{bin: "idmctl", args: []string{"cancel", "1", "x"}, code: 2, first: `idmctl cancel: invalid job ID "x"`},
		{bin: "idmctl", args: []string{"cancel", "99"}, code: 1, first: "idmctl: no such job: 99"},
		{bin: "idmctl", args: []string{"rm"}, code: 2, first: "idmctl rm: missing job ID"},
		{bin: "idmctl", args: []string{"rm", "99"}, code: 1, first: "idmctl: no such job: 99"},
		// idmctl limit, version, help, global flags
		{bin: "idmctl", args: []string{"limit", "fast"}, code: 2, first: "idmctl limit: " + sizeErr("fast")},
		{bin: "idmctl", args: []string{"limit", "1", "2", "3"}, code: 2, first: "idmctl limit: too many arguments"},
		{bin: "idmctl", args: []string{"limit", "x", "1M"}, code: 2, first: `idmctl limit: invalid job ID "x"`},
		{bin: "idmctl", args: []string{"limit", "--", "-1"}, code: 2, first: "idmctl limit: " + sizeErr("-1")},
		{bin: "idmctl", args: []string{"limit", "99", "1M"}, code: 1, first: "idmctl: no such job: 99"},
		{bin: "idmctl", args: []string{"version", "extra"}, code: 2, first: `idmctl version: unexpected argument "extra"`},
		{bin: "idmctl", args: []string{"version", "--bogus"}, code: 2, first: "idmctl version: flag provided but not defined: -bogus"},
		{bin: "idmctl", args: nil, code: 2, first: "idmctl: missing the command"},
		{bin: "idmctl", args: []string{"fetch"}, code: 2, first: `idmctl: unknown command "fetch"`},
		{bin: "idmctl", args: []string{"help", "fetch"}, code: 2, first: `idmctl help: unknown command "fetch"`},
		{bin: "idmctl", args: []string{"--bogus", "ls"}, code: 2, first: "idmctl: flag provided but not defined: -bogus"},
		{bin: "idmctl", args: []string{"--json=maybe", "ls"}, code: 2, first: `idmctl: --json takes no value, or true or false, not "maybe"`},
		{bin: "idmctl", args: []string{"--socket", l.socket, "--socket", l.socket, "ls"}, code: 2, first: "idmctl: --socket given twice", bare: true},
		{bin: "idmctl", args: []string{"ls", "--socket", l.socket}, code: 2, first: "idmctl ls: --socket goes before the command: idmctl --socket PATH ls ...", bare: true},
		{bin: "idmctl", args: []string{"pause", "--json", "1"}, code: 2, first: "idmctl pause: --json goes before the command: idmctl --json pause ..."},
		{bin: "idmctl", args: []string{"--socket"}, code: 2, first: "idmctl: flag needs an argument: --socket", bare: true},
		{bin: "idmctl", args: []string{"ls"}, code: 3, bare: true, env: []string{"IDMD_SOCKET=" + filepath.Join(l.dir, "none.sock")},
			first: "idmctl: idmd is not running (no answer on " + filepath.Join(l.dir, "none.sock") + `); start it with "idmd run" or install it as a service ("idmd install")`},

		// idmd
		{bin: "idmd", args: nil, code: 2, first: "idmd: missing the command"},
		{bin: "idmd", args: []string{"bogus"}, code: 2, first: `idmd: unknown command "bogus"`},
		{bin: "idmd", args: []string{"-x"}, code: 2, first: `idmd: unknown command "-x"`},
		{bin: "idmd", args: []string{"version", "extra"}, code: 2, first: `idmd version: unexpected argument "extra"`},
		{bin: "idmd", args: run("extra"), code: 2, first: `idmd: unexpected argument "extra"`},
		{bin: "idmd", args: run("--bogus"), code: 2, first: "idmd: flag provided but not defined: -bogus"},
		{bin: "idmd", args: run("--max-active", "0"), code: 2, first: `idmd: --max-active "0": must be a whole number of at least 1`},
		{bin: "idmd", args: run("--max-active", "x"), code: 2, first: `idmd: --max-active "x": must be a whole number of at least 1`},
		{bin: "idmd", args: run("--limit", "fast"), code: 2, first: "idmd: --limit: " + sizeErr("fast")},
		{bin: "idmd", args: run("--stall", "x"), code: 2, first: `idmd: invalid value "x" for flag --stall: want a duration such as 10s or 1m30s`},
		{bin: "idmd", args: run("--stall", "-1s"), code: 2, first: "idmd: --stall -1s: must be more than 0"},
		{bin: "idmd", args: run("--socket"), code: 2, first: "idmd: flag needs an argument: --socket"},
		{bin: "idmd", args: run("--max-active", "2", "--max-active", "3"), code: 2, first: "idmd: --max-active given twice"},
		{bin: "idmd", args: []string{"run", "--system=false", "--socket", l.regular, "--state-dir", filepath.Join(l.dir, "state")}, code: 1,
			first: "idmd: cannot use " + l.regular + " as the control socket: it is a regular file, not a socket; only a socket left by a stopped idmd is replaced"},
		{bin: "idmd", args: []string{"run", "--system=false", "--socket", l.subdir, "--state-dir", filepath.Join(l.dir, "state")}, code: 1,
			first: "idmd: cannot use " + l.subdir + " as the control socket: it is a directory, not a socket; only a socket left by a stopped idmd is replaced"},
		{bin: "idmd", args: []string{"run", "--system=false", "--socket", l.socket, "--state-dir", filepath.Join(l.dir, "state")}, code: 1,
			first: "idmd: another idmd is listening on the control socket: " + l.socket},
		{bin: "idmd", args: []string{"run", "--system=false", "--socket", filepath.Join(l.dir, "s.sock"), "--state-dir", l.stateDir}, code: 1,
			first: "idmd: another idmd is using this state directory: " + l.stateDir},
		{bin: "idmd", args: []string{"run", "--system=false", "--socket", filepath.Join(l.dir, "s.sock"), "--state-dir", l.regular}, code: 1,
			first: "~idmd: state directory: "},
		{bin: "idmd", args: []string{"run", "--system=false", "--socket", filepath.Join(l.regular, "s.sock"), "--state-dir", filepath.Join(l.dir, "state")}, code: 1,
			first: "~idmd: socket directory: "},
		{bin: "idmd", args: []string{"install", "--bogus"}, code: 2, first: "idmd install: flag provided but not defined: -bogus", nobody: true},
		{bin: "idmd", args: []string{"install", "extra"}, code: 2, first: `idmd install: unexpected argument "extra"`, nobody: true},
		{bin: "idmd", args: []string{"install", "--max-active", "0"}, code: 2, first: "idmd install: --max-active 0: must be at least 1", nobody: true},
		{bin: "idmd", args: []string{"install", "--max-active", "many"}, code: 2, first: `idmd install: invalid value "many" for flag --max-active: want a whole number`, nobody: true},
		{bin: "idmd", args: []string{"install", "--limit", "fast"}, code: 2, first: "idmd install: --limit: " + sizeErr("fast"), nobody: true},
		{bin: "idmd", args: []string{"install", "--socket", "a", "--socket", "b"}, code: 2, first: "idmd install: --socket given twice", nobody: true},
		{bin: "idmd", args: []string{"install", "--download-dir"}, code: 2, first: "idmd install: flag needs an argument: --download-dir", nobody: true},
		{bin: "idmd", args: []string{"uninstall", "--socket", "x"}, code: 2, first: "idmd uninstall: flag provided but not defined: -socket", nobody: true},
		{bin: "idmd", args: []string{"uninstall", "now"}, code: 2, first: `idmd uninstall: unexpected argument "now"`, nobody: true},
		{bin: "idmd", args: []string{"start", "--bogus"}, code: 2, first: "idmd start: flag provided but not defined: -bogus", nobody: true},
		{bin: "idmd", args: []string{"stop", "now"}, code: 2, first: `idmd stop: unexpected argument "now"`, nobody: true},
		{bin: "idmd", args: []string{"restart", "--user=maybe"}, code: 2, first: `idmd restart: --user takes no value, or true or false, not "maybe"`, nobody: true},
		{bin: "idmd", args: []string{"status", "--max-active", "2"}, code: 2, first: "idmd status: flag provided but not defined: -max-active", nobody: true},
		{bin: "idmd", args: []string{"status", "extra"}, code: 2, first: `idmd status: unexpected argument "extra"`, nobody: true},

		// idm-server
		{bin: "idm-server", args: nil, code: 2, first: "idm-server: -i is required"},
		{bin: "idm-server", args: srv("-i"), code: 2, first: "idm-server: -i needs a value"},
		{bin: "idm-server", args: srv("-i", "x", "-n", "1", "-f", f, "-p", p), code: 2, first: `idm-server: -i "x": must be a number of seconds, more than 0 and at most 86400`},
		{bin: "idm-server", args: srv("-i", "0", "-n", "1", "-f", f, "-p", p), code: 2, first: `idm-server: -i "0": must be a number of seconds, more than 0 and at most 86400`},
		{bin: "idm-server", args: srv("-i", "NaN", "-n", "1", "-f", f, "-p", p), code: 2, first: `idm-server: -i "NaN": must be a number of seconds, more than 0 and at most 86400`},
		{bin: "idm-server", args: srv("-i", "1e300", "-n", "1", "-f", f, "-p", p), code: 2, first: `idm-server: -i "1e300": must be a number of seconds, more than 0 and at most 86400`},
		{bin: "idm-server", args: srv("-i", "1", "-i", "2", "-n", "1", "-f", f, "-p", p), code: 2, first: "idm-server: -i given twice"},
		{bin: "idm-server", args: srv("-i", "1", "-f", f, "-p", p), code: 2, first: "idm-server: -n is required"},
		{bin: "idm-server", args: srv("-i", "1", "-n", "0", "-f", f, "-p", p), code: 2, first: `idm-server: -n "0": must be a whole number of servers, at least 1`},
		{bin: "idm-server", args: srv("-i", "1", "-n", "x", "-f", f, "-p", p), code: 2, first: `idm-server: -n "x": must be a whole number of servers, at least 1`},
		{bin: "idm-server", args: srv("-i", "1", "-n", "1", "-n", "2", "-f", f, "-p", p), code: 2, first: "idm-server: -n given twice"},
		{bin: "idm-server", args: srv("-i", "1", "-n", "2", "-f", f, "-p", p), code: 2, first: "idm-server: -n is 2 but 1 ports were given"},
		{bin: "idm-server", args: srv("-i", "1", "-n", "1", "-p", p), code: 2, first: "idm-server: -f is required"},
		{bin: "idm-server", args: srv("-i", "1", "-n", "1", "-f", ""), code: 2, first: "idm-server: -p is required"},
		{bin: "idm-server", args: srv("-i", "1", "-n", "1", "-f", "", "-p", p), code: 2, first: "idm-server: -f: an empty file name"},
		{bin: "idm-server", args: srv("-i", "1", "-n", "2", "-f", f, "-f", f, "-f", f, "-p", p, "9"), code: 2, first: "idm-server: -f names 3 files: give one for all servers or one per server (2)"},
		{bin: "idm-server", args: srv("-i", "1", "-n", "2", "-f", f, "-p", p, p), code: 2, first: "idm-server: port " + p + " given twice"},
		{bin: "idm-server", args: srv("-i", "1", "-n", "1", "-f", f, "-p", "0"), code: 2, first: `idm-server: port "0": must be a number in 1..65535`},
		{bin: "idm-server", args: srv("-i", "1", "-n", "1", "-f", f, "-p", "70000"), code: 2, first: `idm-server: port "70000": must be a number in 1..65535`},
		{bin: "idm-server", args: srv("-i", "1", "-n", "1", "-f", f, "-p", "http"), code: 2, first: `idm-server: port "http": must be a number in 1..65535`},
		{bin: "idm-server", args: srv("-i", "1", "-n", "1", "-f", f, "-p", p+","), code: 2, first: "idm-server: -p: an empty port (a stray comma?)"},
		{bin: "idm-server", args: srv("-i", "1", "-n", "1", "-f", f, "-p", p, "extra"), code: 2, first: `idm-server: port "extra": must be a number in 1..65535`},
		{bin: "idm-server", args: srv("-i", "1", "-n", "1", "-f", f, "stray", "-p", p), code: 2, first: `idm-server: unexpected argument "stray"`},
		{bin: "idm-server", args: srv("-i", "1", "-n", "1", "-f", f, "-p", p, "--rate", "fast"), code: 2, first: "idm-server: --rate: " + sizeErr("fast")},
		{bin: "idm-server", args: srv("-i", "1", "-n", "3", "-f", f, "-p", "1,2,3", "--rate", "1M,2M"), code: 2, first: "idm-server: --rate has 2 values: give one for all servers or one per server (3)"},
		{bin: "idm-server", args: srv("-i", "1", "-n", "1", "-f", f, "-p", p, "--rate", "1M", "--rate", "2M"), code: 2, first: "idm-server: --rate given twice"},
		{bin: "idm-server", args: srv("-i", "1", "-n", "1", "-f", f, "-p", p, "--segment-size", "1"), code: 2, first: `idm-server: --segment-size "1": must be 4096..67108864 bytes`},
		{bin: "idm-server", args: srv("-i", "1", "-n", "1", "-f", f, "-p", p, "--segment-size", "big"), code: 2, first: `idm-server: --segment-size "big": must be 4096..67108864 bytes`},
		{bin: "idm-server", args: srv("-i", "1", "-n", "1", "-f", f, "-p", p, "--max-conns", "0"), code: 2, first: `idm-server: --max-conns "0": must be a whole number, at least 1`},
		{bin: "idm-server", args: srv("-i", "1", "-n", "1", "-f", f, "-p", p, "--max-conns", "x"), code: 2, first: `idm-server: --max-conns "x": must be a whole number, at least 1`},
		{bin: "idm-server", args: srv("-i", "1", "-n", "1", "-f", f, "-p", p, "--bind", "localhost"), code: 2, first: `idm-server: --bind "localhost": not an IP address`},
		{bin: "idm-server", args: srv("-i", "1", "-n", "1", "-f", f, "-p", p, "--bind"), code: 2, first: "idm-server: --bind needs a value"},
		{bin: "idm-server", args: srv("-i", "1", "-n", "1", "-f", f, "-p", p, "--bogus"), code: 2, first: "idm-server: flag provided but not defined: -bogus"},
		{bin: "idm-server", args: srv("--help=maybe"), code: 2, first: "idm-server: -h and --help take no value"},
		{bin: "idm-server", args: srv("-i", "1", "-n", "1", "-f", filepath.Join(l.dir, "none"), "-p", p), code: 1, first: "idm-server: -f: open " + filepath.Join(l.dir, "none") + ": no such file or directory"},
		{bin: "idm-server", args: srv("-i", "1", "-n", "1", "-f", l.subdir, "-p", p), code: 1, first: "idm-server: -f: " + l.subdir + " is not a regular file"},
		{bin: "idm-server", args: srv("-i", "1", "-n", "1", "-f", l.unreadable, "-p", p), code: 1, first: "idm-server: -f: open " + l.unreadable + ": permission denied", nobody: true},
		{bin: "idm-server", args: srv("-i", "1", "-n", "2", "-f", f, "--bind", "127.0.0.1", "-p", p, l.taken), code: 1,
			first: "idm-server: server 2: port " + l.taken + " is taken by another program: listen tcp 127.0.0.1:" + l.taken + ": bind: address already in use"},
		{bin: "idm-server", args: srv("-i", "1", "-n", "1", "-f", f, "--bind", "192.0.2.1", "-p", p), code: 1,
			first: "~idm-server: server 1: --bind: no interface of this machine has that address"},
	}
}

// TestBadCommandLines runs every row of the table against the real
// binaries: each gets its exit status and a first line of stderr that
// says what is wrong, alone or followed by the usage after a blank line,
// and changes nothing: no file appears in the scratch directory, and
// idmctl's rows add no job to the running idmd.
func TestBadCommandLines(t *testing.T) {
	d := proctest.NewDaemon(t)
	d.Start()
	l := newLines(t, d)
	rows := badLines(l)
	count := map[string]int{}
	for _, r := range rows {
		count[r.bin]++
	}
	t.Logf("%d bad command lines: idmctl %d, idmd %d, idm-server %d", len(rows), count["idmctl"], count["idmd"], count["idm-server"])
	if len(rows) < 60 {
		t.Errorf("only %d rows", len(rows))
	}
	for i, r := range rows {
		t.Run(rowName(i, r, l), func(t *testing.T) {
			before := tree(t, l.dir)
			res := runLine(t, d, l, r)
			if res.Code != r.code {
				t.Errorf("exit %d, want %d\nstderr:\n%s", res.Code, r.code, res.Stderr)
			}
			first, rest, _ := strings.Cut(res.Stderr, "\n")
			if want, ok := strings.CutPrefix(r.first, "~"); ok {
				if !strings.Contains(first, want) {
					t.Errorf("first line of stderr %q, want it to say %q", first, want)
				}
			} else if first != r.first {
				t.Errorf("first line of stderr\n got %q\nwant %q", first, r.first)
			}
			if !namesBinary(first, r.bin) {
				t.Errorf("first line %q does not start with %q", first, r.bin)
			}
			if rest != "" && !strings.HasPrefix(rest, "\nusage: ") {
				t.Errorf("more than one line of error, and no usage after a blank line:\n%s", res.Stderr)
			}
			if res.Stdout != "" {
				t.Errorf("stdout %q", res.Stdout)
			}
			if after := tree(t, l.dir); after != before {
				t.Errorf("the scratch directory changed:\nbefore %s\nafter  %s", before, after)
			}
			if jobs, err := d.Client().Jobs(context.Background()); err != nil || len(jobs) != 0 {
				t.Errorf("the daemon holds %d jobs (%v)", len(jobs), err)
			}
		})
	}
}

// rowName names a row by its number and command line, without the
// scratch directory's random name or slashes, so that -run can pick it:
// "017 idmctl get -i 1 -o DIR:none ...".
func rowName(i int, r badLine, l lines) string {
	words := []string{fmt.Sprintf("%03d", i+1), r.bin}
	for _, a := range r.args {
		a = strings.ReplaceAll(a, l.socket, "SOCKET")
		a = strings.ReplaceAll(a, l.stateDir, "STATE")
		a = strings.ReplaceAll(a, l.dir, "DIR")
		words = append(words, strings.ReplaceAll(a, "/", ":"))
	}
	return strings.Join(words, " ")
}

// newLines makes the scratch directory and what the rows refer to. The
// directory is searchable by all, for the rows run as nobody.
func newLines(t *testing.T, d *proctest.Daemon) lines {
	dir, err := os.MkdirTemp("", "idm-badlines")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	l := lines{
		dir:        dir,
		out:        filepath.Join(dir, "out"),
		file:       filepath.Join(dir, "sample.bin"),
		unreadable: filepath.Join(dir, "secret.bin"),
		regular:    filepath.Join(dir, "notes.txt"),
		subdir:     filepath.Join(dir, "subdir"),
		socket:     d.Socket,
		stateDir:   d.StateDir,
	}
	for _, p := range []string{l.out, l.subdir} {
		if err := os.Mkdir(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for p, mode := range map[string]fs.FileMode{l.file: 0o644, l.unreadable: 0, l.regular: 0o644} {
		if err := os.WriteFile(p, []byte("some bytes\n"), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	_, l.taken, _ = net.SplitHostPort(ln.Addr().String())
	l.free = proctest.FreePorts(t, 1)[0]
	return l
}

// runLine runs one row, in the scratch directory (idmctl's in its output
// directory), with its home and runtime directories there too.
func runLine(t *testing.T, d *proctest.Daemon, l lines, r badLine) proctest.Result {
	t.Helper()
	var cmd *exec.Cmd
	if r.bin == "idmctl" && !r.bare {
		cmd = d.IdmctlCmd(r.args...)
	} else {
		cmd = exec.Command(proctest.Bin(r.bin), r.args...)
		cmd.Env = os.Environ()
	}
	cmd.Env = append(cmd.Env, "HOME="+l.subdir, "XDG_RUNTIME_DIR="+l.subdir, "XDG_STATE_HOME="+l.subdir,
		"IDMD_STATE_DIR="+filepath.Join(l.dir, "state"))
	if r.bin != "idmctl" {
		cmd.Env = append(cmd.Env, "IDMD_SOCKET="+filepath.Join(l.dir, "s.sock"))
	}
	cmd.Env = append(cmd.Env, r.env...)
	cmd.Dir = l.dir
	if r.bin == "idmctl" {
		cmd.Dir = l.out
	}
	if r.nobody && os.Geteuid() == 0 {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	}
	var stdout, stderr strings.Builder
	cmd.Stdin, cmd.Stdout, cmd.Stderr = strings.NewReader(""), &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		cmd.Process.Kill()
		<-done
		t.Fatalf("did not end within 20 s; stderr:\n%s", stderr.String())
	}
	return proctest.Result{Stdout: stdout.String(), Stderr: stderr.String(), Code: cmd.ProcessState.ExitCode()}
}

// namesBinary reports whether an error line starts with the binary's
// name, alone or with a subcommand: "idmctl: ", "idmctl add: ".
func namesBinary(line, bin string) bool {
	return regexp.MustCompile(`^` + regexp.QuoteMeta(bin) + `( [a-z]+)?: `).MatchString(line)
}

// tree lists every entry under dir with its type, mode and size.
func tree(t *testing.T, dir string) string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := e.Info()
		if err != nil {
			return err
		}
		out = append(out, fmt.Sprintf("%s %v %d", strings.TrimPrefix(p, dir), fi.Mode(), fi.Size()))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return strings.Join(out, "; ")
}

// With no server reachable, idmctl get keeps printing the seed's report
// on stdout and, after a few seconds, says on stderr which servers fail
// and why, once.
func TestGet_SaysWhyNoServerAnswers(t *testing.T) {
	d := proctest.NewDaemon(t)
	d.Start()
	ports := proctest.FreePorts(t, 2)
	cmd := d.IdmctlCmd("get", "-i", "1", "-o", t.TempDir(), "-a", "127.0.0.1", "-p", ports[0], ports[1])
	var stdout, stderr proctest.LockedBuffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-done
	})
	proctest.WaitFor(t, "get to say why", 30*time.Second, func() bool { return strings.Count(stderr.String(), "\n") >= 2 })
	cmd.Process.Signal(os.Interrupt)
	<-done
	if code := cmd.ProcessState.ExitCode(); code != 130 {
		t.Errorf("exit %d after Ctrl-C, want 130", code)
	}
	lines := proctest.Lines(stderr.String())
	for i, p := range ports {
		want := fmt.Sprintf("idmctl: no server answers: server %d (idm://127.0.0.1:%s): ", i+1, p)
		if !strings.HasPrefix(lines[i], want) || !strings.HasSuffix(lines[i], "connection refused") {
			t.Errorf("stderr line %d %q, want %q and why", i+1, lines[i], want+"...connection refused")
		}
	}
	if want := "idmctl: job 1 keeps running in idmd; follow it with: idmctl watch 1"; len(lines) != 3 || lines[2] != want {
		t.Errorf("stderr:\n%s\nwant the two reasons once, then %q", stderr.String(), want)
	}
	report := regexp.MustCompile(`^(Server [12]|Total): 0/0, download speed: 0kb/s$`)
	for _, l := range proctest.Lines(stdout.String()) {
		if !report.MatchString(l) {
			t.Errorf("stdout line %q is not one of the seed's report lines", l)
		}
	}
}
