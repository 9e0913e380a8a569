package transport

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/zeebo/blake3"

	"github.com/idmproject/idm/identity"
)

// HashSize is the length in bytes of every hash idm uses (BLAKE3-256).
const HashSize = 32

// Hash is a BLAKE3-256 digest.
type Hash [HashSize]byte

// String returns the hash in lower-case hexadecimal, as b3sum prints it.
func (h Hash) String() string { return hex.EncodeToString(h[:]) }

// ParseHash reads a hash written by [Hash.String].
func ParseHash(s string) (Hash, error) {
	var h Hash
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != HashSize {
		return h, fmt.Errorf("invalid hash %q", s)
	}
	copy(h[:], b)
	return h, nil
}

// SumSegment returns the hash of one segment's bytes.
func SumSegment(b []byte) Hash { return blake3.Sum256(b) }

// Limits on what a manifest may hold. They bound what a peer can make the
// other side allocate.
const (
	// MaxNameLen is the longest file name, in bytes, a manifest may carry.
	MaxNameLen = 1024
	// MaxSegments is the most segments a manifest may list (32 MiB of
	// hashes; 4 TiB at the largest default segment size).
	MaxSegments = 1 << 20
	// MinSegmentSize and MaxSegmentSize bound the segment size.
	MinSegmentSize = 4 << 10
	// MaxSegmentSize is the largest segment size a manifest may declare.
	MaxSegmentSize = 64 << 20
)

// DefaultSegmentSize returns the segment size used for a file of the
// given size: identity.DefaultPieceLen, the largest power of two that
// still gives at least 64 segments, kept between 64 KiB and 4 MiB.
func DefaultSegmentSize(size int64) int64 { return identity.DefaultPieceLen(size) }

// Manifest describes one file as a server holds it: enough for a client to
// fetch it in segments from several servers and verify every byte.
type Manifest struct {
	// Name is the file's base name as the server knows it. It comes from
	// the network: sanitise it before using it as a path.
	Name string
	// Size is the file's length in bytes.
	Size int64
	// ModTime is the file's modification time.
	ModTime time.Time
	// SegmentSize is the length of every segment but the last.
	SegmentSize int64
	// Segments holds the hash of each segment, in order.
	Segments []Hash
	// Content is the BLAKE3 hash of the whole file (what b3sum prints),
	// when known: a server computes it, a version 2 manifest does not
	// carry it. The file's identity is its Root.
	Content Hash
	// SHA256 describes the file by SHA-256, for the clients of its HTTP
	// side: the hash of each segment as a piece of SegmentSize, and the
	// whole file's as its one Digest. The server gives them as a Metalink
	// and in Repr-Digest. A server computes them; the idm protocol does
	// not carry them, so a manifest read from the network has none (nil).
	SHA256 *identity.File
}

// File returns the manifest as the file's identity: BLAKE3 pieces of the
// segment size. The whole file's BLAKE3 is left out: the pieces prove the
// file.
func (m *Manifest) File() *identity.File {
	pieces := make([]byte, 0, len(m.Segments)*HashSize)
	for i := range m.Segments {
		pieces = append(pieces, m.Segments[i][:]...)
	}
	return &identity.File{Size: m.Size, PieceLen: m.SegmentSize, Algo: identity.BLAKE3, Pieces: pieces}
}

// Description returns what the manifest says of the file.
func (m *Manifest) Description() *identity.Description {
	return &identity.Description{Name: m.Name, ModTime: m.ModTime, Summary: m.File().Summary()}
}

// SegmentCount returns how many segments a file of size bytes has at the
// given segment size.
func SegmentCount(size, segSize int64) int64 {
	if size == 0 {
		return 0
	}
	return (size + segSize - 1) / segSize
}

// Segment returns the offset and length of segment i.
func (m *Manifest) Segment(i int) (off, n int64) {
	off = int64(i) * m.SegmentSize
	return off, min(m.SegmentSize, m.Size-off)
}

