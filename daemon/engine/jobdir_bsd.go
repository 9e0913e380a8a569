//go:build unix && !linux

package engine

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// linkOpenFile has no /proc to go through here.
func linkOpenFile(*os.File, int, string) error { return errors.ErrUnsupported }

// renameNoReplace moves old to name in dirfd unless name exists. Without
// an atomic way, a name taken between the check and the move is lost.
func renameNoReplace(dirfd int, old, name string) error {
	var st unix.Stat_t
	if err := unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err == nil {
		return unix.EEXIST
	}
	return unix.Renameat(dirfd, old, dirfd, name)
}
