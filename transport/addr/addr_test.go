package addr

import "testing"

func TestParse(t *testing.T) {
	tests := []struct {
		raw      string
		wantAddr string // host:port, or "" when the address must be rejected
	}{
		{"idm://127.0.0.1:9001", "127.0.0.1:9001"},
		{"idm://[::1]:9001", "[::1]:9001"},
		{"idm://host:9001/", "host:9001"},
		{"idm://mirror.example.org:1", "mirror.example.org:1"},
		{"idm://host:65535", "host:65535"},
		{"http://127.0.0.1:9001", ""},
		{"https://host:9001/", ""},
		{"127.0.0.1:9001", ""},
		{"", ""},
		{"idm://host", ""},
		{"idm://host:", ""},
		{"idm://:9001", ""},
		{"idm://host:0", ""},
		{"idm://host:70000", ""},
		{"idm://host:-1", ""},
		{"idm://host:port", ""},
		{"idm://::1:9001", ""},
		{"idm://user@host:1", ""},
		{"idm://user:pw@host:1", ""},
		{"idm://host:1/path", ""},
		{"idm://host:1?x=1", ""},
		{"idm://host:1#top", ""},
	}
	for _, tt := range tests {
		src, err := Parse(tt.raw)
		if tt.wantAddr == "" {
			if err == nil {
				t.Errorf("Parse(%q) = %v, want an error", tt.raw, src)
			}
			continue
		}
		if err != nil {
			t.Errorf("Parse(%q): %v", tt.raw, err)
			continue
		}
		if src.Host != tt.wantAddr {
			t.Errorf("Parse(%q) = %#v, want the host %s", tt.raw, src, tt.wantAddr)
			continue
		}
		if got, want := src.String(), "idm://"+tt.wantAddr; got != want {
			t.Errorf("Parse(%q).String() = %q, want %q", tt.raw, got, want)
		}
		// What String writes reads back to the same source.
		if again, err := Parse(src.String()); err != nil || again.String() != src.String() {
			t.Errorf("Parse(%q) = %v, %v; want %s", src.String(), again, err, src)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"idm://127.0.0.1:9001", "idm://[::1]:9001", "idm://host:9001/", "http://x", "idm://host:0", "idm://u@h:1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a, err := Parse(s)
		if err != nil {
			return
		}
		// An address reads back from its own String as the same address.
		again, err := Parse(a.String())
		if err != nil || again != a {
			t.Fatalf("Parse(%q) = %s, which reads back as %v, %v", s, a, again, err)
		}
	})
}
