package metalink

import (
	"strings"
	"testing"
)

// FuzzParse feeds Parse arbitrary documents: it must never panic, and
// whatever it returns must keep its promises (see checkFiles), with an
// order for any location that is a permutation sorted by priority. Run
// it with
//
//	go test -run '^$' -fuzz '^FuzzParse$' -fuzztime 30s ./transport/metalink
func FuzzParse(f *testing.F) {
	f.Add(opensuseDoc("openSUSE-Tumbleweed-NET-x86_64-Current.iso", testData(70000), 16<<10))
	f.Add(multiFileDoc)
	f.Add(doc(file("a.iso", `<size>8192</size><hash type="sha-256">`+sha256a+`</hash>`+
		piecesXML("4096", "sha-1", 2, sha1a)+piecesXML("4096", "SHA-256", 2, sha256a)+
		`<url priority="2" location="DE">http://m.example.org/a.iso</url><url>https://n.example.org/a.iso?x=1</url>`)))
	f.Add(doc(file("b", `<size>0</size>`+piecesXML("65536", "sha-1", 0, "")+goodURL), file("c", goodURL)))
	for _, r := range refusals() {
		if len(r.doc) < 4096 {
			f.Add(r.doc)
		}
	}
	f.Fuzz(func(t *testing.T, s string) {
		files, err := Parse(strings.NewReader(s))
		if err != nil {
			if msg := err.Error(); strings.Contains(msg, "\n") || !strings.HasPrefix(msg, "metalink: ") {
				t.Fatalf("error %q is not one line that starts with metalink:", msg)
			}
			return
		}
		checkFiles(t, files)
		for _, file := range files {
			got := file.Ordered([]string{"us", "DE", "zz"})
			if len(got) != len(file.Mirrors) {
				t.Fatalf("Ordered returned %d mirrors of %d", len(got), len(file.Mirrors))
			}
			seen := make(map[string]bool)
			for i, m := range got {
				seen[m.URL] = true
				if i > 0 && m.Priority < got[i-1].Priority {
					t.Fatalf("Ordered is not sorted by priority: %v", got)
				}
			}
			for _, m := range file.Mirrors {
				if !seen[m.URL] {
					t.Fatalf("Ordered lost %q", m.URL)
				}
			}
		}
	})
}
