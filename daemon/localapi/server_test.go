package localapi

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/idmproject/idm/daemon/api"
	"github.com/idmproject/idm/daemon/auth"
	"github.com/idmproject/idm/daemon/jobs"
	"github.com/idmproject/idm/daemon/socket"
	"github.com/idmproject/idm/store"
)

// apiClient talks to a Server over its real Unix socket.
type apiClient struct {
	t    *testing.T
	http *http.Client
}

// startControl opens a daemon on a new state directory and serves its
// API on a socket in a temporary directory.
func startControl(t *testing.T, cfg jobs.Config) (*jobs.Queue, *apiClient) {
	t.Helper()
	d := openQueue(t, cfg)
	sock := filepath.Join(t.TempDir(), "idmd.sock")
	serve(t, &Server{Queue: d, Access: auth.Access{UID: os.Geteuid(), Group: -1}, Logger: quietLog()}, sock, 0o600)
	return d, dial(t, sock)
}

// serve answers srv's API on a new socket of the given mode at sock until
// the test ends.
func serve(t *testing.T, srv *Server, sock string, mode fs.FileMode) {
	t.Helper()
	ln, err := socket.Listen(sock, mode, -1)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { srv.Serve(ln); close(done) }()
	t.Cleanup(func() {
		srv.Shutdown(context.Background())
		<-done
	})
}

// dial returns a client of the API on sock.
func dial(t *testing.T, sock string) *apiClient {
	return &apiClient{t: t, http: &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		},
	}}}
}

// do sends a request and decodes the answer into out (when not nil).
func (c *apiClient) do(method, path, body string, out any) (int, api.ErrorBody) {
	c.t.Helper()
	req, err := http.NewRequest(method, "http://idmd"+path, strings.NewReader(body))
	if err != nil {
		c.t.Fatal(err)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var eb api.ErrorBody
	if resp.StatusCode >= 400 {
		if err := json.Unmarshal(b, &eb); err != nil || eb.Error == "" || eb.Code == "" {
			c.t.Fatalf("%s %s: error answer %d is not the API's error shape: %s", method, path, resp.StatusCode, b)
		}
		return resp.StatusCode, eb
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			c.t.Fatalf("%s %s: decode %s: %v", method, path, b, err)
		}
	}
	return resp.StatusCode, eb
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// Bad input gets a clear error and changes nothing.
func TestServer_BadInput(t *testing.T) {
	d, c := startControl(t, jobs.Config{})
	out := t.TempDir()
	notDir := filepath.Join(out, "file")
	os.WriteFile(notDir, nil, 0o644)
	readOnly := filepath.Join(out, "ro")
	os.Mkdir(readOnly, 0o555)
	good := "idm://127.0.0.1:9"
	for _, tc := range []struct {
		name, method, path, body string
		status                   int
		code, says               string
	}{
		{"malformed JSON", "POST", "/v1/jobs", `{"sources": [`, 400, api.CodeBadRequest, "malformed"},
		{"unknown field", "POST", "/v1/jobs", `{"sources":["` + good + `"],"dir":"` + out + `","speed":1}`, 400, api.CodeBadRequest, "unknown field"},
		{"two values", "POST", "/v1/jobs", `{"sources":["` + good + `"],"dir":"` + out + `"} {}`, 400, api.CodeBadRequest, "more than one"},
		{"no sources", "POST", "/v1/jobs", mustJSON(api.CreateRequest{Dir: out}), 400, api.CodeBadRequest, "no sources"},
		{"not a known scheme", "POST", "/v1/jobs", mustJSON(api.CreateRequest{Sources: []string{"ftp://x:1"}, Dir: out}), 400, api.CodeBadRequest, "idm://host:port or an http:// or https:// URL"},
		{"no port", "POST", "/v1/jobs", mustJSON(api.CreateRequest{Sources: []string{"idm://127.0.0.1"}, Dir: out}), 400, api.CodeBadRequest, "idm://host:port"},
		{"port out of range", "POST", "/v1/jobs", mustJSON(api.CreateRequest{Sources: []string{"idm://127.0.0.1:70000"}, Dir: out}), 400, api.CodeBadRequest, "1..65535"},
		{"duplicate sources", "POST", "/v1/jobs", mustJSON(api.CreateRequest{Sources: []string{good, good}, Dir: out}), 400, api.CodeBadRequest, "twice"},
		{"missing directory", "POST", "/v1/jobs", mustJSON(api.CreateRequest{Sources: []string{good}, Dir: filepath.Join(out, "nope")}), 400, api.CodeBadRequest, "does not exist"},
		{"relative directory", "POST", "/v1/jobs", mustJSON(api.CreateRequest{Sources: []string{good}, Dir: "out"}), 400, api.CodeBadRequest, "absolute"},
		{"directory is a file", "POST", "/v1/jobs", mustJSON(api.CreateRequest{Sources: []string{good}, Dir: notDir}), 400, api.CodeBadRequest, "not a directory"},
		{"negative limit", "POST", "/v1/jobs", mustJSON(api.CreateRequest{Sources: []string{good}, Dir: out, Limit: -1}), 400, api.CodeBadRequest, "negative"},
		{"unknown job", "GET", "/v1/jobs/42", "", 404, api.CodeNotFound, "no such job"},
		{"job id not a number", "GET", "/v1/jobs/abc", "", 404, api.CodeNotFound, "no such job"},
		{"pause unknown job", "POST", "/v1/jobs/42/pause", "", 404, api.CodeNotFound, "no such job"},
		{"remove unknown job", "DELETE", "/v1/jobs/42", "", 404, api.CodeNotFound, "no such job"},
		{"unknown route", "GET", "/v1/nope", "", 404, api.CodeNotFound, "no such route"},
		{"wrong method", "PUT", "/v1/jobs", "", 405, api.CodeMethod, "not allowed"},
		{"limit body malformed", "PUT", "/v1/limit", `{"limit":"fast"}`, 400, api.CodeBadRequest, "malformed"},
		{"negative global limit", "PUT", "/v1/limit", `{"limit":-5}`, 400, api.CodeBadRequest, "negative"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, eb := c.do(tc.method, tc.path, tc.body, nil)
			if status != tc.status || eb.Code != tc.code || !strings.Contains(eb.Error, tc.says) {
				t.Errorf("got %d %+v, want %d %s saying %q", status, eb, tc.status, tc.code, tc.says)
			}
		})
	}
	if os.Geteuid() != 0 { // root writes anywhere
		status, eb := c.do("POST", "/v1/jobs", mustJSON(api.CreateRequest{Sources: []string{good}, Dir: readOnly}), nil)
		if status != 400 || !strings.Contains(eb.Error, "cannot write") {
			t.Errorf("read-only directory: %d %+v", status, eb)
		}
	}
	if all := d.Jobs(); len(all) != 0 {
		t.Fatalf("bad requests left %d jobs behind", len(all))
	}
	if ents, _ := os.ReadDir(out); len(ents) != 2 {
		t.Errorf("bad requests left files in the output directory: %v", ents)
	}
}

