package transport

import (
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkBuildManifest hashes a 1 GiB file as idm-server does at
// start-up: every segment and the whole file, in one read. It uses
// $IDM_BENCH_DIR/bench-1073741824.bin when make bench has made it, and
// otherwise writes one in a temporary directory first.
func BenchmarkBuildManifest(b *testing.B) {
	const size = 1 << 30
	path := filepath.Join(os.Getenv("IDM_BENCH_DIR"), "bench-1073741824.bin")
	if fi, err := os.Stat(path); os.Getenv("IDM_BENCH_DIR") == "" || err != nil || fi.Size() != size {
		path = filepath.Join(b.TempDir(), "big")
		f, err := os.Create(path)
		if err != nil {
			b.Fatal(err)
		}
		chunk := make([]byte, 1<<20)
		for i := range chunk {
			chunk[i] = byte(i * 7)
		}
		for range size / len(chunk) {
			f.Write(chunk)
		}
		f.Close()
	}
	// One untimed pass puts the file in the page cache, as it is once a
	// server has been run on it.
	if _, err := BuildManifest(path, 0); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(size)
	for b.Loop() {
		if _, err := BuildManifest(path, 0); err != nil {
			b.Fatal(err)
		}
	}
}
