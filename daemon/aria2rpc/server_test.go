package aria2rpc

import (
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
)

// Every call but system.listMethods and system.listNotifications needs
// the secret: missing or wrong, it is aria2's Unauthorized, answered a
// second later, as aria2 answers it; right, the call runs.
func TestServer_Secret(t *testing.T) {
	e := newEnv(t, nil)
	for _, token := range []string{"", "token:", "token:wrong", "token:" + testSecret + "x", testSecret} {
		start := time.Now()
		r := e.callWith(token, "aria2.getVersion")
		if r.Error == nil || r.Error.Code != 1 || r.Error.Message != "Unauthorized" || r.Result != nil {
			t.Errorf("secret %q: result %s, error %+v; want Unauthorized", token, r.Result, r.Error)
		}
		if d := time.Since(start); d < unauthorizedDelay {
			t.Errorf("secret %q: answered after %v, want at least %v", token, d, unauthorizedDelay)
		}
	}
	var v map[string]any
	e.call(&v, "aria2.getVersion")
	if v["version"] != aria2Version {
		t.Errorf("getVersion with the right secret: %v", v)
	}
	for _, m := range []string{"system.listMethods", "system.listNotifications"} {
		if r := e.callWith("", m); r.Error != nil {
			t.Errorf("%s without the secret: %+v", m, r.Error)
		}
		if r := e.callWith("token:wrong", m); r.Error != nil {
			t.Errorf("%s with a wrong secret: %+v", m, r.Error)
		}
	}
}

// Inside system.multicall each call carries its own secret: the right
// one runs, the wrong one is Unauthorized, side by side.
func TestServer_Secret_Multicall(t *testing.T) {
	e := newEnv(t, nil)
	var got []json.RawMessage
	e.call(&got, "system.multicall", []any{
		map[string]any{"methodName": "aria2.getGlobalStat", "params": []any{"token:" + testSecret}},
		map[string]any{"methodName": "aria2.getGlobalStat", "params": []any{"token:wrong"}},
		map[string]any{"methodName": "aria2.getGlobalStat"},
		map[string]any{"methodName": "system.listNotifications"},
		map[string]any{"methodName": "system.multicall", "params": []any{[]any{}}},
		map[string]any{"params": []any{}},
		"not a struct",
	})
	want := []string{
		`[{"downloadSpeed":"0","numActive":"0","numStopped":"0","numStoppedTotal":"0","numWaiting":"0","uploadSpeed":"0"}]`,
		`{"code":1,"message":"Unauthorized"}`,
		`{"code":1,"message":"Unauthorized"}`,
		`[["aria2.onDownloadStart","aria2.onDownloadPause","aria2.onDownloadStop","aria2.onDownloadComplete","aria2.onDownloadError","aria2.onBtDownloadComplete"]]`,
		`{"code":1,"message":"Recursive system.multicall forbidden."}`,
		`{"code":1,"message":"Missing methodName."}`,
		`{"code":1,"message":"system.multicall expected struct."}`,
	}
	if len(got) != len(want) {
		t.Fatalf("%d answers, want %d: %s", len(got), len(want), got)
	}
	for i := range want {
		if string(got[i]) != want[i] {
			t.Errorf("call %d: %s\nwant %s", i, got[i], want[i])
		}
	}
}

// An address that keeps sending wrong secrets is refused without its
// secret being looked at, the right one too, until it has waited; the
// rest of the time a right secret costs nothing.
func TestServer_Secret_RepeatedFailures(t *testing.T) {
	e := newEnv(t, nil)
	var batch []string
	for range failureBurst + 2 {
		batch = append(batch, request("token:wrong", "aria2.getVersion"))
	}
	batch = append(batch, request("token:"+testSecret, "aria2.getVersion"))
	_, b := e.post("[" + strings.Join(batch, ",") + "]")
	var answers []reply
	if err := json.Unmarshal(b, &answers); err != nil || len(answers) != len(batch) {
		t.Fatalf("the batch's answer: %s", b)
	}
	if r := answers[len(answers)-1]; r.Error == nil || r.Error.Message != "Unauthorized" {
		t.Fatalf("right after %d failures the right secret got %s %+v; want it refused", failureBurst+2, r.Result, r.Error)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		r := e.callWith("token:"+testSecret, "aria2.getVersion")
		if r.Error == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the right secret is still refused 10 s after the failures")
		}
		time.Sleep(200 * time.Millisecond)
	}
	for range 3 * failureBurst {
		if r := e.callWith("token:"+testSecret, "aria2.getGlobalStat"); r.Error != nil {
			t.Fatalf("a right secret was refused: %+v", r.Error)
		}
	}
}

