package metalink

import (
	"bytes"
	"crypto/sha1"
	"crypto/sha256"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/idmproject/idm/identity"
)

// sha256Pieces returns the SHA-256 pieces of data cut into pieceLen.
func sha256Pieces(data []byte, pieceLen int64) *identity.File {
	f := &identity.File{Size: int64(len(data)), PieceLen: pieceLen, Algo: identity.SHA256, Pieces: []byte{}}
	for i := range f.Count() {
		off, n := f.Piece(i)
		sum := sha256.Sum256(data[off : off+n])
		f.Pieces = append(f.Pieces, sum[:]...)
	}
	return f
}

func digest(a identity.Algo, data []byte) identity.Digest {
	return identity.Digest{Algo: a, Sum: a.Sum(data)}
}

// What Write writes, Parse reads back as the same files: every field,
// names and addresses with the characters XML gives a meaning to, and
// mirrors already in Parse's order.
func TestWrite_RoundTrip(t *testing.T) {
	data := bytes.Repeat([]byte("idm "), 50_000) // 200,000 bytes
	sha1Sum := sha1.Sum(data)
	tests := []struct {
		name  string
		files []File
	}{
		{"SHA-256 pieces and digest", []File{{
			Name: "movie.mkv", Size: int64(len(data)),
			Digests: []identity.Digest{digest(identity.SHA256, data)},
			Pieces:  sha256Pieces(data, 64<<10),
			Mirrors: []Mirror{{URL: "http://127.0.0.1:9001/movie.mkv", Priority: LowestPriority}},
		}}},
		{"several digests, no pieces", []File{{
			Name: "a.iso", Size: int64(len(data)),
			Digests: []identity.Digest{digest(identity.SHA512, data), {Algo: identity.SHA1, Sum: sha1Sum[:]}, digest(identity.BLAKE3, data)},
			Mirrors: []Mirror{{URL: "https://mirror.test/a.iso", Priority: LowestPriority}},
		}}},
		{"no size", []File{{
			Name: "unknown.bin", Size: -1,
			Mirrors: []Mirror{{URL: "http://[::1]:8080/unknown.bin", Priority: LowestPriority}},
		}}},
		{"mirrors with priorities and locations", []File{{
			Name: "b.tar", Size: 3,
			Mirrors: []Mirror{
				{URL: "http://one.test/b.tar", Priority: 1, Location: "de"},
				{URL: "http://two.test/b.tar", Priority: 2},
				{URL: "http://three.test/b.tar", Priority: LowestPriority, Location: "us"},
			},
		}}},
		{"XML's characters in the name and the address", []File{{
			Name: `a&b<c>"d'.bin`, Size: 10,
			Mirrors: []Mirror{{URL: "http://host.test/a%26b?x=1&y=%3C2%3E", Priority: LowestPriority}},
		}}},
		{"several files", []File{
			{Name: "one", Size: 1, Mirrors: []Mirror{{URL: "http://h.test/one", Priority: LowestPriority}}},
			{Name: "two", Size: 2, Mirrors: []Mirror{{URL: "http://h.test/two", Priority: LowestPriority}}},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b bytes.Buffer
			if err := Write(&b, tt.files); err != nil {
				t.Fatal(err)
			}
			got, err := Parse(&b)
			if err != nil {
				t.Fatalf("Parse of what Write wrote: %v\n%s", err, b.String())
			}
			if !reflect.DeepEqual(got, tt.files) {
				t.Errorf("Parse(Write(files)) =\n%+v\nwant\n%+v", got, tt.files)
			}
		})
	}
}

// A mirror without a priority is written without one, and read back with
// the one Parse gives such a mirror; an empty file's pieces, which would
// be an empty <pieces>, are left out.
func TestWrite_Defaults(t *testing.T) {
	in := []File{{
		Name: "empty", Size: 0,
		Digests: []identity.Digest{digest(identity.SHA256, nil)},
		Pieces:  sha256Pieces(nil, 64<<10),
		Mirrors: []Mirror{{URL: "http://h.test/empty"}},
	}}
	var b bytes.Buffer
	if err := Write(&b, in); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(b.String(), "<pieces") || strings.Contains(b.String(), "priority") {
		t.Errorf("document holds pieces or a priority:\n%s", b.String())
	}
	got, err := Parse(&b)
	if err != nil {
		t.Fatal(err)
	}
	if got[0].Pieces != nil || got[0].Mirrors[0].Priority != LowestPriority {
		t.Errorf("pieces %v, priority %d; want none and %d", got[0].Pieces, got[0].Mirrors[0].Priority, LowestPriority)
	}
}

