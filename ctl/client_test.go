package ctl

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/idmproject/idm/daemon/api"
)

func TestClient_Calls(t *testing.T) {
	job7 := testJob(7, api.StateDownloading)
	tests := []struct {
		name   string
		call   func(context.Context, *Client) (any, error)
		req    request // the request the daemon should get
		status int
		answer any
		want   any
	}{
		{
			name:   "Version",
			call:   func(ctx context.Context, c *Client) (any, error) { return c.Version(ctx) },
			req:    request{"GET", "/v1/version", ""},
			status: 200, answer: api.Version{Version: "1.0", API: 1, PID: 42, StateDir: "/var/lib/idmd"},
			want: &api.Version{Version: "1.0", API: 1, PID: 42, StateDir: "/var/lib/idmd"},
		},
		{
			name:   "Jobs",
			call:   func(ctx context.Context, c *Client) (any, error) { return c.Jobs(ctx) },
			req:    request{"GET", "/v1/jobs", ""},
			status: 200, answer: []api.Job{testJob(1, api.StateQueued), job7},
			want: []api.Job{testJob(1, api.StateQueued), job7},
		},
		{
			name:   "Job",
			call:   func(ctx context.Context, c *Client) (any, error) { return c.Job(ctx, 7) },
			req:    request{"GET", "/v1/jobs/7", ""},
			status: 200, answer: job7, want: &job7,
		},
		{
			name: "Create",
			call: func(ctx context.Context, c *Client) (any, error) {
				return c.Create(ctx, api.CreateRequest{Sources: []string{"idm://127.0.0.1:9001"}, Dir: "/data", Limit: 5, Resume: true})
			},
			req:    request{"POST", "/v1/jobs", `{"sources":["idm://127.0.0.1:9001"],"dir":"/data","limit":5,"resume":true}`},
			status: 201, answer: job7, want: &job7,
		},
		{
			name:   "Pause",
			call:   func(ctx context.Context, c *Client) (any, error) { return c.Pause(ctx, 7) },
			req:    request{"POST", "/v1/jobs/7/pause", ""},
			status: 200, answer: job7, want: &job7,
		},
		{
			name:   "Resume",
			call:   func(ctx context.Context, c *Client) (any, error) { return c.Resume(ctx, 7) },
			req:    request{"POST", "/v1/jobs/7/resume", ""},
			status: 200, answer: job7, want: &job7,
		},
		{
			name:   "Cancel",
			call:   func(ctx context.Context, c *Client) (any, error) { return c.Cancel(ctx, 7) },
			req:    request{"POST", "/v1/jobs/7/cancel", ""},
			status: 200, answer: job7, want: &job7,
		},
		{
			name:   "Remove",
			call:   func(ctx context.Context, c *Client) (any, error) { return nil, c.Remove(ctx, 7) },
			req:    request{"DELETE", "/v1/jobs/7", ""},
			status: 204, answer: nil, want: nil,
		},
		{
			name:   "Limit",
			call:   func(ctx context.Context, c *Client) (any, error) { return c.Limit(ctx) },
			req:    request{"GET", "/v1/limit", ""},
			status: 200, answer: api.LimitResponse{Limit: 42}, want: int64(42),
		},
		{
			name:   "SetLimit",
			call:   func(ctx context.Context, c *Client) (any, error) { return c.SetLimit(ctx, 1000) },
			req:    request{"PUT", "/v1/limit", `{"limit":1000}`},
			status: 200, answer: api.LimitResponse{Limit: 1000}, want: int64(1000),
		},
		{
			name:   "SetLimit none",
			call:   func(ctx context.Context, c *Client) (any, error) { return c.SetLimit(ctx, 0) },
			req:    request{"PUT", "/v1/limit", `{"limit":0}`},
			status: 200, answer: api.LimitResponse{}, want: int64(0),
		},
		{
			name:   "SetJobLimit",
			call:   func(ctx context.Context, c *Client) (any, error) { return c.SetJobLimit(ctx, 7, 2048) },
			req:    request{"PUT", "/v1/jobs/7/limit", `{"limit":2048}`},
			status: 200, answer: job7, want: &job7,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := newFakeDaemon(t)
			d.reply(tt.req.Method+" "+tt.req.Path, tt.status, tt.answer)
			c := &Client{Socket: d.sock}
			got, err := tt.call(context.Background(), c)
			if err != nil {
				t.Fatal(err)
			}
			if tt.want == nil {
				if got != nil {
					t.Errorf("got %#v, want nothing", got)
				}
			} else if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %#v\nwant %#v", got, tt.want)
			}
			if reqs := d.requests(); !reflect.DeepEqual(reqs, []request{tt.req}) {
				t.Errorf("daemon got %q, want %q", reqs, tt.req)
			}
		})
	}
}