// GET takes method, id and base64 params, with or without padding and
// with '+' as it is, or a whole request, a batch too, in params alone;
// jsoncallback wraps the answer for JSONP.
func TestServer_Get(t *testing.T) {
	e := newEnv(t, nil)
	get := func(query string) (int, string, string) {
		t.Helper()
		res, err := http.Get(e.url + "?" + query)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, res.Header.Get("Content-Type"), string(b)
	}
	params := base64.StdEncoding.EncodeToString([]byte(`["token:` + testSecret + `"]`))
	code, ctype, body := get("method=aria2.getGlobalStat&id=foo&params=" + url.QueryEscape(params))
	if code != 200 || ctype != "application/json-rpc" || !strings.HasPrefix(body, `{"id":"foo","jsonrpc":"2.0","result":{"downloadSpeed":"0"`) {
		t.Errorf("GET: %d %s %s", code, ctype, body)
	}
	// '+' and '/' as they are, no padding.
	plus := base64.RawStdEncoding.EncodeToString([]byte(`["token:` + testSecret + `",">>>???"]`))
	if !strings.ContainsAny(plus, "+/") {
		t.Fatalf("the test's params %q have no + or /", plus)
	}
	code, _, body = get("method=aria2.tellStatus&id=7&params=" + plus)
	var r reply
	if json.Unmarshal([]byte(body), &r); code != 400 || r.Error == nil || r.Error.Message != "Invalid GID >>>???" {
		t.Errorf("GET with + in params: %d %s", code, body)
	}
	code, ctype, body = get("method=aria2.getVersion&id=1&params=" + url.QueryEscape(params) + "&jsoncallback=window.cb_1")
	if code != 200 || ctype != "text/javascript" || !strings.HasPrefix(body, `window.cb_1({"id":"1","jsonrpc":"2.0","result":{`) || !strings.HasSuffix(body, "})") {
		t.Errorf("JSONP: %d %s %s", code, ctype, body)
	}
	code, _, body = get("params=" + url.QueryEscape(base64.StdEncoding.EncodeToString([]byte(
		`[{"jsonrpc":"2.0","id":"a","method":"system.listMethods"},{"jsonrpc":"2.0","id":"b","method":"aria2.getVersion","params":["token:`+testSecret+`"]}]`))))
	var batch []reply
	if code != 200 || json.Unmarshal([]byte(body), &batch) != nil || len(batch) != 2 || string(batch[0].ID) != `"a"` || batch[1].Error != nil {
		t.Errorf("GET batch: %d %s", code, body)
	}
	for _, q := range []string{"method=aria2.getVersion&id=1&params=%%%", "method=aria2.getVersion&id=1&params=!!!!", ""} {
		if code, _, body = get(q); code != 500 || !strings.Contains(body, `"code":-32700`) {
			t.Errorf("GET %q: %d %s; want a parse error", q, code, body)
		}
	}
	if code, _, body = get("method=aria2.getVersion&id=1&jsoncallback=alert(1)//"); code != 400 || strings.Contains(body, "alert") {
		t.Errorf("a callback that is code: %d %s", code, body)
	}
}

