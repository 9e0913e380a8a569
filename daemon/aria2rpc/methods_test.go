package aria2rpc

import (
	"bytes"
	"context"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/idmproject/idm/daemon/api"
	"github.com/idmproject/idm/daemon/auth"
)

// gids returns the gids of a tellActive, tellWaiting or tellStopped
// answer.
func gids(list []map[string]any) []string {
	var out []string
	for _, m := range list {
		out = append(out, fmt.Sprint(m["gid"]))
	}
	return out
}

// addSlow adds a download of m's file held to 64 KiB/s, which stays
// active for as long as a test needs, and returns its gid.
func (e *env) addSlow(url string, opts map[string]any) string {
	e.t.Helper()
	o := map[string]any{"max-download-limit": "64K"}
	for k, v := range opts {
		o[k] = v
	}
	var g string
	e.call(&g, "aria2.addUri", []string{url}, o)
	return g
}

// addUri's options become the job's: its directory (one in the download
// directory, relative to it or not), its file's name, headers (the
// referer among them), user agent, proxy, connections, rate cap,
// checksum, and pause; options idmd does not know are ignored.
func TestMethods_AddUri_Options(t *testing.T) {
	e := newEnv(t, nil)
	data := testData(t, 1<<20, 1)
	m := mirror(t, data)
	sub := filepath.Join(e.dir, "sub")
	os.Mkdir(sub, 0o755)
	var g string
	e.call(&g, "aria2.addUri", []string{m.URL + "/f.bin"}, map[string]any{
		"dir": "sub", "out": "named.bin", "header": []string{"X-A: 1", "Cookie: c=1"}, "referer": "*",
		"user-agent": "ua/1", "all-proxy": "http://user:pw@proxy.example:3128", "split": "8", "max-connection-per-server": 2,
		"max-download-limit": "1M", "checksum": sha256Of(data), "pause": "true", "bt-max-peers": "55", "continue": true,
	})
	if !regexp.MustCompile(`^[0-9a-f]{16}$`).MatchString(g) {
		t.Fatalf("gid %q", g)
	}
	j, err := e.q.Job(1)
	if err != nil || g != "0000000000000001" {
		t.Fatalf("gid %s, job 1: %v", g, err)
	}
	sum := sha256.Sum256(data)
	want := api.Job{Dir: sub, Name: "named.bin", Headers: []string{"X-A: xxxxx", "Cookie: xxxxx", "Referer: xxxxx"}, UserAgent: "ua/1",
		Proxy: "http://user:xxxxx@proxy.example:3128", Limit: 1 << 20, Checksum: fmt.Sprintf("sha-256:%x", sum), State: api.StatePaused}
	if j.Dir != want.Dir || j.Name != want.Name || !slices.Equal(j.Headers, want.Headers) || j.UserAgent != want.UserAgent ||
		j.Proxy != want.Proxy || j.Limit != want.Limit || j.Checksum != want.Checksum || j.State != want.State {
		t.Errorf("the job is\n%+v\nwant\n%+v", j, want)
	}
	var opts map[string]string
	e.call(&opts, "aria2.getOption", g)
	for k, v := range map[string]string{"dir": sub, "out": "named.bin", "max-download-limit": "1048576", "user-agent": "ua/1",
		"all-proxy": "http://user:xxxxx@proxy.example:3128", "checksum": sha256Of(data), "pause": "true", "header": "X-A: xxxxx\nCookie: xxxxx\nReferer: xxxxx"} {
		if opts[k] != v {
			t.Errorf("getOption %s = %q, want %q", k, opts[k], v)
		}
	}

	// No options: the default directory, the mirror's name; the same URI
	// twice is one source; the same download again is the same gid.
	var g2, g3 string
	e.call(&g2, "aria2.addUri", []string{m.URL + "/f.bin", m.URL + "/f.bin"})
	e.call(&g3, "aria2.addUri", []string{m.URL + "/f.bin"})
	if g3 != g2 {
		t.Errorf("the same download added twice: gids %s and %s", g2, g3)
	}
	e.waitStatus(g2, statusComplete)
	if b, err := os.ReadFile(filepath.Join(e.dir, "f.bin")); err != nil || !bytes.Equal(b, data) {
		t.Errorf("the file is not in the default directory: %v", err)
	}

	for _, tc := range []struct {
		want   string
		params []any
	}{
		{"URI is not provided.", []any{[]string{}}},
		{"URI is not provided.", []any{[]any{1, true}}},
		{"Position must be greater than or equal to 0.", []any{[]string{m.URL + "/a"}, map[string]any{}, -1}},
		{"The parameter at 1 has wrong type.", []any{[]string{m.URL + "/a"}, "dir"}},
		{`max-download-limit "fast"`, []any{[]string{m.URL + "/a"}, map[string]any{"max-download-limit": "fast"}}},
		{`max-connection-per-server "17": want a whole number from 1 to 16`, []any{[]string{m.URL + "/a"}, map[string]any{"max-connection-per-server": "17"}}},
		{"unknown algorithm", []any{[]string{m.URL + "/a"}, map[string]any{"checksum": "md5=d41d8cd98f00b204e9800998ecf8427e"}}},
		{"is not one of idmd's download directories (" + e.dir + ")", []any{[]string{m.URL + "/a"}, map[string]any{"dir": t.TempDir()}}},
		{"is not one of idmd's download directories", []any{[]string{m.URL + "/a"}, map[string]any{"dir": "../.."}}},
		{"name \"a/b\"", []any{[]string{m.URL + "/a"}, map[string]any{"out": "a/b"}}},
		{"ftp://example.org/f", []any{[]string{"ftp://example.org/f"}}},
		{"65 URIs: one download takes at most 64", []any{manyURIs(65)}},
	} {
		e.fail(tc.want, "aria2.addUri", tc.params...)
	}
	if names, _ := os.ReadDir(filepath.Dir(e.dir)); len(names) > 1 {
		var n []string
		for _, d := range names {
			n = append(n, d.Name())
		}
		t.Logf("beside the download directory: %v", n)
	}
}

