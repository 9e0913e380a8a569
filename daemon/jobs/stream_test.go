package jobs

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/idmproject/idm/daemon/api"
)

// ignoringMirror is a server that ignores Range, as many servers of
// generated or proxied files do: every answer is a 200 with all of data,
// sent in chunks of 64 KiB a tick apart. With longer set, it writes its
// answers itself and sends more bytes than its Content-Length says; with
// flipAt set, its first answer has the byte there flipped, as a bad disk
// or link would.
type ignoringMirror struct {
	data   []byte
	tick   time.Duration
	longer bool
	flipAt int
	meta   string // a Metalink of the file, at its path plus .meta4

	requests atomic.Int64
}

func (m *ignoringMirror) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if m.meta != "" {
		if strings.HasSuffix(r.URL.Path, ".meta4") {
			w.Header().Set("Content-Type", "application/metalink4+xml")
			io.WriteString(w, m.meta)
			return
		}
		w.Header().Set("Link", "<"+r.URL.Path+`.meta4>; rel=describedby; type="application/metalink4+xml"`)
	}
	data := m.data
	if m.requests.Add(1) == 1 && m.flipAt > 0 {
		data = bytes.Clone(data)
		data[m.flipAt] ^= 0xff
	}
	if m.longer {
		c, bw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer c.Close()
		fmt.Fprintf(bw, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n", len(data))
		bw.Write(data)
		bw.WriteString("and then some bytes that are not the file's")
		bw.Flush()
		return
	}
	w.Header().Set("Content-Length", fmt.Sprint(len(data)))
	w.WriteHeader(http.StatusOK)
	const chunk = 64 << 10
	for off := 0; off < len(data); off += chunk {
		if _, err := w.Write(data[off:min(off+chunk, len(data))]); err != nil {
			return
		}
		w.(http.Flusher).Flush()
		if m.tick > 0 {
			select {
			case <-time.After(m.tick):
			case <-r.Context().Done():
				return
			}
		}
	}
}

// serveIgnoring starts m on a loopback port for the test.
func serveIgnoring(t *testing.T, m *ignoringMirror) *httptest.Server {
	t.Helper()
	s := httptest.NewServer(m)
	t.Cleanup(s.Close)
	return s
}

