package daemon

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/idmproject/idm/daemon/api"
	"github.com/idmproject/idm/internal/safetext"
	"github.com/idmproject/idm/store"
	"github.com/idmproject/idm/transport"
)

// partSuffix marks a file still being downloaded.
const partSuffix = ".idmpart"

// partReserve is what a partial file's name adds to the file's: a dot,
// the job's ID (up to 20 digits), a dash and 8 random hex digits, and
// the suffix; and what a published name may add: " (999)".
const partReserve = 1 + 20 + 1 + 8 + len(partSuffix) + len(" (999)")

// SanitizeName turns a file name that came from a server into one that is
// safe to create in the output directory: no path separators, no "..", no
// control, bidirectional or invisible characters (each becomes "_"), not
// hidden behind a leading dot, never empty, and short enough for common
// file systems.
func SanitizeName(name string) string {
	var b strings.Builder
	for _, r := range name {
		switch {
		case r == '/' || r == '\\' || r == ':' || r == 0:
			b.WriteRune('_')
		case safetext.Unsafe(r):
			b.WriteRune('_')
		default:
			b.WriteRune(r)
		}
	}
	s := strings.TrimSpace(b.String())
	s = strings.TrimLeft(s, ".")
	s = strings.TrimRight(s, ". ")
	for len(s) > 255-partReserve {
		_, size := lastRune(s)
		s = s[:len(s)-size]
	}
	if s == "" {
		s = "download"
	}
	return s
}

func lastRune(s string) (rune, int) {
	for i := len(s) - 1; i >= 0; i-- {
		if s[i]&0xC0 != 0x80 {
			return rune(s[i]), len(s) - i
		}
	}
	return 0, 1
}

// partName returns a new name for job id's partial file of the file
// called name. Each job has its own partial file, with a name no other
// job (of this daemon or another) will choose: two downloads of files
// with the same name into one directory never share one.
func partName(name string, id uint64) string {
	var b [4]byte
	rand.Read(b[:])
	return fmt.Sprintf("%s.%d-%x%s", name, id, b, partSuffix)
}

// openPartLocked opens the job's partial file, or creates a new one. It
// reports whether the file is new (nothing in it counts) and whether it
// changed since the job last left it (it must be rechecked). A name that
// no longer holds the file the job made (a symlink, another file, a
// directory) is left alone, and the job starts a partial file of its own
// again under a new name.
func (t *transfer) openPartLocked() (f *os.File, fresh, changed bool, err error) {
	rec := t.rec
	if t.legacy {
		// A job of an idmd that named partial files after the file alone:
		// take its file over only if it can be nobody else's, and trust
		// nothing in it.
		t.legacy = false
		if f, err := t.dir.openOwn(rec.Name + partSuffix); err == nil {
			rec.Part = rec.Name + partSuffix
			rec.PartStamp, err = stampFile(f)
			return f, false, true, err
		}
	}
	if rec.Part != "" {
		f, err := t.dir.open(rec.Part)
		switch {
		case err == nil:
			stamp, err := stampFile(f)
			if err != nil {
				f.Close()
				return nil, false, false, err
			}
			if rec.PartStamp.ID == (store.FileID{}) || stamp.ID == rec.PartStamp.ID {
				changed := stamp != rec.PartStamp
				rec.PartStamp = stamp
				return f, false, changed, nil
			}
			f.Close()
			t.log.Warn("partial file is not the one idmd left; leaving it alone and starting over", "path", f.Name())
		case errors.Is(err, fs.ErrNotExist):
			if name, ok := t.dir.findPublished(rec.Name, rec.PartStamp.ID); ok {
				// Moved into place before a crash, on a file system
				// without hard links: go on from there.
				if f, err := t.dir.open(name); err == nil {
					rec.Part = name
					rec.PartStamp, err = stampFile(f)
					return f, false, true, err
				}
			}
			if rec.PartStamp.ID != (store.FileID{}) {
				t.log.Warn("partial file was missing; starting over", "path", filepath.Join(rec.Dir, rec.Part))
			}
		case errors.Is(err, errNotRegular):
			t.log.Warn("partial file was replaced by something else; leaving it alone and starting over", "path", filepath.Join(rec.Dir, rec.Part))
		default:
			return nil, false, false, err
		}
	}
	for range 5 {
		rec.Part, rec.PartStamp = partName(rec.Name, rec.ID), store.FileStamp{}
		// The name goes to the store before the file exists, so a crash
		// can never leave a partial file the next run cannot find.
		r := *rec
		if err := t.db.Put(&r); err != nil {
			return nil, false, false, fmt.Errorf("record partial file name: %w", err)
		}
		f, err := t.dir.create(rec.Part)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		if err != nil {
			return nil, false, false, err
		}
		if rec.PartStamp, err = stampFile(f); err != nil {
			f.Close()
			return nil, false, false, err
		}
		return f, true, false, nil
	}
	return nil, false, false, fmt.Errorf("no free name for a partial file of %s in %s", rec.Name, rec.Dir)
}

