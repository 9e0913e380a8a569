package metalink

import (
	"bytes"
	"cmp"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/idmproject/idm/identity"
	"github.com/idmproject/idm/transport/addr"
)

// MediaType is the media type of Metalink 4 documents (RFC 5854, section
// 7), which a server may give in Content-Type.
const MediaType = "application/metalink4+xml"

// MediaType3 is the media type of Metalink 3 documents (".metalink"),
// which Parse refuses: a server that answers with it is answering with a
// Metalink all the same, not with a file.
const MediaType3 = "application/metalink+xml"

// MaxSize bounds a document: Parse refuses a larger one. The largest
// real ones, a multi-gigabyte image with 256 KiB SHA-1 pieces and a few
// hundred mirrors, are a few MiB.
const MaxSize = 16 << 20

// LowestPriority is the largest priority RFC 5854 allows, the least
// preferred, and the one a <url> without a priority is given, as aria2
// gives it, so that it comes after every mirror that has one.
const LowestPriority = 999999

// ErrNotMetalink reports a document that is not a Metalink 4 document at
// all: empty, not XML, or XML of another kind, such as the HTML page a
// server returns in place of the file. Callers compare with errors.Is.
var ErrNotMetalink = errors.New("not a Metalink 4 document")

// File is one <file> of a Metalink.
type File struct {
	// Name is the file's name, checked safe to create in the download
	// directory: at most 255 bytes of UTF-8, not only dots and spaces,
	// no path separator, control character or drive letter.
	Name string
	// Size is the file's length in bytes, or -1 when the Metalink gives
	// none.
	Size int64
	// Digests are the whole-file hashes under the algorithms package
	// identity knows, one per algorithm, in document order.
	Digests []identity.Digest
	// Pieces describes the file's pieces, with their hashes, when the
	// Metalink gives them under an algorithm identity knows and within
	// its limits; nil otherwise. It has passed identity.File.Validate.
	// Its Digests are left empty: they are the File's.
	Pieces *identity.File
	// Mirrors are the http(s) addresses that hold the file, each once,
	// by priority (best first) and then in document order. There is at
	// least one.
	Mirrors []Mirror
}

// Mirror is one <url> of a file.
type Mirror struct {
	// URL is the address in the normal form of package addr, with any
	// secret it was given with: show addr's Redacted form, not this.
	URL string
	// Priority ranks the mirror, 1 the best, LowestPriority the worst
	// and the rank of a <url> that gives none.
	Priority int
	// Location is the mirror's country as a lower-case ISO 3166-1
	// alpha-2 code, or "" when the Metalink does not say.
	Location string
}

// Ordered returns the file's mirrors in the order to try them: by
// priority, 1 first; among equal priorities, those in the preferred
// locations first, in the order locations lists them (ISO 3166-1 alpha-2
// codes, in any case), then the others; and otherwise in their order in
// Mirrors, which is the document's. It does not change f.
func (f *File) Ordered(locations []string) []Mirror {
	rank := make(map[string]int, len(locations))
	for i, l := range locations {
		l = strings.ToLower(l)
		if _, dup := rank[l]; !dup {
			rank[l] = i
		}
	}
	locRank := func(l string) int {
		if r, ok := rank[l]; ok && l != "" {
			return r
		}
		return len(locations)
	}
	out := slices.Clone(f.Mirrors)
	slices.SortStableFunc(out, func(a, b Mirror) int {
		if c := cmp.Compare(a.Priority, b.Priority); c != 0 {
			return c
		}
		return cmp.Compare(locRank(a.Location), locRank(b.Location))
	})
	return out
}

// The namespaces of Metalink 4 and of its predecessor, which is only
// recognised to say why it is refused.
const (
	namespace = "urn:ietf:params:xml:ns:metalink"
	metalink3 = "http://www.metalinker.org/"
)

// xmlSpace is what XML counts as white space, which may surround any
// value of an indented document.
const xmlSpace = " \t\r\n"

// maxNameLen bounds a name: most file systems allow no longer one.
const maxNameLen = 255

