package engine

import (
	"time"

	"github.com/idmproject/idm/identity"
	"github.com/idmproject/idm/store"
)

// A Job is what the engine is told of a download: where the file goes,
// what is known of it, and what is already done. The engine reads it at
// the start of Run and never writes it; what it learns goes to the
// Journal.
type Job struct {
	// ID names the job in logs.
	ID uint64
	// Sources are the places the file can be fetched from, in the order
	// the user gave them. Required.
	Sources []Source
	// Dir is the output directory, and DirID its identity when the job
	// was created (zero: not known yet); a directory that is no longer
	// that one is refused.
	Dir   string
	DirID store.FileID
	// Name is the file's name in Dir, once known.
	Name string
	// Part is the name of the job's partial file in Dir, and PartStamp
	// what it looked like when the engine last left it.
	Part      string
	PartStamp store.FileStamp
	// File is the file, once decided; nil for a new job.
	File *identity.File
	// OwnPieces says that File's piece hashes are the engine's own, taken
	// as the pieces were written (no source published any): they can be
	// trusted only for pieces Done holds.
	OwnPieces bool
	// Expect pins the file: its root, or its whole-file BLAKE3. Zero for
	// none.
	Expect identity.Hash
	// Conns is the number of connections to each source; 0 means the
	// Transfer's.
	Conns int
	// Checksum, when not nil, is a whole-file digest the user gave: the
	// file is published only if it matches.
	Checksum *identity.Digest
	// Done has a bit per piece of File, set for the verified ones; nil
	// for none.
	Done *store.Bitmap
	// Verified and Fetched are the job's counters so far.
	Verified, Fetched int64
	// Stats has what each source did so far, by the source's address.
	Stats []store.SourceStat
	// Recheck says the partial file must be hashed again before anything
	// in it counts: the last run did not end cleanly.
	Recheck bool
}

// A Journal keeps what the engine must not lose, so that the next Run,
// after a stop or a crash, goes on from there. The engine calls it from
// its own goroutines, one call at a time, and waits: each call must be
// durable when it returns. A Journal updates only what the call carries;
// the rest of the job is its owner's.
type Journal interface {
	// Identified records the job's file and the name it will be saved
	// under, before anything is written for it. own says the piece
	// hashes will be the engine's (f has none yet).
	Identified(f *identity.File, name string, own bool) error
	// PartFile records the name of the job's partial file before the file
	// is created, and its directory's identity.
	PartFile(name string, dir store.FileID) error
	// Checkpoint records progress.
	Checkpoint(c *store.Checkpoint) error
	// Published records that the file is complete under path, with the
	// last progress. The engine removes the partial file's name only
	// after it returns.
	Published(path string, c *store.Checkpoint) error
}

// A Phase is what a transfer is doing.
type Phase uint8

// The phases of a transfer, in the order they come.
const (
	// Starting: opening the partial file, rechecking it if need be.
	Starting Phase = iota
	// Connecting: no source has answered yet.
	Connecting
	// Downloading: at least one source is up.
	Downloading
	// Waiting: every source is down; the transfer keeps probing.
	Waiting
	// Verifying: every piece is in; checking a whole-file digest.
	Verifying
	// Publishing: syncing the file and giving it its name.
	Publishing
	// Done: the file is complete and in place.
	Done
)

var phaseNames = [...]string{"starting", "connecting", "downloading", "waiting", "verifying", "publishing", "done"}

// String returns the phase's name, as the API shows it.
func (p Phase) String() string {
	if int(p) < len(phaseNames) {
		return phaseNames[p]
	}
	return "phase?"
}

// A SourceState is what a transfer knows of a source now.
type SourceState uint8

// The states of a source.
const (
	// SourceConnecting: not yet answered.
	SourceConnecting SourceState = iota
	// SourceUp: connected and serving.
	SourceUp
	// SourceDown: failed; retried at NextRetry.
	SourceDown
	// SourceQuarantined: sent too many corrupt pieces; not used again.
	SourceQuarantined
	// SourceRejected: holds another file, or describes this one falsely;
	// not used again.
	SourceRejected
	// SourceFailed: answered with an error that cannot pass; not used
	// again.
	SourceFailed
)

var sourceStateNames = [...]string{"connecting", "up", "down", "quarantined", "rejected", "failed"}

// String returns the state's name, as the API shows it.
func (s SourceState) String() string {
	if int(s) < len(sourceStateNames) {
		return sourceStateNames[s]
	}
	return "state?"
}

// out reports whether the state sets the source aside for the job.
func (s SourceState) out() bool {
	return s == SourceQuarantined || s == SourceRejected || s == SourceFailed
}

// stateOf is a stored source's state when a Run starts.
func stateOf(st store.SourceStat) SourceState {
	switch {
	case st.Quarantined:
		return SourceQuarantined
	case st.Rejected:
		return SourceRejected
	case st.Failed:
		return SourceFailed
	}
	return SourceConnecting
}

// Progress is a snapshot of a transfer.
type Progress struct {
	Phase Phase
	// Name is the file's name in the job's directory, once decided.
	Name string
	// Root is the file's identity, once known; zero while it is not, and
	// for a file whose piece hashes are the engine's own, whose root says
	// nothing until every piece is hashed.
	Root identity.Hash
	// Size is the file's size, 0 until known.
	Size int64
	// PieceLen is the length of every piece of the file but the last, 0
	// until the file is known.
	PieceLen int64
	// OwnPieces says the piece hashes are the engine's own, taken as the
	// pieces were written, because no source published any.
	OwnPieces bool
	// Verified counts the bytes of verified pieces; Fetched every byte
	// received, duplicates and corrupt ones too.
	Verified, Fetched int64
	// Speed is verified bytes per second over a moving window.
	Speed float64
	// Sources has one entry per source, in the job's order.
	Sources []SourceProgress
	// Time is when the snapshot was taken.
	Time time.Time
}

// SourceProgress is one source's part of a Progress.
type SourceProgress struct {
	// SourceStat is what the source did, as a checkpoint records it.
	store.SourceStat
	// State is the source's state now.
	State SourceState
	// Speed is its verified bytes per second over a moving window.
	Speed float64
	// NextRetry is when a down source is tried again.
	NextRetry time.Time
}
