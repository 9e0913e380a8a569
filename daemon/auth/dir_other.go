//go:build !linux

package auth

import (
	"io/fs"

	"github.com/idmproject/idm/store"
)

// fileOwner is not implemented here; a check that needs it refuses.
func fileOwner(fs.FileInfo) (uid, gid int, ok bool) { return 0, 0, false }

// dirIdentity is not implemented here: the identity is unknown.
func dirIdentity(fs.FileInfo) store.FileID { return store.FileID{} }

// readACL is not implemented here: the mode bits decide.
func readACL(string) ([]aclEntry, error) { return nil, nil }
