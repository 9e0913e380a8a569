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
	"sync/atomic"
	"testing"
	"time"

	"github.com/idmproject/idm/daemon/api"
	"github.com/idmproject/idm/internal/proctest"
)

// metalinkServer answers every request with its document, by ranges as
// a file server does, as a Metalink 4 (or of the type it is set to), as
// a mirror network's download script does, whatever the URL's name.
type metalinkServer struct {
	*httptest.Server

	mu    sync.Mutex
	doc   string
	ctype string
}

func newMetalinkServer(t *testing.T) *metalinkServer {
	m := &metalinkServer{ctype: "application/metalink4+xml"}
	m.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m.mu.Lock()
		doc, ctype := m.doc, m.ctype
		m.mu.Unlock()
		w.Header().Set("Content-Type", ctype)
		http.ServeContent(w, r, "", time.Time{}, strings.NewReader(doc))
	}))
	t.Cleanup(m.Close)
	return m
}

func (m *metalinkServer) set(doc string) {
	m.mu.Lock()
	m.doc = doc
	m.mu.Unlock()
}

func (m *metalinkServer) setType(ctype string) {
	m.mu.Lock()
	m.ctype = ctype
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

// followQueue is mirrorQueue with the queue's log kept, and the
// completion of a job failing while fail says so.
func followQueue(t *testing.T, dir string, log *proctest.LockedBuffer, fail func(id uint64) error) *Queue {
	t.Helper()
	q, err := Open(Config{StateDir: dir, Logger: slog.New(slog.NewTextHandler(log, &slog.HandlerOptions{Level: slog.LevelDebug})),
		FlushInterval: 50 * time.Millisecond, StallTimeout: 5 * time.Second, failComplete: fail})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	return q
}

// A lone URL is one job, made at once; when it answers with a Metalink
// 4, whatever its name, the job downloads the document as its file and,
// once complete, is followed by the Metalink's jobs, made as the
// Metalink's URL would make them (with --select, only those selected):
// their files come from the Metalink's mirrors, checked against its
// pieces, and the URL itself, listed among the mirrors, is left out. The
// job stays completed, its file kept, and names its followers, which name
// it; the event that says it completed names them too.
func TestQueue_FollowMetalink(t *testing.T) {
	pa, a := testFile(t, 2<<20+11, 91)
	pb, b := testFile(t, 1<<20+2, 93)
	ma := fileMirror(t, filepath.Dir(pa), nil)
	mb := fileMirror(t, filepath.Dir(pb), nil)
	for _, tt := range []struct {
		name   string
		sel    []string
		follow []string
	}{
		{"every file", nil, []string{"a.bin", "b.bin"}},
		{"select", []string{"b.bin"}, []string{"b.bin"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			meta := newMetalinkServer(t)
			src := meta.URL + "/download?id=5"
			doc := meta4Files(metaFile{"a.bin", a, []string{src, ma.URL + "/video.bin"}}, metaFile{"b.bin", b, []string{"http://127.0.0.1:1/b.bin", mb.URL + "/video.bin"}})
			meta.set(doc)
			var log proctest.LockedBuffer
			q := followQueue(t, t.TempDir(), &log, nil)
			sub, err := q.Subscribe(0)
			if err != nil {
				t.Fatal(err)
			}
			defer sub.Close()
			out := t.TempDir()
			j, created, err := q.Create(context.Background(), api.CreateRequest{Sources: []string{src}, Dir: out, FollowMetalink: true,
				MetalinkOptions: api.MetalinkOptions{Select: tt.sel, Locations: []string{"de"}}})
			if err != nil || !created || !j.FollowMetalink {
				t.Fatalf("Create = %+v, %v, %v; want one new job that follows its Metalink", j, created, err)
			}
			j = finish(t, q, j.ID)
			sameFile(t, j.Path, []byte(doc))
			if len(j.FollowedBy) != len(tt.follow) || j.FollowError != "" {
				t.Fatalf("followed by %v (%q); want the jobs of %q", j.FollowedBy, j.FollowError, tt.follow)
			}
			for i, id := range j.FollowedBy {
				f := finish(t, q, id)
				want := map[string][]byte{"a.bin": a, "b.bin": b}[tt.follow[i]]
				if f.Name != tt.follow[i] || f.Following != j.ID || f.OwnHashes || f.FollowMetalink {
					t.Errorf("job %d: %q, following %d, own hashes %v; want %q following job %d, checked by the Metalink", id, f.Name, f.Following, f.OwnHashes, tt.follow[i], j.ID)
				}
				if slices.ContainsFunc(f.Sources, func(s string) bool { return strings.HasPrefix(s, meta.URL) }) {
					t.Errorf("job %d has sources %q: the Metalink itself among them", id, f.Sources)
				}
				sameFile(t, f.Path, want)
			}
			names := append([]string{"download"}, tt.follow...)
			slices.Sort(names)
			if got := dirNames(t, out); !slices.Equal(got, names) {
				t.Errorf("the directory holds %q, want %q: the Metalink and the files followed", got, names)
			}
			// The stream never shows the job completed without its
			// followers: they are made with its completion.
			for {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				ev, err := sub.Next(ctx)
				cancel()
				if err != nil {
					t.Fatalf("event stream: %v", err)
				}
				if ev.Job.ID == j.ID && ev.Job.State == api.StateCompleted {
					if !slices.Equal(ev.Job.FollowedBy, j.FollowedBy) {
						t.Errorf("completed event names %v, want %v", ev.Job.FollowedBy, j.FollowedBy)
					}
					break
				}
			}
			if !strings.Contains(log.String(), "followed_by") {
				t.Errorf("the log does not say the job was followed:\n%s", log.String())
			}
		})
	}
}

// Adding a lone URL asks nothing of it: Create answers with its one job
// while the job cannot even start (the one slot is taken by a job whose
// server never answers), and the URL's server has had no connection.
// Once the job may start, the server is asked.
func TestQueue_FollowMetalink_CreateAsksNothing(t *testing.T) {
	silent := recordingListener(t, false)
	asked := recordingListener(t, true)
	q, err := Open(Config{StateDir: t.TempDir(), Logger: quietLog(), MaxActive: 1, StallTimeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	busy, _, err := q.Create(context.Background(), api.CreateRequest{Sources: []string{"http://" + silent.Addr().String() + "/f"}, Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the first job to take the slot", 10*time.Second, func() bool { return silent.conns() > 0 })
	j, created, err := q.Create(context.Background(), api.CreateRequest{Sources: []string{"http://" + asked.Addr().String() + "/download?id=5"}, Dir: t.TempDir(),
		FollowMetalink: true, MetalinkOptions: api.MetalinkOptions{Select: []string{"a.iso"}}})
	if err != nil || !created || j.State != api.StateQueued || len(j.Sources) != 1 {
		t.Fatalf("Create = %+v, %v, %v; want the URL's one job, queued", j, created, err)
	}
	if n := asked.conns(); n != 0 {
		t.Fatalf("the URL's server had %d connections before its job started", n)
	}
	if _, err := q.Cancel(context.Background(), busy.ID); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the job to ask its server", 10*time.Second, func() bool { return asked.conns() > 0 })
}

// listener counts the connections made to it on loopback.
type listener struct {
	net.Listener
	n atomic.Int64
}

func (l *listener) conns() int64 { return l.n.Load() }

// recordingListener listens on loopback and counts its connections;
// with answer, it answers each request with a 404, and otherwise never.
func recordingListener(t *testing.T, answer bool) *listener {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := &listener{Listener: ln}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !answer {
			<-r.Context().Done()
			return
		}
		http.NotFound(w, r)
	}), ConnState: func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			l.n.Add(1)
		}
	}}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return l
}

