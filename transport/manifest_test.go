package transport

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/zeebo/blake3"
)

func TestDefaultSegmentSize(t *testing.T) {
	const (
		KiB = int64(1) << 10
		MiB = int64(1) << 20
		GiB = int64(1) << 30
	)
	tests := []struct {
		size int64
		want int64
	}{
		{0, 64 * KiB},
		{1, 64 * KiB},
		{64*64*KiB - 1, 64 * KiB},
		{64 * 64 * KiB, 64 * KiB},
		{64*128*KiB - 1, 64 * KiB},
		{64 * 128 * KiB, 128 * KiB},
		{100 * MiB, 1 * MiB},
		{64*4*MiB - 1, 2 * MiB},
		{64 * 4 * MiB, 4 * MiB},
		{1 << 40, 4 * MiB},
		{1 << 62, 4 * MiB},
	}
	for _, tt := range tests {
		if got := DefaultSegmentSize(tt.size); got != tt.want {
			t.Errorf("DefaultSegmentSize(%d) = %d, want %d", tt.size, got, tt.want)
		}
	}
}

// TestDefaultSegmentSize_Invariants checks the promises of the doc comment
// on sizes spread over the whole range, including every power of two and
// its neighbours.
func TestDefaultSegmentSize_Invariants(t *testing.T) {
	const minDefaultSegment, maxDefaultSegment = 64 << 10, 4 << 20
	var sizes []int64
	for shift := range 50 {
		p := int64(1) << shift
		sizes = append(sizes, p-1, p, p+1, 3*p)
	}
	for _, size := range sizes {
		seg := DefaultSegmentSize(size)
		if seg&(seg-1) != 0 {
			t.Errorf("size %d: segment size %d is not a power of two", size, seg)
		}
		if seg < minDefaultSegment || seg > maxDefaultSegment {
			t.Errorf("size %d: segment size %d outside 64 KiB..4 MiB", size, seg)
		}
		if size >= 64*minDefaultSegment && SegmentCount(size, seg) < 64 {
			t.Errorf("size %d: segment size %d gives %d segments, want at least 64", size, seg, SegmentCount(size, seg))
		}
		// The largest such power of two: doubling it would give too few
		// segments, unless it is already the cap.
		if seg < maxDefaultSegment && size/(2*seg) >= 64 {
			t.Errorf("size %d: segment size %d, but %d still gives 64 segments", size, seg, 2*seg)
		}
	}
}

func TestSegmentCount(t *testing.T) {
	tests := []struct{ size, seg, want int64 }{
		{0, 4096, 0},
		{1, 4096, 1},
		{4096, 4096, 1},
		{4097, 4096, 2},
		{3 * 4096, 4096, 3},
		{1 << 62, 64 << 20, 1 << 36},
	}
	for _, tt := range tests {
		if got := SegmentCount(tt.size, tt.seg); got != tt.want {
			t.Errorf("SegmentCount(%d, %d) = %d, want %d", tt.size, tt.seg, got, tt.want)
		}
	}
}

func TestManifest_Segment(t *testing.T) {
	m := &Manifest{Size: 10_000, SegmentSize: 4096}
	tests := []struct {
		i       int
		off, ln int64
	}{
		{0, 0, 4096},
		{1, 4096, 4096},
		{2, 8192, 10_000 - 8192},
	}
	for _, tt := range tests {
		if off, ln := m.Segment(tt.i); off != tt.off || ln != tt.ln {
			t.Errorf("Segment(%d) = %d+%d, want %d+%d", tt.i, off, ln, tt.off, tt.ln)
		}
	}
}

func TestHash_String_ParseHash(t *testing.T) {
	h := blake3.Sum256([]byte("idm"))
	s := Hash(h).String()
	if len(s) != 2*HashSize || strings.ToLower(s) != s {
		t.Fatalf("String() = %q, want %d lower-case hex digits", s, 2*HashSize)
	}
	got, err := ParseHash(s)
	if err != nil || got != h {
		t.Fatalf("ParseHash(%q) = %v, %v; want %v", s, got, err, Hash(h))
	}
	if got, err := ParseHash(strings.ToUpper(s)); err != nil || got != h {
		t.Errorf("ParseHash of upper case = %v, %v; want %v", got, err, Hash(h))
	}
	for _, bad := range []string{"", s[:62], s + "00", "zz" + s[2:], s[:63] + " "} {
		if _, err := ParseHash(bad); err == nil {
			t.Errorf("ParseHash(%q) succeeded", bad)
		}
	}
}