// A download goes through aria2's statuses, and the WebSocket clients
// are told of each change: started, paused, started again, complete;
// another fails, another is removed. Stopped downloads stay until their
// results are removed; their files stay for good.
func TestMethods_Lifecycle(t *testing.T) {
	e := newEnv(t, nil)
	ws := e.dial()
	data := testData(t, 4<<20, 2)
	m := mirror(t, data)

	ws.send(request("token:"+testSecret, "aria2.addUri", []string{m.URL + "/f.bin"}, map[string]any{"max-download-limit": "64K"}))
	var g string
	if r := ws.answer(`"qwer"`); r.Error != nil || json.Unmarshal(r.Result, &g) != nil {
		t.Fatalf("addUri over the WebSocket: %s %+v", r.Result, r.Error)
	}
	ws.notification(notifyStart, g)
	var st map[string]any
	waitFor(t, "the file's size known", func() bool {
		st = e.status(g)
		return st["totalLength"] != "0"
	})
	if st["status"] != statusActive || st["dir"] != e.dir || st["totalLength"] != "4194304" || st["uploadSpeed"] != "0" || st["gid"] != g {
		t.Errorf("tellStatus of the active download: %v", st)
	}
	if _, ok := st["errorCode"]; ok {
		t.Errorf("an active download has an errorCode: %v", st)
	}
	var active []map[string]any
	e.call(&active, "aria2.tellActive", []string{"gid", "status", "infoHash", "bittorrent", "numSeeders", "seeder", "bitfield", "completedLength"})
	if len(active) != 1 || active[0]["gid"] != g || active[0]["status"] != statusActive || active[0]["bitfield"] == nil || len(active[0]) != 4 {
		t.Errorf("tellActive with BitTorrent keys: %v", active)
	}
	var uris []map[string]string
	e.call(&uris, "aria2.getUris", g)
	if len(uris) != 1 || uris[0]["uri"] != m.URL+"/f.bin" || uris[0]["status"] != "used" {
		t.Errorf("getUris: %v", uris)
	}
	var files []map[string]any
	e.call(&files, "aria2.getFiles", g)
	if len(files) != 1 || files[0]["index"] != "1" || files[0]["length"] != "4194304" || files[0]["selected"] != "true" {
		t.Errorf("getFiles: %v", files)
	}
	var peers []any
	e.call(&peers, "aria2.getPeers", g)
	if peers == nil || len(peers) != 0 {
		t.Errorf("getPeers: %v", peers)
	}
	waitFor(t, "a server in use", func() bool {
		var servers []map[string]any
		e.call(&servers, "aria2.getServers", g)
		return len(servers) == 1 && servers[0]["index"] == "1" && len(servers[0]["servers"].([]any)) > 0
	})

	e.call(nil, "aria2.forcePause", g)
	ws.notification(notifyPause, g)
	e.waitStatus(g, statusPaused)
	e.fail("GID#"+g+" cannot be paused now", "aria2.pause", g)
	var waiting []map[string]any
	e.call(&waiting, "aria2.tellWaiting", 0, 1000)
	if len(waiting) != 1 || waiting[0]["status"] != statusPaused {
		t.Errorf("tellWaiting of the paused download: %v", waiting)
	}
	e.call(nil, "aria2.unpause", g)
	ws.notification(notifyStart, g)
	e.fail("GID#"+g+" cannot be unpaused now", "aria2.unpause", g)
	var ok string
	e.call(&ok, "aria2.changeOption", g, map[string]any{"max-download-limit": "0", "split": "3"})
	if ok != "OK" {
		t.Errorf("changeOption: %q", ok)
	}
	ws.notification(notifyComplete, g)
	st = e.status(g)
	if st["status"] != statusComplete || st["errorCode"] != "0" || st["completedLength"] != "4194304" || st["downloadSpeed"] != "0" {
		t.Errorf("tellStatus of the complete download: %v", st)
	}
	if b, err := os.ReadFile(filepath.Join(e.dir, "f.bin")); err != nil || !bytes.Equal(b, data) {
		t.Errorf("the file: %v", err)
	}
	e.fail("Cannot change option for GID#"+g, "aria2.changeOption", g, map[string]any{"max-download-limit": "1K"})

	var bad string
	e.call(&bad, "aria2.addUri", []string{m.URL + "/missing"})
	ws.notification(notifyStart, bad)
	ws.notification(notifyError, bad)
	st = e.status(bad, "status", "errorCode", "errorMessage")
	if st["status"] != statusError || st["errorCode"] != "3" || !strings.Contains(st["errorMessage"].(string), "404 Not Found") || len(st) != 3 {
		t.Errorf("tellStatus of the failed download: %v", st)
	}

	gone := e.addSlow(m.URL+"/other.bin", nil)
	ws.notification(notifyStart, gone)
	e.call(nil, "aria2.remove", gone)
	ws.notification(notifyStop, gone)
	st = e.status(gone, "status", "errorCode")
	if st["status"] != statusRemoved || st["errorCode"] != "31" {
		t.Errorf("tellStatus of the removed download: %v", st)
	}
	e.fail("Active Download not found for GID#"+gone, "aria2.forceRemove", gone)

	var stat map[string]string
	e.call(&stat, "aria2.getGlobalStat")
	if stat["numActive"] != "0" || stat["numWaiting"] != "0" || stat["numStopped"] != "3" || stat["numStoppedTotal"] != "3" {
		t.Errorf("getGlobalStat: %v", stat)
	}
	e.call(&ok, "aria2.removeDownloadResult", gone)
	e.fail("GID "+gone+" is not found", "aria2.tellStatus", gone)
	e.call(&ok, "aria2.purgeDownloadResult")
	var stopped []map[string]any
	e.call(&stopped, "aria2.tellStopped", 0, 1000)
	if len(stopped) != 0 || e.jobState(1) != "gone" {
		t.Errorf("after purgeDownloadResult: %v", stopped)
	}
	if _, err := os.Stat(filepath.Join(e.dir, "f.bin")); err != nil {
		t.Errorf("purgeDownloadResult took the file: %v", err)
	}
	if n := ws.notifications(); len(n) != 0 {
		t.Errorf("notifications left over: %v", n)
	}
}

