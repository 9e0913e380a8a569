package localapi

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/idmproject/idm/daemon/api"
	"github.com/idmproject/idm/daemon/auth"
	"github.com/idmproject/idm/daemon/jobs"
)

// Fuzz targets for the control API's request bodies. Run one with
//
//	go test -run '^$' -fuzz '^FuzzServer_RequestBody$' -fuzztime 60s ./daemon/localapi

// fuzzRoutes are the routes that take a body; %d is a job's ID.
var fuzzRoutes = []struct{ method, path string }{
	{http.MethodPost, "/v1/jobs"},
	{http.MethodPut, "/v1/limit"},
	{http.MethodPut, "/v1/jobs/%d/limit"}, // the running job
	{http.MethodPut, "/v1/jobs/%d/limit"}, // the paused job
	{http.MethodPut, "/v1/jobs/%d/limit"}, // no such job
}

// FuzzServer_RequestBody sends the fuzz bytes as the body of a route
// that takes one, through the real handlers of a Server over a real
// job queue. No body may make the daemon fail (5xx) or panic; a refused body
// changes nothing; an accepted one is exactly one JSON value and does
// what it says, and is then undone. One daemon serves the whole run of a
// fuzzing process: a running job holds its only download slot, so that
// the jobs the fuzzer creates stay queued and never reach the network.
func FuzzServer_RequestBody(f *testing.F) {
	sandbox := f.TempDir()
	out := filepath.Join(sandbox, "out")
	if err := os.Mkdir(out, 0o755); err != nil {
		f.Fatal(err)
	}
	// The running job's source accepts and never answers, so the job
	// stays under way for the whole run.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		f.Fatal(err)
	}
	held := make(chan net.Conn, 16)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				close(held)
				return
			}
			held <- c
		}
	}()
	d, err := jobs.Open(jobs.Config{StateDir: filepath.Join(sandbox, "state"), MaxActive: 1, StallTimeout: time.Hour, Logger: quietLog()})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() {
		d.Close()
		ln.Close()
		for c := range held {
			c.Close()
		}
	})
	running, _, err := d.Create(context.Background(), api.CreateRequest{Sources: []string{"idm://" + ln.Addr().String()}, Dir: out})
	if err != nil {
		f.Fatal(err)
	}
	paused, _, err := d.Create(context.Background(), api.CreateRequest{Sources: []string{"idm://127.0.0.1:9", "idm://[::1]:9"}, Dir: out, Limit: 1000})
	if err != nil {
		f.Fatal(err)
	}
	if _, err := d.Pause(context.Background(), paused.ID); err != nil {
		f.Fatal(err)
	}
	handler := (&Server{Queue: d, Access: auth.Access{UID: os.Geteuid(), Group: -1}, Logger: quietLog()}).routes()
	// The requests come from the daemon's own user, as over the socket.
	caller := auth.WithPeer(context.Background(), auth.Peer{UID: os.Geteuid(), GID: os.Getegid(), PID: os.Getpid()})
	ids := []uint64{0, 0, running.ID, paused.ID, paused.ID + 1000}

	create := func(req api.CreateRequest) []byte { b, _ := json.Marshal(req); return b }
	for _, b := range [][]byte{
		create(api.CreateRequest{Sources: []string{"idm://127.0.0.1:9001", "idm://[::1]:9002"}, Dir: out, Limit: 5 << 20}),
		create(api.CreateRequest{Sources: paused.Sources, Dir: out, Resume: true}),
		create(api.CreateRequest{Sources: running.Sources, Dir: out}),
		create(api.CreateRequest{Sources: []string{"idm://h:1", "idm://H:1"}, Dir: out + "/../out/"}),
		create(api.CreateRequest{Sources: []string{"idm://127.0.0.1:9003"}, Dir: out, FollowMetalink: true, MetalinkOptions: api.MetalinkOptions{Select: []string{"a.iso"}}}),
		// Asked nothing when created, and queued behind the running job:
		// a source anywhere is never reached.
		create(api.CreateRequest{Sources: []string{"http://127.0.0.1:9/get"}, Dir: out, FollowMetalink: true, MetalinkOptions: api.MetalinkOptions{Select: []string{"a.iso"},
			Logins: []api.Login{{Host: "127.0.0.1", Login: "ann", Password: "pw"}}}}),
		[]byte(`{"sources":["idm://127.0.0.1:1"],"dir":"` + out + `","DIR":"relative","limit":-1}`),
		[]byte(`{"sources":null,"dir":"","limit":0,"resume":false,"extra":1}`),
		[]byte(`{"limit":20000000}`),
		[]byte(`{"limit":0}`),
		[]byte(`{"limit":-1}`),
		[]byte(`{"limit":9223372036854775807}`),
		[]byte(`{"limit":1e30}`),
		[]byte(`{"limit":5} {}`),
		[]byte(`{"limit":"5M"}`),
		[]byte(`[]`),
		[]byte(``),
	} {
		for route := range fuzzRoutes {
			f.Add(uint8(route), b)
		}
	}

	f.Fuzz(func(t *testing.T, route uint8, body []byte) {
		rt := fuzzRoutes[int(route)%len(fuzzRoutes)]
		id := ids[int(route)%len(fuzzRoutes)]
		path := rt.path
		if strings.Contains(path, "%d") {
			path = fmt.Sprintf(path, id)
		}
		// A directory outside the sandbox would have the daemon write
		// its probe file there: such bodies are not sent. The decoding
		// is the handler's, so the directory is the one it would use.
		var probe api.CreateRequest
		json.NewDecoder(bytes.NewReader(body)).Decode(&probe)
		if dir := filepath.Clean(probe.Dir); rt.path == "/v1/jobs" && filepath.IsAbs(dir) && !within(sandbox, dir) {
			return
		}

		before := fuzzState(t, d, out)
		var prevLimit int64
		if j, err := d.Job(id); err == nil {
			prevLimit = j.Limit
		}
		rec := httptest.NewRecorder()
		handler.ServeHTTP(rec, httptest.NewRequestWithContext(caller, rt.method, "http://idmd"+path, bytes.NewReader(body)))
		answer := rec.Body.Bytes()
		if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
			t.Fatalf("%s %s answered %d with Content-Type %q", rt.method, path, rec.Code, ct)
		}
		if rec.Code >= 500 {
			t.Fatalf("%s %s with body %q: %d %s", rt.method, path, body, rec.Code, answer)
		}
		if rec.Code >= 400 {
			var eb api.ErrorBody
			if err := json.Unmarshal(answer, &eb); err != nil || eb.Error == "" || eb.Code == "" {
				t.Fatalf("%s %s: error answer %d is not the API's error shape: %s", rt.method, path, rec.Code, answer)
			}
			if after := fuzzState(t, d, out); after != before {
				t.Fatalf("%s %s with body %q was refused (%d %s) but changed the daemon:\nbefore %s\nafter  %s",
					rt.method, path, body, rec.Code, eb.Error, before, after)
			}
			return
		}
		// The API takes one JSON value and refuses trailing data.
		if !json.Valid(body) {
			t.Fatalf("%s %s accepted (%d) a body that is not one JSON value: %q", rt.method, path, rec.Code, body)
		}
		switch rt.path {
		case "/v1/jobs":
			var j api.Job
			if err := json.Unmarshal(answer, &j); err != nil {
				t.Fatalf("answer %s: %v", answer, err)
			}
			switch {
			case rec.Code == http.StatusCreated:
				if j.State != api.StateQueued || j.Limit != probe.Limit || !within(sandbox, j.Dir) || len(j.Sources) != len(probe.Sources) {
					t.Fatalf("body %q created %+v", body, j)
				}
				if err := d.Remove(context.Background(), j.ID); err != nil {
					t.Fatal(err)
				}
			case j.ID == paused.ID:
				if _, err := d.Pause(context.Background(), paused.ID); err != nil {
					t.Fatal(err)
				}
			case j.ID != running.ID:
				t.Fatalf("body %q answered %d with job %d, which is neither new nor resumable", body, rec.Code, j.ID)
			}
		case "/v1/limit":
			var req api.LimitRequest
			var got api.LimitResponse
			json.Unmarshal(body, &req)
			if err := json.Unmarshal(answer, &got); err != nil || got.Limit != req.Limit || d.Limit() != req.Limit {
				t.Fatalf("body %q answered %s (%v); the daemon's limit is %d", body, answer, err, d.Limit())
			}
			d.SetLimit(context.Background(), 0)
		default:
			var req api.LimitRequest
			var j api.Job
			json.Unmarshal(body, &req)
			if err := json.Unmarshal(answer, &j); err != nil || j.ID != id || j.Limit != req.Limit {
				t.Fatalf("body %q answered %s (%v)", body, answer, err)
			}
			if _, err := d.SetJobLimit(context.Background(), id, prevLimit); err != nil {
				t.Fatal(err)
			}
		}
		if after := fuzzState(t, d, out); after != before {
			t.Fatalf("undoing body %q did not restore the daemon:\nbefore %s\nafter  %s", body, before, after)
		}
	})
}

// within reports whether path is dir or under it.
func within(dir, path string) bool {
	rel, err := filepath.Rel(dir, path)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, "../")
}

// fuzzSnapshot is what a request may change: the jobs, the global limit
// and the output directory's files.
type fuzzSnapshot struct {
	jobs, files string
	limit       int64
}

func (s fuzzSnapshot) String() string {
	return fmt.Sprintf("limit %d; jobs %s; files %s", s.limit, s.jobs, s.files)
}

// fuzzState takes a snapshot of the daemon and the output directory.
func fuzzState(t *testing.T, d *jobs.Queue, out string) fuzzSnapshot {
	t.Helper()
	var b strings.Builder
	for _, j := range d.Jobs() {
		fmt.Fprintf(&b, "[%d %s %s %q %d %q]", j.ID, j.State, strings.Join(j.Sources, ","), j.Dir, j.Limit, j.LastError)
	}
	ents, err := os.ReadDir(out)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	slices.Sort(names)
	return fuzzSnapshot{jobs: b.String(), files: strings.Join(names, ","), limit: d.Limit()}
}
