package engine

import (
	"fmt"
	"hash"
	"io"
	"os"
	"sync"

	"github.com/idmproject/idm/identity"
	"github.com/idmproject/idm/store"
)

// writeStripes is how many locks guard piece writes; piece i takes lock
// i%writeStripes.
const writeStripes = 64

// streamChunk is how much a streamed piece moves per write.
const streamChunk = 256 << 10

// segmentFile writes pieces into the partial file. A piece's only fetcher
// writes it as it arrives, hashing on the way, so memory does not grow
// with the piece length; a duplicate fetch (end-game, or taking over from
// a slow source) is held in a buffer and written only once verified. Once
// a piece is committed nothing writes to it again, so a slower copy that
// turns out corrupt can never spoil a verified one.
//
// For a file whose piece hashes are the engine's own, a piece is taken as
// it comes and its hash kept, so that after a crash what was written can
// be told from what was not.
type segmentFile struct {
	f     *os.File
	file  *identity.File
	own   bool
	locks [writeStripes]sync.RWMutex
	done  []bool // guarded by locks[i%writeStripes]
	bufs  sync.Pool

	ownMu    sync.Mutex
	ownDirty bool // own piece hashes taken since the last checkpoint

	onWrite func(piece int, n int) // a test's, called with each write
}

// diskError marks a failure to write the partial file, which no other
// source can cure.
type diskError struct{ err error }

func (e *diskError) Error() string { return e.err.Error() }
func (e *diskError) Unwrap() error { return e.err }

func newSegmentFile(f *os.File, file *identity.File, own bool, verified *store.Bitmap) *segmentFile {
	sf := &segmentFile{f: f, file: file, own: own, done: make([]bool, file.Count())}
	for i := range sf.done {
		sf.done[i] = verified.Has(i)
	}
	sf.bufs.New = func() any { b := make([]byte, file.PieceLen); return &b }
	return sf
}

// verify reports whether sum is piece i's hash. For own piece hashes
// every piece is taken as it comes.
func (sf *segmentFile) verify(i int, sum []byte) bool {
	return sf.own || string(sum) == string(sf.file.PieceHash(i))
}

// write puts p at off within piece i, unless the piece is already
// committed.
func (sf *segmentFile) write(i int, p []byte, off int64) error {
	l := &sf.locks[i%writeStripes]
	l.RLock()
	defer l.RUnlock()
	if sf.done[i] {
		return nil
	}
	if _, err := sf.f.WriteAt(p, off); err != nil {
		return &diskError{fmt.Errorf("write piece %d: %w", i, err)}
	}
	if sf.onWrite != nil {
		sf.onWrite(i, len(p))
	}
	return nil
}

// commit marks verified piece i complete, first writing buf when the
// piece was fetched into a buffer, and keeping its hash when the hashes
// are the engine's own. It reports false when another copy was committed
// first.
func (sf *segmentFile) commit(i int, buf, sum []byte) (bool, error) {
	l := &sf.locks[i%writeStripes]
	l.Lock()
	defer l.Unlock()
	if sf.done[i] {
		return false, nil
	}
	if buf != nil {
		off, _ := sf.file.Piece(i)
		if _, err := sf.f.WriteAt(buf, off); err != nil {
			return false, &diskError{fmt.Errorf("write piece %d: %w", i, err)}
		}
		if sf.onWrite != nil {
			sf.onWrite(i, len(buf))
		}
	}
	if sf.own {
		sf.ownMu.Lock()
		copy(sf.file.PieceHash(i), sum)
		sf.ownDirty = true
		sf.ownMu.Unlock()
	}
	sf.done[i] = true
	return true, nil
}

// ownPieces returns a copy of the engine's own piece hashes when some
// were taken since it was last called, and nil otherwise.
func (sf *segmentFile) ownPieces() []byte {
	if !sf.own {
		return nil
	}
	sf.ownMu.Lock()
	defer sf.ownMu.Unlock()
	if !sf.ownDirty {
		return nil
	}
	sf.ownDirty = false
	return append([]byte(nil), sf.file.Pieces...)
}

func (sf *segmentFile) getBuf() *[]byte  { return sf.bufs.Get().(*[]byte) }
func (sf *segmentFile) putBuf(b *[]byte) { sf.bufs.Put(b) }

// streamer receives a piece straight into the partial file, hashing it
// on the way.
type streamer struct {
	sf       *segmentFile
	i        int
	off      int64
	received int64 // bytes of the piece received so far
	hash     hash.Hash
	buf      []byte
}

func (s *streamer) reset(sf *segmentFile, i int) {
	if s.hash == nil {
		s.hash, s.buf = sf.file.Algo.New(), make([]byte, streamChunk)
	}
	s.hash.Reset()
	s.sf, s.i, s.received = sf, i, 0
	s.off, _ = sf.file.Piece(i)
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

func (s *streamer) sum() []byte { return s.hash.Sum(nil) }

// filler receives a piece into a buffer.
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