// The line of waiting downloads is tellWaiting's, in order, and
// changePosition reorders it; stopped downloads are tellStopped's, the
// least recently stopped first, negative offsets counting from the last
// as aria2 counts them; pauseAll and unpauseAll act on all of them.
func TestMethods_Lines(t *testing.T) {
	e := newEnv(t, nil)
	m := mirror(t, testData(t, 4<<20, 3))
	e.call(nil, "aria2.changeGlobalOption", map[string]any{"max-concurrent-downloads": "1"})
	running := e.addSlow(m.URL+"/run.bin", nil)
	e.waitStatus(running, statusActive)
	a := e.addSlow(m.URL+"/a.bin", nil)
	b := e.addSlow(m.URL+"/b.bin", nil)
	c := e.addSlow(m.URL+"/c.bin", nil)
	line := func(want ...string) {
		t.Helper()
		var w []map[string]any
		e.call(&w, "aria2.tellWaiting", 0, 1000, []string{"gid", "status"})
		if got := gids(w); !slices.Equal(got, want) {
			t.Fatalf("tellWaiting: %v, want %v", got, want)
		}
	}
	line(a, b, c)
	var pos int
	for _, step := range []struct {
		gid  string
		pos  int
		how  string
		dest int
		line []string
	}{
		{c, 0, "POS_SET", 0, []string{c, a, b}},
		{b, -1, "POS_CUR", 1, []string{c, b, a}},
		{c, 0, "POS_END", 2, []string{b, a, c}},
		{a, -5, "POS_CUR", 0, []string{a, b, c}},
	} {
		e.call(&pos, "aria2.changePosition", step.gid, step.pos, step.how)
		if pos != step.dest {
			t.Errorf("changePosition(%s, %d, %s) = %d, want %d", step.gid, step.pos, step.how, pos, step.dest)
		}
		line(step.line...)
	}
	e.fail("Illegal argument.", "aria2.changePosition", a, 0, "POS_WHERE")
	e.fail("GID#"+running+" not found in the waiting queue.", "aria2.changePosition", running, 0, "POS_SET")
	var page []map[string]any
	e.call(&page, "aria2.tellWaiting", -1, 2)
	if got := gids(page); !slices.Equal(got, []string{c, b}) {
		t.Errorf("tellWaiting(-1, 2) = %v, want [c b]", got)
	}
	page = nil
	e.call(&page, "aria2.tellWaiting", 1, 1, []string{"status"})
	if len(page) != 1 || len(page[0]) != 1 || page[0]["status"] != statusWaiting {
		t.Errorf("tellWaiting(1, 1, [status]) = %v", page)
	}

	e.call(nil, "aria2.forcePauseAll")
	waitFor(t, "every download paused", func() bool {
		var active []map[string]any
		e.call(&active, "aria2.tellActive")
		return len(active) == 0
	})
	page = nil
	e.call(&page, "aria2.tellWaiting", 0, 1000, []string{"status"})
	for _, p := range page {
		if p["status"] != statusPaused {
			t.Errorf("after pauseAll: %v", page)
		}
	}
	e.call(nil, "aria2.unpauseAll")
	e.waitStatus(running, statusActive)
	line(a, b, c)

	for _, g := range []string{b, a, c} {
		e.call(nil, "aria2.remove", g)
	}
	for _, tc := range []struct {
		offset, num int
		want        []string
	}{
		{0, 1000, []string{b, a, c}},
		{-1, 1000, []string{c, a, b}},
		{-1, 1, []string{c}},
		{1, 1, []string{a}},
		{3, 1, nil},
	} {
		var stopped []map[string]any
		e.call(&stopped, "aria2.tellStopped", tc.offset, tc.num, []string{"gid", "status"})
		if got := gids(stopped); !slices.Equal(got, tc.want) {
			t.Errorf("tellStopped(%d, %d) = %v, want %v", tc.offset, tc.num, got, tc.want)
		}
		for _, s := range stopped {
			if len(s) != 2 || s["status"] != statusRemoved {
				t.Errorf("tellStopped(%d, %d): %v", tc.offset, tc.num, s)
			}
		}
	}
	e.fail("The integer parameter at 1 has invalid value: the value must be greater than or equal to 0.", "aria2.tellStopped", 0, -1)
	e.fail("The parameter at 1 is required but missing.", "aria2.tellStopped", 0)
}

