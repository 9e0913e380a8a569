package jobs

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/idmproject/idm/daemon/api"
	"github.com/idmproject/idm/internal/proctest"
)

// metalinkServer answers every request with its document as a Metalink 4,
// as a mirror network's download script does, whatever the URL's name.
// ranged, it honours a Range as a file server does; otherwise it sends
// the whole document whatever was asked.
type metalinkServer struct {
	*httptest.Server
	ranged bool

	mu  sync.Mutex
	doc string
}

func newMetalinkServer(t *testing.T, ranged bool) *metalinkServer {
	m := &metalinkServer{ranged: ranged}
	m.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m.mu.Lock()
		doc := m.doc
		m.mu.Unlock()
		w.Header().Set("Content-Type", "application/metalink4+xml")
		if m.ranged {
			http.ServeContent(w, r, "", time.Time{}, strings.NewReader(doc))
			return
		}
		fmt.Fprint(w, doc)
	}))
	t.Cleanup(m.Close)
	return m
}

func (m *metalinkServer) set(doc string) {
	m.mu.Lock()
	m.doc = doc
	m.mu.Unlock()
}

// two files of a Metalink: their names, data and mirrors.
type metaFile struct {
	name string
	data []byte
	urls []string
}

// meta4Files writes a Metalink 4 document of several files, each with
// its SHA-256 and no pieces.
func meta4Files(files ...metaFile) string {
	var b strings.Builder
	b.WriteString(`<?xml version="1.0" encoding="UTF-8"?>` + "\n" + `<metalink xmlns="urn:ietf:params:xml:ns:metalink">` + "\n")
	for _, f := range files {
		doc := meta4(f.name, f.data, 256<<10, f.urls...)
		start := strings.Index(doc, "  <file")
		end := strings.Index(doc, "</metalink>")
		b.WriteString(doc[start:end])
	}
	b.WriteString("</metalink>\n")
	return b.String()
}

// A lone URL that answers with a Metalink 4, whatever its name, becomes
// the Metalink's jobs, as the Metalink's URL would: whether the server
// sends the whole document to a range or only the range, the files come
// from the Metalink's mirrors, checked against its pieces. The URL
// itself, listed among the mirrors, is left out: it would answer with
// the Metalink again.
func TestQueue_CreateFollowing_Metalink(t *testing.T) {
	path, data := testFile(t, 2<<20+11, 91)
	mirror := fileMirror(t, filepath.Dir(path), nil)
	for _, ranged := range []bool{false, true} {
		t.Run(fmt.Sprintf("ranged=%v", ranged), func(t *testing.T) {
			meta := newMetalinkServer(t, ranged)
			src := meta.URL + "/download?id=5"
			meta.set(meta4("release.iso", data, 256<<10, src, mirror.URL+"/video.bin"))
			q := mirrorQueue(t)
			js, fromMetalink, created, err := q.CreateFollowing(context.Background(), api.CreateRequest{Sources: []string{src}, Dir: t.TempDir(), FollowMetalink: true})
			if err != nil {
				t.Fatal(err)
			}
			if !fromMetalink || !created || len(js) != 1 || js[0].Name != "release.iso" || js[0].OwnHashes {
				t.Fatalf("from a Metalink %v, created %v, jobs %+v; want the Metalink's one job, named and checked by it", fromMetalink, created, js)
			}
			if !slices.Equal(js[0].Sources, []string{mirror.URL + "/video.bin"}) {
				t.Errorf("sources %q: want the Metalink's mirror, and not the Metalink itself", js[0].Sources)
			}
			j := finish(t, q, js[0].ID)
			sameFile(t, j.Path, data)
		})
	}
}

// --select and --location apply to a Metalink a lone URL answers with,
// as to one named as such.
func TestQueue_CreateFollowing_Select(t *testing.T) {
	pa, a := testFile(t, 1<<20+1, 92)
	pb, b := testFile(t, 1<<20+2, 93)
	ma := fileMirror(t, filepath.Dir(pa), nil)
	mb := fileMirror(t, filepath.Dir(pb), nil)
	meta := newMetalinkServer(t, false)
	meta.set(meta4Files(metaFile{"a.bin", a, []string{ma.URL + "/video.bin"}}, metaFile{"b.bin", b, []string{"http://127.0.0.1:1/b.bin", mb.URL + "/video.bin"}}))
	q := mirrorQueue(t)
	out := t.TempDir()
	js, fromMetalink, _, err := q.CreateFollowing(context.Background(), api.CreateRequest{Sources: []string{meta.URL + "/get"}, Dir: out, FollowMetalink: true,
		MetalinkOptions: api.MetalinkOptions{Select: []string{"b.bin"}, Locations: []string{"de"}}})
	if err != nil {
		t.Fatal(err)
	}
	if !fromMetalink || len(js) != 1 || js[0].Name != "b.bin" {
		t.Fatalf("jobs %+v; want the one file selected", js)
	}
	j := finish(t, q, js[0].ID)
	sameFile(t, j.Path, b)
	if names := dirNames(t, out); !slices.Equal(names, []string{"b.bin"}) {
		t.Errorf("the directory holds %q, want only the file selected", names)
	}
}

