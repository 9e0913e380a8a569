package jobs

import (
	"bytes"
	"context"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	stdlog "log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/idmproject/idm/daemon/api"
	"github.com/idmproject/idm/internal/nginxtest"
	"github.com/idmproject/idm/internal/proctest"
)

// mirrorQueue opens a queue in a new state directory for the mirror
// tests.
func mirrorQueue(t *testing.T) *Queue {
	t.Helper()
	q, err := Open(Config{StateDir: t.TempDir(), Logger: quietLog(), FlushInterval: 50 * time.Millisecond,
		StallTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	return q
}

// ended waits for job id to end, however it ends, and returns it.
func ended(t *testing.T, q *Queue, id uint64) api.Job {
	t.Helper()
	var j api.Job
	waitFor(t, "the job to end", 2*time.Minute, func() bool {
		j, _ = q.Job(id)
		return j.Done()
	})
	return j
}

// finish waits for job id to end and returns it; it must have completed.
func finish(t *testing.T, q *Queue, id uint64) api.Job {
	t.Helper()
	j := ended(t, q, id)
	if j.State != api.StateCompleted {
		t.Fatalf("job %d ended %s: %s", id, j.State, j.LastError)
	}
	return j
}

// sameFile fails the test unless path holds want.
func sameFile(t *testing.T, path string, want []byte) {
	t.Helper()
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s: %d bytes that differ from the %d of the source's file", path, len(got), len(want))
	}
}

// One file from two real nginx mirrors and an idm server, in one job: the
// idm server's published piece hashes verify what the mirrors deliver,
// and each mirror delivers its share.
func TestQueue_Mirrors_WithIDMServer(t *testing.T) {
	path, data := testFile(t, 8<<20, 61)
	ng := nginxtest.Start(t, filepath.Dir(path), `location /b/ { alias `+filepath.Dir(path)+`/; }`)
	srv := startServers(t, path, 256<<10, 2e6) // slow: the mirrors must do most
	q := mirrorQueue(t)
	name := filepath.Base(path)
	sources := append([]string{ng.URL + "/" + name, ng.URL + "/b/" + name}, serverSources(srv...)...)
	j, _, err := q.Create(context.Background(), api.CreateRequest{Sources: sources, Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	j = finish(t, q, j.ID)
	sameFile(t, j.Path, data)
	if j.OwnHashes || j.Content == "" {
		t.Errorf("own hashes %v, content %q: want the idm server's published identity", j.OwnHashes, j.Content)
	}
	for _, s := range j.Progress.Sources[:2] {
		if s.Verified == 0 {
			t.Errorf("mirror %s delivered no verified byte: %+v", s.Source, s)
		}
	}
}

// A job of HTTP mirrors alone: nobody publishes piece hashes, so idmd
// hashes the pieces as they come and says so.
func TestQueue_Mirrors_Alone(t *testing.T) {
	path, data := testFile(t, 5<<20+123, 62)
	ng := nginxtest.Start(t, filepath.Dir(path), `location /b/ { alias `+filepath.Dir(path)+`/; }`)
	q := mirrorQueue(t)
	name := filepath.Base(path)
	j, _, err := q.Create(context.Background(), api.CreateRequest{Sources: []string{ng.URL + "/" + name, ng.URL + "/b/" + name}, Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	j = finish(t, q, j.ID)
	sameFile(t, j.Path, data)
	if !j.OwnHashes {
		t.Error("a job of plain HTTP mirrors does not say its hashes are idmd's own")
	}
	if j.Name != name {
		t.Errorf("name %q, want the URL's %q", j.Name, name)
	}
}

// A mirror that holds another file (another size) is rejected with its
// reason, and the job goes on with the others.
func TestQueue_Mirrors_OtherFileRejected(t *testing.T) {
	path, data := testFile(t, 3<<20, 63)
	other := filepath.Join(filepath.Dir(path), "other.bin")
	if err := os.WriteFile(other, data[:len(data)-1], 0o644); err != nil {
		t.Fatal(err)
	}
	srv := startServers(t, path, 256<<10, 0)
	ng := nginxtest.Start(t, filepath.Dir(path), "")
	q := mirrorQueue(t)
	sources := append(serverSources(srv...), ng.URL+"/other.bin")
	j, _, err := q.Create(context.Background(), api.CreateRequest{Sources: sources, Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	j = finish(t, q, j.ID)
	sameFile(t, j.Path, data)
	bad := j.Progress.Sources[1]
	if bad.State != api.SourceRejected || !strings.Contains(bad.LastError, "different file") {
		t.Errorf("the mirror of another file: state %q, error %q; want rejected as another file", bad.State, bad.LastError)
	}
}

// corruptingMirror serves data over HTTP ranges, as a mirror with a bad
// disk would: every range that covers one of the bad offsets comes back
// with that byte flipped.
func corruptingMirror(t *testing.T, data []byte, bad []int64) (*httptest.Server, *atomic.Int64) {
	var served atomic.Int64
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		off, end, ok := parseRange(r.Header.Get("Range"))
		if !ok || end >= int64(len(data)) {
			http.Error(w, "bad range", http.StatusRequestedRangeNotSatisfiable)
			return
		}
		body := bytes.Clone(data[off : end+1])
		for _, b := range bad {
			if b >= off && b <= end {
				body[b-off] ^= 0xff
			}
		}
		w.Header().Set("Content-Range", "bytes "+strconv.FormatInt(off, 10)+"-"+strconv.FormatInt(end, 10)+"/"+strconv.Itoa(len(data)))
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.WriteHeader(http.StatusPartialContent)
		n, _ := w.Write(body)
		served.Add(int64(n))
	})
	s := httptest.NewServer(h)
	t.Cleanup(s.Close)
	return s, &served
}

// parseRange reads "bytes=A-B".
func parseRange(h string) (off, end int64, ok bool) {
	a, b, ok := strings.Cut(strings.TrimPrefix(h, "bytes="), "-")
	off, err1 := strconv.ParseInt(a, 10, 64)
	end, err2 := strconv.ParseInt(b, 10, 64)
	return off, end, ok && err1 == nil && err2 == nil && off <= end
}

// An HTTP mirror that corrupts some ranges, beside an idm server: the idm
// server's piece hashes catch every bad piece, only those are fetched
// again, the mirror is quarantined after three, and the file is right.
func TestQueue_Mirrors_CorruptMirrorQuarantined(t *testing.T) {
	const seg = 256 << 10
	path, data := testFile(t, 8<<20, 64)
	srv := startServers(t, path, seg, 3e6)
	var bad []int64
	for i := range int64(32) {
		bad = append(bad, i*seg+seg/2) // a byte in every piece
	}
	mirror, _ := corruptingMirror(t, data, bad)
	q := mirrorQueue(t)
	j, _, err := q.Create(context.Background(), api.CreateRequest{Sources: append([]string{mirror.URL + "/video.bin"}, serverSources(srv...)...), Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	j = finish(t, q, j.ID)
	sameFile(t, j.Path, data)
	m := j.Progress.Sources[0]
	if m.State != api.SourceQuarantined || m.Corrupt < 3 || m.Verified != 0 {
		t.Errorf("the corrupting mirror: state %q, %d corrupt, %d verified; want quarantined after 3 and nothing of it kept", m.State, m.Corrupt, m.Verified)
	}
}

// Secrets in a mirror's address (a password, a signed link's query) are
// used to fetch but never shown: not in the job's view, not in its
// summary, not in the daemon's log.
func TestQueue_Mirrors_SecretsRedacted(t *testing.T) {
	path, data := testFile(t, 1<<20, 65)
	var sawAuth, sawSig atomic.Bool
	fs := http.FileServer(http.Dir(filepath.Dir(path)))
	mirror := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != "ann" || p != "hunter2" || r.URL.Query().Get("sig") != "s3cr3t" {
			http.Error(w, "who are you", http.StatusForbidden)
			return
		}
		sawAuth.Store(true)
		sawSig.Store(true)
		fs.ServeHTTP(w, r)
	}))
	t.Cleanup(mirror.Close)
	var log proctest.LockedBuffer
	q, err := Open(Config{StateDir: t.TempDir(), Logger: slog.New(slog.NewTextHandler(&log, &slog.HandlerOptions{Level: slog.LevelDebug})),
		FlushInterval: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	src := strings.Replace(mirror.URL, "http://", "http://ann:hunter2@", 1) + "/video.bin?sig=s3cr3t&x=1"
	j, _, err := q.Create(context.Background(), api.CreateRequest{Sources: []string{src}, Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	j = finish(t, q, j.ID)
	sameFile(t, j.Path, data)
	if !sawAuth.Load() || !sawSig.Load() {
		t.Error("the mirror never saw the credentials")
	}
	all := q.Jobs()
	sum := all[0].Summary()
	for what, s := range map[string]string{
		"job":     strings.Join(j.Sources, " ") + j.Progress.Sources[0].Source + j.LastError,
		"summary": sum.Source,
		"log":     log.String(),
	} {
		if strings.Contains(s, "hunter2") || strings.Contains(s, "s3cr3t") {
			t.Errorf("the %s shows a secret: %s", what, s)
		}
	}
	if want := "ann:xxxxx@"; !strings.Contains(j.Sources[0], want) || !strings.Contains(j.Sources[0], "sig=xxxxx") {
		t.Errorf("the job shows its source as %q, want it redacted in place", j.Sources[0])
	}
}

// A mirror's file that changed while the job was stopped is refused when
// the job goes on: the recorded ETag goes back as If-Range, the mirror
// answers with the whole new file, and rather than mix two versions the
// job stops with a clear error, keeping what it has.
func TestQueue_Mirrors_ChangedFileRefusedOnResume(t *testing.T) {
	path, _ := testFile(t, 4<<20, 66)
	ng := nginxtest.Start(t, filepath.Dir(path), "limit_rate 1m;")
	state := t.TempDir()
	q, err := Open(Config{StateDir: state, Logger: quietLog(), FlushInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	j, _, err := q.Create(context.Background(), api.CreateRequest{Sources: []string{ng.URL + "/video.bin"}, Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	var etag string
	waitFor(t, "a checkpoint with the mirror's ETag", time.Minute, func() bool {
		r, err := q.db.Get(j.ID)
		if err != nil || r.Verified == 0 || len(r.SourceStats) == 0 {
			return false
		}
		etag = r.SourceStats[0].ETag
		return etag != ""
	})
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	// Same size, other bytes, a later time: nginx's ETag changes.
	other, _ := testFile(t, 4<<20, 67)
	b, err := os.ReadFile(other)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	later := time.Now().Add(time.Hour)
	if err := os.Chtimes(path, later, later); err != nil {
		t.Fatal(err)
	}
	q, err = Open(Config{StateDir: state, Logger: quietLog(), FlushInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	waitFor(t, "the job to stop", time.Minute, func() bool {
		j, _ = q.Job(j.ID)
		return j.Done() || (len(j.Progress.Sources) > 0 && j.Progress.Sources[0].State == api.SourceFailed)
	})
	j, _ = q.Job(j.ID)
	t.Logf("state %s, last error %q, source %+v", j.State, j.LastError, j.Progress.Sources[0])
	if j.State == api.StateCompleted {
		t.Fatal("the job completed from a mirror whose file changed")
	}
	s := j.Progress.Sources[0]
	if s.State != api.SourceFailed || !strings.Contains(s.LastError, "changed") {
		t.Errorf("the mirror: state %q, error %q; want failed, saying its file changed", s.State, s.LastError)
	}
}

// fileMirror serves dir over HTTP with ranges, as net/http's file server
// does, adding header to every answer.
func fileMirror(t *testing.T, dir string, header http.Header) *httptest.Server {
	fs := http.FileServer(http.Dir(dir))
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for k, v := range header {
			w.Header()[k] = v
		}
		fs.ServeHTTP(w, r)
	}))
	t.Cleanup(s.Close)
	return s
}

// A checksum given with the job is checked before the file is published:
// the right one lets it through and the job shows it; a wrong one fails
// the job with both digests, and no file appears under its name.
func TestQueue_Checksum(t *testing.T) {
	path, data := testFile(t, 3<<20+7, 68)
	mirror := fileMirror(t, filepath.Dir(path), nil)
	sum := sha256.Sum256(data)
	q := mirrorQueue(t)
	for _, tt := range []struct {
		name, checksum string
		ok             bool
	}{
		{"right", "SHA-256=" + hex.EncodeToString(sum[:]), true},
		{"wrong", "sha-256=" + strings.Repeat("ab", 32), false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			out := t.TempDir()
			j, _, err := q.Create(context.Background(), api.CreateRequest{Sources: []string{mirror.URL + "/video.bin"}, Dir: out, Checksum: tt.checksum})
			if err != nil {
				t.Fatal(err)
			}
			if want := "sha-256:"; !strings.HasPrefix(j.Checksum, want) {
				t.Errorf("the job shows checksum %q, want it as %s...", j.Checksum, want)
			}
			j = ended(t, q, j.ID)
			if tt.ok {
				if j.State != api.StateCompleted {
					t.Fatalf("job %s: %s", j.State, j.LastError)
				}
				sameFile(t, j.Path, data)
				return
			}
			if j.State != api.StateFailed || !strings.Contains(j.LastError, hex.EncodeToString(sum[:])) || !strings.Contains(j.LastError, strings.Repeat("ab", 32)) {
				t.Errorf("job %s, error %q; want failed naming both digests", j.State, j.LastError)
			}
			for _, n := range dirNames(t, out) {
				if n == "video.bin" {
					t.Error("the file was published under its name despite the wrong checksum")
				}
			}
		})
	}
	if _, _, err := q.Create(context.Background(), api.CreateRequest{Sources: []string{mirror.URL + "/x"}, Dir: t.TempDir(), Checksum: "md5=00"}); !errors.Is(err, ErrInvalid) {
		t.Errorf("an unknown checksum algorithm: %v, want ErrInvalid", err)
	}
}

// A mirror's own whole-file digest (Repr-Digest, RFC 9530) is checked
// before the file is published: a mirror that claims the wrong one fails
// the job rather than leave an unchecked file behind.
func TestQueue_Mirrors_ReprDigestChecked(t *testing.T) {
	path, data := testFile(t, 2<<20, 69)
	sum := sha256.Sum256(data)
	q := mirrorQueue(t)
	for _, tt := range []struct {
		name string
		sum  []byte
		ok   bool
	}{
		{"right", sum[:], true},
		{"wrong", bytes.Repeat([]byte{7}, 32), false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			mirror := fileMirror(t, filepath.Dir(path), http.Header{"Repr-Digest": {"sha-256=:" + base64.StdEncoding.EncodeToString(tt.sum) + ":"}})
			j, _, err := q.Create(context.Background(), api.CreateRequest{Sources: []string{mirror.URL + "/video.bin"}, Dir: t.TempDir()})
			if err != nil {
				t.Fatal(err)
			}
			j = ended(t, q, j.ID)
			if tt.ok != (j.State == api.StateCompleted) {
				t.Fatalf("job %s (%s), want completed %v", j.State, j.LastError, tt.ok)
			}
			if tt.ok {
				sameFile(t, j.Path, data)
			}
		})
	}
}

// meta4 writes a Metalink 4 document for data, named name, served by
// urls, with its SHA-256 and SHA-1 pieces of pieceLen bytes.
func meta4(name string, data []byte, pieceLen int, urls ...string) string {
	var b strings.Builder
	sum := sha256.Sum256(data)
	fmt.Fprintf(&b, `<?xml version="1.0" encoding="UTF-8"?>
<metalink xmlns="urn:ietf:params:xml:ns:metalink">
  <file name=%q>
    <size>%d</size>
    <hash type="sha-256">%x</hash>
    <pieces length="%d" type="sha-1">
`, name, len(data), sum, pieceLen)
	for off := 0; off < len(data); off += pieceLen {
		fmt.Fprintf(&b, "      <hash>%x</hash>\n", sha1.Sum(data[off:min(off+pieceLen, len(data))]))
	}
	b.WriteString("    </pieces>\n")
	for i, u := range urls {
		fmt.Fprintf(&b, "    <url priority=\"%d\">%s</url>\n", i+1, u)
	}
	b.WriteString("  </file>\n</metalink>\n")
	return b.String()
}

// A Metalink's file is decided before any mirror answers: its SHA-1
// pieces check every byte, so a mirror whose pieces are bad is caught
// and they come from the other; its SHA-256 is checked at the end.
func TestQueue_Metalink(t *testing.T) {
	const pieceLen = 256 << 10
	path, data := testFile(t, 3<<20+5, 70)
	var flips []int64
	for off := int64(10); off < int64(len(data)); off += pieceLen {
		flips = append(flips, off)
	}
	bad, _ := corruptingMirror(t, data, flips)
	good := fileMirror(t, filepath.Dir(path), nil)
	q := mirrorQueue(t)
	doc := meta4("release.iso", data, pieceLen, bad.URL+"/video.bin", good.URL+"/video.bin")
	js, _, err := q.CreateMetalink(context.Background(), api.MetalinkRequest{Document: doc, Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if len(js) != 1 || js[0].Name != "release.iso" || js[0].Size != int64(len(data)) || js[0].OwnHashes {
		t.Fatalf("jobs %+v; want one, named and sized by the Metalink, checked against its pieces", js)
	}
	j := finish(t, q, js[0].ID)
	sameFile(t, j.Path, data)
	if filepath.Base(j.Path) != "release.iso" {
		t.Errorf("published as %s, want the Metalink's name", j.Path)
	}
	if s := j.Progress.Sources[0]; s.Corrupt == 0 || s.Verified != 0 {
		t.Errorf("the mirror of bad pieces: %+v; want them caught by the Metalink's piece hashes", s)
	}
}

// What a Metalink says is checked before any job is made: a hostile file
// name, a file not in it, a broken document each give one error and
// change nothing.
func TestQueue_Metalink_Refused(t *testing.T) {
	q := mirrorQueue(t)
	data := []byte("hello, world")
	out := t.TempDir()
	for _, tt := range []struct {
		name, doc string
		sel       []string
		says      string
	}{
		{"parent", meta4("../evil.sh", data, 4096, "http://127.0.0.1:1/f"), nil, "evil.sh"},
		{"absolute", meta4("/etc/passwd", data, 4096, "http://127.0.0.1:1/f"), nil, "passwd"},
		{"separator", meta4("a/b.iso", data, 4096, "http://127.0.0.1:1/f"), nil, "a/b.iso"},
		{"not selected", meta4("a.iso", data, 4096, "http://127.0.0.1:1/f"), []string{"b.iso"}, "no file \"b.iso\""},
		{"not a Metalink", "<html>404</html>", nil, "metalink"},
		{"no usable mirror", meta4("a.iso", data, 4096, "ftp://127.0.0.1:1/f"), nil, "a.iso"},
		{"too many files", manyFiles(maxMetalinkJobs + 1), nil, fmt.Sprintf("%d files", maxMetalinkJobs+1)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			js, _, err := q.CreateMetalink(context.Background(), api.MetalinkRequest{Document: tt.doc, Dir: out, MetalinkOptions: api.MetalinkOptions{Select: tt.sel}})
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tt.says) || strings.Contains(err.Error(), "\n") {
				t.Errorf("CreateMetalink = %v, %v; want one line of ErrInvalid saying %q", js, err, tt.says)
			}
		})
	}
	if n := len(q.Jobs()); n != 0 {
		t.Errorf("refused Metalinks left %d jobs", n)
	}
	if names := dirNames(t, out); len(names) != 0 {
		t.Errorf("refused Metalinks left files: %v", names)
	}
}

// manyFiles returns a Metalink of n files of 1000 bytes, f0.bin to
// f<n-1>.bin, each on a mirror that is never there.
func manyFiles(n int) string {
	var b strings.Builder
	b.WriteString(`<?xml version="1.0" encoding="UTF-8"?>` + "\n" + `<metalink xmlns="urn:ietf:params:xml:ns:metalink">` + "\n")
	for i := range n {
		fmt.Fprintf(&b, "<file name=\"f%d.bin\"><size>1000</size><url>http://127.0.0.1:1/f%d.bin</url></file>\n", i, i)
	}
	b.WriteString("</metalink>\n")
	return b.String()
}

// A Metalink of more files than one Metalink may make jobs of is taken
// when only some are selected, and the jobs come in the document's
// order, whatever the order of the selection.
func TestQueue_Metalink_SelectFromMany(t *testing.T) {
	q := mirrorQueue(t)
	names := []string{fmt.Sprintf("f%d.bin", maxMetalinkJobs), "f7.bin", "f7.bin"}
	js, _, err := q.CreateMetalink(context.Background(), api.MetalinkRequest{Document: manyFiles(maxMetalinkJobs + 1), Dir: t.TempDir(), MetalinkOptions: api.MetalinkOptions{Select: names}})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, j := range js {
		got = append(got, j.Name)
	}
	if want := []string{"f7.bin", names[0]}; !slices.Equal(got, want) {
		t.Errorf("jobs of %q, want %q", got, want)
	}
}

// A mirror that answers 503 with Retry-After is left alone that long,
// not probed on the engine's own back-off.
func TestQueue_Mirrors_RetryAfterHonoured(t *testing.T) {
	busy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "120")
		http.Error(w, "busy", http.StatusServiceUnavailable)
	}))
	t.Cleanup(busy.Close)
	q := mirrorQueue(t)
	j, _, err := q.Create(context.Background(), api.CreateRequest{Sources: []string{busy.URL + "/f.iso"}, Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the mirror to be down", time.Minute, func() bool {
		j, _ = q.Job(j.ID)
		return len(j.Progress.Sources) == 1 && j.Progress.Sources[0].State == api.SourceDown
	})
	if wait := time.Until(j.Progress.Sources[0].NextRetry); wait < 100*time.Second {
		t.Errorf("the busy mirror is tried again in %v, want the 120 s it asked for", wait.Round(time.Second))
	}
}

// concurrentMirror serves data over ranges and records how many requests
// were in flight at once; each waits until want are, or a while.
func concurrentMirror(t *testing.T, data []byte, want int) (*httptest.Server, func() int) {
	var mu sync.Mutex
	inflight, most := 0, 0
	enough := make(chan struct{})
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		inflight++
		most = max(most, inflight)
		if inflight == want {
			select {
			case <-enough:
			default:
				close(enough)
			}
		}
		mu.Unlock()
		select {
		case <-enough:
		case <-time.After(5 * time.Second):
		}
		http.ServeContent(w, r, "f.bin", time.Time{}, bytes.NewReader(data))
		mu.Lock()
		inflight--
		mu.Unlock()
	}))
	t.Cleanup(s.Close)
	return s, func() int { mu.Lock(); defer mu.Unlock(); return most }
}

// A lone HTTP mirror gets four connections by default; --connections
// sets another number.
func TestQueue_Mirrors_Connections(t *testing.T) {
	_, data := testFile(t, 4<<20, 71)
	for _, tt := range []struct{ asked, want int }{{0, 4}, {2, 2}} {
		mirror, most := concurrentMirror(t, data, tt.want)
		q := mirrorQueue(t)
		j, _, err := q.Create(context.Background(), api.CreateRequest{Sources: []string{mirror.URL + "/f.bin"}, Dir: t.TempDir(), Connections: tt.asked})
		if err != nil {
			t.Fatal(err)
		}
		j = finish(t, q, j.ID)
		sameFile(t, j.Path, data)
		if got := most(); got != tt.want {
			t.Errorf("asked for %d connections: at most %d requests at once, want %d", tt.asked, got, tt.want)
		}
	}
	q := mirrorQueue(t)
	if _, _, err := q.Create(context.Background(), api.CreateRequest{Sources: []string{"http://127.0.0.1:1/f"}, Dir: t.TempDir(), Connections: 17}); !errors.Is(err, ErrInvalid) {
		t.Errorf("17 connections: %v, want ErrInvalid", err)
	}
}

// A job's headers and user agent go with every request to its mirrors,
// and its view shows the headers' names only; what would break how
// ranges are asked for, or is not one header line, is refused.
func TestQueue_Mirrors_HeadersAndUserAgent(t *testing.T) {
	path, data := testFile(t, 1<<20, 72)
	fs := http.FileServer(http.Dir(filepath.Dir(path)))
	var agents sync.Map
	mirror := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		agents.Store(r.UserAgent(), true)
		if r.Header.Get("Authorization") != "Bearer t0k3n" || r.Header.Get("Cookie") != "s=c00kie" {
			http.Error(w, "log in first", http.StatusUnauthorized)
			return
		}
		fs.ServeHTTP(w, r)
	}))
	t.Cleanup(mirror.Close)
	var log proctest.LockedBuffer
	q, err := Open(Config{StateDir: t.TempDir(), Logger: slog.New(slog.NewTextHandler(&log, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	j, _, err := q.Create(context.Background(), api.CreateRequest{Sources: []string{mirror.URL + "/video.bin"}, Dir: t.TempDir(),
		HTTPOptions: api.HTTPOptions{Headers: []string{"Authorization: Bearer t0k3n", "cookie: s=c00kie"}, UserAgent: "my-agent/1.0"}})
	if err != nil {
		t.Fatal(err)
	}
	j = finish(t, q, j.ID)
	sameFile(t, j.Path, data)
	agents.Range(func(k, _ any) bool {
		if k != "my-agent/1.0" {
			t.Errorf("a request with user agent %q, want the job's", k)
		}
		return true
	})
	if got := strings.Join(j.Headers, "|"); got != "Authorization: xxxxx|cookie: xxxxx" {
		t.Errorf("the job shows its headers as %q", got)
	}
	if strings.Contains(log.String(), "t0k3n") || strings.Contains(log.String(), "c00kie") {
		t.Error("the log shows a header's secret value")
	}
	for _, bad := range []api.CreateRequest{
		{HTTPOptions: api.HTTPOptions{Headers: []string{"Range: bytes=0-"}}},
		{HTTPOptions: api.HTTPOptions{Headers: []string{"Host: example.org"}}},
		{HTTPOptions: api.HTTPOptions{Headers: []string{"Bad Name: x"}}},
		{HTTPOptions: api.HTTPOptions{Headers: []string{"X-Token: a\r\nX-Other: b"}}},
		{HTTPOptions: api.HTTPOptions{Headers: []string{"no colon secret"}}},
		{HTTPOptions: api.HTTPOptions{UserAgent: "a\nb"}},
		{HTTPOptions: api.HTTPOptions{CA: "not a certificate"}},
		{HTTPOptions: api.HTTPOptions{Proxy: "ftp://127.0.0.1:1"}},
		{HTTPOptions: api.HTTPOptions{Headers: []string{"X-Token: a"}}, Sources: []string{"idm://127.0.0.1:9"}},
	} {
		if bad.Sources == nil {
			bad.Sources = []string{mirror.URL + "/other"}
		}
		bad.Dir = t.TempDir()
		if _, _, err := q.Create(context.Background(), bad); !errors.Is(err, ErrInvalid) || strings.Contains(err.Error(), "secret") {
			t.Errorf("%+v: %v, want ErrInvalid that shows no value", bad, err)
		}
	}
}

// An https mirror whose certificate nothing trusts fails the job at once
// with the reason, rather than being retried for ever; given its CA, the
// same mirror serves the job.
func TestQueue_Mirrors_SelfSignedNeedsItsCA(t *testing.T) {
	path, data := testFile(t, 1<<20, 73)
	mirror := httptest.NewUnstartedServer(http.FileServer(http.Dir(filepath.Dir(path))))
	mirror.Config.ErrorLog = stdlog.New(io.Discard, "", 0) // the refused handshakes
	mirror.StartTLS()
	t.Cleanup(mirror.Close)
	q := mirrorQueue(t)
	j, _, err := q.Create(context.Background(), api.CreateRequest{Sources: []string{mirror.URL + "/video.bin"}, Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	j = ended(t, q, j.ID)
	if j.State != api.StateFailed || !strings.Contains(j.LastError, "certificate") {
		t.Errorf("untrusted mirror: job %s, %q; want failed for its certificate", j.State, j.LastError)
	}
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: mirror.Certificate().Raw})
	j, _, err = q.Create(context.Background(), api.CreateRequest{Sources: []string{mirror.URL + "/video.bin"}, Dir: t.TempDir(), HTTPOptions: api.HTTPOptions{CA: string(ca)}})
	if err != nil {
		t.Fatal(err)
	}
	j = finish(t, q, j.ID)
	sameFile(t, j.Path, data)
}

// A job's proxy carries every request to its mirrors: here the mirror's
// address has nothing listening, and only the proxy can answer.
func TestQueue_Mirrors_Proxy(t *testing.T) {
	path, data := testFile(t, 1<<20, 74)
	fs := http.FileServer(http.Dir(filepath.Dir(path)))
	var proxied atomic.Int64
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !r.URL.IsAbs() || r.URL.Host != "127.0.0.1:1" {
			http.Error(w, "not a proxy request", http.StatusBadRequest)
			return
		}
		proxied.Add(1)
		fs.ServeHTTP(w, r)
	}))
	t.Cleanup(proxy.Close)
	q := mirrorQueue(t)
	j, _, err := q.Create(context.Background(), api.CreateRequest{Sources: []string{"http://127.0.0.1:1/video.bin"}, Dir: t.TempDir(), HTTPOptions: api.HTTPOptions{Proxy: proxy.URL}})
	if err != nil {
		t.Fatal(err)
	}
	j = finish(t, q, j.ID)
	sameFile(t, j.Path, data)
	if proxied.Load() == 0 || j.Proxy != proxy.URL {
		t.Errorf("%d requests through the proxy, job shows proxy %q", proxied.Load(), j.Proxy)
	}
}

