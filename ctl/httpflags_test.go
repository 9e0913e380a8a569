package ctl

import (
	"strings"
	"testing"
)

// ~/.netrc's credentials go into the http(s) sources of their machines,
// the default entry's into the others; a source with its own keeps them,
// and idm servers are left alone.
func TestNetrc(t *testing.T) {
	logins := parseNetrc(strings.NewReader(`machine mirror.example.org login ann password s3cret
macdef init
cd /pub
get file

machine Other.Example.org
  login bob
  password "pw"
default login anonymous password ann@example.org
`))
	for _, tt := range []struct{ in, want string }{
		{"https://mirror.example.org/f.iso", "https://ann:s3cret@mirror.example.org/f.iso"},
		{"http://other.example.org:8080/f", "http://bob:%22pw%22@other.example.org:8080/f"},
		{"https://elsewhere.example.net/f", "https://anonymous:ann%40example.org@elsewhere.example.net/f"},
		{"https://kept:own@mirror.example.org/f", "https://kept:own@mirror.example.org/f"},
		{"idm://mirror.example.org:9001", "idm://mirror.example.org:9001"},
	} {
		if got := withLogin(tt.in, logins); got != tt.want {
			t.Errorf("withLogin(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	if _, ok := logins["cd"]; ok {
		t.Error("a macdef's body was read as entries")
	}
}

// A Metalink is named by its extension, a file's or an http(s) URL's path.
func TestIsMetalink(t *testing.T) {
	for arg, want := range map[string]bool{
		"release.meta4": true, "dir/X.METALINK": true, "https://m.example.org/pub/f.iso.meta4?sig=1": true,
		"http://m.example.org/f.meta4#top": true, "http://m.example.org/f.iso": false, "http://m.example.org/?x=.meta4": false,
		"ftp://m.example.org/f.meta4": false, "idm://127.0.0.1:9001": false, "release.iso": false,
	} {
		if got := isMetalink(arg); got != want {
			t.Errorf("isMetalink(%q) = %v, want %v", arg, got, want)
		}
	}
}