func TestClient_Errors(t *testing.T) {
	type check struct {
		name string
		is   func(error) bool
	}
	all := []check{{"IsNotFound", IsNotFound}, {"IsExists", IsExists}, {"IsConflict", IsConflict}, {"IsForbidden", IsForbidden}, {"IsUnavailable", IsUnavailable}, {"IsDaemonNotRunning", IsDaemonNotRunning}}
	tests := []struct {
		name    string
		status  int
		body    string
		is      string // the one IsXxx that holds, if any
		message string
		job     uint64 // ExistingJob
	}{
		{"not found", 404, `{"error":"no such job: 9","code":"not_found"}`, "IsNotFound", "no such job: 9", 0},
		{"exists", 409, `{"error":"job 3 downloads the same","code":"exists","job":3}`, "IsExists", "job 3 downloads the same", 3},
		{"conflict", 409, `{"error":"job 9 is completed","code":"conflict","job":9}`, "IsConflict", "job 9 is completed", 0},
		{"forbidden", 403, `{"error":"uid 1001 may not use this idmd","code":"forbidden"}`, "IsForbidden", "uid 1001 may not use this idmd", 0},
		{"bad request", 400, `{"error":"sources: none given","code":"bad_request"}`, "", "sources: none given", 0},
		{"method", 405, `{"error":"method not allowed","code":"method_not_allowed"}`, "", "method not allowed", 0},
		{"internal", 500, `{"error":"disk full","code":"internal"}`, "", "disk full", 0},
		{"not JSON", 502, "bad gateway\n", "", "bad gateway", 0},
		{"not JSON 404", 404, "404 page not found\n", "IsNotFound", "404 page not found", 0},
		{"unavailable", 503, `{"error":"daemon shutting down","code":"unavailable"}`, "IsUnavailable", "daemon shutting down", 0},
		{"empty", 503, "", "IsUnavailable", "idmd answered 503 Service Unavailable", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := newFakeDaemon(t)
			d.handle("/", func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(tt.status)
				io.WriteString(w, tt.body)
			})
			c := &Client{Socket: d.sock}
			calls := map[string]func() error{
				"Job":      func() error { _, err := c.Job(context.Background(), 9); return err },
				"Remove":   func() error { return c.Remove(context.Background(), 9) },
				"WatchJob": func() error { _, err := c.WatchJob(context.Background(), 9); return err },
			}
			for call, f := range calls {
				err := f()
				var ae *APIError
				if !errors.As(err, &ae) || ae.Status != tt.status {
					t.Fatalf("%s: got %v, want an *APIError with status %d", call, err, tt.status)
				}
				if err.Error() != tt.message {
					t.Errorf("%s: message %q, want %q", call, err.Error(), tt.message)
				}
				for _, ck := range all {
					if got := ck.is(err); got != (ck.name == tt.is) {
						t.Errorf("%s: %s = %v", call, ck.name, got)
					}
				}
				id, ok := ExistingJob(err)
				if ok != (tt.is == "IsExists") || id != tt.job {
					t.Errorf("%s: ExistingJob = %d, %v", call, id, ok)
				}
			}
		})
	}
}

