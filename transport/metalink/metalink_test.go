package metalink

import (
	"bytes"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/idmproject/idm/identity"
	"github.com/idmproject/idm/transport/addr"
)

// opensuseTemplate has the shape of the .meta4 documents that openSUSE's
// mirror network (MirrorBrain) serves beside each file: descriptive
// elements to ignore, three whole-file hashes, SHA-1 pieces, mirrors with
// a country and a priority, an ftp mirror and a torrent <metaurl> that
// idm cannot use. The host names are placeholders.
const opensuseTemplate = `<?xml version="1.0" encoding="UTF-8"?>
<metalink xmlns="urn:ietf:params:xml:ns:metalink">
  <generator>MirrorBrain/2.19.0</generator>
  <origin dynamic="true">http://download.example.org/distribution/leap/15.5/iso/{{NAME}}.meta4</origin>
  <published>2023-06-07T13:48:53Z</published>
  <publisher>
    <name>openSUSE</name>
    <url>http://download.example.org</url>
  </publisher>

  <file name="{{NAME}}">
    <size>{{SIZE}}</size>

    <!-- <mtime>1685540633</mtime> -->

    <hash type="md5">{{MD5}}</hash>
    <hash type="sha-1">{{SHA1}}</hash>
    <hash type="sha-256">{{SHA256}}</hash>
    <pieces length="{{PIECELEN}}" type="sha-1">
{{PIECES}}    </pieces>

    <signature mediatype="application/pgp-signature">-----BEGIN PGP SIGNATURE-----

iQEcBAABAgAGBQJkgJ0AAAoJEDRjw8ezLzeHcvYH/2xV
-----END PGP SIGNATURE-----
</signature>

    <url location="de" priority="1">http://mirror-de1.example.org/opensuse/distribution/leap/15.5/iso/{{NAME}}</url>
    <url location="de" priority="2">https://mirror-de2.example.org/pub/opensuse/distribution/leap/15.5/iso/{{NAME}}</url>
    <url location="cz" priority="3">http://mirror-cz.example.net/opensuse/distribution/leap/15.5/iso/{{NAME}}</url>
    <url location="de" priority="4">ftp://ftp.example.de/pub/opensuse/distribution/leap/15.5/iso/{{NAME}}</url>
    <url location="us" priority="5">http://mirror-us.example.com/opensuse/distribution/leap/15.5/iso/{{NAME}}</url>
    <url location="de" priority="6">http://download.example.org/distribution/leap/15.5/iso/{{NAME}}</url>
    <metaurl mediatype="torrent" priority="1">http://download.example.org/distribution/leap/15.5/iso/{{NAME}}.torrent</metaurl>
  </file>
</metalink>
`

// testData returns n bytes that do not repeat, the same on every run.
func testData(n int) []byte {
	b := make([]byte, n)
	rand.NewChaCha8([32]byte{'i', 'd', 'm'}).Read(b)
	return b
}

// opensuseDoc returns a document of the shape of opensuseTemplate that
// describes data, cut into pieces of pieceLen.
func opensuseDoc(name string, data []byte, pieceLen int) string {
	var pieces strings.Builder
	for off := 0; off < len(data); off += pieceLen {
		fmt.Fprintf(&pieces, "      <hash>%x</hash>\n", sha1.Sum(data[off:min(off+pieceLen, len(data))]))
	}
	return strings.NewReplacer(
		"{{NAME}}", name,
		"{{SIZE}}", strconv.Itoa(len(data)),
		"{{MD5}}", fmt.Sprintf("%x", md5.Sum(data)),
		"{{SHA1}}", fmt.Sprintf("%x", sha1.Sum(data)),
		"{{SHA256}}", fmt.Sprintf("%x", sha256.Sum256(data)),
		"{{PIECELEN}}", strconv.Itoa(pieceLen),
		"{{PIECES}}", pieces.String(),
	).Replace(opensuseTemplate)
}

// multiFileDoc lists two files, as a project's release page might: one
// with pieces and one with nothing but a SHA-256 and mirrors without a
// priority.
const multiFileDoc = `<?xml version="1.0" encoding="UTF-8"?>
<metalink xmlns="urn:ietf:params:xml:ns:metalink">
  <published>2010-05-01T12:15:02Z</published>
  <file name="example.ext">
    <size>14471447</size>
    <identity>Example</identity>
    <version>1.0</version>
    <language>en</language>
    <description>A description of the example file for download.</description>
    <hash type="sha-256">f0ad929cd259957e160ea442eb80986b5f01f5d0a6c9a8ebed0d5f2f8e1e5bd2</hash>
    <url location="de" priority="1">ftp://ftp.example.com/example.ext</url>
    <url location="fr" priority="1">http://example.com/example.ext</url>
    <metaurl mediatype="torrent" priority="2">http://example.com/example.ext.torrent</metaurl>
  </file>
  <file name="example2.ext">
    <hash type="sha-256">2f8e1e5bd2f0ad929cd259957e160ea442eb80986b5f01f5d0a6c9a8ebed0d5f</hash>
    <url>https://a.example.com/example2.ext</url>
    <url>https://b.example.com/example2.ext</url>
  </file>
</metalink>
`