// changeGlobalOption changes the default download directory, among the
// download directories, the global rate cap and the number of active
// downloads; getGlobalOption shows them, never the secret. Where the
// secret is shared with other users, the two that apply to everyone are
// refused.
func TestMethods_GlobalOptions(t *testing.T) {
	e := newEnv(t, nil)
	var opts map[string]string
	e.call(&opts, "aria2.getGlobalOption")
	if opts["dir"] != e.dir || opts["max-concurrent-downloads"] != "3" || opts["max-overall-download-limit"] != "0" || opts["rpc-listen-all"] != "false" {
		t.Errorf("getGlobalOption: %v", opts)
	}
	for k, v := range opts {
		if strings.Contains(v, testSecret) {
			t.Errorf("getGlobalOption shows the secret in %s", k)
		}
	}
	sub := filepath.Join(e.dir, "sub")
	os.Mkdir(sub, 0o755)
	e.call(nil, "aria2.changeGlobalOption", map[string]any{"dir": sub, "max-overall-download-limit": "2M", "max-concurrent-downloads": 5, "log": "/tmp/x"})
	e.call(&opts, "aria2.getGlobalOption")
	if opts["dir"] != sub || opts["max-concurrent-downloads"] != "5" || opts["max-overall-download-limit"] != "2097152" {
		t.Errorf("getGlobalOption after the change: %v", opts)
	}
	if e.q.Limit() != 2<<20 || e.q.MaxActive() != 5 {
		t.Errorf("the queue's limit %d, active jobs %d", e.q.Limit(), e.q.MaxActive())
	}
	var g string
	e.call(&g, "aria2.addUri", []string{"http://127.0.0.1:1/f"}, map[string]any{"pause": "true"})
	if j, _ := e.q.Job(1); j.Dir != sub {
		t.Errorf("a download without dir goes to %s, want the new default %s", j.Dir, sub)
	}
	e.fail("is not one of idmd's download directories", "aria2.changeGlobalOption", map[string]any{"dir": t.TempDir()})
	e.fail("cannot be used", "aria2.changeGlobalOption", map[string]any{"dir": filepath.Join(e.dir, "nowhere")})
	e.fail(`max-concurrent-downloads "0"`, "aria2.changeGlobalOption", map[string]any{"max-concurrent-downloads": "0", "dir": e.dir})
	if e.srv.defaultDir() != sub {
		t.Errorf("a refused change changed the default directory to %s", e.srv.defaultDir())
	}

	shared := newEnv(t, func(s *Server) { s.GlobalChanges = false })
	shared.fail("max-overall-download-limit is refused: it applies to every user's downloads", "aria2.changeGlobalOption", map[string]any{"max-overall-download-limit": "1M"})
	shared.fail("max-concurrent-downloads is refused", "aria2.changeGlobalOption", map[string]any{"max-concurrent-downloads": "9"})
	if shared.q.Limit() != 0 || shared.q.MaxActive() != 3 {
		t.Errorf("refused changes changed the limit to %d, the active jobs to %d", shared.q.Limit(), shared.q.MaxActive())
	}
	shared.call(nil, "aria2.changeGlobalOption", map[string]any{"dir": shared.dir})
}

