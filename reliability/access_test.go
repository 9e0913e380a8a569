//go:build linux

package reliability

import (
	"bufio"
	"context"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/idmproject/idm/daemon/api"
	"github.com/idmproject/idm/internal/proctest"
	"github.com/idmproject/idm/internal/usertest"
)

// The users of the access tests. None has an account: the kernel and
// idmd know users by number.
const (
	uidDaemonUser = 64110 // runs a per-user idmd
	uidAnn        = 64111 // a member of the system daemon's group
	uidBob        = 64112 // another member
	uidEve        = 64113 // not a member
)

// as is a process's credentials: its user, its primary group (the user's
// own number) and its supplementary groups.
func as(uid int, groups ...int) *syscall.Credential {
	c := &syscall.Credential{Uid: uint32(uid), Gid: uint32(uid), Groups: []uint32{}}
	for _, g := range groups {
		c.Groups = append(c.Groups, uint32(g))
	}
	return c
}

// idmctlAs runs idmctl against d with the given credentials.
func idmctlAs(d *proctest.Daemon, cred *syscall.Credential, args ...string) proctest.Result {
	cmd := d.IdmctlCmd(args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	return proctest.Run(cmd)
}

// someGroup returns an existing group for --group, which takes a name:
// the test sets every process's groups itself, so who is listed in it
// does not matter.
func someGroup(t *testing.T) (string, int) {
	t.Helper()
	f, err := os.Open("/etc/group")
	if err != nil {
		t.Skipf("no group database to pick --group from: %v", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Split(sc.Text(), ":")
		if len(fields) < 3 {
			continue
		}
		gid, err := strconv.Atoi(fields[2])
		if err == nil && gid != 0 && gid < 60000 {
			return fields[0], gid
		}
	}
	t.Skip("no group other than root in /etc/group to pass as --group")
	return "", 0
}

// jobCount returns how many jobs d has, asked as root.
func jobCount(t *testing.T, d *proctest.Daemon) int {
	t.Helper()
	jobs, err := d.Client().Jobs(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return len(jobs)
}

// emptyDir fails the test if dir holds anything.
func emptyDir(t *testing.T, dir string) {
	t.Helper()
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		t.Errorf("%s holds %v, want nothing", dir, names)
	}
}

// startAs runs idmd as cred, with its socket and state in a new home
// directory that cred owns, and waits until it answers. It is killed
// when the test ends.
func startAs(t *testing.T, cred *syscall.Credential, extra ...string) *proctest.Daemon {
	t.Helper()
	home := usertest.ReachableTempDir(t)
	if err := os.Chown(home, int(cred.Uid), int(cred.Gid)); err != nil {
		t.Fatal(err)
	}
	d := &proctest.Daemon{Socket: filepath.Join(home, "run", "idmd.sock"), StateDir: filepath.Join(home, "state")}
	args := append([]string{"run", "--socket", d.Socket, "--state-dir", d.StateDir}, extra...)
	cmd := exec.Command(proctest.Bin("idmd"), args...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + home}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	var logs proctest.LockedBuffer
	cmd.Stderr = &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("idmd's log:\n%s", logs.String())
		}
	})
	proctest.WaitFor(t, "idmd to answer", 10*time.Second, func() bool {
		_, err := d.Client().Version(context.Background())
		return err == nil
	})
	return d
}

// Another user against a per-user idmd: refused on every route, even
// with the socket opened to everyone, and nothing is added.
func TestAccess_OtherUserPerUserDaemon(t *testing.T) {
	usertest.NeedRoot(t)
	d := startAs(t, as(uidDaemonUser))
	out := usertest.ReachableTempDir(t)
	if err := os.Chmod(out, 0o777); err != nil {
		t.Fatal(err)
	}
	// The socket's mode is the first gate; open it, so that only the
	// daemon's own check stands.
	os.Chmod(filepath.Dir(d.Socket), 0o755)
	os.Chmod(d.Socket, 0o666)
	r := idmctlAs(d, as(uidAnn), "add", "-o", out, "idm://127.0.0.1:1")
	if r.Code == 0 || !strings.Contains(r.Stderr, "uid 64111 may not use this idmd") {
		t.Errorf("idmctl add as another user: exit %d, %q; want a refusal", r.Code, r.Stderr)
	}
	if r := idmctlAs(d, as(uidDaemonUser), "ls"); r.Code != 0 {
		t.Errorf("idmctl ls as the daemon's own user: exit %d, %q", r.Code, r.Stderr)
	}
	if n := jobCount(t, d); n != 0 {
		t.Errorf("the refused request added %d jobs", n)
	}
	emptyDir(t, out)
}