// A running job's sources change without losing a verified byte: a slow
// mirror is swapped for a fast one, named as the job shows it.
func TestQueue_SetSources_Running(t *testing.T) {
	path, data := testFile(t, 4<<20, 75)
	slow := nginxtest.Start(t, filepath.Dir(path), "limit_rate 512k;")
	fast := fileMirror(t, filepath.Dir(path), nil)
	q := mirrorQueue(t)
	j, _, err := q.Create(context.Background(), api.CreateRequest{Sources: []string{slow.URL + "/video.bin?sig=s3cr3t"}, Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "some verified bytes", time.Minute, func() bool {
		j, _ = q.Job(j.ID)
		return j.Progress.Verified >= 512<<10
	})
	shown := j.Sources[0] // as the job shows it: the signature hidden
	if _, err = q.SetSources(context.Background(), j.ID, []string{fast.URL + "/video.bin"}, []string{shown}); err != nil {
		t.Fatal(err)
	}
	r, err := q.db.Get(j.ID)
	if err != nil {
		t.Fatal(err)
	}
	j, _ = q.Job(j.ID)
	before := r.Verified // the stopped transfer's last checkpoint
	if len(j.Sources) != 1 || !strings.HasPrefix(j.Sources[0], fast.URL) || before < 512<<10 {
		t.Fatalf("after the change: sources %v, %d verified", j.Sources, before)
	}
	j = finish(t, q, j.ID)
	sameFile(t, j.Path, data)
	if got := j.Progress.Sources[0].Verified; len(j.Progress.Sources) != 1 || got > int64(len(data))-before {
		t.Errorf("the new mirror delivered %d verified bytes of %d, %d being kept from before: sources %+v", got, len(data), before, j.Progress.Sources)
	}
	for _, bad := range []struct{ add, rm []string }{
		{rm: []string{fast.URL + "/video.bin"}},
		{add: []string{"ftp://127.0.0.1:1/f"}},
		{rm: []string{"http://127.0.0.1:1/none"}},
	} {
		if _, err := q.SetSources(context.Background(), j.ID, bad.add, bad.rm); err == nil {
			t.Errorf("add %v, remove %v on a completed job: no error", bad.add, bad.rm)
		}
	}
}

// A signed link that expires mid-download fails its mirror; a fresh link
// put in its place lets the job finish from where it stopped.
func TestQueue_SetSources_ExpiredSignedLink(t *testing.T) {
	path, data := testFile(t, 3<<20, 76)
	fs := http.FileServer(http.Dir(filepath.Dir(path)))
	var served, fresh atomic.Int64
	mirror := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch sig := r.URL.Query().Get("sig"); {
		case sig == "fresh":
			fs.ServeHTTP(countingWriter{w, &fresh}, r)
		case sig == "old" && served.Add(1) <= 3:
			fs.ServeHTTP(w, r)
		default:
			http.Error(w, "link expired", http.StatusForbidden)
		}
	}))
	t.Cleanup(mirror.Close)
	q, err := Open(Config{StateDir: t.TempDir(), Logger: quietLog(), FlushInterval: 20 * time.Millisecond, Conns: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	old := mirror.URL + "/video.bin?sig=old"
	j, _, err := q.Create(context.Background(), api.CreateRequest{Sources: []string{old}, Dir: t.TempDir(), Connections: 1})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the job to fail", time.Minute, func() bool {
		j, _ = q.Job(j.ID)
		return j.State == api.StateFailed
	})
	kept := j.Progress.Verified
	if kept == 0 || !strings.Contains(j.LastError, "403") {
		t.Fatalf("expired link: %d verified, error %q", kept, j.LastError)
	}
	if _, err := q.SetSources(context.Background(), j.ID, []string{mirror.URL + "/video.bin?sig=fresh"}, []string{old}); err != nil {
		t.Fatal(err)
	}
	if _, err := q.Resume(context.Background(), j.ID); err != nil {
		t.Fatal(err)
	}
	j = finish(t, q, j.ID)
	sameFile(t, j.Path, data)
	// The fresh link shows as the old one did, its signature hidden, so
	// its statistics go on from the old one's: count at the mirror, where
	// describing the file costs one byte.
	if got := fresh.Load(); got > int64(len(data))-kept+1 {
		t.Errorf("the fresh link sent %d bytes; %d of %d were kept before it", got, kept, len(data))
	}
}