// A crash, or a store that fails, between the publication of a Metalink
// job's file and the write of its completion loses nothing and makes
// nothing twice: the job, shown completed, is not followed then; the
// next start finds it published and unfinished, completes it and makes
// the Metalink's jobs, once; the start after finds nothing to do.
func TestQueue_FollowMetalink_AfterRestart(t *testing.T) {
	pa, a := testFile(t, 1<<20+3, 96)
	ma := fileMirror(t, filepath.Dir(pa), nil)
	meta := newMetalinkServer(t)
	meta.set(meta4("a.bin", a, 256<<10, ma.URL+"/video.bin"))
	state, out := t.TempDir(), t.TempDir()
	var log proctest.LockedBuffer
	var failed atomic.Bool
	q := followQueue(t, state, &log, func(uint64) error {
		failed.Store(true)
		return errors.New("the disk is full")
	})
	j, _, err := q.Create(context.Background(), api.CreateRequest{Sources: []string{meta.URL + "/get"}, Dir: out, FollowMetalink: true,
		MetalinkOptions: api.MetalinkOptions{Logins: []api.Login{{Host: "127.0.0.9", Login: "ann", Password: "pw-of-ann"}}}})
	if err != nil {
		t.Fatal(err)
	}
	j = finish(t, q, j.ID)
	if !failed.Load() || len(j.FollowedBy) != 0 || len(q.Jobs()) != 1 {
		t.Fatalf("the write failed: %v; followed by %v, %d jobs; want none made", failed.Load(), j.FollowedBy, len(q.Jobs()))
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}

	q = followQueue(t, state, &log, nil)
	j, err = q.Job(j.ID)
	if err != nil || j.State != api.StateCompleted || len(j.FollowedBy) != 1 {
		t.Fatalf("after the restart: %+v, %v; want it completed and followed", j, err)
	}
	sameFile(t, finish(t, q, j.FollowedBy[0]).Path, a)
	rec, err := q.db.Get(j.ID)
	if err != nil || rec.Follow == nil || len(rec.Follow.Logins) != 0 {
		t.Errorf("the completed job's record keeps %+v (%v); want its logins forgotten", rec.Follow, err)
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}

	q = followQueue(t, state, &log, nil)
	if n := len(q.Jobs()); n != 2 {
		t.Errorf("%d jobs after a second restart, want the job and its one follower", n)
	}
	if got := dirNames(t, out); !slices.Equal(got, []string{"a.bin", "get"}) {
		t.Errorf("the directory holds %q, want the Metalink and its file, once each", got)
	}
	if strings.Contains(log.String(), "pw-of-ann") {
		t.Error("the log shows a password")
	}
}