// The document as encoding/xml reads it. Only the direct children of
// <file> in the Metalink namespace are read, so a <url> of <publisher>
// or of an extension is not taken for a mirror.
type (
	xmlMetalink struct {
		Files []xmlFile `xml:"urn:ietf:params:xml:ns:metalink file"`
	}
	xmlFile struct {
		Name   string      `xml:"name,attr"`
		Sizes  []string    `xml:"urn:ietf:params:xml:ns:metalink size"`
		Hashes []xmlHash   `xml:"urn:ietf:params:xml:ns:metalink hash"`
		Pieces []xmlPieces `xml:"urn:ietf:params:xml:ns:metalink pieces"`
		URLs   []xmlURL    `xml:"urn:ietf:params:xml:ns:metalink url"`
	}
	xmlHash struct {
		Type  string `xml:"type,attr"`
		Value string `xml:",chardata"`
	}
	xmlPieces struct {
		Length string   `xml:"length,attr"`
		Type   string   `xml:"type,attr"`
		Hashes []string `xml:"urn:ietf:params:xml:ns:metalink hash"`
	}
	xmlURL struct {
		Location string `xml:"location,attr"`
		Priority string `xml:"priority,attr"`
		Value    string `xml:",chardata"`
	}
)

// Parse reads a Metalink 4 document and returns its files, in document
// order. It reads at most MaxSize bytes and refuses the document, with
// one line saying why, if any file in it is unusable: a caller gets all
// the files or none.
func Parse(r io.Reader) ([]File, error) {
	b, err := io.ReadAll(io.LimitReader(r, MaxSize+1))
	if err != nil {
		return nil, fmt.Errorf("metalink: read: %w", err)
	}
	if len(b) > MaxSize {
		return nil, fmt.Errorf("metalink: document larger than %d MiB", MaxSize>>20)
	}
	doc, err := decode(b)
	if err != nil {
		return nil, err
	}
	if len(doc.Files) == 0 {
		return nil, errors.New("metalink: the document lists no <file>")
	}
	files := make([]File, 0, len(doc.Files))
	// Names that differ only in case are one file on the file systems
	// of Windows and macOS, so they are duplicates too.
	seen := make(map[string]string, len(doc.Files))
	for i := range doc.Files {
		f, err := doc.Files[i].file()
		if err != nil {
			return nil, err
		}
		key := strings.ToLower(f.Name)
		if prev, dup := seen[key]; dup {
			if prev == f.Name {
				return nil, fmt.Errorf("metalink: file %q is listed twice", f.Name)
			}
			return nil, fmt.Errorf("metalink: files %q and %q differ only in case, and would be one file on some file systems", prev, f.Name)
		}
		seen[key] = f.Name
		files = append(files, f)
	}
	return files, nil
}

