// Package jobs is idmd's job queue. A [Queue] owns the store: it reads
// every job once, at Open, into a table in memory that answers every
// read, and it runs up to MaxActive transfers of package daemon/engine,
// under a global and a per-job rate limit. Queued and paused jobs wait in
// a line, in the order they were created until [Queue.Move] changes it;
// the first queued job in line starts when a slot frees.
//
// # One owner per field
//
// The queue writes the fields of a record it owns (the state, the limit,
// the last error) with store.DB.Change; a running transfer reports its
// file's identity and its progress through its journal, which writes
// only those fields. Neither writes a whole record, so neither can
// overwrite the other's fields with a stale copy.
//
// # States
//
// A job's [State] changes only by an [Event] applied through the one
// transition table in state.go: created, a job is queued; the queue
// starts it (running); it completes, fails, or is paused or cancelled by
// a caller; a paused or failed job can be resumed. A running job is
// stored as queued, so starting one writes nothing and one that was
// running when idmd stopped or died goes on at the next Open. The API's
// words for the states are chosen at the edge, in view: a running job is
// "downloading" or "waiting", as its transfer says.
//
// # Locks
//
// Reads never wait on the disk. mu guards the table and is never held
// across a write; wmu orders the queue's own writes and is held across
// each. A transfer's callbacks take neither.
//
// # Owners
//
// The caller of each operation is the auth.Peer its context carries,
// when it carries one (the control API's requests do). idmd writes as
// its own user, often root, so a caller that is neither root nor that
// user gets a job only in a directory it could create files in itself;
// the check is made again each time the job starts (auth.ErrDenied).
// Each job records its owner: only the owner, root and the daemon's user
// may change it, and only root and the daemon's user may set the global
// limit; reading is open to every caller the socket admits.
//
// # Sources a server named
//
// A source the user gave (Create, SetSources) may make idmd connect
// anywhere. One a server named (a mirror a mirror announced, one a
// Metalink fetched from a URL lists) may reach only addresses no more
// internal than that server's own (httpsrc.Class): one beyond that is
// refused up front when it is a literal address or localhost, the reason
// logged, and a name is weighed when it is dialled. The record keeps
// each such source's reach (store.Record.SourceReach), so it stays a
// server's word across restarts.
//
// # Metalinks followed
//
// A job made with FollowMetalink, of one http(s) source, downloads
// whatever the source answers with, a Metalink 4 included (httpsrc's
// AcceptMetalink); nothing is asked of the source before, so Create
// answers at once. When it completes, a file that is a Metalink 4 (the
// source's recorded Content-Type says so, or its URL ends in .meta4 or
// .metalink) is read, and its files become jobs, as CreateMetalink makes
// them, in the very transaction that records the completion
// (store.DB.CreateFrom): the job names them (FollowedBy), each names it
// (Following), and no one ever sees the job completed without them. A
// file that is none, or cannot be made into jobs, leaves the job
// completed with the reason (FollowError). The logins kept for the
// Metalink's mirrors are dropped when the job completes or is cancelled.
//
// # After a crash
//
// When the store was not closed cleanly, every unfinished job's partial
// file is rechecked against its piece hashes when it next starts: work
// done after the last checkpoint is kept, and data a power cut lost is
// fetched again. A job whose transfer published its file but whose
// completion was not written is completed at Open, and followed then if
// it is a Metalink to follow: the completion and the follow are one
// write, so they happen once.
package jobs
