package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/idmproject/idm/internal/nginxtest"
	"github.com/idmproject/idm/internal/proctest"
)

// driverDir holds the node driver of the aria2 RPC test: drive.mjs, and
// the npm package it uses, pinned in package.json and package-lock.json.
const driverDir = "testdata/aria2rpc"

// nodeDriver returns the node binary and the driver's script, after
// installing the driver's npm packages into driverDir/node_modules
// (ignored by git) when they are missing or another lockfile's. A
// missing node or npm fails the test: make test installs them.
func nodeDriver(t *testing.T) (node, script string) {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatal("node is not installed: make test installs it (make test-deps), or run apt-get install nodejs npm")
	}
	lock, err := os.ReadFile(filepath.Join(driverDir, "package-lock.json"))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(lock)
	want := hex.EncodeToString(sum[:])
	stamp := filepath.Join(driverDir, "node_modules", ".idm-lock-sha256")
	if got, err := os.ReadFile(stamp); err == nil && string(got) == want {
		return node, filepath.Join(driverDir, "drive.mjs")
	}
	npm, err := exec.LookPath("npm")
	if err != nil {
		t.Fatal("npm is not installed: make test installs it (make test-deps), or run apt-get install nodejs npm")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund")
	cmd.Dir = driverDir
	if r := proctest.Run(cmd); r.Code != 0 {
		t.Fatalf("npm ci in %s (the aria2 client library the test drives servers with; it needs the npm registry once): exit %d\n%s%s",
			driverDir, r.Code, r.Stdout, r.Stderr)
	}
	if err := os.WriteFile(stamp, []byte(want), 0o644); err != nil {
		t.Fatal(err)
	}
	return node, filepath.Join(driverDir, "drive.mjs")
}

// rpcMirrors serves file from three nginx mirrors on loopback, each at
// /slow/ (64 KiB/s a connection: a download stays under way for a
// minute) and at /fast/ (2 MiB/s a connection).
func rpcMirrors(t *testing.T, file string) (slow, fast []string) {
	t.Helper()
	root := filepath.Dir(file)
	name := filepath.Base(file)
	extra := "location /slow/ { alias " + root + "/; limit_rate 64k; }\n" +
		"location /fast/ { alias " + root + "/; limit_rate 2m; }"
	for range 3 {
		s := nginxtest.Start(t, root, extra)
		slow = append(slow, s.URL+"/slow/"+name)
		fast = append(fast, s.URL+"/fast/"+name)
	}
	return slow, fast
}

// rpcTranscript is what drive.mjs prints.
type rpcTranscript struct {
	Steps         []rpcStep           `json:"steps"`
	Notifications []rpcNotification   `json:"notifications"`
	Gids          map[string]string   `json:"gids"`
	Polls         map[string][]string `json:"polls"`
	Failure       string              `json:"failure"`
}

type rpcStep struct {
	Step   string          `json:"step"`
	Method string          `json:"method"`
	Result json.RawMessage `json:"result"`
	Error  *rpcError       `json:"error"`
}

type rpcError struct {
	Code    any    `json:"code"`
	Message string `json:"message"`
}

type rpcNotification struct {
	Method string           `json:"method"`
	Params []map[string]any `json:"params"`
}

// rpcScenario is one run of the driver against a server.
type rpcScenario struct {
	Port   string   `json:"port"`
	Secret string   `json:"secret"`
	Slow   []string `json:"slow"`
	Fast   []string `json:"fast"`
	Dir    string   `json:"dir"`
	Out    string   `json:"out"`
}

// drive runs the node driver against the server on sc.Port and returns
// what it saw; a step that failed fails the test, and the transcript
// holds the steps before it.
func drive(t *testing.T, node, script string, sc rpcScenario) *rpcTranscript {
	t.Helper()
	port, err := strconv.Atoi(sc.Port)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := json.Marshal(struct {
		rpcScenario
		Port      int `json:"port"`
		TimeoutMs int `json:"timeoutMs"`
	}{sc, port, 60000})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, filepath.Base(script), string(cfg))
	cmd.Dir = filepath.Dir(script)
	cmd.Env = loopbackEnv()
	r := proctest.Run(cmd)
	var tr rpcTranscript
	if err := json.Unmarshal([]byte(r.Stdout), &tr); err != nil {
		t.Fatalf("the driver printed no transcript (exit %d): %v\n%s\nits log:\n%s", r.Code, err, r.Stdout, tail(r.Stderr, 60))
	}
	if tr.Failure != "" || r.Code != 0 {
		t.Errorf("the scenario failed (exit %d): %s\nits log:\n%s", r.Code, tr.Failure, tail(r.Stderr, 60))
	}
	return &tr
}

