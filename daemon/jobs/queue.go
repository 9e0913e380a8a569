package jobs

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/idmproject/idm/daemon/api"
	"github.com/idmproject/idm/daemon/auth"
	"github.com/idmproject/idm/daemon/engine"
	"github.com/idmproject/idm/identity"
	"github.com/idmproject/idm/store"
	"github.com/idmproject/idm/transport"
	"github.com/idmproject/idm/transport/addr"
	"github.com/idmproject/idm/transport/httpsrc"
)

// DefaultMaxActive is how many jobs download at once by default.
const DefaultMaxActive = 3

// DefaultCloseTimeout is how long Close waits for the transfers to stop
// by default.
const DefaultCloseTimeout = 30 * time.Second

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
	// ErrShutdown reports an operation refused because the queue is
	// closing.
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

// stopCause is why the queue stopped a running transfer: the event to
// apply once it has stopped.
type stopCause struct{ e Event }

func (c stopCause) Error() string { return "stopped to " + c.e.String() }

// Config is how a Queue runs.
type Config struct {
	// StateDir holds the store. Required.
	StateDir string
	// MaxActive is how many jobs download at once (default 3).
	MaxActive int
	// Limit caps the total download rate in bytes per second; 0 is none.
	Limit int64
	// Logger receives one line per job event. Nil means slog.Default().
	Logger *slog.Logger
	// CloseTimeout bounds how long Close waits for the transfers to stop
	// (default DefaultCloseTimeout).
	CloseTimeout time.Duration
	// Conns, Depth, StallTimeout and FlushInterval tune every job's
	// transfer, as the engine.Transfer fields of the same names do.
	Conns         int
	Depth         int
	StallTimeout  time.Duration
	FlushInterval time.Duration
	// UserAgent names idmd to HTTP mirrors (default "idmd").
	UserAgent string

	// openSource, when set, turns a source's address into what the
	// engine opens, in place of the idm transport: tests give the queue
	// sources that misbehave in ways no real server can.
	openSource func(raw string) (engine.Source, error)
	// failComplete, when set, is called before the completion of job id
	// is written, and an error it returns is the store's: tests make the
	// write fail, as a full disk or a crash right after the transfer
	// published the file would.
	failComplete func(id uint64) error
}

// Queue owns the store, the jobs and their transfers. Jobs that were
// queued or running when the last queue stopped go on by themselves;
// paused ones stay paused.
//
// Every job's record is read once, at Open, into a table in memory; the
// table, not the store, answers every read. The queue writes the fields it
// owns with store.DB.Change, each running transfer its progress through
// its journal, and neither overwrites the other's. Two locks keep reads
// off the disk: wmu orders the queue's own writes and is held across
// them; mu guards the table and is never held across disk I/O, so
// listing jobs never waits on a write.
type Queue struct {
	cfg    Config
	db     *store.DB
	log    *slog.Logger
	global *rate.Limiter
	events *hub

	wmu sync.Mutex // held across each of the queue's writes, before mu

	mu     sync.Mutex
	jobs   map[uint64]*job
	ids    []uint64            // every job's ID, in order
	same   map[string][]uint64 // unfinished jobs by sameKey
	active map[uint64]*job     // jobs with a transfer
	closed bool

	wg       sync.WaitGroup
	stopTick context.CancelFunc

	// mirrors is the HTTP client of every job's mirrors, made on first
	// use: one pool of kept-alive connections for the daemon.
	mirrors func() *http.Client
}

// job is one job in the queue's table.
type job struct {
	id uint64
	// rec is the record as the queue last read or wrote it. Its State
	// is always state's stored word. While the job runs, its progress
	// fields lag behind the transfer's own, which views use instead.
	rec     *store.Record
	state   State
	bad     error    // the record cannot be read; nothing else is known
	run     *running // the transfer, while the job is Running
	recheck bool     // the partial file may be ahead of the record
}

// rank is job j's place in the line of jobs waiting for a slot: the
// queue starts the queued job of least rank first. It is the order of
// creation, the job's ID, until Move hands the ranks of the jobs it
// moves past around among them; so ranks stay distinct, and a new job,
// whose ID is greater than every other, goes to the end. Not for a job
// that cannot be read.
func (j *job) rank() uint64 {
	if j.rec.Rank != 0 {
		return uint64(j.rec.Rank)
	}
	return j.id
}

// running is one job's transfer in progress.
type running struct {
	tr      *engine.Transfer
	stop    context.CancelCauseFunc
	done    chan struct{}
	limiter *rate.Limiter
}

