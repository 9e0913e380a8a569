package e2e

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/idmproject/idm/internal/proctest"
	"github.com/idmproject/idm/transport/metalink"
)

// aria2c runs the real aria2c, a Metalink client that idm does not
// write, with args, downloading into dir, and returns its log and exit
// status. A missing aria2c fails the test: make test installs it.
func aria2c(t *testing.T, dir string, args ...string) (string, int) {
	t.Helper()
	bin, err := exec.LookPath("aria2c")
	if err != nil {
		t.Fatal("aria2c is not installed: make test installs it (make test-deps), or run apt-get install aria2")
	}
	logFile := filepath.Join(t.TempDir(), "aria2.log")
	base := []string{
		"--no-conf=true", "--dir=" + dir, "--log=" + logFile, "--log-level=info",
		"--console-log-level=error", "--summary-interval=0", "--file-allocation=none",
		"--check-integrity=true", "--connect-timeout=5", "--timeout=10", "--max-tries=2",
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append(base, args...)...)
	// Only loopback: no proxy of the environment.
	for _, kv := range os.Environ() {
		if !strings.Contains(strings.ToLower(strings.SplitN(kv, "=", 2)[0]), "proxy") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	r := proctest.Run(cmd)
	log, _ := os.ReadFile(logFile)
	if ctx.Err() != nil {
		t.Fatalf("aria2c did not finish within a minute; its log:\n%s", log)
	}
	return r.Stdout + r.Stderr + string(log), r.Code
}

// aria2c downloads the file from the Metalink an idm-server gives at
// /<name>.meta4, following it from memory, and checks every piece
// against the SHA-256 pieces in it: the bytes are the file's.
func TestAria2_Meta4FromServer(t *testing.T) {
	file, want := proctest.Sample(t, 8<<20, 31)
	srv := proctest.StartServers(t, file, 1, "")
	out := t.TempDir()
	log, code := aria2c(t, out, "--follow-metalink=mem", "http://127.0.0.1:"+srv.Ports[0]+"/"+filepath.Base(file)+".meta4")
	if code != 0 {
		t.Fatalf("aria2c exit %d:\n%s", code, log)
	}
	if !strings.Contains(log, "Good chunk checksum") {
		t.Errorf("aria2c checked no piece against the Metalink's hashes:\n%s", log)
	}
	proctest.SameFile(t, out, want)
}

// A Metalink that idm-server meta4 prints with two servers' URLs: aria2c
// fetches from both and checks the pieces.
func TestAria2_Meta4OfTwoServers(t *testing.T) {
	file, want := proctest.Sample(t, 8<<20, 32)
	srv := proctest.StartServers(t, file, 2, "")
	r := proctest.Run(exec.Command(proctest.Bin("idm-server"), "meta4", "-f", file, "--cache-dir", t.TempDir(),
		"--url", "http://127.0.0.1:"+srv.Ports[0]+"/", "--url", "http://127.0.0.1:"+srv.Ports[1]+"/"))
	if r.Code != 0 {
		t.Fatalf("idm-server meta4: exit %d: %s", r.Code, r.Stderr)
	}
	doc := filepath.Join(t.TempDir(), "movie.meta4")
	if err := os.WriteFile(doc, []byte(r.Stdout), 0o644); err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	log, code := aria2c(t, out, "--metalink-file="+doc, "--split=4", "--min-split-size=1M", "--max-connection-per-server=2")
	if code != 0 {
		t.Fatalf("aria2c exit %d:\n%s", code, log)
	}
	for _, p := range srv.Ports {
		if !strings.Contains(log, "Connecting to 127.0.0.1:"+p) {
			t.Errorf("aria2c did not fetch from the server on port %s:\n%s", p, log)
		}
	}
	proctest.SameFile(t, out, want)
}

// The same Metalink with one piece hash wrong, served by another server:
// aria2c refuses the download rather than keep the piece, which shows it
// checks idm-server's pieces and does not only read them.
func TestAria2_RefusesWrongPieceHash(t *testing.T) {
	file, _ := proctest.Sample(t, 4<<20, 33)
	srv := proctest.StartServers(t, file, 1, "")
	name := filepath.Base(file)
	res, err := http.Get("http://127.0.0.1:" + srv.Ports[0] + "/" + name + ".meta4")
	if err != nil {
		t.Fatal(err)
	}
	good, err := io.ReadAll(res.Body)
	res.Body.Close()
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("GET .meta4: %v %s", err, res.Status)
	}
	// The third piece's hash, one hex digit changed.
	i := bytes.Index(good, []byte("<pieces"))
	for range 3 {
		i += bytes.Index(good[i:], []byte("<hash>")) + len("<hash>")
	}
	bad := bytes.Clone(good)
	if bad[i] == '0' {
		bad[i] = '1'
	} else {
		bad[i] = '0'
	}
	files, err := metalink.Parse(bytes.NewReader(bad))
	if err != nil || files[0].Pieces == nil {
		t.Fatalf("the changed Metalink does not parse, or lost its pieces: %v", err)
	}
	lie := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", metalink.MediaType)
		w.Write(bad)
	}))
	defer lie.Close()
	out := t.TempDir()
	log, code := aria2c(t, out, "--follow-metalink=mem", lie.URL+"/"+name+".meta4")
	if code == 0 {
		t.Fatalf("aria2c took a file whose piece 2 does not match its hash:\n%s", log)
	}
	if !strings.Contains(strings.ToLower(log), "checksum") {
		t.Errorf("aria2c failed, but not for the checksum:\n%s", log)
	}
}
