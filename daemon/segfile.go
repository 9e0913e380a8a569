package daemon

import (
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/zeebo/blake3"

	"github.com/idmproject/idm/store"
	"github.com/idmproject/idm/transport"
)

// writeStripes is how many locks guard segment writes; segment i takes
// lock i%writeStripes.
const writeStripes = 64

// streamChunk is how much a streamed segment moves per write.
const streamChunk = 256 << 10

// segmentFile writes segments into the partial file. A segment's only
// fetcher writes it as it arrives, hashing on the way, so memory does not
// grow with the segment size; a duplicate fetch (end-game, or taking over
// from a slow source) is held in a buffer and written only once verified.
// Once a segment is committed nothing writes to it again, so a slower copy
// that turns out corrupt can never spoil a verified one.
type segmentFile struct {
	f     *os.File
	m     *transport.Manifest
	locks [writeStripes]sync.RWMutex
	done  []bool // guarded by locks[i%writeStripes]
	bufs  sync.Pool
}

// diskError marks a failure to write the partial file, which no other
// source can cure.
type diskError struct{ err error }

func (e *diskError) Error() string { return e.err.Error() }
func (e *diskError) Unwrap() error { return e.err }

func newSegmentFile(f *os.File, m *transport.Manifest, verified *store.Bitmap) *segmentFile {
	sf := &segmentFile{f: f, m: m, done: make([]bool, len(m.Segments))}
	for i := range sf.done {
		sf.done[i] = verified.Has(i)
	}
	sf.bufs.New = func() any { b := make([]byte, m.SegmentSize); return &b }
	return sf
}

// write puts p at off within segment i, unless the segment is already
// committed.
func (sf *segmentFile) write(i int, p []byte, off int64) error {
	l := &sf.locks[i%writeStripes]
	l.RLock()
	defer l.RUnlock()
	if sf.done[i] {
		return nil
	}
	if _, err := sf.f.WriteAt(p, off); err != nil {
		return &diskError{fmt.Errorf("write segment %d: %w", i, err)}
	}
	return nil
}

// commit marks verified segment i complete, first writing buf when the
// segment was fetched into a buffer. It reports false when another copy
// was committed first.
func (sf *segmentFile) commit(i int, buf []byte) (bool, error) {
	l := &sf.locks[i%writeStripes]
	l.Lock()
	defer l.Unlock()
	if sf.done[i] {
		return false, nil
	}
	if buf != nil {
		off, _ := sf.m.Segment(i)
		if _, err := sf.f.WriteAt(buf, off); err != nil {
			return false, &diskError{fmt.Errorf("write segment %d: %w", i, err)}
		}
	}
	sf.done[i] = true
	return true, nil
}

func (sf *segmentFile) getBuf() *[]byte  { return sf.bufs.Get().(*[]byte) }
func (sf *segmentFile) putBuf(b *[]byte) { sf.bufs.Put(b) }

// streamer receives a segment straight into the partial file, hashing it
// on the way.
type streamer struct {
	sf       *segmentFile
	i        int
	off      int64
	received int64 // bytes of the segment received so far
	hash     *blake3.Hasher
	buf      []byte
}

func (s *streamer) reset(sf *segmentFile, i int) {
	if s.hash == nil {
		s.hash, s.buf = blake3.New(), make([]byte, streamChunk)
	}
	s.hash.Reset()
	s.sf, s.i, s.received = sf, i, 0
	s.off, _ = sf.m.Segment(i)
}

func (s *streamer) Write(p []byte) (int, error) {
	s.received += int64(len(p))
	s.hash.Write(p)
	if err := s.sf.write(s.i, p, s.off); err != nil {
		return 0, err
	}
	s.off += int64(len(p))
	return len(p), nil
}

// ReadFrom moves the data in chunks of streamChunk, fewer and larger
// writes than io.Copy's default.
func (s *streamer) ReadFrom(r io.Reader) (int64, error) {
	var total int64
	for {
		n, err := io.ReadFull(r, s.buf)
		if n > 0 {
			if _, werr := s.Write(s.buf[:n]); werr != nil {
				return total, werr
			}
			total += int64(n)
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return total, nil
		}
		if err != nil {
			return total, err
		}
	}
}

func (s *streamer) sum() transport.Hash {
	var h transport.Hash
	s.hash.Sum(h[:0])
	return h
}

// filler receives a segment into a buffer.
type filler struct {
	b []byte
	n int
}

func (f *filler) Write(p []byte) (int, error) {
	if len(p) > len(f.b)-f.n {
		return 0, io.ErrShortBuffer
	}
	f.n += copy(f.b[f.n:], p)
	return len(p), nil
}

func (f *filler) ReadFrom(r io.Reader) (int64, error) {
	n, err := io.ReadFull(r, f.b[f.n:])
	f.n += n
	if err == io.ErrUnexpectedEOF || err == io.EOF {
		err = nil
	}
	return int64(n), err
}