// Open opens the store in cfg.StateDir, reads every job and starts the
// jobs that were under way.
func Open(cfg Config) (*Queue, error) {
	if cfg.MaxActive <= 0 {
		cfg.MaxActive = DefaultMaxActive
	}
	if cfg.CloseTimeout <= 0 {
		cfg.CloseTimeout = DefaultCloseTimeout
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
	q := &Queue{
		cfg:     cfg,
		db:      db,
		log:     cfg.Logger,
		global:  newLimiter(cfg.Limit),
		events:  newHub(),
		jobs:    map[uint64]*job{},
		same:    map[string][]uint64{},
		active:  map[uint64]*job{},
		mirrors: sync.OnceValue(httpsrc.NewClient),
	}
	if err := q.load(); err != nil {
		db.Close()
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	q.stopTick = cancel
	q.wg.Go(func() {
		tick := time.NewTicker(progressInterval)
		defer tick.Stop()
		for {
			select {
			case <-tick.C:
				q.tick()
			case <-ctx.Done():
				return
			}
		}
	})
	q.wmu.Lock()
	q.completePublished()
	q.schedule()
	q.wmu.Unlock()
	return q, nil
}

// completePublished completes the unfinished jobs whose transfer
// published their file and whose completion was not written: idmd died,
// or its store failed, between the two. The file is in place and the
// journal said so; downloading it again would make a second copy. A job
// that follows Metalinks is followed now, as it would have been then.
// Called with wmu held, before any job starts.
func (q *Queue) completePublished() {
	for _, id := range slices.Clone(q.ids) { // move adds the followers' IDs
		j := q.jobs[id]
		if j.bad != nil || j.state != Queued || j.rec.Path == "" {
			continue
		}
		q.log.Info("job published its file before idmd stopped: completing it", "job", id, "path", j.rec.Path)
		j.state = Running // as it was: its transfer ended, not yet recorded
		if err := q.move(j, Complete, nil, j.rec.Path); err != nil {
			q.log.Error("record job end", "job", id, "err", err)
		}
		if r := j.rec; r.Part != "" && r.Path != filepath.Join(r.Dir, r.Part) {
			// The second name a crash may have left, as load removes it.
			if err := engine.RemovePart(r.Dir, r.DirID, r.Part, r.PartStamp.ID); err != nil {
				q.log.Warn("remove partial file of a completed job", "job", id, "err", err)
			}
		}
	}
}

// load reads every job into the table.
func (q *Queue) load() error {
	recs, bad, err := q.db.List()
	if err != nil {
		return err
	}
	clean := q.db.WasClean()
	resumed := 0
	for _, r := range recs {
		s, err := parseStored(r.State)
		if err != nil {
			bad = append(bad, &store.RecordError{ID: r.ID, Err: err})
			continue
		}
		r.State = s.stored()
		j := &job{id: r.ID, rec: r, state: s, recheck: !clean && s.Unfinished()}
		if !clean && s == Completed && r.Part != "" && r.Path != filepath.Join(r.Dir, r.Part) {
			// A crash between recording a finished job and removing its
			// partial file's name leaves that name as a second link to
			// the finished file.
			if err := engine.RemovePart(r.Dir, r.DirID, r.Part, r.PartStamp.ID); err != nil {
				q.log.Warn("remove partial file of a completed job", "job", r.ID, "err", err)
			}
		}
		if s == Queued {
			resumed++
		}
		q.jobs[r.ID] = j
		q.index(j)
	}
	for _, b := range bad {
		q.log.Warn("record cannot be read, skipped", "job", b.ID, "err", b.Err)
		q.jobs[b.ID] = &job{id: b.ID, bad: b}
	}
	q.ids = make([]uint64, 0, len(q.jobs))
	for id := range q.jobs {
		q.ids = append(q.ids, id)
	}
	slices.Sort(q.ids)
	q.log.Info("state opened", "dir", q.cfg.StateDir, "jobs", len(recs), "unreadable", len(bad), "clean_shutdown", clean, "to_resume", resumed)
	return nil
}

// sameKey is what makes two jobs the same download: the same sources, in
// any order, into the same directory.
func sameKey(r *store.Record) string {
	src := slices.Clone(r.Sources)
	slices.Sort(src)
	return r.Dir + "\x00" + strings.Join(src, "\x00")
}

// index adds an unfinished job to the index of same downloads. Called
// with mu held, or before the queue is shared.
func (q *Queue) index(j *job) {
	if j.state.Unfinished() {
		k := sameKey(j.rec)
		q.same[k] = append(q.same[k], j.id)
	}
}

// unindex takes a job out of the index of same downloads. Called with mu
// held.
func (q *Queue) unindex(j *job) {
	k := sameKey(j.rec)
	ids := slices.DeleteFunc(q.same[k], func(id uint64) bool { return id == j.id })
	if len(ids) == 0 {
		delete(q.same, k)
	} else {
		q.same[k] = ids
	}
}

// newLimiter returns a limiter for limit bytes per second (0: none).
func newLimiter(limit int64) *rate.Limiter {
	l := rate.NewLimiter(rate.Inf, 0)
	setLimit(l, limit)
	return l
}

// setLimit changes l to limit bytes per second (0: none). The engine
// takes at most 64 KiB from a limiter at a time; the burst lets a tenth
// of a second's worth through at once, and never less than one chunk.
func setLimit(l *rate.Limiter, limit int64) {
	if limit <= 0 {
		l.SetLimit(rate.Inf)
		return
	}
	l.SetBurst(int(max(64<<10, limit/10)))
	l.SetLimit(rate.Limit(limit))
}

// Close stops every transfer (each checkpoints its progress), marks the
// clean shutdown and closes the store. Jobs that were running go on at
// the next Open. It waits at most Config.CloseTimeout for the transfers:
// one that does not stop by then (a disk that hangs, say) is left
// behind, and the store is left unmarked and open for the process's exit
// to release, so that the next Open rechecks every partial file.
func (q *Queue) Close() error {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return nil
	}
	q.closed = true
	var runs []*running
	for _, j := range q.active {
		j.run.stop(stopCause{Stop})
		runs = append(runs, j.run)
	}
	q.mu.Unlock()
	q.stopTick()
	q.events.close()
	deadline := time.NewTimer(q.cfg.CloseTimeout)
	defer deadline.Stop()
	for _, r := range runs {
		select {
		case <-r.done:
		case <-deadline.C:
			var left []uint64
			q.mu.Lock()
			for id := range q.active {
				left = append(left, id)
			}
			q.mu.Unlock()
			slices.Sort(left)
			q.log.Error("transfers did not stop in time; the state is not marked clean", "jobs", left, "waited", q.cfg.CloseTimeout)
			return fmt.Errorf("the transfers of jobs %v did not stop within %v", left, q.cfg.CloseTimeout)
		}
	}
	q.wg.Wait()
	err := q.db.MarkClean()
	if cerr := q.db.Close(); err == nil {
		err = cerr
	}
	q.log.Info("state closed cleanly")
	return err
}

// schedule starts queued jobs, first in line first, while slots are free. Called
// with wmu held: a job refused at its start is failed, which is written.
func (q *Queue) schedule() {
	for {
		q.mu.Lock()
		if q.closed || len(q.active) >= q.cfg.MaxActive {
			q.mu.Unlock()
			return
		}
		var j *job
		for _, id := range q.ids {
			if c := q.jobs[id]; c.bad == nil && c.state == Queued && (j == nil || c.rank() < j.rank()) {
				j = c
			}
		}
		if j == nil {
			q.mu.Unlock()
			return
		}
		rec, recheck := j.rec, j.recheck
		q.mu.Unlock()
		tj, err := q.prepare(rec, recheck)
		if err != nil {
			q.log.Warn("job cannot start", "job", j.id, "err", err)
			if merr := q.move(j, Fail, err, ""); merr != nil {
				// Not even its failure could be recorded: leave it be
				// rather than try it again and again.
				q.log.Error("record job refused at start", "job", j.id, "err", merr)
				return
			}
			continue
		}
		q.mu.Lock()
		// The table may have changed while the job was prepared: above
		// all, Close may have begun, and a transfer started now would be
		// one it does not stop and waits for for ever.
		if q.closed {
			q.mu.Unlock()
			return
		}
		if j.state != Queued || len(q.active) >= q.cfg.MaxActive {
			q.mu.Unlock()
			continue
		}
		q.startLocked(j, tj)
		q.mu.Unlock()
	}
}

// prepare checks that job r may start and reads what its transfer needs
// from the store. Its owner must still be allowed to create files in its
// directory: the directory, its owner or its mode may have changed since
// the job was created, or since idmd last started it.
func (q *Queue) prepare(r *store.Record, recheck bool) (engine.Job, error) {
	if auth.MustCheck(r.Owner) {
		if _, _, err := resolveDir(r.Dir, r.Owner); err != nil {
			return engine.Job{}, err
		}
	}
	return q.engineJob(r, recheck)
}

// startLocked starts job j's transfer. Called with wmu and mu held.
func (q *Queue) startLocked(j *job, tj engine.Job) {
	j.state, _ = j.state.On(Start)
	j.recheck = false
	c := &q.cfg
	run := &running{done: make(chan struct{}), limiter: newLimiter(j.rec.Limit)}
	id := j.id
	run.tr = &engine.Transfer{
		Job: tj, Journal: journal{q.db, id},
		Conns: c.Conns, Depth: c.Depth, FlushInterval: c.FlushInterval,
		Limiters: []*rate.Limiter{run.limiter, q.global},
		Logger:   q.log, // the transfer names the job in its lines
		// A source's state changed: the event hub only notes the job, so
		// this never blocks the engine.
		OnChange: func() { q.events.send(api.EventState, id, nil) },
	}
	ctx, stop := context.WithCancelCause(context.Background())
	run.stop = stop
	j.run = run
	q.active[id] = j
	q.log.Info("job started", "job", id, "sources", len(j.rec.Sources), "dir", j.rec.Dir, "recheck", tj.Recheck)
	q.wg.Go(func() {
		err := run.tr.Run(ctx)
		q.finished(j, run, err, context.Cause(ctx))
	})
	q.events.send(api.EventState, id, nil)
}

// finished records how job j's transfer ended and starts the next job.
func (q *Queue) finished(j *job, run *running, err, cause error) {
	q.wmu.Lock()
	defer q.wmu.Unlock()
	var e Event
	var sc stopCause
	switch {
	case err == nil:
		e = Complete
	case errors.As(cause, &sc):
		e = sc.e
	default:
		e = Fail
	}
	if e != Stop {
		if merr := q.move(j, e, err, run.tr.Path()); merr != nil {
			q.log.Error("record job end", "job", j.id, "err", merr)
		}
	}
	var rec *store.Record
	if e == Stop {
		// Its last checkpoint is in the store, ahead of the table's copy:
		// a job stopped to start again (SetSources) starts from there.
		rec, _ = q.db.Get(j.id)
	}
	q.mu.Lock()
	if rec != nil {
		j.rec = rec
	}
	if j.state == Running {
		// Stopped with the daemon, or its end could not be recorded: it
		// goes on at the next start.
		j.state, _ = Running.On(Stop)
	}
	j.run = nil
	delete(q.active, j.id)
	close(run.done)
	// Rendered from here on without its transfer.
	q.events.send(api.EventState, j.id, nil)
	q.mu.Unlock()
	q.schedule()
}

// move applies event e to job j: it writes the new state, then shows it.
// cause is why a job fails; path is a completed job's file as its
// transfer knows it. A job that completes with a Metalink for its file
// and follows Metalinks becomes the Metalink's jobs too, made in the
// transaction that completes it (see planFollow). Called with wmu held
// and mu not held.
func (q *Queue) move(j *job, e Event, cause error, path string) error {
	q.mu.Lock()
	from := j.state
	q.mu.Unlock()
	next, ok := from.On(e)
	if !ok {
		return fmt.Errorf("%w: job %d is %s", ErrConflict, j.id, apiState(from))
	}
	if next == from {
		return nil
	}
	now := time.Now()
	var follow followPlan
	edit := func(r *store.Record) error {
		r.State = next.stored()
		switch e {
		case Complete:
			// The journal may not have been able to record the finished
			// file (a full disk, say): what the transfer knows of it wins.
			if path != "" && r.Path == "" {
				r.Path, r.Finished, r.Verified = path, now, r.Size
			}
			dropLogins(r)
		case Fail:
			r.LastError = cause.Error()
		case Resume:
			// Asked to try again, the job gives every source another
			// chance: a mirror that held another file may have been fixed.
			r.LastError = ""
			for i := range r.SourceStats {
				r.SourceStats[i].Quarantined, r.SourceStats[i].Rejected, r.SourceStats[i].Failed = false, false, false
			}
		case Cancel:
			r.Finished = now
			dropLogins(r)
		}
		return nil
	}
	var rec *store.Record
	var err error
	if e == Complete {
		rec, follow, err = q.complete(j, path, edit)
	} else {
		rec, err = q.db.Change(j.id, edit)
	}
	if err != nil {
		if from != Running {
			return err
		}
		// A transfer has ended whatever the store says: show how, and
		// keep the rest of what was recorded. A Metalink is not followed:
		// the next start, finding the job unfinished and its file
		// published, completes it again (completePublished).
		follow = followPlan{}
		q.mu.Lock()
		rec = cloneRecord(j.rec)
		q.mu.Unlock()
		if fresh, gerr := q.db.Get(j.id); gerr == nil {
			rec = fresh
		}
		edit(rec)
		defer q.log.Error("record job end", "job", j.id, "state", next, "err", err)
	}
	if e == Cancel {
		if err := engine.RemovePart(rec.Dir, rec.DirID, rec.Part, rec.PartStamp.ID); err != nil {
			q.log.Warn("remove partial file", "job", j.id, "err", err)
		}
	}
	q.mu.Lock()
	for _, p := range follow.files {
		if p.same == 0 {
			// Made with the job's completion: in the table before the
			// job shows followed_by, so that whoever sees it finds them.
			q.insertLocked(p.rec)
		}
	}
	j.rec, j.state = rec, next
	if next.Final() {
		q.unindex(j)
	}
	q.events.send(api.EventState, j.id, nil)
	q.mu.Unlock()
	switch e {
	case Fail:
		q.log.Warn("job failed", "job", j.id, "err", cause)
	case Complete:
		q.log.Info("job completed", "job", j.id, "path", rec.Path)
		for _, p := range follow.files {
			if p.same == 0 {
				q.log.Info("job created", "job", p.rec.ID, "sources", redactAll(p.rec.Sources), "dir", p.rec.Dir, "following", j.id)
			}
		}
		switch {
		case len(rec.FollowedBy) > 0:
			q.log.Info("job's file is a Metalink: followed by its jobs", "job", j.id, "followed_by", rec.FollowedBy)
		case rec.FollowError != "":
			q.log.Warn("job's file not followed", "job", j.id, "why", rec.FollowError)
		}
	default:
		q.log.Info("job "+next.String(), "job", j.id, "by", e.String())
	}
	return nil
}

// complete writes the completion of job j, whose file is published at
// path (or where its record says), with edit; when the file is a
// Metalink to follow, its jobs are made in the same transaction and
// recorded as the job's followers. It returns the job's record as
// written and the plan it followed.
func (q *Queue) complete(j *job, path string, edit func(*store.Record) error) (*store.Record, followPlan, error) {
	if q.cfg.failComplete != nil {
		if err := q.cfg.failComplete(j.id); err != nil {
			return nil, followPlan{}, err
		}
	}
	q.mu.Lock()
	follows := j.rec.Follow != nil
	q.mu.Unlock()
	var follow followPlan
	if follows {
		// The table's copy lags behind the journal's writes: the source's
		// type, the file's path and identity are in the store.
		cur, err := q.db.Get(j.id)
		if err != nil {
			return nil, followPlan{}, err
		}
		follow = q.planFollow(cur, cmp.Or(cur.Path, path))
	}
	if len(follow.files) == 0 {
		rec, err := q.db.Change(j.id, func(r *store.Record) error {
			r.FollowError = follow.why
			return edit(r)
		})
		return rec, follow, err
	}
	rec, err := q.db.CreateFrom(j.id, follow.news(), func(r *store.Record, ids []uint64) error {
		r.FollowedBy, r.FollowError = follow.followers(ids), ""
		return edit(r)
	})
	return rec, follow, err
}

// dropLogins forgets the logins r kept for the Metalink its file may be:
// the job has ended, and they are of no more use. The Follow r points to
// is left alone, as the table's copy of the record may share it.
func dropLogins(r *store.Record) {
	if r.Follow != nil && len(r.Follow.Logins) > 0 {
		f := *r.Follow
		f.Logins = nil
		r.Follow = &f
	}
}

// cloneRecord copies r deeply enough that the copy's edits leave r alone.
func cloneRecord(r *store.Record) *store.Record {
	c := *r
	c.SourceStats = slices.Clone(r.SourceStats)
	return &c
}

// Create validates req and queues a new job, or, with req.Resume, resumes
// the unfinished job with the same sources and directory; created tells
// which. The caller is the peer of ctx, when it carries one (the control
// API's requests do): unless it is root or the daemon's own user, it must
// be allowed to create files in req.Dir, or the request fails with
// auth.ErrDenied and nothing is written. Only a job the caller may change
// counts as the same: another user's is neither named nor resumed, and
// the caller gets a job of its own. It asks no source anything, so it
// answers at once whatever the network does.
//
// With req.FollowMetalink, a job of one http(s) source downloads what
// the source answers with, a Metalink 4 included, and once it completes,
// a file that is a Metalink becomes the Metalink's jobs (see move), with
// req's MetalinkOptions; its logins are kept in the record until then.
func (q *Queue) Create(ctx context.Context, req api.CreateRequest) (view api.Job, created bool, err error) {
	rec, err := q.validate(ctx, &req)
	if err != nil {
		return api.Job{}, false, err
	}
	return q.add(ctx, rec, nil, req.Resume)
}

// validate checks a create request from the peer of ctx and returns the
// new job's record.
func (q *Queue) validate(ctx context.Context, req *api.CreateRequest) (*store.Record, error) {
	var owner *store.Owner
	caller, known := auth.PeerFrom(ctx)
	if known {
		owner = caller.Owner()
	}
	dirID, err := validateCreate(req, owner, caller)
	if errors.Is(err, auth.ErrDenied) {
		q.log.Warn("refused a directory", "uid", owner.UID, "dir", req.Dir, "err", err)
	}
	if err != nil {
		return nil, err
	}
	rec := &store.Record{Sources: req.Sources, Dir: req.Dir, Limit: req.Limit, Conns: req.Connections, State: Queued.stored(), DirID: dirID, Owner: owner,
		Headers: req.Headers, UserAgent: req.UserAgent, CA: req.CA, Proxy: req.Proxy, NoDiscover: req.NoDiscover}
	if req.FollowMetalink {
		logins, err := keptLogins(req.Logins)
		if err != nil {
			return nil, err
		}
		if followsMetalink(req.Sources) {
			rec.Follow = &store.Follow{Select: req.Select, Locations: req.Locations, Logins: logins}
		}
	}
	if req.Content != "" {
		h, _ := transport.ParseHash(req.Content) // checked by validateCreate
		rec.Expect = h
	}
	if req.Checksum != "" {
		d, _ := identity.ParseDigest(req.Checksum) // checked by validateCreate
		rec.Checksum = d.String()
	}
	if req.Name != "" {
		rec.Name = engine.SanitizeName(req.Name)
	}
	return rec, nil
}

// add stores rec, a new job's record with its piece hashes when its file
// is known, and queues the job; or, with resume, resumes the unfinished
// job with the same sources and directory, as Create says.
func (q *Queue) add(ctx context.Context, rec *store.Record, hashes []byte, resume bool) (view api.Job, created bool, err error) {
	caller, known := auth.PeerFrom(ctx)
	q.wmu.Lock()
	defer q.wmu.Unlock()
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return api.Job{}, false, ErrShutdown
	}
	same := q.sameLocked(caller, known, rec)
	q.mu.Unlock()
	if same != nil {
		if !resume {
			return api.Job{}, false, &existsError{same.id}
		}
		if err := q.move(same, Resume, nil, ""); err != nil {
			return api.Job{}, false, err
		}
		q.schedule()
		view, err = q.Job(same.id)
		return view, false, err
	}

	if err := q.db.Create(rec, hashes); err != nil {
		return api.Job{}, false, err
	}
	q.mu.Lock()
	q.insertLocked(rec)
	q.mu.Unlock()
	q.log.Info("job created", "job", rec.ID, "sources", redactAll(rec.Sources), "dir", rec.Dir)
	q.schedule()
	view, err = q.Job(rec.ID)
	return view, true, err
}

