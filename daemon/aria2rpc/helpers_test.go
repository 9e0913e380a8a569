package aria2rpc

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/idmproject/idm/daemon/jobs"
	"github.com/idmproject/idm/internal/servertest"
)

const testSecret = "s3cret-for-tests"

// env is a Server on 127.0.0.1 over a real job queue with a bbolt store
// in a temporary directory, and its one download directory.
type env struct {
	t   *testing.T
	q   *jobs.Queue
	srv *Server
	url string // http://127.0.0.1:PORT/jsonrpc
	dir string // the download directory
}

// newEnv starts a server; tune, if not nil, adjusts it before it starts.
func newEnv(t *testing.T, tune func(*Server)) *env {
	t.Helper()
	q, err := jobs.Open(jobs.Config{StateDir: t.TempDir(), Logger: quietLog(), FlushInterval: 50 * time.Millisecond, StallTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	srv := &Server{Queue: q, Secret: testSecret, Dirs: []string{dir}, GlobalChanges: true, Version: "test", Logger: quietLog()}
	if tune != nil {
		tune(srv)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
		q.Close()
	})
	return &env{t: t, q: q, srv: srv, url: "http://" + ln.Addr().String() + "/jsonrpc", dir: dir}
}

func quietLog() *slog.Logger { return slog.New(slog.DiscardHandler) }

// reply is a JSON-RPC response as a client reads it.
type reply struct {
	ID      json.RawMessage `json:"id"`
	JSONRPC string          `json:"jsonrpc"`
	Result  json.RawMessage `json:"result"`
	Error   *rpcError       `json:"error"`
	// Method and Params are a notification's.
	Method string            `json:"method"`
	Params []json.RawMessage `json:"params"`
}

// post sends body and returns the status and the body of the answer.
func (e *env) post(body string) (int, []byte) {
	e.t.Helper()
	res, err := http.Post(e.url, "application/json", strings.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return res.StatusCode, b
}

// request returns the JSON of a call of method with params, its secret
// first when token is not empty.
func request(token, method string, params ...any) string {
	if token != "" {
		params = append([]any{token}, params...)
	}
	if params == nil {
		params = []any{}
	}
	b, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": "qwer", "method": method, "params": params})
	return string(b)
}

// callWith calls method over HTTP POST with the given secret ("" for
// none) and returns the response.
func (e *env) callWith(token, method string, params ...any) reply {
	e.t.Helper()
	_, b := e.post(request(token, method, params...))
	var r reply
	if err := json.Unmarshal(b, &r); err != nil {
		e.t.Fatalf("%s: the answer is not a JSON-RPC response: %v\n%s", method, err, b)
	}
	if string(r.ID) != `"qwer"` || r.JSONRPC != "2.0" {
		e.t.Fatalf("%s: id %s, jsonrpc %q in %s", method, r.ID, r.JSONRPC, b)
	}
	return r
}

// call calls method with the right secret; it must succeed, and its
// result is decoded into out, if not nil.
func (e *env) call(out any, method string, params ...any) {
	e.t.Helper()
	r := e.callWith("token:"+testSecret, method, params...)
	if r.Error != nil {
		e.t.Fatalf("%s%v: error %d %q", method, params, r.Error.Code, r.Error.Message)
	}
	if out != nil {
		if err := json.Unmarshal(r.Result, out); err != nil {
			e.t.Fatalf("%s: result %s: %v", method, r.Result, err)
		}
	}
}

// fail calls method with the right secret; it must fail with aria2's
// code 1 and a message that holds want.
func (e *env) fail(want, method string, params ...any) {
	e.t.Helper()
	r := e.callWith("token:"+testSecret, method, params...)
	if r.Error == nil || r.Error.Code != 1 || !strings.Contains(r.Error.Message, want) {
		e.t.Errorf("%s%v: result %s, error %+v; want code 1 saying %q", method, params, r.Result, r.Error, want)
	}
}

// status returns the tellStatus of gid.
func (e *env) status(gid string, keys ...string) map[string]any {
	e.t.Helper()
	var st map[string]any
	if keys == nil {
		e.call(&st, "aria2.tellStatus", gid)
	} else {
		e.call(&st, "aria2.tellStatus", gid, keys)
	}
	return st
}

// waitStatus waits until gid's status is want.
func (e *env) waitStatus(gid, want string) map[string]any {
	e.t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		st := e.status(gid)
		if st["status"] == want {
			return st
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("gid %s: status %v (%v), want %s", gid, st["status"], st["errorMessage"], want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// mirror serves data at /f.bin (and at any other path) with ranges.
func mirror(t *testing.T, data []byte) *httptest.Server {
	t.Helper()
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/missing" {
			http.NotFound(w, r)
			return
		}
		http.ServeContent(w, r, "f.bin", time.Time{}, bytes.NewReader(data))
	}))
	t.Cleanup(s.Close)
	return s
}

// testData returns size bytes of test data, the same for the same seed.
func testData(t *testing.T, size int64, seed uint64) []byte {
	_, data := servertest.File(t, size, seed)
	return data
}

// sha256Of returns data's SHA-256 as aria2's checksum option writes it.
func sha256Of(data []byte) string { return fmt.Sprintf("sha-256=%x", sha256.Sum256(data)) }

// wsClient is a WebSocket client of the server that reads every message
// into answers and notifications as they come.
type wsClient struct {
	t    *testing.T
	c    *websocket.Conn
	mu   sync.Mutex
	msgs []reply
	more chan struct{}
	done chan struct{}
}

// dial opens a WebSocket to e and starts reading it.
func (e *env) dial() *wsClient {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, strings.Replace(e.url, "http://", "ws://", 1), &websocket.DialOptions{HTTPHeader: http.Header{"Origin": {"http://front-end.example"}}})
	if err != nil {
		e.t.Fatal(err)
	}
	c.SetReadLimit(64 << 20)
	w := &wsClient{t: e.t, c: c, more: make(chan struct{}, 1), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		for {
			_, b, err := c.Read(context.Background())
			if err != nil {
				return
			}
			var r reply
			json.Unmarshal(b, &r)
			w.mu.Lock()
			w.msgs = append(w.msgs, r)
			w.mu.Unlock()
			select {
			case w.more <- struct{}{}:
			default:
			}
		}
	}()
	e.t.Cleanup(w.close)
	return w
}