// Validate reports whether the manifest is internally consistent.
func (m *Manifest) Validate() error {
	if err := validateName(m.Name); err != nil {
		return err
	}
	if m.Size < 0 {
		return errors.New("negative size")
	}
	if err := validateLayout(m.Size, m.SegmentSize); err != nil {
		return err
	}
	f := identity.File{Size: m.Size, PieceLen: m.SegmentSize, Algo: identity.BLAKE3}
	if err := f.Validate(); err != nil {
		return err
	}
	if len(m.Segments) != f.Count() {
		return fmt.Errorf("%d segment hashes for %d segments", len(m.Segments), f.Count())
	}
	if s := m.SHA256; s != nil {
		if s.Size != m.Size || s.PieceLen != m.SegmentSize || s.Algo != identity.SHA256 || s.Pieces == nil {
			return errors.New("SHA-256 pieces do not match the segments")
		}
		if err := s.Validate(); err != nil {
			return fmt.Errorf("SHA-256 pieces: %w", err)
		}
		if _, ok := s.Digest(identity.SHA256); !ok {
			return errors.New("SHA-256 pieces without the whole file's SHA-256")
		}
	}
	return nil
}

// validateLayout checks a manifest's segment size and count are within
// the protocol's limits, in the protocol's words.
func validateLayout(size, segSize int64) error {
	if segSize < MinSegmentSize || segSize > MaxSegmentSize {
		return fmt.Errorf("segment size %d outside %d..%d", segSize, MinSegmentSize, MaxSegmentSize)
	}
	if n := SegmentCount(size, segSize); n > MaxSegments {
		return fmt.Errorf("%d segments of %d bytes for a file of size %d, more than %d", n, segSize, size, MaxSegments)
	}
	return nil
}

// validateName checks a manifest's name is within the protocol's limits.
func validateName(name string) error {
	if len(name) == 0 || len(name) > MaxNameLen {
		return fmt.Errorf("name length %d outside 1..%d", len(name), MaxNameLen)
	}
	return nil
}

// BuildManifest reads the file at path once and hashes every segment and
// the whole file, with BLAKE3 and with SHA-256 (see [Manifest.SHA256]). A
// segSize of 0 selects [DefaultSegmentSize].
func BuildManifest(path string, segSize int64) (*Manifest, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	return buildManifest(f, fi, path, segSize)
}

// buildManifest hashes f, open at path, whose status before reading is
// fi: the status a cache keys the manifest by is then that of the file
// that was read.
func buildManifest(f *os.File, fi os.FileInfo, path string, segSize int64) (*Manifest, error) {
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", path)
	}
	if segSize == 0 {
		segSize = DefaultSegmentSize(fi.Size())
	}
	m := &Manifest{
		Name:        filepath.Base(path),
		Size:        fi.Size(),
		ModTime:     fi.ModTime(),
		SegmentSize: segSize,
	}
	if n := SegmentCount(m.Size, segSize); segSize < MinSegmentSize || segSize > MaxSegmentSize || n > MaxSegments {
		return nil, fmt.Errorf("segment size %d: must be %d..%d and give at most %d segments",
			segSize, MinSegmentSize, MaxSegmentSize, MaxSegments)
	}
	// One byte past the size is read, so that a file that grew is caught
	// by the segment count rather than hashed without end.
	if err := m.hash(io.LimitReader(f, m.Size+1)); err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	after, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if int64(len(m.Segments)) != SegmentCount(m.Size, segSize) || after.Size() != m.Size || !after.ModTime().Equal(m.ModTime) {
		return nil, fmt.Errorf("%s changed while it was being hashed", path)
	}
	return m, nil
}

// hashMemory is about how much memory hash reads ahead into.
const hashMemory = 16 << 20

