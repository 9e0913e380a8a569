package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/idmproject/idm/daemon/api"
	"github.com/idmproject/idm/daemon/auth"
	"github.com/idmproject/idm/daemon/engine"
	"github.com/idmproject/idm/store"
	"github.com/idmproject/idm/transport"
)

// DefaultMaxActive is how many jobs download at once by default.
const DefaultMaxActive = 3

// Errors of the job operations; the control API maps each to a status.
var (
	// ErrNotFound reports an unknown job.
	ErrNotFound = errors.New("no such job")
	// ErrInvalid reports a request that cannot be carried out as asked.
	ErrInvalid = errors.New("invalid request")
	// ErrConflict reports an operation the job's state does not allow.
	ErrConflict = errors.New("not possible in the job's state")
	// ErrExists reports an unfinished job for the same sources and
	// directory.
	ErrExists = errors.New("an unfinished download of the same sources into the same directory exists")
	// ErrLocked reports a state directory another idmd is using.
	ErrLocked = errors.New("another idmd is using this state directory")
)

// Reasons a running transfer is stopped.
var (
	errPause  = errors.New("paused")
	errCancel = errors.New("cancelled")
	// ErrShutdown reports a request to a daemon that is closing, and
	// ends its event streams.
	ErrShutdown = errors.New("daemon shutting down")
)

// existsError carries the ID of the job that already exists.
type existsError struct{ id uint64 }

func (e *existsError) Error() string { return fmt.Sprintf("%v (job %d)", ErrExists, e.id) }
func (e *existsError) Unwrap() error { return ErrExists }

// ExistingJob returns the ID carried by an ErrExists error.
func ExistingJob(err error) (uint64, bool) {
	var e *existsError
	if errors.As(err, &e) {
		return e.id, true
	}
	return 0, false
}

// Config is how a Daemon runs.
type Config struct {
	// StateDir holds the store. Required.
	StateDir string
	// MaxActive is how many jobs download at once (default 3).
	MaxActive int
	// Limit caps the total download rate in bytes per second; 0 is none.
	Limit int64
	// Logger receives one line per job event. Nil means slog.Default().
	Logger *slog.Logger
	// Conns, Depth, StallTimeout and FlushInterval tune every job's
	// transfer, as the Transfer fields of the same names do.
	Conns         int
	Depth         int
	StallTimeout  time.Duration
	FlushInterval time.Duration
}

// Daemon owns the store, the queue of jobs and their transfers. Jobs that
// were queued, downloading or waiting when the last daemon stopped go on
// by themselves; paused ones stay paused.
type Daemon struct {
	cfg    Config
	db     *store.DB
	log    *slog.Logger
	global *rate.Limiter
	events *hub

	mu       sync.Mutex
	active   map[uint64]*running
	recheck  map[uint64]bool // jobs whose partial file must be rechecked
	closed   bool
	wg       sync.WaitGroup
	stopTick context.CancelFunc
}

// running is one job's transfer in progress.
type running struct {
	tr      *engine.Transfer
	stop    context.CancelCauseFunc
	done    chan struct{}
	limiter *rate.Limiter
}

