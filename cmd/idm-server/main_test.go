package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
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

	"github.com/idmproject/idm/transport"
)

var binary string

// TestMain builds the real binary once; the tests run it as a user would.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "idm-server-test")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "idm-server")
	if out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build: %v\n%s", err, out)
		os.Exit(1)
	}
	// The servers the tests start keep their manifest cache here, not in
	// the user's: set after the build, which has its own cache there.
	os.Setenv("XDG_CACHE_HOME", filepath.Join(dir, "cache"))
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func freePorts(t *testing.T, n int) []int {
	t.Helper()
	var ports []int
	var lns []net.Listener
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns = append(lns, ln)
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	for _, ln := range lns {
		ln.Close()
	}
	return ports
}

func testData(t *testing.T, size int) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "sample.bin")
	b := make([]byte, size)
	for i := range b {
		b[i] = byte(i * 31)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// proc is a running idm-server with its console and status lines.
type proc struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	lines chan string
}

func start(t *testing.T, args ...string) *proc {
	t.Helper()
	return startLogging(t, os.Stderr, args...)
}

// startLogging starts idm-server with its log going to stderr.
func startLogging(t *testing.T, stderr io.Writer, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(binary, args...)
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd: cmd, stdin: stdin, lines: make(chan string, 1000)}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			p.lines <- sc.Text()
		}
		close(p.lines)
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	return p
}

// nextStatus returns the next full round of n status lines.
func (p *proc) nextStatus(t *testing.T, n int) []string {
	t.Helper()
	var round []string
	deadline := time.After(10 * time.Second)
	for len(round) < n {
		select {
		case l, ok := <-p.lines:
			if !ok {
				t.Fatal("idm-server exited")
			}
			if strings.HasPrefix(l, "Server 1:") {
				round = round[:0]
			}
			round = append(round, l)
		case <-deadline:
			t.Fatal("no status lines within 10 s")
		}
	}
	return round
}

// waitStatus reads rounds until server k (1-based) shows state.
func (p *proc) waitStatus(t *testing.T, n, k int, state string) []string {
	t.Helper()
	for range 20 {
		round := p.nextStatus(t, n)
		if strings.Contains(round[k-1], "Status: "+state+",") {
			return round
		}
	}
	t.Fatalf("server %d never showed %s", k, state)
	return nil
}

func reachable(port int) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	c, err := transport.Dial(ctx, "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		return false
	}
	defer c.Close()
	_, err = c.Manifest(ctx)
	return err == nil
}

func TestIDMServer_StatusLinesAndConsole(t *testing.T) {
	path := testData(t, 1<<20)
	ports := freePorts(t, 3)
	p := start(t, "-i", "0.2", "-n", "3", "-f", path, "--bind", "127.0.0.1", "-p",
		strconv.Itoa(ports[0]), strconv.Itoa(ports[1]), strconv.Itoa(ports[2]))
	round := p.nextStatus(t, 3)
	for i, l := range round {
		want := fmt.Sprintf("Server %d: Port: %d Status: alive, To Shutdown Server %d Enter: E%d", i+1, ports[i], i+1, i+1)
		if l != want {
			t.Errorf("status line %d:\n got %q\nwant %q", i+1, l, want)
		}
	}
	for _, port := range ports {
		if !reachable(port) {
			t.Fatalf("server on %d not reachable", port)
		}
	}

	io.WriteString(p.stdin, "E2\n")
	round = p.waitStatus(t, 3, 2, "dead")
	if want := fmt.Sprintf("Server 2: Port: %d Status: dead, To Shutdown Server 2 Enter: E2", ports[1]); round[1] != want {
		t.Errorf("dead line %q, want %q", round[1], want)
	}
	if !strings.Contains(round[0], "alive") || !strings.Contains(round[2], "alive") {
		t.Errorf("shutting server 2 down disturbed the others: %q", round)
	}
	if reachable(ports[1]) {
		t.Error("server 2 still reachable after E2")
	}
	if !reachable(ports[0]) || !reachable(ports[2]) {
		t.Error("servers 1 and 3 unreachable after E2")
	}

	io.WriteString(p.stdin, "bogus\nE9\nS2\n")
	p.waitStatus(t, 3, 2, "alive")
	if !reachable(ports[1]) {
		t.Error("server 2 unreachable after S2")
	}

	// End of input stops nothing.
	p.stdin.Close()
	p.nextStatus(t, 3)
	if !reachable(ports[0]) {
		t.Error("closing stdin stopped the servers")
	}
	// SIGTERM stops everything cleanly.
	p.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- p.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("exit after SIGTERM: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("idm-server did not exit within 5 s of SIGTERM")
	}
}

