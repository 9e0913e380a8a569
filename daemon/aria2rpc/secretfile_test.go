package aria2rpc

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// The first start makes the secret: 64 hex digits, in a file of mode
// 0600 that the next starts read.
func TestSecretFile_Made(t *testing.T) {
	path := filepath.Join(t.TempDir(), "rpc-secret")
	secret, err := SecretFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^[0-9a-f]{64}$`).MatchString(secret) {
		t.Errorf("secret %q", secret)
	}
	fi, err := os.Lstat(path)
	if err != nil || fi.Mode() != 0o600 {
		t.Fatalf("the file: %v, mode %v", err, fi.Mode())
	}
	again, err := SecretFile(path)
	if err != nil || again != secret {
		t.Errorf("read again: %q, %v; want %q", again, err, secret)
	}
	if names, _ := filepath.Glob(filepath.Join(filepath.Dir(path), ".rpc-secret-*")); len(names) != 0 {
		t.Errorf("left behind: %v", names)
	}
	other, _ := SecretFile(filepath.Join(t.TempDir(), "rpc-secret"))
	if other == secret {
		t.Error("two secrets made are the same")
	}
}

// A secret of one's own is read as written, its line's end aside.
func TestSecretFile_Given(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mine")
	os.WriteFile(path, []byte("  correct horse battery staple\n"), 0o600)
	if s, err := SecretFile(path); err != nil || s != "correct horse battery staple" {
		t.Errorf("%q, %v", s, err)
	}
}

// A link is never followed, nor replaced: not to a secret, not to
// nowhere (where a new file would have been made through it). Nor is a
// file others may read, nor one without a secret.
func TestSecretFile_Refused(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "target")
	os.WriteFile(target, []byte("secret\n"), 0o600)
	dangling := filepath.Join(dir, "dangling")
	os.Symlink(filepath.Join(dir, "nowhere"), dangling)
	link := filepath.Join(dir, "link")
	os.Symlink(target, link)
	readable := filepath.Join(dir, "readable")
	os.WriteFile(readable, []byte("secret\n"), 0o644)
	os.Chmod(readable, 0o644)
	empty := filepath.Join(dir, "empty")
	os.WriteFile(empty, []byte("\n"), 0o600)
	two := filepath.Join(dir, "two")
	os.WriteFile(two, []byte("a\nb\n"), 0o600)
	sub := filepath.Join(dir, "sub")
	os.Mkdir(sub, 0o700)
	for path, want := range map[string]string{
		link:     "is a symbolic link: refused",
		dangling: "is a symbolic link: refused",
		readable: "has mode 0644, which lets other users read or change it",
		empty:    "holds no secret",
		two:      "holds more than one line",
		sub:      "is not a regular file",
	} {
		s, err := SecretFile(path)
		if err == nil || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: %q, %v; want a refusal saying %q", filepath.Base(path), s, err, want)
		}
	}
	if _, err := os.Lstat(filepath.Join(dir, "nowhere")); !os.IsNotExist(err) {
		t.Errorf("a file was made through the dangling link: %v", err)
	}
}