// countingWriter counts the body bytes a handler writes.
type countingWriter struct {
	http.ResponseWriter
	n *atomic.Int64
}

func (c countingWriter) Write(p []byte) (int, error) {
	n, err := c.ResponseWriter.Write(p)
	c.n.Add(int64(n))
	return n, err
}

// dyingMirror serves data over ranges but cuts every answer off after
// cut bytes, as a mirror whose link drops mid-range does.
func dyingMirror(t *testing.T, data []byte, cut int) *httptest.Server {
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		off, end, ok := parseRange(r.Header.Get("Range"))
		if !ok || end >= int64(len(data)) {
			http.Error(w, "bad range", http.StatusRequestedRangeNotSatisfiable)
			return
		}
		n := end - off + 1
		w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", off, end, len(data)))
		w.Header().Set("Content-Length", strconv.FormatInt(n, 10))
		w.WriteHeader(http.StatusPartialContent)
		if n <= int64(cut) {
			w.Write(data[off : end+1])
			return
		}
		w.Write(data[off : off+int64(cut)])
		// Drop the connection with the range half sent.
		if c, _, err := http.NewResponseController(w).Hijack(); err == nil {
			c.Close()
		}
	}))
	t.Cleanup(s.Close)
	return s
}

// Mirrors of different speeds and one that drops every range halfway: the
// fast one does most, the slow one its share, the dying one's half ranges
// are never taken, and the file is right.
func TestQueue_Mirrors_SpeedsAndOneDying(t *testing.T) {
	path, data := testFile(t, 6<<20, 77)
	fast := nginxtest.Start(t, filepath.Dir(path), "")
	slow := nginxtest.Start(t, filepath.Dir(path), "limit_rate 1m;")
	dying := dyingMirror(t, data, 10<<10) // less than a piece
	q := mirrorQueue(t)
	j, _, err := q.Create(context.Background(), api.CreateRequest{Sources: []string{slow.URL + "/video.bin", dying.URL + "/video.bin", fast.URL + "/video.bin"}, Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	j = finish(t, q, j.ID)
	sameFile(t, j.Path, data)
	s, d, f := j.Progress.Sources[0], j.Progress.Sources[1], j.Progress.Sources[2]
	if f.Verified <= s.Verified || d.Verified != 0 || d.Errors == 0 {
		t.Errorf("slow %d, dying %d (%d errors), fast %d verified bytes; want the fast one ahead and nothing of the dying one's", s.Verified, d.Verified, d.Errors, f.Verified)
	}
}

// The mirrors a mirror announces (Link: rel=duplicate, RFC 6249) join the
// job and do their share, unless the job says no.
func TestQueue_Mirrors_Discovered(t *testing.T) {
	path, data := testFile(t, 4<<20, 78)
	var asked atomic.Int64
	other := fileMirror(t, filepath.Dir(path), nil)
	counted := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		asked.Add(1)
		other.Config.Handler.ServeHTTP(w, r)
	}))
	t.Cleanup(counted.Close)
	announcing := nginxtest.Start(t, filepath.Dir(path), `limit_rate 1m; add_header Link "<`+counted.URL+`/video.bin>; rel=duplicate; pri=1";`)
	q := mirrorQueue(t)

	j, _, err := q.Create(context.Background(), api.CreateRequest{Sources: []string{announcing.URL + "/video.bin"}, Dir: t.TempDir(), HTTPOptions: api.HTTPOptions{NoDiscover: true}})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the first bytes", time.Minute, func() bool {
		j, _ = q.Job(j.ID)
		return j.Progress.Verified > 0
	})
	if _, err := q.Cancel(context.Background(), j.ID); err != nil {
		t.Fatal(err)
	}
	if j, _ = q.Job(j.ID); len(j.Sources) != 1 || asked.Load() != 0 {
		t.Errorf("with no_discover: sources %v, the announced mirror asked %d times", j.Sources, asked.Load())
	}

	j, _, err = q.Create(context.Background(), api.CreateRequest{Sources: []string{announcing.URL + "/video.bin"}, Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the announced mirror to join", time.Minute, func() bool {
		j, _ = q.Job(j.ID)
		return len(j.Sources) == 2
	})
	j = finish(t, q, j.ID)
	sameFile(t, j.Path, data)
	if j.Sources[1] != counted.URL+"/video.bin" || j.Progress.Sources[1].Verified == 0 {
		t.Errorf("sources %v, progress %+v: want the announced mirror in, with a share", j.Sources, j.Progress.Sources)
	}
}

