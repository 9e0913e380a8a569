//go:build unix

package aria2rpc

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// A missing default download directory is made, that one directory,
// with the mode and group asked for, special bits too; one that is
// there is left as it is.
func TestMakeDownloadDir_Made(t *testing.T) {
	shared := fs.ModeSetgid | fs.ModeSticky | 0o775
	for _, tc := range []struct {
		name string
		perm fs.FileMode
		gid  int
	}{
		{"private", 0o700, -1},
		{"shared", shared, os.Getegid()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "downloads")
			made, err := MakeDownloadDir(path, tc.perm, tc.gid)
			if err != nil || !made {
				t.Fatalf("made %v, %v", made, err)
			}
			fi, err := os.Lstat(path)
			if err != nil || !fi.IsDir() || fi.Mode()&(fs.ModePerm|fs.ModeSetgid|fs.ModeSticky) != tc.perm {
				t.Fatalf("made %v with mode %v, want %v", err, fi.Mode(), tc.perm)
			}
			if st := fi.Sys().(*syscall.Stat_t); int(st.Uid) != os.Geteuid() || tc.gid >= 0 && int(st.Gid) != tc.gid {
				t.Errorf("owned by %d:%d", st.Uid, st.Gid)
			}
			os.Chmod(path, 0o750)
			if made, err := MakeDownloadDir(path, tc.perm, tc.gid); made || err != nil {
				t.Errorf("made again: %v, %v", made, err)
			}
			if fi, _ := os.Lstat(path); fi.Mode().Perm() != 0o750 {
				t.Errorf("a directory there was changed to %v", fi.Mode())
			}
		})
	}
	if made, err := MakeDownloadDir(filepath.Join(t.TempDir(), "no", "downloads"), 0o700, -1); made || err == nil {
		t.Errorf("with a parent missing: %v, %v", made, err)
	}
}

// What is at the path and is not a directory is refused, neither
// replaced nor followed: a link to a directory (whose mode stays), to
// nowhere (where nothing is made), to a file, and a file.
func TestMakeDownloadDir_Refused(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "elsewhere")
	os.Mkdir(target, 0o750)
	file := filepath.Join(dir, "file")
	os.WriteFile(file, nil, 0o600)
	links := map[string]string{"to-dir": target, "dangling": filepath.Join(dir, "nowhere"), "to-file": file}
	for name, to := range links {
		os.Symlink(to, filepath.Join(dir, name))
	}
	for name, want := range map[string]string{
		"to-dir":   "is a symbolic link to " + target + ": idmd neither makes a directory in its place",
		"dangling": "is a symbolic link to " + links["dangling"] + ", no directory",
		"to-file":  "is a symbolic link to " + file + ", no directory",
		"file":     "is not a directory",
	} {
		made, err := MakeDownloadDir(filepath.Join(dir, name), fs.ModeSetgid|fs.ModeSticky|0o777, os.Getegid())
		if made || err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: made %v, %v; want an error saying %q", name, made, err, want)
		}
	}
	if fi, _ := os.Stat(target); fi.Mode() != fs.ModeDir|0o750 {
		t.Errorf("the directory a link leads to is now %v", fi.Mode())
	}
	if _, err := os.Lstat(links["dangling"]); !os.IsNotExist(err) {
		t.Errorf("something was made where the dangling link leads: %v", err)
	}
}
