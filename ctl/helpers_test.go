package ctl

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/idmproject/idm/daemon/api"
)

// fakeDaemon is an HTTP server on a real Unix socket that answers the
// control API's routes with whatever each test registers, and records
// the requests it got.
type fakeDaemon struct {
	t    *testing.T
	sock string
	mux  *http.ServeMux
	srv  *http.Server
	done chan struct{}

	mu   sync.Mutex
	reqs []request
}

// request is one request the fake daemon got.
type request struct {
	Method, Path, Body string
}

func newFakeDaemon(t *testing.T) *fakeDaemon {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "s")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	d := &fakeDaemon{t: t, sock: sock, mux: http.NewServeMux(), done: make(chan struct{})}
	d.srv = &http.Server{Handler: http.HandlerFunc(d.serve)}
	go func() {
		defer close(d.done)
		d.srv.Serve(ln)
	}()
	t.Cleanup(d.stop)
	return d
}

// stop kills the daemon: every connection is dropped and the socket file
// removed. It is safe to call more than once.
func (d *fakeDaemon) stop() {
	d.srv.Close()
	<-d.done
}

func (d *fakeDaemon) serve(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	d.mu.Lock()
	d.reqs = append(d.reqs, request{r.Method, r.URL.Path, string(bytes.TrimSpace(b))})
	d.mu.Unlock()
	r.Body = io.NopCloser(bytes.NewReader(b))
	d.mux.ServeHTTP(w, r)
}

// requests returns the requests so far, but for event streams.
func (d *fakeDaemon) requests() []request {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []request
	for _, r := range d.reqs {
		if !strings.HasSuffix(r.Path, "/events") {
			out = append(out, r)
		}
	}
	return out
}

// handle registers h for a ServeMux pattern such as "POST /v1/jobs".
func (d *fakeDaemon) handle(pattern string, h http.HandlerFunc) { d.mux.HandleFunc(pattern, h) }

// reply registers a canned JSON answer.
func (d *fakeDaemon) reply(pattern string, status int, v any) {
	d.handle(pattern, func(w http.ResponseWriter, r *http.Request) { writeJSON(w, status, v) })
}

// stream registers an event stream that sends events, then ends cleanly.
func (d *fakeDaemon) stream(pattern string, events ...api.Event) {
	d.handle(pattern, func(w http.ResponseWriter, r *http.Request) {
		sendEvents(w, events...)
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	if v != nil {
		json.NewEncoder(w).Encode(v)
	}
}

// sendEvents writes events as NDJSON, flushing each, as idmd does.
func sendEvents(w http.ResponseWriter, events ...api.Event) {
	w.Header().Set("Content-Type", "application/x-ndjson")
	enc := json.NewEncoder(w)
	for _, ev := range events {
		enc.Encode(ev)
		w.(http.Flusher).Flush()
	}
}

// syncBuffer is a bytes.Buffer safe to write from one goroutine while the
// test reads it in another.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// eventually polls cond until it holds (true) or 5 s have passed
// (false). Unlike t.Fatal, it may be used in any goroutine.
func eventually(cond func() bool) bool {
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(5 * time.Millisecond)
	}
	return true
}

// result is what one run of idmctl produced.
type result struct {
	code           int
	stdout, stderr string
}

// run runs idmctl against d with args.
func run(t *testing.T, d *fakeDaemon, args ...string) result {
	t.Helper()
	return runCLI(t, context.Background(), nil, d, args...)
}

// runCLI runs idmctl against d (if not nil) with args; tune, if not nil,
// adjusts the cli before it runs.
func runCLI(t *testing.T, ctx context.Context, tune func(*cli), d *fakeDaemon, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var stdout, stderr syncBuffer
	c := newCLI(&stdout, &stderr)
	c.retryInterval = 10 * time.Millisecond
	c.retryTimeout = 2 * time.Second
	c.lineInterval = 10 * time.Millisecond
	if tune != nil {
		tune(c)
	}
	if d != nil {
		args = append([]string{"--socket", d.sock}, args...)
	}
	code := c.main(ctx, args)
	if ctx.Err() == context.DeadlineExceeded {
		t.Fatalf("idmctl %v did not end", args)
	}
	return result{code, stdout.String(), stderr.String()}
}

// checkResult compares a run with what was wanted.
func checkResult(t *testing.T, got result, code int, stdout, stderr string) {
	t.Helper()
	if got.code != code || got.stdout != stdout || got.stderr != stderr {
		t.Errorf("got exit %d\nstdout:\n%s\nstderr:\n%s\nwant exit %d\nstdout:\n%s\nstderr:\n%s",
			got.code, got.stdout, got.stderr, code, stdout, stderr)
	}
}

var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// job returns a job with two sources, as the daemon would show it.
func testJob(id uint64, state string) api.Job {
	return api.Job{
		ID:      id,
		Sources: []string{"idm://127.0.0.1:9001", "idm://127.0.0.1:9002"},
		Dir:     "/data",
		State:   state,
		Progress: api.Progress{
			State:   state,
			Sources: []api.SourceProgress{{Source: "idm://127.0.0.1:9001", State: api.SourceConnecting}, {Source: "idm://127.0.0.1:9002", State: api.SourceConnecting}},
		},
	}
}

// progressed returns j with its progress at time at: each source's
// verified bytes, the file's size and name.
func progressed(j api.Job, at time.Time, size int64, verified ...int64) api.Job {
	j.Name, j.Size = "f.bin", size
	p := api.Progress{State: j.State, Size: size, Time: at}
	for i, v := range verified {
		p.Sources = append(p.Sources, api.SourceProgress{Source: j.Sources[i], State: api.SourceUp, Verified: v})
		p.Verified += v
		p.Fetched += v
	}
	j.Progress = p
	if j.State == api.StateCompleted {
		j.Path = filepath.Join(j.Dir, j.Name)
	}
	return j
}

func stateEvent(j api.Job) api.Event    { return api.Event{Type: api.EventState, Job: j} }
func progressEvent(j api.Job) api.Event { return api.Event{Type: api.EventProgress, Job: j} }
