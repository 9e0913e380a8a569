// Package engine downloads one file from several sources at once and
// verifies every byte. It knows nothing of jobs, queues or the control
// API: it is given a Job (where the file goes, what is known of it, what
// is already done) and a Journal to which it reports what it must not
// lose, and it returns when the file is complete and in place, when it is
// stopped, or when it cannot go on.
//
// # Sources
//
// A Source opens Conns. Every Conn can describe the file it holds (at
// least its size) and fetch a byte range into a writer. Optional
// capabilities: a PieceLister also lists the file's piece hashes (an idm
// server); a Pipeliner takes several requests at once; a Streamer can
// send the whole file as one stream, which is how the engine takes the
// file of a source that ignores ranges when it is the job's only one
// (stream.go). A source's error is permanent (the source can never serve this job: another file, an
// unsupported protocol version, a range it does not have) when it has a
// Permanent method that says so, and transient otherwise (retried with
// back-off). One whose error has an OtherFile method that returns true
// holds another file, though it could not describe one (an HTTP mirror
// that answers with a Metalink): it is rejected with that reason. A
// Versioned source names the version of its file, and a Typed one its
// media type: both are recorded with the source's statistics.
//
// # The file
//
// A new job's file is decided by a vote: each source describes its file
// in an identity.Summary, whose root stands for every piece hash, and the
// description most sources give wins. One whole piece list is then
// fetched, from an agreeing source, and checked against the root. A
// source whose description differs is rejected with its reason. When no
// source publishes piece hashes, the engine cuts the file into pieces
// itself and hashes each as it is written, so that a crash is recovered
// the same way; such a job's pieces prove only what the engine wrote.
//
// # Pieces
//
// One worker per source connection asks a shared scheduler for its next
// piece; there is no static split, so a faster source simply asks more
// often. When nothing is left unassigned, an idle worker duplicates the
// piece expected to finish last, and a source far slower than the others
// gives its pieces back; the first verified copy wins. A piece that fails
// its hash is fetched again elsewhere; a source that sends three is
// quarantined. A stream takes the pieces in order instead, over one
// connection, and none of them is duplicated; after a break it starts
// again from the first byte, and the pieces verified before are hashed
// again as they go by, never written.
//
// # On disk
//
// Each job has a partial file of its own, created by the engine with
// O_EXCL and O_NOFOLLOW relative to the job's directory, reopened only if
// it is still the same file, and rechecked when it changed behind the
// engine's back. The finished file is synced and published under a name
// that replaces nothing; a crash at any step leaves one copy. Verifying
// every piece against hashes whose root is the file's identity proves the
// whole file: there is no second pass over it, but when a whole-file
// digest must be checked (the job was pinned to one).
package engine
