package engine

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/idmproject/idm/daemon/api"
	"github.com/idmproject/idm/store"
	"github.com/idmproject/idm/transport"
)

// namedFile writes size random bytes to a file called name in a new
// temporary directory and returns its path and contents.
func namedFile(t testing.TB, name string, size int64, seed uint64) (string, []byte) {
	t.Helper()
	b := make([]byte, size)
	rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), 'n'}).Read(b)
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return path, b
}

// jobInDir creates a queued job downloading from sources into dir.
func jobInDir(t testing.TB, db *store.DB, dir string, sources []string) *store.Record {
	t.Helper()
	rec := &store.Record{Sources: sources, Dir: dir, State: api.StateQueued}
	if err := db.Create(rec, nil); err != nil {
		t.Fatal(err)
	}
	return rec
}

// partPathOf returns the path of job id's partial file as the store
// records it.
func partPathOf(t testing.TB, db *store.DB, id uint64) string {
	t.Helper()
	rec, err := db.Get(id)
	if err != nil {
		t.Fatal(err)
	}
	if rec.Part == "" {
		t.Fatalf("job %d records no partial file", id)
	}
	return filepath.Join(rec.Dir, rec.Part)
}

// dirNames lists the names in dir.
func dirNames(t testing.TB, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

// pauseAt runs tr until frac of the file is verified, then stops it as a
// pause does, so the store holds a clean flush.
func pauseAt(t *testing.T, tr *Transfer, size int64, frac float64) {
	t.Helper()
	ctx, pause := context.WithCancel(context.Background())
	wait := runTransfer(t, ctx, tr)
	waitFor(t, "part verified", time.Minute, func() bool { return float64(tr.Progress().Verified) >= frac*float64(size) })
	pause()
	if err := wait(); !errors.Is(err, context.Canceled) {
		t.Fatalf("paused Run = %v", err)
	}
}

// Two jobs of different files with the same name, into one directory, at
// the same time: each ends with its own bytes under its own name. Before,
// both wrote one partial file, and the job that finished first published
// the other's bytes.
func TestTransfer_Run_SameNameTwoJobs(t *testing.T) {
	checkLeaks(t)
	pathA, wantA := namedFile(t, "data.bin", 4<<20, 1)
	pathB, wantB := namedFile(t, "data.bin", 4<<20, 2)
	a := startServers(t, pathA, 256<<10, 4e6)
	b := startServers(t, pathB, 256<<10, 2e6)
	db := openDB(t, "")
	out := t.TempDir()
	recA := jobInDir(t, db, out, serverSources(a...))
	recB := jobInDir(t, db, out, serverSources(b...))
	trA, trB := fastTransfer(t, db, recA.ID), fastTransfer(t, db, recB.ID)
	waitA := runTransfer(t, context.Background(), trA)
	waitFor(t, "job A under way", time.Minute, func() bool { return trA.Progress().Verified > 0 })
	waitB := runTransfer(t, context.Background(), trB)
	if err := waitA(); err != nil {
		t.Fatalf("job A: %v", err)
	}
	if err := waitB(); err != nil {
		t.Fatalf("job B: %v", err)
	}
	gotA := checkResult(t, db, recA.ID, wantA)
	gotB := checkResult(t, db, recB.ID, wantB)
	if gotA.Path == gotB.Path {
		t.Fatalf("both jobs published %s", gotA.Path)
	}
	if names := dirNames(t, out); len(names) != 2 {
		t.Errorf("output directory holds %v, want the two files only", names)
	}
}

// A symlink or a file planted where a partial file might go is never
// written through or over.
func TestTransfer_Run_PlantedLinkAndFile(t *testing.T) {
	checkLeaks(t)
	out, elsewhere := t.TempDir(), t.TempDir()
	target := filepath.Join(elsewhere, "target.txt")
	if err := os.WriteFile(target, []byte("precious"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, filepath.Join(out, "link.idmpart")); err != nil {
		t.Fatal(err)
	}
	victim := filepath.Join(out, "victim.idmpart")
	if err := os.WriteFile(victim, []byte("mine"), 0o644); err != nil {
		t.Fatal(err)
	}
	db := openDB(t, "")
	for i, name := range []string{"link", "victim"} {
		path, want := namedFile(t, name, 1<<20, uint64(40+i))
		srv := startServers(t, path, 0, 0)
		rec := jobInDir(t, db, out, serverSources(srv...))
		if err := fastTransfer(t, db, rec.ID).Run(context.Background()); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		got := checkResult(t, db, rec.ID, want)
		if fi, err := os.Lstat(got.Path); err != nil || !fi.Mode().IsRegular() {
			t.Errorf("%s published as %v (%v), want a regular file", name, fi.Mode(), err)
		}
	}
	if b, _ := os.ReadFile(target); string(b) != "precious" {
		t.Errorf("the symlink's target was written: %d bytes", len(b))
	}
	if b, _ := os.ReadFile(victim); string(b) != "mine" {
		t.Errorf("a file of the user's was overwritten: %d bytes", len(b))
	}
}

// A partial file replaced by a symlink while its job is paused is not
// written through: the job starts a partial file of its own again.
func TestTransfer_Run_PartialFileReplacedByLink(t *testing.T) {
	checkLeaks(t)
	path, want := testFile(t, 4<<20, 32)
	srv := startServers(t, path, 64<<10, 2e6)
	db := openDB(t, "")
	rec := newJob(t, db, serverSources(srv...))
	pauseAt(t, fastTransfer(t, db, rec.ID), int64(len(want)), 0.3)
	part := partPathOf(t, db, rec.ID)
	target := filepath.Join(t.TempDir(), "target.txt")
	if err := os.WriteFile(target, []byte("precious"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(part); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, part); err != nil {
		t.Fatal(err)
	}
	if err := fastTransfer(t, db, rec.ID).Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := checkResult(t, db, rec.ID, want)
	if b, _ := os.ReadFile(target); string(b) != "precious" {
		t.Errorf("the symlink's target was written: %d bytes", len(b))
	}
	if fi, err := os.Lstat(got.Path); err != nil || !fi.Mode().IsRegular() {
		t.Errorf("published as %v (%v), want a regular file", fi.Mode(), err)
	}
}

// A partial file changed behind the engine's back while its job was
// paused is rechecked on resume, and only what is missing or damaged is
// fetched again. Before, the job failed at the whole-file check, and
// every resume failed the same way.
func TestTransfer_Run_PartialFileChangedWhilePaused(t *testing.T) {
	for _, tc := range []struct {
		name   string
		damage func(t *testing.T, part string, size int64)
	}{
		{"overwritten", func(t *testing.T, part string, size int64) {
			f, err := os.OpenFile(part, os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if _, err := f.WriteAt(bytes.Repeat([]byte{0xA5}, 4096), size/4); err != nil {
				t.Fatal(err)
			}
		}},
		{"truncated to a third", func(t *testing.T, part string, size int64) {
			if err := os.Truncate(part, size/3); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkLeaks(t)
			path, want := testFile(t, 4<<20, 33)
			srv := startServers(t, path, 64<<10, 2e6)
			db := openDB(t, "")
			rec := newJob(t, db, serverSources(srv...))
			pauseAt(t, fastTransfer(t, db, rec.ID), int64(len(want)), 0.5)
			tc.damage(t, partPathOf(t, db, rec.ID), int64(len(want)))
			// Resumed after a clean pause: no recheck asked for.
			if err := fastTransfer(t, db, rec.ID).Run(context.Background()); err != nil {
				t.Fatal(err)
			}
			checkResult(t, db, rec.ID, want)
		})
	}
}

// A file from an idm server of protocol version 1 carries the whole
// file's BLAKE3, which the engine checks at the end. Damage the engine
// cannot see from the file's size and times (bit rot, say) shows there,
// and the file is rechecked and exactly the bad pieces fetched again
// instead of failing.
func TestTransfer_Run_WholeFileMismatchRefetches(t *testing.T) {
	checkLeaks(t)
	const segSize = 64 << 10
	path, want := testFile(t, 4<<20, 34)
	srv := startServers(t, path, segSize, 2e6)
	db := openDB(t, "")
	rec := newJob(t, db, serverSources(srv...))
	version1 := func() *Transfer {
		tr := fastTransfer(t, db, rec.ID)
		for _, s := range tr.Job.Sources {
			s.(idmSource).Dialer.Version = 1
		}
		return tr
	}
	pauseAt(t, version1(), int64(len(want)), 0.5)
	part := partPathOf(t, db, rec.ID)
	paused, err := db.Get(rec.ID)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(part, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("rot"), 3*segSize+5); err != nil {
		t.Fatal(err)
	}
	f.Close()
	// Make the stored stamp match the damaged file, as if the change had
	// happened where no stamp shows it.
	stamp, err := stampPath(part)
	if err != nil {
		t.Fatal(err)
	}
	paused.PartStamp = stamp
	if err := db.Put(paused); err != nil {
		t.Fatal(err)
	}
	if err := version1().Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := checkResult(t, db, rec.ID, want)
	// One source, so no duplicates: what was fetched after the resume is
	// exactly what was missing and the one damaged segment.
	missing := int64(len(want)) - paused.Verified + segSize
	if again := got.Fetched - paused.Fetched; again != missing {
		t.Errorf("fetched %d bytes after the resume, want %d: the missing half and the one damaged segment", again, missing)
	}
}

// A manifest of a file far larger than any disk fails the job with the
// reason, and the engine stays whole.
func TestTransfer_Run_AbsurdSize(t *testing.T) {
	checkLeaks(t)
	path, _ := testFile(t, 1<<20, 36)
	m := &transport.Manifest{Name: "huge.bin", Size: transport.MaxSegments * transport.MaxSegmentSize,
		SegmentSize: transport.MaxSegmentSize, Segments: make([]transport.Hash, transport.MaxSegments)}
	fi, _ := os.Stat(path)
	m.ModTime = fi.ModTime()
	srv := startServer(t, path, m, 0)
	db := openDB(t, "")
	rec := newJob(t, db, serverSources(srv))
	err := fastTransfer(t, db, rec.ID).Run(context.Background())
	if err == nil {
		t.Fatal("a 64 TiB download into a temporary directory succeeded")
	}
	if !strings.Contains(err.Error(), "no space left on device") {
		t.Errorf("Run = %v, want no room", err)
	}
	if got, _ := db.Get(rec.ID); got.SegmentSize != 0 {
		t.Error("the impossible file was recorded")
	}
}

// A crash after the finished file was linked under its final name but
// before the store recorded it: the next run finds the published file,
// fetches nothing and leaves one copy. Before, it published a second
// copy, "video (1).bin".
func TestTransfer_Run_CrashAfterPublishLink(t *testing.T) {
	checkLeaks(t)
	path, want := testFile(t, 2<<20, 37)
	srv := startServers(t, path, 0, 0)
	db := openDB(t, "")
	rec := newJob(t, db, serverSources(srv...))
	if err := fastTransfer(t, db, rec.ID).Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	done := checkResult(t, db, rec.ID, want)
	// Back to the moment after the link: the partial file's name still
	// there, the store not yet told.
	if err := os.Link(done.Path, partPathOf(t, db, rec.ID)); err != nil {
		t.Fatal(err)
	}
	undone := *done
	undone.State, undone.Path, undone.Finished = api.StateDownloading, "", time.Time{}
	if err := db.Put(&undone); err != nil {
		t.Fatal(err)
	}
	sent := srv[0].BytesSent()
	tr := fastTransfer(t, db, rec.ID)
	tr.Job.Recheck = true // as after a crash
	if err := tr.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := checkResult(t, db, rec.ID, want)
	if got.Path != done.Path {
		t.Errorf("published again as %s, want the first copy %s", got.Path, done.Path)
	}
	if names := dirNames(t, done.Dir); len(names) != 1 {
		t.Errorf("output directory holds %v, want one file", names)
	}
	if again := srv[0].BytesSent() - sent; again != 0 {
		t.Errorf("%d bytes fetched again", again)
	}
}

// SanitizeName keeps a name that is safe as it is, and makes any other
// one safe to create in the output directory and to show.
func TestSanitizeName(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"video.mp4", "video.mp4"},
		{"été à Tōkyō 東京.mkv", "été à Tōkyō 東京.mkv"},
		{"../../etc/passwd", "_.._etc_passwd"},
		{"/abs/path", "_abs_path"},
		{`a\b:c`, "a_b_c"},
		{"..", "download"},
		{".", "download"},
		{"", "download"},
		{"  .hidden  ", "hidden"},
		{"trailing dots...", "trailing dots"},
		{"nul\x00byte", "nul_byte"},
		{"new\nline\r\ttab", "new_line__tab"},
		{"\x1b[31mred", "_[31mred"},
		{"del\x7fc1\u0085", "del_c1_"},
		{"invoice\u202Efdp.exe", "invoice_fdp.exe"},
		{"\u2066isolate\u2069\u200Emark\u200F", "_isolate__mark_"},
		{"zero\u200Bwidth\u200Cjoin\u200D\uFEFF", "zero_width_join__"},
		{"bad \xff utf-8", "bad _ utf-8"},
	} {
		if got := SanitizeName(tc.in); got != tc.want {
			t.Errorf("SanitizeName(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	long := SanitizeName(strings.Repeat("é", 300))
	if len(long) > 255-partReserve || !utf8.ValidString(long) {
		t.Errorf("a 600-byte name became %d bytes (valid UTF-8: %v), want at most %d", len(long), utf8.ValidString(long), 255-partReserve)
	}
}

// A crash at any step of publishing, then what a restart does: a job the
// journal was told is published is done, and a partial name a crash left
// beside its file is removed; any other goes on after a recheck. In every
// case: one copy of the file under its final name, nothing fetched again.
func TestTransfer_Run_CrashAtEveryPublishStep(t *testing.T) {
	path, want := testFile(t, 1<<20, 38)
	srv := startServers(t, path, 0, 0)
	for _, step := range []string{"synced", "linked", "dir synced", "recorded", "part removed"} {
		t.Run(step, func(t *testing.T) {
			db := openDB(t, "")
			rec := newJob(t, db, serverSources(srv...))
			testHookPublish = func(s string) bool { return s == step }
			err := fastTransfer(t, db, rec.ID).Run(context.Background())
			testHookPublish = nil
			if !errors.Is(err, errCrash) {
				t.Fatalf("Run = %v, want the simulated crash", err)
			}
			sent := srv[0].BytesSent()
			got, err := db.Get(rec.ID)
			if err != nil {
				t.Fatal(err)
			}
			if got.Path == "" {
				tr := fastTransfer(t, db, rec.ID)
				tr.Job.Recheck = true
				if err := tr.Run(context.Background()); err != nil {
					t.Fatal(err)
				}
			} else if err := RemovePart(got.Dir, got.DirID, got.Part, got.PartStamp.ID); err != nil {
				t.Fatal(err)
			}
			done := checkResult(t, db, rec.ID, want)
			if names := dirNames(t, rec.Dir); len(names) != 1 || filepath.Join(rec.Dir, names[0]) != done.Path {
				t.Fatalf("output directory holds %v, want only %s", names, filepath.Base(done.Path))
			}
			if again := srv[0].BytesSent() - sent; again != 0 {
				t.Errorf("%d bytes fetched again", again)
			}
		})
	}
}
