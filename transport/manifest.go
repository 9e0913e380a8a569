package transport

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/zeebo/blake3"
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

// Default segment sizes: the size is a power of two chosen from the file
// size alone, so that independent servers agree without talking.
const (
	minDefaultSegment = 64 << 10
	maxDefaultSegment = 4 << 20
	targetSegments    = 64
)

// DefaultSegmentSize returns the segment size used for a file of the given
// size: the largest power of two that still gives at least 64 segments,
// kept between 64 KiB and 4 MiB.
func DefaultSegmentSize(size int64) int64 {
	seg := int64(maxDefaultSegment)
	for seg > minDefaultSegment && size/seg < targetSegments {
		seg /= 2
	}
	return seg
}

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
	// Content is the hash of the whole file (what b3sum prints). It
	// identifies the content across servers.
	Content Hash
}

// Digest returns the BLAKE3 hash of the manifest's segment hashes, in
// order. Two manifests with the same size, segment size, content hash and
// digest list the same segment hashes.
func (m *Manifest) Digest() Hash {
	h := blake3.New()
	for i := range m.Segments {
		h.Write(m.Segments[i][:])
	}
	var d Hash
	h.Sum(d[:0])
	return d
}

// Summary returns the manifest without its segment hashes.
func (m *Manifest) Summary() Summary {
	return Summary{Name: m.Name, Size: m.Size, ModTime: m.ModTime, SegmentSize: m.SegmentSize,
		Content: m.Content, Segments: len(m.Segments), Digest: m.Digest()}
}

// Summary is a manifest without its segment hashes: what a source says of
// the file in a few dozen bytes, with a digest standing for the rest. A
// client compares sources by their summaries, and needs one source's
// whole manifest only once.
type Summary struct {
	// Name, Size, ModTime, SegmentSize and Content are the manifest's.
	Name        string
	Size        int64
	ModTime     time.Time
	SegmentSize int64
	Content     Hash
	// Segments is how many segment hashes the manifest lists.
	Segments int
	// Digest is the manifest's [Manifest.Digest].
	Digest Hash
}

// SameFile reports whether s and o describe the same file cut the same
// way: the same size, segment size, content hash and segment hashes. The
// name and the modification time may differ between servers.
func (s *Summary) SameFile(o *Summary) bool {
	return s.Size == o.Size && s.SegmentSize == o.SegmentSize && s.Content == o.Content &&
		s.Segments == o.Segments && s.Digest == o.Digest
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
	s := Summary{Name: m.Name, Size: m.Size, SegmentSize: m.SegmentSize, Segments: len(m.Segments)}
	return s.Validate()
}

// BuildManifest reads the file at path once and hashes every segment and
// the whole file. A segSize of 0 selects [DefaultSegmentSize].
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
	m.Segments = make([]Hash, 0, SegmentCount(m.Size, segSize))
	whole := blake3.New()
	// The segment hashes and the whole-file hash are independent, so each
	// chunk is hashed both ways at once on two cores; reading the next
	// chunk waits for both, which keeps memory at two segments.
	bufs := [2][]byte{make([]byte, segSize), make([]byte, segSize)}
	var sum Hash
	done := make(chan struct{}, 1)
	for i := 0; ; i++ {
		buf := bufs[i%2]
		n, err := io.ReadFull(f, buf)
		if n > 0 {
			chunk := buf[:n]
			go func() { sum = blake3.Sum256(chunk); done <- struct{}{} }()
			whole.Write(chunk)
			<-done
			m.Segments = append(m.Segments, sum)
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", path, err)
		}
	}
	if int64(len(m.Segments)) != SegmentCount(m.Size, segSize) {
		return nil, fmt.Errorf("%s changed while it was being hashed", path)
	}
	copy(m.Content[:], whole.Sum(nil))
	return m, nil
}

// Manifest wire layout (all integers big-endian):
//
//	u16 name length, name bytes
//	u64 size, i64 modification time (Unix nanoseconds), u32 segment size
//	32 bytes content hash, u32 segment count, count*32 bytes segment hashes
const manifestFixed = 2 + 8 + 8 + 4 + HashSize + 4

