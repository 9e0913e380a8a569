// Package identity describes a file by what can check it: its size, the
// length of its pieces, the hash of each piece under a named algorithm,
// and whole-file digests. The protocol fills one in from an idm
// manifest, the store keeps one per job, and the download engine verifies
// every piece against it; a source that describes nothing but the size
// (a plain HTTP mirror) gets one whose piece hashes the engine computes
// as the pieces arrive.
//
// A File's identity is its root: the BLAKE3 hash of its size, piece
// length, algorithm and piece hashes. Two descriptions with the same root
// describe the same bytes, cut the same way; verifying every piece of a
// file against its hashes proves the whole file, with no second pass.
package identity

import (
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"strings"
	"time"

	"github.com/zeebo/blake3"
)

// An Algo is a hash algorithm of pieces or of a whole file.
type Algo uint8

// The algorithms. BLAKE3 is idm's own; SHA-256 and SHA-1 are those
// Metalink files give; SHA-512 is one a user may check a whole file by.
const (
	BLAKE3 Algo = iota + 1
	SHA256
	SHA1
	SHA512
)

// String returns the algorithm's name as Metalink and Digest headers
// write it.
func (a Algo) String() string {
	switch a {
	case BLAKE3:
		return "blake3"
	case SHA256:
		return "sha-256"
	case SHA1:
		return "sha-1"
	case SHA512:
		return "sha-512"
	}
	return fmt.Sprintf("algo(%d)", uint8(a))
}

// ParseAlgo reads a name written by String.
func ParseAlgo(s string) (Algo, error) {
	for a := BLAKE3; a <= SHA512; a++ {
		if a.String() == s {
			return a, nil
		}
	}
	return 0, fmt.Errorf("unknown hash algorithm %q", s)
}

// Size returns the length in bytes of the algorithm's hashes, or 0 for an
// unknown algorithm.
func (a Algo) Size() int {
	switch a {
	case BLAKE3, SHA256:
		return 32
	case SHA1:
		return 20
	case SHA512:
		return 64
	}
	return 0
}

// New returns a new hash of the algorithm. It panics on an unknown one.
func (a Algo) New() hash.Hash {
	switch a {
	case BLAKE3:
		return blake3.New()
	case SHA256:
		return sha256.New()
	case SHA1:
		return sha1.New()
	case SHA512:
		return sha512.New()
	}
	panic("identity: unknown algorithm " + a.String())
}

// Sum hashes b with the algorithm.
func (a Algo) Sum(b []byte) []byte {
	if a == BLAKE3 {
		h := blake3.Sum256(b)
		return h[:]
	}
	h := a.New()
	h.Write(b)
	return h.Sum(nil)
}

// Limits on what a File may hold. They bound what a source can make a
// client allocate.
const (
	// MaxPieces is the most pieces a file may have (32 MiB of BLAKE3
	// hashes).
	MaxPieces = 1 << 20
	// MinPieceLen and MaxPieceLen bound the piece length.
	MinPieceLen = 4 << 10
	// MaxPieceLen is the longest piece.
	MaxPieceLen = 64 << 20
	// MaxSize is the largest file.
	MaxSize = 1 << 62
)

// A Digest is a whole-file hash under a named algorithm.
type Digest struct {
	Algo Algo
	Sum  []byte
}

// String returns the digest as "algo:hex".
func (d Digest) String() string { return d.Algo.String() + ":" + hex.EncodeToString(d.Sum) }

// ParseDigest reads a digest written "algo:hex", as String writes it, or
// "algo=hex", as users type it (--checksum sha-256=...). The algorithm's
// name is case-insensitive; the hex must have the algorithm's length.
func ParseDigest(s string) (Digest, error) {
	name, sum, ok := strings.Cut(s, ":")
	if n, x, eq := strings.Cut(s, "="); eq && (!ok || len(n) < len(name)) {
		name, sum, ok = n, x, true
	}
	if !ok {
		return Digest{}, fmt.Errorf("checksum %q: want ALGO=HEX, such as sha-256=%s", s, strings.Repeat("0", 8)+"...")
	}
	a, err := ParseAlgo(strings.ToLower(strings.TrimSpace(name)))
	if err != nil {
		return Digest{}, fmt.Errorf("checksum %q: unknown algorithm %q (blake3, sha-256, sha-512, sha-1)", s, name)
	}
	b, err := hex.DecodeString(strings.TrimSpace(sum))
	if err != nil || len(b) != a.Size() {
		return Digest{}, fmt.Errorf("checksum %q: want %d hex digits for %s", s, 2*a.Size(), a)
	}
	return Digest{Algo: a, Sum: b}, nil
}

