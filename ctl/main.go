package ctl

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/signal"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"golang.org/x/term"

	"github.com/idmproject/idm/internal/safetext"
)

// Exit statuses of idmctl.
const (
	// ExitOK: the command did what was asked; for get, wait and watch ID,
	// the job completed.
	ExitOK = 0
	// ExitError: the command or the job failed.
	ExitError = 1
	// ExitUsage: the command line was wrong.
	ExitUsage = 2
	// ExitNotRunning: no idmd answers on the socket.
	ExitNotRunning = 3
	// ExitCancelled: the job waited for was cancelled or removed.
	ExitCancelled = 4
	// ExitInterrupted: stopped by Ctrl-C (or SIGTERM) before the end;
	// the daemon's jobs are unaffected.
	ExitInterrupted = 130
)

// Main runs idmctl with args (without the program name), writing to
// stdout and stderr, and returns the exit status. Cancelling ctx (Ctrl-C)
// stops whatever is being followed; jobs keep running in the daemon.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return newCLI(stdout, stderr).main(ctx, args)
}

// cli is one run of idmctl: where it writes, the daemon it talks to, the
// global flags and the timings tests shorten.
type cli struct {
	stdout, stderr io.Writer
	client         *Client
	json           bool

	// retryInterval and retryTimeout pace the reconnection of a broken
	// event stream.
	retryInterval, retryTimeout time.Duration
	// outageAfter is how long every source of get's job must have
	// failed before get says why on stderr.
	outageAfter time.Duration
	// lineInterval is how often watch prints when not on a terminal.
	lineInterval time.Duration
	// isTerminal says whether w is a terminal, for watch's bars.
	isTerminal func(w io.Writer) bool
}

