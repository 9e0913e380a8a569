package transport

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

// warnings collects what a cache logs.
type warnings struct {
	mu    sync.Mutex
	lines []string
}

func (w *warnings) Enabled(context.Context, slog.Level) bool { return true }
func (w *warnings) Handle(_ context.Context, r slog.Record) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	var b strings.Builder
	b.WriteString(r.Message)
	r.Attrs(func(a slog.Attr) bool { b.WriteString(" " + a.String()); return true })
	w.lines = append(w.lines, b.String())
	return nil
}
func (w *warnings) WithAttrs([]slog.Attr) slog.Handler { return w }
func (w *warnings) WithGroup(string) slog.Handler      { return w }

func (w *warnings) all() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.lines...)
}

// openCache opens a cache in a new private directory, logging to w.
func openCache(t *testing.T, w *warnings) *ManifestCache {
	t.Helper()
	c, err := OpenManifestCache(filepath.Join(t.TempDir(), "cache"))
	if err != nil {
		t.Fatal(err)
	}
	if w == nil {
		w = &warnings{}
	}
	c.Logger = slog.New(w)
	return c
}

// cachedManifest asks c for the manifest of path and checks whether it
// came from the cache.
func cachedManifest(t *testing.T, c *ManifestCache, path string, segSize int64, wantCached bool) *Manifest {
	t.Helper()
	m, cached, err := c.Manifest(path, segSize)
	if err != nil {
		t.Fatal(err)
	}
	if cached != wantCached {
		t.Fatalf("from the cache: %v, want %v", cached, wantCached)
	}
	return m
}

// sameFullManifest checks got and want are equal in every field,
// SHA-256 hashes included.
func sameFullManifest(t *testing.T, got, want *Manifest) {
	t.Helper()
	sameManifest(t, got, want)
	if got.Content != want.Content {
		t.Errorf("Content = %v, want %v", got.Content, want.Content)
	}
	if !reflect.DeepEqual(got.SHA256, want.SHA256) {
		t.Errorf("SHA256 = %+v, want %+v", got.SHA256, want.SHA256)
	}
}

// rewriteInPlace gives the file at path other bytes of the same length,
// in the same inode, and sets its modification time back: the cache's key
// no longer tells it from the file that was hashed.
func rewriteInPlace(t *testing.T, path string) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, randomBytes(int(fi.Size()), 999), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(path, fi.ModTime(), fi.ModTime()); err != nil {
		t.Fatal(err)
	}
}

// The second time, the manifest comes from the cache and the file is not
// read: the file is given other bytes without changing its key, and the
// cache still returns the manifest of the bytes it hashed first.
func TestManifestCache_Manifest_SecondTimeFromCache(t *testing.T) {
	path, data := randomFile(t, 300_000, 50)
	c := openCache(t, nil)
	first := cachedManifest(t, c, path, 0, false)
	checkSHA256(t, first, data)
	rewriteInPlace(t, path)
	second := cachedManifest(t, c, path, 0, true)
	sameFullManifest(t, second, first)
	if second.Name != filepath.Base(path) || second.ModTime.UnixNano() != first.ModTime.UnixNano() {
		t.Errorf("name %q, time %v; want %q, %v", second.Name, second.ModTime, filepath.Base(path), first.ModTime)
	}
	// A relative path is the same file.
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	if rel, err := filepath.Rel(wd, path); err == nil {
		cachedManifest(t, c, rel, 0, true)
	}
	ents, err := os.ReadDir(c.Dir())
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 1 || !strings.HasSuffix(ents[0].Name(), cacheSuffix) {
		t.Fatalf("cache holds %v, want one entry", ents)
	}
	if fi, _ := ents[0].Info(); fi.Mode().Perm() != 0o600 {
		t.Errorf("entry mode %v, want 0600", fi.Mode().Perm())
	}
}