// A Hash is a BLAKE3-256 hash, the size of a root.
type Hash [32]byte

// String returns the hash in lower-case hexadecimal.
func (h Hash) String() string { return hex.EncodeToString(h[:]) }

// File is a file as far as it can be checked. Pieces may be nil: nothing
// published them, and the engine hashes the pieces itself as they arrive.
type File struct {
	// Size is the file's length in bytes.
	Size int64
	// PieceLen is the length of every piece but the last.
	PieceLen int64
	// Algo is the algorithm of Pieces.
	Algo Algo
	// Pieces holds the hash of each piece, Algo.Size() bytes each, in
	// order; nil when no source published them.
	Pieces []byte
	// Digests are whole-file hashes that sources claimed or a user gave.
	Digests []Digest
}

// Count returns the number of pieces.
func (f *File) Count() int {
	if f.PieceLen <= 0 || f.Size <= 0 {
		return 0
	}
	return int((f.Size + f.PieceLen - 1) / f.PieceLen)
}

// Piece returns the offset and length of piece i.
func (f *File) Piece(i int) (off, n int64) {
	off = int64(i) * f.PieceLen
	return off, min(f.PieceLen, f.Size-off)
}

// PieceHash returns the hash of piece i, or nil when pieces are not
// known.
func (f *File) PieceHash(i int) []byte {
	if f.Pieces == nil {
		return nil
	}
	k := f.Algo.Size()
	return f.Pieces[i*k : (i+1)*k]
}

// Digest returns the whole-file digest of the algorithm, if any.
func (f *File) Digest(a Algo) ([]byte, bool) {
	for _, d := range f.Digests {
		if d.Algo == a {
			return d.Sum, true
		}
	}
	return nil, false
}

// Validate reports whether the file's fields are consistent and within
// the limits.
func (f *File) Validate() error {
	switch {
	case f.Size < 0 || f.Size > MaxSize:
		return fmt.Errorf("size %d out of range", f.Size)
	case f.PieceLen < MinPieceLen || f.PieceLen > MaxPieceLen:
		return fmt.Errorf("piece length %d outside %d..%d", f.PieceLen, MinPieceLen, MaxPieceLen)
	case f.Algo.Size() == 0:
		return fmt.Errorf("unknown piece hash algorithm %d", f.Algo)
	}
	n := (f.Size + f.PieceLen - 1) / f.PieceLen
	if n > MaxPieces {
		return fmt.Errorf("%d pieces, more than %d", n, MaxPieces)
	}
	if f.Pieces != nil && int64(len(f.Pieces)) != n*int64(f.Algo.Size()) {
		return fmt.Errorf("%d bytes of piece hashes for %d pieces of %d-byte hashes", len(f.Pieces), n, f.Algo.Size())
	}
	for _, d := range f.Digests {
		if d.Algo.Size() == 0 || len(d.Sum) != d.Algo.Size() {
			return fmt.Errorf("whole-file digest %s is malformed", d.Algo)
		}
	}
	return nil
}

// rootPrefix opens what Root hashes, so that a root is never the hash of
// anything else.
const rootPrefix = "idm file v1\x00"

// Root returns the file's identity: the BLAKE3 hash of "idm file v1",
// a zero byte, the size (u64), the piece length (u32) and the algorithm
// (u8), big-endian, then the piece hashes. It is the zero Hash when the
// pieces are not known.
func (f *File) Root() Hash {
	if f.Pieces == nil {
		return Hash{}
	}
	h := blake3.New()
	h.Write(rootHeader(f.Size, f.PieceLen, f.Algo))
	h.Write(f.Pieces)
	var r Hash
	h.Sum(r[:0])
	return r
}

