package transport

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/zeebo/blake3"

	"github.com/idmproject/idm/identity"
)

// A ManifestCache keeps the manifests of served files on disk, one entry
// per file, so that a server restarted on a file that has not changed
// starts at once, without reading it.
//
// An entry is used only for the file it was built from, as it was then:
// the same absolute path, size, modification time (to the nanosecond),
// device and inode, and the same segment size. A file changed in place
// with its modification time set back by hand would still be taken for
// the old one; the server's own check of each connection (size and
// modification time) has the same blind spot.
//
// An entry is checked for damage (its length, its own checksum, its key)
// and one that fails is ignored and built again. The checksum does not
// stop someone who can write to the directory from planting a lie, which
// the server would then publish as the file's hashes: the directory must
// be private to the user, and [OpenManifestCache] refuses one that is
// not. On systems other than Unix that is not checked, and an entry is
// keyed without device and inode.
//
// A nil *ManifestCache is valid and caches nothing. Several processes
// may share a directory: entries are replaced whole, by renaming.
type ManifestCache struct {
	// Logger receives a warning for each entry found damaged and each
	// that could not be stored: neither stops the server. Nil means
	// slog.Default().
	Logger *slog.Logger

	dir string
}

// Entries not used for this long are removed when a cache is opened, so
// that files served once and gone do not pile up; temporary files left by
// a process killed while storing, after an hour.
const (
	cacheUnusedAge = 30 * 24 * time.Hour
	cacheTempAge   = time.Hour
)

// cacheSuffix ends an entry's name, cacheTempPrefix starts a temporary
// one's.
const (
	cacheSuffix     = ".manifest"
	cacheTempPrefix = ".tmp-"
)

