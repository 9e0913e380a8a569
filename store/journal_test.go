package store

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/idmproject/idm/identity"
)

// testFile is a file of 3 pieces of 64 KiB, the last one short.
func testFile() *identity.File {
	return &identity.File{Size: 150 << 10, PieceLen: 64 << 10, Algo: identity.BLAKE3, Pieces: testHashes(3),
		Digests: []identity.Digest{{Algo: identity.BLAKE3, Sum: bytes.Repeat([]byte{9}, 32)}}}
}

func TestDB_SetIdentity(t *testing.T) {
	db, path := openTestDB(t)
	r := &Record{Sources: []string{"idm://127.0.0.1:9001"}, State: "queued"}
	if err := db.Create(r, nil); err != nil {
		t.Fatal(err)
	}
	f := testFile()
	if err := db.SetIdentity(r.ID, f, "video.mp4", false); err != nil {
		t.Fatal(err)
	}
	db.Close()
	db = reopen(t, path)
	got, err := db.Get(r.ID)
	if err != nil {
		t.Fatal(err)
	}
	h, _ := db.Hashes(r.ID)
	back, err := got.File(h)
	if err != nil {
		t.Fatal(err)
	}
	if back.Root() != f.Root() || got.Name != "video.mp4" || got.SegmentCount() != 3 {
		t.Errorf("after SetIdentity: %+v, name %q", back, got.Name)
	}
	if d, _ := back.Digest(identity.BLAKE3); !bytes.Equal(d, bytes.Repeat([]byte{9}, 32)) {
		t.Errorf("whole-file digest %x", d)
	}
	if bm, err := db.Bitmap(r.ID); err != nil || bm.Len() != 3 {
		t.Fatalf("Bitmap() = %v, %v; want 3 bits", bm, err)
	}

	// Another file is refused, and changes nothing.
	other := testFile()
	other.Size++
	if err := db.SetIdentity(r.ID, other, "x", false); !errors.Is(err, ErrIdentity) {
		t.Errorf("a second, different file: %v, want ErrIdentity", err)
	}
	if err := db.SetIdentity(r.ID+1, f, "x", false); !errors.Is(err, ErrNotFound) {
		t.Errorf("an unknown job: %v, want ErrNotFound", err)
	}
	bad := testFile()
	bad.Pieces = bad.Pieces[:64]
	if err := db.SetIdentity(r.ID, bad, "x", false); err == nil {
		t.Error("a file with 2 piece hashes for 3 pieces was recorded")
	}
}

// A checkpoint writes the progress and nothing else: what the daemon
// changed meanwhile (a limit, a state) stays.
func TestDB_Checkpoint_OnlyProgress(t *testing.T) {
	db, _ := openTestDB(t)
	r := &Record{Sources: []string{"idm://127.0.0.1:9001"}, State: "queued"}
	if err := db.Create(r, nil); err != nil {
		t.Fatal(err)
	}
	if err := db.SetIdentity(r.ID, testFile(), "video.mp4", false); err != nil {
		t.Fatal(err)
	}
	if err := db.SetPart(r.ID, "video.mp4.1-abcd.idmpart", FileID{Dev: 1, Ino: 2}); err != nil {
		t.Fatal(err)
	}
	// The daemon changes the limit and the state.
	cur, _ := db.Get(r.ID)
	cur.Limit, cur.State = 12345, "downloading"
	if err := db.Put(cur); err != nil {
		t.Fatal(err)
	}
	bm := NewBitmap(3)
	bm.Set(0)
	c := &Checkpoint{Done: bm, Verified: 64 << 10, Fetched: 70 << 10,
		Sources: []SourceStat{{Source: "idm://127.0.0.1:9001", Bytes: 64 << 10}}, PartStamp: FileStamp{Size: 150 << 10}}
	if err := db.Checkpoint(r.ID, c); err != nil {
		t.Fatal(err)
	}
	got, _ := db.Get(r.ID)
	if got.Limit != 12345 || got.State != "downloading" || got.Part != "video.mp4.1-abcd.idmpart" || got.DirID.Ino != 2 {
		t.Errorf("a checkpoint undid the daemon's changes: %+v", got)
	}
	if got.Verified != 64<<10 || got.Fetched != 70<<10 || got.SourceStats[0].Bytes != 64<<10 || got.PartStamp.Size != 150<<10 {
		t.Errorf("checkpoint not recorded: %+v", got)
	}
	if bm, _ := db.Bitmap(r.ID); !bm.Has(0) || bm.Count() != 1 {
		t.Error("checkpoint's bitmap not recorded")
	}
	wrong := &Checkpoint{Done: NewBitmap(4)}
	if err := db.Checkpoint(r.ID, wrong); !errors.Is(err, ErrIdentity) {
		t.Errorf("a bitmap of 4 bits for 3 pieces: %v, want ErrIdentity", err)
	}
	when := time.Now().Round(0)
	if err := db.Publish(r.ID, "/out/video.mp4", when, c); err != nil {
		t.Fatal(err)
	}
	got, _ = db.Get(r.ID)
	if got.Path != "/out/video.mp4" || !got.Finished.Equal(when) || got.Limit != 12345 {
		t.Errorf("after Publish: %+v", got)
	}
}

// The daemon's own piece hashes, for a job whose sources published none,
// are recorded as checkpoints bring them.
func TestDB_Checkpoint_OwnPieces(t *testing.T) {
	db, _ := openTestDB(t)
	r := &Record{Sources: []string{"http://127.0.0.1:9001/f"}, State: "queued"}
	if err := db.Create(r, nil); err != nil {
		t.Fatal(err)
	}
	f := testFile()
	f.Pieces, f.Digests = nil, nil
	if err := db.SetIdentity(r.ID, f, "f", true); err != nil {
		t.Fatal(err)
	}
	if h, _ := db.Hashes(r.ID); h != nil {
		t.Errorf("hashes before any were taken: %x", h)
	}
	own := testHashes(3)
	if err := db.Checkpoint(r.ID, &Checkpoint{Pieces: own}); err != nil {
		t.Fatal(err)
	}
	got, _ := db.Get(r.ID)
	h, _ := db.Hashes(r.ID)
	if !got.OwnPieces || !bytes.Equal(h, own) {
		t.Errorf("own pieces: %v, %x", got.OwnPieces, h)
	}
	if err := db.Checkpoint(r.ID, &Checkpoint{Pieces: own[:40]}); err == nil {
		t.Error("a piece list of the wrong length was recorded")
	}
}