// A lone URL that answers with anything but a Metalink is a job of its
// own, as without FollowMetalink: the file, or a source that cannot be
// asked, which its job then meets. Metalink options are then refused.
func TestQueue_CreateFollowing_NotMetalink(t *testing.T) {
	path, data := testFile(t, 1<<20, 94)
	mirror := fileMirror(t, filepath.Dir(path), nil)
	q := mirrorQueue(t)
	js, fromMetalink, created, err := q.CreateFollowing(context.Background(), api.CreateRequest{Sources: []string{mirror.URL + "/video.bin"}, Dir: t.TempDir(), FollowMetalink: true})
	if err != nil || fromMetalink || !created || len(js) != 1 {
		t.Fatalf("jobs %+v, from a Metalink %v, created %v, %v; want one new job of the URL", js, fromMetalink, created, err)
	}
	sameFile(t, finish(t, q, js[0].ID).Path, data)

	js, fromMetalink, _, err = q.CreateFollowing(context.Background(), api.CreateRequest{Sources: []string{"http://127.0.0.1:1/gone"}, Dir: t.TempDir(), FollowMetalink: true})
	if err != nil || fromMetalink || len(js) != 1 {
		t.Errorf("a source that cannot be asked: %+v, %v, %v; want its job made as ever", js, fromMetalink, err)
	}
	n := len(q.Jobs())
	_, _, _, err = q.CreateFollowing(context.Background(), api.CreateRequest{Sources: []string{mirror.URL + "/video.bin"}, Dir: t.TempDir(), FollowMetalink: true,
		MetalinkOptions: api.MetalinkOptions{Select: []string{"video.bin"}}})
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "select") {
		t.Errorf("select for a URL that is no Metalink: %v; want ErrInvalid", err)
	}
	_, _, err = q.Create(context.Background(), api.CreateRequest{Sources: []string{mirror.URL + "/video.bin"}, Dir: t.TempDir(),
		MetalinkOptions: api.MetalinkOptions{Locations: []string{"de"}}})
	if !errors.Is(err, ErrInvalid) {
		t.Errorf("locations without follow_metalink: %v; want ErrInvalid", err)
	}
	if len(q.Jobs()) != n {
		t.Error("a refused request made a job")
	}
}

// What a lone URL's Metalink cannot be is said in one line before any job
// is made: a Metalink 3, a Metalink whose only mirror is itself, one
// with a content hash or checksum of the caller's beside its own.
func TestQueue_CreateFollowing_Refused(t *testing.T) {
	data := bytes.Repeat([]byte("x"), 300<<10)
	meta3 := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/metalink+xml")
		fmt.Fprint(w, `<metalink version="3.0" xmlns="http://www.metalinker.org/"></metalink>`)
	}))
	t.Cleanup(meta3.Close)
	self := newMetalinkServer(t, false)
	self.set(meta4("a.iso", data, 256<<10, self.URL+"/download?id=1"))
	other := newMetalinkServer(t, false)
	other.set(meta4("a.iso", data, 256<<10, "http://127.0.0.1:1/a.iso"))
	q := mirrorQueue(t)
	for _, tt := range []struct {
		name string
		req  api.CreateRequest
		says string
	}{
		{"Metalink 3", api.CreateRequest{Sources: []string{meta3.URL + "/f.metalink?token=s3cr3t"}}, "Metalink 3"},
		{"only itself", api.CreateRequest{Sources: []string{self.URL + "/download?id=1"}}, "only mirror is the Metalink itself"},
		{"checksum", api.CreateRequest{Sources: []string{other.URL + "/x"}, Checksum: "sha-256=" + strings.Repeat("ab", 32)}, "without content or checksum"},
		{"content", api.CreateRequest{Sources: []string{other.URL + "/x"}, Content: strings.Repeat("cd", 32)}, "without content or checksum"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tt.req.Dir, tt.req.FollowMetalink = t.TempDir(), true
			js, _, _, err := q.CreateFollowing(context.Background(), tt.req)
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tt.says) || strings.Contains(err.Error(), "s3cr3t") || strings.Contains(err.Error(), "\n") {
				t.Errorf("%v, %v; want one line of ErrInvalid saying %q, no secret", js, err, tt.says)
			}
		})
	}
	if n := len(q.Jobs()); n != 0 {
		t.Errorf("refused requests made %d jobs", n)
	}
}

