package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.etcd.io/bbolt"
)

// filledDB writes a database of n jobs, each with segment hashes, deletes
// every third one so that the file has free pages, closes it and returns
// its path.
func filledDB(t testing.TB, n int) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "idmd.db")
	db, err := Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		r := testRecord()
		r.Name = fmt.Sprintf("file%d.iso", i)
		if err := db.Create(r, testHashes(10)); err != nil {
			t.Fatal(err)
		}
	}
	for id := uint64(3); id <= uint64(n); id += 3 {
		if err := db.Delete(id); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

// fileMeta is what a test needs of a closed database's current meta page.
type fileMeta struct {
	pageSize       int64
	root, freelist uint64
	pages          uint64 // the high-water mark: pages in use or free
}

// readFileMeta reads the meta page with the higher transaction ID. It
// knows bbolt's layout: a 16-byte page header, then magic, version, page
// size, flags, root bucket (page, sequence), freelist page, page count
// and transaction ID.
func readFileMeta(t testing.TB, path string) fileMeta {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	ps := int64(os.Getpagesize())
	var best fileMeta
	var bestTx uint64
	for _, off := range []int64{0, ps} {
		m := b[off+16:]
		if binary.NativeEndian.Uint32(m) != 0xED0CDAED {
			continue
		}
		if tx := binary.NativeEndian.Uint64(m[48:]); tx >= bestTx {
			bestTx = tx
			best = fileMeta{
				pageSize: int64(binary.NativeEndian.Uint32(m[8:])),
				root:     binary.NativeEndian.Uint64(m[16:]),
				freelist: binary.NativeEndian.Uint64(m[32:]),
				pages:    binary.NativeEndian.Uint64(m[40:]),
			}
		}
	}
	if best.pageSize == 0 {
		t.Fatal("no meta page")
	}
	return best
}

// jobsRoot returns the page number of the jobs bucket's root page, found
// in the root bucket's page, which holds the four top-level buckets.
func jobsRoot(t testing.TB, path string) uint64 {
	t.Helper()
	m := readFileMeta(t, path)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	p := b[int64(m.root)*m.pageSize:]
	count := int(binary.NativeEndian.Uint16(p[10:]))
	for i := range count {
		e := p[16+16*i:]
		pos, ksize := binary.NativeEndian.Uint32(e[4:]), binary.NativeEndian.Uint32(e[8:])
		k := e[pos : pos+ksize]
		if string(k) == "jobs" {
			root := binary.NativeEndian.Uint64(e[pos+ksize:])
			if root == 0 {
				t.Fatal("the jobs bucket is inline; the test needs more jobs")
			}
			return root
		}
	}
	t.Fatal("no jobs bucket in the root page")
	return 0
}

// writeAt overwrites the file at path from off with b.
func writeAt(t testing.TB, path string, off int64, b []byte) {
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

func garbage(n int, seed uint64) []byte {
	b := make([]byte, n)
	rand.NewChaCha8([32]byte{byte(seed)}).Read(b)
	return b
}

// damages are the ways a test breaks a database file.
var damages = []struct {
	name   string
	damage func(t *testing.T, path string)
	want   string // in the error
}{
	{"garbage over the data pages", func(t *testing.T, path string) {
		fi, _ := os.Stat(path)
		ps := int64(os.Getpagesize())
		writeAt(t, path, 2*ps, garbage(int(fi.Size()-2*ps), 1))
	}, "page"},
	{"garbage over the freelist page", func(t *testing.T, path string) {
		m := readFileMeta(t, path)
		writeAt(t, path, int64(m.freelist)*m.pageSize, garbage(int(m.pageSize), 2))
	}, "page"},
	{"garbage over both meta pages", func(t *testing.T, path string) {
		writeAt(t, path, 0, garbage(2*os.Getpagesize(), 3))
	}, "meta"},
	{"truncated to 0 bytes", func(t *testing.T, path string) {
		if err := os.Truncate(path, 0); err != nil {
			t.Fatal(err)
		}
	}, "empty"},
	{"truncated to one page", func(t *testing.T, path string) {
		if err := os.Truncate(path, int64(os.Getpagesize())); err != nil {
			t.Fatal(err)
		}
	}, "bytes"},
	{"truncated to half", func(t *testing.T, path string) {
		fi, _ := os.Stat(path)
		ps := int64(os.Getpagesize())
		if err := os.Truncate(path, fi.Size()/2/ps*ps); err != nil {
			t.Fatal(err)
		}
	}, "cut short"},
	{"a free page past the end of the file", func(t *testing.T, path string) {
		// bbolt's own check does not look at free pages past the
		// high-water mark, but a later write would use them.
		m := readFileMeta(t, path)
		b, _ := os.ReadFile(path)
		p := b[int64(m.freelist)*m.pageSize:]
		count := binary.NativeEndian.Uint16(p[10:])
		if count == 0 || count == 0xffff {
			t.Fatalf("the freelist holds %d pages; the test needs a few", count)
		}
		writeAt(t, path, int64(m.freelist)*m.pageSize+10, binary.NativeEndian.AppendUint16(nil, count+1))
		writeAt(t, path, int64(m.freelist)*m.pageSize+16+8*int64(count), binary.NativeEndian.AppendUint64(nil, m.pages+100))
	}, "free page"},
	{"a page number past the end of the file", func(t *testing.T, path string) {
		m := readFileMeta(t, path)
		root := jobsRoot(t, path)
		off := int64(root) * m.pageSize
		b, _ := os.ReadFile(path)
		if binary.NativeEndian.Uint16(b[off+8:]) != 0x01 {
			t.Fatal("the jobs bucket's root is not a branch page; the test needs more jobs")
		}
		// The first branch element's child page.
		writeAt(t, path, off+16+8, binary.NativeEndian.AppendUint64(nil, m.pages+3))
	}, "page"},
	{"a branch page that is its own child", func(t *testing.T, path string) {
		m := readFileMeta(t, path)
		root := jobsRoot(t, path)
		writeAt(t, path, int64(root)*m.pageSize+16+8, binary.NativeEndian.AppendUint64(nil, root))
	}, "page"},
	{"a key outside its page", func(t *testing.T, path string) {
		m := readFileMeta(t, path)
		// The first element of the root bucket's page, a leaf: its
		// key's offset.
		writeAt(t, path, int64(m.root)*m.pageSize+16+4, binary.NativeEndian.AppendUint32(nil, 0x7fff0000))
	}, "outside"},
}

// unchanged checks that the file at path is still there and holds before.
func unchanged(t *testing.T, path string, before []byte) {
	t.Helper()
	after, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("the damaged file: %v", err)
	}
	if !bytes.Equal(before, after) {
		t.Error("the damaged file was written to")
	}
}

func TestOpen_Damaged(t *testing.T) {
	for _, tc := range damages {
		t.Run(tc.name, func(t *testing.T) {
			path := filledDB(t, 60)
			tc.damage(t, path)
			before, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			db, err := Open(path, nil)
			if err == nil {
				db.Close()
				t.Fatal("Open of a damaged database succeeded")
			}
			if !errors.Is(err, ErrDamaged) {
				t.Errorf("Open: %v, want ErrDamaged", err)
			}
			var de *DamagedError
			if !errors.As(err, &de) || de.Path != path {
				t.Errorf("Open: %v does not carry the path %s", err, path)
			}
			if msg := err.Error(); !strings.Contains(msg, path) || !strings.Contains(msg, tc.want) || strings.Contains(msg, "\n") {
				t.Errorf("Open: %q: want one line naming the file and saying %q", msg, tc.want)
			}
			t.Logf("Open: %v", err)
			unchanged(t, path, before)
		})
	}
}

func TestCheck_Damaged(t *testing.T) {
	for _, tc := range damages {
		t.Run(tc.name, func(t *testing.T) {
			path := filledDB(t, 60)
			tc.damage(t, path)
			before, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			rep, err := Check(path, nil)
			if err != nil {
				t.Fatal(err)
			}
			if rep.Sound() || rep.Damage == nil || len(rep.Problems) == 0 {
				t.Errorf("Check found damage %v and problems %v, want both", rep.Damage, rep.Problems)
			}
			unchanged(t, path, before)
		})
	}
}

func TestCheck_Sound(t *testing.T) {
	path := filledDB(t, 60)
	before, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	past := time.Now().Add(-time.Hour).Truncate(time.Second)
	if err := os.Chtimes(path, past, past); err != nil {
		t.Fatal(err)
	}
	rep, err := Check(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Sound() || rep.Damage != nil {
		t.Errorf("Check of a sound database: damage %v, problems %v", rep.Damage, rep.Problems)
	}
	if len(rep.Records) != 40 {
		t.Errorf("Check read %d records, want 40", len(rep.Records))
	}
	if rep.Path != path {
		t.Errorf("report's Path = %q, want %q", rep.Path, path)
	}
	unchanged(t, path, before)
	if fi, err := os.Stat(path); err != nil || !fi.ModTime().Equal(past) {
		t.Errorf("Check changed the file's mtime: %v", err)
	}
}

func TestCheck_Missing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "idmd.db")
	if _, err := Check(path, nil); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Check of a missing file: %v, want ErrNotExist", err)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Check created the file: %v", err)
	}
}