func newCLI(stdout, stderr io.Writer) *cli {
	return &cli{
		stdout:        stdout,
		stderr:        stderr,
		client:        &Client{},
		retryInterval: 500 * time.Millisecond,
		retryTimeout:  60 * time.Second,
		outageAfter:   4 * time.Second,
		lineInterval:  time.Second,
		isTerminal:    isTerminal,
	}
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// command is one subcommand.
type command struct {
	name  string
	args  string // the synopsis after the name
	short string // one line for the command list
	long  string // a paragraph for the command's help
	run   func(c *cli, ctx context.Context, args []string) error
	// follows is set for a command that follows a job until it ends:
	// SIGINT and SIGTERM stop it cleanly, saying how the job goes on.
	follows bool
}

// commands returns the subcommands, in the order help lists them.
func commands() []*command {
	return []*command{
		getCmd, addCmd, lsCmd, statusCmd, waitCmd, watchCmd,
		pauseCmd, resumeCmd, cancelCmd, rmCmd, lineCmd, moveCmd, limitCmd, mirrorsCmd, rpcSecretCmd, versionCmd,
	}
}

func lookup(name string) *command {
	for _, cmd := range commands() {
		if cmd.name == name {
			return cmd
		}
	}
	return nil
}

func (c *cli) main(ctx context.Context, args []string) int {
	gfs := flag.NewFlagSet("idmctl", flag.ContinueOnError)
	gfs.SetOutput(io.Discard)
	socket := gfs.String("socket", "", "the daemon's control socket `PATH` (default $IDMD_SOCKET, else the system or per-user socket)")
	gfs.BoolVar(&c.json, "json", false, "print JSON instead of text")
	onlyOnce(gfs)
	if err := gfs.Parse(args); err != nil {
		ue := flagError(gfs, err).(*usageError)
		if ue.help {
			c.usage(c.stdout, gfs)
			return ExitOK
		}
		fmt.Fprintf(c.stderr, "idmctl: %s\n\n", ue.msg)
		c.usage(c.stderr, gfs)
		return ExitUsage
	}
	c.client.Socket = *socket
	args = gfs.Args()
	if len(args) == 0 {
		fmt.Fprintf(c.stderr, "idmctl: missing the command\n\n")
		c.usage(c.stderr, gfs)
		return ExitUsage
	}
	if args[0] == "help" {
		switch {
		case len(args) > 2:
			fmt.Fprintf(c.stderr, "idmctl help: want at most one command\n\n")
			c.usage(c.stderr, gfs)
			return ExitUsage
		case len(args) == 2 && lookup(args[1]) == nil:
			fmt.Fprintf(c.stderr, "idmctl help: unknown command %q\n\n", args[1])
			c.usage(c.stderr, gfs)
			return ExitUsage
		case len(args) == 2:
			lookup(args[1]).usage(c.stdout, nil)
			return ExitOK
		}
		c.usage(c.stdout, gfs)
		return ExitOK
	}
	cmd := lookup(args[0])
	if cmd == nil {
		fmt.Fprintf(c.stderr, "idmctl: unknown command %q\n\n", args[0])
		c.usage(c.stderr, gfs)
		return ExitUsage
	}
	if cmd.follows {
		// The other commands are over in milliseconds: dying of the
		// signal is right for them, and catching it would slow every
		// one's start by most of a millisecond.
		var stop context.CancelFunc
		ctx, stop = signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
		defer stop()
	}
	return c.exit(ctx, cmd, cmd.run(c, ctx, args[1:]))
}

// exit reports err, if any, as one line and returns the exit status.
func (c *cli) exit(ctx context.Context, cmd *command, err error) int {
	if err == nil {
		return ExitOK
	}
	var (
		ue *usageError
		ee *exitError
		nr *notRunningError
	)
	switch {
	case errors.As(err, &ue):
		if ue.help {
			cmd.usage(c.stdout, ue.fs)
			return ExitOK
		}
		fmt.Fprintf(c.stderr, "idmctl %s: %s\n\n", cmd.name, ue.msg)
		cmd.usage(c.stderr, ue.fs)
		return ExitUsage
	case errors.As(err, &ee):
		if ee.msg != "" {
			fmt.Fprintf(c.stderr, "idmctl: %s\n", ee.msg)
		}
		return ee.code
	case errors.As(err, &nr):
		fmt.Fprintf(c.stderr, "idmctl: %s\n", notRunningMessage(nr.socket))
		return ExitNotRunning
	case ctx.Err() != nil && errors.Is(err, ctx.Err()):
		return ExitInterrupted
	case errors.Is(err, fs.ErrPermission):
		fmt.Fprintf(c.stderr, "idmctl: may not connect to %s: permission denied (a system idmd admits root, its user and members of group idm)\n", c.client.SocketPath())
		return ExitError
	}
	fmt.Fprintf(c.stderr, "idmctl: %v\n", err)
	return ExitError
}

func (c *cli) usage(w io.Writer, gfs *flag.FlagSet) {
	fmt.Fprintf(w, "usage: idmctl [--socket PATH] [--json] COMMAND [ARGS]\n\n")
	fmt.Fprintf(w, "idmctl controls idmd, the idm download daemon.\n\ncommands:\n")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, cmd := range commands() {
		fmt.Fprintf(tw, "  %s\t%s\n", cmd.name, cmd.short)
	}
	tw.Flush()
	fmt.Fprintf(w, "\nglobal flags:\n")
	printDefaults(w, gfs)
	fmt.Fprintf(w, "\nRun \"idmctl help COMMAND\" for a command's flags.\n")
}

func (cmd *command) usage(w io.Writer, fs *flag.FlagSet) {
	fmt.Fprintf(w, "usage: idmctl %s %s\n", cmd.name, cmd.args)
	if cmd.long != "" {
		fmt.Fprintf(w, "\n%s\n", cmd.long)
	}
	if fs == nil {
		fs = cmd.flags(new(cli))
	}
	if fs != nil && hasFlags(fs) {
		fmt.Fprintf(w, "\nflags:\n")
		printDefaults(w, fs)
	}
}

// flags returns the command's flag set by running it with -h.
func (cmd *command) flags(c *cli) *flag.FlagSet {
	err := cmd.run(c, context.Background(), []string{"-h"})
	var ue *usageError
	if errors.As(err, &ue) {
		return ue.fs
	}
	return nil
}

func hasFlags(fs *flag.FlagSet) bool {
	n := 0
	fs.VisitAll(func(*flag.Flag) { n++ })
	return n > 0
}

// printDefaults lists fs's flags as the usage lines spell them: the
// seed's one-letter flags with one dash (-i), the others with two
// (--json), which the flag package accepts as well as one. One-letter
// flags come first. Defaults are in the flags' own text where they matter.
func printDefaults(w io.Writer, fs *flag.FlagSet) {
	if fs == nil {
		return
	}
	var short, long []*flag.Flag
	fs.VisitAll(func(f *flag.Flag) {
		if len(f.Name) == 1 {
			short = append(short, f)
		} else {
			long = append(long, f)
		}
	})
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, f := range append(short, long...) {
		name, text := flag.UnquoteUsage(f)
		spelled := flagName(f.Name)
		if name != "" {
			spelled += " " + name
		}
		fmt.Fprintf(tw, "  %s\t%s\n", spelled, text)
	}
	tw.Flush()
}

// flagName spells a flag as idmctl's usage does: -i, --json.
func flagName(name string) string {
	if len(name) == 1 {
		return "-" + name
	}
	return "--" + name
}

// newFlagSet returns a flag set that reports its errors to parse.
func newFlagSet(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return fs
}

// parse parses args, turning errors (and -h) into usage errors.
func parse(fs *flag.FlagSet, args []string) error {
	onlyOnce(fs)
	if err := fs.Parse(args); err != nil {
		return flagError(fs, err)
	}
	return nil
}

func flagError(fs *flag.FlagSet, err error) error {
	if errors.Is(err, flag.ErrHelp) {
		return &usageError{fs: fs, help: true}
	}
	var twice string
	fs.Visit(func(f *flag.Flag) {
		if o, ok := f.Value.(*onceValue); ok && o.twice {
			twice = f.Name
		}
	})
	if twice != "" {
		return usagef(fs, "%s given twice", flagName(twice))
	}
	if name, ok := strings.CutPrefix(err.Error(), "flag provided but not defined: -"); ok && (name == "socket" || name == "json") {
		spelled := map[string]string{"socket": "--socket PATH", "json": "--json"}[name]
		return usagef(fs, "--%s goes before the command: idmctl %s %s ...", name, spelled, fs.Name())
	}
	return &usageError{fs: fs, msg: respell(fs, err.Error())}
}

// onceValue is a flag that takes one value and may be given once: a
// second value would silently win otherwise.
type onceValue struct {
	flag.Value
	set, twice bool
}

func (o *onceValue) Set(v string) error {
	if o.set {
		o.twice = true
		return errors.New("given twice")
	}
	o.set = true
	return o.Value.Set(v)
}

// onlyOnce makes every flag of fs that takes a value refuse a second
// one, but -p, whose ports add up, and the repeatable ones (--header).
func onlyOnce(fs *flag.FlagSet) {
	fs.VisitAll(func(f *flag.Flag) {
		if b, ok := f.Value.(interface{ IsBoolFlag() bool }); ok && b.IsBoolFlag() {
			return
		}
		if _, ok := f.Value.(*onceValue); ok || f.Name == "p" {
			return
		}
		if _, ok := f.Value.(interface{ repeatable() }); ok {
			return
		}
		f.Value = &onceValue{Value: f.Value}
	})
}

// flagInMessage finds a flag named in one of the flag package's errors.
// It and badBool are compiled on first use: only a wrong command line
// needs them, and every command's start would pay for them.
var flagInMessage = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`(flag needs an argument: |for flag |for )-([a-z][a-z-]+)`)
})

