//go:build !unix

package engine

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/idmproject/idm/store"
)

// Without openat and O_NOFOLLOW, names are resolved by path, and files
// have no identity to check: only Unix systems get the guards described
// in jobdir.go.

func openDir(path string) (*jobDir, store.FileID, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, store.FileID{}, err
	}
	return &jobDir{f: f, path: path}, store.FileID{}, nil
}

func (d *jobDir) create(name string) (*os.File, error) {
	return os.OpenFile(filepath.Join(d.path, name), os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
}

func (d *jobDir) open(name string) (*os.File, error) {
	p := filepath.Join(d.path, name)
	if fi, err := os.Lstat(p); err == nil && !fi.Mode().IsRegular() {
		return nil, &os.PathError{Op: "open", Path: p, Err: errNotRegular}
	}
	return os.OpenFile(p, os.O_RDWR, 0)
}

// openOwn cannot tell whose a file is here: it refuses every file.
func (d *jobDir) openOwn(name string) (*os.File, error) {
	return nil, &os.PathError{Op: "open", Path: filepath.Join(d.path, name), Err: errNotRegular}
}

func (d *jobDir) stat(name string) (store.FileStamp, error) {
	fi, err := os.Lstat(filepath.Join(d.path, name))
	if err != nil {
		return store.FileStamp{}, err
	}
	return store.FileStamp{Size: fi.Size(), ModTime: fi.ModTime().UnixNano()}, nil
}

func (d *jobDir) link(_ *os.File, part, name string, _ store.FileID) error {
	err := os.Link(filepath.Join(d.path, part), filepath.Join(d.path, name))
	if err == nil || errors.Is(err, fs.ErrExist) {
		return err
	}
	if _, serr := os.Lstat(filepath.Join(d.path, name)); serr == nil {
		return fs.ErrExist
	}
	return os.Rename(filepath.Join(d.path, part), filepath.Join(d.path, name))
}

func (d *jobDir) remove(name string, _ store.FileID) error {
	err := os.Remove(filepath.Join(d.path, name))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

func (d *jobDir) sync() error { return nil }

// room cannot tell here; preallocating will.
func (d *jobDir) room(int64) error { return nil }

func stampFile(f *os.File) (store.FileStamp, error) {
	fi, err := f.Stat()
	if err != nil {
		return store.FileStamp{}, err
	}
	return store.FileStamp{Size: fi.Size(), ModTime: fi.ModTime().UnixNano()}, nil
}

func stampPath(path string) (store.FileStamp, error) {
	fi, err := os.Lstat(path)
	if err != nil {
		return store.FileStamp{}, err
	}
	return store.FileStamp{Size: fi.Size(), ModTime: fi.ModTime().UnixNano()}, nil
}
