// Package proctest runs idm's real binaries for end-to-end and
// reliability tests: it builds idm-server, idmd and idmctl once per test
// binary, starts them as separate processes on loopback, and offers the
// waits and checks those tests share. It is imported only by tests.
package proctest

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
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/idmproject/idm/ctl"
	"github.com/idmproject/idm/daemon/api"
)

var binDir string // the directory holding the built binaries

// Main builds the three binaries, runs the package's tests and removes
// the binaries. Call it from TestMain.
func Main(m *testing.M) {
	dir, err := os.MkdirTemp("", "idm-bin")
	if err != nil {
		panic(err)
	}
	_, self, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(self), "..", "..")
	cmd := exec.Command("go", "build", "-o", dir+"/", "./cmd/idm-server", "./cmd/idmd", "./cmd/idmctl")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build: %v\n%s", err, out)
		os.Exit(1)
	}
	// Readable by all, so tests can run idmctl as another user.
	os.Chmod(dir, 0o755)
	binDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// Bin returns the path of one of the built binaries.
func Bin(name string) string {
	if binDir == "" {
		panic("proctest: call proctest.Main from TestMain")
	}
	return filepath.Join(binDir, name)
}

// Sample writes size random bytes, the same for the same seed, to a new
// file and returns its path and the bytes.
func Sample(t testing.TB, size int, seed uint64) (string, []byte) {
	t.Helper()
	b := make([]byte, size)
	rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8)}).Read(b)
	path := filepath.Join(t.TempDir(), fmt.Sprintf("movie-%d.mkv", seed))
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return path, b
}

// FreePorts returns n loopback ports that were free a moment ago.
func FreePorts(t testing.TB, n int) []string {
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

// Servers is a running idm-server process.
type Servers struct {
	Cmd   *exec.Cmd
	Ports []string
	Logs  *LockedBuffer
	stdin io.WriteCloser
}

// StartServers runs idm-server on 127.0.0.1 with n servers of file, each
// limited to rate ("" for none; a comma list for one each), and waits
// until every port answers. extra flags are passed as they are.
func StartServers(t testing.TB, file string, n int, rate string, extra ...string) *Servers {
	t.Helper()
	ports := FreePorts(t, n)
	args := []string{"-i", "1", "-n", strconv.Itoa(n), "-f", file, "--bind", "127.0.0.1", "-p"}
	args = append(args, ports...)
	if rate != "" {
		args = append(args, "--rate", rate)
	}
	args = append(args, extra...)
	cmd := exec.Command(Bin("idm-server"), args...)
	// Its manifest cache goes with the test, not into the user's.
	cmd.Env = append(os.Environ(), "XDG_CACHE_HOME="+t.TempDir())
	stdin, _ := cmd.StdinPipe()
	cmd.Stdout = io.Discard
	s := &Servers{Cmd: cmd, Ports: ports, Logs: &LockedBuffer{}, stdin: stdin}
	cmd.Stderr = s.Logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("idm-server's log:\n%s", s.Logs.String())
		}
	})
	for _, p := range ports {
		WaitFor(t, "server on "+p, 10*time.Second, func() bool {
			c, err := net.Dial("tcp", "127.0.0.1:"+p)
			if err == nil {
				c.Close()
			}
			return err == nil
		})
	}
	return s
}

// Console types a command on idm-server's standard input.
func (s *Servers) Console(t testing.TB, line string) {
	t.Helper()
	if _, err := io.WriteString(s.stdin, line+"\n"); err != nil {
		t.Fatal(err)
	}
}

// Sources returns the servers as idm:// URLs.
func (s *Servers) Sources() []string {
	var out []string
	for _, p := range s.Ports {
		out = append(out, "idm://127.0.0.1:"+p)
	}
	return out
}

// Daemon is an idmd process, started and stopped as a test needs.
type Daemon struct {
	t        testing.TB
	Socket   string
	StateDir string
	Logs     *LockedBuffer
	cmd      *exec.Cmd
	done     chan struct{}
}

// NewDaemon prepares an idmd with its socket and state directory in a new
// temporary directory; Start runs it. It is killed when the test ends.
func NewDaemon(t testing.TB) *Daemon {
	dir := t.TempDir()
	d := &Daemon{t: t, Socket: filepath.Join(dir, "run", "idmd.sock"), StateDir: filepath.Join(dir, "state"), Logs: &LockedBuffer{}}
	t.Cleanup(func() {
		d.Kill()
		if t.Failed() {
			t.Logf("idmd's log:\n%s", d.Logs.String())
		}
	})
	return d
}

// Start runs idmd and waits until it answers.
func (d *Daemon) Start(extra ...string) {
	d.t.Helper()
	args := append([]string{"run", "--socket", d.Socket, "--state-dir", d.StateDir, "--stall", "1s"}, extra...)
	d.cmd = exec.Command(Bin("idmd"), args...)
	d.cmd.Stderr = d.Logs
	if err := d.cmd.Start(); err != nil {
		d.t.Fatal(err)
	}
	d.done = make(chan struct{})
	go func() { d.cmd.Wait(); close(d.done) }()
	c := d.Client()
	WaitFor(d.t, "idmd to answer", 10*time.Second, func() bool {
		_, err := c.Version(context.Background())
		return err == nil
	})
}

