package store

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"testing"
)

var bitmapLengths = []int{0, 1, 7, 8, 9, 63, 64, 65, 127, 128, 1000}

func TestNewBitmap(t *testing.T) {
	for _, n := range bitmapLengths {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			b := NewBitmap(n)
			if b.Len() != n {
				t.Errorf("Len() = %d, want %d", b.Len(), n)
			}
			if b.Count() != 0 {
				t.Errorf("Count() = %d, want 0", b.Count())
			}
			if got, want := b.Complete(), n == 0; got != want {
				t.Errorf("Complete() = %v, want %v", got, want)
			}
			want := 0
			if n == 0 {
				want = -1
			}
			if got := b.NextClear(0); got != want {
				t.Errorf("NextClear(0) = %d, want %d", got, want)
			}
		})
	}
}

func TestNewBitmap_Negative(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("NewBitmap(-1) did not panic")
		}
	}()
	NewBitmap(-1)
}

func TestBitmap_SetClearHas(t *testing.T) {
	for _, n := range bitmapLengths {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			b := NewBitmap(n)
			// Set every third bit, then check every bit.
			for i := 0; i < n; i += 3 {
				b.Set(i)
				b.Set(i) // setting twice is harmless
			}
			want := 0
			for i := range n {
				if got := b.Has(i); got != (i%3 == 0) {
					t.Fatalf("Has(%d) = %v after setting every third bit", i, got)
				}
				if i%3 == 0 {
					want++
				}
			}
			if b.Count() != want {
				t.Errorf("Count() = %d, want %d", b.Count(), want)
			}
			for i := range n {
				b.Set(i)
			}
			if !b.Complete() || b.Count() != n || b.NextClear(0) != -1 {
				t.Errorf("all set: Complete() = %v, Count() = %d, NextClear(0) = %d", b.Complete(), b.Count(), b.NextClear(0))
			}
			if n == 0 {
				return
			}
			b.Clear(n - 1)
			b.Clear(n - 1)
			if b.Complete() || b.Has(n-1) || b.Count() != n-1 || b.NextClear(0) != n-1 {
				t.Errorf("last cleared: Complete() = %v, Has = %v, Count() = %d, NextClear(0) = %d",
					b.Complete(), b.Has(n-1), b.Count(), b.NextClear(0))
			}
		})
	}
}

func TestBitmap_OutOfRange(t *testing.T) {
	for _, n := range []int{0, 1, 64, 65} {
		b := NewBitmap(n)
		for _, i := range []int{-1, n, n + 1, 64 * 2} {
			for name, f := range map[string]func(int){
				"Set":   b.Set,
				"Clear": b.Clear,
				"Has":   func(i int) { b.Has(i) },
			} {
				func() {
					defer func() {
						if recover() == nil {
							t.Errorf("Len %d: %s(%d) did not panic", n, name, i)
						}
					}()
					f(i)
				}()
			}
		}
	}
}

func TestBitmap_NextClear(t *testing.T) {
	tests := []struct {
		n    int
		set  []int
		from int
		want int
	}{
		{n: 0, from: 0, want: -1},
		{n: 1, from: 0, want: 0},
		{n: 1, from: 1, want: -1},
		{n: 1, set: []int{0}, from: 0, want: -1},
		{n: 10, from: -5, want: 0},
		{n: 10, from: 3, want: 3},
		{n: 10, set: []int{3, 4}, from: 3, want: 5},
		{n: 10, set: []int{0, 1, 2}, from: 1, want: 3},
		{n: 63, set: span(0, 62), from: 0, want: 62},
		{n: 63, set: span(0, 63), from: 0, want: -1},
		{n: 64, set: span(0, 64), from: 0, want: -1},
		{n: 64, set: span(0, 63), from: 10, want: 63},
		{n: 65, set: span(0, 64), from: 0, want: 64},
		{n: 65, set: span(0, 65), from: 0, want: -1},
		{n: 65, set: span(0, 65), from: 100, want: -1},
		{n: 1000, set: span(0, 999), from: 0, want: 999},
		{n: 1000, set: span(100, 900), from: 100, want: 900},
		{n: 1000, set: span(100, 900), from: 99, want: 99},
		{n: 1000, from: 999, want: 999},
		{n: 1000, from: 1000, want: -1},
	}
	for _, tt := range tests {
		b := NewBitmap(tt.n)
		for _, i := range tt.set {
			b.Set(i)
		}
		if got := b.NextClear(tt.from); got != tt.want {
			t.Errorf("Len %d with %d set: NextClear(%d) = %d, want %d", tt.n, len(tt.set), tt.from, got, tt.want)
		}
	}
}