func TestCheck_Locked(t *testing.T) {
	_, path := openTestDB(t)
	if _, err := Check(path, &Options{Timeout: 100 * time.Millisecond}); !errors.Is(err, ErrLocked) {
		t.Errorf("Check of an open database: %v, want ErrLocked", err)
	}
}

func TestOpen_EmptyFileNotRecreated(t *testing.T) {
	path := filepath.Join(t.TempDir(), "idmd.db")
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if db, err := Open(path, nil); err == nil {
		db.Close()
		t.Fatal("Open of an empty file succeeded")
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Size() != 0 {
		t.Errorf("the empty file after Open: %v, %v", fi, err)
	}
}

func TestOpen_NewLeavesOnlyTheFile(t *testing.T) {
	dir := t.TempDir()
	db, err := Open(filepath.Join(dir, "idmd.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 1 || ents[0].Name() != "idmd.db" {
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		t.Errorf("the state directory holds %v, want only idmd.db", names)
	}
}

// putRaw stores v under job id's key in bucket, with bbolt directly.
func putRaw(t *testing.T, path string, bucket []byte, id uint64, v []byte) {
	t.Helper()
	b, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := b.Update(func(tx *bbolt.Tx) error { return tx.Bucket(bucket).Put(key(id), v) }); err != nil {
		t.Fatal(err)
	}
}

// rawValue reads what bucket holds under job id's key.
func rawValue(t *testing.T, db *DB, bucket []byte, id uint64) []byte {
	t.Helper()
	var v []byte
	if err := db.bolt.View(func(tx *bbolt.Tx) error {
		v = bytes.Clone(tx.Bucket(bucket).Get(key(id)))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return v
}

// badRecords are the ways a test breaks one job of a sound file.
var badRecords = []struct {
	name   string
	bucket []byte
	value  []byte
	want   string // in the error
}{
	{"JSON cut short", jobsBucket, []byte(`{"id":2,"sources":["idm://127.0.0.1:9001"],"dir":"/tmp`), "unexpected end"},
	{"garbage", jobsBucket, garbage(300, 4), "invalid character"},
	{"content hash not hex", jobsBucket, []byte(`{"id":2,"sources":["idm://127.0.0.1:9001"],"size":1000,"segment_size":100,"content":"zz"}`), "content hash"},
	{"another job's ID", jobsBucket, []byte(`{"id":9,"sources":["idm://127.0.0.1:9001"],"size":1000,"segment_size":100}`), "ID 9"},
	{"bitmap of the wrong length", bitmapsBucket, []byte{0, 0, 0, 3, 0}, "bitmap"},
	{"bitmap cut short", bitmapsBucket, []byte{0, 0}, "bitmap"},
	{"hashes of the wrong length", hashesBucket, make([]byte, 3*32), "hashes"},
}

func TestDB_List_BadRecord(t *testing.T) {
	for _, tc := range badRecords {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "idmd.db")
			db := reopen(t, path)
			for range 3 {
				if err := db.Create(testRecord(), testHashes(10)); err != nil {
					t.Fatal(err)
				}
			}
			db.Close()
			putRaw(t, path, tc.bucket, 2, tc.value)

			db = reopen(t, path)
			recs, bad, err := db.List()
			if err != nil {
				t.Fatalf("List: %v", err)
			}
			if len(recs) != 2 || recs[0].ID != 1 || recs[1].ID != 3 {
				t.Errorf("List returned %d records, want jobs 1 and 3", len(recs))
			}
			if len(bad) != 1 || bad[0].ID != 2 || !errors.Is(bad[0], ErrBadRecord) {
				t.Fatalf("List reported %v, want job 2", bad)
			}
			if msg := bad[0].Error(); !strings.Contains(msg, "job 2") || !strings.Contains(msg, tc.want) {
				t.Errorf("bad record's error %q does not say job 2 and %q", msg, tc.want)
			}
			if _, err := db.Get(2); !errors.Is(err, ErrBadRecord) || !strings.Contains(err.Error(), "cannot be read") {
				t.Errorf("Get of the bad record: %v, want ErrBadRecord", err)
			}
			if _, err := db.Bitmap(2); !errors.Is(err, ErrBadRecord) {
				t.Errorf("Bitmap of the bad record: %v, want ErrBadRecord", err)
			}
			r := testRecord()
			r.ID = 2
			if err := db.Put(r); err == nil {
				t.Error("Put over the bad record succeeded")
			}
			if v := rawValue(t, db, tc.bucket, 2); !bytes.Equal(v, tc.value) {
				t.Error("the bad record was changed")
			}
			if _, err := db.Get(1); err != nil {
				t.Errorf("Get of a good record: %v", err)
			}

			// Check reports it too, and nothing else.
			db.Close()
			rep, err := Check(path, nil)
			if err != nil {
				t.Fatal(err)
			}
			if rep.Damage != nil || len(rep.Problems) != 1 || !errors.Is(rep.Problems[0], ErrBadRecord) || len(rep.Records) != 2 {
				t.Errorf("Check: damage %v, problems %v, %d records; want job 2 reported and 2 records", rep.Damage, rep.Problems, len(rep.Records))
			}

			// Delete clears it.
			db = reopen(t, path)
			if err := db.Delete(2); err != nil {
				t.Fatalf("Delete of the bad record: %v", err)
			}
			recs, bad, err = db.List()
			if err != nil || len(recs) != 2 || len(bad) != 0 {
				t.Errorf("List after Delete: %d records, bad %v, %v", len(recs), bad, err)
			}
		})
	}
}

func TestCheck_Orphans(t *testing.T) {
	path := filepath.Join(t.TempDir(), "idmd.db")
	db := reopen(t, path)
	if err := db.Create(testRecord(), testHashes(10)); err != nil {
		t.Fatal(err)
	}
	db.Close()
	putRaw(t, path, bitmapsBucket, 7, []byte{0, 0, 0, 0})
	putRaw(t, path, hashesBucket, 8, testHashes(1))
	rep, err := Check(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Damage != nil || len(rep.Problems) != 2 || len(rep.Records) != 1 {
		t.Fatalf("Check: damage %v, problems %v, %d records; want the two orphans", rep.Damage, rep.Problems, len(rep.Records))
	}
	for i, want := range []string{"job 7", "job 8"} {
		if !strings.Contains(rep.Problems[i].Error(), want) {
			t.Errorf("problem %q does not name %s", rep.Problems[i], want)
		}
	}
	// Open does not mind them.
	reopen(t, path)
}

// BenchmarkOpen_10000 measures what opening a database of 10,000 jobs of
// 256 segments each costs: Open as a whole, the read-only check it makes
// before writing (inspect), what Open did before it made that check
// (bbolt's Open and prepare), Check, and the daemon's first List.
func BenchmarkOpen_10000(b *testing.B) {
	path := filepath.Join(b.TempDir(), "idmd.db")
	db, err := Open(path, nil)
	if err != nil {
		b.Fatal(err)
	}
	db.bolt.NoSync = true
	for i := range 10000 {
		r := testRecord()
		r.Name = fmt.Sprintf("file%d.iso", i)
		r.Size, r.SegmentSize = 256<<20, 1<<20
		if err := db.Create(r, testHashes(256)); err != nil {
			b.Fatal(err)
		}
	}
	db.bolt.NoSync = false
	if err := db.Close(); err != nil {
		b.Fatal(err)
	}
	if fi, err := os.Stat(path); err == nil {
		b.Logf("database of 10,000 jobs: %d bytes", fi.Size())
	}
	b.Run("Open", func(b *testing.B) {
		for b.Loop() {
			db, err := Open(path, nil)
			if err != nil {
				b.Fatal(err)
			}
			db.Close()
		}
	})
	b.Run("inspect", func(b *testing.B) {
		for b.Loop() {
			if rep, err := inspect(path, time.Second, false); err != nil || rep.Damage != nil {
				b.Fatal(err, rep.Damage)
			}
		}
	})
	b.Run("bbolt.Open+prepare", func(b *testing.B) {
		for b.Loop() {
			bb, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: time.Second})
			if err != nil {
				b.Fatal(err)
			}
			if err := bb.Update((&DB{bolt: bb}).prepare); err != nil {
				b.Fatal(err)
			}
			bb.Close()
		}
	})
	b.Run("Check", func(b *testing.B) {
		for b.Loop() {
			if rep, err := Check(path, nil); err != nil || !rep.Sound() || len(rep.Records) != 10000 {
				b.Fatal(err)
			}
		}
	})
	b.Run("List", func(b *testing.B) {
		db, err := Open(path, nil)
		if err != nil {
			b.Fatal(err)
		}
		defer db.Close()
		for b.Loop() {
			if rs, _, err := db.List(); err != nil || len(rs) != 10000 {
				b.Fatal(err)
			}
		}
	})
}