// respell spells the flags of fs named in msg, one of the flag package's
// errors, as the usage does: the package writes --limit as -limit.
func respell(fs *flag.FlagSet, msg string) string {
	re := flagInMessage()
	msg = re.ReplaceAllStringFunc(msg, func(m string) string {
		sub := re.FindStringSubmatch(m)
		if fs.Lookup(sub[2]) == nil {
			return m
		}
		return sub[1] + flagName(sub[2])
	})
	// "parse error" is all the package says of a bad boolean.
	return badBool().ReplaceAllString(msg, "$2 takes no value, or true or false, not $1")
}

// badBool is the flag package's error for a bad boolean value.
var badBool = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`^invalid boolean value ("[^"]*") for (-[-a-z]+): parse error$`)
})

// usageError is a wrong command line: its message and then the usage
// are printed, and idmctl exits with ExitUsage.
type usageError struct {
	fs   *flag.FlagSet
	msg  string
	help bool // -h: the usage on stdout, ExitOK
}

func (e *usageError) Error() string { return e.msg }

func usagef(fs *flag.FlagSet, format string, args ...any) error {
	return &usageError{fs: fs, msg: fmt.Sprintf(format, args...)}
}

// exitError ends idmctl with its code after printing its message, if
// any, as "idmctl: msg".
type exitError struct {
	code int
	msg  string
}

func (e *exitError) Error() string { return e.msg }

// printJSON writes v as indented JSON.
func (c *cli) printJSON(v any) error {
	enc := json.NewEncoder(c.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// oneLine keeps the first line of a message for table cells, with
// anything that could move the cursor or reorder the text replaced: the
// message may come from a server.
func oneLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return safetext.Line(s, '?', 0)
}