// loopbackEnv is the environment without proxies: every test connection
// stays on loopback.
func loopbackEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.Contains(strings.ToLower(strings.SplitN(kv, "=", 2)[0]), "proxy") {
			env = append(env, kv)
		}
	}
	return env
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = append([]string{"..."}, lines[len(lines)-n:]...)
	}
	return strings.Join(lines, "\n")
}

// newSecret returns a random RPC secret.
func newSecret() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// waitListening waits until something accepts on 127.0.0.1:port.
func waitListening(t *testing.T, what, port string) {
	t.Helper()
	proctest.WaitFor(t, what+" on "+port, 10*time.Second, func() bool {
		c, err := net.Dial("tcp", "127.0.0.1:"+port)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
}

// startAria2cRPC runs the real aria2c as an RPC server and returns its
// port and its download directory.
func startAria2cRPC(t *testing.T, secret string) (port, dir string) {
	t.Helper()
	bin, err := exec.LookPath("aria2c")
	if err != nil {
		t.Fatal("aria2c is not installed: make test installs it (make test-deps), or run apt-get install aria2")
	}
	port, dir = proctest.FreePorts(t, 1)[0], t.TempDir()
	logFile := filepath.Join(t.TempDir(), "aria2c.log")
	cmd := exec.Command(bin, "--no-conf=true", "--enable-rpc", "--rpc-listen-port="+port, "--rpc-secret="+secret,
		"--dir="+dir, "--log="+logFile, "--log-level=info", "--console-log-level=warn", "--summary-interval=0",
		"--file-allocation=none")
	cmd.Env = loopbackEnv()
	logs := &proctest.LockedBuffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			log, _ := os.ReadFile(logFile)
			t.Logf("aria2c's output:\n%s\naria2c's log:\n%s", logs.String(), tail(string(log), 80))
		}
	})
	waitListening(t, "aria2c's RPC", port)
	return port, dir
}

