package e2e

import (
	"crypto/sha256"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/idmproject/idm/daemon/api"
	"github.com/idmproject/idm/internal/proctest"
)

// loginServer serves h on a loopback address to a client that logs in
// as user with password pass (Basic), or to anyone when user is "", and
// records the credentials each request came with.
type loginServer struct {
	*httptest.Server

	mu    sync.Mutex
	users []string // "user:password", or "" for none, per request
}

func newLoginServer(t *testing.T, ip, user, pass string, h http.Handler) *loginServer {
	s := &loginServer{}
	s.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, p, ok := r.BasicAuth()
		s.mu.Lock()
		if ok {
			s.users = append(s.users, u+":"+p)
		} else {
			s.users = append(s.users, "")
		}
		s.mu.Unlock()
		if user != "" && (u != user || p != pass) {
			w.Header().Set("WWW-Authenticate", `Basic realm="idm"`)
			http.Error(w, "who are you", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	}))
	ln, err := net.Listen("tcp", ip+":0")
	if err != nil {
		t.Fatal(err)
	}
	s.Listener.Close()
	s.Listener = ln
	s.Start()
	t.Cleanup(s.Close)
	return s
}

// seen returns the credentials of every request so far.
func (s *loginServer) seen() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.users)
}

// withNetrc returns an idmctl command against d run in a home whose
// ~/.netrc is netrc.
func withNetrc(t *testing.T, d *proctest.Daemon, netrc string, args ...string) proctest.Result {
	t.Helper()
	home := t.TempDir()
	if err := os.WriteFile(filepath.Join(home, ".netrc"), []byte(netrc), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := d.IdmctlCmd(args...)
	cmd.Env = append(cmd.Env, "HOME="+home)
	return proctest.Run(cmd)
}

// noSecret fails the test if what shows a password of the test's netrc.
func noSecret(t *testing.T, what, s string) {
	t.Helper()
	if strings.Contains(s, "pw-") {
		t.Errorf("%s shows a password:\n%s", what, s)
	}
}

// idmctl add --netrc URL, where the URL answers with a Metalink whatever
// its name: add prints the URL's one job at once; the job downloads the
// Metalink with its host's login and, once complete, is followed by the
// Metalink's job, whose mirrors each get their own host's login; a mirror
// on a host the netrc has no machine for gets nothing, not even the
// default entry's. idmctl wait waits for the follower too, the file comes
// whole beside the Metalink, which is kept, and no password shows in
// idmctl ls, idmctl status or idmd's log.
func TestAddURLAnsweredWithMetalink_Netrc(t *testing.T) {
	file, want := proctest.Sample(t, 3<<20, 24)
	files := http.FileServer(http.Dir(filepath.Dir(file)))
	name := filepath.Base(file)
	bob := newLoginServer(t, "127.0.0.2", "bob", "pw-of-bob", files)
	open := newLoginServer(t, "127.0.0.3", "", "", files)
	var doc strings.Builder
	fmt.Fprintf(&doc, `<metalink xmlns="urn:ietf:params:xml:ns:metalink"><file name="release.iso"><size>%d</size><hash type="sha-256">%x</hash>`, len(want), sha256.Sum256(want))
	fmt.Fprintf(&doc, `<url priority="1">%s/%s</url><url priority="2">%s/%s</url></file></metalink>`, bob.URL, name, open.URL, name)
	meta := newLoginServer(t, "127.0.0.1", "ann", "pw-of-ann", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/metalink4+xml")
		http.ServeContent(w, r, "", time.Time{}, strings.NewReader(doc.String()))
	}))
	netrc := "machine 127.0.0.1 login ann password pw-of-ann\nmachine 127.0.0.2 login bob password pw-of-bob\ndefault login eve password pw-of-eve\n"

	d := proctest.NewDaemon(t)
	d.Start()
	out := t.TempDir()
	r := withNetrc(t, d, netrc, "add", "--netrc", "-o", out, meta.URL+"/download?id=5")
	if r.Code != 0 {
		t.Fatalf("idmctl add: exit %d: %s", r.Code, r.Stderr)
	}
	ids := proctest.Lines(r.Stdout)
	if len(ids) != 1 {
		t.Fatalf("idmctl add printed %q; want the URL's one job", r.Stdout)
	}
	id, _ := strconv.ParseUint(ids[0], 10, 64)
	if r := d.Idmctl("wait", ids[0]); r.Code != 0 || !strings.Contains(r.Stderr, "is a Metalink") {
		t.Fatalf("wait: exit %d: %s; want it to wait for the Metalink's job too", r.Code, r.Stderr)
	}
	j := d.Job(id)
	if j.State != api.StateCompleted || len(j.FollowedBy) != 1 {
		t.Fatalf("job %d: %s, followed by %v (%s); want completed and followed by one job", id, j.State, j.FollowedBy, j.FollowError)
	}
	f := d.Job(j.FollowedBy[0])
	if f.State != api.StateCompleted || f.Name != "release.iso" || len(f.Sources) != 2 || f.Following != id {
		t.Errorf("follower %s %q from %q, following %d; want the Metalink's file from its two mirrors, following job %d", f.State, f.Name, f.Sources, f.Following, id)
	}
	if got, err := os.ReadFile(filepath.Join(out, "release.iso")); err != nil || !slices.Equal(got, want) {
		t.Errorf("release.iso: %d bytes (%v), want the file's %d", len(got), err, len(want))
	}
	if got, err := os.ReadFile(j.Path); err != nil || string(got) != doc.String() {
		t.Errorf("the Metalink at %s: %q (%v), want it kept", j.Path, got, err)
	}
	for _, s := range []struct {
		name string
		srv  *loginServer
		want string
	}{{"the Metalink's URL", meta, "ann:pw-of-ann"}, {"the mirror in the netrc", bob, "bob:pw-of-bob"}, {"the mirror not in it", open, ""}} {
		seen := s.srv.seen()
		if len(seen) == 0 || slices.ContainsFunc(seen, func(u string) bool { return u != s.want }) {
			t.Errorf("%s was sent %q; want %q every time", s.name, seen, s.want)
		}
	}
	noSecret(t, "idmctl ls", d.Idmctl("ls").Stdout)
	noSecret(t, "idmctl status", d.Idmctl("status", ids[0]).Stdout)
	noSecret(t, "idmctl status --json", d.Idmctl("status", "--json", ids[0]).Stdout)
	noSecret(t, "idmctl status --json of the follower", d.Idmctl("status", "--json", strconv.FormatUint(f.ID, 10)).Stdout)
	noSecret(t, "idmd's log", d.Logs.String())
}