// A job that follows Metalinks but whose file is none, or none idmd
// reads, is a plain job: a file is completed and not followed (and says
// why when select or locations were given for a Metalink); a Metalink 3
// fails the job, saying why; a Metalink 4 that does not parse, or is
// larger than a Metalink may be, is completed, not followed, and says
// why. A URL named .meta4 is read as a Metalink whatever its type.
func TestQueue_FollowMetalink_NotFollowed(t *testing.T) {
	path, data := testFile(t, 1<<20, 94)
	mirror := fileMirror(t, filepath.Dir(path), nil)
	big := strings.Repeat("x", 16<<20+1)
	q := mirrorQueue(t)
	for _, tt := range []struct {
		name, ctype, doc, path string
		sel                    []string
		state, says            string // says: in the follow error, or the last error of a failed job
	}{
		{name: "a file", ctype: "application/octet-stream", doc: "plain data", path: "/f.bin", state: api.StateCompleted},
		{name: "a file, with select", ctype: "text/plain", doc: "plain data", path: "/f.txt", sel: []string{"a"}, state: api.StateCompleted, says: "no Metalink (text/plain)"},
		{name: "Metalink 3", ctype: "application/metalink+xml", doc: `<metalink version="3.0" xmlns="http://www.metalinker.org/"></metalink>`, path: "/f?token=s3cr3t", state: api.StateFailed, says: "Metalink 3"},
		{name: "not XML", ctype: "application/metalink4+xml", doc: "<html>sorry</html>", path: "/get", state: api.StateCompleted, says: "not a Metalink 4"},
		{name: "too large", ctype: "application/metalink4+xml", doc: big, path: "/get", state: api.StateCompleted, says: "larger than 16 MiB"},
		{name: "named .meta4", ctype: "application/octet-stream", doc: "<html>sorry</html>", path: "/list.meta4", state: api.StateCompleted, says: "not a Metalink 4"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			meta := newMetalinkServer(t)
			meta.set(tt.doc)
			meta.setType(tt.ctype)
			j, _, err := q.Create(context.Background(), api.CreateRequest{Sources: []string{meta.URL + tt.path}, Dir: t.TempDir(), FollowMetalink: true,
				MetalinkOptions: api.MetalinkOptions{Select: tt.sel}})
			if err != nil {
				t.Fatal(err)
			}
			j = ended(t, q, j.ID)
			why := j.FollowError
			if tt.state == api.StateFailed {
				why = j.LastError
			}
			if j.State != tt.state || len(j.FollowedBy) != 0 || (tt.says == "") != (why == "") || !strings.Contains(why, tt.says) ||
				strings.Contains(why, "s3cr3t") || strings.Contains(why, "\n") {
				t.Errorf("%s, followed by %v, saying %q; want %s, not followed, saying %q in one line", j.State, j.FollowedBy, why, tt.state, tt.says)
			}
			if tt.state == api.StateCompleted {
				sameFile(t, j.Path, []byte(tt.doc))
			}
		})
	}
	// Without follow_metalink, select and locations are refused; with it,
	// for anything but a lone http(s) source.
	n := len(q.Jobs())
	for _, req := range []api.CreateRequest{
		{Sources: []string{mirror.URL + "/video.bin"}, MetalinkOptions: api.MetalinkOptions{Locations: []string{"de"}}},
		{Sources: []string{mirror.URL + "/video.bin", mirror.URL + "/b/video.bin"}, FollowMetalink: true, MetalinkOptions: api.MetalinkOptions{Select: []string{"a"}}},
		{Sources: []string{"idm://127.0.0.1:1"}, FollowMetalink: true, MetalinkOptions: api.MetalinkOptions{Select: []string{"a"}}},
	} {
		req.Dir = t.TempDir()
		if _, _, err := q.Create(context.Background(), req); !errors.Is(err, ErrInvalid) {
			t.Errorf("%+v: %v; want ErrInvalid", req, err)
		}
	}
	if len(q.Jobs()) != n {
		t.Error("a refused request made a job")
	}
	j, _, err := q.Create(context.Background(), api.CreateRequest{Sources: []string{mirror.URL + "/video.bin"}, Dir: t.TempDir(), FollowMetalink: true})
	if err != nil {
		t.Fatal(err)
	}
	sameFile(t, finish(t, q, j.ID).Path, data)
}