// Open opens the store in cfg.StateDir and starts the jobs that were
// under way.
func Open(cfg Config) (*Daemon, error) {
	if cfg.MaxActive <= 0 {
		cfg.MaxActive = DefaultMaxActive
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
		return nil, fmt.Errorf("state directory: %w", err)
	}
	db, err := store.Open(filepath.Join(cfg.StateDir, dbName), &store.Options{Timeout: 200 * time.Millisecond})
	if errors.Is(err, store.ErrLocked) {
		return nil, fmt.Errorf("%w: %s", ErrLocked, cfg.StateDir)
	}
	if err != nil {
		return nil, err
	}
	d := &Daemon{
		cfg:     cfg,
		db:      db,
		log:     cfg.Logger,
		global:  newLimiter(cfg.Limit),
		events:  newHub(),
		active:  map[uint64]*running{},
		recheck: map[uint64]bool{},
	}
	recs, bad, err := db.List()
	if err != nil {
		db.Close()
		return nil, err
	}
	for _, b := range bad {
		d.log.Warn("record cannot be read, skipped", "job", b.ID, "err", b.Err)
	}
	clean := db.WasClean()
	resumed := 0
	for _, r := range recs {
		if !clean && unfinished(r.State) {
			d.recheck[r.ID] = true
		}
		if !clean && r.State == api.StateCompleted && r.Part != "" && r.Path != filepath.Join(r.Dir, r.Part) {
			// A crash between recording a finished job and removing its
			// partial file's name leaves that name as a second link to
			// the finished file.
			if err := engine.RemovePart(r.Dir, r.DirID, r.Part, r.PartStamp.ID); err != nil {
				d.log.Warn("remove partial file of a completed job", "job", r.ID, "err", err)
			}
		}
		if r.State == api.StateDownloading || r.State == api.StateWaiting {
			resumed++
		}
	}
	d.log.Info("state opened", "dir", cfg.StateDir, "jobs", len(recs), "unreadable", len(bad), "clean_shutdown", clean, "to_resume", resumed)
	ctx, cancel := context.WithCancel(context.Background())
	d.stopTick = cancel
	d.wg.Go(func() {
		tick := time.NewTicker(progressInterval)
		defer tick.Stop()
		for {
			select {
			case <-tick.C:
				d.tick()
			case <-ctx.Done():
				return
			}
		}
	})
	d.mu.Lock()
	d.scheduleLocked()
	d.mu.Unlock()
	return d, nil
}

// unfinished reports whether a job in this state still has a partial file
// that a later run will use.
func unfinished(state string) bool {
	switch state {
	case api.StateCompleted, api.StateCancelled:
		return false
	}
	return true
}

// newLimiter returns a limiter for limit bytes per second (0: none). The
// burst lets one chunk of a segment through at a time.
func newLimiter(limit int64) *rate.Limiter {
	l := rate.NewLimiter(rate.Inf, 0)
	setLimit(l, limit)
	return l
}

func setLimit(l *rate.Limiter, limit int64) {
	if limit <= 0 {
		l.SetLimit(rate.Inf)
		return
	}
	l.SetBurst(int(max(64<<10, limit/10)))
	l.SetLimit(rate.Limit(limit))
}

// Close stops every transfer (each flushes its state), marks the clean
// shutdown and closes the store. Jobs that were running go on at the next
// Open.
func (d *Daemon) Close() error {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return nil
	}
	d.closed = true
	var waits []chan struct{}
	for _, r := range d.active {
		r.stop(ErrShutdown)
		waits = append(waits, r.done)
	}
	d.mu.Unlock()
	for _, w := range waits {
		<-w
	}
	d.stopTick()
	d.wg.Wait()
	d.events.close()
	err := d.db.MarkClean()
	if cerr := d.db.Close(); err == nil {
		err = cerr
	}
	d.log.Info("state closed cleanly")
	return err
}

// scheduleLocked starts queued jobs, oldest first, while slots are free.
func (d *Daemon) scheduleLocked() {
	if d.closed || len(d.active) >= d.cfg.MaxActive {
		return
	}
	recs, _, err := d.db.List()
	if err != nil {
		d.log.Error("list jobs", "err", err)
		return
	}
	for _, r := range recs {
		if len(d.active) >= d.cfg.MaxActive {
			return
		}
		switch r.State {
		case api.StateQueued, api.StateDownloading, api.StateWaiting:
			if d.active[r.ID] == nil {
				d.startLocked(r)
			}
		}
	}
}

