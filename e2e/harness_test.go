package e2e

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/idmproject/idm/ctl"
	"github.com/idmproject/idm/daemon/api"
)

var bin string // directory holding the built binaries

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "idm-e2e")
	if err != nil {
		panic(err)
	}
	cmd := exec.Command("go", "build", "-o", dir+"/", "../cmd/idm-server", "../cmd/idmd", "../cmd/idmctl")
	if out, err := cmd.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build: %v\n%s", err, out)
		os.Exit(1)
	}
	// Readable by all, so tests can run idmctl as another user.
	os.Chmod(dir, 0o755)
	bin = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// sample writes size random bytes and returns the path and the bytes.
func sample(t *testing.T, size int, seed uint64) (string, []byte) {
	t.Helper()
	b := make([]byte, size)
	rand.NewChaCha8([32]byte{byte(seed)}).Read(b)
	path := filepath.Join(t.TempDir(), fmt.Sprintf("movie-%d.mkv", seed))
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return path, b
}

func freePorts(t *testing.T, n int) []string {
	t.Helper()
	var ports []string
	var lns []net.Listener
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns = append(lns, ln)
		ports = append(ports, strconv.Itoa(ln.Addr().(*net.TCPAddr).Port))
	}
	for _, ln := range lns {
		ln.Close()
	}
	return ports
}

// servers is a running idm-server process.
type servers struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	ports []string
}

// startServers runs idm-server with one server per port, each limited to
// rate ("" for none).
func startServers(t *testing.T, file string, n int, rate string) *servers {
	t.Helper()
	ports := freePorts(t, n)
	args := []string{"-i", "1", "-n", strconv.Itoa(n), "-f", file, "--bind", "127.0.0.1", "-p"}
	args = append(args, ports...)
	if rate != "" {
		args = append(args, "--rate", rate)
	}
	cmd := exec.Command(filepath.Join(bin, "idm-server"), args...)
	stdin, _ := cmd.StdinPipe()
	cmd.Stdout = io.Discard
	logs := &lockedBuffer{}
	cmd.Stderr = logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("idm-server's log:\n%s", logs.String())
		}
	})
	s := &servers{cmd: cmd, stdin: stdin, ports: ports}
	for _, p := range ports {
		waitFor(t, "server on "+p, 10*time.Second, func() bool {
			c, err := net.Dial("tcp", "127.0.0.1:"+p)
			if err == nil {
				c.Close()
			}
			return err == nil
		})
	}
	return s
}

// console types a command on idm-server's standard input.
func (s *servers) console(t *testing.T, line string) {
	t.Helper()
	if _, err := io.WriteString(s.stdin, line+"\n"); err != nil {
		t.Fatal(err)
	}
}

// daemon is a running idmd process.
type daemon struct {
	t        *testing.T
	socket   string
	stateDir string
	cmd      *exec.Cmd
	logs     *lockedBuffer
	done     chan struct{}
}

func newDaemon(t *testing.T) *daemon {
	dir := t.TempDir()
	d := &daemon{t: t, socket: filepath.Join(dir, "run", "idmd.sock"), stateDir: filepath.Join(dir, "state"), logs: &lockedBuffer{}}
	t.Cleanup(func() {
		d.kill()
		if t.Failed() {
			t.Logf("idmd's log:\n%s", d.logs.String())
		}
	})
	return d
}

// start runs idmd and waits until it answers.
func (d *daemon) start(extra ...string) {
	d.t.Helper()
	args := append([]string{"run", "--socket", d.socket, "--state-dir", d.stateDir, "--stall", "1s"}, extra...)
	d.cmd = exec.Command(filepath.Join(bin, "idmd"), args...)
	d.cmd.Stderr = d.logs
	if err := d.cmd.Start(); err != nil {
		d.t.Fatal(err)
	}
	d.done = make(chan struct{})
	go func() { d.cmd.Wait(); close(d.done) }()
	c := d.client()
	waitFor(d.t, "idmd to answer", 10*time.Second, func() bool {
		_, err := c.Version(context.Background())
		return err == nil
	})
}