// The system daemon, run as root with a group: a non-member is refused;
// a member is refused a directory it could not create files in, and
// nothing is written there nor queued; a member gets a directory it may
// write to, and the file; a job whose directory its owner may no longer
// write to fails when idmd starts again.
func TestAccess_SystemDaemon(t *testing.T) {
	usertest.NeedRoot(t)
	group, gid := someGroup(t)
	file, want := proctest.Sample(t, 1<<20, 31)
	srv := proctest.StartServers(t, file, 2, "")
	d := proctest.NewDaemon(t)
	d.Start("--system", "--group", group)
	usertest.Reachable(t, filepath.Dir(filepath.Dir(d.Socket)))
	ann, bob, eve := as(uidAnn, gid), as(uidBob, gid), as(uidEve)

	base := usertest.ReachableTempDir(t)
	at := func(name string) string { return filepath.Join(base, name) }
	rootOnly := usertest.Mkdir(t, at("root-only"), 0, 0, 0o700)
	bobs := usertest.Mkdir(t, at("bobs"), uidBob, uidBob, 0o755)
	shared := usertest.Mkdir(t, at("shared"), 0, gid, 0o775|fs.ModeSetgid|fs.ModeSticky)
	later := usertest.Mkdir(t, at("later"), 0, gid, 0o775|fs.ModeSetgid|fs.ModeSticky)
	// What a member could plant in the shared directory, to have idmd
	// write where only root may.
	planted := at("shared/planted")
	if err := os.Symlink(rootOnly, planted); err != nil {
		t.Fatal(err)
	}

	t.Run("non-member", func(t *testing.T) {
		r := idmctlAs(d, eve, "add", "-o", shared, srv.Sources()[0])
		if r.Code == 0 || !strings.Contains(r.Stderr, "permission denied") {
			t.Errorf("idmctl add as a non-member, socket mode 0660: exit %d, %q; want the socket to refuse", r.Code, r.Stderr)
		}
		// Past the socket's mode, the daemon's own check.
		if err := os.Chmod(d.Socket, 0o666); err != nil {
			t.Fatal(err)
		}
		defer os.Chmod(d.Socket, 0o660)
		r = idmctlAs(d, eve, "add", "-o", shared, srv.Sources()[0])
		if r.Code == 0 || !strings.Contains(r.Stderr, "uid 64113 may not use this idmd") {
			t.Errorf("idmctl add as a non-member, socket mode 0666: exit %d, %q; want a refusal", r.Code, r.Stderr)
		}
		if n := jobCount(t, d); n != 0 {
			t.Errorf("the refused requests added %d jobs", n)
		}
	})

	t.Run("member, directory it may not write", func(t *testing.T) {
		for _, tc := range []struct{ dir, says string }{
			{rootOnly, fmt.Sprintf("idmctl: permission denied: uid 64111 may not create files in %s: no write or search permission on %[1]s (mode 0700, owner 0, group 0)", rootOnly)},
			{bobs, fmt.Sprintf("idmctl: permission denied: uid 64111 may not create files in %s: no write permission on %[1]s (mode 0755, owner 64112, group 64112)", bobs)},
			{planted, fmt.Sprintf("idmctl: permission denied: uid 64111 may not create files in %s: no write or search permission on %s (mode 0700, owner 0, group 0)", planted, rootOnly)},
		} {
			r := idmctlAs(d, ann, append([]string{"add", "-o", tc.dir}, srv.Sources()...)...)
			if r.Code != 1 || strings.TrimSpace(r.Stderr) != tc.says {
				t.Errorf("idmctl add -o %s: exit %d, %q; want exit 1, %q", tc.dir, r.Code, r.Stderr, tc.says)
			}
		}
		if n := jobCount(t, d); n != 0 {
			t.Errorf("the refused requests added %d jobs", n)
		}
		emptyDir(t, rootOnly)
		emptyDir(t, bobs)
		// bob may write to his own directory, as the kernel would let him.
		if r := idmctlAs(d, bob, "add", "-o", bobs, "idm://127.0.0.1:1"); r.Code != 0 {
			t.Errorf("idmctl add as bob into his own directory: exit %d, %q", r.Code, r.Stderr)
		}
		if r := idmctlAs(d, bob, "rm", "1"); r.Code != 0 {
			t.Errorf("idmctl rm 1: exit %d, %q", r.Code, r.Stderr)
		}
	})

	t.Run("member, directory it may write", func(t *testing.T) {
		id := addAs(t, d, ann, shared, srv.Sources()...)
		proctest.WaitFor(t, "the job to complete", time.Minute, func() bool {
			return d.Job(id).State == api.StateCompleted
		})
		os.Remove(planted)
		proctest.SameFile(t, shared, want)
	})

	t.Run("owner may no longer write, idmd restarted", func(t *testing.T) {
		// Nobody listens there: the job waits until idmd stops.
		id := addAs(t, d, ann, later, "idm://127.0.0.1:"+proctest.FreePorts(t, 1)[0])
		d.Stop()
		if err := os.Chmod(later, 0o755); err != nil {
			t.Fatal(err)
		}
		d.Start("--system", "--group", group)
		j := d.Job(id)
		says := fmt.Sprintf("permission denied: uid 64111 may not create files in %s: no write permission on %[1]s (mode 0755, owner 0, group %d)", later, gid)
		if j.State != api.StateFailed || j.LastError != says {
			t.Errorf("after the restart the job is %s, %q; want failed, %q", j.State, j.LastError, says)
		}
		emptyDir(t, later)
	})
}