// MarshalBinary encodes the manifest in its wire layout.
func (m *Manifest) MarshalBinary() ([]byte, error) {
	if err := m.Validate(); err != nil {
		return nil, fmt.Errorf("encode manifest: %w", err)
	}
	b := make([]byte, 0, manifestFixed+len(m.Name)+len(m.Segments)*HashSize)
	b = binary.BigEndian.AppendUint16(b, uint16(len(m.Name)))
	b = append(b, m.Name...)
	b = binary.BigEndian.AppendUint64(b, uint64(m.Size))
	b = binary.BigEndian.AppendUint64(b, uint64(m.ModTime.UnixNano()))
	b = binary.BigEndian.AppendUint32(b, uint32(m.SegmentSize))
	b = append(b, m.Content[:]...)
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
	out, _, err := readManifest(bytes.NewReader(b), len(b), true)
	if err != nil {
		return err
	}
	*m = *out
	return nil
}

// hashChunk is how many segment hashes readManifest reads at a time.
const hashChunk = 2048

// readManifest reads a manifest of n bytes in its wire layout from r. It
// always returns the summary; with keep it also returns the whole
// manifest. Without keep, its memory does not grow with the number of
// segments: the hashes pass through the digest and are dropped.
func readManifest(r io.Reader, n int, keep bool) (*Manifest, *Summary, error) {
	if n < manifestFixed {
		return nil, nil, errShort
	}
	var fixed [2 + MaxNameLen]byte
	if _, err := io.ReadFull(r, fixed[:2]); err != nil {
		return nil, nil, shortErr(err)
	}
	nameLen := int(binary.BigEndian.Uint16(fixed[:2]))
	if nameLen > MaxNameLen {
		return nil, nil, fmt.Errorf("manifest name length %d over %d", nameLen, MaxNameLen)
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
	s := &Summary{Name: string(fixed[2 : 2+nameLen])}
	size := binary.BigEndian.Uint64(head[:])
	if size > 1<<62 {
		return nil, nil, fmt.Errorf("manifest size %d out of range", size)
	}
	s.Size = int64(size)
	s.ModTime = time.Unix(0, int64(binary.BigEndian.Uint64(head[8:])))
	s.SegmentSize = int64(binary.BigEndian.Uint32(head[16:]))
	copy(s.Content[:], head[20:20+HashSize])
	count := binary.BigEndian.Uint32(head[20+HashSize:])
	if count > MaxSegments {
		return nil, nil, fmt.Errorf("manifest lists %d segments, more than %d", count, MaxSegments)
	}
	if rest := n - manifestFixed - nameLen; rest != int(count)*HashSize {
		return nil, nil, fmt.Errorf("manifest holds %d bytes of hashes for %d segments", rest, count)
	}
	s.Segments = int(count)
	if err := s.Validate(); err != nil {
		return nil, nil, fmt.Errorf("invalid manifest: %w", err)
	}
	var m *Manifest
	if keep {
		m = &Manifest{Name: s.Name, Size: s.Size, ModTime: s.ModTime, SegmentSize: s.SegmentSize,
			Content: s.Content, Segments: make([]Hash, count)}
	}
	digest := blake3.New()
	buf := make([]byte, min(int(count), hashChunk)*HashSize)
	for done := 0; done < int(count); {
		k := min(int(count)-done, hashChunk)
		p := buf[:k*HashSize]
		if _, err := io.ReadFull(r, p); err != nil {
			return nil, nil, shortErr(err)
		}
		digest.Write(p)
		if keep {
			for i := range k {
				copy(m.Segments[done+i][:], p[i*HashSize:])
			}
		}
		done += k
	}
	digest.Sum(s.Digest[:0])
	return m, s, nil
}

// shortErr turns the end of the input inside a manifest into errShort.
func shortErr(err error) error {
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return errShort
	}
	return err
}

// Validate reports whether the summary is internally consistent, as
// [Manifest.Validate] does for a whole manifest.
func (s *Summary) Validate() error {
	switch {
	case s.Size < 0:
		return errors.New("negative size")
	case s.SegmentSize < MinSegmentSize || s.SegmentSize > MaxSegmentSize:
		return fmt.Errorf("segment size %d outside %d..%d", s.SegmentSize, MinSegmentSize, MaxSegmentSize)
	case len(s.Name) == 0 || len(s.Name) > MaxNameLen:
		return fmt.Errorf("name length %d outside 1..%d", len(s.Name), MaxNameLen)
	}
	want := SegmentCount(s.Size, s.SegmentSize)
	if want > MaxSegments {
		return fmt.Errorf("%d segments, more than %d", want, MaxSegments)
	}
	if int64(s.Segments) != want {
		return fmt.Errorf("%d segment hashes for %d segments", s.Segments, want)
	}
	return nil
}