// hash reads r to its end in segments and fills in the hashes of m: the
// BLAKE3 of each segment and of the whole, and the same with SHA-256.
//
// The four are independent, so each has its own goroutine, fed the same
// buffers in order, and the reader fills the next buffers meanwhile: the
// file is read once, and the start takes about as long as the slowest
// hash (SHA-256, half BLAKE3's speed) when there are cores enough, or
// the sum of all over the cores there are.
func (m *Manifest) hash(r io.Reader) error {
	segSize := int(m.SegmentSize)
	count := int(SegmentCount(m.Size, m.SegmentSize))
	segs := make([]Hash, 0, count)
	pieces := make([]byte, 0, count*sha256.Size)
	whole, wholeSHA := blake3.New(), sha256.New()
	hashers := [...]func([]byte){
		func(b []byte) { segs = append(segs, blake3.Sum256(b)) },
		func(b []byte) { whole.Write(b) },
		func(b []byte) { sum := sha256.Sum256(b); pieces = append(pieces, sum[:]...) },
		func(b []byte) { wholeSHA.Write(b) },
	}
	// A buffer goes back to free when the last hasher is done with it.
	type chunk struct {
		b    []byte
		left atomic.Int32
	}
	nbuf := min(max(hashMemory/segSize, 3), 16)
	free := make(chan []byte, nbuf)
	for range nbuf {
		free <- make([]byte, segSize)
	}
	var queues [len(hashers)]chan *chunk
	var wg sync.WaitGroup
	for i, h := range hashers {
		queues[i] = make(chan *chunk, nbuf)
		wg.Go(func() {
			for c := range queues[i] {
				h(c.b)
				if c.left.Add(-1) == 0 {
					free <- c.b[:segSize]
				}
			}
		})
	}
	var err error
	for {
		buf := <-free
		var n int
		n, err = io.ReadFull(r, buf)
		if n > 0 {
			c := &chunk{b: buf[:n]}
			c.left.Store(int32(len(hashers)))
			for _, q := range queues {
				q <- c
			}
		}
		if err != nil {
			break
		}
	}
	for _, q := range queues {
		close(q)
	}
	wg.Wait()
	if err != io.EOF && err != io.ErrUnexpectedEOF {
		return err
	}
	m.Segments = segs
	copy(m.Content[:], whole.Sum(nil))
	m.SHA256 = &identity.File{
		Size: m.Size, PieceLen: m.SegmentSize, Algo: identity.SHA256, Pieces: pieces,
		Digests: []identity.Digest{{Algo: identity.SHA256, Sum: wholeSHA.Sum(nil)}},
	}
	return nil
}

// Manifest wire layout (all integers big-endian):
//
//	u16 name length, name bytes
//	u64 size, i64 modification time (Unix nanoseconds), u32 segment size
//	32 bytes content hash, u32 segment count, count*32 bytes segment hashes
const manifestFixed = 2 + 8 + 8 + 4 + HashSize + 4

// MarshalBinary encodes the manifest in its wire layout of the current
// version.
func (m *Manifest) MarshalBinary() ([]byte, error) { return m.encode(Version) }

// Root returns the file's root: the hash of its size, segment size and
// segment hashes, which version 2 sends as the content hash.
func (m *Manifest) Root() Hash { return Hash(m.File().Root()) }

// encode encodes the manifest in the wire layout of a protocol version:
// the content hash is the whole file's BLAKE3 in version 1, its root from
// version 2 on.
func (m *Manifest) encode(version uint16) ([]byte, error) {
	if err := m.Validate(); err != nil {
		return nil, fmt.Errorf("encode manifest: %w", err)
	}
	content := m.Content
	if version >= 2 {
		content = m.Root()
	}
	b := make([]byte, 0, manifestFixed+len(m.Name)+len(m.Segments)*HashSize)
	b = binary.BigEndian.AppendUint16(b, uint16(len(m.Name)))
	b = append(b, m.Name...)
	b = binary.BigEndian.AppendUint64(b, uint64(m.Size))
	b = binary.BigEndian.AppendUint64(b, uint64(m.ModTime.UnixNano()))
	b = binary.BigEndian.AppendUint32(b, uint32(m.SegmentSize))
	b = append(b, content[:]...)
	b = binary.BigEndian.AppendUint32(b, uint32(len(m.Segments)))
	for _, h := range m.Segments {
		b = append(b, h[:]...)
	}
	return b, nil
}

// errShort reports a manifest that ends before its fields do.
var errShort = errors.New("manifest truncated")

// UnmarshalBinary decodes a manifest from its wire layout, checking every
// length against the limits before allocating for it.
func (m *Manifest) UnmarshalBinary(b []byte) error {
	d, f, err := readManifest(bytes.NewReader(b), len(b), true, Version)
	if err != nil {
		return err
	}
	out := Manifest{Name: d.Name, Size: f.Size, ModTime: d.ModTime, SegmentSize: f.PieceLen, Segments: make([]Hash, f.Count())}
	for i := range out.Segments {
		copy(out.Segments[i][:], f.PieceHash(i))
	}
	if content, ok := f.Digest(identity.BLAKE3); ok {
		copy(out.Content[:], content)
	}
	*m = out
	return nil
}

