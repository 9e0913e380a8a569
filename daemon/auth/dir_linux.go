package auth

import (
	"encoding/binary"
	"errors"
	"io/fs"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/idmproject/idm/store"
)

// fileOwner returns the user and group that own a file.
func fileOwner(fi fs.FileInfo) (uid, gid int, ok bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, 0, false
	}
	return int(st.Uid), int(st.Gid), true
}

// dirIdentity returns the device and inode of a directory.
func dirIdentity(fi fs.FileInfo) store.FileID {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return store.FileID{}
	}
	return store.FileID{Dev: uint64(st.Dev), Ino: st.Ino}
}

// The POSIX ACL as Linux stores it in the extended attribute
// system.posix_acl_access: a little-endian 32-bit version, then entries
// of a 16-bit tag, 16-bit permissions and 32-bit ID.
const (
	aclXattr   = "system.posix_acl_access"
	aclVersion = 2
)

// readACL returns the access ACL of the file at path, or nil when it has
// none beyond its mode bits (or the file system has no ACLs).
func readACL(path string) ([]aclEntry, error) {
	buf := make([]byte, 256)
	for {
		n, err := unix.Getxattr(path, aclXattr, buf)
		if errors.Is(err, unix.ERANGE) {
			buf = make([]byte, 2*len(buf))
			continue
		}
		if errors.Is(err, unix.ENODATA) || errors.Is(err, unix.ENOTSUP) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		return parseACL(buf[:n])
	}
}

func parseACL(b []byte) ([]aclEntry, error) {
	if len(b) < 4 || (len(b)-4)%8 != 0 || binary.LittleEndian.Uint32(b) != aclVersion {
		return nil, errors.New("malformed POSIX ACL")
	}
	var acl []aclEntry
	for b = b[4:]; len(b) > 0; b = b[8:] {
		acl = append(acl, aclEntry{
			tag:  binary.LittleEndian.Uint16(b),
			perm: binary.LittleEndian.Uint16(b[2:]) & 7,
			id:   int(binary.LittleEndian.Uint32(b[4:])),
		})
	}
	return acl, nil
}
