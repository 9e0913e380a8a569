package aria2rpc

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
)

// maxSecretFile bounds what is read of a secret file.
const maxSecretFile = 4096

// SecretFile returns the RPC secret kept in the file at path, making
// one when there is none: 32 random bytes in hex, in a file of mode
// 0600 that appears whole or not at all, and never in the place of
// anything else. A symbolic link at path is refused, never followed; so
// are a file that is not a regular one, one that other users may read
// or anyone but its owner may write, and one without a secret in it.
func SecretFile(path string) (string, error) {
	secret, err := readSecret(path)
	if !errors.Is(err, fs.ErrNotExist) {
		return secret, err
	}
	b := make([]byte, 32)
	rand.Read(b)
	secret = hex.EncodeToString(b)
	err = writeNew(path, []byte(secret+"\n"))
	if errors.Is(err, fs.ErrExist) {
		// Something came first: a file of another idmd's, which is read,
		// or a link, which is refused.
		return readSecret(path)
	}
	if err != nil {
		return "", fmt.Errorf("RPC secret file: %w", err)
	}
	return secret, nil
}

// readSecret reads the secret in the file at path.
func readSecret(path string) (string, error) {
	li, err := os.Lstat(path)
	if err != nil {
		return "", err
	}
	switch {
	case li.Mode()&fs.ModeSymlink != 0:
		return "", fmt.Errorf("RPC secret file %s is a symbolic link: refused; the secret must be a file of its own", path)
	case !li.Mode().IsRegular():
		return "", fmt.Errorf("RPC secret file %s is not a regular file", path)
	case runtime.GOOS != "windows" && li.Mode().Perm()&0o027 != 0:
		return "", fmt.Errorf("RPC secret file %s has mode %04o, which lets other users read or change it: chmod 600 %s", path, li.Mode().Perm(), path)
	}
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("RPC secret file: %w", err)
	}
	defer f.Close()
	// What was opened must be what was looked at: not a link put there
	// in between.
	if fi, err := f.Stat(); err != nil || !os.SameFile(li, fi) {
		return "", fmt.Errorf("RPC secret file %s changed while it was read", path)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxSecretFile+1))
	if err != nil {
		return "", fmt.Errorf("RPC secret file: %w", err)
	}
	secret := string(bytes.TrimSpace(b))
	switch {
	case len(b) > maxSecretFile:
		return "", fmt.Errorf("RPC secret file %s is larger than %d bytes", path, maxSecretFile)
	case secret == "":
		return "", fmt.Errorf("RPC secret file %s holds no secret", path)
	case bytes.ContainsAny([]byte(secret), "\n\r\x00"):
		return "", fmt.Errorf("RPC secret file %s holds more than one line", path)
	}
	return secret, nil
}

// writeNew puts a new file holding b, of mode 0600, at path: written
// and synced under another name, then linked into place, which fails
// (fs.ErrExist) if anything is at path already, a dangling link too.
func writeNew(path string, b []byte) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, ".rpc-secret-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fs.ErrExist
		}
		return err
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}