// startIdmdRPC runs idmd with its aria2 RPC on and the secret in a
// file, and returns its port and its download directory: the default
// one of RPC callers, STATE-DIR/downloads for a system daemon (as root),
// XDG_DOWNLOAD_DIR for a per-user one.
func startIdmdRPC(t *testing.T, secret string) (port, dir string) {
	t.Helper()
	port = proctest.FreePorts(t, 1)[0]
	secretFile := filepath.Join(t.TempDir(), "rpc-secret")
	if err := os.WriteFile(secretFile, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	d := proctest.NewDaemon(t)
	// Missing: idmd makes it when it starts.
	dir = filepath.Join(d.StateDir, "downloads")
	t.Setenv("XDG_DOWNLOAD_DIR", dir)
	d.Start("--rpc-listen", "127.0.0.1:"+port, "--rpc-secret-file", secretFile)
	waitListening(t, "idmd's RPC", port)
	return port, dir
}

// rpcDifferences are the differences between aria2c's answers and
// idmd's that a front-end sees and that stay, each with its reason, as
// diffRPC words them. docs/aria2-rpc.md's section "Differences from
// aria2c" lists the same ones.
var rpcDifferences = []struct{ diff, reason string }{
	{"getVersion .idmd: aria2c absent, idmd string",
		"idmd gives its own version beside version, the aria2 version whose interface it speaks, so that a script can tell the two apart; front-ends read only the keys they know"},
}

// The aria2 JSON-RPC as a front-end sees it: one scenario, through the
// npm aria2 client library over HTTP and a WebSocket, first against the
// real aria2c, then against idmd. Every difference between the two that
// a front-end would see is gone or listed in rpcDifferences.
func TestAria2RPC_FrontEndScenario(t *testing.T) {
	node, script := nodeDriver(t)
	file, want := proctest.Sample(t, 8<<20, 41)
	slow, fast := rpcMirrors(t, file)
	const out = "copy.mkv"
	run := func(t *testing.T, start func(t *testing.T, secret string) (port, dir string)) *rpcView {
		secret := newSecret()
		port, dir := start(t, secret)
		tr := drive(t, node, script, rpcScenario{Port: port, Secret: secret, Slow: slow, Fast: fast, Dir: dir, Out: out})
		t.Logf("statuses while polling: %v", tr.Polls)
		if !t.Failed() {
			checkMidDownload(t, tr)
			checkDownloaded(t, dir, out, want)
		}
		return newRPCView(tr, dir, slow, fast)
	}
	var ref *rpcView
	t.Run("aria2c", func(t *testing.T) {
		v := run(t, startAria2cRPC)
		// The scenario's premise, on the reference server.
		if got, want := v.notifications(), rpcWantNotifications; got != want {
			t.Errorf("aria2c's notifications: %s\nwant %s", got, want)
		}
		if !t.Failed() {
			ref = v
		}
	})
	t.Run("idmd", func(t *testing.T) {
		v := run(t, startIdmdRPC)
		if ref == nil {
			t.Fatal("no answers of aria2c to compare idmd's with")
		}
		// Even after a failed step: what came before it is compared.
		checkDifferences(t, diffRPC(ref, v))
	})
}

// rpcWantNotifications are the scenario's notifications, in order, as
// aria2c sends them.
const rpcWantNotifications = "aria2.onDownloadStart(<gid1>) aria2.onDownloadPause(<gid1>) aria2.onDownloadStart(<gid1>) " +
	"aria2.onDownloadStop(<gid1>) aria2.onDownloadStart(<gid2>) aria2.onDownloadComplete(<gid2>)"

// checkMidDownload checks the scenario's premise: the first download
// was under way when it was paused and when it was removed.
func checkMidDownload(t *testing.T, tr *rpcTranscript) {
	t.Helper()
	for _, s := range tr.Steps {
		if s.Step != "paused" && s.Step != "removed" {
			continue
		}
		var st struct{ CompletedLength, TotalLength string }
		if err := json.Unmarshal(s.Result, &st); err != nil {
			t.Fatalf("%s: tellStatus answered %s: %v", s.Step, s.Result, err)
		}
		if st.TotalLength == "" || st.CompletedLength == st.TotalLength {
			t.Fatalf("%s: %s of %s bytes done: the first download must be under way, the mirrors are too fast for the scenario", s.Step, st.CompletedLength, st.TotalLength)
		}
	}
}

// checkDownloaded checks that dir/name holds want.
func checkDownloaded(t *testing.T, dir, name string, want []byte) {
	t.Helper()
	got, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		t.Fatalf("the completed download: %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s differs from the mirrors' file (%d bytes, want %d)", name, len(got), len(want))
	}
}

// rpcView is what a front-end sees of one run of the scenario, in terms
// that hold for any server doing its job: for each step, the facts of
// its answer (a path in it and the shape of the value there: "digits"
// for aria2's numbers, the word itself for a status, <gid1> for the
// first download's gid, $DIR for the download directory), and the
// notifications in order.
type rpcView struct {
	steps   []string                     // the steps in order
	methods map[string]string            // the method of each step
	facts   map[string]map[string]string // step -> path -> shape
	notes   []string                     // each notification, as method(<gid>)
}

// rpcFacts reduces answers to facts.
type rpcFacts struct {
	dir  string            // the run's download directory
	gids map[string]string // a gid -> <gid1>, <gid2>
	uris map[string]string // a mirror's URL -> slow[i], fast[i]
}

func newRPCView(tr *rpcTranscript, dir string, slow, fast []string) *rpcView {
	f := &rpcFacts{dir: dir, gids: map[string]string{}, uris: map[string]string{}}
	for label, gid := range tr.Gids {
		f.gids[gid] = "<" + label + ">"
	}
	for i := range slow {
		f.uris[slow[i]] = fmt.Sprintf("slow[%d]", i)
		f.uris[fast[i]] = fmt.Sprintf("fast[%d]", i)
	}
	v := &rpcView{methods: map[string]string{}, facts: map[string]map[string]string{}}
	for _, s := range tr.Steps {
		facts := map[string]string{}
		if s.Error != nil {
			facts["(error).code"] = fmt.Sprint(s.Error.Code)
			facts["(error).message"] = strconv.Quote(s.Error.Message)
		} else {
			var x any
			if err := json.Unmarshal(s.Result, &x); err != nil {
				facts["(result)"] = "not JSON"
			}
			f.walk("", "", x, nil, facts)
		}
		v.steps = append(v.steps, s.Step)
		v.methods[s.Step] = s.Method
		v.facts[s.Step] = facts
	}
	for _, n := range tr.Notifications {
		arg := "no params"
		if len(n.Params) == 1 && len(n.Params[0]) == 1 {
			if gid, ok := n.Params[0]["gid"].(string); ok {
				arg = f.gid(gid)
			}
		} else if len(n.Params) > 0 {
			b, _ := json.Marshal(n.Params)
			arg = string(b)
		}
		v.notes = append(v.notes, n.Method+"("+arg+")")
	}
	return v
}

