package reliability

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.etcd.io/bbolt"

	"github.com/idmproject/idm/daemon/api"
	"github.com/idmproject/idm/internal/proctest"
	"github.com/idmproject/idm/store"
)

// writeState makes the state database dir/idmd.db with n jobs of sources
// into out, each of a 4 MiB file in 64 segments with their hashes, every
// third one completed and the others paused, so that an idmd that opens
// it has nothing to download. It returns the file's path.
func writeState(t *testing.T, dir string, n int, sources []string, out string) string {
	t.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "idmd.db")
	db, err := store.Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	hashes := make([]byte, 64*32)
	for i := range n {
		r := &store.Record{Sources: sources, Dir: out, State: api.StatePaused}
		var h []byte
		if i%3 == 0 {
			r.State = api.StateCompleted
			r.Size, r.SegmentSize, h = 4<<20, 64<<10, hashes
		}
		if err := db.Create(r, h); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.MarkClean(); err != nil {
		t.Fatal(err)
	}
	return path
}

// pagesInUse reads how many pages of the database file at path bbolt
// uses: the page count in its meta pages (a 16-byte page header, then 40
// bytes into the meta), the larger of the two. The file is longer: bbolt
// grows it ahead of need.
func pagesInUse(t *testing.T, path string) int64 {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	ps := os.Getpagesize()
	return int64(max(binary.NativeEndian.Uint64(b[16+40:]), binary.NativeEndian.Uint64(b[ps+16+40:])))
}

// breakRecord puts garbage in place of job id's record, with bbolt
// directly.
func breakRecord(t *testing.T, path string, id uint64) {
	t.Helper()
	b, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	err = b.Update(func(tx *bbolt.Tx) error {
		return tx.Bucket([]byte("jobs")).Put(binary.BigEndian.AppendUint64(nil, id), []byte(`{"id":`))
	})
	if err != nil {
		t.Fatal(err)
	}
}

// idmd runs the idmd binary with args and waits for it.
func idmd(args ...string) proctest.Result {
	return proctest.Run(exec.Command(proctest.Bin("idmd"), args...))
}

// runIdmd starts idmd run on stateDir, expecting it to refuse at once;
// should it start, it is killed when the test ends.
func runIdmd(t *testing.T, stateDir string) proctest.Result {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "idmd.sock")
	cmd := exec.Command(proctest.Bin("idmd"), "run", "--socket", sock, "--state-dir", stateDir, "--system=false")
	done := make(chan proctest.Result, 1)
	go func() { done <- proctest.Run(cmd) }()
	select {
	case r := <-done:
		return r
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		<-done
		t.Fatal("idmd ran on a damaged database")
		return proctest.Result{}
	}
}

// pageDamage overwrites page p of the file with garbage.
func pageDamage(p int64, seed uint64) func(t *testing.T, path string) {
	return func(t *testing.T, path string) {
		ps := int64(os.Getpagesize())
		b := make([]byte, ps)
		rand.NewChaCha8([32]byte{byte(seed), byte(p)}).Read(b)
		overwrite(t, path, p*ps, b)
	}
}

// bitFlip flips one bit of the file, chosen by seed.
func bitFlip(seed uint64) func(t *testing.T, path string) {
	return func(t *testing.T, path string) {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		r := rand.New(rand.NewPCG(seed, 1))
		off := r.Int64N(min(fi.Size(), pagesInUse(t, path)*int64(os.Getpagesize())))
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		overwrite(t, path, off, []byte{b[off] ^ 1<<r.IntN(8)})
	}
}

