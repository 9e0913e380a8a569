package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/idmproject/idm/store"
)

// Wrong command lines of idmd check are usage errors: exit 2 and the
// usage.
func TestCheck_Usage(t *testing.T) {
	for _, args := range [][]string{
		{"check", "--bogus"},
		{"check", "--state-dir"},
		{"check", "extra"},
	} {
		var stdout, stderr bytes.Buffer
		if code := run(args, &stdout, &stderr); code != 2 {
			t.Errorf("%v: exit %d, want 2", args, code)
		}
		if !strings.Contains(stderr.String(), "usage: idmd check") {
			t.Errorf("%v: stderr does not show the usage:\n%s", args, stderr.String())
		}
	}
	var stdout, stderr bytes.Buffer
	if code := run([]string{"help"}, &stdout, &stderr); code != 0 || !strings.Contains(stdout.String(), "check") {
		t.Errorf("idmd help does not list check:\n%s", stdout.String())
	}
}

func TestCheck_Outcomes(t *testing.T) {
	dir := t.TempDir()
	run1 := func(want int) string {
		t.Helper()
		var stdout, stderr bytes.Buffer
		if code := run([]string{"check", "--state-dir", dir}, &stdout, &stderr); code != want {
			t.Fatalf("exit %d, want %d\n%s%s", code, want, stdout.String(), stderr.String())
		}
		return stdout.String() + stderr.String()
	}
	if out := run1(1); !strings.Contains(out, "no state database in "+dir) {
		t.Errorf("no database: %q", out)
	}
	path := filepath.Join(dir, "idmd.db")
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	out := run1(1)
	for _, want := range []string{path + ": the file is empty", path + ": damaged: 1 problem", "move the file aside"} {
		if !strings.Contains(out, want) {
			t.Errorf("empty file: output does not say %q:\n%s", want, out)
		}
	}
	os.Remove(path)
	db, err := store.Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	if out := run1(0); out != "idmd check: "+path+": sound, 0 jobs (0 unfinished)\n" {
		t.Errorf("sound: %q", out)
	}
	if line := openFailed(os.ErrPermission, dir); line != "idmd: permission denied" {
		t.Errorf("openFailed of another error: %q", line)
	}
}