// PID returns the running idmd's process ID.
func (d *Daemon) PID() int { return d.cmd.Process.Pid }

// Kill ends idmd with SIGKILL, as a crash or power loss would.
func (d *Daemon) Kill() {
	if d.cmd == nil || d.cmd.Process == nil {
		return
	}
	d.cmd.Process.Kill()
	<-d.done
	d.cmd = nil
}

// Stop sends SIGTERM and returns how long idmd took to exit.
func (d *Daemon) Stop() time.Duration {
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

// Client returns an API client of this daemon.
func (d *Daemon) Client() *ctl.Client { return &ctl.Client{Socket: d.Socket} }

// Job fetches a job through the API.
func (d *Daemon) Job(id uint64) *api.Job {
	d.t.Helper()
	j, err := d.Client().Job(context.Background(), id)
	if err != nil {
		d.t.Fatal(err)
	}
	return j
}

// WaitVerified waits until job id has verified at least frac of its file.
func (d *Daemon) WaitVerified(id uint64, frac float64) {
	d.t.Helper()
	WaitFor(d.t, fmt.Sprintf("job %d %.0f%% verified", id, frac*100), time.Minute, func() bool {
		j, err := d.Client().Job(context.Background(), id)
		return err == nil && j.Size > 0 && float64(j.Progress.Verified) >= frac*float64(j.Size)
	})
}

// Result is a finished command.
type Result struct {
	Stdout, Stderr string
	Code           int
}

// Idmctl runs idmctl against d and waits for it.
func (d *Daemon) Idmctl(args ...string) Result {
	d.t.Helper()
	return Run(d.IdmctlCmd(args...))
}

// IdmctlCmd returns an idmctl command against d, not yet started.
func (d *Daemon) IdmctlCmd(args ...string) *exec.Cmd {
	cmd := exec.Command(Bin("idmctl"), append([]string{"--socket", d.Socket}, args...)...)
	cmd.Env = append(os.Environ(), "IDMD_SOCKET="+d.Socket)
	return cmd
}

// Run runs cmd to its end and returns what it printed and its status.
func Run(cmd *exec.Cmd) Result {
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	cmd.Run()
	code := -1
	if cmd.ProcessState != nil {
		code = cmd.ProcessState.ExitCode()
	}
	return Result{out.String(), errb.String(), code}
}

// Add queues a job of srv's servers into dir with idmctl add and returns
// its ID; extra flags go before the sources.
func (d *Daemon) Add(dir string, srv *Servers, extra ...string) uint64 {
	d.t.Helper()
	return d.AddArgs(append(append([]string{"-o", dir}, extra...), srv.Sources()...)...)
}

// AddArgs runs idmctl add with args and returns the new job's ID.
func (d *Daemon) AddArgs(args ...string) uint64 {
	d.t.Helper()
	r := d.Idmctl(append([]string{"add"}, args...)...)
	if r.Code != 0 {
		d.t.Fatalf("idmctl add: exit %d: %s", r.Code, r.Stderr)
	}
	id, err := strconv.ParseUint(strings.TrimSpace(r.Stdout), 10, 64)
	if err != nil {
		d.t.Fatalf("idmctl add printed %q, not an ID", r.Stdout)
	}
	return id
}

// GetArgs builds the seed's get command line.
func GetArgs(dir string, srv *Servers, extra ...string) []string {
	args := append([]string{"get"}, extra...)
	args = append(args, "-i", "1", "-o", dir, "-a", "127.0.0.1", "-p")
	return append(args, srv.Ports...)
}

// SameFile checks that the only file in dir equals want.
func SameFile(t testing.TB, dir string, want []byte) {
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

// WaitFor polls cond until it holds, failing the test after d.
func WaitFor(t testing.TB, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// LockedBuffer collects a process's output safely.
type LockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p.
func (l *LockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// String returns everything written so far.
func (l *LockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// Lines splits output into lines.
func Lines(s string) []string {
	var out []string
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		out = append(out, sc.Text())
	}
	return out
}

// VmHWM returns the peak resident memory of process pid, in bytes.
func VmHWM(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("no VmHWM for pid %d", pid)
}

// Tmpfs mounts a tmpfs of the given size (as mount takes it: "20m") on a
// new directory, unmounted when the test ends. It skips the test when it
// cannot mount one (not root), for a test of a full disk needs one.
func Tmpfs(t testing.TB, size string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a small tmpfs")
	}
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", dir).Run() })
	return dir
}

// ResizeTmpfs changes the size of a tmpfs mounted by Tmpfs.
func ResizeTmpfs(t testing.TB, dir, size string) {
	t.Helper()
	if out, err := exec.Command("mount", "-o", "remount,size="+size, dir).CombinedOutput(); err != nil {
		t.Fatalf("resize the tmpfs: %v: %s", err, out)
	}
}