// A CORS preflight is answered as aria2 answers it, and every answer
// lets any origin read it.
func TestServer_CORS(t *testing.T) {
	e := newEnv(t, nil)
	req, _ := http.NewRequest(http.MethodOptions, e.url, nil)
	req.Header.Set("Origin", "http://ariang.example")
	req.Header.Set("Access-Control-Request-Method", "POST")
	req.Header.Set("Access-Control-Request-Headers", "content-type, x-requested-with")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	for name, want := range map[string]string{
		"Access-Control-Allow-Origin":  "*",
		"Access-Control-Allow-Methods": "POST, GET, OPTIONS",
		"Access-Control-Allow-Headers": "content-type, x-requested-with",
		"Access-Control-Max-Age":       "1728000",
	} {
		if got := res.Header.Get(name); got != want {
			t.Errorf("preflight %s: %q, want %q", name, got, want)
		}
	}
	if res.StatusCode != 200 {
		t.Errorf("preflight: %s", res.Status)
	}
	req.Header.Set("Access-Control-Request-Headers", "x-a\r\nx-b: 1")
	if res, err = http.DefaultClient.Do(req); err == nil {
		res.Body.Close()
		if got := res.Header.Get("Access-Control-Allow-Headers"); got != "" {
			t.Errorf("a header list that is not one is echoed: %q", got)
		}
	}
	res, err = http.Post(e.url, "application/json", strings.NewReader(request("", "system.listMethods")))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if got := res.Header.Get("Access-Control-Allow-Origin"); got != "*" {
		t.Errorf("POST: Access-Control-Allow-Origin %q", got)
	}
}

// A loopback listener answers only loopback names: a name an attacker
// points at 127.0.0.1 (DNS rebinding) gets nothing, whatever it sends.
func TestServer_Host(t *testing.T) {
	e := newEnv(t, nil)
	for host, ok := range map[string]bool{
		"127.0.0.1:6800": true, "localhost:6800": true, "[::1]:6800": true, "LOCALHOST.": true, "ariang.localhost": true, "127.1.2.3": true,
		"evil.example:6800": false, "192.0.2.1:6800": false, "localhost.evil.example": false,
	} {
		req, _ := http.NewRequest(http.MethodPost, e.url, strings.NewReader(request("token:"+testSecret, "aria2.getVersion")))
		req.Host = host
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if got := res.StatusCode == 200; got != ok {
			t.Errorf("Host %s: %d %s", host, res.StatusCode, b)
		}
		if !ok && strings.Contains(string(b), "result") {
			t.Errorf("Host %s got a result: %s", host, b)
		}
	}
}

// heap returns the bytes allocated so far and those live after a GC.
func heap() (total, live uint64) {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.TotalAlloc, m.HeapAlloc
}

// zeros is an endless reader of spaces: a body as large as asked without
// holding it.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = ' '
	}
	return len(p), nil
}