// A file that changed in any part of the key is hashed again, and its
// new manifest replaces the old one in the cache.
func TestManifestCache_Manifest_ChangedFileHashedAgain(t *testing.T) {
	tests := []struct {
		name    string
		change  func(t *testing.T, path string)
		segSize int64 // asked for the second time
	}{
		{"modification time", func(t *testing.T, path string) {
			later := time.Now().Add(time.Hour)
			if err := os.Chtimes(path, later, later); err != nil {
				t.Fatal(err)
			}
		}, 0},
		{"size, time kept", func(t *testing.T, path string) {
			fi, _ := os.Stat(path)
			f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			f.Write([]byte("more"))
			f.Close()
			os.Chtimes(path, fi.ModTime(), fi.ModTime())
		}, 0},
		{"replaced by another file of the same size and time", func(t *testing.T, path string) {
			fi, _ := os.Stat(path)
			other := filepath.Join(filepath.Dir(path), "other")
			if err := os.WriteFile(other, randomBytes(int(fi.Size()), 998), 0o644); err != nil {
				t.Fatal(err)
			}
			os.Chtimes(other, fi.ModTime(), fi.ModTime())
			if err := os.Rename(other, path); err != nil {
				t.Fatal(err)
			}
		}, 0},
		{"another segment size", func(*testing.T, string) {}, 4096},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path, _ := randomFile(t, 200_000, uint64(60+i))
			c := openCache(t, nil)
			cachedManifest(t, c, path, 0, false)
			tt.change(t, path)
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			again := cachedManifest(t, c, path, tt.segSize, false)
			fresh, err := BuildManifest(path, tt.segSize)
			if err != nil {
				t.Fatal(err)
			}
			sameFullManifest(t, again, fresh)
			checkSHA256(t, again, data)
			sameFullManifest(t, cachedManifest(t, c, path, tt.segSize, true), fresh)
		})
	}
}

// An entry that is damaged, or that is not what it should be, is ignored
// with a warning and built again; a file that has none, or whose entry is
// of another file, is no fault and warns of nothing.
func TestManifestCache_Manifest_DamagedEntry(t *testing.T) {
	tests := []struct {
		name   string
		damage func(t *testing.T, c *ManifestCache, entry string)
		warns  bool
	}{
		{"a byte flipped", func(t *testing.T, _ *ManifestCache, entry string) {
			b, _ := os.ReadFile(entry)
			b[len(b)/2] ^= 1
			os.WriteFile(entry, b, 0o600)
		}, true},
		{"truncated", func(t *testing.T, _ *ManifestCache, entry string) {
			b, _ := os.ReadFile(entry)
			os.WriteFile(entry, b[:len(b)-100], 0o600)
		}, true},
		{"empty", func(t *testing.T, _ *ManifestCache, entry string) { os.WriteFile(entry, nil, 0o600) }, false},
		{"garbage", func(t *testing.T, _ *ManifestCache, entry string) {
			os.WriteFile(entry, randomBytes(5000, 1), 0o600)
		}, false},
		{"magic with garbage", func(t *testing.T, _ *ManifestCache, entry string) {
			os.WriteFile(entry, append([]byte(cacheMagic), randomBytes(5000, 2)...), 0o600)
		}, true},
		{"a directory", func(t *testing.T, _ *ManifestCache, entry string) {
			os.Remove(entry)
			os.Mkdir(entry, 0o700)
		}, true},
		{"the entry of another file", func(t *testing.T, c *ManifestCache, entry string) {
			other, _ := randomFile(t, 200_000, 71)
			if _, _, err := c.Manifest(other, 0); err != nil {
				t.Fatal(err)
			}
			abs, _ := filepath.Abs(other)
			if err := os.Rename(c.entryPath(abs), entry); err != nil {
				t.Fatal(err)
			}
		}, false},
		{"removed", func(t *testing.T, _ *ManifestCache, entry string) { os.Remove(entry) }, false},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path, data := randomFile(t, 200_000, uint64(80+i))
			w := &warnings{}
			c := openCache(t, w)
			want := cachedManifest(t, c, path, 0, false)
			abs, _ := filepath.Abs(path)
			entry := c.entryPath(abs)
			tt.damage(t, c, entry)
			got := cachedManifest(t, c, path, 0, false)
			sameFullManifest(t, got, want)
			checkSHA256(t, got, data)
			if warned := len(w.all()) > 0; warned != tt.warns {
				t.Errorf("warnings %q, want some: %v", w.all(), tt.warns)
			}
			if tt.name != "a directory" {
				sameFullManifest(t, cachedManifest(t, c, path, 0, true), want)
			}
		})
	}
}