// The methods that tell about idmd itself, and those it refuses.
func TestMethods_Misc(t *testing.T) {
	e := newEnv(t, nil)
	var v struct {
		Version         string   `json:"version"`
		EnabledFeatures []string `json:"enabledFeatures"`
	}
	e.call(&v, "aria2.getVersion")
	if v.Version != aria2Version || !slices.Contains(v.EnabledFeatures, "Metalink") || slices.Contains(v.EnabledFeatures, "BitTorrent") {
		t.Errorf("getVersion: %+v", v)
	}
	var s1, s2 map[string]string
	e.call(&s1, "aria2.getSessionInfo")
	e.call(&s2, "aria2.getSessionInfo")
	if !regexp.MustCompile(`^[0-9a-f]{40}$`).MatchString(s1["sessionId"]) || s1["sessionId"] != s2["sessionId"] {
		t.Errorf("getSessionInfo: %v then %v", s1, s2)
	}
	var ok string
	if e.call(&ok, "aria2.saveSession"); ok != "OK" {
		t.Errorf("saveSession: %q", ok)
	}
	e.fail("idmd does not stop over RPC", "aria2.shutdown")
	e.fail("idmd does not stop over RPC", "aria2.forceShutdown")
	e.fail("BitTorrent is not supported", "aria2.addTorrent", base64.StdEncoding.EncodeToString([]byte("d4:infod4:name1:aee")))
	var names []string
	e.call(&names, "system.listMethods")
	for name := range methods {
		if !slices.Contains(names, name) {
			t.Errorf("listMethods leaves out %s", name)
		}
	}
	var stat map[string]string
	e.call(&stat, "aria2.getGlobalStat")
	if len(stat) != 6 || stat["numActive"] != "0" || stat["downloadSpeed"] != "0" {
		t.Errorf("getGlobalStat: %v", stat)
	}
}