// Bad input gets a JSON-RPC error, and costs a bounded amount of memory:
// malformed JSON, JSON nested without end, a batch of 10,000 calls, a
// 100 MB body with its length said or not, unknown methods, calls that
// are not calls. The server answers as before afterwards.
func TestServer_BadInput(t *testing.T) {
	e := newEnv(t, nil)
	var calls []string
	for range 10000 {
		calls = append(calls, request("token:"+testSecret, "aria2.getVersion"))
	}
	huge := "[" + strings.Join(calls, ",") + "]"
	for _, tc := range []struct {
		name   string
		body   string
		status int
		want   string
	}{
		{"malformed", `{"jsonrpc":"2.0","id":1,"method":`, 500, `{"id":null,"jsonrpc":"2.0","error":{"code":-32700,"message":"Parse error."}}`},
		{"not JSON", "hello", 500, `"code":-32700`},
		{"empty", "", 500, `"code":-32700`},
		{"nested", strings.Repeat("[", 100000) + strings.Repeat("]", 100000), 500, `"code":-32700`},
		{"10,000 calls", huge, 400, `{"id":null,"jsonrpc":"2.0","error":{"code":-32600,"message":"Invalid Request: a batch holds at most 1000 calls, not 10000."}}`},
		{"unknown method", request("token:"+testSecret, "aria2.selfDestruct"), 400, `{"id":"qwer","jsonrpc":"2.0","error":{"code":1,"message":"No such method: aria2.selfDestruct"}}`},
		{"no id", `{"jsonrpc":"2.0","method":"aria2.getVersion"}`, 400, `{"id":null,"jsonrpc":"2.0","error":{"code":-32600,"message":"Invalid Request."}}`},
		{"no method", `{"jsonrpc":"2.0","id":5}`, 400, `{"id":5,"jsonrpc":"2.0","error":{"code":-32600,"message":"Invalid Request."}}`},
		{"named params", `{"jsonrpc":"2.0","id":5,"method":"aria2.getVersion","params":{"a":1}}`, 500, `{"id":5,"jsonrpc":"2.0","error":{"code":-32602,"message":"Invalid params."}}`},
		{"a number", `42`, 400, `"code":-32600`},
		{"a batch of odd calls", `[1,{"id":2}]`, 200, `[{"id":null,"jsonrpc":"2.0","error":{"code":-32600,"message":"Invalid Request."}},{"id":2,"jsonrpc":"2.0","error":{"code":-32600,"message":"Invalid Request."}}]`},
		{"wrong parameter type", request("token:"+testSecret, "aria2.tellStatus", 5), 400, `"message":"The parameter at 0 has wrong type."`},
		{"missing parameter", request("token:"+testSecret, "aria2.tellStatus"), 400, `"message":"The parameter at 0 is required but missing."`},
	} {
		total, live := heap()
		status, b := e.post(tc.body)
		total2, live2 := heap()
		if status != tc.status || !strings.Contains(string(b), tc.want) {
			t.Errorf("%s: %d %.300s\nwant %d %s", tc.name, status, b, tc.status, tc.want)
		}
		// The request itself is in the test's memory too: the bound is
		// what answering may cost beyond a few copies of it.
		if grew := total2 - total; grew > 64<<20+8*uint64(len(tc.body)) {
			t.Errorf("%s: %d MiB allocated", tc.name, grew>>20)
		}
		if live2 > live+16<<20 {
			t.Errorf("%s: %d MiB more live after the answer", tc.name, (live2-live)>>20)
		}
	}
	// 100 MB, said or not.
	for _, chunked := range []bool{false, true} {
		total, _ := heap()
		var body io.Reader = io.LimitReader(zeros{}, 100<<20)
		req, _ := http.NewRequest(http.MethodPost, e.url, body)
		if !chunked {
			req.ContentLength = 100 << 20
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("100 MB body (chunked %v): %v", chunked, err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		total2, _ := heap()
		if res.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(string(b), `"code":-32600,"message":"Invalid Request: larger than 2097152 bytes."`) {
			t.Errorf("100 MB body (chunked %v): %s %s", chunked, res.Status, b)
		}
		if grew := total2 - total; grew > 32<<20 {
			t.Errorf("100 MB body (chunked %v): %d MiB allocated", chunked, grew>>20)
		}
	}
	var methods []string
	e.call(&methods, "system.listMethods")
	if !slices.Contains(methods, "aria2.addUri") || len(methods) != 36 {
		t.Errorf("after the bad input, listMethods answers %v", methods)
	}
}

// paginate cuts a list as aria2's tellWaiting and tellStopped do.
func TestPaginate(t *testing.T) {
	for _, tc := range []struct {
		offset, num, size int64
		from, to          int64
	}{
		{0, 1, 3, 0, 1},
		{1, 2, 3, 1, 3},
		{0, 1000, 3, 0, 3},
		{3, 1, 3, 0, 0},
		{-1, 2, 3, 1, 3}, // C and B, reversed by the caller
		{-1, 1000, 3, 0, 3},
		{-1, 1, 3, 2, 3},
		{-3, 1, 3, 0, 1},
		{-4, 1, 3, 0, 0},
		{-2, 5, 3, 0, 2},
		{0, 0, 3, 0, 0},
		{-1, 1000, 0, 0, 0},
		{1, 1<<63 - 1, 3, 1, 3},
		{-1, 1<<63 - 1, 3, 0, 3},
		{-1 << 63, 1, 3, 0, 0},
	} {
		if from, to := paginate(tc.offset, tc.num, tc.size); from != tc.from || to != tc.to {
			t.Errorf("paginate(%d, %d, %d) = [%d, %d), want [%d, %d)", tc.offset, tc.num, tc.size, from, to, tc.from, tc.to)
		}
	}
}