// kill ends idmd with SIGKILL, as a crash or power loss would.
func (d *daemon) kill() {
	if d.cmd == nil || d.cmd.Process == nil {
		return
	}
	d.cmd.Process.Kill()
	<-d.done
	d.cmd = nil
}

// stop sends SIGTERM and returns how long idmd took to exit.
func (d *daemon) stop() time.Duration {
	d.t.Helper()
	start := time.Now()
	d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
	case <-time.After(10 * time.Second):
		d.t.Fatal("idmd did not exit within 10 s of SIGTERM")
	}
	if code := d.cmd.ProcessState.ExitCode(); code != 0 {
		d.t.Errorf("idmd exited %d after SIGTERM", code)
	}
	d.cmd = nil
	return time.Since(start)
}

func (d *daemon) client() *ctl.Client { return &ctl.Client{Socket: d.socket} }

// job fetches a job through the API.
func (d *daemon) job(id uint64) *api.Job {
	d.t.Helper()
	j, err := d.client().Job(context.Background(), id)
	if err != nil {
		d.t.Fatal(err)
	}
	return j
}

// waitVerified waits until job id has verified at least frac of its file.
func (d *daemon) waitVerified(id uint64, frac float64) {
	d.t.Helper()
	waitFor(d.t, fmt.Sprintf("job %d %.0f%% verified", id, frac*100), time.Minute, func() bool {
		j, err := d.client().Job(context.Background(), id)
		return err == nil && j.Size > 0 && float64(j.Progress.Verified) >= frac*float64(j.Size)
	})
}

// result is a finished idmctl run.
type result struct {
	stdout, stderr string
	code           int
}

// idmctl runs idmctl against d and waits for it.
func (d *daemon) idmctl(args ...string) result {
	d.t.Helper()
	cmd := d.idmctlCmd(args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	cmd.Run()
	return result{out.String(), errb.String(), cmd.ProcessState.ExitCode()}
}

func (d *daemon) idmctlCmd(args ...string) *exec.Cmd {
	cmd := exec.Command(filepath.Join(bin, "idmctl"), append([]string{"--socket", d.socket}, args...)...)
	cmd.Env = append(os.Environ(), "IDMD_SOCKET="+d.socket)
	return cmd
}

// add queues a job with idmctl add and returns its ID.
func (d *daemon) add(dir string, srv *servers) uint64 {
	d.t.Helper()
	args := []string{"add", "-o", dir}
	for _, p := range srv.ports {
		args = append(args, "idm://127.0.0.1:"+p)
	}
	r := d.idmctl(args...)
	if r.code != 0 {
		d.t.Fatalf("idmctl add: exit %d: %s", r.code, r.stderr)
	}
	id, err := strconv.ParseUint(strings.TrimSpace(r.stdout), 10, 64)
	if err != nil {
		d.t.Fatalf("idmctl add printed %q, not an ID", r.stdout)
	}
	return id
}

// getArgs builds the seed's get command line.
func getArgs(dir string, srv *servers, extra ...string) []string {
	args := append([]string{"get"}, extra...)
	args = append(args, "-i", "1", "-o", dir, "-a", "127.0.0.1", "-p")
	return append(args, srv.ports...)
}

// sameFile checks the only file in dir equals want.
func sameFile(t *testing.T, dir string, want []byte) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if len(ents) != 1 {
		t.Fatalf("output directory holds %v, want one file", names)
	}
	got, err := os.ReadFile(filepath.Join(dir, ents[0].Name()))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s differs from the original (%d bytes, want %d)", ents[0].Name(), len(got), len(want))
	}
}

func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// lockedBuffer collects a process's output safely.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// lines splits output into lines.
func lines(s string) []string {
	var out []string
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		out = append(out, sc.Text())
	}
	return out
}
