package ctl

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/idmproject/idm/daemon/api"
	"github.com/idmproject/idm/transport/addr"
)

// Fuzz targets for what idmctl reads: its command line and the daemon's
// answers. Run one with
//
//	go test -run '^$' -fuzz '^FuzzParseRate$' -fuzztime 60s ./ctl

// FuzzParseRate reads -limit and limit's RATE: a cap it accepts is 0 (no
// cap) or a positive byte rate, and what the flag shows reads back as the
// same cap.
func FuzzParseRate(f *testing.F) {
	for _, s := range []string{"0", "none", "OFF", " unlimited ", "10M", "5Mi", "1.5Gi", "512", "1e3K", "-1", "0.4", "NaN", "Inf", "9e18", "4611686018427387904", "", "M"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := parseRate(s)
		if err != nil {
			return
		}
		if v < 0 || v > 1<<62 {
			t.Fatalf("parseRate(%q) = %d", s, v)
		}
		var r rateFlag
		if err := r.Set(s); err != nil || int64(r) != v {
			t.Fatalf("-limit %q set %d (%v), parseRate says %d", s, r, err, v)
		}
		if again, err := parseRate(r.String()); err != nil || again != v {
			t.Fatalf("-limit %q shows as %q, which reads as %d (%v)", s, r.String(), again, err)
		}
	})
}

// FuzzParseInterval reads get's -i: an interval it accepts is positive.
func FuzzParseInterval(f *testing.F) {
	for _, s := range []string{"1", "0.5", "2s", "500ms", "0", "-1", "1e-12", "1e300", "NaN", "+Inf", "1h1m", "9223372036", ".", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := parseInterval(s)
		if err == nil && d <= 0 {
			t.Fatalf("parseInterval(%q) = %v", s, d)
		}
	})
}

// FuzzSourceArgs parses the sources of add and get from a command line
// (the fuzz string, its arguments separated by NUL): every source it
// accepts is a valid idm:// URL in normal form, once, and there is one
// per port and per URL given.
func FuzzSourceArgs(f *testing.F) {
	for _, args := range [][]string{
		{"-a", "127.0.0.1", "-p", "9001", "9002", "9003"},
		{"-p", "9001,9002", "-a", "::1", "-o", "x"},
		{"-a", "[::1]", "-p", "1", "idm://h:2", "--", "-p"},
		{"idm://127.0.0.1:9001", "idm://[::1]:9001/", "-o", "dir", "idm://127.0.0.1:9001"},
		{"-a", "host", "-p", "0", "65536", "x"},
		{"-a", "h:1", "-p", "5"},
		{"-p", "-", "-a"},
	} {
		f.Add(strings.Join(args, "\x00"))
	}
	f.Fuzz(func(t *testing.T, line string) {
		args := strings.Split(line, "\x00")
		fs := newFlagSet("add")
		fs.String("o", ".", "")
		var src sourceArgs
		src.register(fs)
		if err := parseInterleaved(fs, args, src.positional); err != nil {
			return
		}
		sources, err := src.list()
		if err != nil {
			return
		}
		if len(sources) != len(src.ports)+len(src.sources) {
			t.Fatalf("%q: %d sources from %d ports and %d URLs", args, len(sources), len(src.ports), len(src.sources))
		}
		seen := map[string]bool{}
		for _, s := range sources {
			p, err := addr.Parse(s)
			if err != nil || p.String() != s || seen[s] {
				t.Fatalf("%q gave source %q: %v, normal form %v, seen before %v", args, s, err, p, seen[s])
			}
			seen[s] = true
		}
	})
}

// FuzzRender decodes the fuzz bytes as the daemon's answer for a job, as
// the client does, and renders it as status, ls and watch do: whatever
// the daemon says, idmctl prints it without failing.
func FuzzRender(f *testing.F) {
	now := time.Date(2025, 3, 1, 12, 0, 5, 0, time.UTC)
	for _, j := range []api.Job{
		{ID: 3, Sources: []string{"idm://192.0.2.10:9001", "idm://192.0.2.10:9002"}, Dir: "/home/ann", Name: "video.mp4",
			Size: 268435456, Content: strings.Repeat("af", 32), State: api.StateDownloading, Limit: 1 << 20, Created: now, Updated: now,
			Progress: api.Progress{State: api.StateDownloading, Size: 268435456, Verified: 126877696, Speed: 13003366, Sources: []api.SourceProgress{
				{Source: "idm://192.0.2.10:9001", State: api.SourceUp, Verified: 84934656, Speed: 8669577},
				{Source: "idm://192.0.2.10:9002", State: api.SourceDown, Corrupt: 1, NextRetry: now.Add(4 * time.Second), LastError: "connect: refused"},
			}}},
		{ID: 1, State: api.StateFailed, LastError: "no usable source\nsecond line"},
		{ID: 2, Size: -5, Progress: api.Progress{Verified: 1 << 62, Speed: 1e-300}},
	} {
		b, err := json.Marshal(j)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"id":4,"size":1,"progress":{"speed":-1,"verified":-9223372036854775808}}`))
	f.Add([]byte(`{"progress":{"sources":[{}, {"state":"down","next_retry":"0001-01-01T00:00:01Z"}]},"sources":[]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var j api.Job
		if err := json.NewDecoder(bytes.NewReader(b)).Decode(&j); err != nil {
			return
		}
		var out bytes.Buffer
		if err := writeStatus(&out, &j, now); err != nil {
			t.Fatal(err)
		}
		out.WriteString(jobLine(&j))
		out.WriteString(strconv.FormatUint(j.ID, 10) + percentOf(j.Progress.Verified, j.Size) + sizeOrDash(j.Size) + speedOf(j.State, j.Progress.Speed) + jobName(&j) + timeLeft(&j))
		v := newLineView(&out)
		v.update(api.Event{Type: api.EventState, Job: j})
		if err := v.flush(); err != nil {
			t.Fatal(err)
		}
	})
}
