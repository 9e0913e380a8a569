package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"io/fs"
	"net/http"
	"os"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/idmproject/idm/ctl"
	"github.com/idmproject/idm/internal/proctest"
)

// daemon is idmd run in the test's own process.
type daemon struct {
	sock   string
	stderr *proctest.LockedBuffer
	cancel context.CancelFunc
	done   chan int
}

// startDaemon runs idmd run with args and a socket of its own until the
// test stops it, and waits until its API answers.
func startDaemon(t *testing.T, args ...string) *daemon {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	old := stopContext
	stopContext = func() (context.Context, func()) { return ctx, func() {} }
	t.Cleanup(func() { stopContext = old })
	d := &daemon{sock: filepath.Join(t.TempDir(), "idmd.sock"), stderr: &proctest.LockedBuffer{}, cancel: cancel, done: make(chan int, 1)}
	go func() {
		d.done <- run(append([]string{"run", "--socket", d.sock, "--system=false"}, args...), io.Discard, d.stderr)
	}()
	t.Cleanup(func() { d.stop(t) })
	c := &ctl.Client{Socket: d.sock}
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := c.Version(context.Background()); err == nil {
			return d
		}
		select {
		case code := <-d.done:
			d.done <- code
			t.Fatalf("idmd ended with %d before it answered:\n%s", code, d.stderr)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("idmd did not answer in 30 s:\n%s", d.stderr)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// stop stops d and returns its exit status; it may be called again.
func (d *daemon) stop(t *testing.T) int {
	t.Helper()
	d.cancel()
	select {
	case code := <-d.done:
		d.done <- code
		return code
	case <-time.After(30 * time.Second):
		t.Fatalf("idmd did not stop:\n%s", d.stderr)
	}
	return -1
}

// rpcCall calls method over the aria2 RPC at url and returns the answer.
func rpcCall(t *testing.T, url, secret, method string, params ...any) (result json.RawMessage, errMsg string) {
	t.Helper()
	b, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": 1, "method": method, "params": append([]any{"token:" + secret}, params...)})
	res, err := http.Post(url, "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var r struct {
		Result json.RawMessage
		Error  *struct{ Message string }
	}
	if err := json.NewDecoder(res.Body).Decode(&r); err != nil {
		t.Fatal(err)
	}
	if r.Error != nil {
		return nil, r.Error.Message
	}
	return r.Result, ""
}

// idmd run --rpc-listen makes the secret at the first start, in a file
// of mode 0600 in the state directory, reads it at the next, tells it
// through the socket (idmctl rpc-secret) and answers aria2's JSON-RPC
// with it, downloading only into its download directories.
func TestRun_RPC(t *testing.T) {
	state, dl, more := t.TempDir(), t.TempDir(), t.TempDir()
	t.Setenv("XDG_DOWNLOAD_DIR", dl)
	t.Setenv("IDMD_DOWNLOAD_DIRS", "")
	d := startDaemon(t, "--state-dir", state, "--rpc-listen", "127.0.0.1:0", "--download-dir", more)
	var stdout, stderr bytes.Buffer
	if code := ctl.Main(context.Background(), []string{"--socket", d.sock, "rpc-secret"}, &stdout, &stderr); code != 0 {
		t.Fatalf("idmctl rpc-secret: %d %s", code, stderr.String())
	}
	secret := strings.TrimSuffix(stdout.String(), "\n")
	if !regexp.MustCompile(`^[0-9a-f]{64}$`).MatchString(secret) {
		t.Fatalf("idmctl rpc-secret printed %q", stdout.String())
	}
	path := filepath.Join(state, "rpc-secret")
	fi, err := os.Lstat(path)
	if err != nil || fi.Mode() != 0o600 {
		t.Fatalf("the secret file: %v, mode %v", err, fi.Mode())
	}
	if b, _ := os.ReadFile(path); string(b) != secret+"\n" {
		t.Errorf("the secret file holds %q", b)
	}
	info, err := (&ctl.Client{Socket: d.sock}).RPC(context.Background())
	if err != nil || !strings.HasPrefix(info.URL, "http://127.0.0.1:") || info.Secret != secret {
		t.Fatalf("GET /v1/rpc: %+v, %v", info, err)
	}
	var opts map[string]string
	res, msg := rpcCall(t, info.URL, secret, "aria2.getGlobalOption")
	if json.Unmarshal(res, &opts); opts["dir"] != dl {
		t.Errorf("getGlobalOption: %s %s; want dir %s", res, msg, dl)
	}
	if _, msg := rpcCall(t, info.URL, secret, "aria2.addUri", []string{"http://127.0.0.1:1/f"}, map[string]any{"dir": more, "pause": "true"}); msg != "" {
		t.Errorf("addUri into a --download-dir: %s", msg)
	}
	if _, msg := rpcCall(t, info.URL, secret, "aria2.addUri", []string{"http://127.0.0.1:1/f"}, map[string]any{"dir": t.TempDir()}); !strings.Contains(msg, "is not one of idmd's download directories ("+dl+", "+more+")") {
		t.Errorf("addUri elsewhere: %q", msg)
	}
	if _, msg := rpcCall(t, info.URL, "wrong", "aria2.getVersion"); msg != "Unauthorized" {
		t.Errorf("a wrong secret: %q", msg)
	}
	if code := d.stop(t); code != 0 {
		t.Fatalf("idmd ended with %d:\n%s", code, d.stderr)
	}

	d = startDaemon(t, "--state-dir", state, "--rpc-listen", "127.0.0.1:0")
	if info, err := (&ctl.Client{Socket: d.sock}).RPC(context.Background()); err != nil || info.Secret != secret {
		t.Errorf("after a restart the secret is %+v, %v; want the same", info, err)
	}
}

// Without --rpc-listen there is no RPC, nor a secret.
func TestRun_RPC_Off(t *testing.T) {
	state := t.TempDir()
	t.Setenv("IDMD_RPC_LISTEN", "")
	d := startDaemon(t, "--state-dir", state)
	_, err := (&ctl.Client{Socket: d.sock}).RPC(context.Background())
	if !ctl.IsNotFound(err) {
		t.Errorf("GET /v1/rpc of an idmd without RPC: %v", err)
	}
	if _, err := os.Lstat(filepath.Join(state, "rpc-secret")); !os.IsNotExist(err) {
		t.Errorf("a secret was made: %v", err)
	}
}

// An address other than loopback's takes --rpc-listen-any: without it,
// idmd says so in one line and exits 2, having started nothing.
func TestRun_RPCListen_NotLoopback(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:0", ":6800", "[::]:0", "192.0.2.1:6800", "example.com:6800", "nonsense"} {
		state := t.TempDir()
		var stderr bytes.Buffer
		code := run([]string{"run", "--socket", filepath.Join(state, "s"), "--state-dir", state, "--rpc-listen", addr}, io.Discard, &stderr)
		want := "--rpc-listen-any to mean it"
		if addr == "nonsense" {
			want = "want HOST:PORT"
		}
		if code != 2 || !strings.Contains(stderr.String(), want) || strings.Count(stderr.String(), "\n") != 1 {
			t.Errorf("--rpc-listen %s: exit %d\n%s", addr, code, stderr.String())
		}
		if ents, _ := os.ReadDir(state); len(ents) != 0 {
			t.Errorf("--rpc-listen %s: it started: %v", addr, ents)
		}
	}
	t.Setenv("IDMD_RPC_LISTEN", "0.0.0.0:0")
	var stderr bytes.Buffer
	if code := run([]string{"run", "--socket", filepath.Join(t.TempDir(), "s"), "--state-dir", t.TempDir()}, io.Discard, &stderr); code != 2 {
		t.Errorf("IDMD_RPC_LISTEN=0.0.0.0:0: exit %d\n%s", code, stderr.String())
	}
	t.Setenv("IDMD_RPC_LISTEN", "")
	if code := run([]string{"install", "--rpc-listen", "0.0.0.0:6800"}, io.Discard, &stderr); code != 2 {
		t.Errorf("idmd install --rpc-listen 0.0.0.0:6800: exit %d", code)
	}
	d := startDaemon(t, "--state-dir", t.TempDir(), "--rpc-listen", "0.0.0.0:0", "--rpc-listen-any")
	if info, err := (&ctl.Client{Socket: d.sock}).RPC(context.Background()); err != nil || !strings.HasPrefix(info.Listen, "0.0.0.0:") && !strings.HasPrefix(info.Listen, "[::]:") {
		t.Errorf("with --rpc-listen-any: %+v, %v", info, err)
	}
}

// A symbolic link where the secret file is, to a file or to nowhere, is
// refused in one line, and nothing starts.
func TestRun_RPCSecretFile_Link(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "target")
	os.WriteFile(target, []byte("abc\n"), 0o600)
	os.Symlink(target, filepath.Join(dir, "link"))
	os.Symlink(filepath.Join(dir, "nowhere"), filepath.Join(dir, "dangling"))
	for _, name := range []string{"link", "dangling"} {
		state := t.TempDir()
		var stderr bytes.Buffer
		code := run([]string{"run", "--socket", filepath.Join(state, "s"), "--state-dir", state, "--rpc-listen", "127.0.0.1:0",
			"--rpc-secret-file", filepath.Join(dir, name)}, io.Discard, &stderr)
		if code != 1 || !strings.Contains(stderr.String(), "is a symbolic link: refused") || strings.Count(stderr.String(), "\n") != 1 {
			t.Errorf("%s: exit %d\n%s", name, code, stderr.String())
		}
		if _, err := os.Lstat(filepath.Join(state, "s")); !os.IsNotExist(err) {
			t.Errorf("%s: the socket was made", name)
		}
	}
	if _, err := os.Lstat(filepath.Join(dir, "nowhere")); !os.IsNotExist(err) {
		t.Error("a secret was written through the dangling link")
	}
}

