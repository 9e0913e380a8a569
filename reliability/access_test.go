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

// needRoot skips a test that runs processes as other users.
func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: it runs idmd and idmctl as other users (sudo make test-reliability)")
	}
}

// openTo makes dir and its parent searchable by everyone: t.TempDir's are
// not, for root.
func openTo(t *testing.T, dir string) string {
	t.Helper()
	for _, p := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// mkdirAs makes a directory with exactly this owner, group and mode.
func mkdirAs(t *testing.T, path string, uid, gid int, mode fs.FileMode) string {
	t.Helper()
	if err := os.Mkdir(path, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(path, uid, gid); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
	return path
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

// Another user against a per-user idmd: refused on every route, even
// with the socket opened to everyone, and nothing is added.
func TestAccess_OtherUserPerUserDaemon(t *testing.T) {
	needRoot(t)
	home := openTo(t, t.TempDir())
	if err := os.Chown(home, uidDaemonUser, uidDaemonUser); err != nil {
		t.Fatal(err)
	}
	d := &proctest.Daemon{Socket: filepath.Join(home, "run", "idmd.sock"), StateDir: filepath.Join(home, "state")}
	cmd := exec.Command(proctest.Bin("idmd"), "run", "--socket", d.Socket, "--state-dir", d.StateDir)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + home}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: as(uidDaemonUser)}
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
	proctest.WaitFor(t, "the per-user idmd to answer", 10*time.Second, func() bool {
		_, err := d.Client().Version(context.Background())
		return err == nil
	})
	out := openTo(t, t.TempDir())
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
	needRoot(t)
	group, gid := someGroup(t)
	file, want := proctest.Sample(t, 1<<20, 31)
	srv := proctest.StartServers(t, file, 2, "")
	d := proctest.NewDaemon(t)
	d.Start("--system", "--group", group)
	openTo(t, filepath.Dir(filepath.Dir(d.Socket)))
	ann, bob, eve := as(uidAnn, gid), as(uidBob, gid), as(uidEve)

	base := openTo(t, t.TempDir())
	at := func(name string) string { return filepath.Join(base, name) }
	rootOnly := mkdirAs(t, at("root-only"), 0, 0, 0o700)
	bobs := mkdirAs(t, at("bobs"), uidBob, uidBob, 0o755)
	shared := mkdirAs(t, at("shared"), 0, gid, 0o775|fs.ModeSetgid|fs.ModeSticky)
	later := mkdirAs(t, at("later"), 0, gid, 0o775|fs.ModeSetgid|fs.ModeSticky)
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