// startLocked starts r's transfer, once its owner may still create files
// in its directory: the directory, its owner or its mode may have changed
// since the job was created, or since idmd last started it.
func (d *Daemon) startLocked(r *store.Record) {
	if auth.MustCheck(r.Owner) {
		if _, _, err := resolveDir(r.Dir, r.Owner); err != nil {
			r.State, r.LastError = api.StateFailed, err.Error()
			if perr := d.db.Put(r); perr != nil {
				d.log.Error("record job refused at start", "job", r.ID, "err", perr)
			}
			d.log.Warn("job refused at start", "job", r.ID, "uid", r.Owner.UID, "err", err)
			d.publishLocked(api.EventState, r.ID)
			return
		}
	}
	job, err := d.engineJob(r, d.recheck[r.ID])
	if err != nil {
		r.State, r.LastError = api.StateFailed, err.Error()
		if perr := d.db.Put(r); perr != nil {
			d.log.Error("record job refused at start", "job", r.ID, "err", perr)
		}
		d.log.Warn("job cannot start", "job", r.ID, "err", err)
		d.publishLocked(api.EventState, r.ID)
		return
	}
	r.State, r.LastError = api.StateDownloading, ""
	if err := d.db.Put(r); err != nil {
		d.log.Error("start job", "job", r.ID, "err", err)
		return
	}
	c := &d.cfg
	run := &running{done: make(chan struct{}), limiter: newLimiter(r.Limit)}
	id := r.ID
	run.tr = &engine.Transfer{
		Job: job, Journal: journal{d.db, id},
		Conns: c.Conns, Depth: c.Depth, FlushInterval: c.FlushInterval,
		Limiters: []*rate.Limiter{run.limiter, d.global},
		Logger:   d.log,
		// A source's state changed: the event hub only notes the job, so
		// this never blocks the engine.
		OnChange: func() { d.events.send(api.EventState, id, nil) },
	}
	tr := run.tr
	delete(d.recheck, r.ID)
	ctx, stop := context.WithCancelCause(context.Background())
	run.stop = stop
	d.active[r.ID] = run
	d.log.Info("job started", "job", r.ID, "sources", len(r.Sources), "dir", r.Dir, "recheck", job.Recheck)
	d.wg.Go(func() {
		err := tr.Run(ctx)
		d.finished(r.ID, run, err, context.Cause(ctx))
	})
	d.publishLocked(api.EventState, r.ID)
}

// finished records how a transfer ended and starts the next job.
func (d *Daemon) finished(id uint64, run *running, err, cause error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	defer close(run.done)
	delete(d.active, id)
	rec, gerr := d.db.Get(id)
	if gerr != nil {
		d.log.Error("job ended", "job", id, "err", gerr)
		return
	}
	switch {
	case err == nil:
		// The journal may not have been able to record the finished file
		// (a full disk, say): what the transfer knows of it wins.
		if p := run.tr.Path(); p != "" && rec.Path == "" {
			rec.Path, rec.Finished, rec.Verified = p, time.Now(), rec.Size
		}
		rec.State = api.StateCompleted
		d.log.Info("job completed", "job", id, "path", rec.Path)
	case errors.Is(cause, ErrShutdown):
		return // stays downloading: it goes on at the next start
	case errors.Is(cause, errPause):
		rec.State = api.StatePaused
		d.log.Info("job paused", "job", id)
	case errors.Is(cause, errCancel):
		rec.State = api.StateCancelled
		if err := engine.RemovePart(rec.Dir, rec.DirID, rec.Part, rec.PartStamp.ID); err != nil {
			d.log.Warn("remove partial file", "job", id, "err", err)
		}
		d.log.Info("job cancelled", "job", id)
	default:
		rec.State, rec.LastError = api.StateFailed, err.Error()
		d.log.Warn("job failed", "job", id, "err", err)
	}
	rec.Updated = time.Now()
	if rec.State != api.StateCompleted && rec.Finished.IsZero() && !unfinished(rec.State) {
		rec.Finished = rec.Updated
	}
	if perr := d.db.Put(rec); perr != nil {
		d.log.Error("record job end", "job", id, "err", perr)
	}
	d.publishLocked(api.EventState, id)
	d.scheduleLocked()
}