func TestServer_JobLifecycle(t *testing.T) {
	path, want := testFile(t, 4<<20, 21)
	srv := startServers(t, path, 256<<10, 1e6, 1e6)
	_, c := startControl(t, jobs.Config{})
	out := t.TempDir()
	req := api.CreateRequest{Sources: srv, Dir: out}
	var j api.Job
	if status, eb := c.do("POST", "/v1/jobs", mustJSON(req), &j); status != 201 {
		t.Fatalf("create: %d %+v", status, eb)
	}
	// The same sources into the same directory again: refused, naming
	// the job, unless resuming.
	if status, eb := c.do("POST", "/v1/jobs", mustJSON(req), nil); status != 409 || eb.Code != api.CodeExists || eb.Job != j.ID {
		t.Fatalf("duplicate create: %d %+v", status, eb)
	}
	var paused api.Job
	if status, eb := c.do("POST", "/v1/jobs/1/pause", "", &paused); status != 200 || paused.State != api.StatePaused {
		t.Fatalf("pause: %d %+v %s", status, eb, paused.State)
	}
	req.Resume = true
	var resumed api.Job
	if status, eb := c.do("POST", "/v1/jobs", mustJSON(req), &resumed); status != 200 || resumed.ID != j.ID {
		t.Fatalf("create with resume: %d %+v, job %d", status, eb, resumed.ID)
	}
	var limited api.Job
	if status, eb := c.do("PUT", "/v1/jobs/1/limit", `{"limit": 0}`, &limited); status != 200 {
		t.Fatalf("job limit: %d %+v", status, eb)
	}
	// Follow the job's events to its end.
	resp, err := c.http.Get("http://idmd/v1/jobs/1/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	dec := json.NewDecoder(resp.Body)
	var last api.Event
	for {
		var e api.Event
		if err := dec.Decode(&e); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		last = e
	}
	if last.Job.State != api.StateCompleted {
		t.Fatalf("stream ended on %s (%s)", last.Job.State, last.Job.LastError)
	}
	got, err := os.ReadFile(last.Job.Path)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("downloaded file differs (%v)", err)
	}
	if status, eb := c.do("POST", "/v1/jobs/1/resume", "", nil); status != 409 || eb.Code != api.CodeConflict {
		t.Errorf("resume of a completed job: %d %+v", status, eb)
	}
	if status, _ := c.do("DELETE", "/v1/jobs/1", "", nil); status != 204 {
		t.Errorf("remove: %d", status)
	}
	if _, err := os.Stat(last.Job.Path); err != nil {
		t.Errorf("removing a completed job deleted its file: %v", err)
	}
}