// A download directory must be an absolute path.
func TestRun_DownloadDir_Relative(t *testing.T) {
	var stderr bytes.Buffer
	if code := run([]string{"run", "--state-dir", t.TempDir(), "--download-dir", "downloads"}, io.Discard, &stderr); code != 2 || !strings.Contains(stderr.String(), `download directory "downloads" is not an absolute path`) {
		t.Errorf("exit %d\n%s", code, stderr.String())
	}
}

// rpcInfo returns the URL and the secret of d's aria2 RPC.
func rpcInfo(t *testing.T, d *daemon) (url, secret string) {
	t.Helper()
	info, err := (&ctl.Client{Socket: d.sock}).RPC(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info.URL, info.Secret
}

// addPaused adds a paused download with aria2.addUri and no dir, and
// returns the directory it goes to, or the error.
func addPaused(t *testing.T, url, secret string) (dir, errMsg string) {
	t.Helper()
	res, msg := rpcCall(t, url, secret, "aria2.addUri", []string{"http://127.0.0.1:1/f"}, map[string]any{"pause": "true"})
	if msg != "" {
		return "", msg
	}
	var gid string
	json.Unmarshal(res, &gid)
	res, msg = rpcCall(t, url, secret, "aria2.tellStatus", gid, []string{"dir"})
	var st map[string]string
	if json.Unmarshal(res, &st); msg != "" {
		t.Fatalf("tellStatus %s: %s", gid, msg)
	}
	return st["dir"], ""
}

// A missing default download directory is made at the start, that one
// directory: private to a per-user daemon's user; as the package makes
// it for a system daemon, its group's to write in, setgid and sticky.
// An addUri without dir then downloads there.
func TestRun_RPC_DefaultDirMade(t *testing.T) {
	t.Setenv("IDMD_DOWNLOAD_DIRS", "")
	group, err := user.LookupGroupId(strconv.Itoa(os.Getegid()))
	if err != nil {
		t.Skip("the test's group has no name:", err)
	}
	for _, tc := range []struct {
		name string
		args []string
		mode fs.FileMode
		gid  int
	}{
		{"per-user", nil, fs.ModeDir | 0o700, -1},
		{"system", []string{"--system", "--group", group.Name}, fs.ModeDir | fs.ModeSetgid | fs.ModeSticky | 0o775, os.Getegid()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			state := t.TempDir()
			dl := filepath.Join(state, "downloads") // a system daemon's
			if tc.gid < 0 {
				dl = filepath.Join(t.TempDir(), "Downloads")
			}
			t.Setenv("XDG_DOWNLOAD_DIR", dl)
			d := startDaemon(t, append([]string{"--state-dir", state, "--rpc-listen", "127.0.0.1:0"}, tc.args...)...)
			fi, err := os.Lstat(dl)
			if err != nil || fi.Mode() != tc.mode {
				t.Fatalf("the default download directory: %v, mode %v; want %v\n%s", err, fi.Mode(), tc.mode, d.stderr)
			}
			st := fi.Sys().(*syscall.Stat_t)
			if int(st.Uid) != os.Geteuid() || tc.gid >= 0 && int(st.Gid) != tc.gid {
				t.Errorf("owned by %d:%d", st.Uid, st.Gid)
			}
			if !strings.Contains(d.stderr.String(), "made the default download directory of RPC callers") {
				t.Errorf("no word of it in the log:\n%s", d.stderr)
			}
			url, secret := rpcInfo(t, d)
			if dir, msg := addPaused(t, url, secret); dir != dl {
				t.Errorf("addUri without dir: into %q, %s; want %s", dir, msg, dl)
			}
			if code := d.stop(t); code != 0 {
				t.Fatalf("idmd ended with %d:\n%s", code, d.stderr)
			}
			// The next start finds it, and leaves it as it is.
			os.Chmod(dl, 0o750)
			d = startDaemon(t, append([]string{"--state-dir", state, "--rpc-listen", "127.0.0.1:0"}, tc.args...)...)
			if fi, _ := os.Lstat(dl); fi.Mode() != fs.ModeDir|0o750 || strings.Contains(d.stderr.String(), "made the default") {
				t.Errorf("at the next start: mode %v\n%s", fi.Mode(), d.stderr)
			}
		})
	}
}