// span returns the integers in [from, to).
func span(from, to int) []int {
	var s []int
	for i := from; i < to; i++ {
		s = append(s, i)
	}
	return s
}

func TestBitmap_Clone(t *testing.T) {
	b := NewBitmap(100)
	b.Set(5)
	c := b.Clone()
	c.Set(6)
	b.Clear(5)
	if !c.Has(5) || !c.Has(6) || b.Has(6) || b.Count() != 0 {
		t.Errorf("clone shares bits with the original")
	}
	if c.Len() != 100 {
		t.Errorf("clone Len() = %d, want 100", c.Len())
	}
}

func TestBitmap_MarshalBinary_RoundTrip(t *testing.T) {
	patterns := map[string]func(i int) bool{
		"none":  func(int) bool { return false },
		"all":   func(int) bool { return true },
		"odd":   func(i int) bool { return i%2 == 1 },
		"first": func(i int) bool { return i == 0 },
		"sevens": func(i int) bool {
			return i%7 == 0
		},
	}
	for _, n := range bitmapLengths {
		for name, p := range patterns {
			t.Run(fmt.Sprintf("%d/%s", n, name), func(t *testing.T) {
				b := NewBitmap(n)
				for i := range n {
					if p(i) {
						b.Set(i)
					}
				}
				data, err := b.MarshalBinary()
				if err != nil {
					t.Fatal(err)
				}
				if want := 4 + (n+7)/8; len(data) != want {
					t.Fatalf("encoded %d bits in %d bytes, want %d", n, len(data), want)
				}
				got := NewBitmap(3)
				got.Set(2)
				if err := got.UnmarshalBinary(data); err != nil {
					t.Fatal(err)
				}
				if got.Len() != n {
					t.Fatalf("decoded Len() = %d, want %d", got.Len(), n)
				}
				for i := range n {
					if got.Has(i) != b.Has(i) {
						t.Fatalf("decoded bit %d = %v, want %v", i, got.Has(i), b.Has(i))
					}
				}
				again, _ := got.MarshalBinary()
				if !bytes.Equal(again, data) {
					t.Errorf("re-encoded %x, want %x", again, data)
				}
			})
		}
	}
}

// TestBitmap_MarshalBinary_Layout pins the documented layout.
func TestBitmap_MarshalBinary_Layout(t *testing.T) {
	b := NewBitmap(12)
	b.Set(0)
	b.Set(9)
	b.Set(11)
	data, _ := b.MarshalBinary()
	if got, want := hex.EncodeToString(data), "0000000c"+"01"+"0a"; got != want {
		t.Errorf("encoded %s, want %s", got, want)
	}
}

func TestBitmap_UnmarshalBinary_Malformed(t *testing.T) {
	tests := []struct {
		name string
		hex  string
	}{
		{"empty", ""},
		{"short header", "000000"},
		{"zero length with body", "0000000000"},
		{"missing byte", "00000009" + "ff"},
		{"trailing byte", "00000008" + "ff" + "00"},
		{"stray bit past length", "00000007" + "80"},
		{"stray bit past length 9", "00000009" + "ff" + "02"},
		{"huge length", "ffffffff" + "00"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data, err := hex.DecodeString(tt.hex)
			if err != nil {
				t.Fatal(err)
			}
			b := NewBitmap(2)
			b.Set(1)
			if err := b.UnmarshalBinary(data); err == nil {
				t.Fatalf("UnmarshalBinary(%s) succeeded with Len() = %d", tt.hex, b.Len())
			}
			if b.Len() != 2 || !b.Has(1) {
				t.Errorf("failed UnmarshalBinary changed the bitmap")
			}
		})
	}
}

func FuzzBitmap_UnmarshalBinary(f *testing.F) {
	for _, n := range bitmapLengths {
		b := NewBitmap(n)
		for i := 0; i < n; i += 5 {
			b.Set(i)
		}
		data, _ := b.MarshalBinary()
		f.Add(data)
	}
	f.Add([]byte{})
	f.Add([]byte{0, 0, 0, 7, 0x80})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, data []byte) {
		var b Bitmap
		if err := b.UnmarshalBinary(data); err != nil {
			return
		}
		if b.Count() > b.Len() || (b.NextClear(0) == -1) != b.Complete() {
			t.Fatalf("inconsistent bitmap: Len %d, Count %d, NextClear(0) %d", b.Len(), b.Count(), b.NextClear(0))
		}
		again, err := b.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(again, data) {
			t.Fatalf("decoded %x, re-encoded %x", data, again)
		}
	})
}
