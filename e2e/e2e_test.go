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
	"github.com/idmproject/idm/internal/proctest"
	"github.com/idmproject/idm/store"
	"github.com/idmproject/idm/transport"
)

// The seed's scenario: four servers, `idmctl get` printing the report every
// second until the file is complete and verified.
func TestSeedScenario(t *testing.T) {
	file, want := proctest.Sample(t, 4<<20, 1)
	srv := proctest.StartServers(t, file, 4, "1M")
	d := proctest.NewDaemon(t)
	d.Start()
	out := t.TempDir()
	r := d.Idmctl(proctest.GetArgs(out, srv)...)
	if r.Code != 0 {
		t.Fatalf("get: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	proctest.SameFile(t, out, want)
	server := regexp.MustCompile(`^Server ([1-4]): (\d+)/4194304, download speed: (\d+)kb/s$`)
	total := regexp.MustCompile(`^Total: (\d+)/4194304, download speed: (\d+)kb/s$`)
	var reports, lastTotal int
	for _, l := range proctest.Lines(r.Stdout) {
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
		t.Errorf("%d reports, last total %d; want several, ending at the full size\n%s", reports, lastTotal, r.Stdout)
	}
}

// E2 on the server console in the middle of a download: the others
// finish it.
func TestShutdownOneServerMidDownload(t *testing.T) {
	file, want := proctest.Sample(t, 6<<20, 2)
	srv := proctest.StartServers(t, file, 4, "1M")
	d := proctest.NewDaemon(t)
	d.Start()
	out := t.TempDir()
	get := d.IdmctlCmd(proctest.GetArgs(out, srv)...)
	var stdout proctest.LockedBuffer
	get.Stdout, get.Stderr = &stdout, &stdout
	if err := get.Start(); err != nil {
		t.Fatal(err)
	}
	d.WaitVerified(1, 0.3)
	srv.Console(t, "E2")
	if err := get.Wait(); err != nil {
		t.Fatalf("get: %v\n%s", err, stdout.String())
	}
	proctest.SameFile(t, out, want)
	j := d.Job(1)
	if s := j.Progress.Sources[1]; s.LastError == "" {
		t.Errorf("server 2 shows no error after E2: %+v", s)
	}
}

// Every server down for several seconds, then back: the job waits and
// finishes by itself, with no command.
func TestAllServersDownAndBack(t *testing.T) {
	file, want := proctest.Sample(t, 6<<20, 3)
	srv := proctest.StartServers(t, file, 4, "1M")
	d := proctest.NewDaemon(t)
	d.Start()
	out := t.TempDir()
	id := d.Add(out, srv)
	d.WaitVerified(id, 0.3)
	for k := 1; k <= 4; k++ {
		srv.Console(t, fmt.Sprintf("E%d", k))
	}
	proctest.WaitFor(t, "the job waiting", 10*time.Second, func() bool { return d.Job(id).State == api.StateWaiting })
	// Down long enough for every source to fail twice more: the job keeps
	// retrying and keeps waiting, without giving up.
	before := d.Job(id).Progress.Sources
	proctest.WaitFor(t, "two more failures of every source", time.Minute, func() bool {
		j := d.Job(id)
		if j.State != api.StateWaiting {
			t.Fatalf("job %s while every server is down, want waiting", j.State)
		}
		for i, s := range j.Progress.Sources {
			if s.Errors < before[i].Errors+2 {
				return false
			}
		}
		return true
	})
	for k := 1; k <= 4; k++ {
		srv.Console(t, fmt.Sprintf("S%d", k))
	}
	if r := d.Idmctl("wait", strconv.FormatUint(id, 10)); r.Code != 0 {
		t.Fatalf("wait: exit %d: %s", r.Code, r.Stderr)
	}
	proctest.SameFile(t, out, want)
}

// kill -9 of idmd in the middle: restarted, the job finishes by itself.
func TestKillDaemonMidDownload(t *testing.T) {
	file, want := proctest.Sample(t, 8<<20, 4)
	srv := proctest.StartServers(t, file, 4, "1M")
	d := proctest.NewDaemon(t)
	d.Start()
	out := t.TempDir()
	id := d.Add(out, srv)
	d.WaitVerified(id, 0.4)
	before := d.Job(id).Progress.Verified
	d.Kill()
	d.Start()
	j := d.Job(id)
	if j.State != api.StateDownloading && j.State != api.StateWaiting {
		t.Fatalf("after restart the job is %s, want it under way by itself", j.State)
	}
	// Work done before the kill is kept: the recheck finds at least what
	// was flushed, which is at most a second behind.
	proctest.WaitFor(t, "progress restored", 10*time.Second, func() bool {
		return d.Job(id).Progress.Verified >= before-int64(2<<20)
	})
	if r := d.Idmctl("wait", strconv.FormatUint(id, 10)); r.Code != 0 {
		t.Fatalf("wait: exit %d: %s", r.Code, r.Stderr)
	}
	proctest.SameFile(t, out, want)
	if !strings.Contains(d.Logs.String(), "clean_shutdown=false") {
		t.Error("the restarted daemon did not notice the unclean shutdown")
	}
}

// get -r after a kill of both the daemon and the client: without -r get
// refuses and says to use it; with -r it follows the job to the end.
func TestGetResumeAfterKill(t *testing.T) {
	file, want := proctest.Sample(t, 8<<20, 5)
	srv := proctest.StartServers(t, file, 4, "1M")
	d := proctest.NewDaemon(t)
	d.Start()
	out := t.TempDir()
	get := d.IdmctlCmd(proctest.GetArgs(out, srv)...)
	if err := get.Start(); err != nil {
		t.Fatal(err)
	}
	d.WaitVerified(1, 0.3)
	get.Process.Kill()
	get.Wait()
	d.Kill()
	d.Start()
	r := d.Idmctl(proctest.GetArgs(out, srv)...)
	if r.Code == 0 || !strings.Contains(r.Stderr, "-r") {
		t.Fatalf("get without -r over an unfinished job: exit %d, stderr %q; want a refusal that mentions -r", r.Code, r.Stderr)
	}
	r = d.Idmctl(proctest.GetArgs(out, srv, "-r")...)
	if r.Code != 0 {
		t.Fatalf("get -r: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	proctest.SameFile(t, out, want)
	if jobs, _ := d.Client().Jobs(context.Background()); len(jobs) != 1 {
		t.Errorf("%d jobs after get -r, want the one resumed", len(jobs))
	}
}

func TestTwoJobsAtOnce(t *testing.T) {
	fileA, wantA := proctest.Sample(t, 4<<20, 6)
	fileB, wantB := proctest.Sample(t, 3<<20, 7)
	srvA := proctest.StartServers(t, fileA, 2, "1M")
	srvB := proctest.StartServers(t, fileB, 3, "1M")
	d := proctest.NewDaemon(t)
	d.Start()
	outA, outB := t.TempDir(), t.TempDir()
	// The second is named as the user says, not as its servers do.
	a, b := d.Add(outA, srvA), d.Add(outB, srvB, "--name", "named.bin")
	proctest.WaitFor(t, "both running", 10*time.Second, func() bool {
		return d.Job(a).Progress.Verified > 0 && d.Job(b).Progress.Verified > 0
	})
	for _, id := range []uint64{a, b} {
		if r := d.Idmctl("wait", strconv.FormatUint(id, 10)); r.Code != 0 {
			t.Fatalf("wait %d: exit %d: %s", id, r.Code, r.Stderr)
		}
	}
	proctest.SameFile(t, outA, wantA)
	proctest.SameFile(t, outB, wantB)
	if j := d.Job(b); j.Path != filepath.Join(outB, "named.bin") {
		t.Errorf("job %d's file is %s, want named.bin in %s", b, j.Path, outB)
	}
	r := d.Idmctl("ls")
	if r.Code != 0 || strings.Count(r.Stdout, "completed") != 2 {
		t.Errorf("ls after two jobs: exit %d\n%s", r.Code, r.Stdout)
	}
}

// Bad input gets one clear line and changes nothing.
func TestBadInput(t *testing.T) {
	d := proctest.NewDaemon(t)
	d.Start()
	out := t.TempDir()
	for _, tc := range []struct {
		name string
		args []string
		says string
	}{
		{"not a known scheme", []string{"add", "-o", out, "ftp://127.0.0.1:1"}, "idm://"},
		{"bad checksum", []string{"add", "-o", out, "--checksum", "md5=00", "http://127.0.0.1:1/f"}, "unknown algorithm"},
		{"no port", []string{"add", "-o", out, "idm://127.0.0.1"}, "idm://host:port"},
		{"duplicate sources", []string{"add", "-o", out, "idm://127.0.0.1:9", "idm://127.0.0.1:9"}, "twice"},
		{"missing directory", []string{"add", "-o", filepath.Join(out, "nope"), "idm://127.0.0.1:9"}, "does not exist"},
		{"no sources", []string{"add", "-o", out}, ""},
		{"a path for a name", []string{"add", "-o", out, "--name", "../escape.bin", "idm://127.0.0.1:9"}, "not a path"},
		{"unknown job", []string{"status", "99"}, "no such job"},
		{"pause unknown job", []string{"pause", "99"}, "no such job"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := d.Idmctl(tc.args...)
			if r.Code == 0 {
				t.Fatalf("exit 0, want an error; stdout %q", r.Stdout)
			}
			first := proctest.Lines(r.Stderr)
			if len(first) == 0 || !strings.Contains(first[0], tc.says) || !strings.HasPrefix(first[0], "idmctl") {
				t.Errorf("stderr %q, want a first line from idmctl saying %q", r.Stderr, tc.says)
			}
		})
	}
	if jobs, _ := d.Client().Jobs(context.Background()); len(jobs) != 0 {
		t.Errorf("bad input left %d jobs", len(jobs))
	}
	if ents, _ := os.ReadDir(out); len(ents) != 0 {
		t.Errorf("bad input left files: %v", ents)
	}
}

// A daemon that is not running is reported in one line, with a distinct
// exit status.
func TestDaemonNotRunning(t *testing.T) {
	d := proctest.NewDaemon(t)
	r := d.Idmctl("ls")
	if r.Code != 3 || !strings.Contains(r.Stderr, d.Socket) || !strings.Contains(r.Stderr, "idmd run") {
		t.Errorf("exit %d, stderr %q; want 3 and a line naming the socket and how to start idmd", r.Code, r.Stderr)
	}
}

// A second daemon on the same state directory or socket refuses; SIGTERM
// stops within 5 seconds and marks a clean shutdown.
func TestDaemonSingleInstanceAndSIGTERM(t *testing.T) {
	d := proctest.NewDaemon(t)
	d.Start()
	second := exec.Command(proctest.Bin("idmd"), "run", "--socket", d.Socket, "--state-dir", d.StateDir)
	out, _ := second.CombinedOutput()
	if second.ProcessState.ExitCode() == 0 || !strings.Contains(string(out), "another idmd") {
		t.Errorf("second idmd on the same socket: exit %d, %q", second.ProcessState.ExitCode(), out)
	}
	other := exec.Command(proctest.Bin("idmd"), "run", "--socket", filepath.Join(t.TempDir(), "b.sock"), "--state-dir", d.StateDir)
	out, _ = other.CombinedOutput()
	if other.ProcessState.ExitCode() == 0 || !strings.Contains(string(out), "another idmd") {
		t.Errorf("second idmd on the same state directory: exit %d, %q", other.ProcessState.ExitCode(), out)
	}
	if took := d.Stop(); took > 5*time.Second {
		t.Errorf("SIGTERM took %v", took)
	}
	d.Start()
	if !strings.Contains(d.Logs.String(), "clean_shutdown=true") {
		t.Error("restart after SIGTERM did not see a clean shutdown")
	}
}

// SIGTERM in idmd's first moments, while it opens its state and before or
// while it starts serving, stops it as cleanly as later: it exits 0
// within the 5 seconds a service manager gives it, and the database is
// marked clean. Each round sends the signal at another moment, from as
// soon as the socket appears to some milliseconds later, so that one
// round or another falls in every step between the two. A signal before
// idmd has installed its handler would kill it by the default action, as
// it would any program; the socket, the first sign of life idmd gives,
// comes after the handler.
func TestDaemonEarlySIGTERM(t *testing.T) {
	d := proctest.NewDaemon(t)
	d.Start() // makes the state database
	d.Stop()
	db := filepath.Join(d.StateDir, "idmd.db")
	var latest time.Duration
	for i := range 30 {
		logs := &proctest.LockedBuffer{}
		cmd := exec.Command(proctest.Bin("idmd"), "run", "--socket", d.Socket, "--state-dir", d.StateDir)
		cmd.Stderr = logs
		start := time.Now()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan struct{})
		go func() { cmd.Wait(); close(exited) }()
		for {
			if _, err := os.Lstat(d.Socket); err == nil {
				break
			}
			select {
			case <-exited:
				t.Fatalf("round %d: idmd exited before making its socket:\n%s", i, logs.String())
			case <-time.After(200 * time.Microsecond):
			}
			if time.Since(start) > 10*time.Second {
				cmd.Process.Kill()
				<-exited
				t.Fatalf("round %d: no socket 10 s after idmd started", i)
			}
		}
		time.Sleep(time.Duration(i%10) * time.Millisecond)
		cmd.Process.Signal(syscall.SIGTERM)
		latest = max(latest, time.Since(start))
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-exited
			t.Fatalf("round %d: idmd did not exit within 5 s of SIGTERM:\n%s", i, logs.String())
		}
		if code := cmd.ProcessState.ExitCode(); code != 0 {
			t.Fatalf("round %d: idmd exited %d (%v) after an early SIGTERM:\n%s", i, code, cmd.ProcessState, logs.String())
		}
		s, err := store.Open(db, nil)
		if err != nil {
			t.Fatal(err)
		}
		clean := s.WasClean()
		// Opening marks it in use; the next round starts from clean.
		if err := s.MarkClean(); err != nil {
			t.Fatal(err)
		}
		s.Close()
		if !clean {
			t.Fatalf("round %d: the database is not marked clean after an early SIGTERM:\n%s", i, logs.String())
		}
	}
	t.Logf("the latest SIGTERM came %v after idmd started", latest.Round(time.Millisecond))
}

// A peer that is neither root, the daemon's user, nor in its group is
// refused, even when the socket's mode would let it connect.
func TestOtherUserRefused(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to run idmctl as nobody")
	}
	d := proctest.NewDaemon(t)
	d.Start()
	// Open the way for everyone: the peer check alone must refuse.
	for p := d.Socket; p != "/" && p != "."; p = filepath.Dir(p) {
		os.Chmod(p, 0o777)
	}
	os.Chmod(d.Socket, 0o666)
	cmd := d.IdmctlCmd("ls")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, _ := cmd.CombinedOutput()
	if cmd.ProcessState.ExitCode() == 0 || !strings.Contains(string(out), "may not use") {
		t.Errorf("idmctl as nobody: exit %d, %q; want a refusal", cmd.ProcessState.ExitCode(), out)
	}
	if !strings.Contains(d.Logs.String(), "refused a caller") || !strings.Contains(d.Logs.String(), "uid=65534") {
		t.Error("the refusal was not logged with the peer's uid")
	}
}