// insertLocked adds the job of rec, a new record just stored, to the
// table, queued at the end of the waiting line, and tells the event
// streams. Called with mu held.
func (q *Queue) insertLocked(rec *store.Record) {
	j := &job{id: rec.ID, rec: rec, state: Queued}
	q.jobs[j.id] = j
	q.ids = append(q.ids, j.id) // IDs only grow
	q.index(j)
	q.events.send(api.EventState, j.id, nil)
}

// sameLocked returns the unfinished job with the same sources and
// directory as rec that the caller (when known) may change, or nil.
// Called with mu held.
func (q *Queue) sameLocked(caller auth.Peer, known bool, rec *store.Record) *job {
	for _, id := range q.same[sameKey(rec)] {
		// Not even 409 for another user's job: the caller would learn of,
		// or take over, a job that is not its own; and refusing would let
		// one member keep another from a download by starting it first.
		// The jobs do not collide: each has its own partial file, and
		// each publishes under a name that replaces nothing.
		if j := q.jobs[id]; !known || caller.MayChange(j.rec.Owner) {
			return j
		}
	}
	return nil
}

// sameJob returns the ID of the unfinished job of the caller of ctx with
// the same sources and directory as rec, the one Create with Resume
// would resume, or 0.
func (q *Queue) sameJob(ctx context.Context, rec *store.Record) uint64 {
	caller, known := auth.PeerFrom(ctx)
	q.mu.Lock()
	defer q.mu.Unlock()
	if j := q.sameLocked(caller, known, rec); j != nil {
		return j.id
	}
	return 0
}

