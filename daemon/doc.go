// Package daemon is idmd's queue of jobs: it owns the store, starts each
// job's transfer and records how it ended, and tells the API's event
// streams what changed. The rest of idmd is in its subpackages:
//
//   - daemon/engine downloads one file from several sources and verifies
//     every byte; it knows nothing of jobs.
//   - daemon/localapi answers the control API (docs/api.md): the route
//     table, the handlers, the event streams, the errors.
//   - daemon/socket makes the control socket and reads who is at the
//     other end of each connection.
//   - daemon/auth says who the caller is and what it may do: use the
//     daemon at all, change a job, download into a directory.
//   - daemon/api holds the types idmd and its clients share, and
//     daemon/service installs and runs idmd as a service.
//
// # What survives a crash
//
// The completion bitmap is written to the store about once a second, not
// once per segment, and the partial file is not synced on the hot path.
// After an unclean shutdown the next run hashes the whole partial file
// instead: every segment whose bytes match is complete, whatever the
// bitmap said, so cached data lost in a power cut can never make a
// corrupt file, and work done after the last flush is not fetched again.
// The finished file is checked against the whole-file hash (computed
// along the verified prefix during the download), synced, published under
// a name that replaces nothing, and its directory synced.
//
// # Jobs and their owners
//
// A [Daemon] owns the store and runs up to MaxActive transfers, under a
// global and a per-job rate limit. The caller of each operation is the
// auth.Peer its context carries, when it carries one (the control API's
// requests do). idmd writes as its own user, often root, so a caller
// that is neither root nor that user gets a job only in a directory it
// could create files in itself; the check is made again each time the
// job starts (auth.ErrDenied). Each job records its owner: only the
// owner, root and the daemon's user may change it, and only root and the
// daemon's user may set the global limit; reading is open to every
// caller the socket admits.
package daemon
