package daemon

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"unicode"

	"github.com/idmproject/idm/store"
	"github.com/idmproject/idm/transport"
)

// partSuffix marks a file still being downloaded.
const partSuffix = ".idmpart"

// SanitizeName turns a file name that came from a server into one that is
// safe to create in the output directory: no path separators, no "..", no
// control characters, not hidden behind a leading dot, never empty, and
// short enough for common file systems.
func SanitizeName(name string) string {
	var b strings.Builder
	for _, r := range name {
		switch {
		case r == '/' || r == '\\' || r == ':' || r == 0:
			b.WriteRune('_')
		case unicode.IsControl(r) || r == unicode.ReplacementChar:
			b.WriteRune('_')
		default:
			b.WriteRune(r)
		}
	}
	s := strings.TrimSpace(b.String())
	s = strings.TrimLeft(s, ".")
	s = strings.TrimRight(s, ". ")
	// Leave room for " (999)" and the part suffix within 255 bytes.
	const maxLen = 255 - len(partSuffix) - 8
	for len(s) > maxLen {
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

// openPart opens (creating it if needed) the partial file and makes it
// size bytes long, preallocated where the file system can.
func openPart(path string, size int64) (f *os.File, created bool, err error) {
	f, err = os.OpenFile(path, os.O_RDWR, 0)
	if errors.Is(err, fs.ErrNotExist) {
		f, err = os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
		created = true
	}
	if err != nil {
		return nil, false, err
	}
	fi, err := f.Stat()
	if err == nil && fi.Size() != size {
		if err = preallocate(f, size); err == nil {
			err = f.Truncate(size)
		}
	}
	if err != nil {
		f.Close()
		return nil, false, fmt.Errorf("prepare %s: %w", path, err)
	}
	return f, created, nil
}

// recheck hashes every segment of the partial file and returns the
// bitmap of those that match: after an unclean shutdown, what the bitmap
// said may not have reached the disk, and what reached the disk may not
// be in the bitmap.
func recheck(f *os.File, m *transport.Manifest) (*store.Bitmap, error) {
	bm := store.NewBitmap(len(m.Segments))
	buf := make([]byte, m.SegmentSize)
	for i := range m.Segments {
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

// claimName returns the first name in dir, name, "stem (1).ext",
// "stem (2).ext" and so on, that link can claim without replacing a file.
// link must fail with fs.ErrExist when the target exists.
func claimName(dir, name string, link func(target string) error) (string, error) {
	ext := filepath.Ext(name)
	stem := strings.TrimSuffix(name, ext)
	if stem == "" {
		stem, ext = name, ""
	}
	for i := 0; i < 1000; i++ {
		cand := name
		if i > 0 {
			cand = fmt.Sprintf("%s (%d)%s", stem, i, ext)
		}
		target := filepath.Join(dir, cand)
		err := link(target)
		if err == nil {
			return target, nil
		}
		if !errors.Is(err, fs.ErrExist) {
			return "", err
		}
	}
	return "", fmt.Errorf("no free name for %s in %s", name, dir)
}

// publish moves the finished partial file to a free name next to it,
// never replacing an existing file, and syncs the directory so the new
// name survives a power loss. A hard link claims the name atomically;
// where links are not supported it falls back to checking and renaming.
func publish(part, dir, name string) (string, error) {
	target, err := claimName(dir, name, func(target string) error {
		err := os.Link(part, target)
		if err == nil || errors.Is(err, fs.ErrExist) {
			return err
		}
		if _, serr := os.Lstat(target); serr == nil {
			return fs.ErrExist
		}
		return os.Rename(part, target)
	})
	if err != nil {
		return "", fmt.Errorf("publish %s: %w", part, err)
	}
	if err := os.Remove(part); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return "", err
	}
	return target, syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, errors.ErrUnsupported) {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}
