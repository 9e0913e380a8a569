package aria2rpc

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
)

// MakeDownloadDir makes path, the default download directory of RPC
// callers, when nothing is there: that one directory and not its
// parents, as aria2c makes its --dir. It is made private (0700) and given
// its group and mode, gid (-1 for none) and perm, special bits among
// them, only once it is known to be the directory just made, owned by
// the daemon's user; until then no one else may enter it. It reports
// whether it made it; a directory already there is left as it is.
//
// Anything else at path is refused, neither replaced nor followed: a
// file, and a symbolic link whatever it leads to, since a directory made
// or changed through a link would be the link's choice (one to a
// directory is the administrator's or the user's own way of putting the
// downloads elsewhere, and RPC callers download where it leads).
func MakeDownloadDir(path string, perm fs.FileMode, gid int) (made bool, err error) {
	if li, err := os.Lstat(path); err == nil {
		return false, existing(path, li)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return false, fmt.Errorf("default download directory: %w", err)
	}
	if err := os.Mkdir(path, 0o700); err != nil {
		if li, lerr := os.Lstat(path); errors.Is(err, fs.ErrExist) && lerr == nil {
			// Something came first: a link among them.
			return false, existing(path, li)
		}
		return false, fmt.Errorf("make the default download directory: %w", err)
	}
	li, err := os.Lstat(path)
	if err != nil {
		return true, fmt.Errorf("default download directory: %w", err)
	}
	f, err := os.Open(path)
	if err != nil {
		return true, fmt.Errorf("default download directory: %w", err)
	}
	defer f.Close()
	// What was opened must be a directory that was at path itself, not
	// one a link put there since leads to; and the daemon's own: another
	// user's, made in the moment after idmd's was taken away, is not
	// given to the group.
	fi, err := f.Stat()
	switch {
	case err != nil:
		return true, fmt.Errorf("default download directory: %w", err)
	case !li.IsDir() || !os.SameFile(li, fi):
		return true, fmt.Errorf("default download directory %s was replaced while it was made: refused", path)
	case !ownedByMe(fi):
		return true, fmt.Errorf("default download directory %s was replaced by another user's while it was made: refused", path)
	}
	if gid >= 0 {
		if err := f.Chown(-1, gid); err != nil {
			return true, fmt.Errorf("give the default download directory %s to group %d (it stays private): %w", path, gid, err)
		}
	}
	if err := f.Chmod(perm); err != nil {
		return true, fmt.Errorf("default download directory %s (it stays private): %w", path, err)
	}
	return true, nil
}

// existing says what is wrong with li, found at path, as the default
// download directory: nothing when it is a directory.
func existing(path string, li fs.FileInfo) error {
	switch {
	case li.IsDir():
		return nil
	case li.Mode()&fs.ModeSymlink == 0:
		return fmt.Errorf("default download directory %s is not a directory: an addUri without dir fails until it is one", path)
	}
	to, _ := os.Readlink(path)
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		return fmt.Errorf("default download directory %s is a symbolic link to %s: idmd neither makes a directory in its place nor changes the one it leads to, where RPC callers download", path, to)
	}
	return fmt.Errorf("default download directory %s is a symbolic link to %s, no directory: idmd makes none in its place nor through it, and an addUri without dir fails until it leads to one", path, to)
}
