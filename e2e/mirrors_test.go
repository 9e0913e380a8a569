package e2e

import (
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/idmproject/idm/daemon/api"
	"github.com/idmproject/idm/internal/proctest"
)

// httpSources returns srv's servers as HTTP mirrors: idm-server answers
// plain HTTP ranges on the same ports.
func httpSources(srv *proctest.Servers) []string {
	var out []string
	for _, p := range srv.Ports {
		out = append(out, "http://127.0.0.1:"+p+"/")
	}
	return out
}

// A job of HTTP mirrors only, added with idmctl: idm-server's HTTP side
// points to its Metalink, whose SHA-256 pieces check every byte; idmd is
// killed in the middle, and after the restart keeps what it had and
// finishes with the right bytes.
func TestHTTPMirrorsKillAndResume(t *testing.T) {
	file, want := proctest.Sample(t, 8<<20, 21)
	srv := proctest.StartServers(t, file, 3, "1M")
	d := proctest.NewDaemon(t)
	d.Start()
	out := t.TempDir()
	id := d.AddArgs(append([]string{"-o", out}, httpSources(srv)...)...)
	d.WaitVerified(id, 0.4)
	before := d.Job(id).Progress.Verified
	d.Kill()
	d.Start()
	proctest.WaitFor(t, "progress restored", 10*time.Second, func() bool {
		return d.Job(id).Progress.Verified >= before-int64(2<<20)
	})
	if r := d.Idmctl("wait", strconv.FormatUint(id, 10)); r.Code != 0 {
		t.Fatalf("wait: exit %d: %s", r.Code, r.Stderr)
	}
	proctest.SameFile(t, out, want)
	j := d.Job(id)
	if j.State != api.StateCompleted || j.OwnHashes || j.Content == "" {
		t.Errorf("job %s, own hashes %v, content %q; want completed, checked against the Metalink's pieces", j.State, j.OwnHashes, j.Content)
	}
}

// idm servers and HTTP mirrors in one job: the idm manifest's hashes
// check what the mirrors send, and the job says the file is verified.
func TestIDMAndHTTPSourcesTogether(t *testing.T) {
	file, want := proctest.Sample(t, 6<<20, 22)
	srv := proctest.StartServers(t, file, 4, "1M")
	d := proctest.NewDaemon(t)
	d.Start()
	out := t.TempDir()
	h := httpSources(srv)
	id := d.AddArgs("-o", out, srv.Sources()[0], srv.Sources()[1], h[2], h[3])
	if r := d.Idmctl("wait", strconv.FormatUint(id, 10)); r.Code != 0 {
		t.Fatalf("wait: exit %d: %s", r.Code, r.Stderr)
	}
	proctest.SameFile(t, out, want)
	j := d.Job(id)
	if j.OwnHashes || j.Content == "" {
		t.Errorf("own hashes %v, content %q; want the idm servers' identity", j.OwnHashes, j.Content)
	}
	for _, s := range j.Progress.Sources {
		if s.Verified == 0 {
			t.Errorf("source %s delivered nothing verified", s.Source)
		}
	}
}

// idmctl add FILE.meta4: the Metalink's file comes from its mirrors (here
// idm-server's HTTP side), checked against its SHA-256 pieces, under the
// Metalink's name; a Metalink with a hostile name is refused in one line
// and leaves nothing.
func TestAddMetalink(t *testing.T) {
	file, want := proctest.Sample(t, 3<<20, 23)
	srv := proctest.StartServers(t, file, 2, "")
	d := proctest.NewDaemon(t)
	d.Start()
	dir := t.TempDir()
	write := func(name string) string {
		var b strings.Builder
		fmt.Fprintf(&b, "<metalink xmlns=\"urn:ietf:params:xml:ns:metalink\"><file name=%q><size>%d</size><pieces length=\"1048576\" type=\"sha-256\">", name, len(want))
		for off := 0; off < len(want); off += 1 << 20 {
			fmt.Fprintf(&b, "<hash>%x</hash>", sha256.Sum256(want[off:min(off+1<<20, len(want))]))
		}
		b.WriteString("</pieces>")
		for _, u := range httpSources(srv) {
			fmt.Fprintf(&b, "<url>%s</url>", u)
		}
		b.WriteString("</file></metalink>")
		p := filepath.Join(dir, "release.meta4")
		if err := os.WriteFile(p, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	out := t.TempDir()
	r := d.Idmctl("add", "-o", out, write("../../etc/cron.d/evil"))
	if r.Code == 0 || len(proctest.Lines(r.Stderr)) != 1 || !strings.Contains(r.Stderr, "evil") {
		t.Errorf("a hostile name: exit %d, stderr %q; want one line refusing it", r.Code, r.Stderr)
	}
	id := d.AddArgs("-o", out, write("release.iso"))
	if r := d.Idmctl("wait", strconv.FormatUint(id, 10)); r.Code != 0 {
		t.Fatalf("wait: exit %d: %s", r.Code, r.Stderr)
	}
	proctest.SameFile(t, out, want)
	if j := d.Job(id); j.Name != "release.iso" || j.OwnHashes {
		t.Errorf("job name %q, own hashes %v; want the Metalink's name and its hashes", j.Name, j.OwnHashes)
	}
}