// meta4 writes a Metalink 4 document with one file per name, each data,
// served by url, with its SHA-256 and SHA-1 pieces.
func meta4(data []byte, url string, names ...string) string {
	var b strings.Builder
	b.WriteString(`<?xml version="1.0" encoding="UTF-8"?>` + "\n" + `<metalink xmlns="urn:ietf:params:xml:ns:metalink">` + "\n")
	for _, name := range names {
		fmt.Fprintf(&b, "  <file name=%q>\n    <size>%d</size>\n    <hash type=\"sha-256\">%x</hash>\n    <pieces length=\"65536\" type=\"sha-1\">\n", name, len(data), sha256.Sum256(data))
		for off := 0; off < len(data); off += 65536 {
			fmt.Fprintf(&b, "      <hash>%x</hash>\n", sha1.Sum(data[off:min(off+65536, len(data))]))
		}
		fmt.Fprintf(&b, "    </pieces>\n    <url priority=\"1\">%s/%s</url>\n  </file>\n", url, name)
	}
	b.WriteString("</metalink>\n")
	return b.String()
}

// addMetalink makes one download per file of the Metalink, each with a
// gid of its own, in the document's order.
func TestMethods_AddMetalink(t *testing.T) {
	e := newEnv(t, nil)
	data := testData(t, 512<<10, 4)
	m := mirror(t, data)
	doc := base64.StdEncoding.EncodeToString([]byte(meta4(data, m.URL, "one.bin", "two.bin")))
	var got []string
	e.call(&got, "aria2.addMetalink", doc, map[string]any{"max-download-limit": "10M"}, 0)
	if len(got) != 2 || got[0] == got[1] {
		t.Fatalf("addMetalink: %v", got)
	}
	for i, name := range []string{"one.bin", "two.bin"} {
		e.waitStatus(got[i], statusComplete)
		if b, err := os.ReadFile(filepath.Join(e.dir, name)); err != nil || !bytes.Equal(b, data) {
			t.Errorf("%s: %v", name, err)
		}
	}
	e.fail("not base64", "aria2.addMetalink", "!!!")
	e.fail("invalid request", "aria2.addMetalink", base64.StdEncoding.EncodeToString([]byte("<html/>")))
}