func TestIDMServer_UsageErrors(t *testing.T) {
	path := testData(t, 1000)
	for _, tc := range []struct {
		name string
		args []string
		says string
	}{
		{"nothing", nil, "-i is required"},
		{"no ports", []string{"-i", "1", "-n", "1", "-f", path}, "-p is required"},
		{"n differs", []string{"-i", "1", "-n", "2", "-f", path, "-p", "9001"}, "-n is 2 but 1 ports"},
		{"duplicate port", []string{"-i", "1", "-n", "2", "-f", path, "-p", "9001", "9001"}, "given twice"},
		{"port zero", []string{"-i", "1", "-n", "1", "-f", path, "-p", "0"}, "1..65535"},
		{"port too big", []string{"-i", "1", "-n", "1", "-f", path, "-p", "70000"}, "1..65535"},
		{"port not a number", []string{"-i", "1", "-n", "1", "-f", path, "-p", "http"}, "1..65535"},
		{"interval zero", []string{"-i", "0", "-n", "1", "-f", path, "-p", "9001"}, "more than 0"},
		{"interval not a number", []string{"-i", "NaN", "-n", "1", "-f", path, "-p", "9001"}, "more than 0"},
		{"interval too long", []string{"-i", "1e300", "-n", "1", "-f", path, "-p", "9001"}, "at most 86400"},
		{"-i twice", []string{"-i", "1", "-i", "2", "-n", "1", "-f", path, "-p", "9001"}, "-i given twice"},
		{"--rate twice", []string{"-i", "1", "-n", "1", "-f", path, "-p", "9001", "--rate", "1M", "--rate", "2M"}, "--rate given twice"},
		{"stray comma", []string{"-i", "1", "-n", "1", "-f", path, "-p", "9001,"}, "empty port"},
		{"extra argument after the ports", []string{"-i", "1", "-n", "1", "-f", path, "-p", "9001", "extra"}, `port "extra"`},
		{"bad rate", []string{"-i", "1", "-n", "1", "-f", path, "-p", "9001", "--rate", "fast"}, "--rate"},
		{"rate count", []string{"-i", "1", "-n", "3", "-f", path, "-p", "9001,9002,9003", "--rate", "1M,2M"}, "--rate has 2 values"},
		{"stray argument", []string{"-i", "1", "-n", "1", "-f", path, "stray", "-p", "9001"}, "unexpected argument"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command(binary, tc.args...)
			out, err := cmd.CombinedOutput()
			if code := cmd.ProcessState.ExitCode(); code != 2 {
				t.Fatalf("exit %d (%v), want 2; output:\n%s", code, err, out)
			}
			first, _, _ := strings.Cut(string(out), "\n")
			if !strings.HasPrefix(first, "idm-server: ") || !strings.Contains(first, tc.says) {
				t.Errorf("first line %q, want one line saying %q", first, tc.says)
			}
			if !strings.Contains(string(out), "usage: idm-server -i <status_interval>") {
				t.Error("usage not printed")
			}
		})
	}
}

