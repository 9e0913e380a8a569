//go:build !linux

package daemon

import (
	"io/fs"
	"net"

	"github.com/idmproject/idm/store"
)

// peerCred is not implemented here: callers are unknown, so the socket's
// mode and group are the only guard and no directory is checked for them.
func peerCred(net.Conn) (Peer, bool) { return Peer{}, false }

// fileOwner is not implemented here; a check that needs it refuses.
func fileOwner(fs.FileInfo) (uid, gid int, ok bool) { return 0, 0, false }

// dirIdentity is not implemented here: the identity is unknown.
func dirIdentity(fs.FileInfo) store.FileID { return store.FileID{} }

// readACL is not implemented here: the mode bits decide.
func readACL(string) ([]aclEntry, error) { return nil, nil }