// A stream that cannot be opened is tried again when the daemon is down,
// restarting or shutting down, never when it refuses the request.
func TestRetryable(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"shutting down", &APIError{Status: 503, Body: api.ErrorBody{Code: api.CodeUnavailable}}, true},
		{"failed", &APIError{Status: 500, Body: api.ErrorBody{Code: api.CodeInternal}}, true},
		{"not running", fmt.Errorf("GET /v1/events: %w", ErrDaemonNotRunning), true},
		{"forbidden", &APIError{Status: 403, Body: api.ErrorBody{Code: api.CodeForbidden}}, false},
		{"not found", &APIError{Status: 404, Body: api.ErrorBody{Code: api.CodeNotFound}}, false},
	} {
		if got := retryable(tc.err); got != tc.want {
			t.Errorf("%s: retryable = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestClient_DaemonNotRunning(t *testing.T) {
	dir := t.TempDir()
	stale := filepath.Join(dir, "stale")
	ln, err := net.Listen("unix", stale)
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close() // the file stays; nothing listens on it

	for name, sock := range map[string]string{
		"no socket file":     filepath.Join(dir, "missing"),
		"no directory":       filepath.Join(dir, "nodir", "idmd.sock"),
		"nothing listens on": stale,
	} {
		t.Run(name, func(t *testing.T) {
			c := &Client{Socket: sock}
			_, err := c.Version(context.Background())
			if !IsDaemonNotRunning(err) {
				t.Fatalf("Version: got %v, want IsDaemonNotRunning", err)
			}
			if !strings.Contains(err.Error(), sock) {
				t.Errorf("error %q does not name the socket", err)
			}
			if IsNotFound(err) {
				t.Error("IsNotFound holds too")
			}
			if _, err := c.WatchAll(context.Background()); !IsDaemonNotRunning(err) {
				t.Errorf("WatchAll: got %v, want IsDaemonNotRunning", err)
			}
		})
	}
}

func TestClient_ZeroValueUsesDefaultSocket(t *testing.T) {
	d := newFakeDaemon(t)
	d.reply("GET /v1/version", 200, api.Version{Version: "x", API: 1})
	t.Setenv(api.EnvSocket, d.sock)
	var c Client
	if got := c.SocketPath(); got != d.sock {
		t.Errorf("SocketPath = %q, want %q", got, d.sock)
	}
	if v, err := c.Version(context.Background()); err != nil || v.Version != "x" {
		t.Fatalf("Version = %v, %v", v, err)
	}
}

func TestWatcher_Next_ReadsEventsUntilEOF(t *testing.T) {
	d := newFakeDaemon(t)
	j := testJob(4, api.StateDownloading)
	done := j
	done.State = api.StateCompleted
	want := []api.Event{stateEvent(j), progressEvent(progressed(j, t0, 300, 100, 50)), stateEvent(done)}
	d.stream("GET /v1/jobs/4/events", want...)
	c := &Client{Socket: d.sock}
	w, err := c.WatchJob(context.Background(), 4)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	var got []api.Event
	for {
		ev, err := w.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, ev)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v\nwant %+v", got, want)
	}
	if err := w.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	w.Close() // twice is fine
}

func TestWatcher_Next_BrokenStream(t *testing.T) {
	d := newFakeDaemon(t)
	d.handle("GET /v1/events", func(w http.ResponseWriter, r *http.Request) {
		sendEvents(w, stateEvent(testJob(1, api.StateQueued)))
		panic(http.ErrAbortHandler) // the daemon dies mid-stream
	})
	c := &Client{Socket: d.sock}
	w, err := c.WatchAll(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if ev, err := w.Next(); err != nil || ev.Job.ID != 1 {
		t.Fatalf("first Next = %+v, %v", ev, err)
	}
	if _, err := w.Next(); err == nil || err == io.EOF {
		t.Fatalf("Next after a broken stream = %v, want an error other than io.EOF", err)
	}
}

func TestWatcher_Close_UnblocksNext(t *testing.T) {
	d := newFakeDaemon(t)
	d.handle("GET /v1/events", func(w http.ResponseWriter, r *http.Request) {
		sendEvents(w, stateEvent(testJob(1, api.StateQueued)))
		<-r.Context().Done()
	})
	c := &Client{Socket: d.sock}
	w, err := c.WatchAll(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Next(); err != nil {
		t.Fatal(err)
	}
	errc := make(chan error)
	go func() {
		_, err := w.Next()
		errc <- err
	}()
	time.Sleep(10 * time.Millisecond) // let Next block; it must end either way
	w.Close()
	select {
	case err := <-errc:
		if err == nil {
			t.Error("Next after Close returned no error")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not unblock Next")
	}
}

func TestWatcher_ContextEndsStream(t *testing.T) {
	d := newFakeDaemon(t)
	d.handle("GET /v1/jobs/2/events", func(w http.ResponseWriter, r *http.Request) {
		sendEvents(w, stateEvent(testJob(2, api.StateQueued)))
		<-r.Context().Done()
	})
	c := &Client{Socket: d.sock}
	ctx, cancel := context.WithCancel(context.Background())
	w, err := c.WatchJob(ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if _, err := w.Next(); err != nil {
		t.Fatal(err)
	}
	cancel()
	if _, err := w.Next(); !errors.Is(err, context.Canceled) {
		t.Errorf("Next after cancel = %v, want context.Canceled", err)
	}
}