// A job whose only source ignores ranges is downloaded from it as one
// stream: the file is right and published under the URL's name, and the
// job says that its piece hashes are idmd's own.
func TestQueue_Mirrors_IgnoresRanges_Alone(t *testing.T) {
	_, data := testFile(t, 3<<20+5, 82)
	m := &ignoringMirror{data: data}
	srv := serveIgnoring(t, m)
	q := mirrorQueue(t)
	j, _, err := q.Create(context.Background(), api.CreateRequest{Sources: []string{srv.URL + "/release.iso"}, Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	j = finish(t, q, j.ID)
	sameFile(t, j.Path, data)
	if !j.OwnHashes || j.Name != "release.iso" {
		t.Errorf("own hashes %v, name %q; want idmd's own hashes, release.iso", j.OwnHashes, j.Name)
	}
	if s := j.Progress.Sources[0]; s.Verified != int64(len(data)) || s.Fetched != int64(len(data)) {
		t.Errorf("the mirror: %+v; want all %d bytes from it, once", s, len(data))
	}
	// Each of the job's connections described the file, and one of them
	// read it: the others stood aside.
	if n := m.requests.Load(); n > loneMirrorConns {
		t.Errorf("%d requests to the mirror, want at most one per connection", n)
	}
}

// A server that ignores ranges beside another source is refused for the
// job with its reason, and the other completes the job.
func TestQueue_Mirrors_IgnoresRanges_BesideOthers(t *testing.T) {
	path, data := testFile(t, 2<<20, 83)
	ignoring := serveIgnoring(t, &ignoringMirror{data: data})
	good := fileMirror(t, filepath.Dir(path), nil)
	q := mirrorQueue(t)
	j, _, err := q.Create(context.Background(), api.CreateRequest{Sources: []string{ignoring.URL + "/video.bin", good.URL + "/video.bin"}, Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	j = finish(t, q, j.ID)
	sameFile(t, j.Path, data)
	bad, other := j.Progress.Sources[0], j.Progress.Sources[1]
	if bad.State != api.SourceFailed || !strings.Contains(bad.LastError, "ignores ranges") || bad.Verified != 0 {
		t.Errorf("the mirror that ignores ranges: %+v; want failed, saying it ignores ranges", bad)
	}
	if other.Verified != int64(len(data)) {
		t.Errorf("the other mirror verified %d bytes, want all %d", other.Verified, len(data))
	}
}

// A checksum given with a streamed job is checked before the file is
// published: a wrong one fails the job, naming both digests, and no file
// appears under its name.
func TestQueue_Mirrors_IgnoresRanges_Checksum(t *testing.T) {
	_, data := testFile(t, 2<<20+9, 84)
	srv := serveIgnoring(t, &ignoringMirror{data: data})
	sum := sha256.Sum256(data)
	q := mirrorQueue(t)
	for _, tt := range []struct {
		name, checksum string
		ok             bool
	}{
		{"right", "sha-256=" + hex.EncodeToString(sum[:]), true},
		{"wrong", "sha-256=" + strings.Repeat("cd", 32), false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			out := t.TempDir()
			j, _, err := q.Create(context.Background(), api.CreateRequest{Sources: []string{srv.URL + "/video.bin"}, Dir: out, Checksum: tt.checksum})
			if err != nil {
				t.Fatal(err)
			}
			j = ended(t, q, j.ID)
			if tt.ok {
				if j.State != api.StateCompleted {
					t.Fatalf("job %s: %s", j.State, j.LastError)
				}
				sameFile(t, j.Path, data)
				return
			}
			if j.State != api.StateFailed || !strings.Contains(j.LastError, hex.EncodeToString(sum[:])) || !strings.Contains(j.LastError, strings.Repeat("cd", 32)) {
				t.Errorf("job %s, error %q; want failed naming both digests", j.State, j.LastError)
			}
			for _, n := range dirNames(t, out) {
				if n == "video.bin" {
					t.Error("the file was published under its name despite the wrong checksum")
				}
			}
		})
	}
}

// A server that sends more than the Content-Length it gives: what goes
// past the file's size is never read into it.
func TestQueue_Mirrors_IgnoresRanges_LongerBody(t *testing.T) {
	_, data := testFile(t, 1<<20+3, 85)
	srv := serveIgnoring(t, &ignoringMirror{data: data, longer: true})
	q := mirrorQueue(t)
	j, _, err := q.Create(context.Background(), api.CreateRequest{Sources: []string{srv.URL + "/video.bin"}, Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	j = finish(t, q, j.ID)
	sameFile(t, j.Path, data)
}

// A streamed job whose daemon stops half way goes on when it starts
// again: the stream starts from the first byte, and no verified byte is
// lost.
func TestQueue_Mirrors_IgnoresRanges_Restart(t *testing.T) {
	_, data := testFile(t, 4<<20, 86)
	m := &ignoringMirror{data: data, tick: 5 * time.Millisecond}
	srv := serveIgnoring(t, m)
	state := t.TempDir()
	cfg := Config{StateDir: state, Logger: quietLog(), FlushInterval: 20 * time.Millisecond, StallTimeout: 5 * time.Second}
	q, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	j, _, err := q.Create(context.Background(), api.CreateRequest{Sources: []string{srv.URL + "/video.bin"}, Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a third verified", time.Minute, func() bool {
		j, _ = q.Job(j.ID)
		return j.Progress.Verified >= int64(len(data))/3
	})
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	q, err = Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	before, _ := q.Job(j.ID)
	if before.Progress.Verified < int64(len(data))/3 {
		t.Fatalf("%d bytes verified after the restart, want at least the third there was", before.Progress.Verified)
	}
	j = finish(t, q, j.ID)
	sameFile(t, j.Path, data)
	if n := m.requests.Load(); n < 2 {
		t.Errorf("%d requests to the mirror, want the stream asked for again", n)
	}
}

// A Metalink whose only mirror ignores ranges: the stream is checked
// against the Metalink's piece hashes, a piece the mirror corrupts is
// caught, and the next stream brings it right.
func TestQueue_Metalink_IgnoresRanges(t *testing.T) {
	const pieceLen = 256 << 10
	_, data := testFile(t, 2<<20+11, 87)
	m := &ignoringMirror{data: data, flipAt: 3*pieceLen + 7}
	srv := serveIgnoring(t, m)
	q := mirrorQueue(t)
	js, _, err := q.CreateMetalink(context.Background(), api.MetalinkRequest{Document: meta4("release.iso", data, pieceLen, srv.URL+"/video.bin"), Dir: t.TempDir(),
		// One connection: the answer it streams is the mirror's first.
		Connections: 1})
	if err != nil {
		t.Fatal(err)
	}
	j := finish(t, q, js[0].ID)
	sameFile(t, j.Path, data)
	if s := j.Progress.Sources[0]; j.OwnHashes || s.Corrupt != 1 || s.Verified != int64(len(data)) {
		t.Errorf("own hashes %v, the mirror %+v; want the Metalink's pieces, the bad one caught once", j.OwnHashes, s)
	}
}

// A lone server that ignores ranges but points to its file's Metalink
// (Link: rel=describedby): the stream is checked against the Metalink's
// piece hashes, and a piece it corrupts is caught.
func TestQueue_Mirrors_IgnoresRanges_DescribedByMetalink(t *testing.T) {
	const pieceLen = 256 << 10
	_, data := testFile(t, 2<<20+13, 88)
	// The Metalink's mirrors are not read, only its pieces: one it names
	// need not be this one.
	m := &ignoringMirror{data: data, flipAt: 5*pieceLen + 1, meta: meta4("video.bin", data, pieceLen, "http://127.0.0.1:1/video.bin")}
	srv := serveIgnoring(t, m)
	q := mirrorQueue(t)
	j, _, err := q.Create(context.Background(), api.CreateRequest{Sources: []string{srv.URL + "/video.bin"}, Dir: t.TempDir(),
		Connections: 1})
	if err != nil {
		t.Fatal(err)
	}
	j = finish(t, q, j.ID)
	sameFile(t, j.Path, data)
	if s := j.Progress.Sources[0]; j.OwnHashes || s.Corrupt != 1 {
		t.Errorf("own hashes %v, the mirror %+v; want the Metalink's pieces, the bad one caught", j.OwnHashes, s)
	}
}
