// Package daemon holds no code: it is the map of idmd, the download
// daemon, whose parts are its subpackages. docs/design.md draws how a
// byte flows through them.
//
//   - daemon/engine downloads one file from several sources at once and
//     verifies every byte; it knows nothing of jobs or of the API.
//   - daemon/jobs is the job queue: it owns the store's records, starts
//     each job's transfer under the rate limits, applies every change of
//     a job's state through one transition table, and tells the event
//     streams what changed.
//   - daemon/localapi answers the control API (docs/api.md): the route
//     table, the handlers, the event streams, the errors.
//   - daemon/aria2rpc answers aria2's JSON-RPC (docs/aria2-rpc.md), for
//     the front-ends written for aria2, with the least rights of the
//     socket's callers; only cmd/idmd imports it.
//   - daemon/socket makes the control socket and reads who is at the
//     other end of each connection.
//   - daemon/auth says who the caller is and what it may do: use the
//     daemon at all, change a job, download into a directory.
//   - daemon/api holds the wire types idmd and idmctl share.
//   - daemon/service installs and runs idmd as an OS service.
package daemon
