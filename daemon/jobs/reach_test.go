package jobs

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/idmproject/idm/daemon/api"
	"github.com/idmproject/idm/internal/dnstest"
	"github.com/idmproject/idm/internal/nethook"
	"github.com/idmproject/idm/internal/proctest"
	"github.com/idmproject/idm/internal/servertest"
	"github.com/idmproject/idm/transport/httpsrc"
)

// The loopback addresses these tests make stand for public servers: tests
// may use loopback only.
const (
	publicIP  = "127.0.0.2"
	publicIP2 = "127.0.0.4"
)

// pretendPublic makes publicIP and publicIP2 count as public addresses,
// for the test's duration.
func pretendPublic(t *testing.T) {
	t.Cleanup(nethook.SetClasses(map[netip.Addr]uint8{
		netip.MustParseAddr(publicIP):  uint8(httpsrc.Public),
		netip.MustParseAddr(publicIP2): uint8(httpsrc.Public),
	}))
}

// countingHandler counts the requests h gets.
func countingHandler(h http.Handler) (http.Handler, *atomic.Int64) {
	n := new(atomic.Int64)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		h.ServeHTTP(w, r)
	}), n
}

// announcing serves dir with a Link header announcing the mirrors of
// links, at most 32 KiB each 50 ms to a connection while slow holds: the
// job must still be running when they join.
func announcing(dir, links string, slow *atomic.Bool) http.Handler {
	fs := http.FileServer(http.Dir(dir))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if links != "" {
			w.Header().Set("Link", links)
		}
		fs.ServeHTTP(slowWriter{w, slow}, r)
	})
}

// slowWriter sleeps after each write while slow holds.
type slowWriter struct {
	http.ResponseWriter
	slow *atomic.Bool
}

func (s slowWriter) Write(p []byte) (int, error) {
	var n int
	for len(p) > 0 {
		k, err := s.ResponseWriter.Write(p[:min(len(p), 32<<10)])
		n += k
		if err != nil {
			return n, err
		}
		p = p[k:]
		if s.slow.Load() {
			time.Sleep(50 * time.Millisecond)
		}
	}
	return n, nil
}

// reachOf returns the reach job id's record keeps.
func reachOf(t *testing.T, q *Queue, id uint64) map[string]string {
	t.Helper()
	r, err := q.db.Get(id)
	if err != nil {
		t.Fatal(err)
	}
	return r.SourceReach
}

// A public mirror's announcement of a mirror on this machine is refused
// with its reason in the log, and that mirror never asked; the public
// mirror it announces beside it joins, with the reach a public server
// allows recorded.
func TestQueue_Reach_AnnouncedMirrorOnThisMachineRefused(t *testing.T) {
	pretendPublic(t)
	path, data := testFile(t, 4<<20, 90)
	dir := filepath.Dir(path)
	h, insideAsked := countingHandler(http.FileServer(http.Dir(dir)))
	inside := httptest.NewServer(h)
	t.Cleanup(inside.Close)
	far := servertest.HTTPAt(t, publicIP2, http.FileServer(http.Dir(dir)))
	slow := new(atomic.Bool)
	slow.Store(true)
	announcer := servertest.HTTPAt(t, publicIP, announcing(dir, "<"+inside.URL+"/video.bin>; rel=duplicate; pri=1, <"+far.URL+"/video.bin>; rel=duplicate; pri=2", slow))
	var log proctest.LockedBuffer
	q, err := Open(Config{StateDir: t.TempDir(), Logger: slog.New(slog.NewTextHandler(&log, nil)), FlushInterval: 50 * time.Millisecond, StallTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })

	j, _, err := q.Create(context.Background(), api.CreateRequest{Sources: []string{announcer.URL + "/video.bin"}, Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the public mirror to join", time.Minute, func() bool {
		j, _ = q.Job(j.ID)
		return len(j.Sources) == 2
	})
	slow.Store(false)
	j = finish(t, q, j.ID)
	sameFile(t, j.Path, data)
	if want := far.URL + "/video.bin"; j.Sources[1] != want || insideAsked.Load() != 0 {
		t.Errorf("sources %v, the mirror on this machine asked %d times; want %s joined and it never asked", j.Sources, insideAsked.Load(), want)
	}
	if got, want := reachOf(t, q, j.ID), map[string]string{far.URL + "/video.bin": "public"}; !maps.Equal(got, want) {
		t.Errorf("recorded reach %v, want %v", got, want)
	}
	if want := "refused: 127.0.0.1 is an address of this machine, which a public server may not send idmd to"; !strings.Contains(log.String(), want) {
		t.Errorf("the log does not say %q:\n%s", want, log.String())
	}
}