// sizePart makes the partial file size bytes long, preallocated where the
// file system can, so that a full disk shows now rather than half way.
func sizePart(f *os.File, size int64) error {
	fi, err := f.Stat()
	if err == nil && fi.Size() != size {
		if err = preallocate(f, size); err == nil {
			err = f.Truncate(size)
		}
	}
	if err != nil {
		return fmt.Errorf("prepare %s: %w", f.Name(), err)
	}
	return nil
}

// recheck hashes every segment of the partial file and returns the
// bitmap of those that match: after an unclean shutdown, what the bitmap
// said may not have reached the disk, and what reached the disk may not
// be in the bitmap; after a change behind idmd's back, neither holds.
func recheck(ctx context.Context, f *os.File, m *transport.Manifest) (*store.Bitmap, error) {
	bm := store.NewBitmap(len(m.Segments))
	buf := make([]byte, m.SegmentSize)
	for i := range m.Segments {
		if err := ctx.Err(); err != nil {
			return nil, context.Cause(ctx)
		}
		off, n := m.Segment(i)
		if _, err := f.ReadAt(buf[:n], off); err != nil && err != io.EOF {
			return nil, fmt.Errorf("recheck segment %d: %w", i, err)
		}
		if transport.SumSegment(buf[:n]) == m.Segments[i] {
			bm.Set(i)
		}
	}
	return bm, nil
}

// errRefetch says that the finished file failed the whole-file check and
// that the segments found damaged will be fetched again.
var errRefetch = errors.New("damaged segments to fetch again")

// testHookPublish, when set by a test, is called at each step of
// publishing; when it returns true, the engine stops there as if the
// process had been killed.
var testHookPublish func(step string) bool

func crashAt(step string) bool { return testHookPublish != nil && testHookPublish(step) }

// finish checks the whole file's hash, syncs the file and publishes it
// under a name that replaces nothing. Each step can be cut short by a
// crash and done again: a file already published under its own name is
// found again, never published twice.
func (t *transfer) finish(ctx context.Context, front *frontier) error {
	t.mu.Lock()
	f, m, rec, dir := t.file, t.man, t.rec, t.dir
	t.mu.Unlock()
	start := time.Now()
	if err := front.advance(ctx, t); err != nil {
		return err
	}
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	if sum := front.sum(); sum != m.Content {
		return t.recheckMismatch(ctx, sum)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", f.Name(), err)
	}
	if crashAt("synced") {
		return errCrash
	}
	stamp, err := stampFile(f)
	if err != nil {
		return err
	}
	name, err := dir.claim(rec.Name, rec.Part, f, stamp.ID)
	if err != nil {
		return err
	}
	if crashAt("linked") {
		return errCrash
	}
	if err := dir.sync(); err != nil {
		return err
	}
	if crashAt("dir synced") {
		return errCrash
	}
	t.mu.Lock()
	rec.Path, rec.Finished, rec.LastError = filepath.Join(rec.Dir, name), time.Now(), ""
	rec.State = api.StateCompleted
	t.done = true
	t.mu.Unlock()
	// The store learns of the file before its partial name goes: a crash
	// between the two leaves a completed job and a second name for its
	// file, which the next start removes.
	if err := t.flush(); err != nil {
		t.log.Error("record completed job", "err", err)
	}
	if crashAt("recorded") {
		return errCrash
	}
	t.closeFile()
	if name != rec.Part {
		if err := dir.remove(rec.Part, stamp.ID); err != nil {
			t.log.Warn("remove partial file name", "err", err)
		}
		dir.sync()
	}
	if crashAt("part removed") {
		return errCrash
	}
	t.log.Info("download complete", "path", rec.Path, "verify_took", time.Since(start).Round(time.Millisecond))
	return nil
}

// recheckMismatch handles a finished file whose whole-file hash is wrong
// although each segment matched when it arrived: the file changed on disk
// since. It rechecks every segment and returns errRefetch with the
// damaged ones to fetch again; if none is damaged, the manifest itself is
// inconsistent and no download can satisfy it.
func (t *transfer) recheckMismatch(ctx context.Context, sum transport.Hash) error {
	t.mu.Lock()
	f, m := t.file, t.man
	t.mu.Unlock()
	bm, err := recheck(ctx, f, m)
	if err != nil {
		return err
	}
	bad := len(m.Segments) - bm.Count()
	if bad == 0 {
		return fmt.Errorf("every segment matches the manifest's hashes, yet the whole file's hash %s is not the manifest's %s: the sources describe the file inconsistently", sum, m.Content)
	}
	t.log.Warn("whole-file hash does not match; fetching the damaged segments again", "segments", bad, "blake3", sum.String())
	t.mu.Lock()
	t.useBitmapLocked(bm)
	t.mu.Unlock()
	return errRefetch
}
