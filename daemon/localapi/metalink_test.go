package localapi

import (
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/idmproject/idm/daemon/api"
	"github.com/idmproject/idm/daemon/jobs"
)

// countingServer serves HTTP on loopback and counts the connections made
// to it; with answer, it answers every request with a 404, and otherwise
// never.
func countingServer(t *testing.T, answer bool) (url string, conns *atomic.Int64) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	conns = new(atomic.Int64)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !answer {
			<-r.Context().Done()
			return
		}
		http.NotFound(w, r)
	}), ConnState: func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return "http://" + ln.Addr().String(), conns
}

// POST /v1/jobs with follow_metalink answers at once with the one job of
// the lone URL, whatever the URL's server does: it asks the server
// nothing. The job here cannot even start (a job whose server never
// answers holds the one slot), and the URL's server has had no
// connection when the answer comes. Metalink options without
// follow_metalink are refused.
func TestServer_CreateFollowMetalink_AsksNothing(t *testing.T) {
	silent, busyConns := countingServer(t, false)
	url, conns := countingServer(t, true)
	_, c := startControl(t, jobs.Config{MaxActive: 1, StallTimeout: time.Minute})
	var busy api.Job
	if status, eb := c.do("POST", "/v1/jobs", mustJSON(api.CreateRequest{Sources: []string{silent + "/f"}, Dir: t.TempDir()}), &busy); status != http.StatusCreated {
		t.Fatalf("%d %+v", status, eb)
	}
	waitFor(t, "the first job to take the slot", 10*time.Second, func() bool { return busyConns.Load() > 0 })

	var one api.Job
	start := time.Now()
	status, eb := c.do("POST", "/v1/jobs", mustJSON(api.CreateRequest{Sources: []string{url + "/download?id=5"}, Dir: t.TempDir(), FollowMetalink: true,
		MetalinkOptions: api.MetalinkOptions{Select: []string{"a.iso"}}}), &one)
	took := time.Since(start)
	if status != http.StatusCreated || one.ID == 0 || len(one.Sources) != 1 || one.State != api.StateQueued || !one.FollowMetalink {
		t.Fatalf("%d %+v, job %+v; want 201 and the URL's one job, queued, following its Metalink", status, eb, one)
	}
	if n := conns.Load(); n != 0 {
		t.Errorf("the URL's server had %d connections during the request (%v)", n, took)
	}
	status, eb = c.do("POST", "/v1/jobs", mustJSON(api.CreateRequest{Sources: []string{url + "/download"}, Dir: t.TempDir(),
		MetalinkOptions: api.MetalinkOptions{Select: []string{"a.iso"}}}), nil)
	if status != http.StatusBadRequest || !strings.Contains(eb.Error, "follow_metalink") {
		t.Errorf("select without follow_metalink: %d %+v; want 400 saying why", status, eb)
	}
}