// hashChunk is how many segment hashes readManifest reads at a time.
const hashChunk = 2048

// readManifest reads a manifest of n bytes in its wire layout from r and
// returns what it describes. With keep, the file's piece hashes too;
// without, its memory does not grow with the number of segments: the
// hashes pass through the root and are dropped.
func readManifest(r io.Reader, n int, keep bool, version uint16) (*identity.Description, *identity.File, error) {
	if n < manifestFixed {
		return nil, nil, errShort
	}
	var fixed [2 + MaxNameLen]byte
	if _, err := io.ReadFull(r, fixed[:2]); err != nil {
		return nil, nil, shortErr(err)
	}
	nameLen := int(binary.BigEndian.Uint16(fixed[:2]))
	if nameLen > MaxNameLen {
		return nil, nil, protocolErr("manifest name length %d over %d", nameLen, MaxNameLen)
	}
	if n < manifestFixed+nameLen {
		return nil, nil, errShort
	}
	var head [manifestFixed - 2]byte
	if _, err := io.ReadFull(r, fixed[2:2+nameLen]); err != nil {
		return nil, nil, shortErr(err)
	}
	if _, err := io.ReadFull(r, head[:]); err != nil {
		return nil, nil, shortErr(err)
	}
	d := &identity.Description{Name: string(fixed[2 : 2+nameLen])}
	size := binary.BigEndian.Uint64(head[:])
	if size > identity.MaxSize {
		return nil, nil, protocolErr("manifest size %d out of range", size)
	}
	d.ModTime = time.Unix(0, int64(binary.BigEndian.Uint64(head[8:])))
	f := &identity.File{Size: int64(size), PieceLen: int64(binary.BigEndian.Uint32(head[16:])), Algo: identity.BLAKE3}
	var content identity.Hash
	copy(content[:], head[20:20+HashSize])
	if version < 2 {
		// The whole file's BLAKE3: a claim the client checks by hashing
		// the whole file once it has it.
		f.Digests = []identity.Digest{{Algo: identity.BLAKE3, Sum: content[:]}}
	}
	count := binary.BigEndian.Uint32(head[20+HashSize:])
	if count > MaxSegments {
		return nil, nil, protocolErr("manifest lists %d segments, more than %d", count, MaxSegments)
	}
	if rest := n - manifestFixed - nameLen; rest != int(count)*HashSize {
		return nil, nil, protocolErr("manifest holds %d bytes of hashes for %d segments", rest, count)
	}
	if err := validateName(d.Name); err != nil {
		return nil, nil, protocolErr("invalid manifest: %v", err)
	}
	if err := validateLayout(f.Size, f.PieceLen); err != nil {
		return nil, nil, protocolErr("invalid manifest: %v", err)
	}
	if err := f.Validate(); err != nil {
		return nil, nil, protocolErr("invalid manifest: %v", err)
	}
	if int(count) != f.Count() {
		return nil, nil, protocolErr("invalid manifest: %d segment hashes for %d segments", count, f.Count())
	}
	if keep {
		f.Pieces = make([]byte, int(count)*HashSize)
	}
	root := identity.NewRooter(f.Size, f.PieceLen, f.Algo)
	buf := make([]byte, min(int(count), hashChunk)*HashSize)
	for done := 0; done < int(count); {
		k := min(int(count)-done, hashChunk)
		p := buf[:k*HashSize]
		if keep {
			p = f.Pieces[done*HashSize : (done+k)*HashSize]
		}
		if _, err := io.ReadFull(r, p); err != nil {
			return nil, nil, shortErr(err)
		}
		root.Write(p)
		done += k
	}
	d.Summary = identity.Summary{Size: f.Size, PieceLen: f.PieceLen, Algo: f.Algo, Count: int(count), Root: root.Sum(), Digests: f.Digests}
	if version >= 2 && d.Root != content {
		return nil, nil, protocolErr("manifest's segment hashes hash to %s, not to its content hash %s", d.Root, content)
	}
	if !keep {
		f = nil
	}
	return d, f, nil
}

// shortErr turns the end of the input inside a manifest into errShort.
func shortErr(err error) error {
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return errShort
	}
	return err
}