func TestMain(m *testing.M) { proctest.Main(m) }

// --content pins the file: a job whose sources hold another fails with
// their reasons, and a malformed hash is refused before anything is
// added.
func TestAddPinnedContent(t *testing.T) {
	file, want := proctest.Sample(t, 1<<20, 8)
	otherFile, _ := proctest.Sample(t, 1<<20, 9)
	srv := proctest.StartServers(t, file, 2, "")
	d := proctest.NewDaemon(t)
	d.Start()
	r := d.Idmctl("add", "-o", t.TempDir(), "--content", "zz", "idm://127.0.0.1:9")
	if r.Code != 2 || !strings.HasPrefix(r.Stderr, "idmctl add: ") || !strings.Contains(proctest.Lines(r.Stderr)[0], "content hash") {
		t.Errorf("malformed --content: exit %d, %q", r.Code, r.Stderr)
	}
	wrong := content(t, otherFile)
	out := t.TempDir()
	id := d.Add(out, srv, "--content", wrong)
	if r := d.Idmctl("wait", strconv.FormatUint(id, 10)); r.Code != 1 || !strings.Contains(r.Stderr, "expected "+wrong) {
		t.Errorf("wait for a job pinned to another file: exit %d, %q", r.Code, r.Stderr)
	}
	out2 := t.TempDir()
	id = d.Add(out2, srv, "--content", strings.ToUpper(content(t, file)))
	if r := d.Idmctl("wait", strconv.FormatUint(id, 10)); r.Code != 0 {
		t.Fatalf("wait for a job pinned to its file: exit %d, %q", r.Code, r.Stderr)
	}
	proctest.SameFile(t, out2, want)
	if j := d.Job(id); j.Expect != content(t, file) || j.Content != j.Expect {
		t.Errorf("job shows content %q, expect %q; want both %s", j.Content, j.Expect, content(t, file))
	}
}

