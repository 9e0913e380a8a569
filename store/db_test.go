package store

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"go.etcd.io/bbolt"
)

// openTestDB opens a new database in a temporary directory and closes it
// when the test ends.
func openTestDB(t testing.TB) (*DB, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "state.db")
	return reopen(t, path), path
}

// reopen opens the database at path and closes it when the test ends.
func reopen(t testing.TB, path string) *DB {
	t.Helper()
	db, err := Open(path, &Options{Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// testRecord returns a record of a 1000-byte file in 100-byte segments.
func testRecord() *Record {
	at := time.Date(2025, 11, 25, 14, 0, 0, 0, time.UTC)
	return &Record{
		Sources:     []string{"idm://127.0.0.1:9001", "idm://127.0.0.1:9002"},
		Dir:         "/tmp/downloads",
		Name:        "file.iso",
		Size:        1000,
		SegmentSize: 100,
		Content:     [32]byte{1, 2, 3, 31: 0xff},
		State:       "queued",
		Limit:       1 << 20,
		Created:     at,
		Updated:     at,
		SourceStats: []SourceStat{
			{Source: "idm://127.0.0.1:9001", Bytes: 100, Fetched: 150, Errors: 1, Corrupt: 1, LastError: "bad segment 3"},
			{Source: "idm://127.0.0.1:9002", Quarantined: true},
		},
	}
}

// testHashes returns n distinct 32-byte segment hashes.
func testHashes(n int) []byte {
	h := make([]byte, n*32)
	for i := range h {
		h[i] = byte(i)
	}
	return h
}

// normal returns a copy of r with its times in UTC and without monotonic
// readings, so that records can be compared with reflect.DeepEqual.
func normal(r *Record) *Record {
	c := *r
	for _, t := range []*time.Time{&c.Created, &c.Updated, &c.Finished} {
		*t = t.Round(0).UTC()
	}
	return &c
}

func checkRecord(t *testing.T, got, want *Record) {
	t.Helper()
	if g, w := normal(got), normal(want); !reflect.DeepEqual(g, w) {
		t.Errorf("got record\n%+v\nwant\n%+v", g, w)
	}
}

func TestDB_Open_New(t *testing.T) {
	db, path := openTestDB(t)
	if !db.WasClean() {
		t.Error("WasClean() = false for a new database")
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		t.Errorf("new database has mode %v, want 0600", fi.Mode().Perm())
	}
	rs, _, err := db.List()
	if err != nil || len(rs) != 0 {
		t.Errorf("List() = %v, %v; want no records", rs, err)
	}
}

func TestDB_Open_NotStateDatabase(t *testing.T) {
	path := filepath.Join(t.TempDir(), "other.db")
	b, err := bbolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Update(func(tx *bbolt.Tx) error {
		_, err := tx.CreateBucket([]byte("widgets"))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	b.Close()
	if db, err := Open(path, nil); err == nil {
		db.Close()
		t.Fatal("Open of a foreign bbolt file succeeded")
	}
}

func TestDB_Open_Locked(t *testing.T) {
	_, path := openTestDB(t)
	start := time.Now()
	db, err := Open(path, &Options{Timeout: 100 * time.Millisecond})
	if err == nil {
		db.Close()
		t.Fatal("second Open of an open database succeeded")
	}
	if !errors.Is(err, ErrLocked) {
		t.Errorf("second Open: %v, want ErrLocked", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("second Open took %v to fail with a 100ms timeout", d)
	}
}

func TestDB_Open_AfterClose(t *testing.T) {
	db, path := openTestDB(t)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	reopen(t, path)
}

func TestDB_Close_Twice(t *testing.T) {
	db, _ := openTestDB(t)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, _, err := db.List(); err == nil {
		t.Error("List after Close succeeded")
	}
}

func TestDB_Create(t *testing.T) {
	db, _ := openTestDB(t)
	r := testRecord()
	h := testHashes(10)
	if err := db.Create(r, h); err != nil {
		t.Fatal(err)
	}
	if r.ID != 1 {
		t.Errorf("first ID = %d, want 1", r.ID)
	}
	got, err := db.Get(r.ID)
	if err != nil {
		t.Fatal(err)
	}
	checkRecord(t, got, r)
	gotH, err := db.Hashes(r.ID)
	if err != nil || !bytes.Equal(gotH, h) {
		t.Errorf("Hashes() = %x, %v; want %x", gotH, err, h)
	}
	bm, err := db.Bitmap(r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if bm.Len() != 10 || bm.Count() != 0 {
		t.Errorf("new job's bitmap has Len %d, Count %d; want 10, 0", bm.Len(), bm.Count())
	}
}

func TestDB_Create_SetsTimes(t *testing.T) {
	db, _ := openTestDB(t)
	r := testRecord()
	r.Created, r.Updated = time.Time{}, time.Time{}
	before := time.Now()
	if err := db.Create(r, nil); err != nil {
		t.Fatal(err)
	}
	if r.Created.Before(before) || r.Updated.Before(before) {
		t.Errorf("Created %v, Updated %v; want at least %v", r.Created, r.Updated, before)
	}
	got, _ := db.Get(r.ID)
	if !got.Created.Equal(r.Created) || !got.Updated.Equal(r.Updated) {
		t.Errorf("stored Created %v, Updated %v; want %v, %v", got.Created, got.Updated, r.Created, r.Updated)
	}
}

func TestDB_Create_NoManifest(t *testing.T) {
	db, _ := openTestDB(t)
	r := &Record{Sources: []string{"idm://127.0.0.1:9001"}, State: "queued"}
	if err := db.Create(r, nil); err != nil {
		t.Fatal(err)
	}
	h, err := db.Hashes(r.ID)
	if err != nil || h != nil {
		t.Errorf("Hashes() = %x, %v; want nil, nil", h, err)
	}
	bm, err := db.Bitmap(r.ID)
	if err != nil || bm.Len() != 0 {
		t.Errorf("Bitmap() = %v, %v; want an empty bitmap", bm, err)
	}
}

func TestDB_Create_Invalid(t *testing.T) {
	db, _ := openTestDB(t)
	tests := []struct {
		name   string
		edit   func(r *Record)
		hashes []byte
	}{
		{"no sources", func(r *Record) { r.Sources = nil }, nil},
		{"negative size", func(r *Record) { r.Size = -1 }, nil},
		{"partial hash", func(*Record) {}, make([]byte, 10*32-1)},
		{"too few hashes", func(*Record) {}, testHashes(9)},
		{"too many hashes", func(*Record) {}, testHashes(11)},
	}
	for _, tt := range tests {
		r := testRecord()
		tt.edit(r)
		if err := db.Create(r, tt.hashes); err == nil {
			t.Errorf("%s: Create succeeded", tt.name)
		}
		if r.ID != 0 {
			t.Errorf("%s: failed Create set ID %d", tt.name, r.ID)
		}
	}
	if rs, _, _ := db.List(); len(rs) != 0 {
		t.Errorf("failed Creates stored %d records", len(rs))
	}
}

func TestDB_Get_NotFound(t *testing.T) {
	db, _ := openTestDB(t)
	if err := db.Create(testRecord(), nil); err != nil {
		t.Fatal(err)
	}
	for _, id := range []uint64{0, 2, 1 << 63} {
		if _, err := db.Get(id); !errors.Is(err, ErrNotFound) {
			t.Errorf("Get(%d): %v, want ErrNotFound", id, err)
		}
		if _, err := db.Bitmap(id); !errors.Is(err, ErrNotFound) {
			t.Errorf("Bitmap(%d): %v, want ErrNotFound", id, err)
		}
		if _, err := db.Hashes(id); !errors.Is(err, ErrNotFound) {
			t.Errorf("Hashes(%d): %v, want ErrNotFound", id, err)
		}
	}
}

func TestDB_List(t *testing.T) {
	db, _ := openTestDB(t)
	var want []*Record
	for i := range 5 {
		r := testRecord()
		r.Name = fmt.Sprintf("file%d", i)
		if err := db.Create(r, nil); err != nil {
			t.Fatal(err)
		}
		want = append(want, r)
	}
	if err := db.Delete(want[2].ID); err != nil {
		t.Fatal(err)
	}
	want = append(want[:2], want[3:]...)
	got, _, err := db.List()
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("List() returned %d records, want %d", len(got), len(want))
	}
	for i := range got {
		checkRecord(t, got[i], want[i])
	}
}

// Next walks the jobs in ID order, over the gaps removed jobs leave.
func TestDB_Next(t *testing.T) {
	db, _ := openTestDB(t)
	var ids []uint64
	for range 5 {
		r := testRecord()
		if err := db.Create(r, nil); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, r.ID)
	}
	if err := db.Delete(ids[2]); err != nil {
		t.Fatal(err)
	}
	var got []uint64
	for after := uint64(0); ; {
		r, err := db.Next(after)
		if errors.Is(err, ErrNotFound) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, r.ID)
		after = r.ID
	}
	if want := []uint64{ids[0], ids[1], ids[3], ids[4]}; !reflect.DeepEqual(got, want) {
		t.Errorf("walk with Next: %v, want %v", got, want)
	}
	if _, err := db.Next(math.MaxUint64); !errors.Is(err, ErrNotFound) {
		t.Errorf("Next(MaxUint64): %v, want ErrNotFound", err)
	}
}

func TestDB_List_1000(t *testing.T) {
	db, _ := openTestDB(t)
	createMany(t, db, 1000)
	start := time.Now()
	rs, _, err := db.List()
	d := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 1000 {
		t.Fatalf("List() returned %d records, want 1000", len(rs))
	}
	for i, r := range rs {
		if r.ID != uint64(i+1) || r.Name != fmt.Sprintf("file%d", i) {
			t.Fatalf("record %d has ID %d, Name %q", i, r.ID, r.Name)
		}
	}
	t.Logf("List of 1000 records took %v", d)
}

// createMany creates n jobs named file0, file1, ... The file is not synced
// meanwhile, for speed; it is a test of List, not of durability.
func createMany(t testing.TB, db *DB, n int) {
	t.Helper()
	db.bolt.NoSync = true
	defer func() { db.bolt.NoSync = false }()
	for i := range n {
		r := testRecord()
		r.Name = fmt.Sprintf("file%d", i)
		if err := db.Create(r, testHashes(10)); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.bolt.Sync(); err != nil {
		t.Fatal(err)
	}
}

func TestDB_Put(t *testing.T) {
	db, path := openTestDB(t)
	r := testRecord()
	if err := db.Create(r, nil); err != nil {
		t.Fatal(err)
	}
	before := r.Updated
	r.State = "completed"
	r.Path = "/tmp/downloads/file.iso"
	r.Finished = time.Now()
	r.Verified = 1000
	r.SourceStats[1].LastError = "connection refused"
	if err := db.Put(r); err != nil {
		t.Fatal(err)
	}
	if !r.Updated.After(before) {
		t.Errorf("Put left Updated at %v", r.Updated)
	}
	db.Close()
	got, err := reopen(t, path).Get(r.ID)
	if err != nil {
		t.Fatal(err)
	}
	checkRecord(t, got, r)
}

func TestDB_Put_Refused(t *testing.T) {
	db, _ := openTestDB(t)
	r := testRecord()
	if err := db.Create(r, nil); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		edit func(r *Record)
		want error // nil for any error
	}{
		{"unknown ID", func(r *Record) { r.ID = 99 }, ErrNotFound},
		{"no ID", func(r *Record) { r.ID = 0 }, nil},
		{"no sources", func(r *Record) { r.Sources = nil }, nil},
		{"other size", func(r *Record) { r.Size = 999 }, ErrIdentity},
		{"other segment size", func(r *Record) { r.SegmentSize = 200 }, ErrIdentity},
		{"other content", func(r *Record) { r.Content[0] ^= 1 }, ErrIdentity},
	}
	for _, tt := range tests {
		c := *r
		c.Name = "changed"
		tt.edit(&c)
		err := db.Put(&c)
		if err == nil || (tt.want != nil && !errors.Is(err, tt.want)) {
			t.Errorf("%s: Put: %v, want %v", tt.name, err, tt.want)
		}
	}
	got, _ := db.Get(r.ID)
	checkRecord(t, got, r)
}

func TestDB_Delete(t *testing.T) {
	db, _ := openTestDB(t)
	r := testRecord()
	if err := db.Create(r, testHashes(10)); err != nil {
		t.Fatal(err)
	}
	other := testRecord()
	if err := db.Create(other, testHashes(10)); err != nil {
		t.Fatal(err)
	}
	if err := db.Delete(r.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Get(r.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get after Delete: %v, want ErrNotFound", err)
	}
	if err := db.Delete(r.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("second Delete: %v, want ErrNotFound", err)
	}
	// The bitmap and hashes went with the record.
	err := db.bolt.View(func(tx *bbolt.Tx) error {
		for _, b := range [][]byte{jobsBucket, bitmapsBucket, hashesBucket} {
			if tx.Bucket(b).Get(key(r.ID)) != nil {
				t.Errorf("bucket %s still holds job %d", b, r.ID)
			}
			if tx.Bucket(b).Get(key(other.ID)) == nil {
				t.Errorf("bucket %s lost job %d", b, other.ID)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestDB_Create_IDsNotReused(t *testing.T) {
	db, path := openTestDB(t)
	for range 3 {
		if err := db.Create(testRecord(), nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Delete(3); err != nil {
		t.Fatal(err)
	}
	if err := db.Delete(2); err != nil {
		t.Fatal(err)
	}
	r := testRecord()
	if err := db.Create(r, nil); err != nil {
		t.Fatal(err)
	}
	if r.ID != 4 {
		t.Errorf("ID after deleting 2 and 3 = %d, want 4", r.ID)
	}
	if err := db.Delete(4); err != nil {
		t.Fatal(err)
	}
	db.Close()
	db = reopen(t, path)
	if err := db.Create(r, nil); err != nil {
		t.Fatal(err)
	}
	if r.ID != 5 {
		t.Errorf("ID after reopening = %d, want 5", r.ID)
	}
}

func TestDB_Checkpoint(t *testing.T) {
	db, path := openTestDB(t)
	r := testRecord()
	if err := db.Create(r, nil); err != nil {
		t.Fatal(err)
	}
	bm := NewBitmap(r.SegmentCount())
	bm.Set(0)
	bm.Set(9)
	r.Verified = 200
	if err := db.Checkpoint(r.ID, &Checkpoint{Verified: r.Verified, Done: bm}); err != nil {
		t.Fatal(err)
	}
	db.Close()
	db = reopen(t, path)
	got, err := db.Get(r.ID)
	if err != nil {
		t.Fatal(err)
	}
	r.Updated = got.Updated
	checkRecord(t, got, r)
	gotBM, err := db.Bitmap(r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if gotBM.Len() != 10 || gotBM.Count() != 2 || !gotBM.Has(0) || !gotBM.Has(9) {
		t.Errorf("recorded bitmap has Len %d, Count %d", gotBM.Len(), gotBM.Count())
	}
}

func TestDB_Checkpoint_LengthMismatch(t *testing.T) {
	db, _ := openTestDB(t)
	r := testRecord()
	if err := db.Create(r, nil); err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{0, 9, 11, 100} {
		bm := NewBitmap(n)
		for i := range n {
			bm.Set(i)
		}
		if err := db.Checkpoint(r.ID, &Checkpoint{Verified: int64(n), Done: bm}); !errors.Is(err, ErrIdentity) {
			t.Errorf("Checkpoint with a %d-bit bitmap for 10 segments: %v, want ErrIdentity", n, err)
		}
	}
	got, _ := db.Get(r.ID)
	checkRecord(t, got, r)
	if bm, _ := db.Bitmap(r.ID); bm.Len() != 10 || bm.Count() != 0 {
		t.Errorf("refused checkpoints changed the bitmap to Len %d, Count %d", bm.Len(), bm.Count())
	}
}

func TestDB_Checkpoint_NotFound(t *testing.T) {
	db, _ := openTestDB(t)
	if err := db.Checkpoint(7, &Checkpoint{Done: NewBitmap(10)}); !errors.Is(err, ErrNotFound) {
		t.Errorf("Checkpoint of an unknown job: %v, want ErrNotFound", err)
	}
}

// TestDB_Checkpoint_Atomic records a job's progress over and over, keeping its Verified count
// equal to the bits set in its bitmap, while a reader checks, in single
// read transactions, that it never sees one without the other.
func TestDB_Checkpoint_Atomic(t *testing.T) {
	db, _ := openTestDB(t)
	db.bolt.NoSync = true // a test of visibility, not durability
	r := testRecord()
	r.Size, r.SegmentSize = 256, 1
	if err := db.Create(r, nil); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for reads := 0; ; reads++ {
			select {
			case <-done:
				if reads == 0 {
					t.Error("reader never read")
				}
				return
			default:
			}
			err := db.bolt.View(func(tx *bbolt.Tx) error {
				got, err := getRecord(tx, r.ID)
				if err != nil {
					return err
				}
				var bm Bitmap
				if err := bm.UnmarshalBinary(tx.Bucket(bitmapsBucket).Get(key(r.ID))); err != nil {
					return err
				}
				if int64(bm.Count()) != got.Verified {
					return fmt.Errorf("record has Verified %d, bitmap has %d bits set", got.Verified, bm.Count())
				}
				return nil
			})
			if err != nil {
				t.Error(err)
				return
			}
		}
	}()
	bm := NewBitmap(256)
	for i := range 256 {
		bm.Set(i)
		r.Verified++
		if err := db.Checkpoint(r.ID, &Checkpoint{Verified: r.Verified, Done: bm}); err != nil {
			t.Error(err)
			break
		}
	}
	close(done)
	wg.Wait()
}

func TestDB_WasClean(t *testing.T) {
	db, path := openTestDB(t)
	if !db.WasClean() {
		t.Error("new database: WasClean() = false")
	}
	db.Close()

	db = reopen(t, path)
	if db.WasClean() {
		t.Error("after Close without MarkClean: WasClean() = true")
	}
	if err := db.MarkClean(); err != nil {
		t.Fatal(err)
	}
	db.Close()

	db = reopen(t, path)
	if !db.WasClean() {
		t.Error("after MarkClean and Close: WasClean() = false")
	}
	db.Close()

	// That Open marked the database dirty again.
	db = reopen(t, path)
	if db.WasClean() {
		t.Error("after an Open, Close: WasClean() = true")
	}
}

func TestDB_MarkClean_ThenWrite(t *testing.T) {
	db, path := openTestDB(t)
	r := testRecord()
	if err := db.Create(r, nil); err != nil {
		t.Fatal(err)
	}
	if err := db.MarkClean(); err != nil {
		t.Fatal(err)
	}
	r.State = "paused"
	if err := db.Put(r); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if reopen(t, path).WasClean() {
		t.Error("a write after MarkClean left the database marked clean")
	}
}

// TestDB_WasClean_ProcessDied runs a child process that opens the database,
// creates a job and exits without closing it.
func TestDB_WasClean_ProcessDied(t *testing.T) {
	if path := os.Getenv("IDM_STORE_TEST_DIE"); path != "" {
		db, err := Open(path, nil)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		if err := db.Create(testRecord(), nil); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		os.Exit(0)
	}

	db, path := openTestDB(t)
	if err := db.MarkClean(); err != nil {
		t.Fatal(err)
	}
	db.Close()
	cmd := exec.Command(os.Args[0], "-test.run=^TestDB_WasClean_ProcessDied$")
	cmd.Env = append(os.Environ(), "IDM_STORE_TEST_DIE="+path)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	db = reopen(t, path)
	if db.WasClean() {
		t.Error("after the process died: WasClean() = true")
	}
	if _, err := db.Get(1); err != nil {
		t.Errorf("the dead process's job: %v", err)
	}
}

func TestRecord_JSON(t *testing.T) {
	r := testRecord()
	data, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	if want := `"content":"010203` + strings.Repeat("00", 28) + `ff"`; !strings.Contains(string(data), want) {
		t.Errorf("JSON %s does not contain %s", data, want)
	}
	var got Record
	if err := json.Unmarshal(data, &got); err != nil {
		t.Fatal(err)
	}
	checkRecord(t, &got, r)

	r.Content = [32]byte{}
	data, _ = json.Marshal(r)
	if strings.Contains(string(data), "content") {
		t.Errorf("zero content hash encoded: %s", data)
	}
	got = Record{Content: [32]byte{1}}
	if err := json.Unmarshal(data, &got); err != nil || got.Content != ([32]byte{}) {
		t.Errorf("decoding without content: %v, Content %x", err, got.Content)
	}

	for _, bad := range []string{`"xyz"`, `"0102"`, `"` + strings.Repeat("00", 33) + `"`, `12`} {
		if err := json.Unmarshal([]byte(`{"id":1,"content":`+bad+`}`), &got); err == nil {
			t.Errorf("content %s accepted", bad)
		}
	}
}

func TestRecord_SegmentCount(t *testing.T) {
	tests := []struct {
		size, segSize int64
		want          int
	}{
		{0, 0, 0},
		{1000, 0, 0},
		{0, 100, 0},
		{1, 100, 1},
		{100, 100, 1},
		{101, 100, 2},
		{1000, 100, 10},
		{1 << 40, 1 << 20, 1 << 20},
	}
	for _, tt := range tests {
		r := Record{Size: tt.size, SegmentSize: tt.segSize}
		if got := r.SegmentCount(); got != tt.want {
			t.Errorf("SegmentCount() of %d in %d = %d, want %d", tt.size, tt.segSize, got, tt.want)
		}
	}
}

func BenchmarkDB_List1000(b *testing.B) {
	db, _ := openTestDB(b)
	createMany(b, db, 1000)
	b.ReportAllocs()
	for b.Loop() {
		rs, _, err := db.List()
		if err != nil || len(rs) != 1000 {
			b.Fatal(len(rs), err)
		}
	}
}

func BenchmarkDB_Checkpoint(b *testing.B) {
	db, _ := openTestDB(b)
	r := testRecord()
	r.Size, r.SegmentSize = 256<<20, 1<<20
	if err := db.Create(r, testHashes(256)); err != nil {
		b.Fatal(err)
	}
	bm := NewBitmap(256)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		bm.Set(i % 256)
		r.Verified = int64(bm.Count()) << 20
		if err := db.Checkpoint(r.ID, &Checkpoint{Verified: r.Verified, Done: bm}); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// Change writes what its function changes and nothing else: a field the
// transfer recorded meanwhile survives, and a refused change writes
// nothing.
func TestDB_Change(t *testing.T) {
	db, path := openTestDB(t)
	r := testRecord()
	if err := db.Create(r, nil); err != nil {
		t.Fatal(err)
	}
	// The transfer records progress; the caller's copy of r is now stale.
	if err := db.Checkpoint(r.ID, &Checkpoint{Verified: 300, Fetched: 400}); err != nil {
		t.Fatal(err)
	}
	got, err := db.Change(r.ID, func(c *Record) error {
		c.State, c.Limit = "paused", 1000
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if got.State != "paused" || got.Limit != 1000 || got.Verified != 300 || got.Fetched != 400 {
		t.Errorf("Change returned %+v, want the new state and limit beside the checkpoint", got)
	}
	db.Close()
	db = reopen(t, path)
	stored, err := db.Get(r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if stored.State != "paused" || stored.Limit != 1000 || stored.Verified != 300 || !stored.Updated.Equal(got.Updated) {
		t.Errorf("stored %+v, want what Change returned", stored)
	}

	boom := errors.New("boom")
	if _, err := db.Change(r.ID, func(c *Record) error { c.State = "failed"; return boom }); err != boom {
		t.Errorf("Change whose function fails = %v, want its error", err)
	}
	for name, fn := range map[string]func(*Record){
		"size":  func(c *Record) { c.Size++ },
		"root":  func(c *Record) { c.Root[0] ^= 1 },
		"algo":  func(c *Record) { c.Algo = "sha-1" },
		"own":   func(c *Record) { c.OwnPieces = !c.OwnPieces },
		"id":    func(c *Record) { c.ID++ },
		"valid": func(c *Record) { c.Sources = nil },
	} {
		if _, err := db.Change(r.ID, func(c *Record) error { c.State = "failed"; fn(c); return nil }); err == nil {
			t.Errorf("Change of the %s written", name)
		}
	}
	if _, err := db.Change(99, func(*Record) error { return nil }); !errors.Is(err, ErrNotFound) {
		t.Errorf("Change of an unknown job = %v, want ErrNotFound", err)
	}
	if after, _ := db.Get(r.ID); after.State != "paused" {
		t.Errorf("refused changes left state %q, want paused", after.State)
	}
}

// ChangeAll changes every job it is given or none: a job that is not
// there, a change refused for one job, leaves the others as they were.
func TestDB_ChangeAll(t *testing.T) {
	db, path := openTestDB(t)
	var ids []uint64
	for range 3 {
		r := testRecord()
		if err := db.Create(r, nil); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, r.ID)
	}
	rank := func(r *Record) error { r.Rank = 100 - int64(r.ID); return nil }
	if _, err := db.ChangeAll(append(ids, 99), rank); !errors.Is(err, ErrNotFound) {
		t.Errorf("ChangeAll with an unknown job = %v, want ErrNotFound", err)
	}
	negative := func(r *Record) error {
		r.Rank = 5
		if r.ID == ids[2] {
			r.Rank = -1
		}
		return nil
	}
	if _, err := db.ChangeAll(ids, negative); err == nil {
		t.Error("ChangeAll wrote a negative rank")
	}
	boom := errors.New("boom")
	failing := func(r *Record) error {
		r.Rank = 7
		if r.ID == ids[1] {
			return boom
		}
		return nil
	}
	if _, err := db.ChangeAll(ids, failing); err != boom {
		t.Errorf("ChangeAll whose function fails = %v, want its error", err)
	}
	for _, id := range ids {
		if r, _ := db.Get(id); r.Rank != 0 {
			t.Errorf("refused changes gave job %d rank %d", id, r.Rank)
		}
	}
	got, err := db.ChangeAll([]uint64{ids[2], ids[0]}, rank)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].ID != ids[2] || got[0].Rank != 100-int64(ids[2]) || got[1].ID != ids[0] {
		t.Errorf("ChangeAll returned %+v", got)
	}
	db.Close()
	db = reopen(t, path)
	for i, id := range ids {
		want := 100 - int64(id)
		if i == 1 {
			want = 0
		}
		if r, err := db.Get(id); err != nil || r.Rank != want {
			t.Errorf("job %d: rank %d, %v; want %d", id, r.Rank, err, want)
		}
	}
}

// CreateFrom stores new jobs and changes an existing one in one
// transaction: after it, the new jobs, their bitmaps and hashes are there
// with the IDs the change recorded; when the change fails, or the change
// is refused, nothing is written and no ID is used up.
func TestDB_CreateFrom(t *testing.T) {
	db, path := openTestDB(t)
	parent := testRecord()
	if err := db.Create(parent, nil); err != nil {
		t.Fatal(err)
	}
	a, b := testRecord(), testRecord()
	b.Name = "b.iso"
	stored, err := db.CreateFrom(parent.ID, []NewJob{{a, testHashes(10)}, {b, nil}}, func(r *Record, ids []uint64) error {
		r.State, r.FollowedBy = "completed", ids
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if a.ID != parent.ID+1 || b.ID != parent.ID+2 || !reflect.DeepEqual(stored.FollowedBy, []uint64{a.ID, b.ID}) || stored.State != "completed" {
		t.Fatalf("new jobs %d and %d, parent recorded %v (%s); want the next two IDs, recorded", a.ID, b.ID, stored.FollowedBy, stored.State)
	}
	db.Close()
	db = reopen(t, path)
	for _, r := range []*Record{a, b} {
		got, err := db.Get(r.ID)
		if err != nil {
			t.Fatal(err)
		}
		checkRecord(t, got, r)
		if bm, err := db.Bitmap(r.ID); err != nil || bm.Len() != r.SegmentCount() {
			t.Errorf("job %d: bitmap %v, %v", r.ID, bm, err)
		}
	}
	if h, err := db.Hashes(a.ID); err != nil || !bytes.Equal(h, testHashes(10)) {
		t.Errorf("hashes of job %d: %x, %v; want those given", a.ID, h, err)
	}

	boom := errors.New("boom")
	for name, fn := range map[string]func(*Record, []uint64) error{
		"fails":    func(*Record, []uint64) error { return boom },
		"identity": func(r *Record, _ []uint64) error { r.Size++; return nil },
	} {
		c := testRecord()
		if _, err := db.CreateFrom(parent.ID, []NewJob{{c, nil}}, fn); err == nil {
			t.Errorf("%s: written", name)
		}
		if c.ID != 0 {
			t.Errorf("%s: the refused job was given ID %d", name, c.ID)
		}
	}
	if _, err := db.CreateFrom(99, []NewJob{{testRecord(), nil}}, func(*Record, []uint64) error { return nil }); !errors.Is(err, ErrNotFound) {
		t.Errorf("from an unknown job: %v, want ErrNotFound", err)
	}
	recs, _, err := db.List()
	if err != nil || len(recs) != 3 {
		t.Fatalf("%d jobs (%v), want the three made before the refusals", len(recs), err)
	}
	next := testRecord()
	if err := db.Create(next, nil); err != nil || next.ID != b.ID+1 {
		t.Errorf("next job %d (%v), want %d: a refused CreateFrom uses up no ID", next.ID, err, b.ID+1)
	}
}