// A running job's new limit shows at once, in the answer and after: the
// transfer's copy of the record has it before the store does.
func TestServer_JobLimit_Running(t *testing.T) {
	path, _ := testFile(t, 4<<20, 22)
	// Slow enough that the job is still running at the end.
	srv := startServers(t, path, 64<<10, 64<<10)
	d, c := startControl(t, jobs.Config{})
	var j api.Job
	if status, eb := c.do("POST", "/v1/jobs", mustJSON(api.CreateRequest{Sources: srv, Dir: t.TempDir()}), &j); status != 201 {
		t.Fatalf("create: %d %+v", status, eb)
	}
	waitFor(t, "the job to run", time.Minute, func() bool {
		j, err := d.Job(j.ID)
		return err == nil && j.Progress.Size > 0
	})
	path = fmt.Sprintf("/v1/jobs/%d/limit", j.ID)
	if status, eb := c.do("PUT", path, `{"limit":12345}`, &j); status != 200 || j.Limit != 12345 || j.State != api.StateDownloading {
		t.Errorf("set the running job's limit: %d %+v, job %s with limit %d; want 200, downloading, 12345", status, eb, j.State, j.Limit)
	}
	if status, eb := c.do("GET", fmt.Sprintf("/v1/jobs/%d", j.ID), "", &j); status != 200 || j.Limit != 12345 {
		t.Errorf("get the job: %d %+v, limit %d; want 12345", status, eb, j.Limit)
	}
}

// The list is written a page at a time: across the pages' edges it is
// still one JSON array of every job in ID order, whole or in brief.
func TestServer_ListJobs_Pages(t *testing.T) {
	var recs []*store.Record
	for i := range 2*listPage + 17 {
		recs = append(recs, &store.Record{Sources: []string{fmt.Sprintf("idm://127.0.0.1:%d", 1000+i)}, Dir: t.TempDir(), State: api.StatePaused, Name: fmt.Sprintf("f%d.bin", i)})
	}
	_, c := startControl(t, jobs.Config{StateDir: stateDir(t, recs...)})
	var full []api.Job
	if status, eb := c.do("GET", "/v1/jobs", "", &full); status != 200 {
		t.Fatalf("GET /v1/jobs: %d %+v", status, eb)
	}
	var brief []api.JobSummary
	if status, eb := c.do("GET", "/v1/jobs?view=summary", "", &brief); status != 200 {
		t.Fatalf("GET /v1/jobs?view=summary: %d %+v", status, eb)
	}
	if len(full) != len(recs) || len(brief) != len(recs) {
		t.Fatalf("listed %d jobs, %d in brief; want %d", len(full), len(brief), len(recs))
	}
	for i := range full {
		if full[i].ID != uint64(i+1) || full[i].Name != recs[i].Name || full[i].State != api.StatePaused {
			t.Fatalf("job %d listed as %+v", i+1, full[i])
		}
		if brief[i] != full[i].Summary() {
			t.Fatalf("job %d in brief is %+v, want %+v", i+1, brief[i], full[i].Summary())
		}
	}
	if status, eb := c.do("GET", "/v1/jobs?view=all", "", nil); status != 400 || eb.Code != api.CodeBadRequest {
		t.Errorf("GET /v1/jobs?view=all: %d %+v, want 400 bad_request", status, eb)
	}
}

