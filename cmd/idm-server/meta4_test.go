package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/idmproject/idm/identity"
	"github.com/idmproject/idm/transport/metalink"
)

// runBinary runs idm-server with args to its end.
func runBinary(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(binary, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	cmd.Run()
	if cmd.ProcessState == nil {
		t.Fatalf("idm-server %q did not run", args)
	}
	return out.String(), errb.String(), cmd.ProcessState.ExitCode()
}

// idm-server meta4 prints a Metalink of the file with every URL given:
// its size, SHA-256 and SHA-256 pieces of idm-server's segment size,
// which verify the file.
func TestIDMServer_Meta4(t *testing.T) {
	path := testData(t, 300_000)
	data, _ := os.ReadFile(path)
	urls := []string{"http://127.0.0.1:9001/", "http://127.0.0.1:9002/sample.bin", "https://mirror.example/a%20b?sig=1&x=2"}
	args := []string{"meta4", "-f", path}
	for _, u := range urls {
		args = append(args, "--url", u)
	}
	cache := t.TempDir()
	for _, extra := range [][]string{{"--cache-dir", cache}, {"--cache-dir", cache, "--segment-size", "4Ki"}, {"--no-cache"}} {
		stdout, stderr, code := runBinary(t, append(append([]string(nil), args...), extra...)...)
		if code != 0 || stderr != "" {
			t.Fatalf("%v: exit %d, stderr %q", extra, code, stderr)
		}
		files, err := metalink.Parse(strings.NewReader(stdout))
		if err != nil {
			t.Fatalf("%v: metalink.Parse: %v\n%s", extra, err, stdout)
		}
		f := files[0]
		if len(files) != 1 || f.Name != "sample.bin" || f.Size != int64(len(data)) {
			t.Fatalf("%v: %d files, the first %q of %d bytes", extra, len(files), f.Name, f.Size)
		}
		var got []string
		for _, m := range f.Mirrors {
			got = append(got, m.URL)
		}
		if strings.Join(got, " ") != strings.Join(urls, " ") {
			t.Errorf("%v: mirrors %q, want %q", extra, got, urls)
		}
		whole := sha256.Sum256(data)
		if len(f.Digests) != 1 || !bytes.Equal(f.Digests[0].Sum, whole[:]) {
			t.Errorf("%v: digests %v, want the SHA-256 alone", extra, f.Digests)
		}
		wantLen := identity.DefaultPieceLen(int64(len(data)))
		if len(extra) == 4 {
			wantLen = 4096
		}
		p := f.Pieces
		if p == nil || p.Algo != identity.SHA256 || p.PieceLen != wantLen {
			t.Fatalf("%v: pieces %+v, want SHA-256 pieces of %d", extra, p, wantLen)
		}
		for i := range p.Count() {
			off, n := p.Piece(i)
			if sum := sha256.Sum256(data[off : off+n]); !bytes.Equal(p.PieceHash(i), sum[:]) {
				t.Errorf("%v: piece %d does not verify the file", extra, i)
			}
		}
	}
}

// A wrong command line gets one error line and exit status 2; a file
// that cannot be described, one line and 1. Nothing goes to stdout.
func TestIDMServer_Meta4_Errors(t *testing.T) {
	path := testData(t, 1000)
	dir := t.TempDir()
	shared := filepath.Join(t.TempDir(), "shared")
	os.Mkdir(shared, 0o777)
	os.Chmod(shared, 0o777)
	tests := []struct {
		name string
		args []string
		code int
		says string
	}{
		{"nothing", nil, 2, "-f FILE is required"},
		{"no URL", []string{"-f", path}, 2, "--url is required"},
		{"no file", []string{"--url", "http://h.test/"}, 2, "-f FILE is required"},
		{"-f twice", []string{"-f", path, "-f", path, "--url", "http://h.test/"}, 2, "-f given twice"},
		{"idm URL", []string{"-f", path, "--url", "idm://h.test:9001"}, 2, "http:// and https://"},
		{"not a URL", []string{"-f", path, "--url", "h.test"}, 2, "--url"},
		{"URL twice", []string{"-f", path, "--url", "http://h.test/", "--url", "http://H.test:80/"}, 2, "given twice"},
		{"stray argument", []string{"-f", path, "--url", "http://h.test/", "stray"}, 2, `unexpected argument "stray"`},
		{"unknown flag", []string{"-f", path, "--url", "http://h.test/", "--bogus"}, 2, "unknown flag --bogus"},
		{"flag without value", []string{"-f", path, "--url"}, 2, "--url needs a value"},
		{"bad segment size", []string{"-f", path, "--url", "http://h.test/", "--segment-size", "1"}, 2, "--segment-size"},
		{"--no-cache with a value", []string{"-f", path, "--url", "http://h.test/", "--no-cache=yes"}, 2, "--no-cache takes no value"},
		{"cache and no cache", []string{"-f", path, "--url", "http://h.test/", "--cache-dir", dir, "--no-cache"}, 2, "one or the other"},
		{"missing file", []string{"-f", filepath.Join(dir, "nope"), "--url", "http://h.test/"}, 1, "no such file"},
		{"a directory", []string{"-f", dir, "--url", "http://h.test/"}, 1, "not a regular file"},
		{"a shared cache", []string{"-f", path, "--url", "http://h.test/", "--cache-dir", shared}, 1, "private"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stdout, stderr, code := runBinary(t, append([]string{"meta4"}, tt.args...)...)
			if code != tt.code {
				t.Fatalf("exit %d, want %d; stderr %q", code, tt.code, stderr)
			}
			lines := strings.Split(strings.TrimSuffix(stderr, "\n"), "\n")
			if len(lines) != 1 || !strings.HasPrefix(lines[0], "idm-server meta4: ") || !strings.Contains(lines[0], tt.says) {
				t.Errorf("stderr %q, want one line saying %q", stderr, tt.says)
			}
			if stdout != "" {
				t.Errorf("stdout %q, want nothing", stdout)
			}
		})
	}
}

