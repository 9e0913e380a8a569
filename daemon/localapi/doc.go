// Package localapi answers idmd's control API, documented in docs/api.md,
// on the control socket: the route table, one handler per route, the
// event streams, and the one shape of every error.
//
// Each request is first checked against the server's auth.Access, with
// the caller that package daemon/socket attached to the request's
// context; a handler then checks the method, and hands the work to the
// job queue, a *jobs.Queue, with the request's context, which carries
// the caller for the job queue's own checks. A handler returns an error
// instead of writing one: writeError turns the job queue's errors into
// the status and code the API documents.
//
// Event streams are newline-delimited JSON, flushed after each event. A
// client that leaves a written event unread for EventWriteTimeout, or
// falls more than 256 jobs behind, is dropped; Shutdown ends every
// stream at once.
package localapi
