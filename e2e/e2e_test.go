package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/idmproject/idm/daemon/api"
)

// The seed's scenario: four servers, `idmctl get` printing the report every
// second until the file is complete and verified.
func TestSeedScenario(t *testing.T) {
	file, want := sample(t, 4<<20, 1)
	srv := startServers(t, file, 4, "1M")
	d := newDaemon(t)
	d.start()
	out := t.TempDir()
	r := d.idmctl(getArgs(out, srv)...)
	if r.code != 0 {
		t.Fatalf("get: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	sameFile(t, out, want)
	server := regexp.MustCompile(`^Server ([1-4]): (\d+)/4194304, download speed: (\d+)kb/s$`)
	total := regexp.MustCompile(`^Total: (\d+)/4194304, download speed: (\d+)kb/s$`)
	var reports, lastTotal int
	for _, l := range lines(r.stdout) {
		switch {
		case server.MatchString(l):
		case total.MatchString(l):
			reports++
			lastTotal, _ = strconv.Atoi(total.FindStringSubmatch(l)[1])
		case strings.HasPrefix(l, "Saved "):
		default:
			t.Errorf("unexpected line in get's output: %q", l)
		}
	}
	if reports < 2 || lastTotal != 4<<20 {
		t.Errorf("%d reports, last total %d; want several, ending at the full size\n%s", reports, lastTotal, r.stdout)
	}
}

// E2 on the server console in the middle of a download: the others
// finish it.
func TestShutdownOneServerMidDownload(t *testing.T) {
	file, want := sample(t, 6<<20, 2)
	srv := startServers(t, file, 4, "1M")
	d := newDaemon(t)
	d.start()
	out := t.TempDir()
	get := d.idmctlCmd(getArgs(out, srv)...)
	var stdout lockedBuffer
	get.Stdout, get.Stderr = &stdout, &stdout
	if err := get.Start(); err != nil {
		t.Fatal(err)
	}
	d.waitVerified(1, 0.3)
	srv.console(t, "E2")
	if err := get.Wait(); err != nil {
		t.Fatalf("get: %v\n%s", err, stdout.String())
	}
	sameFile(t, out, want)
	j := d.job(1)
	if s := j.Progress.Sources[1]; s.LastError == "" {
		t.Errorf("server 2 shows no error after E2: %+v", s)
	}
}

// Every server down for several seconds, then back: the job waits and
// finishes by itself, with no command.
func TestAllServersDownAndBack(t *testing.T) {
	file, want := sample(t, 6<<20, 3)
	srv := startServers(t, file, 4, "1M")
	d := newDaemon(t)
	d.start()
	out := t.TempDir()
	id := d.add(out, srv)
	d.waitVerified(id, 0.3)
	for k := 1; k <= 4; k++ {
		srv.console(t, fmt.Sprintf("E%d", k))
	}
	waitFor(t, "the job waiting", 10*time.Second, func() bool { return d.job(id).State == api.StateWaiting })
	time.Sleep(3 * time.Second) // down for several seconds
	if j := d.job(id); j.State != api.StateWaiting {
		t.Fatalf("job %s while every server is down, want waiting", j.State)
	}
	for k := 1; k <= 4; k++ {
		srv.console(t, fmt.Sprintf("S%d", k))
	}
	if r := d.idmctl("wait", strconv.FormatUint(id, 10)); r.code != 0 {
		t.Fatalf("wait: exit %d: %s", r.code, r.stderr)
	}
	sameFile(t, out, want)
}

// kill -9 of idmd in the middle: restarted, the job finishes by itself.
func TestKillDaemonMidDownload(t *testing.T) {
	file, want := sample(t, 8<<20, 4)
	srv := startServers(t, file, 4, "1M")
	d := newDaemon(t)
	d.start()
	out := t.TempDir()
	id := d.add(out, srv)
	d.waitVerified(id, 0.4)
	before := d.job(id).Progress.Verified
	d.kill()
	d.start()
	j := d.job(id)
	if j.State != api.StateDownloading && j.State != api.StateWaiting {
		t.Fatalf("after restart the job is %s, want it under way by itself", j.State)
	}
	// Work done before the kill is kept: the recheck finds at least what
	// was flushed, which is at most a second behind.
	waitFor(t, "progress restored", 10*time.Second, func() bool {
		return d.job(id).Progress.Verified >= before-int64(2<<20)
	})
	if r := d.idmctl("wait", strconv.FormatUint(id, 10)); r.code != 0 {
		t.Fatalf("wait: exit %d: %s", r.code, r.stderr)
	}
	sameFile(t, out, want)
	if !strings.Contains(d.logs.String(), "clean_shutdown=false") {
		t.Error("the restarted daemon did not notice the unclean shutdown")
	}
}

// get -r after a kill of both the daemon and the client: without -r get
// refuses and says to use it; with -r it follows the job to the end.
func TestGetResumeAfterKill(t *testing.T) {
	file, want := sample(t, 8<<20, 5)
	srv := startServers(t, file, 4, "1M")
	d := newDaemon(t)
	d.start()
	out := t.TempDir()
	get := d.idmctlCmd(getArgs(out, srv)...)
	if err := get.Start(); err != nil {
		t.Fatal(err)
	}
	d.waitVerified(1, 0.3)
	get.Process.Kill()
	get.Wait()
	d.kill()
	d.start()
	r := d.idmctl(getArgs(out, srv)...)
	if r.code == 0 || !strings.Contains(r.stderr, "-r") {
		t.Fatalf("get without -r over an unfinished job: exit %d, stderr %q; want a refusal that mentions -r", r.code, r.stderr)
	}
	r = d.idmctl(getArgs(out, srv, "-r")...)
	if r.code != 0 {
		t.Fatalf("get -r: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	sameFile(t, out, want)
	if jobs, _ := d.client().Jobs(context.Background()); len(jobs) != 1 {
		t.Errorf("%d jobs after get -r, want the one resumed", len(jobs))
	}
}

func TestTwoJobsAtOnce(t *testing.T) {
	fileA, wantA := sample(t, 4<<20, 6)
	fileB, wantB := sample(t, 3<<20, 7)
	srvA := startServers(t, fileA, 2, "1M")
	srvB := startServers(t, fileB, 3, "1M")
	d := newDaemon(t)
	d.start()
	outA, outB := t.TempDir(), t.TempDir()
	a, b := d.add(outA, srvA), d.add(outB, srvB)
	waitFor(t, "both running", 10*time.Second, func() bool {
		return d.job(a).Progress.Verified > 0 && d.job(b).Progress.Verified > 0
	})
	for _, id := range []uint64{a, b} {
		if r := d.idmctl("wait", strconv.FormatUint(id, 10)); r.code != 0 {
			t.Fatalf("wait %d: exit %d: %s", id, r.code, r.stderr)
		}
	}
	sameFile(t, outA, wantA)
	sameFile(t, outB, wantB)
	r := d.idmctl("ls")
	if r.code != 0 || strings.Count(r.stdout, "completed") != 2 {
		t.Errorf("ls after two jobs: exit %d\n%s", r.code, r.stdout)
	}
}

// Bad input gets one clear line and changes nothing.
func TestBadInput(t *testing.T) {
	d := newDaemon(t)
	d.start()
	out := t.TempDir()
	for _, tc := range []struct {
		name string
		args []string
		says string
	}{
		{"not an idm address", []string{"add", "-o", out, "http://127.0.0.1:1"}, "idm://"},
		{"no port", []string{"add", "-o", out, "idm://127.0.0.1"}, "idm://host:port"},
		{"duplicate sources", []string{"add", "-o", out, "idm://127.0.0.1:9", "idm://127.0.0.1:9"}, "twice"},
		{"missing directory", []string{"add", "-o", filepath.Join(out, "nope"), "idm://127.0.0.1:9"}, "does not exist"},
		{"no sources", []string{"add", "-o", out}, ""},
		{"unknown job", []string{"status", "99"}, "no such job"},
		{"pause unknown job", []string{"pause", "99"}, "no such job"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := d.idmctl(tc.args...)
			if r.code == 0 {
				t.Fatalf("exit 0, want an error; stdout %q", r.stdout)
			}
			first := lines(r.stderr)
			if len(first) == 0 || !strings.Contains(first[0], tc.says) || !strings.HasPrefix(first[0], "idmctl") {
				t.Errorf("stderr %q, want a first line from idmctl saying %q", r.stderr, tc.says)
			}
		})
	}
	if jobs, _ := d.client().Jobs(context.Background()); len(jobs) != 0 {
		t.Errorf("bad input left %d jobs", len(jobs))
	}
	if ents, _ := os.ReadDir(out); len(ents) != 0 {
		t.Errorf("bad input left files: %v", ents)
	}
}

// A daemon that is not running is reported in one line, with a distinct
// exit status.
func TestDaemonNotRunning(t *testing.T) {
	d := newDaemon(t)
	r := d.idmctl("ls")
	if r.code != 3 || !strings.Contains(r.stderr, d.socket) || !strings.Contains(r.stderr, "idmd run") {
		t.Errorf("exit %d, stderr %q; want 3 and a line naming the socket and how to start idmd", r.code, r.stderr)
	}
}

// A second daemon on the same state directory or socket refuses; SIGTERM
// stops within 5 seconds and marks a clean shutdown.
func TestDaemonSingleInstanceAndSIGTERM(t *testing.T) {
	d := newDaemon(t)
	d.start()
	second := exec.Command(filepath.Join(bin, "idmd"), "run", "--socket", d.socket, "--state-dir", d.stateDir)
	out, _ := second.CombinedOutput()
	if second.ProcessState.ExitCode() == 0 || !strings.Contains(string(out), "another idmd") {
		t.Errorf("second idmd on the same socket: exit %d, %q", second.ProcessState.ExitCode(), out)
	}
	other := exec.Command(filepath.Join(bin, "idmd"), "run", "--socket", filepath.Join(t.TempDir(), "b.sock"), "--state-dir", d.stateDir)
	out, _ = other.CombinedOutput()
	if other.ProcessState.ExitCode() == 0 || !strings.Contains(string(out), "another idmd") {
		t.Errorf("second idmd on the same state directory: exit %d, %q", other.ProcessState.ExitCode(), out)
	}
	if took := d.stop(); took > 5*time.Second {
		t.Errorf("SIGTERM took %v", took)
	}
	d.start()
	if !strings.Contains(d.logs.String(), "clean_shutdown=true") {
		t.Error("restart after SIGTERM did not see a clean shutdown")
	}
}

// A peer that is neither root, the daemon's user, nor in its group is
// refused, even when the socket's mode would let it connect.
func TestOtherUserRefused(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to run idmctl as nobody")
	}
	d := newDaemon(t)
	d.start()
	// Open the way for everyone: the peer check alone must refuse.
	for p := d.socket; p != "/" && p != "."; p = filepath.Dir(p) {
		os.Chmod(p, 0o777)
	}
	os.Chmod(d.socket, 0o666)
	cmd := d.idmctlCmd("ls")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, _ := cmd.CombinedOutput()
	if cmd.ProcessState.ExitCode() == 0 || !strings.Contains(string(out), "may not use") {
		t.Errorf("idmctl as nobody: exit %d, %q; want a refusal", cmd.ProcessState.ExitCode(), out)
	}
	if !strings.Contains(d.logs.String(), "refused a caller") || !strings.Contains(d.logs.String(), "uid=65534") {
		t.Error("the refusal was not logged with the peer's uid")
	}
}
