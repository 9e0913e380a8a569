package httpsrc

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/idmproject/idm/identity"
)

func TestParseContentRange(t *testing.T) {
	tests := []struct {
		in   string
		want contentRange
		ok   bool
	}{
		{"bytes 0-0/1", contentRange{0, 0, 1}, true},
		{"bytes 10-19/100", contentRange{10, 19, 100}, true},
		{"Bytes 10-19/100", contentRange{10, 19, 100}, true},
		{"bytes 10-19/*", contentRange{10, 19, -1}, true},
		{"bytes */0", contentRange{-1, -1, 0}, true},
		{"bytes */100", contentRange{-1, -1, 100}, true},
		{"bytes */*", contentRange{}, false},
		{"bytes 10-19/19", contentRange{}, false}, // past the end
		{"bytes 19-10/100", contentRange{}, false},
		{"bytes +1-2/100", contentRange{}, false},
		{"bytes -1-2/100", contentRange{}, false},
		{"bytes 1 -2/100", contentRange{}, false},
		{"bytes 1-2/ 100", contentRange{}, false},
		{"bytes 1-2", contentRange{}, false},
		{"bytes 1-/100", contentRange{}, false},
		{"items 1-2/100", contentRange{}, false},
		{"bytes 0-0/99999999999999999999", contentRange{}, false}, // overflows
		{"", contentRange{}, false},
	}
	for _, tt := range tests {
		got, ok := parseContentRange(tt.in)
		if ok != tt.ok || (ok && got != tt.want) {
			t.Errorf("parseContentRange(%q) = %+v, %v; want %+v, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

func FuzzParseContentRange(f *testing.F) {
	for _, s := range []string{"bytes 0-0/1", "bytes */0", "bytes 5-9/*", "bytes 1-2/3", "bytes 9223372036854775806-9223372036854775806/9223372036854775807"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, ok := parseContentRange(s)
		if !ok {
			return
		}
		if (r.first < 0) != (r.last < 0) || r.last < r.first || (r.size >= 0 && r.last >= r.size) || (r.first < 0 && r.size < 0) {
			t.Fatalf("%q read as impossible %+v", s, r)
		}
		back, ok := parseContentRange(r.String())
		if !ok || back != r {
			t.Fatalf("%q read as %+v, written %q, read back as %+v, %v", s, r, r.String(), back, ok)
		}
	})
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Duration
	}{
		{"", 0},
		{"0", 0},
		{"120", 2 * time.Minute},
		{"99999999999999999", maxRetryAfter},
		{"-5", 0},
		{"1.5", 0},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{now.Add(-time.Hour).Format(http.TimeFormat), 0},
		{now.Add(100 * 24 * time.Hour).Format(http.TimeFormat), maxRetryAfter},
		{"tomorrow", 0},
	}
	for _, tt := range tests {
		if got := retryAfter(tt.in, now); got != tt.want {
			t.Errorf("retryAfter(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

// formatDigests writes ds as Repr-Digest and as Digest write them.
func formatDigests(ds []identity.Digest) (repr, legacy string) {
	var r, l []string
	for _, d := range ds {
		name := map[identity.Algo]string{identity.SHA256: "sha-256", identity.SHA1: "sha"}[d.Algo]
		r = append(r, fmt.Sprintf("%s=:%s:", name, base64.StdEncoding.EncodeToString(d.Sum)))
		l = append(l, fmt.Sprintf("%s=%s", strings.ToUpper(name), base64.StdEncoding.EncodeToString(d.Sum)))
	}
	return strings.Join(r, ", "), strings.Join(l, ",")
}

func sameDigests(a, b []identity.Digest) bool {
	return slices.EqualFunc(a, b, func(x, y identity.Digest) bool { return x.Algo == y.Algo && string(x.Sum) == string(y.Sum) })
}

func FuzzDigestHeaders(f *testing.F) {
	f.Add("sha-256=:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=:", "SHA=2jmj7l5rSw0yVb/vlWAYkK/YBwk=")
	f.Add("sha-256=:!!:, sha-512=:AAAA:;p=1", "SHA-256")
	f.Add("", "MD5=AAAA, SHA-256=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU")
	f.Fuzz(func(t *testing.T, repr, legacy string) {
		ds := digests(http.Header{"Repr-Digest": {repr}, "Digest": {legacy}})
		seen := map[identity.Algo]bool{}
		for _, d := range ds {
			if len(d.Sum) != d.Algo.Size() || d.Algo.Size() == 0 || seen[d.Algo] {
				t.Fatalf("%q, %q read as %v", repr, legacy, ds)
			}
			seen[d.Algo] = true
		}
		r, l := formatDigests(ds)
		for _, h := range []http.Header{{"Repr-Digest": {r}}, {"Digest": {l}}} {
			if back := digests(h); !sameDigests(back, ds) {
				t.Fatalf("%v written as %v read back as %v", ds, h, back)
			}
		}
	})
}