// testManifest returns a valid manifest of size bytes with distinct
// made-up hashes.
func testManifest(name string, size, segSize int64) *Manifest {
	m := &Manifest{
		Name:        name,
		Size:        size,
		ModTime:     time.Date(2024, 5, 17, 10, 11, 12, 131415, time.UTC),
		SegmentSize: segSize,
		Segments:    make([]Hash, SegmentCount(size, segSize)),
	}
	for i := range m.Segments {
		m.Segments[i] = blake3.Sum256([]byte{byte(i), byte(i >> 8), byte(i >> 16)})
	}
	m.Content = blake3.Sum256([]byte(name))
	return m
}

func TestManifest_MarshalBinary_RoundTrip(t *testing.T) {
	tests := []struct {
		name string
		m    *Manifest
	}{
		{"zero size", testManifest("empty", 0, 64<<10)},
		{"one byte", testManifest("one", 1, MinSegmentSize)},
		{"partial last segment", testManifest("partial.iso", 3*65536+17, 65536)},
		{"exact multiple of segment size", testManifest("exact.bin", 4*65536, 65536)},
		{"largest segment size", testManifest("big", 3*MaxSegmentSize, MaxSegmentSize)},
		{"longest name", testManifest(strings.Repeat("n", MaxNameLen), 10, MinSegmentSize)},
		{"non-ASCII name", testManifest("résumé 履歴書.pdf", 5000, MinSegmentSize)},
		{"time before 1970", func() *Manifest {
			m := testManifest("old", 5, MinSegmentSize)
			m.ModTime = time.Date(1901, 1, 1, 0, 0, 0, 1, time.UTC)
			return m
		}()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := tt.m.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			if want := manifestFixed + len(tt.m.Name) + len(tt.m.Segments)*HashSize; len(b) != want {
				t.Errorf("encoded in %d bytes, want %d", len(b), want)
			}
			var got Manifest
			if err := got.UnmarshalBinary(b); err != nil {
				t.Fatal(err)
			}
			sameManifest(t, &got, tt.m)
			again, err := got.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(again, b) {
				t.Error("decoding and encoding again changed the bytes")
			}
		})
	}
}

func TestManifest_Validate_Rejects(t *testing.T) {
	tests := []struct {
		name   string
		modify func(*Manifest)
	}{
		{"negative size", func(m *Manifest) { m.Size = -1 }},
		{"segment size below minimum", func(m *Manifest) { m.SegmentSize = MinSegmentSize - 1 }},
		{"segment size above maximum", func(m *Manifest) { m.SegmentSize = MaxSegmentSize + 1 }},
		{"empty name", func(m *Manifest) { m.Name = "" }},
		{"name too long", func(m *Manifest) { m.Name = strings.Repeat("x", MaxNameLen+1) }},
		{"one hash missing", func(m *Manifest) { m.Segments = m.Segments[1:] }},
		{"one hash too many", func(m *Manifest) { m.Segments = append(m.Segments, Hash{}) }},
		{"too many segments", func(m *Manifest) {
			m.Size = (MaxSegments + 1) * MinSegmentSize
			m.SegmentSize = MinSegmentSize
			m.Segments = make([]Hash, MaxSegments+1)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := testManifest("file", 3*MinSegmentSize+1, MinSegmentSize)
			tt.modify(m)
			if err := m.Validate(); err == nil {
				t.Error("Validate accepted it")
			}
			if _, err := m.MarshalBinary(); err == nil {
				t.Error("MarshalBinary encoded it")
			}
		})
	}
}

func TestManifest_UnmarshalBinary_Truncated(t *testing.T) {
	b, err := testManifest("partial.iso", 3*65536+17, 65536).MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	for n := range len(b) {
		var m Manifest
		if err := m.UnmarshalBinary(b[:n]); err == nil {
			t.Fatalf("decoded the first %d of %d bytes", n, len(b))
		}
	}
	var m Manifest
	if err := m.UnmarshalBinary(append(b, 0)); err == nil {
		t.Fatal("decoded a manifest with a trailing byte")
	}
}