func (v *rpcView) notifications() string { return strings.Join(v.notes, " ") }

// walk records the facts of x, found at path under key in parent.
func (f *rpcFacts) walk(path, key string, x any, parent map[string]any, out map[string]string) {
	at := path
	if at == "" {
		at = "(result)"
	}
	switch x := x.(type) {
	case map[string]any:
		if path != "" {
			out[at] = "object"
		}
		for k, e := range x {
			f.walk(path+"."+k, k, e, x, out)
		}
	case []any:
		if key == "uris" {
			f.uriList(at, x, out)
			return
		}
		strs := len(x) > 0
		for _, e := range x {
			_, ok := e.(string)
			strs = strs && ok
		}
		if strs {
			out[at] = "strings"
			return
		}
		out[at] = fmt.Sprintf("a list of %d", len(x))
		for i, e := range x {
			f.walk(fmt.Sprintf("%s[%d]", path, i), "", e, nil, out)
		}
	case string:
		out[at] = f.word(key, x, parent)
	case nil:
		out[at] = "null"
	case bool:
		out[at] = "boolean"
	case float64:
		out[at] = "a JSON number"
	default:
		out[at] = fmt.Sprintf("%T", x)
	}
}

// uriList records a file's URIs: which mirrors they are (aria2c lists
// one more than once, once for each time it was used) and whether every
// status is one of aria2's.
func (f *rpcFacts) uriList(at string, x []any, out map[string]string) {
	mirrors := map[string]bool{}
	statuses := "used|waiting"
	for _, e := range x {
		u, _ := e.(map[string]any)
		s, _ := u["uri"].(string)
		if l, ok := f.uris[s]; ok {
			s = l
		} else {
			s = strconv.Quote(s)
		}
		mirrors[s] = true
		if st, _ := u["status"].(string); st != "used" && st != "waiting" {
			statuses = fmt.Sprintf("a status %q", u["status"])
		}
		if len(u) != 2 {
			statuses += fmt.Sprintf(", %d keys", len(u))
		}
	}
	out[at] = "a list of URIs"
	out[at+"[].uri"] = strings.Join(slices.Sorted(maps.Keys(mirrors)), " ")
	out[at+"[].status"] = statuses
}

var (
	rpcGid    = regexp.MustCompile(`^[0-9a-f]{16}$`)
	rpcDigits = regexp.MustCompile(`^(0|[1-9][0-9]*)$`)
	rpcHex    = regexp.MustCompile(`^[0-9a-f]+$`)
)

// word is the shape of the string s found under key.
func (f *rpcFacts) word(key, s string, parent map[string]any) string {
	switch key {
	case "", "gid", "following", "belongsTo":
		// A call's whole answer is a gid, for addUri, pause, unpause
		// and remove.
		return f.gid(s)
	case "status", "errorCode", "totalLength", "length", "index",
		"numActive", "numWaiting", "numStopped", "numStoppedTotal":
		return strconv.Quote(s)
	case "completedLength":
		total, _ := parent["totalLength"].(string)
		if l, ok := parent["length"].(string); ok {
			total = l
		}
		if s == total && s != "0" {
			return "all of it"
		}
	case "dir":
		if s == f.dir {
			return "$DIR"
		}
		return strconv.Quote(s)
	case "path":
		if rest, ok := strings.CutPrefix(s, f.dir+"/"); ok {
			return strconv.Quote("$DIR/" + rest)
		}
		return strconv.Quote(s)
	case "selected":
		if s == "true" || s == "false" {
			return "true|false"
		}
		return strconv.Quote(s)
	case "bitfield":
		if rpcHex.MatchString(s) {
			return "hex"
		}
		return strconv.Quote(s)
	}
	if rpcDigits.MatchString(s) {
		return "digits"
	}
	return "string"
}

