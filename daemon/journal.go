package daemon

import (
	"context"
	"time"

	"github.com/idmproject/idm/daemon/api"
	"github.com/idmproject/idm/daemon/engine"
	"github.com/idmproject/idm/identity"
	"github.com/idmproject/idm/store"
	"github.com/idmproject/idm/transport"
)

// journal is a running job's engine.Journal: it writes what the engine
// reports into the job's record, through the store's methods that touch
// only the fields they are about. The daemon owns the rest of the record.
type journal struct {
	db *store.DB
	id uint64
}

func (j journal) Identified(f *identity.File, name string, own bool) error {
	return j.db.SetIdentity(j.id, f, name, own)
}

func (j journal) PartFile(name string, dir store.FileID) error {
	return j.db.SetPart(j.id, name, dir)
}

func (j journal) Checkpoint(c *store.Checkpoint) error { return j.db.Checkpoint(j.id, c) }

func (j journal) Published(path string, c *store.Checkpoint) error {
	return j.db.Publish(j.id, path, time.Now(), c)
}

// idmSource is an idm server as the engine sees a source.
type idmSource struct{ *transport.IDMSource }

func (s idmSource) Open(ctx context.Context) (engine.Conn, error) { return s.Dial(ctx) }

// source turns a source's address, as the job records it, into what the
// engine opens. Addresses are checked when a job is created.
func (d *Daemon) source(raw string) (engine.Source, error) {
	src, err := transport.ParseSource(raw)
	if err != nil {
		return nil, err
	}
	src.Dialer.StallTimeout = d.cfg.StallTimeout
	return idmSource{src}, nil
}

// engineJob reads what the engine needs of job r from the store.
func (d *Daemon) engineJob(r *store.Record, recheck bool) (engine.Job, error) {
	job := engine.Job{ID: r.ID, Dir: r.Dir, DirID: r.DirID, Name: r.Name, Part: r.Part, PartStamp: r.PartStamp,
		OwnPieces: r.OwnPieces, Expect: identity.Hash(r.Expect), Verified: r.Verified, Fetched: r.Fetched,
		Stats: r.SourceStats, Recheck: recheck}
	for _, raw := range r.Sources {
		src, err := d.source(raw)
		if err != nil {
			return job, err
		}
		job.Sources = append(job.Sources, src)
	}
	hashes, err := d.db.Hashes(r.ID)
	if err != nil {
		return job, err
	}
	if job.File, err = r.File(hashes); err != nil || job.File == nil {
		return job, err
	}
	job.Done, err = d.db.Bitmap(r.ID)
	return job, err
}

// apiProgress renders a running transfer's progress in the API's words.
func apiProgress(p engine.Progress) api.Progress {
	out := api.Progress{State: api.StateDownloading, Phase: p.Phase.String(), Size: p.Size, Verified: p.Verified, Fetched: p.Fetched, Speed: p.Speed, Time: p.Time}
	if p.Phase == engine.Waiting {
		out.State = api.StateWaiting
	}
	for _, s := range p.Sources {
		out.Sources = append(out.Sources, apiSource(s.SourceStat, s.State.String(), s.Speed, s.NextRetry))
	}
	return out
}

// apiSource renders one source's statistics and state.
func apiSource(s store.SourceStat, state string, speed float64, retry time.Time) api.SourceProgress {
	return api.SourceProgress{Source: s.Source, State: state, Verified: s.Bytes, Fetched: s.Fetched,
		Speed: speed, Errors: s.Errors, Corrupt: s.Corrupt, NextRetry: retry, LastError: s.LastError}
}

// storedState is the state of a source of a job that is not running: set
// aside for the job, or nothing to say.
func storedState(s store.SourceStat) string {
	switch {
	case s.Quarantined:
		return api.SourceQuarantined
	case s.Rejected:
		return api.SourceRejected
	case s.Failed:
		return api.SourceFailed
	}
	return ""
}
