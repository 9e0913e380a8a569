// Package aria2rpc answers aria2's JSON-RPC interface, so that the web
// front-ends, browser extensions and scripts written for aria2 drive
// idmd unchanged: JSON-RPC 2.0 at /jsonrpc over HTTP POST, HTTP GET
// (base64 params, and JSONP) and WebSocket, with aria2's methods, their
// shapes (every number a string, a download named by a 16-digit hex
// gid), its error codes and messages, and its notifications over
// WebSocket. docs/aria2-rpc.md lists every method and option and what
// idmd does with it.
//
// # The caller
//
// An RPC caller has no credentials: it proves only that it knows the
// secret, which every call carries as its first parameter
// ("token:SECRET"), compared in constant time. Whoever the daemon's
// socket admits may read the secret (idmctl rpc-secret), so a caller
// acts with the least rights (auth.RPCPeer): as the daemon's user
// without its privileges, it sees and changes only the jobs of the
// daemon's user (those it created among them) and the jobs with no
// owner, downloads only into the daemon's download directories, and
// changes what applies to every job only where Server.GlobalChanges
// says it may. A wrong secret is answered aria2's "Unauthorized", a
// second later, as aria2 does; an address that keeps failing is refused
// without its secret being compared, until its failures slow down.
//
// # Bounds
//
// Everything a caller sends is bounded: a request (a POST body, a GET's
// query, a WebSocket message) is at most 2 MiB, as aria2's default
// --rpc-max-request-size; a batch or a system.multicall holds at most
// 1000 calls; JSON nests at most 100 deep; connections, WebSocket
// connections and the messages waiting for one WebSocket client are
// counted, and a client that does not read its notifications is
// dropped rather than let them pile up.
//
// # Notifications
//
// One subscription to the job queue's event stream, from Serve to
// Shutdown, follows every job the RPC caller may see; a change of a
// job's aria2 status becomes aria2.onDownloadStart, onDownloadPause,
// onDownloadStop, onDownloadComplete or onDownloadError, sent to every
// WebSocket client.
package aria2rpc
