//go:build unix

package engine

import (
	"errors"
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/idmproject/idm/store"
)

func openDir(path string) (*jobDir, store.FileID, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, store.FileID{}, err
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return nil, store.FileID{}, err
	}
	return &jobDir{f: os.NewFile(uintptr(fd), path), path: path}, fileID(&st), nil
}

func (d *jobDir) fd() int { return int(d.f.Fd()) }

// create makes a new file called name, failing if anything (a file, a
// symlink, a dangling one) has that name already.
func (d *jobDir) create(name string) (*os.File, error) {
	fd, err := unix.Openat(d.fd(), name, unix.O_RDWR|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o644)
	if err != nil {
		return nil, &os.PathError{Op: "create", Path: d.name(name), Err: err}
	}
	return os.NewFile(uintptr(fd), d.name(name)), nil
}

// open opens the regular file called name for reading and writing,
// never through a symlink, and never a FIFO or a device planted there.
func (d *jobDir) open(name string) (*os.File, error) {
	fd, err := unix.Openat(d.fd(), name, unix.O_RDWR|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if errors.Is(err, unix.ELOOP) {
		err = errNotRegular // a symlink
	}
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: d.name(name), Err: err}
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return nil, &os.PathError{Op: "open", Path: d.name(name), Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		unix.Close(fd)
		return nil, &os.PathError{Op: "open", Path: d.name(name), Err: errNotRegular}
	}
	if err := unix.SetNonblock(fd, false); err != nil {
		unix.Close(fd)
		return nil, err
	}
	return os.NewFile(uintptr(fd), d.name(name)), nil
}

// openOwn opens the regular file called name, as open does, only if it
// belongs to this process's user and has no other name: a file someone
// else planted, or a link to one, is refused.
func (d *jobDir) openOwn(name string) (*os.File, error) {
	f, err := d.open(name)
	if err != nil {
		return nil, err
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil || int(st.Uid) != os.Geteuid() || st.Nlink != 1 {
		f.Close()
		return nil, &os.PathError{Op: "open", Path: f.Name(), Err: errNotRegular}
	}
	return f, nil
}

// stat describes the file called name, not following a symlink.
func (d *jobDir) stat(name string) (store.FileStamp, error) {
	var st unix.Stat_t
	if err := unix.Fstatat(d.fd(), name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return store.FileStamp{}, &os.PathError{Op: "stat", Path: d.name(name), Err: err}
	}
	return fileStamp(&st), nil
}

// link gives the open file f (called part, identified by id) the new
// name, failing with fs.ErrExist if the name is taken. It links the
// open file itself where the system allows, so that no one who swaps
// part for something else in the meantime can choose what gets the name.
func (d *jobDir) link(f *os.File, part, name string, id store.FileID) error {
	err := linkOpenFile(f, d.fd(), name)
	if err == nil || errors.Is(err, unix.EEXIST) {
		return d.pathErr("link", name, err)
	}
	// No /proc to link through: link by name, then check what got it.
	err = unix.Linkat(d.fd(), part, d.fd(), name, 0)
	if err != nil && !errors.Is(err, unix.EEXIST) {
		// No hard links here (FAT, some network file systems): move the
		// file instead, never over another.
		err = renameNoReplace(d.fd(), part, name)
	}
	if err != nil {
		return d.pathErr("link", name, err)
	}
	if got, serr := d.stat(name); serr != nil || got.ID != id {
		unix.Unlinkat(d.fd(), name, 0)
		return fmt.Errorf("publish %s: %s was swapped for another file", d.name(name), part)
	}
	return nil
}

// remove deletes the name if it still is the file identified by id; a
// name that now holds something else is left alone.
func (d *jobDir) remove(name string, id store.FileID) error {
	have, err := d.stat(name)
	if err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil
		}
		return err
	}
	if id != (store.FileID{}) && have.ID != id {
		return nil
	}
	return d.pathErr("remove", name, unix.Unlinkat(d.fd(), name, 0))
}

// room checks that the directory's file system has room for a new file
// of size bytes, failing with ENOSPC, as writing it would, when not.
func (d *jobDir) room(size int64) error {
	var st unix.Statfs_t
	if err := unix.Fstatfs(d.fd(), &st); err != nil {
		return nil // no answer: preallocating will tell
	}
	if free := uint64(st.Bavail) * uint64(st.Bsize); uint64(size) > free {
		return fmt.Errorf("a file of %d bytes does not fit in %s, which has %d bytes free: %w", size, d.path, free, unix.ENOSPC)
	}
	return nil
}

// sync makes the directory's entries durable.
func (d *jobDir) sync() error {
	if err := d.f.Sync(); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOTSUP) {
		return fmt.Errorf("sync %s: %w", d.path, err)
	}
	return nil
}

func (d *jobDir) name(name string) string { return d.path + "/" + name }

func (d *jobDir) pathErr(op, name string, err error) error {
	if err == nil {
		return nil
	}
	return &os.PathError{Op: op, Path: d.name(name), Err: err}
}

// stampFile describes an open file.
func stampFile(f *os.File) (store.FileStamp, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return store.FileStamp{}, err
	}
	var st unix.Stat_t
	var serr error
	if err := rc.Control(func(fd uintptr) { serr = unix.Fstat(int(fd), &st) }); err != nil {
		return store.FileStamp{}, err
	}
	if serr != nil {
		return store.FileStamp{}, &os.PathError{Op: "stat", Path: f.Name(), Err: serr}
	}
	return fileStamp(&st), nil
}

// stampPath describes the file at path, not following a symlink.
func stampPath(path string) (store.FileStamp, error) {
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil {
		return store.FileStamp{}, &os.PathError{Op: "stat", Path: path, Err: err}
	}
	return fileStamp(&st), nil
}

func fileID(st *unix.Stat_t) store.FileID {
	return store.FileID{Dev: uint64(st.Dev), Ino: uint64(st.Ino)}
}

func fileStamp(st *unix.Stat_t) store.FileStamp {
	return store.FileStamp{ID: fileID(st), Size: st.Size, ModTime: st.Mtim.Nano(), ChangeTime: st.Ctim.Nano()}
}

// procFD is where Linux shows a process's open files as links.
func procFD(f *os.File) string { return "/proc/self/fd/" + strconv.Itoa(int(f.Fd())) }