// What is in the default download directory's place and is not a
// directory is neither replaced nor followed to make one: idmd says so
// in one line of its log and runs. A link to nowhere leaves an addUri
// without dir refused; one to a directory, the user's own way of
// putting downloads elsewhere, is where they go, its mode untouched.
func TestRun_RPC_DefaultDirRefused(t *testing.T) {
	t.Setenv("IDMD_DOWNLOAD_DIRS", "")
	dir := t.TempDir()
	elsewhere := filepath.Join(dir, "elsewhere")
	os.Mkdir(elsewhere, 0o750)
	nowhere := filepath.Join(dir, "nowhere")
	file := filepath.Join(dir, "file")
	os.WriteFile(file, nil, 0o600)
	for _, tc := range []struct {
		name, to, log, into string
	}{
		{"dangling", nowhere, "is a symbolic link to " + nowhere + ", no directory", ""},
		{"to-dir", elsewhere, "is a symbolic link to " + elsewhere + ": idmd neither makes", elsewhere},
		{"file", "", "is not a directory", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dl := filepath.Join(dir, tc.name)
			if tc.to != "" {
				os.Symlink(tc.to, dl)
			} else {
				os.WriteFile(dl, nil, 0o600)
			}
			t.Setenv("XDG_DOWNLOAD_DIR", dl)
			d := startDaemon(t, "--state-dir", t.TempDir(), "--rpc-listen", "127.0.0.1:0")
			var lines []string
			for _, l := range strings.Split(d.stderr.String(), "\n") {
				if strings.Contains(l, "default download directory") {
					lines = append(lines, l)
				}
			}
			if len(lines) != 1 || !strings.Contains(lines[0], "level=WARN") || !strings.Contains(lines[0], tc.log) {
				t.Errorf("the log says %q; want one warning saying %q", lines, tc.log)
			}
			url, secret := rpcInfo(t, d)
			into, msg := addPaused(t, url, secret)
			if tc.into == "" && msg == "" || tc.into != "" && into != tc.into {
				t.Errorf("addUri without dir: into %q, %s", into, msg)
			}
		})
	}
	if _, err := os.Lstat(nowhere); !os.IsNotExist(err) {
		t.Errorf("a directory was made where the dangling link leads: %v", err)
	}
	if fi, _ := os.Stat(elsewhere); fi.Mode() != fs.ModeDir|0o750 {
		t.Errorf("the directory a link leads to is now %v", fi.Mode())
	}
}