// A Metalink fetched from a public server may list public mirrors, not
// one on this machine: that one is left out, the job keeps the others,
// with their reach recorded; a Metalink that lists only such mirrors
// makes no job, and says why.
func TestQueue_Reach_MetalinkFromPublicServer(t *testing.T) {
	pretendPublic(t)
	path, data := testFile(t, 2<<20+5, 91)
	dir := filepath.Dir(path)
	h, insideAsked := countingHandler(http.FileServer(http.Dir(dir)))
	inside := httptest.NewServer(h)
	t.Cleanup(inside.Close)
	far := servertest.HTTPAt(t, publicIP2, http.FileServer(http.Dir(dir)))
	docs := map[string]string{
		"/release.meta4": meta4("release.iso", data, 256<<10, inside.URL+"/video.bin", far.URL+"/video.bin"),
		"/inside.meta4":  meta4("release.iso", data, 256<<10, inside.URL+"/video.bin", "http://localhost:1/video.bin"),
	}
	meta := servertest.HTTPAt(t, publicIP, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/metalink4+xml")
		io.WriteString(w, docs[r.URL.Path])
	}))
	q := mirrorQueue(t)

	js, _, err := q.CreateMetalink(context.Background(), api.MetalinkRequest{URL: meta.URL + "/inside.meta4", Dir: t.TempDir()})
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "an address of this machine, which a public server may not send idmd to") {
		t.Errorf("a Metalink of mirrors on this machine only: %v, %v; want ErrInvalid saying why", js, err)
	}
	if n := len(q.Jobs()); n != 0 {
		t.Fatalf("%d jobs made", n)
	}

	js, _, err = q.CreateMetalink(context.Background(), api.MetalinkRequest{URL: meta.URL + "/release.meta4", Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	j := finish(t, q, js[0].ID)
	sameFile(t, j.Path, data)
	if want := far.URL + "/video.bin"; len(j.Sources) != 1 || j.Sources[0] != want || insideAsked.Load() != 0 {
		t.Errorf("sources %v, the mirror on this machine asked %d times; want only %s", j.Sources, insideAsked.Load(), want)
	}
	if got, want := reachOf(t, q, j.ID), map[string]string{far.URL + "/video.bin": "public"}; !maps.Equal(got, want) {
		t.Errorf("recorded reach %v, want %v", got, want)
	}
}

// A mirror a public server announced stays one across a restart: when
// its name comes to resolve to this machine, the job started again by a
// new queue refuses it at the dial, and nothing is asked there.
func TestQueue_Reach_KeptAcrossRestart(t *testing.T) {
	pretendPublic(t)
	path, data := testFile(t, 4<<20, 92)
	dir := filepath.Dir(path)
	slow := new(atomic.Bool)
	slow.Store(true)
	evil, evilAsked := countingHandler(http.FileServer(http.Dir(dir)))
	var port string
	for range 10 {
		good := servertest.HTTPAt(t, publicIP2, announcing(dir, "", slow))
		_, port, _ = net.SplitHostPort(good.Listener.Addr().String())
		if _, err := servertest.HTTPOn(t, "127.0.0.1:"+port, evil); err == nil {
			break
		}
		good.Close()
		port = ""
	}
	if port == "" {
		t.Fatal("no port free on both addresses")
	}
	var to atomic.Value
	to.Store(netip.MustParseAddr(publicIP2))
	t.Cleanup(nethook.SetResolver(dnstest.Resolver(func(name string) netip.Addr {
		if name == "learned.test" {
			return to.Load().(netip.Addr)
		}
		return netip.Addr{}
	})))
	learned := "http://learned.test:" + port + "/video.bin"
	announcer := servertest.HTTPAt(t, publicIP, announcing(dir, "<"+learned+">; rel=duplicate", slow))
	cfg := Config{StateDir: t.TempDir(), Logger: quietLog(), FlushInterval: 50 * time.Millisecond, StallTimeout: 5 * time.Second}
	q, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	j, _, err := q.Create(context.Background(), api.CreateRequest{Sources: []string{announcer.URL + "/video.bin"}, Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the announced mirror to join and deliver", time.Minute, func() bool {
		j, _ = q.Job(j.ID)
		return len(j.Sources) == 2 && len(j.Progress.Sources) == 2 && j.Progress.Sources[1].Verified > 0
	})
	// The view says which source a server named, and where it may lead.
	shownReach := func(j api.Job) []string {
		var out []string
		for _, s := range j.Progress.Sources {
			out = append(out, s.Reach)
		}
		return out
	}
	if got := shownReach(j); !slices.Equal(got, []string{"", "public"}) {
		t.Errorf("the running job shows reach %q, want the user's source none and the announced one public", got)
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}

	to.Store(netip.MustParseAddr("127.0.0.1"))
	slow.Store(false)
	q, err = Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	if got, want := reachOf(t, q, j.ID), map[string]string{learned: "public"}; !maps.Equal(got, want) {
		t.Errorf("recorded reach %v, want %v", got, want)
	}
	j = finish(t, q, j.ID)
	sameFile(t, j.Path, data)
	if got := shownReach(j); !slices.Equal(got, []string{"", "public"}) {
		t.Errorf("the ended job shows reach %q, want the user's source none and the announced one public", got)
	}
	if evilAsked.Load() != 0 {
		t.Errorf("after the restart, the announced mirror's name led to this machine: %d requests there", evilAsked.Load())
	}
	if s := j.Progress.Sources[1]; s.State != api.SourceFailed || !strings.Contains(s.LastError, "refused: learned.test (127.0.0.1) is an address of this machine") {
		t.Errorf("the announced mirror after the restart: state %q, error %q; want failed, refused", s.State, s.LastError)
	}
}

// What the user adds is the user's, whatever the job's other sources:
// even a mirror a server announced, once the user names it again.
func TestQueue_Reach_UserAddedSourcesUnrestricted(t *testing.T) {
	got := nextReach(map[string]string{"http://a.example/f": "public", "http://b.example/f": "internal", "http://gone.example/f": "public"},
		[]string{"http://a.example/f", "http://b.example/f", "http://c.example/f", "http://d.example/f"},
		[]string{"http://b.example/f", "http://c.example/f"}, httpsrc.Machine)
	if want := map[string]string{"http://a.example/f": "public"}; !maps.Equal(got, want) {
		t.Errorf("after the user's add: %v, want %v", got, want)
	}
	got = nextReach(nil, []string{"http://a.example/f", "http://c.example/f"}, []string{"http://c.example/f"}, httpsrc.Internal)
	if want := map[string]string{"http://c.example/f": "internal"}; !maps.Equal(got, want) {
		t.Errorf("after a server's announcement: %v, want %v", got, want)
	}
	if got := nextReach(nil, []string{"http://a.example/f"}, []string{"http://a.example/f"}, httpsrc.Machine); got != nil {
		t.Errorf("a job of the user's sources: %v, want none", got)
	}
}

// A mirror the user adds (idmctl mirrors add) is the user's, on this
// machine too, beside a public server's sources.
func TestQueue_Reach_UserAddedMirrorOnThisMachine(t *testing.T) {
	pretendPublic(t)
	path, data := testFile(t, 4<<20, 93)
	dir := filepath.Dir(path)
	h, insideAsked := countingHandler(http.FileServer(http.Dir(dir)))
	inside := httptest.NewServer(h)
	t.Cleanup(inside.Close)
	slow := new(atomic.Bool)
	slow.Store(true)
	public := servertest.HTTPAt(t, publicIP, announcing(dir, "", slow))
	q := mirrorQueue(t)
	j, _, err := q.Create(context.Background(), api.CreateRequest{Sources: []string{public.URL + "/video.bin"}, Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := q.SetSources(context.Background(), j.ID, []string{inside.URL + "/video.bin"}, nil); err != nil {
		t.Fatal(err)
	}
	j = finish(t, q, j.ID)
	sameFile(t, j.Path, data)
	if insideAsked.Load() == 0 || j.Progress.Sources[1].Verified == 0 {
		t.Errorf("the user's mirror on this machine: %d requests, %+v; want its share", insideAsked.Load(), j.Progress.Sources[1])
	}
	if got := reachOf(t, q, j.ID); got != nil {
		t.Errorf("recorded reach %v, want none: every source is the user's", got)
	}
}

// TestQueue_Reach_FollowedMetalinkFromPublicServer shows that a Metalink
// a job downloads from a public server and then follows gives its mirrors
// no more than that server allows: one on this machine is left out, the
// public one kept.
func TestQueue_Reach_FollowedMetalinkFromPublicServer(t *testing.T) {
	pretendPublic(t)
	path, data := testFile(t, 1<<20+7, 92)
	dir := filepath.Dir(path)
	h, insideAsked := countingHandler(http.FileServer(http.Dir(dir)))
	inside := httptest.NewServer(h)
	t.Cleanup(inside.Close)
	far := servertest.HTTPAt(t, publicIP2, http.FileServer(http.Dir(dir)))
	doc := meta4("release.iso", data, 256<<10, inside.URL+"/video.bin", far.URL+"/video.bin")
	meta := servertest.HTTPAt(t, publicIP, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/metalink4+xml")
		http.ServeContent(w, r, "", time.Time{}, strings.NewReader(doc))
	}))
	q := mirrorQueue(t)

	j, _, err := q.Create(context.Background(), api.CreateRequest{Sources: []string{meta.URL + "/get?id=7"}, Dir: t.TempDir(), FollowMetalink: true})
	if err != nil {
		t.Fatal(err)
	}
	j = finish(t, q, j.ID)
	if len(j.FollowedBy) != 1 || j.FollowError != "" {
		t.Fatalf("followed by %v (%q); want the Metalink's one job", j.FollowedBy, j.FollowError)
	}
	f := finish(t, q, j.FollowedBy[0])
	sameFile(t, f.Path, data)
	if len(f.Sources) != 1 || !strings.Contains(f.Sources[0], publicIP2) {
		t.Errorf("the follower's sources are %v; want only the public mirror", f.Sources)
	}
	if n := insideAsked.Load(); n != 0 {
		t.Errorf("the mirror on this machine was asked %d times", n)
	}
}