// GET /v1/rpc answers the aria2 RPC's address and secret, or, when the
// listener is off, says how to turn it on.
func TestServer_RPC(t *testing.T) {
	d := openQueue(t, jobs.Config{})
	info := &api.RPC{Listen: "127.0.0.1:6800", URL: "http://127.0.0.1:6800/jsonrpc", Secret: "abc"}
	for _, rpc := range []*api.RPC{nil, info} {
		sock := filepath.Join(t.TempDir(), "idmd.sock")
		serve(t, &Server{Queue: d, Access: auth.Access{UID: os.Geteuid(), Group: -1}, Logger: quietLog(), RPC: rpc}, sock, 0o600)
		c := dial(t, sock)
		var got api.RPC
		status, eb := c.do("GET", "/v1/rpc", "", &got)
		switch {
		case rpc == nil && (status != http.StatusNotFound || eb.Error != "the aria2 RPC listener is off: start idmd with --rpc-listen ADDR"):
			t.Errorf("off: %d %+v", status, eb)
		case rpc != nil && (status != http.StatusOK || got != *rpc):
			t.Errorf("on: %d %+v %+v", status, got, eb)
		}
		if status, eb := c.do("POST", "/v1/rpc", "", nil); status != http.StatusMethodNotAllowed {
			t.Errorf("POST: %d %+v", status, eb)
		}
	}
}

// GET /v1/line answers the waiting jobs in the order they start, and
// POST /v1/jobs/{id}/move changes it as aria2's changePosition does;
// what cannot move, and a move that makes no sense, change nothing.
func TestServer_Line_Move(t *testing.T) {
	var recs []*store.Record
	for i := range 4 {
		// No source is ever there: job 1 holds the one slot, and the
		// others wait behind it.
		recs = append(recs, &store.Record{Sources: []string{fmt.Sprintf("idm://127.0.0.1:%d", 1+i)}, Dir: t.TempDir(), State: api.StateQueued, Name: fmt.Sprintf("f%d.bin", i+1)})
	}
	d, c := startControl(t, jobs.Config{StateDir: stateDir(t, recs...), MaxActive: 1})
	waitFor(t, "job 1 to start", 10*time.Second, func() bool {
		j, _ := d.Job(1)
		return j.State == api.StateDownloading || j.State == api.StateWaiting
	})
	line := func() []uint64 {
		t.Helper()
		var got []api.JobSummary
		if status, eb := c.do("GET", "/v1/line", "", &got); status != 200 {
			t.Fatalf("GET /v1/line: %d %+v", status, eb)
		}
		var ids []uint64
		for _, j := range got {
			ids = append(ids, j.ID)
		}
		return ids
	}
	if got := line(); !slices.Equal(got, []uint64{2, 3, 4}) {
		t.Fatalf("line %v, want [2 3 4]", got)
	}
	for _, step := range []struct {
		id   uint64
		body string
		pos  int
		line []uint64
	}{
		{4, `{"position":0}`, 0, []uint64{4, 2, 3}},
		{3, `{"position":-1,"from":"current"}`, 1, []uint64{4, 3, 2}},
		{4, `{"position":0,"from":"end"}`, 2, []uint64{3, 2, 4}},
	} {
		var got api.MoveResponse
		if status, eb := c.do("POST", fmt.Sprintf("/v1/jobs/%d/move", step.id), step.body, &got); status != 200 || got.Position != step.pos {
			t.Fatalf("move job %d by %s: %d %+v, position %d; want 200 and %d", step.id, step.body, status, eb, got.Position, step.pos)
		}
		if got := line(); !slices.Equal(got, step.line) {
			t.Fatalf("after moving job %d by %s the line is %v, want %v", step.id, step.body, got, step.line)
		}
	}
	for _, bad := range []struct {
		method, path, body string
		status             int
		code               string
	}{
		{"POST", "/v1/jobs/2/move", `{"position":0,"from":"middle"}`, 400, api.CodeBadRequest},
		{"POST", "/v1/jobs/2/move", `{"position":"first"}`, 400, api.CodeBadRequest},
		{"POST", "/v1/jobs/2/move", `{"position":0,"by":1}`, 400, api.CodeBadRequest},
		{"POST", "/v1/jobs/1/move", `{"position":0}`, 409, api.CodeConflict},
		{"POST", "/v1/jobs/99/move", `{"position":0}`, 404, api.CodeNotFound},
		{"GET", "/v1/jobs/2/move", "", 405, api.CodeMethod},
		{"POST", "/v1/line", "", 405, api.CodeMethod},
	} {
		if status, eb := c.do(bad.method, bad.path, bad.body, nil); status != bad.status || eb.Code != bad.code || strings.Contains(eb.Error, "\n") {
			t.Errorf("%s %s %s: %d %+v; want %d %s in one line", bad.method, bad.path, bad.body, status, eb, bad.status, bad.code)
		}
	}
	if got := line(); !slices.Equal(got, []uint64{3, 2, 4}) {
		t.Errorf("refused moves left the line %v, want [3 2 4]", got)
	}
}
