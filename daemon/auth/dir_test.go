package auth

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/idmproject/idm/internal/usertest"
	"github.com/idmproject/idm/store"
)

// The users of the access tests (see package usertest).
const (
	uidAnn, uidBob, uidEve = usertest.UIDAnn, usertest.UIDBob, usertest.UIDEve
	gidShared, gidOther    = usertest.GIDShared, usertest.GIDOther
)

var ann, bob, eve, root = usertest.Ann, usertest.Bob, usertest.Eve, usertest.Root

// The permission rules alone, on made-up files: which class of the mode
// applies to whom, and what an ACL changes.
func TestPermits(t *testing.T) {
	const w, x = permWrite, permSearch
	acl := func(entries ...aclEntry) []aclEntry { return entries }
	for _, tc := range []struct {
		name     string
		who      *store.Owner
		uid, gid int
		mode     fs.FileMode
		acl      []aclEntry
		want     uint16
		ok       bool
	}{
		{"owner bits grant the owner", ann, uidAnn, uidAnn, 0o700, nil, w | x, true},
		{"owner bits refuse the owner, whatever the group bits", ann, uidAnn, gidShared, 0o570, nil, w | x, false},
		{"group bits grant a member by primary group", bob, 0, uidBob, 0o770, nil, w | x, true},
		{"group bits grant a member by supplementary group", ann, 0, gidOther, 0o770, nil, w | x, true},
		{"group bits refuse a member, whatever the other bits", ann, 0, gidShared, 0o757, nil, w | x, false},
		{"other bits grant a stranger", eve, 0, gidShared, 0o707, nil, w | x, true},
		{"other bits refuse a stranger", eve, 0, gidShared, 0o775, nil, w | x, false},
		{"search without write", eve, 0, 0, 0o755, nil, x, true},
		{"write without search", eve, 0, 0, 0o722, nil, w | x, false},
		{"sticky and set-group-ID change nothing for creating", ann, 0, gidShared, 0o775 | fs.ModeSticky | fs.ModeSetgid, nil, w | x, true},
		{"root may do anything", root, uidAnn, uidAnn, 0, nil, w | x, true},
		{"ACL: a named user's entry refuses where other grants", bob, 0, 0, 0o777,
			acl(aclEntry{aclUserObj, 7, 0}, aclEntry{aclUser, 0, uidBob}, aclEntry{aclGroupObj, 7, 0}, aclEntry{aclMask, 7, 0}, aclEntry{aclOther, 7, 0}), w | x, false},
		{"ACL: a named user's entry grants where other refuses", ann, 0, 0, 0o775,
			acl(aclEntry{aclUserObj, 7, 0}, aclEntry{aclUser, 7, uidAnn}, aclEntry{aclGroupObj, 5, 0}, aclEntry{aclMask, 7, 0}, aclEntry{aclOther, 5, 0}), w | x, true},
		{"ACL: the mask bounds a named user", ann, 0, 0, 0o755,
			acl(aclEntry{aclUserObj, 7, 0}, aclEntry{aclUser, 7, uidAnn}, aclEntry{aclGroupObj, 5, 0}, aclEntry{aclMask, 5, 0}, aclEntry{aclOther, 5, 0}), w | x, false},
		{"ACL: a matching group that does not grant refuses where other grants", ann, 0, 0, 0o777,
			acl(aclEntry{aclUserObj, 7, 0}, aclEntry{aclGroupObj, 7, 0}, aclEntry{aclGroup, 5, gidShared}, aclEntry{aclMask, 7, 0}, aclEntry{aclOther, 7, 0}), w | x, false},
		{"ACL: any matching group that grants is enough", ann, 0, 0, 0o775,
			acl(aclEntry{aclUserObj, 7, 0}, aclEntry{aclGroupObj, 5, 0}, aclEntry{aclGroup, 5, gidShared}, aclEntry{aclGroup, 7, gidOther}, aclEntry{aclMask, 7, 0}, aclEntry{aclOther, 5, 0}), w | x, true},
		{"ACL: the owner's bits, never the entries, for the owner", ann, uidAnn, 0, 0o577,
			acl(aclEntry{aclUserObj, 5, 0}, aclEntry{aclUser, 7, uidAnn}, aclEntry{aclGroupObj, 7, 0}, aclEntry{aclMask, 7, 0}, aclEntry{aclOther, 7, 0}), w | x, false},
		{"ACL: a mask of none leaves the mode bits to decide", ann, 0, 0, 0o707,
			acl(aclEntry{aclUserObj, 7, 0}, aclEntry{aclUser, 7, uidAnn}, aclEntry{aclGroupObj, 7, 0}, aclEntry{aclMask, 0, 0}, aclEntry{aclOther, 7, 0}), w | x, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := permits(tc.who, tc.uid, tc.gid, tc.mode, tc.acl, tc.want); got != tc.ok {
				t.Errorf("permits = %v, want %v", got, tc.ok)
			}
		})
	}
}

// What the check costs a request: a walk through a symbolic link to a
// directory nine names deep. As root, the walk is made for another user,
// reading each directory's owner and ACL; otherwise for the user itself.
func BenchmarkResolveDir(b *testing.B) {
	base := b.TempDir()
	deep := filepath.Join(base, "a", "b", "c", "d", "e", "f")
	if err := os.MkdirAll(deep, 0o777); err != nil {
		b.Fatal(err)
	}
	if err := os.Symlink(deep, filepath.Join(base, "link")); err != nil {
		b.Fatal(err)
	}
	who := &store.Owner{UID: os.Geteuid(), GID: os.Getegid()}
	if who.UID == 0 {
		who = ann
		for p := deep; p != filepath.Dir(base); p = filepath.Dir(p) {
			os.Chmod(p, 0o777)
		}
		os.Chmod(filepath.Dir(base), 0o755)
	}
	dir := filepath.Join(base, "link")
	for b.Loop() {
		if _, _, err := ResolveDir(dir, who); err != nil {
			b.Fatal(err)
		}
	}
}

// A directory that no one could use is ErrBadDir, not a refusal, in one
// line that names it.
func TestResolveDir_BadDir(t *testing.T) {
	base := t.TempDir()
	file := filepath.Join(base, "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	loop := filepath.Join(base, "loop")
	if err := os.Symlink(loop, loop); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ dir, says string }{
		{filepath.Join(base, "nope"), "output directory " + filepath.Join(base, "nope") + " does not exist"},
		{file, "output directory " + file + " is not a directory"},
		{filepath.Join(file, "below"), "output directory " + filepath.Join(file, "below") + ": " + file + " is not a directory"},
		{loop, "output directory " + loop + ": too many symbolic links"},
	} {
		_, _, err := ResolveDir(tc.dir, nil)
		if !errors.Is(err, ErrBadDir) || errors.Is(err, ErrDenied) || err.Error() != tc.says {
			t.Errorf("%s: %v, want ErrBadDir saying %q", tc.dir, err, tc.says)
		}
	}
}
