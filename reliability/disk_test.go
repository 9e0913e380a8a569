package reliability

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/idmproject/idm/daemon/api"
	"github.com/idmproject/idm/internal/proctest"
)

// fill takes every free byte of the file system holding dir, and returns
// a function that gives them back.
func fill(t *testing.T, dir string) func() {
	t.Helper()
	filler := filepath.Join(dir, "filler")
	exec.Command("dd", "if=/dev/zero", "of="+filler, "bs=4k").Run()
	return func() { os.Remove(filler) }
}

// waitDone waits until job id has ended and returns it.
func waitDone(t *testing.T, d *proctest.Daemon, id uint64) *api.Job {
	t.Helper()
	var j *api.Job
	proctest.WaitFor(t, "job "+strconv.FormatUint(id, 10)+" to end", 2*time.Minute, func() bool {
		j = d.Job(id)
		return j.Done()
	})
	return j
}

// A download larger than the room left on the output's disk fails its
// job with the reason; the daemon and its other jobs go on; once room is
// made, idmctl resume finishes the job.
func TestDiskFull_Output(t *testing.T) {
	out := proctest.Tmpfs(t, "20m")
	file, want := proctest.Sample(t, pick(32, 64)<<20, 70)
	srv := proctest.StartServers(t, file, 2, "")
	small, smallWant := proctest.Sample(t, 1<<20, 71)
	srvSmall := proctest.StartServers(t, small, 1, "")
	d := proctest.NewDaemon(t)
	d.Start()
	id := d.Add(out, srv)
	j := waitDone(t, d, id)
	if j.State != api.StateFailed || !strings.Contains(j.LastError, "no space left on device") {
		t.Fatalf("job %s (%q), want failed for want of room", j.State, j.LastError)
	}
	if lines := proctest.Lines(d.Idmctl("status", strconv.FormatUint(id, 10)).Stdout); len(lines) == 0 {
		t.Error("idmctl status says nothing of the failed job")
	}
	// Another job into another directory is not disturbed.
	other := t.TempDir()
	if r := d.Idmctl(append([]string{"get", "-i", "1", "-o", other, "-a", "127.0.0.1", "-p"}, srvSmall.Ports...)...); r.Code != 0 {
		t.Fatalf("a job beside the failed one: exit %d: %s", r.Code, r.Stderr)
	}
	proctest.SameFile(t, other, smallWant)

	proctest.ResizeTmpfs(t, out, strconv.Itoa(pick(80, 160))+"m")
	if r := d.Idmctl("resume", strconv.FormatUint(id, 10)); r.Code != 0 {
		t.Fatalf("resume: exit %d: %s", r.Code, r.Stderr)
	}
	if j := waitDone(t, d, id); j.State != api.StateCompleted {
		t.Fatalf("resumed job %s: %s", j.State, j.LastError)
	}
	proctest.SameFile(t, out, want)
}

// A state directory with no room left: idmd neither crashes nor damages
// its database. A job whose manifest cannot be recorded fails with the
// reason, the API keeps answering, SIGTERM still stops idmd, and after
// room is made the jobs are all there and the failed one resumes.
func TestDiskFull_StateDir(t *testing.T) {
	state := proctest.Tmpfs(t, "4m")
	file, want := proctest.Sample(t, 8<<20, 72)
	// Small segments make a manifest of 64 KiB of hashes to record.
	srv := proctest.StartServers(t, file, 2, "", "--segment-size", "4Ki")
	first, firstWant := proctest.Sample(t, 1<<20, 73)
	srvFirst := proctest.StartServers(t, first, 1, "")
	d := proctest.NewDaemon(t)
	d.StateDir = filepath.Join(state, "idmd")
	d.Start()
	outFirst := t.TempDir()
	done := d.Add(outFirst, srvFirst)
	if j := waitDone(t, d, done); j.State != api.StateCompleted {
		t.Fatalf("first job %s: %s", j.State, j.LastError)
	}
	free := fill(t, state)
	out := t.TempDir()
	r := d.Idmctl(append([]string{"add", "-o", out}, srv.Sources()...)...)
	var id uint64
	switch {
	case r.Code == 0:
		id, _ = strconv.ParseUint(strings.TrimSpace(r.Stdout), 10, 64)
		j := waitDone(t, d, id)
		if j.State != api.StateFailed || !strings.Contains(j.LastError, "no space left on device") {
			t.Fatalf("job %s (%q), want failed for want of room to record it", j.State, j.LastError)
		}
	case !strings.Contains(r.Stderr, "no space left on device") || len(proctest.Lines(r.Stderr)) != 1:
		t.Fatalf("add with a full state directory: exit %d, %q; want one line saying why", r.Code, r.Stderr)
	}
	if r := d.Idmctl("ls"); r.Code != 0 {
		t.Fatalf("ls with a full state directory: exit %d: %s", r.Code, r.Stderr)
	}
	d.Stop()
	free()

	d.Start()
	if j := d.Job(done); j.State != api.StateCompleted {
		t.Errorf("the first job after the restart: %s", j.State)
	}
	if id == 0 {
		id = d.Add(out, srv)
	} else if r := d.Idmctl("resume", strconv.FormatUint(id, 10)); r.Code != 0 {
		t.Fatalf("resume: exit %d: %s", r.Code, r.Stderr)
	}
	if j := waitDone(t, d, id); j.State != api.StateCompleted {
		t.Fatalf("job after room was made: %s: %s", j.State, j.LastError)
	}
	proctest.SameFile(t, out, want)
	proctest.SameFile(t, outFirst, firstWant)
	d.Stop()
	if r := proctest.Run(exec.CommandContext(context.Background(), proctest.Bin("idmd"), "check", "--state-dir", d.StateDir)); r.Code != 0 && !strings.Contains(r.Stderr, "unknown command") {
		t.Errorf("idmd check after the full disk: exit %d: %s%s", r.Code, r.Stdout, r.Stderr)
	}
}

// The state directory fills while a job downloads: the job still ends
// completed with its file whole (bbolt reuses the pages a running job's
// record and bitmap were in, so its writes need no new room), and after
// a kill and a restart with room the job is completed with one copy of
// its file and nothing fetched again.
func TestDiskFull_StateDirAtJobEnd(t *testing.T) {
	state := proctest.Tmpfs(t, "4m")
	file, want := proctest.Sample(t, 8<<20, 74)
	srv := proctest.StartServers(t, file, 2, "2M")
	d := proctest.NewDaemon(t)
	d.StateDir = filepath.Join(state, "idmd")
	d.Start()
	out := t.TempDir()
	id := d.Add(out, srv)
	d.WaitVerified(id, 0.3)
	free := fill(t, state)
	j := waitDone(t, d, id)
	if j.State != api.StateCompleted {
		t.Fatalf("job %s (%q) while the store is full, want completed", j.State, j.LastError)
	}
	proctest.SameFile(t, out, want)
	d.Kill()
	free()
	d.Start()
	j = waitDone(t, d, id)
	if j.State != api.StateCompleted || j.Path == "" {
		t.Fatalf("after the restart the job is %s (%q)", j.State, j.LastError)
	}
	proctest.SameFile(t, out, want)
	if f := j.Progress.Fetched; f > int64(len(want))+int64(len(want))/4 {
		t.Errorf("fetched %d bytes for a file of %d", f, len(want))
	}
}
