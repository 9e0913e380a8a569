// Package socket is idmd's control socket: the Unix socket the control
// API is served on, and who is at the other end of each connection.
//
// [Listen] makes the socket with exactly the mode and group asked for,
// never wider, not even for a moment. If something answers at the path,
// another idmd is alive and Listen refuses ([ErrSocketInUse]); a socket
// that refuses connections, as a crashed idmd leaves it, is replaced;
// anything else at the path is someone's and is refused, never removed
// ([ErrNotSocket]).
//
// [ConnContext] reads the credentials of the process at the other end of
// each accepted connection and attaches them, as an auth.Peer, to the
// context of the requests that come over it. On Linux they are
// SO_PEERCRED's user, group and process and SO_PEERGROUPS's
// supplementary groups (before Linux 4.13, the user's groups in the user
// database). Elsewhere idmd does not read them.
package socket