// An addUri of a URL that answers with a Metalink downloads it and then
// follows it, as aria2's --follow-metalink does by default: the download
// names the Metalink's downloads in followedBy, each of them it in
// following. With follow-metalink false, the Metalink is another file.
func TestMethods_AddUri_FollowMetalink(t *testing.T) {
	e := newEnv(t, nil)
	data := testData(t, 300<<10, 6)
	m := mirror(t, data)
	doc := meta4(data, m.URL, "one.bin", "two.bin")
	meta := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/metalink4+xml")
		http.ServeContent(w, r, "", time.Time{}, strings.NewReader(doc))
	}))
	t.Cleanup(meta.Close)

	var g string
	e.call(&g, "aria2.addUri", []string{meta.URL + "/get?id=1"}, map[string]any{"out": "release.meta4"})
	st := e.waitStatus(g, statusComplete)
	followers, _ := st["followedBy"].([]any)
	if len(followers) != 2 {
		t.Fatalf("followedBy = %v, want the Metalink's two downloads", st["followedBy"])
	}
	for i, name := range []string{"one.bin", "two.bin"} {
		f, _ := followers[i].(string)
		fs := e.waitStatus(f, statusComplete)
		if fs["following"] != g {
			t.Errorf("%s: following = %v, want %s", name, fs["following"], g)
		}
		if b, err := os.ReadFile(filepath.Join(e.dir, name)); err != nil || !bytes.Equal(b, data) {
			t.Errorf("%s: %v", name, err)
		}
	}

	e.call(&g, "aria2.addUri", []string{meta.URL + "/get?id=2"}, map[string]any{"follow-metalink": "false"})
	if st := e.waitStatus(g, statusError); st["followedBy"] != nil {
		t.Errorf("a download told not to follow: followedBy %v", st["followedBy"])
	}
}

// changeUri removes sources, each once, adds those the download has not
// got, and counts both; the download then takes its file from its new
// sources.
func TestMethods_ChangeUri(t *testing.T) {
	e := newEnv(t, nil)
	data := testData(t, 1<<20, 5)
	m1, m2, m3 := mirror(t, data), mirror(t, data), mirror(t, data)
	var g string
	e.call(&g, "aria2.addUri", []string{m1.URL + "/f.bin"}, map[string]any{"pause": true})
	var counts []int
	e.call(&counts, "aria2.changeUri", g, 1, []string{}, []string{m2.URL + "/f.bin", m3.URL + "/f.bin", m1.URL + "/f.bin"})
	if !slices.Equal(counts, []int{0, 2}) {
		t.Errorf("changeUri adding two new and one it has: %v, want [0 2]", counts)
	}
	e.call(&counts, "aria2.changeUri", g, 1, []string{m1.URL + "/f.bin", m1.URL + "/f.bin", "http://nowhere.example/f"}, []string{}, 0)
	if !slices.Equal(counts, []int{1, 0}) {
		t.Errorf("changeUri removing one twice and one it has not: %v, want [1 0]", counts)
	}
	var uris []map[string]string
	e.call(&uris, "aria2.getUris", g)
	if len(uris) != 2 || uris[0]["uri"] != m2.URL+"/f.bin" || uris[1]["uri"] != m3.URL+"/f.bin" || uris[0]["status"] != "waiting" {
		t.Errorf("getUris: %v", uris)
	}
	e.fail("fileIndex is out of range", "aria2.changeUri", g, 2, []string{}, []string{})
	e.fail("The integer parameter at 1 has invalid value", "aria2.changeUri", g, 0, []string{}, []string{})
	e.fail("a job keeps at least one source", "aria2.changeUri", g, 1, []string{m2.URL + "/f.bin", m3.URL + "/f.bin"}, []string{})
	e.call(nil, "aria2.unpause", g)
	e.waitStatus(g, statusComplete)
	e.fail("Cannot remove URIs from GID#"+g, "aria2.changeUri", g, 1, []string{}, []string{m1.URL + "/f.bin"})
}

