package engine

import (
	"bytes"
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

	"github.com/idmproject/idm/identity"
	"github.com/idmproject/idm/internal/safetext"
	"github.com/idmproject/idm/store"
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

// openPart opens the job's partial file, or creates a new one. It
// reports whether the file is new (nothing in it counts) and whether it
// changed since the job last left it (it must be rechecked). A name that
// no longer holds the file the job made (a symlink, another file, a
// directory) is left alone, and the job starts a partial file of its own
// again under a new name.
func (t *transfer) openPart() (f *os.File, fresh, changed bool, err error) {
	if t.job.DirID == (store.FileID{}) && t.part != "" {
		// A job from before directories were identified: its directory
		// is the one it has now.
		if err := t.journal.PartFile(t.part, t.dirID()); err != nil {
			return nil, false, false, fmt.Errorf("record the job's directory: %w", err)
		}
	}
	if t.part == "" && t.job.File != nil {
		// A job of an idmd that named partial files after the file alone:
		// take its file over only if it can be nobody else's, and trust
		// nothing in it.
		if f, err := t.dir.openOwn(t.name + partSuffix); err == nil {
			return t.adoptPart(f, t.name+partSuffix)
		}
	}
	if t.part != "" {
		f, err := t.dir.open(t.part)
		switch {
		case err == nil:
			stamp, err := stampFile(f)
			if err != nil {
				f.Close()
				return nil, false, false, err
			}
			if t.partStamp.ID == (store.FileID{}) || stamp.ID == t.partStamp.ID {
				changed := stamp != t.partStamp
				t.setPart(t.part, stamp)
				return f, false, changed, nil
			}
			f.Close()
			t.log.Warn("partial file is not the one idmd left; leaving it alone and starting over", "path", f.Name())
		case errors.Is(err, fs.ErrNotExist):
			if name, ok := t.dir.findPublished(t.name, t.partStamp.ID); ok {
				// Moved into place before a crash, on a file system
				// without hard links: go on from there.
				if f, err := t.dir.open(name); err == nil {
					return t.adoptPart(f, name)
				}
			}
			if t.partStamp.ID != (store.FileID{}) {
				t.log.Warn("partial file was missing; starting over", "path", filepath.Join(t.job.Dir, t.part))
			}
		case errors.Is(err, errNotRegular):
			t.log.Warn("partial file was replaced by something else; leaving it alone and starting over", "path", filepath.Join(t.job.Dir, t.part))
		default:
			return nil, false, false, err
		}
	}
	for range 5 {
		name := partName(t.name, t.job.ID)
		// The name goes to the journal before the file exists, so a crash
		// can never leave a partial file the next run cannot find.
		if err := t.journal.PartFile(name, t.dirID()); err != nil {
			return nil, false, false, fmt.Errorf("record partial file name: %w", err)
		}
		t.setPart(name, store.FileStamp{})
		f, err := t.dir.create(name)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		if err != nil {
			return nil, false, false, err
		}
		stamp, err := stampFile(f)
		if err != nil {
			f.Close()
			return nil, false, false, err
		}
		t.setPart(name, stamp)
		return f, true, false, nil
	}
	return nil, false, false, fmt.Errorf("no free name for a partial file of %s in %s", t.name, t.job.Dir)
}

// adoptPart makes f, found under name, the job's partial file, to be
// rechecked whole.
func (t *transfer) adoptPart(f *os.File, name string) (*os.File, bool, bool, error) {
	stamp, err := stampFile(f)
	if err == nil {
		err = t.journal.PartFile(name, t.dirID())
	}
	if err != nil {
		f.Close()
		return nil, false, false, err
	}
	t.setPart(name, stamp)
	return f, false, true, nil
}

// setPart records the job's partial file's name and stamp, under mu: a
// checkpoint may read them while a new job's file is being prepared. It
// writes the stamp only once the partial file is open (fh), so openPart,
// which runs before, may read them without mu.
func (t *transfer) setPart(name string, stamp store.FileStamp) {
	t.mu.Lock()
	t.part, t.partStamp = name, stamp
	t.mu.Unlock()
}

// dirID returns the identity of the job's directory.
func (t *transfer) dirID() store.FileID {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.job.DirID
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

// recheck hashes every piece of the partial file and returns the bitmap
// of those that match: after an unclean shutdown, what the bitmap said
// may not have reached the disk, and what reached the disk may not be in
// the bitmap; after a change behind idmd's back, neither holds. With own
// piece hashes, only the pieces done had theirs taken, and only those
// can be found again.
func recheck(ctx context.Context, fh *os.File, f *identity.File, own bool, done *store.Bitmap) (*store.Bitmap, error) {
	bm := store.NewBitmap(f.Count())
	if own && f.Pieces == nil {
		return bm, nil
	}
	buf := make([]byte, f.PieceLen)
	for i := range f.Count() {
		if err := ctx.Err(); err != nil {
			return nil, context.Cause(ctx)
		}
		if own && !done.Has(i) {
			continue
		}
		off, n := f.Piece(i)
		if _, err := fh.ReadAt(buf[:n], off); err != nil && err != io.EOF {
			return nil, fmt.Errorf("recheck piece %d: %w", i, err)
		}
		if bytes.Equal(f.Algo.Sum(buf[:n]), f.PieceHash(i)) {
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

// finish publishes the file once every piece is verified: it checks a
// whole-file digest if the job must (see wholeFileCheck), syncs the file,
// and gives it a name that replaces nothing. Each step can be cut short
// by a crash and done again: a file already published under its own name
// is found again, never published twice.
func (t *transfer) finish(ctx context.Context, front *frontier) error {
	t.mu.Lock()
	fh, dir, name, part, check := t.fh, t.dir, t.name, t.part, t.checkAll
	t.mu.Unlock()
	start := time.Now()
	if check != nil {
		t.setPhase(Verifying)
		if err := front.advance(ctx, t); err != nil {
			return err
		}
		if ctx.Err() != nil {
			return context.Cause(ctx)
		}
		if sum := front.sum(); !bytes.Equal(sum, check.Sum) {
			return t.recheckMismatch(ctx, sum, check)
		}
	}
	t.setPhase(Publishing)
	if err := fh.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", fh.Name(), err)
	}
	if crashAt("synced") {
		return errCrash
	}
	stamp, err := stampFile(fh)
	if err != nil {
		return err
	}
	published, err := dir.claim(name, part, fh, stamp.ID)
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
	path := filepath.Join(t.job.Dir, published)
	t.mu.Lock()
	t.path = path
	t.mu.Unlock()
	// The journal learns of the file before its partial name goes: a
	// crash between the two leaves a completed job and a second name for
	// its file, which the next start removes. When it cannot be told, the
	// file is still in place and the next run finds it.
	if err := t.journal.Published(path, t.snapshot()); err != nil {
		t.log.Error("record the finished file", "err", err)
	}
	if crashAt("recorded") {
		return errCrash
	}
	t.closeFile()
	if published != part {
		if err := dir.remove(part, stamp.ID); err != nil {
			t.log.Warn("remove partial file name", "err", err)
		}
		dir.sync()
	}
	if crashAt("part removed") {
		return errCrash
	}
	t.setPhase(Done)
	t.log.Info("download complete", "path", path, "finish_took", time.Since(start).Round(time.Millisecond))
	return nil
}

// recheckMismatch handles a finished file whose whole-file digest is not
// the one expected although each piece matched when it arrived: the file
// changed on disk since. It rechecks every piece and returns errRefetch
// with the damaged ones to fetch again; if none is damaged, the file the
// sources agree on is not the one the digest names, and no download can
// satisfy the job.
func (t *transfer) recheckMismatch(ctx context.Context, sum []byte, want *identity.Digest) error {
	t.mu.Lock()
	fh, f, own, sched := t.fh, t.file, t.own, t.sched
	t.mu.Unlock()
	done, _ := sched.snapshot()
	bm, err := recheck(ctx, fh, f, own, done)
	if err != nil {
		return err
	}
	bad := f.Count() - bm.Count()
	if bad == 0 {
		return fmt.Errorf("every piece matches its hash, yet the whole file's %s is %x, not the expected %x: the sources' file is not the one expected", want.Algo, sum, want.Sum)
	}
	t.log.Warn("whole-file digest does not match; fetching the damaged pieces again", "pieces", bad, "digest", fmt.Sprintf("%x", sum))
	t.mu.Lock()
	t.useBitmapLocked(bm)
	t.mu.Unlock()
	return errRefetch
}

// Path returns where the finished file is, once Run has published it.
func (tr *Transfer) Path() string {
	t := tr.t.Load()
	if t == nil {
		return ""
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.path
}