func TestIDMServer_Meta4_Help(t *testing.T) {
	stdout, _, code := runBinary(t, "meta4", "--help")
	if code != 0 || !strings.Contains(stdout, "usage: idm-server meta4 -f FILE --url URL") {
		t.Errorf("exit %d, stdout %q", code, stdout)
	}
	stdout, _, _ = runBinary(t, "--help")
	for _, want := range []string{"idm-server meta4", "--cache-dir", "--no-cache", ".meta4"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("idm-server --help does not mention %s", want)
		}
	}
}

// serve starts idm-server on one port with extra flags, waits until it
// serves, stops it with SIGTERM and returns its log.
func serve(t *testing.T, path string, extra ...string) string {
	t.Helper()
	port := strconv.Itoa(freePorts(t, 1)[0])
	var log lockedBuffer
	p := startLogging(t, &log, append([]string{"-i", "60", "-n", "1", "-f", path, "--bind", "127.0.0.1", "-p", port}, extra...)...)
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(log.String(), "msg=serving") {
		if time.Now().After(deadline) {
			t.Fatalf("idm-server did not serve within 10 s; log:\n%s", log.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	p.cmd.Wait()
	return log.String()
}

// logged returns the value of key in the first log line with msg.
func logged(log, msg, key string) string {
	for _, l := range strings.Split(log, "\n") {
		if !strings.Contains(l, `msg="`+msg+`"`) {
			continue
		}
		for _, f := range strings.Fields(l) {
			if v, ok := strings.CutPrefix(f, key+"="); ok {
				return v
			}
		}
	}
	return ""
}

// A restart on a file that has not changed takes its manifest from the
// cache without reading the file: the file is given other bytes with the
// same size, inode and time, and the restarted server still announces the
// hashes of the first. A file whose time changed is hashed again.
func TestIDMServer_CacheRestart(t *testing.T) {
	path := testData(t, 500_000)
	cache := filepath.Join(t.TempDir(), "cache")
	first := serve(t, path, "--cache-dir", cache)
	sum := logged(first, "hashed file", "sha256")
	data, _ := os.ReadFile(path)
	if want := sha256.Sum256(data); sum != hex.EncodeToString(want[:]) {
		t.Fatalf("first start logged sha256 %q, want the file's; log:\n%s", sum, first)
	}
	fi, _ := os.Stat(path)
	other := bytes.Repeat([]byte{'x'}, len(data))
	if err := os.WriteFile(path, other, 0o644); err != nil {
		t.Fatal(err)
	}
	os.Chtimes(path, fi.ModTime(), fi.ModTime())
	second := serve(t, path, "--cache-dir", cache)
	if got := logged(second, "manifest from cache", "sha256"); got != sum {
		t.Fatalf("restart logged sha256 %q from the cache, want the first's %q; log:\n%s", got, sum, second)
	}
	later := fi.ModTime().Add(time.Second)
	os.Chtimes(path, later, later)
	third := serve(t, path, "--cache-dir", cache)
	want := sha256.Sum256(other)
	if got := logged(third, "hashed file", "sha256"); got != hex.EncodeToString(want[:]) {
		t.Fatalf("after a change of time, sha256 %q, want the new bytes' hashed; log:\n%s", got, third)
	}
	// --no-cache hashes every time.
	if log := serve(t, path, "--no-cache"); logged(log, "hashed file", "sha256") == "" {
		t.Errorf("--no-cache did not hash the file; log:\n%s", log)
	}
}

// A cache directory the user names that others may write to is refused
// in one line; the default one is only warned about, and the servers
// start.
func TestIDMServer_CacheDirRefused(t *testing.T) {
	path := testData(t, 1000)
	shared := filepath.Join(t.TempDir(), "shared")
	os.Mkdir(shared, 0o777)
	os.Chmod(shared, 0o777)
	port := strconv.Itoa(freePorts(t, 1)[0])
	_, stderr, code := runBinary(t, "-i", "1", "-n", "1", "-f", path, "--bind", "127.0.0.1", "-p", port, "--cache-dir", shared)
	var errs []string
	for _, l := range strings.Split(strings.TrimSpace(stderr), "\n") {
		if !strings.Contains(l, "level=") {
			errs = append(errs, l)
		}
	}
	if code != 1 || len(errs) != 1 || !strings.Contains(errs[0], "--cache-dir") || !strings.Contains(errs[0], "private") {
		t.Errorf("exit %d, stderr %q; want 1 and one line saying the directory must be private", code, stderr)
	}

	home := t.TempDir()
	os.Mkdir(filepath.Join(home, "idm-server"), 0o777)
	os.Chmod(filepath.Join(home, "idm-server"), 0o777)
	t.Setenv("XDG_CACHE_HOME", home)
	log := serve(t, path)
	if !strings.Contains(log, "no manifest cache") || logged(log, "hashed file", "sha256") == "" {
		t.Errorf("a shared default cache directory: want a warning and the file hashed; log:\n%s", log)
	}
}

func TestParseCache(t *testing.T) {
	t.Setenv("XDG_CACHE_HOME", "/somewhere")
	for _, tt := range []struct {
		dir       string
		given     bool
		off       bool
		want      cacheConfig
		wantError bool
	}{
		{"", false, false, cacheConfig{dir: "/somewhere/idm-server"}, false},
		{"/mine", true, false, cacheConfig{dir: "/mine", explicit: true}, false},
		{"", true, false, cacheConfig{}, false},
		{"", false, true, cacheConfig{}, false},
		{"", true, true, cacheConfig{}, false},
		{"/mine", true, true, cacheConfig{}, true},
	} {
		got, err := parseCache(tt.dir, tt.given, tt.off)
		if (err != nil) != tt.wantError || got != tt.want {
			t.Errorf("parseCache(%q, %v, %v) = %+v, %v; want %+v, error %v", tt.dir, tt.given, tt.off, got, err, tt.want, tt.wantError)
		}
	}
}
