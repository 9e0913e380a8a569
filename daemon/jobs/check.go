package jobs

import (
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/idmproject/idm/store"
)

// dbName is the state database's file name in the state directory.
const dbName = "idmd.db"

// checkTimeout is how long CheckState waits for the database's lock. A
// running daemon holds it for as long as it runs, so waiting longer would
// only delay saying so.
const checkTimeout = 500 * time.Millisecond

// A StateReport is what CheckState found in a state directory.
type StateReport struct {
	// Report is the store's report on the database file: its path, the
	// problems found and the jobs that can be read.
	*store.Report

	// Unfinished counts the readable jobs that still have work to do:
	// neither completed nor cancelled.
	Unfinished int
}

// CheckState verifies the state database in stateDir without writing to
// it, as store.Check does, and counts its unfinished jobs. It fails with
// an error wrapping ErrLocked when a daemon has the database open, and
// with one wrapping fs.ErrNotExist when there is none.
func CheckState(stateDir string) (*StateReport, error) {
	rep, err := store.Check(filepath.Join(stateDir, dbName), &store.Options{Timeout: checkTimeout})
	if errors.Is(err, store.ErrLocked) {
		return nil, fmt.Errorf("%w: %s", ErrLocked, stateDir)
	}
	if err != nil {
		return nil, err
	}
	sr := &StateReport{Report: rep}
	for _, r := range rep.Records {
		// A state no idmd wrote is counted: its job is not known to be done.
		if s, err := parseStored(r.State); err != nil || s.Unfinished() {
			sr.Unfinished++
		}
	}
	return sr, nil
}
