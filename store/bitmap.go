package store

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/bits"
)

// bitmapHeaderLen is the size of the length prefix of an encoded Bitmap.
const bitmapHeaderLen = 4

// A Bitmap is a fixed-length set of bits, one per segment of a job: bit i
// is set once segment i has been received and verified.
//
// Its length is fixed when it is made, by NewBitmap or UnmarshalBinary; the
// zero Bitmap has length 0. Indexes outside [0, Len()) make Set,
// Clear and Has panic, as an out-of-range slice index would.
//
// A Bitmap is not safe for concurrent use; callers that share one between
// goroutines must lock around it.
type Bitmap struct {
	n     int      // length in bits
	words []uint64 // bit i is words[i/64] & (1 << (i%64)); bits past n are zero
}

// NewBitmap returns a Bitmap of n bits, all clear. It panics if n is negative.
func NewBitmap(n int) *Bitmap {
	if n < 0 {
		panic(fmt.Sprintf("store: negative bitmap length %d", n))
	}
	return &Bitmap{n: n, words: make([]uint64, (n+63)/64)}
}

// Len returns the number of bits in b.
func (b *Bitmap) Len() int { return b.n }

// Set sets bit i.
func (b *Bitmap) Set(i int) {
	b.check(i)
	b.words[i/64] |= 1 << (uint(i) % 64)
}

// Clear clears bit i.
func (b *Bitmap) Clear(i int) {
	b.check(i)
	b.words[i/64] &^= 1 << (uint(i) % 64)
}

// Has reports whether bit i is set.
func (b *Bitmap) Has(i int) bool {
	b.check(i)
	return b.words[i/64]&(1<<(uint(i)%64)) != 0
}

// Count returns the number of bits set.
func (b *Bitmap) Count() int {
	c := 0
	for _, w := range b.words {
		c += bits.OnesCount64(w)
	}
	return c
}

// NextClear returns the index of the first clear bit at or after from, or -1
// if every bit from there on is set. A negative from is treated as 0.
func (b *Bitmap) NextClear(from int) int {
	if from < 0 {
		from = 0
	}
	if from >= b.n {
		return -1
	}
	wi := from / 64
	// Pretend the bits below from are set so that they are skipped.
	w := ^(b.words[wi] | (1<<(uint(from)%64) - 1))
	for {
		if w != 0 {
			i := wi*64 + bits.TrailingZeros64(w)
			if i >= b.n {
				return -1
			}
			return i
		}
		wi++
		if wi == len(b.words) {
			return -1
		}
		w = ^b.words[wi]
	}
}

// Complete reports whether every bit is set. An empty Bitmap is complete.
func (b *Bitmap) Complete() bool { return b.Count() == b.n }

// Clone returns a copy of b that shares no memory with it.
func (b *Bitmap) Clone() *Bitmap {
	return &Bitmap{n: b.n, words: append([]uint64(nil), b.words...)}
}

// MarshalBinary encodes b as a 4-byte big-endian length in bits followed by
// ceil(Len()/8) bytes of bits: bit i is bit i%8 (least significant first) of
// byte i/8, and the unused high bits of the last byte are zero. It fails only
// if Len() does not fit in 32 bits.
func (b *Bitmap) MarshalBinary() ([]byte, error) {
	if uint64(b.n) > math.MaxUint32 {
		return nil, fmt.Errorf("encode bitmap: length %d does not fit in 32 bits", b.n)
	}
	nbytes := (b.n + 7) / 8
	buf := make([]byte, bitmapHeaderLen+nbytes)
	binary.BigEndian.PutUint32(buf, uint32(b.n))
	out := buf[bitmapHeaderLen:]
	for i := range out {
		out[i] = byte(b.words[i/8] >> (8 * (uint(i) % 8)))
	}
	return buf, nil
}

// UnmarshalBinary decodes data, in the layout written by MarshalBinary, into
// b, replacing its length and bits. It rejects data whose byte count does not
// match the encoded length and data with bits set past that length; on error
// b is left unchanged.
func (b *Bitmap) UnmarshalBinary(data []byte) error {
	if len(data) < bitmapHeaderLen {
		return fmt.Errorf("decode bitmap: %d bytes, want at least %d", len(data), bitmapHeaderLen)
	}
	n := uint64(binary.BigEndian.Uint32(data))
	body := data[bitmapHeaderLen:]
	if want := (n + 7) / 8; uint64(len(body)) != want {
		return fmt.Errorf("decode bitmap: %d bits need %d bytes, got %d", n, want, len(body))
	}
	if r := n % 8; r != 0 && body[len(body)-1]>>r != 0 {
		return fmt.Errorf("decode bitmap: bits set past length %d", n)
	}
	if uint64(int(n)) != n {
		return fmt.Errorf("decode bitmap: length %d too large for this platform", n)
	}
	words := make([]uint64, (n+63)/64)
	for i, c := range body {
		words[i/8] |= uint64(c) << (8 * (uint(i) % 8))
	}
	b.n, b.words = int(n), words
	return nil
}

func (b *Bitmap) check(i int) {
	if i < 0 || i >= b.n {
		panic(fmt.Sprintf("store: bitmap index %d out of range [0,%d)", i, b.n))
	}
}