// OpenManifestCache returns the cache in dir, creating the directory with
// mode 0700 when it does not exist. It refuses a directory that another
// user owns or that its group or others may write to (see
// [ManifestCache]); a symbolic link is followed once, here. Entries long
// unused are removed.
func OpenManifestCache(dir string) (*ManifestCache, error) {
	if dir == "" {
		return nil, errors.New("manifest cache: no directory")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("manifest cache: %w", err)
	}
	// The directory's name is resolved now, so that the checks below
	// hold for the directory used later, whatever a link is made to.
	real, err := filepath.EvalSymlinks(dir)
	if err == nil {
		real, err = filepath.Abs(real)
	}
	if err != nil {
		return nil, fmt.Errorf("manifest cache: %w", err)
	}
	fi, err := os.Lstat(real)
	if err != nil {
		return nil, fmt.Errorf("manifest cache: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("manifest cache: %s is not a directory", dir)
	}
	if err := checkPrivate(fi); err != nil {
		return nil, fmt.Errorf("manifest cache: %s %v: it must be private to this user (chmod 700)", dir, err)
	}
	c := &ManifestCache{dir: real}
	c.prune(time.Now())
	return c, nil
}

// Dir returns the cache's directory, with any symbolic link resolved.
func (c *ManifestCache) Dir() string { return c.dir }

// prune removes the entries unused for cacheUnusedAge and the temporary
// files older than cacheTempAge. Failing to is harmless.
func (c *ManifestCache) prune(now time.Time) {
	ents, err := os.ReadDir(c.dir)
	if err != nil {
		return
	}
	for _, e := range ents {
		name := e.Name()
		var age time.Duration
		switch {
		case strings.HasPrefix(name, cacheTempPrefix):
			age = cacheTempAge
		case strings.HasSuffix(name, cacheSuffix):
			age = cacheUnusedAge
		default:
			continue
		}
		if fi, err := e.Info(); err == nil && fi.Mode().IsRegular() && now.Sub(fi.ModTime()) > age {
			os.Remove(filepath.Join(c.dir, name))
		}
	}
}

func (c *ManifestCache) logger() *slog.Logger {
	if c.Logger != nil {
		return c.Logger
	}
	return slog.Default()
}

// Manifest returns the manifest of the file at path cut into segments of
// segSize (0 selects [DefaultSegmentSize]), and whether it came from the
// cache. It comes from the cache when an entry matches the file as it is
// now, and then the file is not read; otherwise it is built as
// [BuildManifest] builds it and stored.
func (c *ManifestCache) Manifest(path string, segSize int64) (m *Manifest, cached bool, err error) {
	if c == nil {
		m, err = BuildManifest(path, segSize)
		return m, false, err
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, false, err
	}
	if fi, err := os.Stat(abs); err == nil && fi.Mode().IsRegular() {
		k := newCacheKey(abs, fi, segSize)
		m, err := c.load(k)
		switch {
		case err == nil:
			// The entry's time says when it was last used, for prune.
			now := time.Now()
			os.Chtimes(c.entryPath(abs), now, now)
			return m, true, nil
		case !errors.Is(err, errNotCached):
			c.logger().Warn("manifest cache: entry ignored, hashing the file again", "path", abs, "err", err)
		}
	}
	f, err := os.Open(abs)
	if err != nil {
		return nil, false, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, false, err
	}
	if m, err = buildManifest(f, fi, path, segSize); err != nil {
		return nil, false, err
	}
	if err := c.store(newCacheKey(abs, fi, m.SegmentSize), m); err != nil {
		c.logger().Warn("manifest cache: cannot store the manifest", "path", abs, "err", err)
	}
	return m, false, nil
}

// errNotCached reports that no entry matches a file: it has none, or it
// changed since. It is no fault.
var errNotCached = errors.New("no entry for the file as it is")

// cacheMagic opens every entry; the digit is the layout's version.
const cacheMagic = "idm manifest cache 1\n"

// A cacheKey is what an entry is for: the file as it was hashed.
type cacheKey struct {
	path     string // absolute
	size     int64
	mtime    int64 // Unix nanoseconds
	dev, ino uint64
	segSize  int64
}

// newCacheKey returns the key of the file at abs whose status is fi, cut
// into segments of segSize (0: the default for its size).
func newCacheKey(abs string, fi os.FileInfo, segSize int64) cacheKey {
	if segSize == 0 {
		segSize = DefaultSegmentSize(fi.Size())
	}
	dev, ino := fileID(fi)
	return cacheKey{path: abs, size: fi.Size(), mtime: fi.ModTime().UnixNano(), dev: dev, ino: ino, segSize: segSize}
}

// Entry layout (all integers big-endian):
//
//	cacheMagic
//	u16 path length, path
//	u64 size, i64 modification time (Unix ns), u64 device, u64 inode,
//	u32 segment size
//	32 bytes whole-file BLAKE3, 32 bytes whole-file SHA-256
//	count*32 bytes segment BLAKE3, count*32 bytes segment SHA-256
//	32 bytes BLAKE3 of everything before
//
// count follows from the size and segment size, so an entry's length is
// known from its key.

// bytes returns the key as an entry starts, after the magic.
func (k cacheKey) bytes() []byte {
	b := binary.BigEndian.AppendUint16(nil, uint16(len(k.path)))
	b = append(b, k.path...)
	b = binary.BigEndian.AppendUint64(b, uint64(k.size))
	b = binary.BigEndian.AppendUint64(b, uint64(k.mtime))
	b = binary.BigEndian.AppendUint64(b, k.dev)
	b = binary.BigEndian.AppendUint64(b, k.ino)
	return binary.BigEndian.AppendUint32(b, uint32(k.segSize))
}

// usable reports whether the key can be stored and describes a layout a
// manifest may have.
func (k cacheKey) usable() bool {
	return len(k.path) <= 1<<16-1 && validateLayout(k.size, k.segSize) == nil
}

// entryLen returns the length of an entry for k.
func (k cacheKey) entryLen() int64 {
	n := SegmentCount(k.size, k.segSize)
	return int64(len(cacheMagic)+len(k.bytes())+2*HashSize) + n*(HashSize+sha256.Size) + HashSize
}

// maxEntryLen bounds what load reads: the longest path, the most
// segments.
const maxEntryLen = len(cacheMagic) + 2 + 1<<16 + 36 + 2*HashSize + MaxSegments*(HashSize+sha256.Size) + HashSize

// entryPath returns where the entry of the file at abs is: one per path,
// named by its hash so that any path makes a short, plain name.
func (c *ManifestCache) entryPath(abs string) string {
	h := blake3.Sum256([]byte(abs))
	return filepath.Join(c.dir, Hash(h).String()[:32]+cacheSuffix)
}

// load returns the manifest of the entry for k: errNotCached when there
// is none for the file as k describes it, another error when the entry is
// damaged.
func (c *ManifestCache) load(k cacheKey) (*Manifest, error) {
	if !k.usable() {
		return nil, errNotCached
	}
	f, err := os.Open(c.entryPath(k.path))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, errNotCached
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() || fi.Size() > int64(maxEntryLen) {
		return nil, fmt.Errorf("entry %s is not a file of at most %d bytes", fi.Name(), maxEntryLen)
	}
	b := make([]byte, fi.Size())
	if _, err := io.ReadFull(f, b); err != nil {
		return nil, fmt.Errorf("read entry %s: %w", fi.Name(), err)
	}
	return decodeCacheEntry(b, k)
}

// decodeCacheEntry checks an entry against its checksum and k, and
// returns its manifest.
func decodeCacheEntry(b []byte, k cacheKey) (*Manifest, error) {
	if !bytes.HasPrefix(b, []byte(cacheMagic)) {
		// An entry of another layout version is replaced, not an error.
		return nil, errNotCached
	}
	if len(b) < len(cacheMagic)+HashSize {
		return nil, errors.New("entry truncated")
	}
	body, sum := b[:len(b)-HashSize], b[len(b)-HashSize:]
	if want := blake3.Sum256(body); !bytes.Equal(sum, want[:]) {
		return nil, errors.New("entry damaged: its checksum does not match")
	}
	body = body[len(cacheMagic):]
	key := k.bytes()
	if !bytes.HasPrefix(body, key) {
		// The file changed since, or another path has the same name.
		return nil, errNotCached
	}
	if int64(len(b)) != k.entryLen() {
		return nil, fmt.Errorf("entry of %d bytes, want %d for its key", len(b), k.entryLen())
	}
	body = body[len(key):]
	count := int(SegmentCount(k.size, k.segSize))
	m := &Manifest{
		Name:        filepath.Base(k.path),
		Size:        k.size,
		ModTime:     time.Unix(0, k.mtime),
		SegmentSize: k.segSize,
		Segments:    make([]Hash, count),
	}
	copy(m.Content[:], body)
	digest := bytes.Clone(body[HashSize : 2*HashSize])
	body = body[2*HashSize:]
	for i := range m.Segments {
		copy(m.Segments[i][:], body[i*HashSize:])
	}
	m.SHA256 = &identity.File{
		Size: k.size, PieceLen: k.segSize, Algo: identity.SHA256,
		Pieces:  bytes.Clone(body[count*HashSize:]),
		Digests: []identity.Digest{{Algo: identity.SHA256, Sum: digest}},
	}
	if err := m.Validate(); err != nil {
		return nil, fmt.Errorf("entry holds an invalid manifest: %w", err)
	}
	return m, nil
}

// encodeCacheEntry returns the entry of m under k.
func encodeCacheEntry(k cacheKey, m *Manifest) ([]byte, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	if m.SHA256 == nil || m.Size != k.size || m.SegmentSize != k.segSize {
		return nil, errors.New("the manifest is not of the file the key describes")
	}
	digest, _ := m.SHA256.Digest(identity.SHA256)
	b := make([]byte, 0, k.entryLen())
	b = append(b, cacheMagic...)
	b = append(b, k.bytes()...)
	b = append(b, m.Content[:]...)
	b = append(b, digest...)
	for _, h := range m.Segments {
		b = append(b, h[:]...)
	}
	b = append(b, m.SHA256.Pieces...)
	sum := blake3.Sum256(b)
	return append(b, sum[:]...), nil
}

// store writes the entry of m under k, replacing any: a reader sees the
// old entry or the new one whole.
func (c *ManifestCache) store(k cacheKey, m *Manifest) error {
	if !k.usable() {
		return nil
	}
	b, err := encodeCacheEntry(k, m)
	if err != nil {
		return err
	}
	// CreateTemp makes the file 0600. It is not synced: an entry a crash
	// leaves damaged fails its checksum and is built again, which costs
	// less than a sync on every start.
	f, err := os.CreateTemp(c.dir, cacheTempPrefix+"*")
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), c.entryPath(k.path))
	}
	if err != nil {
		os.Remove(f.Name())
	}
	return err
}
