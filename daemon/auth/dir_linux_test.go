package auth

import (
	"encoding/binary"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/idmproject/idm/internal/usertest"
	"github.com/idmproject/idm/store"
)

// setACL gives path an access ACL, in the order the kernel wants; the
// kernel sets the mode's group bits to the mask.
func setACL(path string, entries ...aclEntry) error {
	b := binary.LittleEndian.AppendUint32(nil, aclVersion)
	for _, e := range entries {
		b = binary.LittleEndian.AppendUint16(b, e.tag)
		b = binary.LittleEndian.AppendUint16(b, e.perm)
		id := uint32(0xffffffff) // ACL_UNDEFINED_ID, for the entries of no one in particular
		if e.tag == aclUser || e.tag == aclGroup {
			id = uint32(e.id)
		}
		b = binary.LittleEndian.AppendUint32(b, id)
	}
	return unix.Setxattr(path, aclXattr, b, 0)
}

// kernelAllows asks the kernel whether who may create a file in dir: a
// shell running as who tries.
func kernelAllows(t *testing.T, who *store.Owner, dir string) bool {
	t.Helper()
	cmd := exec.Command("/bin/sh", "-c", `: > "$1/.idm-probe" && rm -f "$1/.idm-probe"`, "sh", dir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: credential(who)}
	err := cmd.Run()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatal(err)
	}
	return err == nil
}

func credential(o *store.Owner) *syscall.Credential {
	c := &syscall.Credential{Uid: uint32(o.UID), Gid: uint32(o.GID), Groups: []uint32{}}
	for _, g := range o.Groups {
		c.Groups = append(c.Groups, uint32(g))
	}
	return c
}