// idmctl add of a lone URL whose server never answers prints its job at
// once: idmd asks the server nothing before it answers. (It once asked
// for the first byte, and add waited for the stall time-out.)
func TestAddURL_ServerSilent(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var held []net.Conn
	var mu sync.Mutex
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			held = append(held, c) // read nothing, answer nothing
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range held {
			c.Close()
		}
		mu.Unlock()
	})
	d := proctest.NewDaemon(t)
	d.Start()
	start := time.Now()
	r := d.Idmctl("add", "-o", t.TempDir(), "http://"+ln.Addr().String()+"/download?id=5")
	took := time.Since(start)
	if r.Code != 0 || len(proctest.Lines(r.Stdout)) != 1 {
		t.Fatalf("idmctl add: exit %d, stdout %q: %s", r.Code, r.Stdout, r.Stderr)
	}
	// The stall time-out is 10 s; an answer that waited for the server
	// would take that long.
	if took > 5*time.Second {
		t.Errorf("idmctl add took %v", took)
	}
}

// idmctl mirrors add --netrc gives the mirror it adds its host's login.
func TestMirrorsAdd_Netrc(t *testing.T) {
	file, want := proctest.Sample(t, 1<<20, 25)
	bob := newLoginServer(t, "127.0.0.2", "bob", "pw-of-bob", http.FileServer(http.Dir(filepath.Dir(file))))
	d := proctest.NewDaemon(t)
	d.Start()
	out := t.TempDir()
	// A source that is never there: the job waits for another.
	id := d.AddArgs("-o", out, "--no-discover", "http://127.0.0.1:1/"+filepath.Base(file))
	r := withNetrc(t, d, "machine 127.0.0.2 login bob password pw-of-bob\n", "mirrors", "add", "--netrc", strconv.FormatUint(id, 10), bob.URL+"/"+filepath.Base(file))
	if r.Code != 0 {
		t.Fatalf("idmctl mirrors add: exit %d: %s", r.Code, r.Stderr)
	}
	noSecret(t, "idmctl mirrors add", r.Stdout)
	// Wait for the job, not the file: the file is published by a hard
	// link before the partial file's name is removed.
	if r := d.Idmctl("wait", strconv.FormatUint(id, 10)); r.Code != 0 {
		t.Fatalf("idmctl wait: exit %d: %s", r.Code, r.Stderr)
	}
	proctest.SameFile(t, out, want)
	if seen := bob.seen(); len(seen) == 0 || slices.Contains(seen, "") {
		t.Errorf("the mirror was sent %q; want bob's login every time", seen)
	}
	j := d.Job(id)
	if j.State != api.StateCompleted {
		t.Errorf("job %s: %s", j.State, j.LastError)
	}
	noSecret(t, "the job", fmt.Sprint(j))
}