// gid is the shape of a gid: the label of the scenario's own, or "a gid"
// for another of aria2's form.
func (f *rpcFacts) gid(s string) string {
	if l, ok := f.gids[s]; ok {
		return l
	}
	if rpcGid.MatchString(s) {
		return "a gid"
	}
	return "not a gid: " + strconv.Quote(s)
}

// diffRPC returns each difference between aria2c's view and idmd's, as
// "method path: aria2c SHAPE, idmd SHAPE", with the steps it was seen
// in. A value missing on one side is "absent", and is said only once
// for a whole missing object.
func diffRPC(ref, got *rpcView) map[string][]string {
	diffs := map[string][]string{}
	add := func(line, step string) {
		if !slices.Contains(diffs[line], step) {
			diffs[line] = append(diffs[line], step)
		}
	}
	for _, step := range ref.steps {
		a, b := ref.facts[step], got.facts[step]
		if b == nil {
			continue // the scenario stopped before it
		}
		missing := func(p string, side map[string]string) bool {
			for q := parentPath(p); q != ""; q = parentPath(q) {
				if _, ok := side[q]; !ok {
					return true
				}
			}
			return false
		}
		paths := slices.Sorted(maps.Keys(a))
		for p := range b {
			if _, ok := a[p]; !ok {
				paths = append(paths, p)
			}
		}
		for _, p := range paths {
			x, okx := a[p]
			y, oky := b[p]
			if x == y || (!okx && missing(p, a)) || (!oky && missing(p, b)) {
				continue
			}
			if !okx {
				x = "absent"
			}
			if !oky {
				y = "absent"
			}
			add(fmt.Sprintf("%s %s: aria2c %s, idmd %s", ref.methods[step], p, x, y), step)
		}
	}
	if a, b := ref.notifications(), got.notifications(); a != b {
		add("notifications: aria2c "+a+", idmd "+b, "all")
	}
	return diffs
}

// parentPath is the path of the object or list that holds p, "" for the
// answer itself.
func parentPath(p string) string {
	i := strings.LastIndexAny(strings.TrimSuffix(p, "[]"), ".[")
	if i <= 0 {
		return ""
	}
	return strings.TrimSuffix(p[:i], "[]")
}

// checkDifferences checks that the differences seen are exactly those
// listed in rpcDifferences.
func checkDifferences(t *testing.T, diffs map[string][]string) {
	t.Helper()
	listed := map[string]bool{}
	for _, d := range rpcDifferences {
		listed[d.diff] = true
		if _, ok := diffs[d.diff]; !ok {
			t.Errorf("a listed difference is gone, remove it from rpcDifferences and docs/aria2-rpc.md: %s", d.diff)
		}
	}
	var unlisted []string
	for line, steps := range diffs {
		if !listed[line] {
			unlisted = append(unlisted, fmt.Sprintf("%s\n    (at %s)", line, strings.Join(steps, ", ")))
		}
	}
	slices.Sort(unlisted)
	if len(unlisted) > 0 {
		t.Errorf("%d differences from aria2c that a front-end sees, neither gone nor listed in rpcDifferences with a reason:\n  %s",
			len(unlisted), strings.Join(unlisted, "\n  "))
	}
}

// Each difference the front-end scenario lists is in docs/aria2-rpc.md,
// in its section "Differences from aria2c", as the test words it.
func TestAria2RPC_DifferencesDocumented(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "docs", "aria2-rpc.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(doc), "\n## Differences from aria2c\n")
	if !ok {
		t.Fatal(`docs/aria2-rpc.md has no section "## Differences from aria2c"`)
	}
	if i := strings.Index(section, "\n## "); i >= 0 {
		section = section[:i]
	}
	for _, d := range rpcDifferences {
		if d.reason == "" {
			t.Errorf("rpcDifferences gives no reason for %s", d.diff)
		}
		if !strings.Contains(section, "`"+d.diff+"`") {
			t.Errorf("docs/aria2-rpc.md's differences from aria2c do not list `%s`", d.diff)
		}
	}
}
