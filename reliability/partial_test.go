package reliability

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/idmproject/idm/daemon/api"
	"github.com/idmproject/idm/internal/proctest"
)

// A partial file damaged, cut short or replaced while its job is paused:
// the real idmd notices when the job is resumed, writes nowhere else, and
// finishes with the right bytes, fetching again only what it must.
func TestPartialFile_ChangedWhilePaused(t *testing.T) {
	for _, tc := range []struct {
		name   string
		damage func(t *testing.T, part string, size int)
	}{
		{"4 KiB overwritten", func(t *testing.T, part string, size int) {
			f, err := os.OpenFile(part, os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if _, err := f.WriteAt(bytes.Repeat([]byte{0xEE}, 4096), int64(size/4)); err != nil {
				t.Fatal(err)
			}
		}},
		{"truncated to a third", func(t *testing.T, part string, size int) {
			if err := os.Truncate(part, int64(size/3)); err != nil {
				t.Fatal(err)
			}
		}},
		{"replaced by a symlink", func(t *testing.T, part string, size int) {
			if err := os.Remove(part); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(precious(t), part); err != nil {
				t.Fatal(err)
			}
		}},
		{"deleted", func(t *testing.T, part string, size int) {
			if err := os.Remove(part); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			size := pick(8, 64) << 20
			file, want := proctest.Sample(t, size, 80)
			srv := proctest.StartServers(t, file, 2, pick("2M", "16M"))
			d := proctest.NewDaemon(t)
			d.Start()
			out := t.TempDir()
			id := d.Add(out, srv)
			ids := strconv.FormatUint(id, 10)
			d.WaitVerified(id, 0.5)
			if r := d.Idmctl("pause", ids); r.Code != 0 {
				t.Fatalf("pause: exit %d: %s", r.Code, r.Stderr)
			}
			tc.damage(t, onlyPartial(t, out), size)
			if r := d.Idmctl("resume", ids); r.Code != 0 {
				t.Fatalf("resume: exit %d: %s", r.Code, r.Stderr)
			}
			if r := d.Idmctl("wait", ids); r.Code != 0 {
				t.Fatalf("wait: exit %d: %s\n%s", r.Code, r.Stderr, d.Logs.String())
			}
			j := d.Job(id)
			if j.State != api.StateCompleted {
				t.Fatalf("job %s: %s", j.State, j.LastError)
			}
			got, err := os.ReadFile(j.Path)
			if err != nil || !bytes.Equal(got, want) {
				t.Fatalf("the finished file differs (%v)", err)
			}
			if f := j.Progress.Fetched; f > 2*int64(size) {
				t.Errorf("fetched %d bytes for a file of %d", f, size)
			}
		})
	}
}

// precious writes a file a symlink may point to, beside the test's
// output directories, and returns its path.
func precious(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "precious")
	if err := os.WriteFile(p, []byte("precious"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if b, _ := os.ReadFile(p); string(b) != "precious" {
			t.Errorf("the symlink's target %s was written: %d bytes", p, len(b))
		}
	})
	return p
}

// onlyPartial returns the one partial file in dir.
func onlyPartial(t *testing.T, dir string) string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var parts []string
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".idmpart") {
			parts = append(parts, filepath.Join(dir, e.Name()))
		}
	}
	if len(parts) != 1 {
		t.Fatalf("%s holds partial files %v, want one", dir, parts)
	}
	return parts[0]
}