// A mirror that points to its file's Metalink (Link: rel=describedby, as
// idm-server's HTTP side and MirrorBrain's mirrors do) gives the job its
// piece hashes: a job of plain HTTP mirrors is then checked piece by
// piece, and a mirror of bad bytes beside it is caught.
func TestQueue_Mirrors_DescribedByMetalink(t *testing.T) {
	const seg = 256 << 10
	path, data := testFile(t, 3<<20, 79)
	srv := startServers(t, path, seg, 0)[0]
	var flips []int64
	for off := int64(5); off < int64(len(data)); off += seg {
		flips = append(flips, off)
	}
	bad, _ := corruptingMirror(t, data, flips)
	q := mirrorQueue(t)
	j, _, err := q.Create(context.Background(), api.CreateRequest{Sources: []string{bad.URL + "/video.bin", "http://" + srv.Addr + "/video.bin"}, Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	j = finish(t, q, j.ID)
	sameFile(t, j.Path, data)
	if j.OwnHashes {
		t.Error("the job hashed its pieces itself, though a mirror pointed to a Metalink with them")
	}
	if b := j.Progress.Sources[0]; b.Corrupt == 0 || b.Verified != 0 {
		t.Errorf("the mirror of bad bytes: %+v; want its pieces caught by the Metalink's hashes", b)
	}
}

// A Metalink named by its URL is fetched by idmd; one that cannot be had
// is one error and makes no job.
func TestQueue_MetalinkByURL(t *testing.T) {
	path, data := testFile(t, 2<<20+3, 80)
	mirror := fileMirror(t, filepath.Dir(path), nil)
	doc := meta4("release.iso", data, 256<<10, mirror.URL+"/video.bin")
	meta := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/release.meta4" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/metalink4+xml")
		io.WriteString(w, doc)
	}))
	t.Cleanup(meta.Close)
	q := mirrorQueue(t)
	for _, bad := range []api.MetalinkRequest{
		{URL: meta.URL + "/missing.meta4?token=s3cr3t"},
		{URL: "ftp://127.0.0.1:1/x.meta4"},
		{URL: meta.URL + "/release.meta4", Document: doc},
	} {
		bad.Dir = t.TempDir()
		if js, _, err := q.CreateMetalink(context.Background(), bad); !errors.Is(err, ErrInvalid) || strings.Contains(err.Error(), "s3cr3t") {
			t.Errorf("%s: %v, %v; want ErrInvalid that shows no secret", bad.URL, js, err)
		}
	}
	js, _, err := q.CreateMetalink(context.Background(), api.MetalinkRequest{URL: meta.URL + "/release.meta4", Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	j := finish(t, q, js[0].ID)
	sameFile(t, j.Path, data)
	if j.Name != "release.iso" || j.OwnHashes {
		t.Errorf("job %q, own hashes %v; want the Metalink's name and pieces", j.Name, j.OwnHashes)
	}
}

// A Metalink's jobs take HTTP options as any job does: here a cookie its
// mirror asks for.
func TestQueue_Metalink_HTTPOptions(t *testing.T) {
	path, data := testFile(t, 1<<20, 81)
	fs := http.FileServer(http.Dir(filepath.Dir(path)))
	mirror := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if c, err := r.Cookie("session"); err != nil || c.Value != "s3cr3t" {
			http.Error(w, "log in first", http.StatusForbidden)
			return
		}
		fs.ServeHTTP(w, r)
	}))
	t.Cleanup(mirror.Close)
	q := mirrorQueue(t)
	js, _, err := q.CreateMetalink(context.Background(), api.MetalinkRequest{Document: meta4("f.bin", data, 256<<10, mirror.URL+"/video.bin"), Dir: t.TempDir(),
		HTTPOptions: api.HTTPOptions{Headers: []string{"Cookie: session=s3cr3t"}}})
	if err != nil {
		t.Fatal(err)
	}
	j := finish(t, q, js[0].ID)
	sameFile(t, j.Path, data)
	if len(j.Headers) != 1 || strings.Contains(j.Headers[0], "s3cr3t") {
		t.Errorf("the job shows its headers as %q", j.Headers)
	}
}
