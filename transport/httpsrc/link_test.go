package httpsrc

import (
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"
)

// The mirrors a Link header announces: rel=duplicate only, resolved, in
// their normal form, best pri first, http(s) only, the mirror itself and
// repeats left out, at most ten.
func TestDuplicates(t *testing.T) {
	base, _ := url.Parse("http://m1.example.org/pub/f.iso")
	tests := []struct {
		name  string
		links []string
		want  []string
	}{
		{"RFC 6249's example", []string{`<http://m2.example.org/f.iso>; rel=duplicate; pri=2; geo=de, <ftp://m3.example.org/f.iso>; rel=duplicate, <HTTPS://M4.example.org:443/f.iso>; rel="duplicate"; pri=1`},
			[]string{"https://m4.example.org/f.iso", "http://m2.example.org/f.iso"}},
		{"other relations", []string{`</f.iso.meta4>; rel=describedby; type="application/metalink4+xml"`, `<http://m2.example.org/f.iso>; rel="duplicate alternate"`},
			[]string{"http://m2.example.org/f.iso"}},
		{"relative, itself, repeated", []string{`</mirror/f.iso>; rel=duplicate, <http://m1.example.org/pub/f.iso>; rel=duplicate`, `</mirror/f.iso>; rel=duplicate`},
			[]string{"http://m1.example.org/mirror/f.iso"}},
		{"commas and semicolons in the target", []string{`<http://m2.example.org/a,b;c.iso>; rel=duplicate`}, []string{"http://m2.example.org/a,b;c.iso"}},
		{"unreadable", []string{`http://m2.example.org/f.iso; rel=duplicate`, `<http://m3.example.org/f.iso; rel=duplicate`, `<http://m4.example.org/f.iso>; rel="duplicate`},
			nil},
	}
	for _, tt := range tests {
		h := http.Header{"Link": tt.links}
		if got := duplicates(h, base); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s: %q, want %q", tt.name, got, tt.want)
		}
	}
	var many []string
	for i := range 30 {
		many = append(many, "<http://m"+strings.Repeat("x", i)+".example.org/f>; rel=duplicate")
	}
	if got := duplicates(http.Header{"Link": many}, base); len(got) != maxDuplicates {
		t.Errorf("%d links gave %d mirrors, want at most %d", len(many), len(got), maxDuplicates)
	}
}

func FuzzParseLinks(f *testing.F) {
	f.Add(`<http://m2.example.org/f.iso>; rel=duplicate; pri=2; geo=de, <ftp://x>; rel="duplicate"`)
	f.Add(`<a>;rel="x;y",<b>;;;rel=`)
	f.Fuzz(func(t *testing.T, v string) {
		base, _ := url.Parse("http://m1.example.org/f")
		for _, l := range parseLinks(v) {
			if strings.Contains(l.target, ">") {
				t.Fatalf("target %q holds a '>'", l.target)
			}
		}
		if got := duplicates(http.Header{"Link": {v}}, base); len(got) > maxDuplicates {
			t.Fatalf("%d mirrors", len(got))
		}
	})
}