// A Metalink's jobs that exist already refuse the request, naming one,
// and make nothing; with Resume they are resumed instead, and nothing
// new is made either.
func TestQueue_CreateFollowing_Exists(t *testing.T) {
	data := bytes.Repeat([]byte("y"), 300<<10)
	meta := newMetalinkServer(t, false)
	meta.set(meta4Files(metaFile{"a.bin", data, []string{"http://127.0.0.1:1/a.bin"}}, metaFile{"b.bin", data, []string{"http://127.0.0.1:1/b.bin"}}))
	q := mirrorQueue(t)
	req := api.CreateRequest{Sources: []string{meta.URL + "/get"}, Dir: t.TempDir(), FollowMetalink: true}
	first, _, _, err := q.CreateFollowing(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	for _, j := range first {
		if _, err := q.Pause(context.Background(), j.ID); err != nil {
			t.Fatal(err)
		}
	}
	_, _, _, err = q.CreateFollowing(context.Background(), req)
	if id, ok := ExistingJob(err); !ok || id != first[0].ID {
		t.Errorf("again: %v; want ErrExists naming job %d", err, first[0].ID)
	}
	req.Resume = true
	again, fromMetalink, created, err := q.CreateFollowing(context.Background(), req)
	if err != nil || !fromMetalink || created || len(again) != 2 || again[0].ID != first[0].ID || again[1].ID != first[1].ID {
		t.Fatalf("resumed: %+v, from a Metalink %v, created %v, %v; want the same two jobs", again, fromMetalink, created, err)
	}
	for _, j := range again {
		if j.State == api.StatePaused {
			t.Errorf("job %d is still paused", j.ID)
		}
	}
	if n := len(q.Jobs()); n != 2 {
		t.Errorf("%d jobs, want the first two only", n)
	}
}

// Among a job's sources, one that answers with a Metalink holds another
// file: it is rejected with that reason, and the others finish the job.
func TestQueue_Mirrors_MetalinkAnswerRejected(t *testing.T) {
	path, data := testFile(t, 2<<20, 90)
	good := fileMirror(t, filepath.Dir(path), nil)
	meta := newMetalinkServer(t, false)
	meta.set(meta4("video.bin", data, 256<<10, good.URL+"/video.bin"))
	q := mirrorQueue(t)
	j, _, err := q.Create(context.Background(), api.CreateRequest{Sources: []string{meta.URL + "/download?id=5", good.URL + "/video.bin"}, Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	j = finish(t, q, j.ID)
	sameFile(t, j.Path, data)
	bad := j.Progress.Sources[0]
	if bad.State != api.SourceRejected || !strings.Contains(bad.LastError, "Metalink") || bad.Verified != 0 {
		t.Errorf("the source that answers with a Metalink: state %q, error %q, %d verified; want rejected, saying why", bad.State, bad.LastError, bad.Verified)
	}
}

// authMirror serves a directory over ranges on one loopback address, to
// a client that logs in with Basic credentials when it wants some, and
// records the Authorization of every request.
type authMirror struct {
	*httptest.Server

	mu    sync.Mutex
	auths []string
}

// newAuthMirror serves dir on ip to user with password pass; with user
// "", to anyone. Each answer waits delay first.
func newAuthMirror(t *testing.T, ip, dir, user, pass string, delay time.Duration) *authMirror {
	m := &authMirror{}
	fs := http.FileServer(http.Dir(dir))
	m.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m.mu.Lock()
		m.auths = append(m.auths, r.Header.Get("Authorization"))
		m.mu.Unlock()
		time.Sleep(delay)
		if u, p, ok := r.BasicAuth(); user != "" && (!ok || u != user || p != pass) {
			w.Header().Set("WWW-Authenticate", `Basic realm="mirror"`)
			http.Error(w, "who are you", http.StatusUnauthorized)
			return
		}
		fs.ServeHTTP(w, r)
	}))
	ln, err := net.Listen("tcp", ip+":0")
	if err != nil {
		t.Fatal(err)
	}
	m.Listener.Close()
	m.Listener = ln
	m.Start()
	t.Cleanup(m.Close)
	return m
}

// seen returns the Authorization of every request so far.
func (m *authMirror) seen() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.auths)
}

func basic(user, pass string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
}