// TestManifest_UnmarshalBinary_Rejects edits one field of a valid encoding
// at a time. Offsets are for a 4-byte name.
func TestManifest_UnmarshalBinary_Rejects(t *testing.T) {
	good, err := testManifest("name", 2*MinSegmentSize, MinSegmentSize).MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	const (
		nameLen = 0
		size    = 2 + 4
		segSize = size + 16
		count   = segSize + 4 + HashSize
	)
	put := func(off int, v ...byte) func([]byte) []byte {
		return func(b []byte) []byte { copy(b[off:], v); return b }
	}
	tests := []struct {
		name string
		edit func([]byte) []byte
	}{
		{"name length over limit", put(nameLen, 0x04, 0x01)},
		{"empty name", func(b []byte) []byte { return append([]byte{0, 0}, b[6:]...) }},
		{"size over 2^62", put(size, 0x40, 0, 0, 0, 0, 0, 0, 1)},
		{"size says one more segment", put(size, 0, 0, 0, 0, 0, 0, 0x20, 0x01)},
		{"size says one segment fewer", put(size, 0, 0, 0, 0, 0, 0, 0x10, 0x00)},
		{"segment size zero", put(segSize, 0, 0, 0, 0)},
		{"segment size below minimum", put(segSize, 0, 0, 0x0f, 0xff)},
		{"segment size above maximum", put(segSize, 0x04, 0, 0, 1)},
		{"count over limit", put(count, 0x00, 0x10, 0, 1)},
		{"count larger than hashes", put(count, 0, 0, 0, 3)},
		{"count smaller than hashes", put(count, 0, 0, 0, 1)},
		{"count huge", put(count, 0xff, 0xff, 0xff, 0xff)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := tt.edit(bytes.Clone(good))
			m := Manifest{Name: "untouched"}
			if err := m.UnmarshalBinary(b); err == nil {
				t.Fatal("decoded it")
			}
			if m.Name != "untouched" {
				t.Error("a failed decode changed the manifest")
			}
		})
	}
}

func TestBuildManifest(t *testing.T) {
	tests := []struct {
		name    string
		size    int
		segSize int64 // 0: the default
		wantSeg int64
	}{
		{"empty file", 0, 0, 64 << 10},
		{"one byte", 1, 0, 64 << 10},
		{"exactly one segment", 64 << 10, 0, 64 << 10},
		{"partial last segment", 3<<16 + 17, 0, 64 << 10},
		{"64 default segments", 64 * 64 << 10, 0, 64 << 10},
		{"128 KiB default segments", 64*128<<10 + 1000, 0, 128 << 10},
		{"override, power of two", 100_000, 4096, 4096},
		{"override, not a power of two", 100_000, 5000, 5000},
		{"override, exact multiple", 20_000, 5000, 5000},
		{"override larger than the file", 1000, 1 << 20, 1 << 20},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path, data := randomFile(t, tt.size, uint64(i))
			m, err := BuildManifest(path, tt.segSize)
			if err != nil {
				t.Fatal(err)
			}
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if m.Name != filepath.Base(path) || m.Size != int64(tt.size) || !m.ModTime.Equal(fi.ModTime()) {
				t.Errorf("Name, Size, ModTime = %q, %d, %v; want %q, %d, %v",
					m.Name, m.Size, m.ModTime, filepath.Base(path), tt.size, fi.ModTime())
			}
			if m.SegmentSize != tt.wantSeg {
				t.Errorf("SegmentSize = %d, want %d", m.SegmentSize, tt.wantSeg)
			}
			if m.Content != blake3.Sum256(data) {
				t.Error("Content is not the BLAKE3 hash of the whole file")
			}
			if want := SegmentCount(int64(tt.size), tt.wantSeg); int64(len(m.Segments)) != want {
				t.Fatalf("%d segment hashes, want %d", len(m.Segments), want)
			}
			for i := range m.Segments {
				off, n := m.Segment(i)
				if m.Segments[i] != blake3.Sum256(data[off:off+n]) {
					t.Errorf("segment %d (%d+%d): hash differs from BLAKE3 of its bytes", i, off, n)
				}
				if m.Segments[i] != SumSegment(data[off:off+n]) {
					t.Errorf("segment %d: hash differs from SumSegment", i)
				}
			}
			if err := m.Validate(); err != nil {
				t.Errorf("Validate: %v", err)
			}
		})
	}
}

func TestBuildManifest_Rejects(t *testing.T) {
	small := writeFile(t, "small", []byte("hello"))
	// A sparse file with one segment more than a manifest may list at the
	// smallest segment size; it must be refused before it is read.
	sparse := filepath.Join(t.TempDir(), "sparse")
	if err := os.WriteFile(sparse, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(sparse, (MaxSegments+1)*MinSegmentSize); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		path    string
		segSize int64
	}{
		{"segment size below minimum", small, MinSegmentSize - 1},
		{"segment size above maximum", small, MaxSegmentSize + 1},
		{"negative segment size", small, -4096},
		{"too many segments", sparse, MinSegmentSize},
		{"missing file", filepath.Join(t.TempDir(), "nothing"), 0},
		{"directory", t.TempDir(), 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if m, err := BuildManifest(tt.path, tt.segSize); err == nil {
				t.Fatalf("built a manifest with segment size %d", m.SegmentSize)
			}
		})
	}
}
