// Package transport holds the wire protocols idm speaks to the servers that
// hold a file: its own idm protocol (a small binary protocol over TCP,
// specified in docs/protocol.md) and, on the same port, plain HTTP/1.1 with
// byte ranges.
//
// # Server
//
// A [Server] is one virtual server: its own listener, its own copy of the
// file and its own state. Several of them in one process never share
// anything but the process. [Server.Stop] drops the listener and every open
// connection at once, as a crash would; [Server.Start] brings it back on the
// same address.
//
// # Client
//
// [Dial] opens an idm protocol connection. Requests are pipelined: a caller
// may send several [Conn.Request] before reading the answers with
// [Conn.Receive], which come back in the order they were asked.
//
// # Sources
//
// The download engine sees any place a file can come from as a [Source]:
// something that opens a [Stream] that can describe the file and deliver
// byte ranges of it. [IDMSource] is the idm protocol's.
//
// # Limits
//
// Every length and count read from the network is checked against a hard
// limit before anything is allocated for it (see [MaxNameLen],
// [MaxSegments], [MaxRangeLen]). Malformed input ends that connection only.
package transport