// addAs queues a job with idmctl add as cred and returns its ID.
func addAs(t *testing.T, d *proctest.Daemon, cred *syscall.Credential, dir string, sources ...string) uint64 {
	t.Helper()
	r := idmctlAs(d, cred, append([]string{"add", "-o", dir}, sources...)...)
	if r.Code != 0 {
		t.Fatalf("idmctl add -o %s as uid %d: exit %d, %q", dir, cred.Uid, r.Code, r.Stderr)
	}
	id, err := strconv.ParseUint(strings.TrimSpace(r.Stdout), 10, 64)
	if err != nil {
		t.Fatalf("idmctl add printed %q, not an ID", r.Stdout)
	}
	return id
}

// notOwner is what idmctl says when a caller may not change job id, which
// uid owns.
func notOwner(id uint64, uid int) string {
	return fmt.Sprintf("idmctl: job %d belongs to uid %d; only its owner, root or the daemon's user may change it", id, uid)
}

// globalLimitRefused is what idmctl says when uid may not set the global
// limit.
func globalLimitRefused(uid int) string {
	return fmt.Sprintf("idmctl: uid %d may not set the global limit: it slows every job, so only root or the daemon's user may set it", uid)
}

// refused runs idmctl as cred and fails the test unless it exits 1 with
// exactly the line says.
func refused(t *testing.T, d *proctest.Daemon, cred *syscall.Credential, says string, args ...string) {
	t.Helper()
	r := idmctlAs(d, cred, args...)
	if r.Code != 1 || r.Stderr != says+"\n" || r.Stdout != "" {
		t.Errorf("idmctl %s as uid %d: exit %d, stdout %q, stderr %q; want exit 1 and %q", strings.Join(args, " "), cred.Uid, r.Code, r.Stdout, r.Stderr, says)
	}
}

// partialFiles returns the partial files in dir.
func partialFiles(t *testing.T, dir string) []string {
	t.Helper()
	parts, err := filepath.Glob(filepath.Join(dir, "*.idmpart"))
	if err != nil {
		t.Fatal(err)
	}
	return parts
}