// A command line that is right but cannot be served (a missing file, a
// port taken) gets its one error line, without the usage that would push
// it off the screen.
func TestIDMServer_RuntimeErrors(t *testing.T) {
	path := testData(t, 1000)
	dir := t.TempDir()
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	port := strconv.Itoa(taken.Addr().(*net.TCPAddr).Port)
	free := strconv.Itoa(freePorts(t, 1)[0])
	for _, tc := range []struct {
		name string
		args []string
		says string
	}{
		{"missing file", []string{"-i", "1", "-n", "1", "-f", filepath.Join(dir, "nope"), "-p", free}, "no such file"},
		{"directory", []string{"-i", "1", "-n", "1", "-f", dir, "-p", free}, "not a regular file"},
		{"port taken", []string{"-i", "1", "-n", "2", "-f", path, "--bind", "127.0.0.1", "-p", free, port}, "port " + port + " is taken"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command(binary, tc.args...)
			var stderr strings.Builder
			cmd.Stderr = &stderr
			err := cmd.Run()
			if code := cmd.ProcessState.ExitCode(); code != 1 {
				t.Fatalf("exit %d (%v), want 1; stderr:\n%s", code, err, stderr.String())
			}
			var errs []string
			for _, l := range strings.Split(strings.TrimSpace(stderr.String()), "\n") {
				if !strings.Contains(l, "level=") { // the log of what went right first
					errs = append(errs, l)
				}
			}
			if len(errs) != 1 || !strings.HasPrefix(errs[0], "idm-server: ") || !strings.Contains(errs[0], tc.says) {
				t.Errorf("stderr %q, want one error line saying %q", stderr.String(), tc.says)
			}
		})
	}
}

func TestIDMServer_Help(t *testing.T) {
	out, err := exec.Command(binary, "--help").CombinedOutput()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"-i SECONDS", "--rate", "--bind", "--segment-size", "E<k>", "S<k>", "Example:"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("--help does not mention %s", want)
		}
	}
}

func TestParseArgs(t *testing.T) {
	path := testData(t, 10)
	for _, tc := range []struct {
		args  []string
		ports []int
		rates []int64
	}{
		{[]string{"-i", "5", "-n", "4", "-f", path, "-p", "9001", "9002", "9003", "9004"}, []int{9001, 9002, 9003, 9004}, []int64{0, 0, 0, 0}},
		{[]string{"-i", "5", "-n", "2", "-f", path, "-p", "9001,9002", "--rate", "40M"}, []int{9001, 9002}, []int64{40e6, 40e6}},
		{[]string{"-p", "1", "2", "-i", "1", "-n", "2", "-f", path, "--rate", "1Mi,2K"}, []int{1, 2}, []int64{1 << 20, 2000}},
	} {
		c, err := parseArgs(tc.args)
		if err != nil {
			t.Errorf("%q: %v", tc.args, err)
			continue
		}
		if fmt.Sprint(c.ports) != fmt.Sprint(tc.ports) || fmt.Sprint(c.rates) != fmt.Sprint(tc.rates) || len(c.files) != len(tc.ports) {
			t.Errorf("%q: ports %v rates %v files %d", tc.args, c.ports, c.rates, len(c.files))
		}
	}
}

// A console line too long to be a command is refused with one error line,
// and the console goes on reading: E1 after it still works.
func TestIDMServer_ConsoleLongLine(t *testing.T) {
	path := testData(t, 1<<20)
	ports := freePorts(t, 2)
	var stderr lockedBuffer
	p := startLogging(t, &stderr, "-i", "0.2", "-n", "2", "-f", path, "--bind", "127.0.0.1", "-p",
		strconv.Itoa(ports[0]), strconv.Itoa(ports[1]))
	p.waitStatus(t, 2, 1, "alive")

	io.WriteString(p.stdin, strings.Repeat("x", 100<<10)+"\nE1\n")
	p.waitStatus(t, 2, 1, "dead")
	if reachable(ports[0]) {
		t.Error("server 1 still reachable after E1")
	}
	if !reachable(ports[1]) {
		t.Error("server 2 went down too")
	}
	var long []string
	for _, l := range strings.Split(stderr.String(), "\n") {
		if strings.HasPrefix(l, "idm-server: ") {
			long = append(long, l)
		}
	}
	if len(long) != 1 || !strings.Contains(long[0], "too long") || len(long[0]) > 200 {
		t.Errorf("want one short error line about the long line, got %q", long)
	}
}

// lockedBuffer collects a process's output while the test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
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