// Create validates req and queues a new job, or, with req.Resume, resumes
// the unfinished job with the same sources and directory; created tells
// which. The caller is the peer of ctx, when it carries one (the control
// API's requests do): unless it is root or the daemon's own user, it must
// be allowed to create files in req.Dir, or the request fails with
// auth.ErrDenied and nothing is written. Only a job the caller may change
// counts as the same: another user's is neither named nor resumed, and
// the caller gets a job of its own.
func (d *Daemon) Create(ctx context.Context, req api.CreateRequest) (job api.Job, created bool, err error) {
	var owner *store.Owner
	caller, known := auth.PeerFrom(ctx)
	if known {
		owner = caller.Owner()
	}
	dirID, err := validateCreate(&req, owner)
	if errors.Is(err, auth.ErrDenied) {
		d.log.Warn("refused a directory", "uid", owner.UID, "dir", req.Dir, "err", err)
	}
	if err != nil {
		return api.Job{}, false, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return api.Job{}, false, ErrShutdown
	}
	recs, _, err := d.db.List()
	if err != nil {
		return api.Job{}, false, err
	}
	for _, r := range recs {
		if r.State == api.StateCompleted || r.State == api.StateCancelled || r.Dir != req.Dir || !sameSet(r.Sources, req.Sources) {
			continue
		}
		if known && !caller.MayChange(r.Owner) {
			// Neither 409 nor resuming it: the caller would learn of, or
			// take over, a job that is not its own; and refusing would let
			// one member keep another from a download by starting it
			// first. The jobs do not collide: each has its own partial
			// file, and each publishes under a name that replaces nothing.
			continue
		}
		if !req.Resume {
			return api.Job{}, false, &existsError{r.ID}
		}
		if err := d.resumeLocked(r); err != nil {
			return api.Job{}, false, err
		}
		job, err = d.jobLocked(r.ID)
		return job, false, err
	}
	rec := &store.Record{Sources: req.Sources, Dir: req.Dir, Limit: req.Limit, State: api.StateQueued, DirID: dirID, Owner: owner}
	if req.Content != "" {
		h, _ := transport.ParseHash(req.Content) // checked by validateCreate
		rec.Expect = h
	}
	if err := d.db.Create(rec, nil); err != nil {
		return api.Job{}, false, err
	}
	d.log.Info("job created", "job", rec.ID, "sources", rec.Sources, "dir", rec.Dir)
	d.publishLocked(api.EventState, rec.ID)
	d.scheduleLocked()
	job, err = d.jobLocked(rec.ID)
	return job, true, err
}

// validateCreate checks a create request from owner (nil when unknown),
// normalises its sources and resolves its directory, whose identity it
// returns.
func validateCreate(req *api.CreateRequest, owner *store.Owner) (store.FileID, error) {
	if len(req.Sources) == 0 {
		return store.FileID{}, fmt.Errorf("%w: no sources", ErrInvalid)
	}
	seen := map[string]bool{}
	for i, s := range req.Sources {
		src, err := transport.ParseSource(s)
		if err != nil {
			return store.FileID{}, fmt.Errorf("%w: %v", ErrInvalid, err)
		}
		norm := src.String()
		if seen[norm] {
			return store.FileID{}, fmt.Errorf("%w: source %s given twice", ErrInvalid, s)
		}
		seen[norm] = true
		req.Sources[i] = norm
	}
	if req.Limit < 0 {
		return store.FileID{}, fmt.Errorf("%w: negative limit", ErrInvalid)
	}
	if req.Content != "" {
		if _, err := transport.ParseHash(req.Content); err != nil {
			return store.FileID{}, fmt.Errorf("%w: content %q is not a content hash (64 hex digits)", ErrInvalid, req.Content)
		}
	}
	if !filepath.IsAbs(req.Dir) {
		return store.FileID{}, fmt.Errorf("%w: output directory %q is not an absolute path", ErrInvalid, req.Dir)
	}
	var who *store.Owner
	if auth.MustCheck(owner) {
		who = owner
	}
	dir, id, err := resolveDir(filepath.Clean(req.Dir), who)
	if err != nil {
		return store.FileID{}, err
	}
	req.Dir = dir
	// The caller may write there; now idmd itself. Permission bits do
	// not tell about read-only mounts or sandboxing: only trying does.
	f, err := os.CreateTemp(req.Dir, ".idmd-write-test-*")
	if err != nil {
		return store.FileID{}, fmt.Errorf("%w: idmd cannot write to %s", ErrInvalid, req.Dir)
	}
	f.Close()
	os.Remove(f.Name())
	return id, nil
}

