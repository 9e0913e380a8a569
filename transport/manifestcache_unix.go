//go:build unix

package transport

import (
	"fmt"
	"os"
	"syscall"
)

// fileID returns the device and inode of the file fi describes, which
// tell a file replaced by another of the same size and time.
func fileID(fi os.FileInfo) (dev, ino uint64) {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return uint64(st.Dev), st.Ino
	}
	return 0, 0
}

// checkPrivate reports why a cache directory whose status is fi is not
// private to this process's user: another user owns it, or its group or
// others may write to it.
func checkPrivate(fi os.FileInfo) error {
	if fi.Mode().Perm()&0o022 != 0 {
		return fmt.Errorf("is writable by its group or others (mode %v)", fi.Mode().Perm())
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != os.Geteuid() {
		return fmt.Errorf("is owned by uid %d, not by this user (uid %d)", st.Uid, os.Geteuid())
	}
	return nil
}
