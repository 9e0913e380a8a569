package bytesize

import "testing"

func TestParse(t *testing.T) {
	tests := []struct {
		in   string
		want int64
	}{
		{"512", 512},
		{"1", 1},
		{"40M", 40e6},
		{"40k", 40e3},
		{"1.5K", 1500},
		{"2G", 2e9},
		{"1T", 1e12},
		{"20Mi", 20 << 20},
		{"1Ki", 1024},
		{"1.5Gi", 3 << 29},
		{"2Ti", 2 << 40},
		{"10MB/s", 10e6},
		{"10MiB/s", 10 << 20},
		{"512B", 512},
		{"4KiB", 4096},
		{" 40M ", 40e6},
		{"1e3", 1000},
		{"1.9", 1},
	}
	for _, tt := range tests {
		got, err := Parse(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("Parse(%q) = %d, %v; want %d", tt.in, got, err, tt.want)
		}
	}
}

func TestParse_Rejects(t *testing.T) {
	for _, in := range []string{
		"", " ", "0", "-1", "-1M", "0.5", "abc", "1X", "M", "Mi", "B", "B/s",
		"1 M", "1MM", "1m", "1Mib", "Inf", "NaN", "nanB/s", "1e30", "5Ei",
	} {
		if got, err := Parse(in); err == nil {
			t.Errorf("Parse(%q) = %d, want an error", in, got)
		}
	}
}

func TestFormat(t *testing.T) {
	tests := []struct {
		n    int64
		want string
	}{
		{0, "0 B"},
		{1, "1 B"},
		{1023, "1023 B"},
		{1024, "1.0 KiB"},
		{1536, "1.5 KiB"},
		{20 << 20, "20.0 MiB"},
		{3 << 29, "1.5 GiB"},
		{1 << 40, "1.0 TiB"},
		{1 << 50, "1.0 PiB"},
		{1 << 60, "1.0 EiB"},
		{1<<63 - 1, "8.0 EiB"},
	}
	for _, tt := range tests {
		if got := Format(tt.n); got != tt.want {
			t.Errorf("Format(%d) = %q, want %q", tt.n, got, tt.want)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"40M", "20Mi", "1.5K", "512", "10MB/s", "", "0", "-1", "abc", "1X", "NaN", "1e30"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := Parse(s)
		if err == nil && (n < 1 || n > 1<<62) {
			t.Fatalf("Parse(%q) = %d", s, n)
		}
	})
}
