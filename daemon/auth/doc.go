// Package auth says who is calling idmd and what the caller may do.
//
// # The caller
//
// A [Peer] is the process at the other end of a control connection, as
// the kernel reports it when it connects (package daemon/socket reads
// it). It travels with each request in the request's context ([WithPeer],
// [PeerFrom]); a context without one is a call from within the daemon,
// or from a caller whose credentials could not be read.
//
// # What it may do
//
// [Access] says who may use the daemon at all: root, the daemon's own
// user and the members of its group. On Linux, where idmd reads every
// caller's credentials, a caller whose credentials could not be read is
// refused: access fails closed. Elsewhere idmd reads none, and the
// socket's mode and group are the only guard. A job belongs to the caller that
// created it: only its owner, root and the daemon's user may change it
// ([Peer.MayChange]), and only root and the daemon's user may change what
// applies to every job ([Peer.Privileged]).
//
// # Where it may download
//
// idmd writes as its own user, often root, so it checks for a caller
// what the kernel would check if the caller created the file itself:
// [ResolveDir] walks the output directory's path as the kernel resolves
// it, and applies the mode bits and POSIX ACLs of every directory on the
// way. A refusal wraps [ErrDenied]; a directory that no one could use
// wraps [ErrBadDir].
package auth