// Helpers to write small documents.
const (
	head    = `<?xml version="1.0" encoding="UTF-8"?>` + "\n" + `<metalink xmlns="urn:ietf:params:xml:ns:metalink">`
	tail    = `</metalink>`
	goodURL = `<url>http://mirror.example.org/f</url>`
	sha256a = "a3f1e6b2c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f"
	sha1a   = "0123456789abcdef0123456789abcdef01234567"
)

func doc(files ...string) string { return head + strings.Join(files, "\n") + tail }

// file writes a <file> element; name is written as given, so that a test
// can use character references.
func file(name, inner string) string {
	return `<file name="` + name + `">` + inner + `</file>`
}

// piecesXML writes n <hash> children of a given hex value.
func piecesXML(length, typ string, n int, hash string) string {
	return `<pieces length="` + length + `" type="` + typ + `">` +
		strings.Repeat(`<hash>`+hash+`</hash>`, n) + `</pieces>`
}

// parse parses s and checks what every successful Parse must give.
func parse(t *testing.T, s string) []File {
	t.Helper()
	files, err := Parse(strings.NewReader(s))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	checkFiles(t, files)
	return files
}

// checkFiles fails t unless files keep the promises of Parse: at least
// one; safe, distinct names; a size in range; digests of the right
// length; pieces that validate and match the size; and at least one
// mirror, each an http(s) address in addr's normal form, once, sorted
// by priority, with a priority and location of the right shape.
func checkFiles(t *testing.T, files []File) {
	t.Helper()
	if len(files) == 0 {
		t.Fatal("Parse returned no file and no error")
	}
	names := make(map[string]bool)
	for _, f := range files {
		if err := checkName(f.Name); err != nil {
			t.Fatalf("returned an unsafe name: %v", err)
		}
		if names[strings.ToLower(f.Name)] {
			t.Fatalf("returned the name %q twice", f.Name)
		}
		names[strings.ToLower(f.Name)] = true
		if f.Size < -1 || f.Size > identity.MaxSize {
			t.Fatalf("file %q: size %d", f.Name, f.Size)
		}
		for _, d := range f.Digests {
			if d.Algo.Size() == 0 || len(d.Sum) != d.Algo.Size() {
				t.Fatalf("file %q: malformed digest %v", f.Name, d)
			}
		}
		if p := f.Pieces; p != nil {
			if err := p.Validate(); err != nil {
				t.Fatalf("file %q: pieces do not validate: %v", f.Name, err)
			}
			if p.Size != f.Size || p.Pieces == nil {
				t.Fatalf("file %q of %d bytes: pieces of a file of %d, hashes %v", f.Name, f.Size, p.Size, p.Pieces != nil)
			}
		}
		if len(f.Mirrors) == 0 {
			t.Fatalf("file %q: no mirror", f.Name)
		}
		urls := make(map[string]bool)
		for i, m := range f.Mirrors {
			a, err := addr.Parse(m.URL)
			if err != nil || (a.Scheme != addr.HTTP && a.Scheme != addr.HTTPS) {
				t.Fatalf("file %q: mirror %q is not an http(s) address: %v", f.Name, m.URL, err)
			}
			if urls[m.URL] {
				t.Fatalf("file %q: mirror %q twice", f.Name, m.URL)
			}
			urls[m.URL] = true
			if m.Priority < 1 || m.Priority > LowestPriority {
				t.Fatalf("file %q: mirror %q has priority %d", f.Name, m.URL, m.Priority)
			}
			if m.Location != "" && (!isCountry(m.Location) || m.Location != strings.ToLower(m.Location)) {
				t.Fatalf("file %q: mirror %q has location %q", f.Name, m.URL, m.Location)
			}
			if i > 0 && m.Priority < f.Mirrors[i-1].Priority {
				t.Fatalf("file %q: mirrors not sorted by priority: %v", f.Name, f.Mirrors)
			}
		}
	}
}