// An entry whose checksum is right but whose length does not follow from
// its key, as a writer who meant harm or a bug could make, is refused
// before its hashes are read.
func TestDecodeCacheEntry_LengthMismatch(t *testing.T) {
	path, _ := randomFile(t, 200_000, 90)
	abs, _ := filepath.Abs(path)
	fi, _ := os.Stat(abs)
	m, err := BuildManifest(abs, 0)
	if err != nil {
		t.Fatal(err)
	}
	k := newCacheKey(abs, fi, 0)
	b, err := encodeCacheEntry(k, m)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := decodeCacheEntry(b, k); err != nil {
		t.Fatalf("the entry as written: %v", err)
	} else {
		sameFullManifest(t, got, m)
	}
	for _, cut := range []int{HashSize, 1} {
		short := append([]byte(nil), b[:len(b)-HashSize-cut]...)
		sum := SumSegment(short)
		short = append(short, sum[:]...)
		if _, err := decodeCacheEntry(short, k); err == nil {
			t.Errorf("an entry %d bytes short with a right checksum was accepted", cut)
		}
	}
	longer := append([]byte(nil), b[:len(b)-HashSize]...)
	longer = append(longer, make([]byte, HashSize)...)
	sum := SumSegment(longer)
	if _, err := decodeCacheEntry(append(longer, sum[:]...), k); err == nil {
		t.Error("an entry with one hash too many was accepted")
	}
}

// Several processes, or goroutines, may hash and store the same file at
// once: each gets the right manifest and the entry is whole.
func TestManifestCache_Manifest_Concurrent(t *testing.T) {
	path, data := randomFile(t, 300_000, 91)
	c := openCache(t, nil)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			m, _, err := c.Manifest(path, 0)
			if err != nil {
				t.Error(err)
				return
			}
			checkSHA256(t, m, data)
		})
	}
	wg.Wait()
	checkSHA256(t, cachedManifest(t, c, path, 0, true), data)
	ents, _ := os.ReadDir(c.Dir())
	if len(ents) != 1 {
		t.Errorf("cache holds %d files, want one entry and no temporary file", len(ents))
	}
}

// A nil cache caches nothing: every call hashes the file.
func TestManifestCache_Nil(t *testing.T) {
	path, data := randomFile(t, 100_000, 92)
	var c *ManifestCache
	for range 2 {
		checkSHA256(t, cachedManifest(t, c, path, 0, false), data)
	}
	if _, _, err := c.Manifest(filepath.Join(t.TempDir(), "none"), 0); err == nil {
		t.Error("a missing file got a manifest")
	}
}

// A missing or unreadable file is an error, cache or not.
func TestManifestCache_Manifest_Errors(t *testing.T) {
	c := openCache(t, nil)
	for _, path := range []string{filepath.Join(t.TempDir(), "none"), t.TempDir()} {
		if _, _, err := c.Manifest(path, 0); err == nil {
			t.Errorf("%s got a manifest", path)
		}
	}
	path, _ := randomFile(t, 1000, 93)
	if _, _, err := c.Manifest(path, MinSegmentSize-1); err == nil {
		t.Error("a segment size below the minimum got a manifest")
	}
}

