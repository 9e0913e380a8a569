// Package daemon is idmd: the download engine, the queue of jobs, and the
// control API that idmctl talks to.
//
// # The engine
//
// A [Transfer] downloads one job of the store. One worker per source
// connection asks a shared scheduler for its next segment, keeping two
// requests outstanding so a fast link never idles; there is no static
// split, so a faster source simply asks more often. When nothing is left
// unassigned, an idle worker duplicates the segment expected to finish
// last, and a source far slower than the others gives its segments back;
// in both cases the first verified copy wins. Every segment is checked
// against its BLAKE3 hash before it counts, and nothing writes to a
// segment once it is verified. A source that fails is retried with
// exponential back-off; one that sends three corrupt segments is
// quarantined; one that holds another file is rejected. A new job's file
// is the one most of its sources hold.
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
// # Jobs and the API
//
// A [Daemon] owns the store and runs up to MaxActive transfers, under a
// global and a per-job rate limit. A [Server] answers the control API
// (documented in docs/api.md) on a Unix socket made by [Listen], checking
// each caller's credentials. idmd writes as its own user, often root, so a
// caller that is neither root nor that user gets a job only in a
// directory it could create files in itself; the check is made again
// each time the job starts ([ErrDenied]). Each job records its owner:
// only the owner, root and the daemon's user may change it, and only root
// and the daemon's user may set the global limit; reading is open to
// every caller the socket admits.
package daemon