// decode checks that b holds one <metalink> element in the Metalink 4
// namespace, and nothing else but comments, processing instructions and
// white space, and decodes it.
func decode(b []byte) (*xmlMetalink, error) {
	if len(bytes.Trim(b, xmlSpace)) == 0 {
		return nil, fmt.Errorf("metalink: %w: the document is empty", ErrNotMetalink)
	}
	d := xml.NewDecoder(bytes.NewReader(b))
	d.CharsetReader = charsetReader
	var root xml.StartElement
	for root.Name.Local == "" {
		tok, err := d.Token()
		if err == io.EOF {
			return nil, fmt.Errorf("metalink: %w: no XML element in it", ErrNotMetalink)
		}
		if err != nil {
			return nil, fmt.Errorf("metalink: %w: %w", ErrNotMetalink, err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			root = t
		case xml.CharData:
			if len(strings.Trim(string(t), xmlSpace)) != 0 {
				return nil, fmt.Errorf("metalink: %w: text before the first element", ErrNotMetalink)
			}
		}
	}
	switch {
	case root.Name.Space == metalink3:
		return nil, fmt.Errorf("metalink: %w: it is Metalink 3 (.metalink), and only Metalink 4 (.meta4) is read", ErrNotMetalink)
	case root.Name.Space != namespace || root.Name.Local != "metalink":
		return nil, fmt.Errorf("metalink: %w: the root element is <%s> in namespace %q, want <metalink> in %q",
			ErrNotMetalink, short(root.Name.Local), short(root.Name.Space), namespace)
	}
	var doc xmlMetalink
	if err := d.DecodeElement(&doc, &root); err != nil {
		return nil, fmt.Errorf("metalink: %w", err)
	}
	for {
		tok, err := d.Token()
		if err == io.EOF {
			return &doc, nil
		}
		if err != nil {
			return nil, fmt.Errorf("metalink: after </metalink>: %w", err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			return nil, fmt.Errorf("metalink: a second root element <%s> after </metalink>", short(t.Name.Local))
		case xml.CharData:
			if len(strings.Trim(string(t), xmlSpace)) != 0 {
				return nil, errors.New("metalink: text after </metalink>")
			}
		}
	}
}

// charsetReader reads the encodings that are UTF-8 already. encoding/xml
// reads UTF-8 itself and asks for any other declared encoding; mirror
// networks write UTF-8, so others are refused rather than translated.
func charsetReader(label string, r io.Reader) (io.Reader, error) {
	switch strings.ToLower(label) {
	case "us-ascii", "ascii":
		return r, nil
	}
	return nil, errors.New("only UTF-8 is read")
}

// file checks one <file> and turns it into a File.
func (x *xmlFile) file() (File, error) {
	if err := checkName(x.Name); err != nil {
		return File{}, fmt.Errorf("metalink: %w", err)
	}
	f := File{Name: x.Name, Size: -1}
	fail := func(err error) (File, error) {
		return File{}, fmt.Errorf("metalink: file %q: %w", x.Name, err)
	}
	switch len(x.Sizes) {
	case 0:
	case 1:
		s := strings.Trim(x.Sizes[0], xmlSpace)
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 0 || n > identity.MaxSize {
			return fail(fmt.Errorf("size %q is not a number of bytes from 0 to %d", short(s), int64(identity.MaxSize)))
		}
		f.Size = n
	default:
		return fail(fmt.Errorf("%d <size> elements, want at most one", len(x.Sizes)))
	}
	var err error
	if f.Digests, err = digests(x.Hashes); err != nil {
		return fail(err)
	}
	if f.Pieces, err = pieces(x.Pieces, f.Size); err != nil {
		return fail(err)
	}
	if f.Mirrors, err = mirrors(x.URLs); err != nil {
		return fail(err)
	}
	if len(f.Mirrors) == 0 {
		return fail(errors.New("no http:// or https:// <url> to download it from"))
	}
	return f, nil
}

// checkName reports whether name is safe to create in the download
// directory, as a plain name in it.
func checkName(name string) error {
	isSep := func(r rune) bool { return r == '/' || r == '\\' }
	switch {
	case name == "":
		return errors.New("a <file> has no name")
	case len(name) > maxNameLen:
		return fmt.Errorf("file name %q is longer than %d bytes", short(name), maxNameLen)
	case !utf8.ValidString(name):
		return fmt.Errorf("file name %q is not UTF-8", name)
	case strings.IndexFunc(name, unicode.IsControl) >= 0:
		return fmt.Errorf("file name %q holds a control character", name)
	case isSep(rune(name[0])) || hasDrive(name):
		return fmt.Errorf("file name %q is an absolute path", name)
	case name == "." || slices.Contains(strings.FieldsFunc(name, isSep), ".."):
		return fmt.Errorf("file name %q leaves the download directory", name)
	case strings.Trim(name, ". ") == "":
		// Windows drops trailing dots and spaces, so "..." would name the
		// download directory itself there.
		return fmt.Errorf("file name %q is only dots and spaces", name)
	case strings.IndexFunc(name, isSep) >= 0:
		return fmt.Errorf("file name %q is in a subdirectory: names with / or \\ are not supported yet, since a job downloads one file into one directory", name)
	}
	return nil
}

// hasDrive reports whether name starts with a Windows drive letter, as
// "C:" does: on Windows even "C:x" is outside the download directory.
func hasDrive(name string) bool {
	return len(name) >= 2 && name[1] == ':' && ('a' <= name[0]|0x20 && name[0]|0x20 <= 'z')
}

// algo returns the algorithm a Metalink hash type names, if identity
// knows it. RFC 5854 takes the names from the IANA registry, in lower
// case, but some generators write "SHA-256".
func algo(name string) (identity.Algo, bool) {
	a, err := identity.ParseAlgo(strings.ToLower(strings.Trim(name, xmlSpace)))
	return a, err == nil
}

// decodeHex decodes the hex digest s of algorithm a into dst, which is
// a.Size() bytes long.
func decodeHex(dst []byte, s string, a identity.Algo) error {
	s = strings.Trim(s, xmlSpace)
	if len(s) != 2*a.Size() {
		return fmt.Errorf("%s hash %q has %d hex digits, want %d", a, short(s), len(s), 2*a.Size())
	}
	if _, err := hex.Decode(dst, []byte(s)); err != nil {
		return fmt.Errorf("%s hash %q is not hexadecimal", a, s)
	}
	return nil
}

// digests reads the whole-file <hash> elements under the algorithms
// identity knows.
func digests(hs []xmlHash) ([]identity.Digest, error) {
	var out []identity.Digest
	for _, h := range hs {
		a, ok := algo(h.Type)
		if !ok {
			continue
		}
		sum := make([]byte, a.Size())
		if err := decodeHex(sum, h.Value, a); err != nil {
			return nil, err
		}
		i := slices.IndexFunc(out, func(d identity.Digest) bool { return d.Algo == a })
		if i < 0 {
			out = append(out, identity.Digest{Algo: a, Sum: sum})
		} else if !bytes.Equal(out[i].Sum, sum) {
			return nil, fmt.Errorf("two %s hashes that differ", a)
		}
	}
	return out, nil
}

// strength ranks the algorithms, to keep the strongest of several
// <pieces>.
func strength(a identity.Algo) int {
	switch a {
	case identity.BLAKE3:
		return 4
	case identity.SHA512:
		return 3
	case identity.SHA256:
		return 2
	case identity.SHA1:
		return 1
	}
	return 0
}

// pieces reads the <pieces> of a file of the given size (-1 when
// unknown) and returns the strongest usable one, or nil when there is
// none.
func pieces(ps []xmlPieces, size int64) (*identity.File, error) {
	var best *identity.File
	for _, p := range ps {
		a, ok := algo(p.Type)
		if !ok {
			continue
		}
		s := strings.Trim(p.Length, xmlSpace)
		length, err := strconv.ParseInt(s, 10, 64)
		if err != nil || length <= 0 {
			return nil, fmt.Errorf("%s pieces: length %q is not a positive number", a, short(s))
		}
		if size < 0 {
			return nil, fmt.Errorf("%s pieces but no <size> to count them by", a)
		}
		// Well-formed pieces identity cannot hold are no reason to refuse
		// the file: it can still be downloaded and checked whole. The
		// bounds on length come first, so that the count cannot
		// overflow.
		if length < identity.MinPieceLen || length > identity.MaxPieceLen {
			continue
		}
		n := (size + length - 1) / length
		if n > identity.MaxPieces {
			continue
		}
		if int64(len(p.Hashes)) != n {
			return nil, fmt.Errorf("%d %s piece hashes, but %d bytes make %d pieces of %d", len(p.Hashes), a, size, n, length)
		}
		k := a.Size()
		id := &identity.File{Size: size, PieceLen: length, Algo: a, Pieces: make([]byte, int(n)*k)}
		for i, h := range p.Hashes {
			if err := decodeHex(id.Pieces[i*k:(i+1)*k], h, a); err != nil {
				return nil, fmt.Errorf("piece %d: %w", i, err)
			}
		}
		if err := id.Validate(); err != nil {
			return nil, fmt.Errorf("%s pieces: %w", a, err)
		}
		if best == nil || strength(a) > strength(best.Algo) {
			best = id
		}
	}
	return best, nil
}

// mirrors reads the <url> elements: it checks the attributes of every
// one, keeps the http(s) addresses, each once, and sorts them by
// priority.
func mirrors(us []xmlURL) ([]Mirror, error) {
	var out []Mirror
	seen := make(map[string]bool, len(us))
	for i, u := range us {
		// The URL itself is not named: it may hold a secret, and the
		// errors of a refused document end up in logs.
		m := Mirror{Priority: LowestPriority}
		if s := strings.Trim(u.Priority, xmlSpace); s != "" {
			p, err := strconv.Atoi(s)
			if err != nil || p < 1 || p > LowestPriority {
				return nil, fmt.Errorf("<url> %d: priority %q is not a number from 1 to %d", i+1, short(s), LowestPriority)
			}
			m.Priority = p
		}
		if s := strings.Trim(u.Location, xmlSpace); s != "" {
			if !isCountry(s) {
				return nil, fmt.Errorf("<url> %d: location %q is not a two-letter country code", i+1, short(s))
			}
			m.Location = strings.ToLower(s)
		}
		a, err := addr.Parse(strings.Trim(u.Value, xmlSpace))
		if err != nil || (a.Scheme != addr.HTTP && a.Scheme != addr.HTTPS) || seen[a.URL] {
			continue
		}
		seen[a.URL] = true
		m.URL = a.URL
		out = append(out, m)
	}
	slices.SortStableFunc(out, func(a, b Mirror) int { return cmp.Compare(a.Priority, b.Priority) })
	return out, nil
}

// isCountry reports whether s has the shape of an ISO 3166-1 alpha-2
// code. Whether the code is assigned is not checked: a mirror's country
// is a preference, and an unknown one only never matches.
func isCountry(s string) bool {
	isLetter := func(c byte) bool { return 'a' <= c|0x20 && c|0x20 <= 'z' }
	return len(s) == 2 && isLetter(s[0]) && isLetter(s[1])
}

// short returns s cut to a length that fits in an error line, since the
// document decides how long its values are.
func short(s string) string {
	const limit = 64
	if len(s) <= limit {
		return s
	}
	// Cut at the start of a rune, so that %q does not show half of one
	// as an escape.
	for i := limit; i > limit-utf8.UTFMax; i-- {
		if utf8.RuneStart(s[i]) {
			return s[:i] + "..."
		}
	}
	return s[:limit] + "..."
}
