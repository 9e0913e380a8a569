package metalink

import (
	"bufio"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/idmproject/idm/identity"
	"github.com/idmproject/idm/transport/addr"
)

// Write writes files as a Metalink 4 document that [Parse] reads back as
// the same files: for each, its name, <size> (unless Size is -1), a
// <hash> per digest, its <pieces> (unless Pieces is nil or the file is
// empty: RFC 5854 wants at least one piece hash) and a <url> per mirror,
// with its priority (unless 0 or LowestPriority, which a <url> without
// one has) and location (unless empty).
//
// It refuses, with one line saying why and writing nothing, what Parse
// would refuse: no file, a name unsafe to create or given twice, a digest
// or piece hashes that do not fit their algorithm or the size, a priority
// or location outside the RFC's syntax, and a file without an http(s)
// mirror.
func Write(w io.Writer, files []File) error {
	if len(files) == 0 {
		return errors.New("metalink: no file to write")
	}
	seen := make(map[string]bool, len(files))
	for i := range files {
		if err := checkWritable(&files[i]); err != nil {
			return fmt.Errorf("metalink: %w", err)
		}
		key := strings.ToLower(files[i].Name)
		if seen[key] {
			return fmt.Errorf("metalink: file %q is given twice (names are compared without case)", files[i].Name)
		}
		seen[key] = true
	}
	bw := bufio.NewWriter(w)
	bw.WriteString(xml.Header)
	bw.WriteString(`<metalink xmlns="` + namespace + `">` + "\n")
	for i := range files {
		writeFile(bw, &files[i])
	}
	bw.WriteString("</metalink>\n")
	// A bufio.Writer keeps its first error, so checking it once, here,
	// is enough.
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("metalink: write: %w", err)
	}
	return nil
}

// checkWritable reports why f cannot be written as Parse would read it.
func checkWritable(f *File) error {
	if err := checkName(f.Name); err != nil {
		return err
	}
	fail := func(format string, args ...any) error {
		return fmt.Errorf("file %q: %s", f.Name, fmt.Sprintf(format, args...))
	}
	if !xmlText(f.Name) {
		return fail("the name holds a character XML cannot carry")
	}
	if f.Size < -1 || f.Size > identity.MaxSize {
		return fail("size %d is not a number of bytes from 0 to %d, or -1 for none", f.Size, int64(identity.MaxSize))
	}
	algos := map[identity.Algo]bool{}
	for _, d := range f.Digests {
		if d.Algo.Size() == 0 || len(d.Sum) != d.Algo.Size() {
			return fail("digest %s: %d bytes, want %d", d.Algo, len(d.Sum), d.Algo.Size())
		}
		if algos[d.Algo] {
			return fail("two %s digests", d.Algo)
		}
		algos[d.Algo] = true
	}
	if p := f.Pieces; p != nil {
		if p.Pieces == nil || p.Size != f.Size {
			return fail("pieces without their hashes, or of another size than the file")
		}
		if err := p.Validate(); err != nil {
			return fail("pieces: %v", err)
		}
	}
	if len(f.Mirrors) == 0 {
		return fail("no mirror to download it from")
	}
	for i, m := range f.Mirrors {
		if m.Priority < 0 || m.Priority > LowestPriority {
			return fail("mirror %d: priority %d is not from 1 to %d, or 0 for none", i+1, m.Priority, LowestPriority)
		}
		if m.Location != "" && !isCountry(m.Location) {
			return fail("mirror %d: location %q is not a two-letter country code", i+1, short(m.Location))
		}
		// The address is not named: it may hold a secret.
		a, err := addr.Parse(m.URL)
		if err != nil || (a.Scheme != addr.HTTP && a.Scheme != addr.HTTPS) || m.URL != strings.Trim(m.URL, xmlSpace) || !xmlText(m.URL) {
			return fail("mirror %d is not an http:// or https:// address", i+1)
		}
	}
	return nil
}

// writeFile writes one checked <file>.
func writeFile(w *bufio.Writer, f *File) {
	w.WriteString(`  <file name="` + escape(f.Name) + `">` + "\n")
	if f.Size >= 0 {
		w.WriteString("    <size>" + strconv.FormatInt(f.Size, 10) + "</size>\n")
	}
	for _, d := range f.Digests {
		w.WriteString(`    <hash type="` + d.Algo.String() + `">` + hex.EncodeToString(d.Sum) + "</hash>\n")
	}
	if p := f.Pieces; p != nil && p.Count() > 0 {
		w.WriteString(`    <pieces length="` + strconv.FormatInt(p.PieceLen, 10) + `" type="` + p.Algo.String() + `">` + "\n")
		for i := range p.Count() {
			w.WriteString("      <hash>" + hex.EncodeToString(p.PieceHash(i)) + "</hash>\n")
		}
		w.WriteString("    </pieces>\n")
	}
	for _, m := range f.Mirrors {
		w.WriteString("    <url")
		if m.Priority > 0 && m.Priority < LowestPriority {
			w.WriteString(` priority="` + strconv.Itoa(m.Priority) + `"`)
		}
		if m.Location != "" {
			w.WriteString(` location="` + strings.ToLower(m.Location) + `"`)
		}
		w.WriteString(">" + escape(m.URL) + "</url>\n")
	}
	w.WriteString("  </file>\n")
}

// xmlText reports whether every character of s may appear in an XML
// document (XML 1.0, section 2.2): escaping would replace any other, and
// Parse would read back another string.
func xmlText(s string) bool {
	for _, r := range s {
		if !(r == '\t' || r == '\n' || r == '\r' || r >= 0x20 && r <= 0xd7ff || r >= 0xe000 && r <= 0xfffd || r >= 0x10000 && r <= 0x10ffff) {
			return false
		}
	}
	return true
}

// escape returns s with the characters XML gives a meaning to, in text
// and in attribute values, replaced by references.
func escape(s string) string {
	var b strings.Builder
	xml.EscapeText(&b, []byte(s))
	return b.String()
}