// maxName bounds the name a caller gives a job's file, as most file
// systems bound a name.
const maxName = 255

// maxConns bounds the connections a job opens to each source.
const maxConns = 16

// loneMirrorConns is how many connections a job whose only source is an
// HTTP mirror opens to it by default: one range at a time each, a single
// connection would leave a fast link idle between ranges.
const loneMirrorConns = 4

// validateCreate checks a create request from owner (nil when unknown),
// normalises its sources and resolves its directory, whose identity it
// returns. An aria2 RPC caller may download only into its Dirs.
func validateCreate(req *api.CreateRequest, owner *store.Owner, caller auth.Peer) (store.FileID, error) {
	if len(req.Sources) == 0 {
		return store.FileID{}, fmt.Errorf("%w: no sources", ErrInvalid)
	}
	seen := map[string]bool{}
	for i, s := range req.Sources {
		src, err := addr.Parse(s)
		if err != nil {
			return store.FileID{}, fmt.Errorf("%w: %v", ErrInvalid, err)
		}
		norm := src.String()
		if seen[norm] {
			return store.FileID{}, fmt.Errorf("%w: source %s given twice", ErrInvalid, src.Redacted())
		}
		seen[norm] = true
		req.Sources[i] = norm
	}
	if req.Limit < 0 {
		return store.FileID{}, fmt.Errorf("%w: negative limit", ErrInvalid)
	}
	if !req.FollowMetalink && (len(req.Select) > 0 || len(req.Locations) > 0 || len(req.Logins) > 0) {
		return store.FileID{}, fmt.Errorf("%w: select, locations and logins are for a Metalink the source may answer with (follow_metalink)", ErrInvalid)
	}
	if req.FollowMetalink && !followsMetalink(req.Sources) && (len(req.Select) > 0 || len(req.Locations) > 0) {
		return store.FileID{}, fmt.Errorf("%w: select and locations are for a Metalink: only a lone http(s) source may answer with one", ErrInvalid)
	}
	if err := validateHTTPOptions(req); err != nil {
		return store.FileID{}, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if req.Connections < 0 || req.Connections > maxConns {
		return store.FileID{}, fmt.Errorf("%w: %d connections per source: want 1 to %d", ErrInvalid, req.Connections, maxConns)
	}
	if req.Checksum != "" {
		if _, err := identity.ParseDigest(req.Checksum); err != nil {
			return store.FileID{}, fmt.Errorf("%w: %v", ErrInvalid, err)
		}
	}
	if req.Name != "" && (req.Name == "." || req.Name == ".." || strings.ContainsAny(req.Name, "/\\\x00") || len(req.Name) > maxName) {
		return store.FileID{}, fmt.Errorf("%w: name %.80q: want a file name of at most %d bytes, not a path", ErrInvalid, req.Name, maxName)
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
	// Checked on the resolved path, before idmd writes anything there; a
	// directory replaced after this check is for the write path to catch,
	// against its identity (DirID).
	if caller.RPC && !auth.WithinDirs(dir, caller.Dirs) {
		return store.FileID{}, &auth.DeniedError{Msg: fmt.Sprintf("dir %s is not one of idmd's download directories (%s): an RPC caller may download only into those and the directories in them",
			req.Dir, strings.Join(caller.Dirs, ", "))}
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

// followsMetalink reports whether a job of sources, normalised, may
// follow a Metalink: it has one, an http(s) URL, whose answer is the job's
// file whatever it is, a Metalink's list of files included.
func followsMetalink(sources []string) bool {
	return len(sources) == 1 && !strings.HasPrefix(sources[0], addr.IDM+"://")
}

// Jobs returns every job that can be read, in ID order.
func (q *Queue) Jobs() []api.Job { return q.List(0, -1) }

// List returns at most n (all, if n < 0) of the jobs that can be read
// whose IDs follow after, in ID order. Listing page by page keeps what a
// long list holds at once small, and the lock free between the pages.
func (q *Queue) List(after uint64, n int) []api.Job {
	q.mu.Lock()
	defer q.mu.Unlock()
	i, _ := slices.BinarySearch(q.ids, after+1)
	if n < 0 {
		n = len(q.ids) - i
	}
	out := make([]api.Job, 0, min(n, len(q.ids)-i))
	for ; i < len(q.ids) && len(out) < n; i++ {
		if j := q.jobs[q.ids[i]]; j.bad == nil {
			out = append(out, q.view(j))
		}
	}
	return out
}

// Job returns one job.
func (q *Queue) Job(id uint64) (api.Job, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	j, err := q.lookup(id)
	if err != nil {
		return api.Job{}, err
	}
	if j.bad != nil {
		return api.Job{}, j.bad
	}
	return q.view(j), nil
}

// lookup finds job id, with the API's error for an unknown one. Called
// with mu held.
func (q *Queue) lookup(id uint64) (*job, error) {
	j := q.jobs[id]
	if j == nil {
		return nil, fmt.Errorf("%w: %d", ErrNotFound, id)
	}
	return j, nil
}

// authorize finds job id for a change by the caller of ctx: its owner,
// root and the daemon's user may change a job; anyone may change a job
// with no recorded owner, and any caller may change any job when ctx
// carries none (the platform cannot tell who is calling, or the daemon
// itself is). A job whose record cannot be read has an owner no one can
// tell: only root and the daemon's user may change it, and only remove
// it. Called with mu held.
func (q *Queue) authorize(ctx context.Context, id uint64) (*job, error) {
	j, err := q.lookup(id)
	if err != nil {
		return nil, err
	}
	p, known := auth.PeerFrom(ctx)
	switch {
	case j.bad != nil && known && !p.Privileged():
		q.log.Warn("refused a change to a job that cannot be read", "job", id, "uid", p.UID)
		return nil, &auth.DeniedError{Msg: fmt.Sprintf("job %d cannot be read, so its owner is unknown; only root or the daemon's user may change it", id)}
	case j.bad != nil || !known:
		return j, nil
	case !p.MayChange(j.rec.Owner):
		q.log.Warn("refused a change to another user's job", "job", id, "uid", p.UID, "owner", j.rec.Owner.UID)
		return nil, &auth.DeniedError{Msg: fmt.Sprintf("job %d belongs to uid %d; only its owner, root or the daemon's user may change it", id, j.rec.Owner.UID)}
	}
	return j, nil
}

// Pause stops a job until it is resumed. Only the job's owner, root and
// the daemon's user may pause it (see authorize).
func (q *Queue) Pause(ctx context.Context, id uint64) (api.Job, error) {
	return q.act(ctx, id, Pause)
}

// Resume queues a paused or failed job again. Only the job's owner, root
// and the daemon's user may resume it (see authorize).
func (q *Queue) Resume(ctx context.Context, id uint64) (api.Job, error) {
	return q.act(ctx, id, Resume)
}

// Cancel stops a job for good and deletes its partial file. Only the
// job's owner, root and the daemon's user may cancel it (see authorize).
func (q *Queue) Cancel(ctx context.Context, id uint64) (api.Job, error) {
	return q.act(ctx, id, Cancel)
}

// act applies a caller's event to job id, once the caller of ctx may
// change it. A running job is stopped, and its transfer's end applies
// the event.
func (q *Queue) act(ctx context.Context, id uint64, e Event) (api.Job, error) {
	q.wmu.Lock()
	q.mu.Lock()
	j, err := q.authorize(ctx, id)
	if err == nil && j.bad != nil {
		err = j.bad
	}
	if err != nil {
		q.mu.Unlock()
		q.wmu.Unlock()
		return api.Job{}, err
	}
	if run := j.run; run != nil {
		if next, ok := Running.On(e); ok && next != Running {
			run.stop(stopCause{e})
			q.mu.Unlock()
			q.wmu.Unlock()
			<-run.done // its end is written under wmu
			return q.Job(id)
		}
	}
	q.mu.Unlock()
	err = q.move(j, e, nil, "")
	if err == nil && e == Resume {
		q.schedule()
	}
	q.wmu.Unlock()
	if err != nil {
		return api.Job{}, err
	}
	return q.Job(id)
}

// Remove deletes a job, cancelling it first if it is unfinished; a
// finished file is kept. A job whose record cannot be read is deleted as
// it is: its partial file, which the record would name, stays. Only the
// job's owner, root and the daemon's user may remove it (see authorize).
func (q *Queue) Remove(ctx context.Context, id uint64) error {
	if _, err := q.Cancel(ctx, id); err != nil && !errors.Is(err, ErrConflict) && !errors.Is(err, store.ErrBadRecord) {
		return err
	}
	q.wmu.Lock()
	defer q.wmu.Unlock()
	q.mu.Lock()
	j, err := q.authorize(ctx, id)
	if err != nil {
		q.mu.Unlock()
		return err
	}
	last := api.Job{ID: id}
	if j.bad == nil {
		last = q.view(j)
	}
	q.mu.Unlock()
	if err := q.db.Delete(id); err != nil {
		return err
	}
	q.mu.Lock()
	if j.bad == nil && j.state.Unfinished() {
		q.unindex(j)
	}
	delete(q.jobs, id)
	if i, ok := slices.BinarySearch(q.ids, id); ok {
		q.ids = slices.Delete(q.ids, i, i+1)
	}
	q.events.send(api.EventRemoved, id, &last)
	q.mu.Unlock()
	q.log.Info("job removed", "job", id)
	return nil
}

// SetJobLimit changes one job's rate cap (0: none), at once for a running
// job and for good. Only the job's owner, root and the daemon's user may
// change it (see authorize).
func (q *Queue) SetJobLimit(ctx context.Context, id uint64, limit int64) (api.Job, error) {
	if limit < 0 {
		return api.Job{}, fmt.Errorf("%w: negative limit", ErrInvalid)
	}
	q.wmu.Lock()
	defer q.wmu.Unlock()
	q.mu.Lock()
	j, err := q.authorize(ctx, id)
	if err == nil && j.bad != nil {
		err = j.bad
	}
	q.mu.Unlock()
	if err != nil {
		return api.Job{}, err
	}
	rec, err := q.db.Change(id, func(r *store.Record) error { r.Limit = limit; return nil })
	if err != nil {
		return api.Job{}, err
	}
	q.mu.Lock()
	j.rec = rec
	if j.run != nil {
		setLimit(j.run.limiter, limit)
	}
	q.events.send(api.EventState, id, nil)
	view := q.view(j)
	q.mu.Unlock()
	q.log.Info("job limit set", "job", id, "bytes_per_second", limit)
	return view, nil
}

// SetLimit changes the global rate cap (0: none) until the daemon stops.
// It slows every user's jobs, so only root and the daemon's user may set
// it; with no caller in ctx, anyone may, as for jobs with no owner.
func (q *Queue) SetLimit(ctx context.Context, limit int64) error {
	if p, ok := auth.PeerFrom(ctx); ok && !p.Privileged() {
		q.log.Warn("refused a change to the global limit", "uid", p.UID)
		return &auth.DeniedError{Msg: fmt.Sprintf("uid %d may not set the global limit: it slows every job, so only root or the daemon's user may set it", p.UID)}
	}
	if limit < 0 {
		return fmt.Errorf("%w: negative limit", ErrInvalid)
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	q.cfg.Limit = limit
	setLimit(q.global, limit)
	q.log.Info("global limit set", "bytes_per_second", limit)
	return nil
}

// SetMaxActive changes how many jobs download at once until the daemon
// stops. More slots start queued jobs at once; fewer stop none: the jobs
// under way go on, and no other starts until they are fewer than n. As
// the global limit, it applies to every user's jobs, so only root and
// the daemon's user may change it.
func (q *Queue) SetMaxActive(ctx context.Context, n int) error {
	if p, ok := auth.PeerFrom(ctx); ok && !p.Privileged() {
		q.log.Warn("refused a change to the number of active jobs", "uid", p.UID)
		return &auth.DeniedError{Msg: fmt.Sprintf("uid %d may not change how many jobs download at once: it applies to every job, so only root or the daemon's user may", p.UID)}
	}
	if n < 1 {
		return fmt.Errorf("%w: %d active jobs: want at least 1", ErrInvalid, n)
	}
	q.wmu.Lock()
	defer q.wmu.Unlock()
	q.mu.Lock()
	q.cfg.MaxActive = n
	q.mu.Unlock()
	q.log.Info("active jobs set", "max_active", n)
	q.schedule()
	return nil
}

// MaxActive returns how many jobs download at once.
func (q *Queue) MaxActive() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.cfg.MaxActive
}

// Limit returns the global rate cap.
func (q *Queue) Limit() int64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.cfg.Limit
}

// progressInterval is how often running jobs' progress is published.
const progressInterval = 500 * time.Millisecond

// tick publishes the running jobs' progress while anyone listens.
func (q *Queue) tick() {
	if !q.events.listening() {
		return
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	for id := range q.active {
		q.events.send(api.EventProgress, id, nil)
	}
}

// Subscribe opens a stream of events for one job (id > 0) or all. It
// starts with a snapshot: the job's state, or every job's in ID order,
// each rendered as it is when the stream reaches it. Close it when done.
func (q *Queue) Subscribe(id uint64) (*Subscription, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if id > 0 {
		j, err := q.lookup(id)
		if err == nil && j.bad != nil {
			err = j.bad
		}
		if err != nil {
			return nil, err
		}
	}
	return &Subscription{q: q, s: q.events.subscribe(id)}, nil
}
