package jobs

import (
	"errors"
	"fmt"
	"time"

	"github.com/idmproject/idm/daemon/api"
	"github.com/idmproject/idm/daemon/engine"
	"github.com/idmproject/idm/identity"
	"github.com/idmproject/idm/store"
	"github.com/idmproject/idm/transport"
	"github.com/idmproject/idm/transport/addr"
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

// engineJob reads what the engine needs of job r from the store.
func (q *Queue) engineJob(r *store.Record, recheck bool) (engine.Job, error) {
	job := engine.Job{ID: r.ID, Dir: r.Dir, DirID: r.DirID, Name: r.Name, Part: r.Part, PartStamp: r.PartStamp,
		OwnPieces: r.OwnPieces, Expect: identity.Hash(r.Expect), Verified: r.Verified, Fetched: r.Fetched,
		Stats: r.SourceStats, Recheck: recheck, Conns: r.Conns}
	if a, err := addr.Parse(r.Sources[0]); job.Conns == 0 && len(r.Sources) == 1 && err == nil && a.Scheme != addr.IDM {
		job.Conns = loneMirrorConns
	}
	if r.Checksum != "" {
		d, err := identity.ParseDigest(r.Checksum)
		if err != nil {
			return job, fmt.Errorf("job %d: %w", r.ID, err)
		}
		job.Checksum = &d
	}
	opt, err := q.mirrorOptions(r)
	if err != nil {
		return job, err
	}
	for _, raw := range r.Sources {
		opt.Reach = sourceReach(r, raw)
		src, err := q.source(raw, r.SourceStats, opt)
		if err != nil {
			return job, err
		}
		job.Sources = append(job.Sources, src)
	}
	hashes, err := q.db.Hashes(r.ID)
	if err != nil {
		return job, err
	}
	if job.File, err = r.File(hashes); err != nil || job.File == nil {
		return job, err
	}
	job.Done, err = q.db.Bitmap(r.ID)
	return job, err
}

// view renders job j in the API's words: the record, with the transfer's
// live progress while it runs. Called with mu held.
func (q *Queue) view(j *job) api.Job {
	r := j.rec
	out := api.Job{
		ID: r.ID, Sources: redactAll(r.Sources), Dir: r.Dir, Name: r.Name, Path: r.Path, Size: r.Size,
		PieceLength: r.SegmentSize, Pieces: r.SegmentCount(),
		State: apiState(j.state), LastError: r.LastError, Limit: r.Limit, OwnHashes: r.OwnPieces, Checksum: r.Checksum,
		Headers: redactHeaders(r.Headers), UserAgent: r.UserAgent, Proxy: addr.Redact(r.Proxy),
		Created: r.Created, Updated: r.Updated, Finished: r.Finished,
		FollowMetalink: r.Follow != nil, FollowedBy: r.FollowedBy, Following: r.Following, FollowError: r.FollowError,
	}
	switch {
	case r.Root != ([32]byte{}):
		out.Content = transport.Hash(r.Root).String()
	case r.Content != ([32]byte{}):
		out.Content = transport.Hash(r.Content).String() // a job recorded before roots were
	}
	if r.Expect != ([32]byte{}) {
		out.Expect = transport.Hash(r.Expect).String()
	}
	if j.run != nil {
		p := j.run.tr.Progress()
		out.Progress = apiProgress(p)
		viewReach(&out.Progress, r)
		out.State = out.Progress.State
		if p.Size > 0 {
			out.Size, out.OwnHashes = p.Size, p.OwnPieces
		}
		if p.PieceLen > 0 {
			f := identity.File{Size: p.Size, PieceLen: p.PieceLen}
			out.PieceLength, out.Pieces = p.PieceLen, f.Count()
		}
		if p.Name != "" {
			out.Name = p.Name
		}
		if p.Root != (identity.Hash{}) {
			out.Content = p.Root.String()
		}
		return out
	}
	out.Progress = api.Progress{State: out.State, Size: r.Size, Verified: r.Verified, Fetched: r.Fetched, Time: time.Now()}
	for _, s := range r.SourceStats {
		out.Progress.Sources = append(out.Progress.Sources, apiSource(s, storedState(s), 0, time.Time{}))
	}
	viewReach(&out.Progress, r)
	return out
}

// viewReach gives each source of p that a server named, rather than the
// user, its reach as job r's record keeps it.
func viewReach(p *api.Progress, r *store.Record) {
	if len(r.SourceReach) == 0 {
		return
	}
	shown := make(map[string]string, len(r.SourceReach))
	for raw, w := range r.SourceReach {
		shown[addr.Redact(raw)] = w
	}
	for i := range p.Sources {
		p.Sources[i].Reach = shown[p.Sources[i].Source]
	}
}

// apiState is a job's state in the API's words. A running job's word is
// its transfer's (downloading or waiting); this one is for the moment
// before its transfer reports.
func apiState(s State) string {
	switch s {
	case Queued:
		return api.StateQueued
	case Running:
		return api.StateDownloading
	case Paused:
		return api.StatePaused
	case Completed:
		return api.StateCompleted
	case Failed:
		return api.StateFailed
	case Cancelled:
		return api.StateCancelled
	}
	return s.String()
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

// Pieces returns which pieces of job id's file are verified, one bit a
// piece, as many as its view's Pieces; nil while the file is not known,
// for an empty file, and for a job that has not started (a Metalink's
// file is known before: it has no partial file, and no piece is loaded,
// as aria2 says of a download not started by leaving its bitfield out).
// A running job's come from its transfer's memory,
// so that a caller may ask every second without a read of the store; a
// completed job's are all; the others' are those stored, read from the
// store (a paused, failed or cancelled job's: the partial file of a
// cancelled one is gone, but its bits say what had been verified, as its
// view's counters do).
func (q *Queue) Pieces(id uint64) (*store.Bitmap, error) {
	q.mu.Lock()
	j, err := q.lookup(id)
	if err == nil && j.bad != nil {
		err = j.bad
	}
	if err != nil {
		q.mu.Unlock()
		return nil, err
	}
	run, n, completed, started := j.run, j.rec.SegmentCount(), j.state == Completed, j.rec.Part != ""
	q.mu.Unlock()
	// Copied without mu: a transfer that has ended since still holds its
	// last pieces, and they are right.
	var bm *store.Bitmap
	running := run != nil
	if running {
		bm = run.tr.Pieces()
	}
	switch {
	case bm != nil:
		return bm, nil
	case completed && n > 0:
		bm = store.NewBitmap(n)
		for i := range n {
			bm.Set(i)
		}
		return bm, nil
	case !running && (n == 0 || !started):
		// The table's record is the store's while the job does not run:
		// nothing to read.
		return nil, nil
	}
	// A transfer that has not yet taken up its pieces (it opens or
	// rechecks its partial file, or waits for its file to be decided)
	// has recorded its identity in the store, not in the table.
	bm, err = q.db.Bitmap(id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("%w: %d", ErrNotFound, id)
	}
	if err != nil || bm.Len() == 0 {
		return nil, err
	}
	return bm, nil
}