func mustHex(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

// TestParse_OpenSUSE reads documents of the shape openSUSE's mirror
// network serves, with 1 MiB and 256 KiB pieces: the SHA-1 and SHA-256
// whole-file hashes are kept and the MD5 ignored; the piece hashes are
// those of the data, in order; the ftp mirror, the torrent and the
// publisher's <url> are not taken for mirrors; and the descriptive
// elements change nothing.
func TestParse_OpenSUSE(t *testing.T) {
	const name = "openSUSE-Leap-15.5-NET-x86_64-Media.iso"
	data := testData(5<<20 + 12345)
	for _, pieceLen := range []int{1 << 20, 256 << 10} {
		t.Run(strconv.Itoa(pieceLen), func(t *testing.T) {
			files := parse(t, opensuseDoc(name, data, pieceLen))
			if len(files) != 1 {
				t.Fatalf("%d files, want 1", len(files))
			}
			f := files[0]
			if f.Name != name || f.Size != int64(len(data)) {
				t.Errorf("name %q size %d, want %q %d", f.Name, f.Size, name, len(data))
			}
			s1, s256 := sha1.Sum(data), sha256.Sum256(data)
			wantDigests := []identity.Digest{{Algo: identity.SHA1, Sum: s1[:]}, {Algo: identity.SHA256, Sum: s256[:]}}
			if !reflect.DeepEqual(f.Digests, wantDigests) {
				t.Errorf("digests %v, want %v", f.Digests, wantDigests)
			}
			p := f.Pieces
			if p == nil {
				t.Fatal("no pieces")
			}
			if p.PieceLen != int64(pieceLen) || p.Algo != identity.SHA1 || p.Digests != nil {
				t.Errorf("pieces of %d under %v with digests %v, want %d under sha-1 and none", p.PieceLen, p.Algo, p.Digests, pieceLen)
			}
			for i := range p.Count() {
				off, n := p.Piece(i)
				if want := identity.SHA1.Sum(data[off : off+n]); !bytes.Equal(p.PieceHash(i), want) {
					t.Errorf("piece %d: hash %x, want %x", i, p.PieceHash(i), want)
				}
			}
			dir := "/opensuse/distribution/leap/15.5/iso/" + name
			want := []Mirror{
				{"http://mirror-de1.example.org" + dir, 1, "de"},
				{"https://mirror-de2.example.org/pub" + dir, 2, "de"},
				{"http://mirror-cz.example.net" + dir, 3, "cz"},
				{"http://mirror-us.example.com" + dir, 5, "us"},
				{"http://download.example.org/distribution/leap/15.5/iso/" + name, 6, "de"},
			}
			if !reflect.DeepEqual(f.Mirrors, want) {
				t.Errorf("mirrors\n%v\nwant\n%v", f.Mirrors, want)
			}
		})
	}
}

// TestParse_MultiFile reads two files in document order, each with its
// own hashes and mirrors, and gives -1 as the size of the one without
// <size>.
func TestParse_MultiFile(t *testing.T) {
	files := parse(t, multiFileDoc)
	if len(files) != 2 {
		t.Fatalf("%d files, want 2", len(files))
	}
	want := []File{
		{
			Name:    "example.ext",
			Size:    14471447,
			Digests: []identity.Digest{{Algo: identity.SHA256, Sum: mustHex("f0ad929cd259957e160ea442eb80986b5f01f5d0a6c9a8ebed0d5f2f8e1e5bd2")}},
			Mirrors: []Mirror{{"http://example.com/example.ext", 1, "fr"}},
		},
		{
			Name:    "example2.ext",
			Size:    -1,
			Digests: []identity.Digest{{Algo: identity.SHA256, Sum: mustHex("2f8e1e5bd2f0ad929cd259957e160ea442eb80986b5f01f5d0a6c9a8ebed0d5f")}},
			Mirrors: []Mirror{
				{"https://a.example.com/example2.ext", LowestPriority, ""},
				{"https://b.example.com/example2.ext", LowestPriority, ""},
			},
		},
	}
	if !reflect.DeepEqual(files, want) {
		t.Errorf("got\n%+v\nwant\n%+v", files, want)
	}
}

// refusal is a document Parse must refuse, and a part of the error it
// must give.
type refusal struct {
	name, doc, want string
	notMetalink     bool // the error must be ErrNotMetalink
}

// refusals returns every kind of document Parse refuses.
func refusals() []refusal {
	okFile := file("a.iso", goodURL)
	withSize := func(size, inner string) string {
		return doc(file("a.iso", `<size>`+size+`</size>`+inner+goodURL))
	}
	withURL := func(attrs string) string {
		return doc(file("a.iso", `<url `+attrs+`>http://mirror.example.org/a.iso</url>`))
	}
	named := func(name, want string) refusal {
		return refusal{"name " + name, doc(file(name, goodURL)), want, false}
	}
	return []refusal{
		// Not a Metalink 4 document.
		{"empty", "", "the document is empty", true},
		{"blank", " \n\t\r\n", "the document is empty", true},
		{"text", "hello", "text before the first element", true},
		{"json", `{"file": []}`, "text before the first element", true},
		{"only a comment", `<?xml version="1.0"?><!-- nothing -->`, "no XML element", true},
		{"html", `<!DOCTYPE html><html><body>404 Not Found</body></html>`, `root element is <html> in namespace ""`, true},
		{"metalink 3", `<metalink version="3.0" xmlns="http://www.metalinker.org/"><files/></metalink>`, "Metalink 3", true},
		{"no namespace", `<metalink>` + okFile + `</metalink>`, `<metalink> in namespace ""`, true},
		{"other namespace", `<metalink xmlns="urn:example">` + okFile + `</metalink>`, `namespace "urn:example"`, true},
		{"wrong root", `<file xmlns="urn:ietf:params:xml:ns:metalink" name="a.iso">` + goodURL + `</file>`, "root element is <file>", true},
		{"latin-1", `<?xml version="1.0" encoding="ISO-8859-1"?>` + doc(okFile)[len(`<?xml version="1.0" encoding="UTF-8"?>`):], "only UTF-8", true},

		// Not well formed, or more than one document.
		{"truncated", head + okFile, "unexpected EOF", false},
		{"unknown entity", doc(file("a&evil;.iso", goodURL)), "invalid character entity &evil;", false},
		{"second root", doc(okFile) + head + okFile + tail, "second root element <metalink>", false},
		{"text after", doc(okFile) + "\nrm -rf /\n", "text after </metalink>", false},

		// No files, or the same file twice.
		{"no file", head + `<generator>x</generator>` + tail, "no <file>", false},
		{"duplicate name", doc(okFile, okFile), `file "a.iso" is listed twice`, false},
		{"duplicate name in another case", doc(okFile, file("A.ISO", goodURL)), `"a.iso" and "A.ISO" differ only in case`, false},

		// Names that are unsafe as a file in the download directory.
		{"no name", doc(`<file>` + goodURL + `</file>`), "a <file> has no name", false},
		named("", "a <file> has no name"),
		named(".", `"." leaves the download directory`),
		named("..", `".." leaves the download directory`),
		named("...", `"..." is only dots and spaces`),
		named(". .", `". ." is only dots and spaces`),
		named("../etc/passwd", `"../etc/passwd" leaves the download directory`),
		named(`..\boot.ini`, `"..\\boot.ini" leaves the download directory`),
		named("dir/../../x", `"dir/../../x" leaves the download directory`),
		named("/etc/passwd", `"/etc/passwd" is an absolute path`),
		named(`\\server\share\x`, `"\\\\server\\share\\x" is an absolute path`),
		named(`C:\x.exe`, `"C:\\x.exe" is an absolute path`),
		named("c:x.exe", `"c:x.exe" is an absolute path`),
		named("iso/a.iso", `"iso/a.iso" is in a subdirectory: names with / or \ are not supported yet`),
		named(`iso\a.iso`, `"iso\\a.iso" is in a subdirectory`),
		named("a&#9;b", `"a\tb" holds a control character`),
		named("a&#10;b", `"a\nb" holds a control character`),
		named("a&#x7f;b", `"a\x7fb" holds a control character`),
		named("a&#x85;b", `"a\u0085b" holds a control character`),
		named(strings.Repeat("x", 256), "is longer than 255 bytes"),

		// Sizes.
		{"negative size", withSize("-1", ""), `size "-1" is not a number of bytes`, false},
		{"size not a number", withSize("4 GiB", ""), `size "4 GiB" is not a number`, false},
		{"empty size", withSize("", ""), `size "" is not a number`, false},
		{"size too large", withSize("4611686018427387905", ""), `size "4611686018427387905" is not a number of bytes from 0 to 4611686018427387904`, false},
		{"two sizes", doc(file("a.iso", `<size>1</size><size>2</size>`+goodURL)), "2 <size> elements", false},

		// Whole-file hashes of a known algorithm that cannot be right.
		{"short sha-256", doc(file("a.iso", `<hash type="sha-256">`+sha256a[1:]+`</hash>`+goodURL)), "sha-256 hash", false},
		{"sha-256 of sha-1 length", doc(file("a.iso", `<hash type="sha-256">`+sha1a+`</hash>`+goodURL)), "has 40 hex digits, want 64", false},
		{"sha-1 not hex", doc(file("a.iso", `<hash type="sha-1">`+strings.Repeat("z", 40)+`</hash>`+goodURL)), "is not hexadecimal", false},
		{"two sha-256 that differ", doc(file("a.iso", `<hash type="sha-256">`+sha256a+`</hash><hash type="SHA-256">`+strings.Repeat("0", 64)+`</hash>`+goodURL)),
			"two sha-256 hashes that differ", false},

		// Pieces that contradict the size or themselves.
		{"too few pieces", withSize("3145728", piecesXML("1048576", "sha-1", 2, sha1a)), "2 sha-1 piece hashes, but 3145728 bytes make 3 pieces of 1048576", false},
		{"too many pieces", withSize("3145728", piecesXML("1048576", "sha-1", 4, sha1a)), "4 sha-1 piece hashes", false},
		{"last piece not counted", withSize("3145729", piecesXML("1048576", "sha-1", 3, sha1a)), "make 4 pieces", false},
		{"pieces without size", doc(file("a.iso", piecesXML("1048576", "sha-1", 1, sha1a)+goodURL)), "sha-1 pieces but no <size>", false},
		{"pieces of length 0", withSize("1", piecesXML("0", "sha-1", 1, sha1a)), `length "0" is not a positive number`, false},
		{"pieces of negative length", withSize("1", piecesXML("-4096", "sha-1", 1, sha1a)), `length "-4096"`, false},
		{"pieces without length", withSize("1", `<pieces type="sha-1"><hash>`+sha1a+`</hash></pieces>`), `length ""`, false},
		{"piece hash not hex", withSize("2097152", `<pieces length="1048576" type="sha-1"><hash>`+sha1a+`</hash><hash>`+strings.Repeat("g", 40)+`</hash></pieces>`),
			"piece 1: sha-1 hash", false},
		{"piece hash of another length", withSize("1048576", piecesXML("1048576", "sha-256", 1, sha1a)), "piece 0: sha-256 hash", false},

		// Mirrors.
		{"priority 0", withURL(`priority="0"`), `<url> 1: priority "0" is not a number from 1 to 999999`, false},
		{"priority too large", withURL(`priority="1000000"`), `priority "1000000"`, false},
		{"priority not a number", withURL(`priority="high"`), `priority "high"`, false},
		{"priority of an ftp url", doc(file("a.iso", goodURL+`<url priority="-1">ftp://f.example.org/a.iso</url>`)), `<url> 2: priority "-1"`, false},
		{"location of three letters", withURL(`location="deu"`), `<url> 1: location "deu" is not a two-letter country code`, false},
		{"location not letters", withURL(`location="d1"`), `location "d1"`, false},
		{"no url", doc(file("a.iso", `<size>1</size>`)), `file "a.iso": no http:// or https:// <url>`, false},
		{"only ftp and torrent", doc(file("a.iso", `<url>ftp://f.example.org/a.iso</url><metaurl mediatype="torrent">http://t.example.org/a.torrent</metaurl>`)),
			`file "a.iso": no http:// or https:// <url>`, false},
		{"only unusable urls", doc(file("a.iso", `<url>idm://host:9001</url><url>http://</url><url>not a url</url>`)), "no http:// or https:// <url>", false},
	}
}

// TestParse_Refused checks that Parse refuses each kind of bad document
// with one line that says what is wrong, and says whether it is a
// Metalink at all.
func TestParse_Refused(t *testing.T) {
	for _, tt := range refusals() {
		t.Run(tt.name, func(t *testing.T) {
			files, err := Parse(strings.NewReader(tt.doc))
			if err == nil {
				t.Fatalf("Parse = %+v, want an error", files)
			}
			msg := err.Error()
			if !strings.Contains(msg, tt.want) {
				t.Errorf("error %q, want it to contain %q", msg, tt.want)
			}
			if !strings.HasPrefix(msg, "metalink: ") || strings.Contains(msg, "\n") {
				t.Errorf("error %q is not one line that starts with metalink:", msg)
			}
			if got := errors.Is(err, ErrNotMetalink); got != tt.notMetalink {
				t.Errorf("errors.Is(%q, ErrNotMetalink) = %v, want %v", msg, got, tt.notMetalink)
			}
		})
	}
}

// TestParse_Size reads a document of exactly MaxSize bytes and refuses
// one a byte longer without reading further, and reports a failed read.
func TestParse_Size(t *testing.T) {
	d := doc(file("a.iso", goodURL))
	padded := d + strings.Repeat(" ", MaxSize-len(d))
	parse(t, padded)

	r := &countingReader{r: strings.NewReader(padded + " " + strings.Repeat("x", 1<<20))}
	if _, err := Parse(r); err == nil || !strings.Contains(err.Error(), "larger than 16 MiB") {
		t.Errorf("Parse of %d bytes: %v, want larger than 16 MiB", MaxSize+1, err)
	}
	if r.n > MaxSize+1+32<<10 {
		t.Errorf("read %d bytes of a document refused at %d", r.n, MaxSize+1)
	}

	if _, err := Parse(iotest.ErrReader(errors.New("connection reset"))); err == nil || err.Error() != "metalink: read: connection reset" {
		t.Errorf("Parse of a failing reader: %v", err)
	}
}

type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

// TestCheckName checks names directly, with the bytes a document cannot
// carry (XML refuses NUL and invalid UTF-8 on its own).
func TestCheckName(t *testing.T) {
	tests := []struct {
		name string
		want string // part of the error, or "" when the name is safe
	}{
		{"openSUSE-Leap-15.5-NET-x86_64-Media.iso", ""},
		{"résumé.pdf", ""},
		{".hidden", ""},
		{"a..b", ""},
		{"..a", ""},
		{"a b", ""},
		{"-rf", ""},
		{strings.Repeat("é", 127), ""},
		{strings.Repeat("é", 128), "longer than 255 bytes"},
		{"a\x00b", "control character"},
		{"a\x1bb", "control character"},
		{"\xff.iso", "not UTF-8"},
		{"..", "leaves the download directory"},
		{"/", "absolute"},
		{"Z:", "absolute"},
		{"1:a", ""},
	}
	for _, tt := range tests {
		err := checkName(tt.name)
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("checkName(%q): %v, want nil", tt.name, err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("checkName(%q): %v, want %q", tt.name, err, tt.want)
		}
	}
}

// TestParse_Digests reads whole-file hashes: algorithm names in any case
// and with spaces, hex in any case and with the white space of an
// indented document, one digest per algorithm, and unknown algorithms
// ignored.
func TestParse_Digests(t *testing.T) {
	blake3a := strings.Repeat("b3", 32)
	tests := []struct {
		name, hashes string
		want         []identity.Digest
	}{
		{"lower case", `<hash type="sha-256">` + sha256a + `</hash>`, []identity.Digest{{Algo: identity.SHA256, Sum: mustHex(sha256a)}}},
		{"upper-case type", `<hash type="SHA-256">` + sha256a + `</hash>`, []identity.Digest{{Algo: identity.SHA256, Sum: mustHex(sha256a)}}},
		{"upper-case hex and white space", `<hash type=" Sha-1 ">` + "\n\t  " + strings.ToUpper(sha1a) + "\n  " + `</hash>`, []identity.Digest{{Algo: identity.SHA1, Sum: mustHex(sha1a)}}},
		{"unknown algorithms", `<hash type="md5">d41d8cd98f00b204e9800998ecf8427e</hash><hash type="sha3-256">zz</hash><hash>nothing</hash>`, nil},
		{"sha-512", `<hash type="sha-512">` + strings.Repeat("5a", 64) + `</hash>`, []identity.Digest{{Algo: identity.SHA512, Sum: mustHex(strings.Repeat("5a", 64))}}},
		{"blake3", `<hash type="blake3">` + blake3a + `</hash>`, []identity.Digest{{Algo: identity.BLAKE3, Sum: mustHex(blake3a)}}},
		{"same hash twice", `<hash type="sha-1">` + sha1a + `</hash><hash type="SHA-1">` + strings.ToUpper(sha1a) + `</hash>`, []identity.Digest{{Algo: identity.SHA1, Sum: mustHex(sha1a)}}},
		{"document order", `<hash type="sha-256">` + sha256a + `</hash><hash type="sha-1">` + sha1a + `</hash>`,
			[]identity.Digest{{Algo: identity.SHA256, Sum: mustHex(sha256a)}, {Algo: identity.SHA1, Sum: mustHex(sha1a)}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := parse(t, doc(file("a.iso", tt.hashes+goodURL)))[0]
			if !reflect.DeepEqual(f.Digests, tt.want) {
				t.Errorf("digests %v, want %v", f.Digests, tt.want)
			}
		})
	}
}

// TestParse_Pieces reads <pieces>: pieces identity can hold are kept,
// the strongest of several; those outside its limits or under an unknown
// algorithm are dropped, and the file is kept with its whole-file hash.
func TestParse_Pieces(t *testing.T) {
	const mib = 1 << 20
	sha256b := strings.Repeat("5b", 32)
	tests := []struct {
		name          string
		size          int64
		pieces        string
		wantLen       int64 // 0 when the pieces must be dropped
		wantAlgo      identity.Algo
		wantFirstHash string
	}{
		{"sha-1 of 1 MiB", 3 * mib, piecesXML("1048576", "sha-1", 3, sha1a), mib, identity.SHA1, sha1a},
		{"short last piece", 2*mib + 1, piecesXML("1048576", "sha-1", 3, sha1a), mib, identity.SHA1, sha1a},
		{"one piece longer than the file", 100, piecesXML("262144", "sha-1", 1, sha1a), 256 << 10, identity.SHA1, sha1a},
		{"upper-case type", mib, piecesXML("1048576", "SHA-1", 1, sha1a), mib, identity.SHA1, sha1a},
		{"the strongest of two", 2 * mib, piecesXML("1048576", "sha-1", 2, sha1a) + piecesXML("1048576", "sha-256", 2, sha256b), mib, identity.SHA256, sha256b},
		{"the strongest, whatever the order", 2 * mib, piecesXML("1048576", "sha-256", 2, sha256b) + piecesXML("262144", "sha-1", 8, sha1a), mib, identity.SHA256, sha256b},
		{"an empty file", 0, piecesXML("1048576", "sha-1", 0, sha1a), mib, identity.SHA1, ""},
		{"below the shortest piece", 4096, piecesXML("1024", "sha-1", 4, sha1a), 0, 0, ""},
		{"above the longest piece", 128 * mib, piecesXML("134217728", "sha-1", 1, sha1a), 0, 0, ""},
		{"more pieces than identity holds", 1 << 40, piecesXML("16384", "sha-1", 1, sha1a), 0, 0, ""},
		{"unknown algorithm", 3 * mib, piecesXML("1048576", "md5", 3, "d41d8cd98f00b204e9800998ecf8427e"), 0, 0, ""},
		{"unknown algorithm beside a known one", 3 * mib, piecesXML("1048576", "tiger", 1, "x") + piecesXML("1048576", "sha-1", 3, sha1a), mib, identity.SHA1, sha1a},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			inner := fmt.Sprintf(`<size>%d</size><hash type="sha-256">%s</hash>%s%s`, tt.size, sha256a, tt.pieces, goodURL)
			f := parse(t, doc(file("a.iso", inner)))[0]
			if len(f.Digests) != 1 {
				t.Errorf("digests %v, want the sha-256", f.Digests)
			}
			p := f.Pieces
			if tt.wantLen == 0 {
				if p != nil {
					t.Errorf("pieces %+v, want none", *p)
				}
				return
			}
			if p == nil {
				t.Fatal("no pieces")
			}
			if p.Size != tt.size || p.PieceLen != tt.wantLen || p.Algo != tt.wantAlgo {
				t.Errorf("pieces of %d bytes of %d under %v, want %d, %d, %v", p.Size, p.PieceLen, p.Algo, tt.size, tt.wantLen, tt.wantAlgo)
			}
			if tt.wantFirstHash != "" && !bytes.Equal(p.PieceHash(0), mustHex(tt.wantFirstHash)) {
				t.Errorf("first piece hash %x, want %s", p.PieceHash(0), tt.wantFirstHash)
			}
		})
	}
}