func rootHeader(size, pieceLen int64, a Algo) []byte {
	b := append([]byte(rootPrefix), 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, byte(a))
	p := b[len(rootPrefix):]
	binary.BigEndian.PutUint64(p, uint64(size))
	binary.BigEndian.PutUint32(p[8:], uint32(pieceLen))
	return b
}

// A Rooter computes a root as the piece hashes arrive, without holding
// them: a client can check a long list of hashes against a root, or
// compare two lists, in memory that does not grow with the list.
type Rooter struct{ h *blake3.Hasher }

// NewRooter starts a root of a file of the given size, piece length and
// piece hash algorithm.
func NewRooter(size, pieceLen int64, a Algo) *Rooter {
	r := &Rooter{h: blake3.New()}
	r.h.Write(rootHeader(size, pieceLen, a))
	return r
}

// Write adds piece hashes, in order.
func (r *Rooter) Write(p []byte) (int, error) { return r.h.Write(p) }

// Sum returns the root of the hashes written.
func (r *Rooter) Sum() Hash {
	var s Hash
	r.h.Sum(s[:0])
	return s
}

// A Summary is a File without its piece hashes: the root stands for
// them. It is what sources are compared by.
type Summary struct {
	Size     int64
	PieceLen int64
	Algo     Algo
	Count    int  // number of pieces
	Root     Hash // zero when the pieces are not known
	Digests  []Digest
}

// Summary returns the file's summary.
func (f *File) Summary() Summary {
	return Summary{Size: f.Size, PieceLen: f.PieceLen, Algo: f.Algo, Count: f.Count(), Root: f.Root(), Digests: f.Digests}
}

// SameFile reports whether s and o describe the same bytes cut the same
// way: the same size, piece length, algorithm and root, and no whole-file
// digest of one algorithm that differs.
func (s *Summary) SameFile(o *Summary) bool {
	if s.Size != o.Size || s.PieceLen != o.PieceLen || s.Algo != o.Algo || s.Count != o.Count || s.Root != o.Root {
		return false
	}
	for _, d := range s.Digests {
		for _, e := range o.Digests {
			if d.Algo == e.Algo && string(d.Sum) != string(e.Sum) {
				return false
			}
		}
	}
	return true
}

// Validate reports whether the summary is consistent and within the
// limits, as File.Validate does.
func (s *Summary) Validate() error {
	f := File{Size: s.Size, PieceLen: s.PieceLen, Algo: s.Algo, Digests: s.Digests}
	if err := f.Validate(); err != nil {
		return err
	}
	if s.Count != f.Count() {
		return fmt.Errorf("%d piece hashes for %d pieces", s.Count, f.Count())
	}
	return nil
}

// A Description is what a source says of the file it holds: its name and
// time, which are not part of its identity, and its summary.
type Description struct {
	// Name is the file's base name as the source knows it. It comes from
	// the network: sanitise it before using it as a path.
	Name string
	// ModTime is the file's modification time, when the source says.
	ModTime time.Time
	Summary
}

// ErrNoPieces reports a description without piece hashes where they are
// needed.
var ErrNoPieces = errors.New("the source publishes no piece hashes")

// DefaultPieceLen returns the piece length of a file of the given size
// when nothing else decides it: the largest power of two that still
// gives at least 64 pieces, kept between 64 KiB and 4 MiB. It depends on
// the size alone, so independent servers agree without talking.
func DefaultPieceLen(size int64) int64 {
	const minLen, maxLen, target = 64 << 10, 4 << 20, 64
	n := int64(maxLen)
	for n > minLen && size/n < target {
		n /= 2
	}
	return n
}

// maxOwnPieces bounds the pieces of a file whose hashes the engine takes
// itself, so that recording them stays cheap (512 KiB of hashes).
const maxOwnPieces = 1 << 14

// OwnPieceLen returns the piece length the engine uses for a file whose
// pieces no source published: DefaultPieceLen, doubled until the file has
// at most 16,384 pieces.
func OwnPieceLen(size int64) int64 {
	n := DefaultPieceLen(size)
	for n < MaxPieceLen && (size+n-1)/n > maxOwnPieces {
		n *= 2
	}
	return n
}
