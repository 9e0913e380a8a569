package addr

import (
	"strings"
	"testing"
)

// TestParse_IDM reads idm server addresses.
func TestParse_IDM(t *testing.T) {
	tests := []struct {
		raw      string
		wantAddr string // host:port, or "" when the address must be rejected
	}{
		{"idm://127.0.0.1:9001", "127.0.0.1:9001"},
		{"idm://[::1]:9001", "[::1]:9001"},
		{"idm://host:9001/", "host:9001"},
		{"idm://mirror.example.org:1", "mirror.example.org:1"},
		{"idm://host:65535", "host:65535"},
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
		if src.Scheme != IDM || src.Redacted() != src.String() {
			t.Errorf("Parse(%q) = %#v, want an idm address with no secret", tt.raw, src)
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

// TestParse_HTTP reads mirror URLs into one normal form, keeping what the
// server needs (path, query, credentials) and dropping what it never sees.
func TestParse_HTTP(t *testing.T) {
	tests := []struct {
		raw, want, host, redacted string
	}{
		{"http://example.org/f.iso", "http://example.org/f.iso", "example.org", ""},
		{"HTTP://Example.ORG:80/f.iso", "http://example.org/f.iso", "example.org", ""},
		{"https://example.org:443/a/b%2Fc.iso", "https://example.org/a/b%2Fc.iso", "example.org", ""},
		{"https://example.org:8443", "https://example.org:8443/", "example.org:8443", ""},
		{"http://example.org:443/x", "http://example.org:443/x", "example.org:443", ""},
		{"http://[::1]:8080/x#frag", "http://[::1]:8080/x", "[::1]:8080", ""},
		{"http://127.0.0.1/x?a=1&b", "http://127.0.0.1/x?a=1&b", "127.0.0.1", "http://127.0.0.1/x?a=xxxxx&b"},
		{"https://u:secret@example.org/x", "https://u:secret@example.org/x", "example.org", "https://u:xxxxx@example.org/x"},
		{"https://cdn.example.org/f?X-Amz-Signature=abc123&X-Amz-Expires=60", "https://cdn.example.org/f?X-Amz-Signature=abc123&X-Amz-Expires=60", "cdn.example.org",
			"https://cdn.example.org/f?X-Amz-Signature=xxxxx&X-Amz-Expires=xxxxx"},
	}
	for _, tt := range tests {
		a, err := Parse(tt.raw)
		if err != nil {
			t.Errorf("Parse(%q): %v", tt.raw, err)
			continue
		}
		if a.String() != tt.want || a.Host != tt.host {
			t.Errorf("Parse(%q) = %q on %q, want %q on %q", tt.raw, a, a.Host, tt.want, tt.host)
		}
		want := tt.redacted
		if want == "" {
			want = tt.want
		}
		if got := a.Redacted(); got != want {
			t.Errorf("Parse(%q).Redacted() = %q, want %q", tt.raw, got, want)
		}
		if again, err := Parse(a.String()); err != nil || again != a {
			t.Errorf("Parse(%q) = %#v, %v; want %#v", a.String(), again, err, a)
		}
	}
}

// TestParse_Refused: every refusal is one line that names the address
// and never shows its secrets.
func TestParse_Refused(t *testing.T) {
	for _, raw := range []string{
		"ftp://example.org/f", "file:///etc/passwd", "http:example.org/f", "http:///f",
		"http://:80/f", "http://example.org:0/f", "http://example.org:99999/f", "http://example.org:/f",
		"http://exa mple.org/f", "https://u:secret@[::1/x?token=secret", "http://example.org/" + strings.Repeat("a", MaxLen),
		"mailto:u@example.org", "example.org/f",
	} {
		a, err := Parse(raw)
		if err == nil {
			t.Errorf("Parse(%q) = %v, want an error", raw, a)
			continue
		}
		msg := err.Error()
		if strings.Contains(msg, "secret") || strings.Contains(msg, "\n") || len(msg) > 200 {
			t.Errorf("Parse(%q): error %q shows a secret or is not one short line", raw, msg)
		}
	}
}

// WithLogin puts credentials into an http(s) address that has none; an
// address with its own keeps them, and an idm server's is left alone.
func TestWithLogin(t *testing.T) {
	for _, tt := range []struct{ in, user, pass, want string }{
		{"https://m.example/f?x=1", "ann", "p@ss word", "https://ann:p%40ss%20word@m.example/f?x=1"},
		{"http://m.example:8080/f", "bob", "", "http://bob:@m.example:8080/f"},
		{"https://own:pw@m.example/f", "ann", "x", "https://own:pw@m.example/f"},
		{"https://m.example/f", "", "x", "https://m.example/f"},
		{"idm://m.example:9001", "ann", "x", "idm://m.example:9001"},
	} {
		if got := WithLogin(tt.in, tt.user, tt.pass); got != tt.want {
			t.Errorf("WithLogin(%q, %q, %q) = %q, want %q", tt.in, tt.user, tt.pass, got, tt.want)
		}
	}
}