// content is the content hash idm-server gives the file at path: its
// root.
func content(t *testing.T, path string) string {
	t.Helper()
	m, err := transport.BuildManifest(path, 0)
	if err != nil {
		t.Fatal(err)
	}
	return m.Root().String()
}

// idmctl limit ID RATE on a running job: the answer is the new limit,
// status shows it while the job runs, and it is still the job's after
// idmd stops and starts again, and after a kill -9 too.
func TestJobLimitRunningAndAfterRestart(t *testing.T) {
	file, _ := proctest.Sample(t, 16<<20, 6)
	srv := proctest.StartServers(t, file, 2, "1M")
	d := proctest.NewDaemon(t)
	d.Start()
	id := d.Add(t.TempDir(), srv)
	d.WaitVerified(id, 0.05)
	sid := strconv.FormatUint(id, 10)
	r := d.Idmctl("limit", sid, "300Ki")
	if r.Code != 0 || r.Stdout != "job "+sid+" limit: 300.0 KiB/s (307200 B/s)\n" {
		t.Fatalf("limit: exit %d, stdout %q, stderr %q", r.Code, r.Stdout, r.Stderr)
	}
	if j := d.Job(id); j.Limit != 300<<10 || j.State != api.StateDownloading {
		t.Fatalf("right after: limit %d, state %s; want %d while downloading", j.Limit, j.State, 300<<10)
	}
	// Let the transfer checkpoint a few times: none may write the old
	// limit back.
	v := d.Job(id).Progress.Verified
	proctest.WaitFor(t, "more progress", time.Minute, func() bool { return d.Job(id).Progress.Verified > v+1<<20 })
	d.Stop()
	d.Start()
	if j := d.Job(id); j.Limit != 300<<10 {
		t.Fatalf("after a restart the limit is %d, want %d", j.Limit, 300<<10)
	}
	if r := d.Idmctl("limit", sid, "off"); r.Code != 0 {
		t.Fatalf("limit off: exit %d: %s", r.Code, r.Stderr)
	}
	d.Kill()
	d.Start()
	if j := d.Job(id); j.Limit != 0 {
		t.Fatalf("after a kill and a restart the limit is %d, want none", j.Limit)
	}
}

