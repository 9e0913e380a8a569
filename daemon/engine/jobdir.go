package engine

import (
	"errors"
	"fmt"
	"io/fs"
	"iter"
	"os"
	"path/filepath"
	"strings"

	"github.com/idmproject/idm/store"
)

// A jobDir is a job's output directory, held open while the job runs so
// that every file the job creates, reopens, publishes or removes is named
// relative to the very directory that was identified, and no symlink is
// followed on the way: a directory shared with other users (a group's
// download directory, say) must not let one of them steer idmd's writes.
//
// Its methods (create, open, stat, link, remove, sync) are in
// jobdir_unix.go and, for systems without openat, jobdir_other.go.
type jobDir struct {
	f    *os.File
	path string
}

// errNotRegular reports a name in the job's directory that is a symlink,
// a directory or a device rather than the regular file idmd left there.
var errNotRegular = errors.New("not a regular file")

// errReplaced reports a job's directory that is no longer the one the
// job was created for.
var errReplaced = errors.New("was replaced since the job was created")

// openJobDir opens the job's directory and checks that it is the one
// identified by want, when want is known. It returns the directory's own
// identity.
func openJobDir(path string, want store.FileID) (*jobDir, store.FileID, error) {
	d, id, err := openDir(path)
	if err != nil {
		return nil, id, fmt.Errorf("output directory %s: %w", path, err)
	}
	if want != (store.FileID{}) && id != (store.FileID{}) && id != want {
		d.close()
		return nil, id, fmt.Errorf("output directory %s %w", path, errReplaced)
	}
	return d, id, nil
}

func (d *jobDir) close() error { return d.f.Close() }

// claim gives the finished file f a free name in the directory: name,
// then "stem (1).ext", "stem (2).ext" and so on, never replacing a file.
// A name that is already f's (a crash came after an earlier claim) is
// reused, so claiming twice leaves one copy. part is f's own name, for
// systems that cannot link an open file.
func (d *jobDir) claim(name, part string, f *os.File, id store.FileID) (string, error) {
	for cand := range candidates(name) {
		have, err := d.stat(cand)
		switch {
		case err == nil && id != (store.FileID{}) && have.ID == id:
			return cand, nil // published before a crash
		case err == nil:
			continue
		case !errors.Is(err, fs.ErrNotExist):
			return "", fmt.Errorf("publish as %s: %w", cand, err)
		}
		err = d.link(f, part, cand, id)
		if err == nil {
			return cand, nil
		}
		if !errors.Is(err, fs.ErrExist) {
			return "", fmt.Errorf("publish as %s: %w", cand, err)
		}
	}
	return "", fmt.Errorf("no free name for %s in %s", name, d.path)
}

// findPublished returns the name under which the file identified by id
// was published, if a crash came after it was published under a name of
// its own and before the store was told.
func (d *jobDir) findPublished(name string, id store.FileID) (string, bool) {
	if id == (store.FileID{}) {
		return "", false
	}
	for cand := range candidates(name) {
		have, err := d.stat(cand)
		if err != nil {
			return "", false // claim takes the first free name: none further
		}
		if have.ID == id {
			return cand, true
		}
	}
	return "", false
}

// candidates yields the names a file called name may be published
// under, in the order they are tried: name, "stem (1).ext", up to
// "stem (999).ext".
func candidates(name string) iter.Seq[string] {
	ext := filepath.Ext(name)
	stem := strings.TrimSuffix(name, ext)
	if stem == "" {
		stem, ext = name, ""
	}
	return func(yield func(string) bool) {
		if !yield(name) {
			return
		}
		for i := 1; i < 1000; i++ {
			if !yield(fmt.Sprintf("%s (%d)%s", stem, i, ext)) {
				return
			}
		}
	}
}

// RemovePart deletes a job's partial file part in dir (identified by
// dirID when known), if it still is the file identified by id: a name
// that now holds anything else is left alone. The job queue calls it when
// a job is cancelled, and for a finished job whose partial name a crash
// left behind as a second name of its file.
func RemovePart(dir string, dirID store.FileID, part string, id store.FileID) error {
	if part == "" {
		return nil
	}
	d, _, err := openJobDir(dir, dirID)
	if err != nil {
		return err
	}
	defer d.close()
	if err := d.remove(part, id); err != nil {
		return err
	}
	return d.sync()
}

// OpenPublished opens the file a job published as name in dir (identified
// by dirID when known), never through a symlink, and only if it still is
// the file identified by id (when known): a name that now holds anything
// else is refused. The job queue reads a finished file this way when it
// is a Metalink to follow.
func OpenPublished(dir string, dirID store.FileID, name string, id store.FileID) (*os.File, error) {
	d, _, err := openJobDir(dir, dirID)
	if err != nil {
		return nil, err
	}
	defer d.close()
	f, err := d.open(name)
	if err != nil {
		return nil, err
	}
	if st, err := stampFile(f); err != nil || (id != (store.FileID{}) && st.ID != (store.FileID{}) && st.ID != id) {
		f.Close()
		return nil, fmt.Errorf("%s is no longer the file the job published", filepath.Join(dir, name))
	}
	return f, nil
}