func overwrite(t *testing.T, path string, off int64, b []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

func truncate(frac float64) func(t *testing.T, path string) {
	return func(t *testing.T, path string) {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Truncate(path, int64(float64(fi.Size())*frac)); err != nil {
			t.Fatal(err)
		}
	}
}

// TestDatabase_Damaged breaks the state database in many ways and runs
// the real idmd and idmd check on it. Neither may crash or write to it;
// idmd check says sound (exit 0) or damaged (exit 1); when it finds the
// file itself damaged, idmd run refuses it with exit 1 and one line that
// names the file and what to do. The long form damages every page in
// turn and flips many bits.
func TestDatabase_Damaged(t *testing.T) {
	type damage struct {
		name   string
		break_ func(t *testing.T, path string)
		refuse bool // idmd must refuse the file, whatever the page layout
	}
	damages := []damage{
		{"truncated to 0 bytes", truncate(0), true},
		{"truncated to half", truncate(0.5), true},
		{"truncated to a page", func(t *testing.T, path string) { os.Truncate(path, int64(os.Getpagesize())) }, true},
		{"garbage over the meta pages", func(t *testing.T, path string) {
			pageDamage(0, 1)(t, path)
			pageDamage(1, 1)(t, path)
		}, true},
		{"garbage over the data pages", func(t *testing.T, path string) {
			fi, _ := os.Stat(path)
			for p := int64(2); p < fi.Size()/int64(os.Getpagesize()); p++ {
				pageDamage(p, 2)(t, path)
			}
		}, true},
	}
	// The pages of a database like the ones below, 2 to the last in use:
	// 0 and 1 are the meta pages, and bbolt falls back on one when the
	// other is damaged.
	pages := pagesInUse(t, writeState(t, t.TempDir(), 50, []string{"idm://127.0.0.1:9"}, t.TempDir()))
	for p := range min(pages-2, int64(pick(6, 1000))) {
		damages = append(damages, damage{fmt.Sprintf("garbage over page %d", p+2), pageDamage(p+2, 3), false})
	}
	for seed := range pick(10, 300) {
		damages = append(damages, damage{fmt.Sprintf("bit flip %d", seed), bitFlip(uint64(seed)), false})
	}

	var sound, badJobs, refused int
	for _, dm := range damages {
		t.Run(dm.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "state")
			path := writeState(t, dir, 50, []string{"idm://127.0.0.1:9"}, t.TempDir())
			dm.break_(t, path)
			before, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}

			c := idmd("check", "--state-dir", dir)
			if c.Code != 0 && c.Code != 1 {
				t.Fatalf("idmd check: exit %d\n%s%s", c.Code, c.Stdout, c.Stderr)
			}
			if c.Code == 0 && (dm.refuse || !strings.Contains(c.Stdout, ": sound, ")) {
				t.Fatalf("idmd check says sound:\n%s", c.Stdout)
			}
			if c.Code == 1 && !strings.Contains(c.Stdout, path+": damaged: ") {
				t.Fatalf("idmd check: exit 1 without saying damaged:\n%s%s", c.Stdout, c.Stderr)
			}
			unchanged(t, path, before)
			switch {
			case c.Code == 0:
				sound++
				return
			case !strings.Contains(c.Stdout, "idmd refuses this file"):
				badJobs++
				return // idmd runs without those jobs
			}
			refused++

			r := runIdmd(t, dir)
			lines := proctest.Lines(r.Stderr)
			if r.Code != 1 || len(lines) != 1 {
				t.Fatalf("idmd run: exit %d, %d lines; want 1 and one line:\n%s", r.Code, len(lines), r.Stderr)
			}
			for _, want := range []string{path, "damaged", "idmd check --state-dir " + dir, "move the file aside"} {
				if !strings.Contains(lines[0], want) {
					t.Errorf("idmd run's line does not say %q:\n%s", want, lines[0])
				}
			}
			unchanged(t, path, before)
		})
	}
	t.Logf("%d damaged files: %d refused as damaged, %d with jobs that cannot be read, %d sound", len(damages), refused, badJobs, sound)
}

// unchanged checks that the file at path is still there and holds before.
func unchanged(t *testing.T, path string, before []byte) {
	t.Helper()
	after, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("the damaged file: %v", err)
	}
	if !bytes.Equal(before, after) {
		t.Fatal("the damaged file was written to")
	}
}

// TestDatabase_CheckSound runs idmd check on a sound database, and again
// while idmd has it open.
func TestDatabase_CheckSound(t *testing.T) {
	d := proctest.NewDaemon(t)
	path := writeState(t, d.StateDir, 12, []string{"idm://127.0.0.1:9"}, t.TempDir())
	c := idmd("check", "--state-dir", d.StateDir)
	if want := fmt.Sprintf("idmd check: %s: sound, 12 jobs (8 unfinished)\n", path); c.Code != 0 || c.Stdout != want {
		t.Errorf("idmd check: exit %d\n%s%s\nwant exit 0 and %q", c.Code, c.Stdout, c.Stderr, want)
	}

	d.Start()
	start := time.Now()
	c = idmd("check", "--state-dir", d.StateDir)
	if c.Code != 1 || !strings.Contains(c.Stderr, "idmd is running") || !strings.Contains(c.Stderr, "stop it first") {
		t.Errorf("idmd check beside idmd: exit %d\n%s%s", c.Code, c.Stdout, c.Stderr)
	}
	t.Logf("idmd check beside a running idmd answered in %v", time.Since(start))
}

// TestDatabase_BadRecord gives idmd a database where one job's record is
// garbage: idmd logs it once, runs the other job to completion, and
// idmctl rm removes the bad one.
func TestDatabase_BadRecord(t *testing.T) {
	file, want := proctest.Sample(t, pick(2<<20, 64<<20), 8)
	srv := proctest.StartServers(t, file, 3, "")
	d := proctest.NewDaemon(t)
	out := t.TempDir()
	path := writeState(t, d.StateDir, 2, srv.Sources(), out)
	// Job 1 is completed by writeState: queue job 2, and break job 1.
	db, err := store.Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	r, err := db.Get(2)
	if err != nil {
		t.Fatal(err)
	}
	r.State = api.StateQueued
	if err := db.Put(r); err != nil {
		t.Fatal(err)
	}
	db.Close()
	breakRecord(t, path, 1)

	d.Start()
	proctest.WaitFor(t, "job 2 to complete", 2*time.Minute, func() bool {
		j, err := d.Client().Job(t.Context(), 2)
		return err == nil && j.State == api.StateCompleted
	})
	proctest.SameFile(t, out, want)
	if n := strings.Count(d.Logs.String(), "record cannot be read, skipped"); n != 1 || !strings.Contains(d.Logs.String(), "job=1 ") {
		t.Errorf("idmd logged the bad record %d times, want once, naming job 1:\n%s", n, d.Logs.String())
	}
	if r := d.Idmctl("ls"); r.Code != 0 {
		t.Errorf("idmctl ls: exit %d\n%s", r.Code, r.Stderr)
	}
	if r := d.Idmctl("rm", "1"); r.Code != 0 {
		t.Errorf("idmctl rm of the bad job: exit %d\n%s", r.Code, r.Stderr)
	}
	d.Stop()
	if c := idmd("check", "--state-dir", d.StateDir); c.Code != 0 {
		t.Errorf("idmd check after rm: exit %d\n%s%s", c.Code, c.Stdout, c.Stderr)
	}
}