func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// Jobs returns every job in ID order.
func (d *Daemon) Jobs() ([]api.Job, error) {
	recs, _, err := d.db.List()
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]api.Job, 0, len(recs))
	for _, r := range recs {
		out = append(out, d.view(r))
	}
	return out, nil
}

// Job returns one job.
func (d *Daemon) Job(id uint64) (api.Job, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.jobLocked(id)
}

func (d *Daemon) jobLocked(id uint64) (api.Job, error) {
	r, err := d.record(id)
	if err != nil {
		return api.Job{}, err
	}
	return d.view(r), nil
}

// record reads a job's record, with the API's error for an unknown one.
func (d *Daemon) record(id uint64) (*store.Record, error) {
	r, err := d.db.Get(id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("%w: %d", ErrNotFound, id)
	}
	return r, err
}

// authorize reads job id's record for a change by the caller of ctx: its
// owner, root and the daemon's user may change a job; anyone may change a
// job with no recorded owner, and any caller may change any job when ctx
// carries none (the platform cannot tell who is calling, or the daemon
// itself is). A job whose record cannot be read has an owner no one can
// tell: only root and the daemon's user may change it, and they get the
// record's error. Called with mu held.
func (d *Daemon) authorize(ctx context.Context, id uint64) (*store.Record, error) {
	r, err := d.record(id)
	p, known := auth.PeerFrom(ctx)
	switch {
	case !known:
		return r, err
	case errors.Is(err, store.ErrBadRecord) && !p.Privileged():
		d.log.Warn("refused a change to a job that cannot be read", "job", id, "uid", p.UID)
		return nil, &auth.DeniedError{Msg: fmt.Sprintf("job %d cannot be read, so its owner is unknown; only root or the daemon's user may change it", id)}
	case err != nil:
		return nil, err
	case !p.MayChange(r.Owner):
		d.log.Warn("refused a change to another user's job", "job", id, "uid", p.UID, "owner", r.Owner.UID)
		return nil, &auth.DeniedError{Msg: fmt.Sprintf("job %d belongs to uid %d; only its owner, root or the daemon's user may change it", id, r.Owner.UID)}
	}
	return r, nil
}

// view renders a record, with live progress when it is running. Called
// with mu held.
func (d *Daemon) view(r *store.Record) api.Job {
	j := api.Job{
		ID: r.ID, Sources: r.Sources, Dir: r.Dir, Name: r.Name, Path: r.Path, Size: r.Size,
		State: r.State, LastError: r.LastError, Limit: r.Limit,
		Created: r.Created, Updated: r.Updated, Finished: r.Finished,
	}
	switch {
	case r.Root != ([32]byte{}):
		j.Content = transport.Hash(r.Root).String()
	case r.Content != ([32]byte{}):
		j.Content = transport.Hash(r.Content).String() // a job recorded before roots were
	}
	if r.Expect != ([32]byte{}) {
		j.Expect = transport.Hash(r.Expect).String()
	}
	if run := d.active[r.ID]; run != nil {
		j.Progress = apiProgress(run.tr.Progress())
		j.State = j.Progress.State
		if j.Progress.Size > 0 {
			j.Size = j.Progress.Size
		}
		return j
	}
	j.Progress = api.Progress{State: r.State, Size: r.Size, Verified: r.Verified, Fetched: r.Fetched, Time: time.Now()}
	for _, s := range r.SourceStats {
		j.Progress.Sources = append(j.Progress.Sources, apiSource(s, storedState(s), 0, time.Time{}))
	}
	return j
}

