package engine

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/idmproject/idm/identity"
	"github.com/idmproject/idm/store"
	"github.com/idmproject/idm/transport"
)

// liarCopy writes a copy of the file whose segments at idx are garbage,
// and returns it with a manifest that has the honest size, segment size
// and content hash, but the garbage's hashes for those segments: a
// source that lies about a few segment hashes and serves what it claims.
func liarCopy(t *testing.T, orig []byte, m *transport.Manifest, idx ...int) (string, *transport.Manifest) {
	t.Helper()
	b := append([]byte(nil), orig...)
	lie := *m
	lie.Segments = append([]transport.Hash(nil), m.Segments...)
	for _, i := range idx {
		off, n := m.Segment(i)
		for j := off; j < off+n; j++ {
			b[j] ^= 0x5A
		}
		lie.Segments[i] = transport.SumSegment(b[off : off+n])
	}
	path := filepath.Join(t.TempDir(), m.Name)
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(path)
	lie.ModTime = fi.ModTime()
	return path, &lie
}

// A source listed first whose manifest lies about a few segment hashes,
// and three honest sources: the vote covers the whole manifest, so the
// honest one wins, the liar is rejected with its reason, and the file is
// right. Before, the liar's hash list was adopted, the honest sources
// marked corrupt, and the job failed at the whole-file check.
func TestTransfer_Run_LyingManifestOutvoted(t *testing.T) {
	checkLeaks(t)
	path, want := testFile(t, 4<<20, 50)
	m, err := transport.BuildManifest(path, 64<<10)
	if err != nil {
		t.Fatal(err)
	}
	liarPath, lie := liarCopy(t, want, m, 3, 17, 40)
	liar := startServer(t, liarPath, lie, 0)
	honest := startServers(t, path, 64<<10, 2e6, 2e6, 2e6)
	db := openDB(t, "")
	rec := newJob(t, db, serverSources(append([]*transport.Server{liar}, honest...)...))
	if err := fastTransfer(t, db, rec.ID).Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := checkResult(t, db, rec.ID, want)
	st := sourceStat(t, got, "idm://"+liar.Addr)
	if st.Bytes != 0 || !strings.Contains(st.LastError, "segment hashes") {
		t.Errorf("the lying source: %+v, want rejected for its segment hashes", st)
	}
	for _, h := range honest {
		if st := sourceStat(t, got, "idm://"+h.Addr); st.Corrupt != 0 {
			t.Errorf("honest source %s counted %d corrupt segments", h.Addr, st.Corrupt)
		}
	}
}

// A job whose content is pinned takes only that file, even when most
// sources hold another; with no source holding it, the job fails with
// each source's reason.
func TestTransfer_Run_PinnedContent(t *testing.T) {
	checkLeaks(t)
	path, want := testFile(t, 2<<20, 51)
	other, _ := testFile(t, 2<<20, 52)
	m, _ := transport.BuildManifest(path, 0)
	good := startServers(t, path, 0, 1e6)[0]
	wrong := startServers(t, other, 0, 0, 0)
	db := openDB(t, "")
	rec := &store.Record{Sources: serverSources(wrong[0], wrong[1], good), Dir: t.TempDir(), State: "queued", Expect: m.Root()}
	if err := db.Create(rec, nil); err != nil {
		t.Fatal(err)
	}
	if err := fastTransfer(t, db, rec.ID).Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := checkResult(t, db, rec.ID, want)
	if st := sourceStat(t, got, "idm://"+wrong[0].Addr); !strings.Contains(st.LastError, "expected "+m.Root().String()) {
		t.Errorf("source of another file: %+v, want rejected as not the expected file", st)
	}

	none := &store.Record{Sources: serverSources(wrong...), Dir: t.TempDir(), State: "queued", Expect: m.Root()}
	if err := db.Create(none, nil); err != nil {
		t.Fatal(err)
	}
	err := fastTransfer(t, db, none.ID).Run(context.Background())
	if !errors.Is(err, ErrNoSource) || !strings.Contains(err.Error(), "expected") {
		t.Fatalf("Run with no source of the pinned file = %v", err)
	}
}

// Every source adds little memory, however long the manifest: sources
// are compared by the summaries of their manifests, and one whole
// manifest is fetched per job. Before, each source's manifest (32 MiB
// for 2^20 segments, twice while it was decoded) was kept for the whole
// job.
func TestTransfer_ManifestMemoryPerSource(t *testing.T) {
	path, _ := testFile(t, 1<<20, 53)
	fi, _ := os.Stat(path)
	m := &transport.Manifest{Name: "long.bin", Size: transport.MaxSegments * (64 << 10), SegmentSize: 64 << 10,
		ModTime: fi.ModTime(), Segments: make([]transport.Hash, transport.MaxSegments)}
	for i := range m.Segments {
		m.Segments[i][0], m.Segments[i][1], m.Segments[i][2] = byte(i), byte(i>>8), byte(i>>16)
	}
	alloc := func(n int) uint64 {
		var servers []*transport.Server
		for range n {
			servers = append(servers, startServer(t, path, m, 0))
		}
		db := openDB(t, "")
		rec := newJob(t, db, serverSources(servers...))
		// A directory that is not the job's: the job fails as soon as
		// its file is decided and its manifest fetched and stored.
		rec.DirID = store.FileID{Dev: 1, Ino: 1}
		if err := db.Put(rec); err != nil {
			t.Fatal(err)
		}
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		err := fastTransfer(t, db, rec.ID).Run(context.Background())
		runtime.ReadMemStats(&after)
		if err == nil || !strings.Contains(err.Error(), "replaced") {
			t.Fatalf("Run = %v, want the directory refused", err)
		}
		return after.TotalAlloc - before.TotalAlloc
	}
	one, eight := alloc(1), alloc(8)
	per := (int64(eight) - int64(one)) / 7
	t.Logf("allocated %d MiB with one source, %d MiB with eight: %d KiB per added source", one>>20, eight>>20, per>>10)
	if per > 4<<20 {
		t.Errorf("each added source allocates %d KiB, want a few MiB at most", per>>10)
	}
}

// Mirrors that know only the size do not decide a job's file by their
// number: the file stays open until every source has answered or the
// wait is over, so an idm server's piece hashes, answering a moment after
// two HTTP mirrors, still become the job's.
func TestTransfer_SizeOnlyMajorityWaits(t *testing.T) {
	tr := &transfer{sources: make([]*source, 3), votes: map[int]identity.Summary{}, decided: make(chan struct{}), log: slog.New(slog.DiscardHandler)}
	described := identity.Summary{Size: 1 << 20, PieceLen: 256 << 10, Algo: identity.BLAKE3, Count: 4, Root: identity.Hash{1}}
	tr.mu.Lock()
	defer tr.mu.Unlock()
	for i := range 2 {
		tr.votes[i] = identity.Summary{Size: 1 << 20}
		tr.maybeDecideLocked()
	}
	if tr.winner != nil {
		t.Fatalf("two size-only votes of three decided the file: %+v", tr.winner)
	}
	tr.votes[2] = described
	tr.maybeDecideLocked()
	if tr.winner == nil || tr.winner.PieceLen == 0 {
		t.Fatalf("with every vote in, the winner is %+v; want the description with piece hashes", tr.winner)
	}
	tr.voteTimer.Stop()
}