// ResolveDir against the kernel: for every user and directory, the check
// answers as the kernel does when that user creates a file there, and
// the resolved path is the one filepath.EvalSymlinks gives.
func TestResolveDir_AsTheKernel(t *testing.T) {
	usertest.NeedRoot(t)
	base := usertest.ReachableTempDir(t)
	at := func(name string) string { return filepath.Join(base, name) }
	usertest.Mkdir(t, at("open"), 0, 0, 0o777)
	usertest.Mkdir(t, at("shared"), 0, gidShared, 0o775|fs.ModeSetgid)
	usertest.Mkdir(t, at("sticky"), 0, gidShared, 0o775|fs.ModeSetgid|fs.ModeSticky)
	usertest.Mkdir(t, at("bobs"), uidBob, uidBob, 0o755)
	usertest.Mkdir(t, at("rootonly"), 0, 0, 0o700)
	usertest.Mkdir(t, at("hidden"), 0, 0, 0o700)
	usertest.Mkdir(t, at("hidden/inner"), 0, 0, 0o777)
	usertest.Mkdir(t, at("other"), 0, gidOther, 0o770)
	usertest.Mkdir(t, at("anns"), uidAnn, uidAnn, 0o700)
	usertest.Mkdir(t, at("annro"), uidAnn, gidShared, 0o570)
	// Links a member could plant in the shared directory.
	os.Symlink("../rootonly", at("shared/to-rootonly"))
	os.Symlink(at("hidden/inner"), at("shared/to-hidden"))
	os.Symlink("../open", at("shared/to-open"))
	// A link through a directory ann may not search, to one she may
	// write: the kernel refuses, though both ends are open to her.
	os.Symlink("../open", at("hidden/to-open"))
	os.Symlink("../hidden/to-open", at("shared/via-hidden"))

	type row struct {
		who  *store.Owner
		dir  string
		ok   bool
		says string // in the refusal
	}
	rows := []row{
		{eve, "open", true, ""},
		{ann, "shared", true, ""},
		{eve, "shared", false, "no write permission on " + at("shared")},
		{ann, "sticky", true, ""},
		{eve, "sticky", false, "mode 3775"},
		{bob, "bobs", true, ""},
		{ann, "bobs", false, "no write permission on " + at("bobs") + " (mode 0755, owner 64102, group 64102)"},
		{ann, "rootonly", false, "no write or search permission on " + at("rootonly")},
		{ann, "hidden/inner", false, "no search permission on " + at("hidden") + " "},
		{ann, "hidden/nothing", false, "no search permission on " + at("hidden") + " "},
		{eve, "open/nothing", false, "does not exist"},
		{ann, "shared/to-rootonly", false, "may not create files in " + at("shared/to-rootonly") + ": no write or search permission on " + at("rootonly") + " "},
		{ann, "shared/via-hidden", false, "no search permission on " + at("hidden") + " "},
		{ann, "shared/to-hidden", false, "no search permission on " + at("hidden") + " "},
		{ann, "shared/to-open", true, ""},
		{ann, "other", true, ""},
		{bob, "other", false, "no write or search permission"},
		{ann, "anns", true, ""},
		{bob, "anns", false, "no write or search permission"},
		{ann, "annro", false, "no write permission"},
		{bob, "annro", true, ""},
		{root, "rootonly", true, ""},
		{root, "hidden/inner", true, ""},
	}
	// ACLs, where the file system has them.
	aclDir := func(name string, mode fs.FileMode, entries ...aclEntry) bool {
		usertest.Mkdir(t, at(name), 0, 0, mode)
		err := setACL(at(name), entries...)
		if errors.Is(err, unix.ENOTSUP) {
			t.Logf("no POSIX ACLs on this file system: %v", err)
			return false
		}
		if err != nil {
			t.Fatal(err)
		}
		return true
	}
	if aclDir("acl-not-bob", 0o777, aclEntry{aclUserObj, 7, 0}, aclEntry{aclUser, 0, uidBob}, aclEntry{aclGroupObj, 7, 0}, aclEntry{aclMask, 7, 0}, aclEntry{aclOther, 7, 0}) {
		aclDir("acl-not-shared", 0o777, aclEntry{aclUserObj, 7, 0}, aclEntry{aclGroupObj, 7, 0}, aclEntry{aclGroup, 5, gidShared}, aclEntry{aclMask, 7, 0}, aclEntry{aclOther, 7, 0})
		aclDir("acl-ann", 0o755, aclEntry{aclUserObj, 7, 0}, aclEntry{aclUser, 7, uidAnn}, aclEntry{aclGroupObj, 5, 0}, aclEntry{aclMask, 7, 0}, aclEntry{aclOther, 5, 0})
		aclDir("acl-mask-none", 0o707, aclEntry{aclUserObj, 7, 0}, aclEntry{aclUser, 7, uidBob}, aclEntry{aclGroupObj, 7, 0}, aclEntry{aclMask, 0, 0}, aclEntry{aclOther, 7, 0})
		rows = append(rows,
			row{eve, "acl-not-bob", true, ""},
			row{bob, "acl-not-bob", false, "and an ACL"},
			row{eve, "acl-not-shared", true, ""},
			row{ann, "acl-not-shared", false, "no write permission"},
			row{ann, "acl-ann", true, ""},
			row{bob, "acl-ann", false, "no write permission"},
			row{bob, "acl-mask-none", true, ""},
		)
	}
	for _, r := range rows {
		dir := at(r.dir)
		got, id, err := ResolveDir(dir, r.who)
		if kernel := kernelAllows(t, r.who, dir); kernel != r.ok {
			t.Errorf("uid %d in %s: the kernel says %v, the test expects %v", r.who.UID, r.dir, kernel, r.ok)
		}
		if !r.ok {
			if err == nil || !strings.Contains(err.Error(), r.says) {
				t.Errorf("uid %d in %s: %v, want a refusal saying %q", r.who.UID, r.dir, err, r.says)
			}
			continue
		}
		if err != nil {
			t.Errorf("uid %d in %s: %v", r.who.UID, r.dir, err)
			continue
		}
		want, _ := filepath.EvalSymlinks(dir)
		fi, _ := os.Stat(want)
		if got != want || id != dirIdentity(fi) || id == (store.FileID{}) {
			t.Errorf("uid %d in %s: resolved to %s %+v, want %s %+v", r.who.UID, r.dir, got, id, want, dirIdentity(fi))
		}
	}
}