// Pause stops a job until it is resumed. Only the job's owner, root and
// the daemon's user may pause it (see authorize).
func (d *Daemon) Pause(ctx context.Context, id uint64) (api.Job, error) {
	return d.change(ctx, id, func(r *store.Record) error {
		switch r.State {
		case api.StatePaused:
			return nil
		case api.StateQueued, api.StateFailed:
			r.State = api.StatePaused
			return nil
		}
		return fmt.Errorf("%w: job %d is %s", ErrConflict, id, r.State)
	}, errPause)
}

// Resume queues a paused or failed job again. Only the job's owner, root
// and the daemon's user may resume it (see authorize).
func (d *Daemon) Resume(ctx context.Context, id uint64) (api.Job, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	r, err := d.authorize(ctx, id)
	if err != nil {
		return api.Job{}, err
	}
	if err := d.resumeLocked(r); err != nil {
		return api.Job{}, err
	}
	return d.jobLocked(id)
}

func (d *Daemon) resumeLocked(r *store.Record) error {
	switch r.State {
	case api.StateCompleted, api.StateCancelled:
		return fmt.Errorf("%w: job %d is %s", ErrConflict, r.ID, r.State)
	case api.StatePaused, api.StateFailed:
		r.State, r.LastError = api.StateQueued, ""
		// Asked to try again, the job gives every source another chance:
		// a mirror that held another file may have been fixed.
		for i := range r.SourceStats {
			r.SourceStats[i].Quarantined, r.SourceStats[i].Rejected, r.SourceStats[i].Failed = false, false, false
		}
		if err := d.db.Put(r); err != nil {
			return err
		}
		d.log.Info("job resumed", "job", r.ID)
		d.publishLocked(api.EventState, r.ID)
	}
	d.scheduleLocked()
	return nil
}

// Cancel stops a job for good and deletes its partial file. Only the
// job's owner, root and the daemon's user may cancel it (see authorize).
func (d *Daemon) Cancel(ctx context.Context, id uint64) (api.Job, error) {
	return d.change(ctx, id, func(r *store.Record) error {
		switch r.State {
		case api.StateCompleted:
			return fmt.Errorf("%w: job %d is completed", ErrConflict, id)
		case api.StateCancelled:
			return nil
		}
		r.State, r.Finished = api.StateCancelled, time.Now()
		if err := engine.RemovePart(r.Dir, r.DirID, r.Part, r.PartStamp.ID); err != nil {
			d.log.Warn("remove partial file", "job", id, "err", err)
		}
		return nil
	}, errCancel)
}

// change stops a running job with cause, or applies fn to a job that is
// not running, once the caller of ctx may change it.
func (d *Daemon) change(ctx context.Context, id uint64, fn func(*store.Record) error, cause error) (api.Job, error) {
	d.mu.Lock()
	r, err := d.authorize(ctx, id)
	if err != nil && !errors.Is(err, store.ErrBadRecord) {
		d.mu.Unlock()
		return api.Job{}, err
	}
	if run := d.active[id]; run != nil {
		run.stop(cause)
		d.mu.Unlock()
		<-run.done
		return d.Job(id)
	}
	defer d.mu.Unlock()
	if err != nil {
		return api.Job{}, err
	}
	before := r.State
	if err := fn(r); err != nil {
		return api.Job{}, err
	}
	if r.State != before {
		if err := d.db.Put(r); err != nil {
			return api.Job{}, err
		}
		d.log.Info("job "+r.State, "job", id)
		d.publishLocked(api.EventState, id)
	}
	return d.jobLocked(id)
}