// TestOpen_NoBuckets opens a bbolt file without any bucket, which an
// earlier version left when it died between creating the file and its
// buckets: it is completed, not refused.
func TestOpen_NoBuckets(t *testing.T) {
	path := filepath.Join(t.TempDir(), "idmd.db")
	b, err := bbolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	b.Close()
	db := reopen(t, path)
	if !db.WasClean() {
		t.Error("WasClean() = false for a database without buckets")
	}
	if err := db.Create(testRecord(), nil); err != nil {
		t.Fatal(err)
	}
}

// FuzzCheck writes the fuzzer's bytes over a small database at the
// fuzzer's offset. Check must not crash or write to the file; when it
// finds no damage to the file itself, Open, List and Get of every job must
// not crash either.
func FuzzCheck(f *testing.F) {
	path := filledDB(f, 20)
	m := readFileMeta(f, path)
	b, err := os.ReadFile(path)
	if err != nil {
		f.Fatal(err)
	}
	seed := b[:int64(m.pages)*m.pageSize]
	f.Add(uint32(0), []byte{0})
	f.Add(uint32(m.root*uint64(m.pageSize)+16), []byte{0xff, 0xff, 0xff, 0x7f})
	f.Add(uint32(m.freelist*uint64(m.pageSize)+10), []byte{0xff, 0xff})
	f.Add(uint32(3*m.pageSize+8), []byte{1, 0})
	f.Fuzz(func(t *testing.T, off uint32, patch []byte) {
		b := bytes.Clone(seed)
		copy(b[int(off)%len(b):], patch)
		path := filepath.Join(t.TempDir(), "idmd.db")
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		rep, err := Check(path, nil)
		unchanged(t, path, b)
		if err != nil || rep.Damage != nil {
			return
		}
		db, err := Open(path, nil)
		if err != nil {
			t.Fatalf("Check found no damage, but Open: %v", err)
		}
		defer db.Close()
		recs, _, err := db.List()
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range recs {
			if _, err := db.Get(r.ID); err != nil {
				t.Errorf("Get of listed job %d: %v", r.ID, err)
			}
		}
	})
}
