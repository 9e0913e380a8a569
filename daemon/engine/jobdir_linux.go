package engine

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// linkOpenFile gives the open file f a name in the directory dirfd
// through /proc/self/fd, which links the file f holds whatever its name
// now points to.
func linkOpenFile(f *os.File, dirfd int, name string) error {
	err := unix.Linkat(unix.AT_FDCWD, procFD(f), dirfd, name, unix.AT_SYMLINK_FOLLOW)
	if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.EPERM) || errors.Is(err, unix.EOPNOTSUPP) {
		return errors.ErrUnsupported
	}
	return err
}

// renameNoReplace moves old to name in dirfd unless name exists.
func renameNoReplace(dirfd int, old, name string) error {
	return unix.Renameat2(dirfd, old, dirfd, name, unix.RENAME_NOREPLACE)
}
