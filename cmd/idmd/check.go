package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"

	"github.com/idmproject/idm/daemon/api"
	"github.com/idmproject/idm/daemon/jobs"
	"github.com/idmproject/idm/store"
)

const checkUsageText = `usage: idmd check [--state-dir DIR]

check verifies idmd's state database offline, without writing to it:
bbolt's consistency check of the file, then every job's record, bitmap and
segment hashes. It prints one line per problem and a summary, and exits 0
when the database is sound, 1 when it is damaged or cannot be checked.
Stop idmd first: check does not read a database idmd has open.

  --state-dir DIR    where jobs are kept (IDMD_STATE_DIR; default: %s)
`

// afresh says what a user can do about a database idmd refuses.
const afresh = "to start afresh, move the file aside (its jobs are lost; downloaded and partial files stay where they are)"

// runCheck runs idmd check.
func runCheck(args []string, stdout, stderr io.Writer) int {
	flags := flag.NewFlagSet("idmd check", flag.ContinueOnError)
	flags.SetOutput(io.Discard)
	stateDir := flags.String("state-dir", api.DefaultStateDir(), "")
	fail := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "idmd check: "+format+"\n\n", a...)
		fmt.Fprintf(stderr, checkUsageText, api.DefaultStateDir())
		return 2
	}
	if err := flags.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprintf(stdout, checkUsageText, api.DefaultStateDir())
			return 0
		}
		return fail("%v", err)
	}
	if flags.NArg() > 0 {
		return fail("unexpected argument %q", flags.Arg(0))
	}
	rep, err := jobs.CheckState(*stateDir)
	switch {
	case errors.Is(err, jobs.ErrLocked):
		fmt.Fprintf(stderr, "idmd check: idmd is running on the state directory %s; stop it first\n", *stateDir)
		return 1
	case errors.Is(err, fs.ErrNotExist):
		fmt.Fprintf(stderr, "idmd check: there is no state database in %s\n", *stateDir)
		return 1
	case err != nil:
		fmt.Fprintln(stderr, "idmd check:", err)
		return 1
	}
	for _, p := range rep.Problems {
		fmt.Fprintf(stdout, "idmd check: %s: %v\n", rep.Path, p)
	}
	if rep.Sound() {
		fmt.Fprintf(stdout, "idmd check: %s: sound, %s (%d unfinished)\n", rep.Path, count(len(rep.Records), "job"), rep.Unfinished)
		return 0
	}
	fmt.Fprintf(stdout, "idmd check: %s: damaged: %s\n", rep.Path, count(len(rep.Problems), "problem"))
	switch {
	case rep.Damage != nil:
		fmt.Fprintf(stdout, "idmd refuses this file; %s\n", afresh)
	case hasBadRecord(rep.Problems):
		fmt.Fprintf(stdout, "idmd skips the jobs that cannot be read and runs the others (%s); \"idmctl rm ID\" removes one\n", count(len(rep.Records), "job"))
	default:
		fmt.Fprintln(stdout, "idmd ignores the entries that belong to no job")
	}
	return 1
}

// openFailed is the line idmd run prints when the daemon cannot open its
// state: for a damaged database, what to do about it too.
func openFailed(err error, stateDir string) string {
	if errors.Is(err, store.ErrDamaged) {
		return fmt.Sprintf("idmd: %v; run \"idmd check --state-dir %s\" to see what is wrong; %s", err, stateDir, afresh)
	}
	return fmt.Sprint("idmd: ", err)
}

func hasBadRecord(problems []error) bool {
	for _, p := range problems {
		if errors.Is(p, store.ErrBadRecord) {
			return true
		}
	}
	return false
}

// count says n things, with the plural when n is not 1.
func count(n int, thing string) string {
	if n == 1 {
		return "1 " + thing
	}
	return fmt.Sprintf("%d %ss", n, thing)
}
