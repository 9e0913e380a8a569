package transport

import (
	"bytes"
	"testing"
)

func TestParseSource(t *testing.T) {
	tests := []struct {
		raw      string
		wantAddr string // "" when the address must be rejected
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
		src, err := ParseSource(tt.raw)
		if tt.wantAddr == "" {
			if err == nil {
				t.Errorf("ParseSource(%q) = %v, want an error", tt.raw, src)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseSource(%q): %v", tt.raw, err)
			continue
		}
		if src.Addr != tt.wantAddr {
			t.Errorf("ParseSource(%q) = %#v, want an IDMSource for %s", tt.raw, src, tt.wantAddr)
			continue
		}
		if got, want := src.String(), "idm://"+tt.wantAddr; got != want {
			t.Errorf("ParseSource(%q).String() = %q, want %q", tt.raw, got, want)
		}
		// What String writes reads back to the same source.
		if again, err := ParseSource(src.String()); err != nil || again.String() != src.String() {
			t.Errorf("ParseSource(%q) = %v, %v; want %s", src.String(), again, err, src)
		}
	}
}

// TestIDMSource_Open reaches a real server through the Source interface.
func TestIDMSource_Open(t *testing.T) {
	path, data := randomFile(t, 10_000, 50)
	srv := startServer(t, path, nil)
	src, err := ParseSource("idm://" + addrOf(t, srv))
	if err != nil {
		t.Fatal(err)
	}
	st, err := src.Dial(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	m, err := st.Manifest(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	sameManifest(t, m, srv.Manifest)
	if err := st.Request(10, 20); err != nil {
		t.Fatal(err)
	}
	var got bytes.Buffer
	if err := st.ReceiveTo(&got, 20); err != nil || !bytes.Equal(got.Bytes(), data[10:30]) {
		t.Fatalf("ReceiveTo: %v", err)
	}
}