// The system daemon, run as root: a member's job is the member's. Another
// member may not cancel, pause, resume, remove or re-limit it, nor set
// the global limit; each refusal is one line and exit status 1, and the
// job, its partial file and the limits stay as they were. Creating the
// same download gives the other member a job of its own. The owner's job
// completes; root cancels a member's job.
func TestAccess_JobOwner(t *testing.T) {
	usertest.NeedRoot(t)
	group, gid := someGroup(t)
	file, want := proctest.Sample(t, 1<<20, 41)
	srv := proctest.StartServers(t, file, 2, "256K")
	d := proctest.NewDaemon(t)
	d.Start("--system", "--group", group)
	usertest.Reachable(t, filepath.Dir(filepath.Dir(d.Socket)))
	ann, bob := as(uidAnn, gid), as(uidBob, gid)
	shared := usertest.Mkdir(t, filepath.Join(usertest.ReachableTempDir(t), "shared"), 0, gid, 0o775|fs.ModeSetgid|fs.ModeSticky)

	id := addAs(t, d, ann, shared, srv.Sources()...)
	d.WaitVerified(id, 0.05)
	// Every source down: the job waits, its partial file half full,
	// until they are back.
	srv.Console(t, "E1")
	srv.Console(t, "E2")
	proctest.WaitFor(t, "the job to wait", time.Minute, func() bool {
		return d.Job(id).State == api.StateWaiting
	})
	parts := partialFiles(t, shared)
	if len(parts) != 1 {
		t.Fatalf("%s holds partial files %v, want ann's one", shared, parts)
	}

	ids := strconv.FormatUint(id, 10)
	for _, args := range [][]string{
		{"cancel", ids}, {"pause", ids}, {"resume", ids}, {"rm", ids}, {"limit", ids, "1K"},
	} {
		refused(t, d, bob, notOwner(id, uidAnn), args...)
	}
	refused(t, d, bob, globalLimitRefused(uidBob), "limit", "1K")
	if j := d.Job(id); j.State != api.StateWaiting || j.Limit != 0 {
		t.Errorf("after bob's refused commands ann's job is %s with limit %d; want waiting, none", j.State, j.Limit)
	}
	if l, err := d.Client().Limit(context.Background()); err != nil || l != 0 {
		t.Errorf("after bob's refused command the global limit is %d (%v); want none", l, err)
	}
	if _, err := os.Stat(parts[0]); err != nil {
		t.Errorf("ann's partial file after bob's refused commands: %v", err)
	}

	// The same download, with -r: bob's own job, not ann's. His to cancel.
	r := idmctlAs(d, bob, append([]string{"add", "-r", "-o", shared}, srv.Sources()...)...)
	if bobs, err := strconv.ParseUint(strings.TrimSpace(r.Stdout), 10, 64); r.Code != 0 || err != nil || bobs == id {
		t.Errorf("idmctl add -r as bob, ann's download: exit %d, %q, %q; want a new job", r.Code, r.Stdout, r.Stderr)
	} else if r := idmctlAs(d, bob, "cancel", strconv.FormatUint(bobs, 10)); r.Code != 0 {
		t.Errorf("idmctl cancel as bob, his own job: exit %d, %q", r.Code, r.Stderr)
	}

	srv.Console(t, "S1")
	srv.Console(t, "S2")
	proctest.WaitFor(t, "ann's job to complete", 2*time.Minute, func() bool {
		return d.Job(id).State == api.StateCompleted
	})
	proctest.SameFile(t, shared, want)

	// Root may change anyone's job. Nobody listens there: the job waits.
	other := addAs(t, d, ann, shared, "idm://127.0.0.1:"+proctest.FreePorts(t, 1)[0])
	if r := d.Idmctl("cancel", strconv.FormatUint(other, 10)); r.Code != 0 || r.Stdout != fmt.Sprintf("job %d: cancelled\n", other) {
		t.Errorf("idmctl cancel as root, ann's job: exit %d, %q, %q", r.Code, r.Stdout, r.Stderr)
	}
}

// The system daemon run as a user of its own, as the service is: that
// user may change a member's job and set the global limit; another
// member may do neither.
func TestAccess_ServiceUser(t *testing.T) {
	usertest.NeedRoot(t)
	group, gid := someGroup(t)
	daemonUser := as(uidDaemonUser, gid)
	d := startAs(t, daemonUser, "--system", "--group", group)
	ann, bob := as(uidAnn, gid), as(uidBob, gid)
	shared := usertest.Mkdir(t, filepath.Join(usertest.ReachableTempDir(t), "shared"), 0, gid, 0o775|fs.ModeSetgid|fs.ModeSticky)

	// Nobody listens there: the job waits until stopped.
	id := addAs(t, d, ann, shared, "idm://127.0.0.1:"+proctest.FreePorts(t, 1)[0])
	ids := strconv.FormatUint(id, 10)
	refused(t, d, bob, notOwner(id, uidAnn), "pause", ids)
	refused(t, d, ann, globalLimitRefused(uidAnn), "limit", "1K")
	for _, tc := range []struct {
		args []string
		out  string
	}{
		{[]string{"pause", ids}, fmt.Sprintf("job %d: paused\n", id)},
		{[]string{"limit", ids, "1K"}, fmt.Sprintf("job %d limit: 1000 B/s (1000 B/s)\n", id)},
		{[]string{"limit", "1K"}, "global limit: 1000 B/s (1000 B/s)\n"},
		{[]string{"cancel", ids}, fmt.Sprintf("job %d: cancelled\n", id)},
	} {
		if r := idmctlAs(d, daemonUser, tc.args...); r.Code != 0 || r.Stdout != tc.out {
			t.Errorf("idmctl %s as the daemon's user: exit %d, %q, %q; want %q", strings.Join(tc.args, " "), r.Code, r.Stdout, r.Stderr, tc.out)
		}
	}
}