// TestParse_Mirrors reads <url>s: only http(s) addresses, in addr's
// normal form, each once with the attributes of its first listing, by
// priority and then in document order, a <url> without a priority last.
func TestParse_Mirrors(t *testing.T) {
	tests := []struct {
		name, urls string
		want       []Mirror
	}{
		{"by priority",
			`<url priority="3">http://c.example.org/f</url><url priority="1">http://a.example.org/f</url><url priority="2">http://b.example.org/f</url>`,
			[]Mirror{{"http://a.example.org/f", 1, ""}, {"http://b.example.org/f", 2, ""}, {"http://c.example.org/f", 3, ""}}},
		{"ties in document order",
			`<url priority="2" location="us">http://u.example.org/f</url><url priority="1">http://a.example.org/f</url><url priority="2" location="de">http://d.example.org/f</url>`,
			[]Mirror{{"http://a.example.org/f", 1, ""}, {"http://u.example.org/f", 2, "us"}, {"http://d.example.org/f", 2, "de"}}},
		{"no priority after all others",
			`<url>http://none.example.org/f</url><url priority="999999">http://last.example.org/f</url><url priority="7">http://seven.example.org/f</url>`,
			[]Mirror{{"http://seven.example.org/f", 7, ""}, {"http://none.example.org/f", LowestPriority, ""}, {"http://last.example.org/f", LowestPriority, ""}}},
		{"other schemes ignored",
			`<url>ftp://f.example.org/f</url><url>rsync://r.example.org/f</url><url>idm://i.example.org:9001</url><url>mailto:a@example.org</url><url>https://s.example.org/f</url>` +
				`<metaurl mediatype="torrent" priority="1">http://t.example.org/f.torrent</metaurl>`,
			[]Mirror{{"https://s.example.org/f", LowestPriority, ""}}},
		{"malformed addresses ignored",
			`<url>http://</url><url>http://bad host/f</url><url>http://h.example.org:99999/f</url><url></url><url>https://ok.example.org/f</url>`,
			[]Mirror{{"https://ok.example.org/f", LowestPriority, ""}}},
		{"normal form, white space trimmed",
			"<url location=\"DE\">\n   HTTP://Mirror.Example.ORG:80/pub/f#top\n</url><url>https://x.example.org:443</url>",
			[]Mirror{{"http://mirror.example.org/pub/f", LowestPriority, "de"}, {"https://x.example.org/", LowestPriority, ""}}},
		{"duplicates kept once, as first listed",
			`<url priority="5" location="fr">http://m.example.org/f</url><url priority="1" location="de">HTTP://M.EXAMPLE.ORG:80/f</url><url>http://m.example.org/f#x</url>`,
			[]Mirror{{"http://m.example.org/f", 5, "fr"}}},
		{"secrets kept",
			`<url>https://user:pw@s.example.org/f?sig=abc</url>`,
			[]Mirror{{"https://user:pw@s.example.org/f?sig=abc", LowestPriority, ""}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := parse(t, doc(file("f", tt.urls)))[0]
			if !reflect.DeepEqual(f.Mirrors, tt.want) {
				t.Errorf("mirrors\n%v\nwant\n%v", f.Mirrors, tt.want)
			}
		})
	}
}