// A file of the Metalink whose unfinished job exists already, of the
// same mirrors into the same directory, is not made twice: the follow
// names that job among its followers, and makes the others.
func TestQueue_FollowMetalink_JobExists(t *testing.T) {
	data := bytes.Repeat([]byte("y"), 300<<10)
	meta := newMetalinkServer(t)
	meta.set(meta4Files(metaFile{"a.bin", data, []string{"http://127.0.0.1:1/a.bin"}}, metaFile{"b.bin", data, []string{"http://127.0.0.1:1/b.bin"}}))
	q := mirrorQueue(t)
	out := t.TempDir()
	before, _, err := q.Create(context.Background(), api.CreateRequest{Sources: []string{"http://127.0.0.1:1/b.bin"}, Dir: out})
	if err != nil {
		t.Fatal(err)
	}
	j, _, err := q.Create(context.Background(), api.CreateRequest{Sources: []string{meta.URL + "/get"}, Dir: out, FollowMetalink: true})
	if err != nil {
		t.Fatal(err)
	}
	j = finish(t, q, j.ID)
	if len(j.FollowedBy) != 2 || j.FollowedBy[1] != before.ID || j.FollowedBy[0] <= j.ID {
		t.Fatalf("followed by %v; want a new job for a.bin and job %d for b.bin", j.FollowedBy, before.ID)
	}
	if n := len(q.Jobs()); n != 3 {
		t.Errorf("%d jobs, want 3", n)
	}
}

// Among a job's sources, one that answers with a Metalink holds another
// file: it is rejected with that reason, and the others finish the job.
func TestQueue_Mirrors_MetalinkAnswerRejected(t *testing.T) {
	path, data := testFile(t, 2<<20, 90)
	good := fileMirror(t, filepath.Dir(path), nil)
	meta := newMetalinkServer(t)
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

// The logins sent with a lone URL go to the mirrors of the Metalink it
// turns out to be, each to its own host's, once the job completes, and
// the completed job's record keeps them no more. No view, summary or log
// line shows a password.
func TestQueue_FollowMetalink_Logins(t *testing.T) {
	path, data := testFile(t, 1<<20+5, 97)
	dir := filepath.Dir(path)
	a := newAuthMirror(t, "127.0.0.2", dir, "ann", "pw-of-ann", 0)
	c := newAuthMirror(t, "127.0.0.3", dir, "", "", 0)
	meta := newMetalinkServer(t)
	meta.set(meta4("f.bin", data, 256<<10, a.URL+"/video.bin", c.URL+"/video.bin"))
	var log proctest.LockedBuffer
	q := followQueue(t, t.TempDir(), &log, nil)
	logins := []api.Login{{Host: "127.0.0.2", Login: "ann", Password: "pw-of-ann"}, {Host: "127.0.0.9", Login: "eve", Password: "pw-of-eve"}}
	j, _, err := q.Create(context.Background(), api.CreateRequest{Sources: []string{meta.URL + "/get"}, Dir: t.TempDir(), FollowMetalink: true,
		MetalinkOptions: api.MetalinkOptions{Logins: logins}})
	if err != nil {
		t.Fatal(err)
	}
	shown := []string{fmt.Sprint(j)}
	j = finish(t, q, j.ID)
	if len(j.FollowedBy) != 1 {
		t.Fatalf("followed by %v (%s), want one job", j.FollowedBy, j.FollowError)
	}
	f := finish(t, q, j.FollowedBy[0])
	sameFile(t, f.Path, data)
	for _, m := range []struct {
		mirror *authMirror
		want   string
	}{{a, basic("ann", "pw-of-ann")}, {c, ""}} {
		if seen := m.mirror.seen(); len(seen) == 0 || slices.ContainsFunc(seen, func(s string) bool { return s != m.want }) {
			t.Errorf("the mirror at %s was sent Authorization %q; want %q every time", m.mirror.URL, seen, m.want)
		}
	}
	rec, err := q.db.Get(j.ID)
	if err != nil || rec.Follow == nil || len(rec.Follow.Logins) != 0 {
		t.Errorf("the completed job's record keeps %+v (%v); want its logins forgotten", rec.Follow, err)
	}
	shown = append(shown, fmt.Sprint(j), fmt.Sprint(f), fmt.Sprint(q.Jobs()), log.String())
	for _, s := range shown {
		if strings.Contains(s, "pw-of-") {
			t.Errorf("a password shows: %s", s)
		}
	}
}