// idmctl move reorders the line of waiting jobs that idmctl line shows;
// the order is idmd's to keep, across a stop and a kill -9, and the
// first in line starts when a slot frees.
func TestLineMoveAndRestart(t *testing.T) {
	file, want := proctest.Sample(t, 1<<20, 8)
	srv := proctest.StartServers(t, file, 1, "")
	d := proctest.NewDaemon(t)
	d.Start("--max-active", "1")
	// A source that is never there holds the one slot.
	hold := d.AddArgs("-o", t.TempDir(), "idm://127.0.0.1:1")
	proctest.WaitFor(t, "the first job to hold the slot", 10*time.Second, func() bool { return d.Job(hold).State != api.StateQueued })
	outs := make(map[uint64]string)
	var ids []string
	for range 3 {
		out := t.TempDir()
		id := d.Add(out, srv)
		outs[id] = out
		ids = append(ids, strconv.FormatUint(id, 10))
	}
	line := func() string {
		t.Helper()
		r := d.Idmctl("line")
		if r.Code != 0 {
			t.Fatalf("idmctl line: exit %d: %s", r.Code, r.Stderr)
		}
		var order []string
		for _, l := range proctest.Lines(r.Stdout)[1:] {
			order = append(order, strings.Fields(l)[1])
		}
		return strings.Join(order, " ")
	}
	if got, want := line(), strings.Join(ids, " "); got != want {
		t.Fatalf("line %q, want %q", got, want)
	}
	if r := d.Idmctl("move", ids[2], "first"); r.Code != 0 || r.Stdout != "job "+ids[2]+" is number 1 in line\n" {
		t.Fatalf("idmctl move: exit %d, stdout %q, stderr %q", r.Code, r.Stdout, r.Stderr)
	}
	if r := d.Idmctl("move", ids[0], "+5"); r.Code != 0 || r.Stdout != "job "+ids[0]+" is number 3 in line\n" {
		t.Fatalf("idmctl move: exit %d, stdout %q, stderr %q", r.Code, r.Stdout, r.Stderr)
	}
	moved := ids[2] + " " + ids[1] + " " + ids[0]
	if got := line(); got != moved {
		t.Fatalf("line %q, want %q", got, moved)
	}
	d.Stop()
	d.Start("--max-active", "1")
	if got := line(); got != moved {
		t.Errorf("after a stop the line is %q, want %q", got, moved)
	}
	d.Kill()
	d.Start("--max-active", "1")
	if got := line(); got != moved {
		t.Errorf("after a kill -9 the line is %q, want %q", got, moved)
	}
	if r := d.Idmctl("move", strconv.FormatUint(hold, 10), "first"); r.Code != 1 || !strings.Contains(r.Stderr, "not waiting") {
		t.Errorf("moving the job that runs: exit %d, stderr %q; want one error saying it is not waiting", r.Code, r.Stderr)
	}
	// The slot frees: the first in line starts, and ends, before the
	// others.
	if r := d.Idmctl("cancel", strconv.FormatUint(hold, 10)); r.Code != 0 {
		t.Fatalf("idmctl cancel: exit %d: %s", r.Code, r.Stderr)
	}
	first, _ := strconv.ParseUint(ids[2], 10, 64)
	proctest.WaitFor(t, "the first in line to complete", time.Minute, func() bool { return d.Job(first).State == api.StateCompleted })
	done := d.Job(first).Finished
	for _, id := range ids[:2] {
		n, _ := strconv.ParseUint(id, 10, 64)
		if j := d.Job(n); j.State == api.StateCompleted && j.Finished.Before(done) {
			t.Errorf("job %s finished at %v, before the first in line (%v)", id, j.Finished, done)
		}
	}
	proctest.SameFile(t, outs[first], want)
}