// TestFile_Ordered orders mirrors by priority, then by the preferred
// locations in the order given, then as listed, and leaves the file's
// own list alone.
func TestFile_Ordered(t *testing.T) {
	f := File{Name: "f", Mirrors: []Mirror{
		{"http://de1/", 1, "de"},
		{"http://us1/", 1, "us"},
		{"http://none1/", 1, ""},
		{"http://at1/", 1, "at"},
		{"http://de2/", 2, "de"},
		{"http://at2/", 2, "at"},
		{"http://none2/", LowestPriority, ""},
		{"http://at3/", LowestPriority, "at"},
	}}
	orig := append([]Mirror(nil), f.Mirrors...)
	tests := []struct {
		name      string
		locations []string
		want      []string
	}{
		{"no preference", nil, []string{"de1", "us1", "none1", "at1", "de2", "at2", "none2", "at3"}},
		{"one country", []string{"at"}, []string{"at1", "de1", "us1", "none1", "at2", "de2", "at3", "none2"}},
		{"two countries in order", []string{"us", "at"}, []string{"us1", "at1", "de1", "none1", "at2", "de2", "at3", "none2"}},
		{"any case", []string{"AT", "Us"}, []string{"at1", "us1", "de1", "none1", "at2", "de2", "at3", "none2"}},
		{"a country named twice keeps its first place", []string{"at", "de", "AT"}, []string{"at1", "de1", "us1", "none1", "at2", "de2", "at3", "none2"}},
		{"an empty preference matches nothing", []string{""}, []string{"de1", "us1", "none1", "at1", "de2", "at2", "none2", "at3"}},
		{"an unknown country matches nothing", []string{"zz"}, []string{"de1", "us1", "none1", "at1", "de2", "at2", "none2", "at3"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			for _, m := range f.Ordered(tt.locations) {
				got = append(got, strings.Trim(strings.TrimPrefix(m.URL, "http://"), "/"))
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Ordered(%q) = %v, want %v", tt.locations, got, tt.want)
			}
			if !reflect.DeepEqual(f.Mirrors, orig) {
				t.Fatalf("Ordered changed the file's mirrors to %v", f.Mirrors)
			}
		})
	}
}

// TestParse_OpenSUSE_Ordered orders a real-shaped document's mirrors for
// a user in the Czech Republic: priority still decides first.
func TestParse_OpenSUSE_Ordered(t *testing.T) {
	f := parse(t, opensuseDoc("x.iso", testData(5000), 256<<10))[0]
	var got []string
	for _, m := range f.Ordered([]string{"cz", "us"}) {
		got = append(got, m.Location)
	}
	if want := []string{"de", "de", "cz", "us", "de"}; !reflect.DeepEqual(got, want) {
		t.Errorf("locations in order %v, want %v", got, want)
	}
}
