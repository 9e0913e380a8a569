// Package usertest gives the access tests their made-up users and the
// means to act as them: directories with exactly the owner, group and
// mode a test needs, and connections made as another user. The users need
// no account: the kernel and idmd know users by number. It is imported
// only by tests.
package usertest

import (
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/idmproject/idm/store"
)

// The users and groups of the access tests: Ann and Bob are members of
// GIDShared, Ann of GIDOther too; Eve of neither.
const (
	UIDAnn, UIDBob, UIDEve = 64101, 64102, 64103
	GIDShared, GIDOther    = 64200, 64201
)

// Ann, Bob, Eve and Root as idmd records a job's owner.
var (
	Ann  = &store.Owner{UID: UIDAnn, GID: UIDAnn, Groups: []int{GIDShared, GIDOther}}
	Bob  = &store.Owner{UID: UIDBob, GID: UIDBob, Groups: []int{GIDShared}}
	Eve  = &store.Owner{UID: UIDEve, GID: UIDEve}
	Root = &store.Owner{UID: 0, GID: 0}
)

// NeedRoot skips a test that must create files for other users or act as
// them.
func NeedRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: it makes directories owned by other users and runs processes as them")
	}
}

// ReachableTempDir returns a new temporary directory that every user may
// search, as t.TempDir's are not for root.
func ReachableTempDir(t testing.TB) string {
	t.Helper()
	return Reachable(t, t.TempDir())
}

// Reachable makes dir and its parent searchable by every user, and
// returns dir.
func Reachable(t testing.TB, dir string) string {
	t.Helper()
	for _, p := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// Mkdir makes a directory with exactly this owner, group and mode, and
// returns its path.
func Mkdir(t testing.TB, path string, uid, gid int, mode fs.FileMode) string {
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