// What Parse would refuse, Write refuses, with one line and nothing
// written.
func TestWrite_Refuses(t *testing.T) {
	data := []byte("some bytes")
	ok := func() File {
		return File{
			Name: "ok.bin", Size: int64(len(data)),
			Digests: []identity.Digest{digest(identity.SHA256, data)},
			Pieces:  sha256Pieces(data, 64<<10),
			Mirrors: []Mirror{{URL: "http://h.test/ok.bin"}},
		}
	}
	tests := []struct {
		name   string
		change func(*File)
		second bool // a second, valid file named "OK.BIN" follows
		says   string
	}{
		{"empty name", func(f *File) { f.Name = "" }, false, "no name"},
		{"name leaving the directory", func(f *File) { f.Name = ".." }, false, "leaves"},
		{"name in a subdirectory", func(f *File) { f.Name = "a/b" }, false, "subdirectory"},
		{"name with a control character", func(f *File) { f.Name = "a\nb" }, false, "control"},
		{"name XML cannot carry", func(f *File) { f.Name = "a\ufffeb" }, false, "XML"},
		{"address XML cannot carry", func(f *File) { f.Mirrors[0].URL = "http://h.test/ok.bin?x=\ufffe" }, false, "http"},
		{"names differing only in case", func(*File) {}, true, "given twice"},
		{"negative size", func(f *File) { f.Size = -2 }, false, "size"},
		{"short digest", func(f *File) { f.Digests[0].Sum = f.Digests[0].Sum[:31] }, false, "digest"},
		{"two digests of one algorithm", func(f *File) { f.Digests = append(f.Digests, f.Digests[0]) }, false, "two sha-256"},
		{"unknown digest algorithm", func(f *File) { f.Digests[0].Algo = 0 }, false, "digest"},
		{"pieces of another size", func(f *File) { f.Pieces.Size++ }, false, "pieces"},
		{"pieces without hashes", func(f *File) { f.Pieces.Pieces = nil }, false, "pieces"},
		{"pieces hashes short", func(f *File) { f.Pieces.Pieces = f.Pieces.Pieces[1:] }, false, "pieces"},
		{"pieces with no size", func(f *File) { f.Size = -1 }, false, "pieces"},
		{"no mirror", func(f *File) { f.Mirrors = nil }, false, "no mirror"},
		{"idm mirror", func(f *File) { f.Mirrors[0].URL = "idm://h.test:9001" }, false, "http"},
		{"ftp mirror", func(f *File) { f.Mirrors[0].URL = "ftp://h.test/ok.bin" }, false, "http"},
		{"mirror with spaces around", func(f *File) { f.Mirrors[0].URL = " http://h.test/ok.bin" }, false, "http"},
		{"priority too large", func(f *File) { f.Mirrors[0].Priority = LowestPriority + 1 }, false, "priority"},
		{"negative priority", func(f *File) { f.Mirrors[0].Priority = -1 }, false, "priority"},
		{"location not a country", func(f *File) { f.Mirrors[0].Location = "deu" }, false, "location"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := ok()
			tt.change(&f)
			files := []File{f}
			if tt.second {
				g := ok()
				g.Name = "OK.BIN"
				files = append(files, g)
			}
			var b bytes.Buffer
			err := Write(&b, files)
			if err == nil {
				t.Fatalf("Write succeeded:\n%s", b.String())
			}
			if !strings.HasPrefix(err.Error(), "metalink: ") || !strings.Contains(err.Error(), tt.says) || strings.Contains(err.Error(), "\n") {
				t.Errorf("error %q, want one line saying %q", err, tt.says)
			}
			if b.Len() != 0 {
				t.Errorf("Write wrote %d bytes before refusing", b.Len())
			}
		})
	}
	if err := Write(&bytes.Buffer{}, nil); err == nil {
		t.Error("Write of no file succeeded")
	}
}

// failingWriter fails every write.
type failingWriter struct{}

var errDiskFull = errors.New("disk full")

func (failingWriter) Write([]byte) (int, error) { return 0, errDiskFull }

func TestWrite_WriterFails(t *testing.T) {
	f := File{Name: "x", Size: 1, Mirrors: []Mirror{{URL: "http://h.test/x"}}}
	if err := Write(failingWriter{}, []File{f}); !errors.Is(err, errDiskFull) {
		t.Errorf("Write to a failing writer: %v, want its error", err)
	}
}