func (w *wsClient) close() {
	w.c.CloseNow()
	<-w.done
}

// send sends a call over the WebSocket.
func (w *wsClient) send(body string) {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := w.c.Write(ctx, websocket.MessageText, []byte(body)); err != nil {
		w.t.Fatal(err)
	}
}

// await waits for a message that match accepts and returns it; messages
// before it are kept for later awaits.
func (w *wsClient) await(what string, match func(reply) bool) reply {
	w.t.Helper()
	deadline := time.After(time.Minute)
	for {
		w.mu.Lock()
		for i, m := range w.msgs {
			if match(m) {
				w.msgs = append(w.msgs[:i:i], w.msgs[i+1:]...)
				w.mu.Unlock()
				return m
			}
		}
		w.mu.Unlock()
		select {
		case <-w.more:
		case <-w.done:
			w.t.Fatalf("the WebSocket closed while waiting for %s", what)
		case <-deadline:
			w.t.Fatalf("no %s in a minute", what)
		}
	}
}

// notification waits for notification name of gid.
func (w *wsClient) notification(name, gid string) {
	w.t.Helper()
	w.await(name+" of "+gid, func(r reply) bool {
		if r.Method != name || len(r.Params) != 1 {
			return false
		}
		var p map[string]string
		return json.Unmarshal(r.Params[0], &p) == nil && p["gid"] == gid && len(p) == 1
	})
}

// notifications returns the notifications received so far, as
// "method gid" lines.
func (w *wsClient) notifications() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []string
	for _, m := range w.msgs {
		if m.Method != "" && len(m.Params) == 1 {
			var p map[string]string
			json.Unmarshal(m.Params[0], &p)
			out = append(out, m.Method+" "+p["gid"])
		}
	}
	return out
}

// answer waits for the answer with id.
func (w *wsClient) answer(id string) reply {
	w.t.Helper()
	return w.await("the answer "+id, func(r reply) bool { return string(r.ID) == id })
}

// jobState returns the API state of job id.
func (e *env) jobState(id uint64) string {
	j, err := e.q.Job(id)
	if err != nil {
		return "gone"
	}
	return j.State
}

// waitFor polls cond until it holds, for a minute at most.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("no %s in a minute", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