// The directory is created private; one that others could write to, or
// another user's, is refused, since whoever can write an entry chooses
// the hashes the server publishes.
func TestOpenManifestCache_Directory(t *testing.T) {
	t.Run("created 0700", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "a", "b")
		c, err := OpenManifestCache(dir)
		if err != nil {
			t.Fatal(err)
		}
		fi, err := os.Stat(c.Dir())
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o700 {
			t.Errorf("mode %v, want 0700", fi.Mode().Perm())
		}
	})
	for _, tt := range []struct {
		mode os.FileMode
		ok   bool
	}{{0o700, true}, {0o755, true}, {0o500, true}, {0o770, false}, {0o777, false}, {0o702, false}, {0o1777, false}} {
		t.Run(tt.mode.String(), func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "cache")
			if err := os.Mkdir(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(dir, tt.mode); err != nil {
				t.Fatal(err)
			}
			_, err := OpenManifestCache(dir)
			if (err == nil) != tt.ok {
				t.Fatalf("OpenManifestCache of a directory of mode %v: %v; want it accepted: %v", tt.mode, err, tt.ok)
			}
			if err != nil && (!strings.Contains(err.Error(), "private") || strings.Contains(err.Error(), "\n")) {
				t.Errorf("error %q, want one line saying it must be private", err)
			}
		})
	}
	t.Run("another user's", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "cache")
		if err := os.Mkdir(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		// Only root can give a directory away; as anyone else, the
		// directory stays ours and is accepted.
		chowned := os.Chown(dir, 4242, 4242) == nil
		if _, err := OpenManifestCache(dir); (err == nil) == chowned {
			t.Errorf("OpenManifestCache of a directory owned by another user (chowned: %v): %v", chowned, err)
		}
	})
	t.Run("a file", func(t *testing.T) {
		path := writeFile(t, "file", []byte("x"))
		if _, err := OpenManifestCache(path); err == nil {
			t.Error("a file was taken for a cache directory")
		}
	})
	t.Run("a link to a private directory", func(t *testing.T) {
		real := filepath.Join(t.TempDir(), "real")
		os.Mkdir(real, 0o700)
		link := filepath.Join(t.TempDir(), "link")
		if err := os.Symlink(real, link); err != nil {
			t.Fatal(err)
		}
		c, err := OpenManifestCache(link)
		if err != nil {
			t.Fatal(err)
		}
		if c.Dir() != real {
			t.Errorf("Dir %q, want the link resolved to %q", c.Dir(), real)
		}
	})
	if _, err := OpenManifestCache(""); err == nil {
		t.Error("an empty directory name was accepted")
	}
}

// Opening a cache removes the entries unused for a month and the
// temporary files a killed process left, and nothing else.
func TestOpenManifestCache_Prune(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "cache")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	files := map[string]struct {
		age  time.Duration
		kept bool
	}{
		"old" + cacheSuffix:          {cacheUnusedAge + time.Hour, false},
		"recent" + cacheSuffix:       {cacheUnusedAge - time.Hour, true},
		cacheTempPrefix + "old":      {cacheTempAge + time.Minute, false},
		cacheTempPrefix + "recent":   {time.Minute, true},
		"not-ours":                   {cacheUnusedAge * 2, true},
		"old-not-an-entry.manifestx": {cacheUnusedAge * 2, true},
	}
	for name, f := range files {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, now.Add(-f.age), now.Add(-f.age)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := OpenManifestCache(dir); err != nil {
		t.Fatal(err)
	}
	for name, f := range files {
		_, err := os.Stat(filepath.Join(dir, name))
		if kept := err == nil; kept != f.kept {
			t.Errorf("%s: kept %v, want %v", name, kept, f.kept)
		}
	}
}

// Using an entry marks it used, so that prune keeps it.
func TestManifestCache_Manifest_MarksEntryUsed(t *testing.T) {
	path, _ := randomFile(t, 10_000, 94)
	c := openCache(t, nil)
	cachedManifest(t, c, path, 0, false)
	abs, _ := filepath.Abs(path)
	old := time.Now().Add(-cacheUnusedAge - time.Hour)
	if err := os.Chtimes(c.entryPath(abs), old, old); err != nil {
		t.Fatal(err)
	}
	cachedManifest(t, c, path, 0, true)
	fi, err := os.Stat(c.entryPath(abs))
	if err != nil {
		t.Fatal(err)
	}
	if time.Since(fi.ModTime()) > time.Hour {
		t.Errorf("entry's time %v after use, want now", fi.ModTime())
	}
}