// A Metalink's logins go to the mirrors of their own hosts, each its
// own, and nowhere else: a mirror on a host with no login is sent none.
// The credentials are used, and shown nowhere: not in the job's view, its
// summary or the daemon's log.
func TestQueue_Metalink_Logins(t *testing.T) {
	path, data := testFile(t, 3<<20+5, 95)
	dir := filepath.Dir(path)
	// The job lasts long enough for every mirror to be asked.
	a := newAuthMirror(t, "127.0.0.1", dir, "ann", "pw-of-ann", 50*time.Millisecond)
	b := newAuthMirror(t, "127.0.0.2", dir, "bob", "pw-of-bob", 50*time.Millisecond)
	c := newAuthMirror(t, "127.0.0.3", dir, "", "", 0)
	var log proctest.LockedBuffer
	q, err := Open(Config{StateDir: t.TempDir(), Logger: slog.New(slog.NewTextHandler(&log, &slog.HandlerOptions{Level: slog.LevelDebug})),
		FlushInterval: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	doc := meta4("f.bin", data, 256<<10, a.URL+"/video.bin", b.URL+"/video.bin", c.URL+"/video.bin")
	logins := []api.Login{{Host: "127.0.0.1", Login: "ann", Password: "pw-of-ann"}, {Host: "127.0.0.2", Login: "bob", Password: "pw-of-bob"},
		{Host: "127.0.0.9", Login: "eve", Password: "pw-of-eve"}}
	js, _, err := q.CreateMetalink(context.Background(), api.MetalinkRequest{Document: doc, Dir: t.TempDir(), MetalinkOptions: api.MetalinkOptions{Logins: logins}})
	if err != nil {
		t.Fatal(err)
	}
	j := finish(t, q, js[0].ID)
	sameFile(t, j.Path, data)
	for _, m := range []struct {
		name   string
		mirror *authMirror
		want   string
	}{{"127.0.0.1", a, basic("ann", "pw-of-ann")}, {"127.0.0.2", b, basic("bob", "pw-of-bob")}, {"127.0.0.3", c, ""}} {
		seen := m.mirror.seen()
		if len(seen) == 0 || slices.ContainsFunc(seen, func(s string) bool { return s != m.want }) {
			t.Errorf("the mirror on %s was sent Authorization %q; want %q every time", m.name, seen, m.want)
		}
	}
	for i, s := range j.Progress.Sources {
		if s.State == api.SourceFailed {
			t.Errorf("mirror %d failed: %s", i, s.LastError)
		}
	}
	if want := "ann:xxxxx@127.0.0.1"; !strings.Contains(j.Sources[0], want) {
		t.Errorf("the job shows its first source as %q, want it with its login and the password hidden", j.Sources[0])
	}
	sum := q.Jobs()[0].Summary()
	for what, s := range map[string]string{
		"job":     fmt.Sprint(j),
		"summary": fmt.Sprint(sum),
		"log":     log.String(),
	} {
		if strings.Contains(s, "pw-of-") {
			t.Errorf("the %s shows a password: %s", what, s)
		}
	}
}

// Logins that cannot be a ~/.netrc's are refused in one line that shows
// no user name or password, before anything is fetched or made.
func TestQueue_Metalink_LoginsRefused(t *testing.T) {
	data := bytes.Repeat([]byte("z"), 300<<10)
	q := mirrorQueue(t)
	doc := meta4("f.bin", data, 256<<10, "http://127.0.0.1:1/f.bin")
	many := make([]api.Login, maxLogins+1)
	for i := range many {
		many[i] = api.Login{Host: fmt.Sprintf("h%d.example", i), Login: "u", Password: "s3cr3t"}
	}
	for _, ls := range [][]api.Login{
		{{Host: "", Login: "ann", Password: "s3cr3t"}},
		{{Host: "a.example/x", Login: "ann", Password: "s3cr3t"}},
		{{Host: "a.example", Login: "", Password: "s3cr3t"}},
		{{Host: "a.example", Login: "ann", Password: strings.Repeat("s3cr3t", 200)}},
		many,
	} {
		js, _, err := q.CreateMetalink(context.Background(), api.MetalinkRequest{Document: doc, Dir: t.TempDir(), MetalinkOptions: api.MetalinkOptions{Logins: ls}})
		if !errors.Is(err, ErrInvalid) || strings.Contains(err.Error(), "s3cr3t") || strings.Contains(err.Error(), "ann") {
			t.Errorf("%v, %v; want ErrInvalid that shows no secret", js, err)
		}
	}
	if n := len(q.Jobs()); n != 0 {
		t.Errorf("refused logins made %d jobs", n)
	}
}
