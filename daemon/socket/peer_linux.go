package socket

import (
	"net"
	"os/user"
	"strconv"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/idmproject/idm/daemon/auth"
)

// peerCred reads the credentials of the process at the other end of a Unix
// socket connection: SO_PEERCRED for its user, group and process, and
// SO_PEERGROUPS for its supplementary groups. Both are what the process had
// when it connected.
func peerCred(c net.Conn) (auth.Peer, bool) {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return auth.Peer{}, false
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return auth.Peer{}, false
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
		return auth.Peer{}, false
	}
	p := auth.Peer{UID: int(cred.Uid), GID: int(cred.Gid), PID: int(cred.Pid)}
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