// Remove deletes a job, cancelling it first if it is unfinished; a
// finished file is kept. A job whose record cannot be read is deleted as
// it is: its partial file, which the record would name, stays. Only the
// job's owner, root and the daemon's user may remove it (see authorize).
func (d *Daemon) Remove(ctx context.Context, id uint64) error {
	if _, err := d.Cancel(ctx, id); err != nil && !errors.Is(err, ErrConflict) && !errors.Is(err, store.ErrBadRecord) {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	j, err := d.jobLocked(id)
	if errors.Is(err, store.ErrBadRecord) {
		j, err = api.Job{ID: id}, nil
	}
	if err != nil {
		return err
	}
	if err := d.db.Delete(id); err != nil {
		return err
	}
	d.log.Info("job removed", "job", id)
	d.events.send(api.EventRemoved, id, &j)
	return nil
}

// SetJobLimit changes one job's rate cap (0: none). Only the job's owner,
// root and the daemon's user may change it (see authorize).
func (d *Daemon) SetJobLimit(ctx context.Context, id uint64, limit int64) (api.Job, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	r, err := d.authorize(ctx, id)
	if err != nil {
		return api.Job{}, err
	}
	if limit < 0 {
		return api.Job{}, fmt.Errorf("%w: negative limit", ErrInvalid)
	}
	// The daemon owns the record: the engine's checkpoints never write the
	// limit, so it holds at once and across restarts.
	r.Limit = limit
	if err := d.db.Put(r); err != nil {
		return api.Job{}, err
	}
	if run := d.active[id]; run != nil {
		setLimit(run.limiter, limit)
	}
	return d.jobLocked(id)
}

// SetLimit changes the global rate cap (0: none) until the daemon stops.
// It slows every user's jobs, so only root and the daemon's user may set
// it; with no caller in ctx, anyone may, as for jobs with no owner.
func (d *Daemon) SetLimit(ctx context.Context, limit int64) error {
	if p, ok := auth.PeerFrom(ctx); ok && !p.Privileged() {
		d.log.Warn("refused a change to the global limit", "uid", p.UID)
		return &auth.DeniedError{Msg: fmt.Sprintf("uid %d may not set the global limit: it slows every job, so only root or the daemon's user may set it", p.UID)}
	}
	if limit < 0 {
		return fmt.Errorf("%w: negative limit", ErrInvalid)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.cfg.Limit = limit
	setLimit(d.global, limit)
	d.log.Info("global limit set", "bytes_per_second", limit)
	return nil
}

// Limit returns the global rate cap.
func (d *Daemon) Limit() int64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.cfg.Limit
}

// publishLocked tells the event subscribers that job id changed. Only the
// job's ID is noted: each subscriber renders the job when it writes it.
// The lock orders the change with the subscribers' snapshots (see
// nextEvent).
func (d *Daemon) publishLocked(typ string, id uint64) {
	d.events.send(typ, id, nil)
}

// progressInterval is how often running jobs' progress is published.
const progressInterval = 500 * time.Millisecond

// tick publishes the running jobs' progress while anyone listens.
func (d *Daemon) tick() {
	if !d.events.listening() {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for id := range d.active {
		d.publishLocked(api.EventProgress, id)
	}
}

// Subscribe opens a stream of events for one job (id > 0) or all. It
// starts with a snapshot: the job's state, or every job's in ID order,
// each rendered as it is when the stream reaches it. Close it when done.
func (d *Daemon) Subscribe(id uint64) (*Subscription, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if id > 0 {
		if _, err := d.record(id); err != nil {
			return nil, err
		}
	}
	return &Subscription{d: d, s: d.events.subscribe(id)}, nil
}