// A gid is a job's ID in 16 hex digits; a shorter one is a prefix, as
// aria2 takes it. Another user's job is not found: not listed, not
// counted, not changed.
func TestMethods_GID(t *testing.T) {
	e := newEnv(t, nil)
	var g string
	e.call(&g, "aria2.addUri", []string{"http://127.0.0.1:1/f"}, map[string]any{"pause": "true"})
	if st := e.status("000000000000000", "gid"); st["gid"] != g {
		t.Errorf("a prefix of the gid: %v", st)
	}
	if st := e.status(strings.ToUpper(g), "gid"); st["gid"] != g {
		t.Errorf("the gid in capitals: %v", st)
	}
	e.fail("GID 00000000000000ff is not found", "aria2.tellStatus", "00000000000000ff")
	e.fail("GID 0000000000000000 is not found", "aria2.tellStatus", "0000000000000000")
	e.fail("Invalid GID xyz", "aria2.tellStatus", "xyz")
	e.fail("Invalid GID 00000000000000001", "aria2.pause", "00000000000000001")
	e.fail("Invalid GID ", "aria2.remove", "")

	// A job of another user, in a directory it may write to.
	dir, err := os.MkdirTemp("", "aria2rpc-other-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o777)
	other := auth.WithPeer(context.Background(), auth.Peer{UID: os.Geteuid() + 1000, GID: 64000})
	j, _, err := e.q.Create(other, api.CreateRequest{Sources: []string{"http://127.0.0.1:2/f"}, Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.q.Pause(other, j.ID); err != nil {
		t.Fatal(err)
	}
	theirs := gid(j.ID)
	for _, method := range []string{"aria2.tellStatus", "aria2.remove", "aria2.unpause", "aria2.getUris", "aria2.removeDownloadResult"} {
		e.fail("GID "+theirs+" is not found", method, theirs)
	}
	var waiting []map[string]any
	e.call(&waiting, "aria2.tellWaiting", 0, 1000)
	if got := gids(waiting); !slices.Equal(got, []string{g}) {
		t.Errorf("tellWaiting shows %v, want only %s", got, g)
	}
	var stat map[string]string
	e.call(&stat, "aria2.getGlobalStat")
	if stat["numWaiting"] != "1" {
		t.Errorf("getGlobalStat counts another user's job: %v", stat)
	}
	e.call(nil, "aria2.unpauseAll")
	if st := e.jobState(j.ID); st != api.StatePaused {
		t.Errorf("unpauseAll unpaused another user's job: %s", st)
	}
	if st := e.status("000000000000000", "gid"); st["gid"] != g {
		t.Errorf("a prefix of two gids, one another user's: %v", st)
	}
	var mine string
	e.call(&mine, "aria2.addUri", []string{"http://127.0.0.1:3/f"}, map[string]any{"pause": "true"})
	e.fail("GID 000000000000000 is not unique", "aria2.tellStatus", "000000000000000")
}

// The plain and the forced forms do the same: pause, pauseAll and
// remove of an active download as forcePause, forcePauseAll and
// forceRemove; getServers is for active downloads only.
func TestMethods_PlainAndForced(t *testing.T) {
	e := newEnv(t, nil)
	m := mirror(t, testData(t, 4<<20, 6))
	a := e.addSlow(m.URL+"/a.bin", nil)
	b := e.addSlow(m.URL+"/b.bin", nil)
	e.waitStatus(a, statusActive)
	e.waitStatus(b, statusActive)
	e.call(nil, "aria2.pause", a)
	e.waitStatus(a, statusPaused)
	e.fail("No active download for GID#"+a, "aria2.getServers", a)
	e.call(nil, "aria2.pauseAll")
	e.waitStatus(b, statusPaused)
	e.call(nil, "aria2.unpauseAll")
	e.waitStatus(a, statusActive)
	e.waitStatus(b, statusActive)
	var got string
	e.call(&got, "aria2.forceRemove", a)
	if got != a {
		t.Errorf("forceRemove answered %q, want the gid %s", got, a)
	}
	e.waitStatus(a, statusRemoved)
	e.call(nil, "aria2.forcePause", b)
	e.waitStatus(b, statusPaused)
	e.call(nil, "aria2.remove", b)
	e.waitStatus(b, statusRemoved)
}

// manyURIs returns n URIs, each of another mirror.
func manyURIs(n int) []string {
	var out []string
	for i := range n {
		out = append(out, fmt.Sprintf("http://127.0.0.1:%d/f", 1000+i))
	}
	return out
}
