package metalink

import (
	"bytes"
	"reflect"
	"testing"
)

// FuzzWrite_RoundTrip parses a document and, when Parse takes it, writes
// its files back: Write must take whatever Parse returns, and Parse must
// read what Write wrote as the same files (an empty file's pieces, which
// Write leaves out, aside).
func FuzzWrite_RoundTrip(f *testing.F) {
	for _, doc := range []string{
		`<metalink xmlns="urn:ietf:params:xml:ns:metalink"><file name="a"><size>1</size><url>http://h/a</url></file></metalink>`,
		`<metalink xmlns="urn:ietf:params:xml:ns:metalink"><file name="a&amp;b"><size>0</size>` +
			`<hash type="sha-256">e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855</hash>` +
			`<pieces length="65536" type="sha-1"></pieces>` +
			`<url priority="2" location="DE">http://h/x?a=1&amp;b=2</url><url>https://[::1]:8443/y</url></file></metalink>`,
		`<metalink xmlns="urn:ietf:params:xml:ns:metalink"><file name="b"><size>5000</size>` +
			`<pieces length="4096" type="sha-1"><hash>da39a3ee5e6b4b0d3255bfef95601890afd80709</hash>` +
			`<hash>da39a3ee5e6b4b0d3255bfef95601890afd80709</hash></pieces><url>http://h/b</url></file>` +
			`<file name="c"><url>http://h/c</url></file></metalink>`,
	} {
		f.Add([]byte(doc))
	}
	f.Fuzz(func(t *testing.T, doc []byte) {
		files, err := Parse(bytes.NewReader(doc))
		if err != nil {
			return
		}
		for i := range files {
			if p := files[i].Pieces; p != nil && p.Count() == 0 {
				files[i].Pieces = nil
			}
		}
		var b bytes.Buffer
		if err := Write(&b, files); err != nil {
			t.Fatalf("Write refused what Parse returned: %v\n%s", err, doc)
		}
		again, err := Parse(&b)
		if err != nil {
			t.Fatalf("Parse of what Write wrote: %v\n%s", err, b.String())
		}
		if !reflect.DeepEqual(again, files) {
			t.Fatalf("round trip changed the files:\n%+v\nwant\n%+v\n%s", again, files, b.String())
		}
	})
}
