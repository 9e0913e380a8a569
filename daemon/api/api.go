package api

import (
	"fmt"
	"io"
	"time"
)

// Job states, as stored and as shown.
const (
	// StateQueued: waiting for a free download slot.
	StateQueued = "queued"
	// StateDownloading: at least one source is delivering.
	StateDownloading = "downloading"
	// StateWaiting: every source is down; the job keeps probing and goes
	// on by itself when one answers.
	StateWaiting = "waiting"
	// StatePaused: stopped by a user until resumed.
	StatePaused = "paused"
	// StateCompleted: the file is verified and in place.
	StateCompleted = "completed"
	// StateFailed: stopped for a reason retrying cannot cure.
	StateFailed = "failed"
	// StateCancelled: stopped by a user for good; the partial file is gone.
	StateCancelled = "cancelled"
)

// Source states.
const (
	// SourceConnecting: not yet answered.
	SourceConnecting = "connecting"
	// SourceUp: connected and serving.
	SourceUp = "up"
	// SourceDown: failed; retried at NextRetry.
	SourceDown = "down"
	// SourceQuarantined: delivered too many corrupt segments; not used
	// again for this job.
	SourceQuarantined = "quarantined"
	// SourceRejected: holds a different file; not used for this job.
	SourceRejected = "rejected"
	// SourceFailed: answered with an error that cannot pass (an
	// unsupported protocol version, a range it does not have); not used
	// again for this job.
	SourceFailed = "failed"
)

// Progress is a snapshot of one job's transfer.
type Progress struct {
	// State is the job's state.
	State string `json:"state"`
	// Phase is what a running job's transfer is doing: "starting"
	// (opening, and after a crash rechecking, its partial file),
	// "connecting", "downloading", "waiting", "verifying" (checking a
	// whole-file digest), "publishing" or "done". Empty for a job that is
	// not running.
	Phase string `json:"phase,omitempty"`
	// Size is the file's size in bytes, 0 until a source has answered.
	Size int64 `json:"size"`
	// Verified counts the bytes of segments verified and written.
	Verified int64 `json:"verified"`
	// Fetched counts every byte received, duplicates and corrupt ones too.
	Fetched int64 `json:"fetched"`
	// Speed is the job's verified bytes per second over a moving window.
	Speed float64 `json:"speed"`
	// Sources has one entry per source, in the order they were given.
	Sources []SourceProgress `json:"sources"`
	// Time is when the snapshot was taken.
	Time time.Time `json:"time"`
}

// SourceProgress is one source's part of a Progress.
type SourceProgress struct {
	// Source is the address as given.
	Source string `json:"source"`
	// State is one of the Source* constants.
	State string `json:"state"`
	// Verified counts the verified bytes this source delivered.
	Verified int64 `json:"verified"`
	// Fetched counts every byte received from it.
	Fetched int64 `json:"fetched"`
	// Speed is its verified bytes per second over a moving window.
	Speed float64 `json:"speed"`
	// Errors counts the failed requests to it, connection attempts
	// included.
	Errors int `json:"errors"`
	// Corrupt counts segments from it that failed verification.
	Corrupt int `json:"corrupt"`
	// NextRetry is when a down source is tried again.
	NextRetry time.Time `json:"next_retry,omitzero"`
	// LastError is the last failure seen, or why it was set aside.
	LastError string `json:"last_error,omitempty"`
	// Reach is set for a source a server named rather than the user (a
	// mirror a mirror announced, one a Metalink fetched from a URL
	// listed): the most internal addresses it may make idmd connect to,
	// "internal" (not this machine) or "public". Empty for the user's
	// own, which may connect anywhere.
	Reach string `json:"reach,omitempty"`
}

// WriteReport prints the seed's client report for cur: one line per
// server in the order given, then the total. A server's downloaded bytes
// are the verified bytes it delivered; the total is every verified byte of
// the file. Speeds are KiB per second over the interval since prev; with
// no prev (the first report) they are 0.
func WriteReport(w io.Writer, prev, cur *Progress) error {
	dt := 0.0
	if prev != nil {
		dt = cur.Time.Sub(prev.Time).Seconds()
	}
	speed := func(now, before int64) int64 {
		if dt <= 0 {
			return 0
		}
		return int64(float64(now-before) / 1024 / dt)
	}
	var b []byte
	var totalPrev int64
	if prev != nil {
		totalPrev = prev.Verified
	}
	for i, s := range cur.Sources {
		var before int64
		if prev != nil && i < len(prev.Sources) {
			before = prev.Sources[i].Verified
		}
		b = fmt.Appendf(b, "Server %d: %d/%d, download speed: %dkb/s\n", i+1, s.Verified, cur.Size, speed(s.Verified, before))
	}
	b = fmt.Appendf(b, "Total: %d/%d, download speed: %dkb/s\n", cur.Verified, cur.Size, speed(cur.Verified, totalPrev))
	_, err := w.Write(b)
	return err
}
