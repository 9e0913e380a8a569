package daemon

import (
	"encoding/binary"
	"errors"
	"io/fs"
	"net"
	"os/user"
	"strconv"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/idmproject/idm/store"
)

// peerCred reads the credentials of the process at the other end of a Unix
// socket connection: SO_PEERCRED for its user, group and process, and
// SO_PEERGROUPS for its supplementary groups. Both are what the process had
// when it connected.
func peerCred(c net.Conn) (Peer, bool) {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return Peer{}, false
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return Peer{}, false
	}
	var (
		cred       *unix.Ucred
		groups     []int
		cerr, gerr error
	)
	if err := raw.Control(func(fd uintptr) {
		cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
		if cerr == nil {
			groups, gerr = peerGroups(int(fd))
		}
	}); err != nil || cerr != nil {
		return Peer{}, false
	}
	p := Peer{UID: int(cred.Uid), GID: int(cred.Gid), PID: int(cred.Pid)}
	if gerr != nil {
		// SO_PEERGROUPS came with Linux 4.13. Before, the user database
		// is the best there is: it misses a group the process took up
		// since (newgrp, sg) and keeps one it has dropped, and a group
		// added to the user since it logged in counts already.
		groups = userGroups(p.UID)
	}
	p.Groups = groups
	return p, true
}

// peerGroups reads SO_PEERGROUPS, an array of gid_t that x/sys/unix has
// no helper for.
func peerGroups(fd int) ([]int, error) {
	buf := make([]uint32, 32)
	for {
		n := uint32(len(buf) * 4)
		_, _, errno := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(fd), unix.SOL_SOCKET, unix.SO_PEERGROUPS,
			uintptr(unsafe.Pointer(&buf[0])), uintptr(unsafe.Pointer(&n)), 0)
		// Too small a buffer: the kernel says how large it must be.
		if errno == unix.ERANGE && int(n/4) > len(buf) {
			buf = make([]uint32, n/4)
			continue
		}
		if errno != 0 {
			return nil, errno
		}
		groups := make([]int, n/4)
		for i := range groups {
			groups[i] = int(buf[i])
		}
		return groups, nil
	}
}

// userGroups returns the groups the user database gives uid, or none.
func userGroups(uid int) []int {
	u, err := user.LookupId(strconv.Itoa(uid))
	if err != nil {
		return nil
	}
	ids, err := u.GroupIds()
	if err != nil {
		return nil
	}
	var groups []int
	for _, s := range ids {
		if g, err := strconv.Atoi(s); err == nil {
			groups = append(groups, g)
		}
	}
	return groups
}

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
