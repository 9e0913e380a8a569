package transport

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/idmproject/idm/identity"
	"github.com/idmproject/idm/transport/metalink"
)

// checkSHA256 checks m's SHA-256 hashes against data.
func checkSHA256(t testing.TB, m *Manifest, data []byte) {
	t.Helper()
	s := m.SHA256
	if s == nil {
		t.Fatal("the manifest has no SHA-256 hashes")
	}
	if s.Size != int64(len(data)) || s.PieceLen != m.SegmentSize || s.Algo != identity.SHA256 {
		t.Fatalf("SHA-256 pieces of %d bytes, length %d, %s; want %d, %d, sha-256", s.Size, s.PieceLen, s.Algo, len(data), m.SegmentSize)
	}
	whole := sha256.Sum256(data)
	if sum, ok := s.Digest(identity.SHA256); !ok || !bytes.Equal(sum, whole[:]) {
		t.Errorf("whole-file SHA-256 %x, want %x", sum, whole)
	}
	if s.Count() != len(m.Segments) {
		t.Fatalf("%d SHA-256 pieces for %d segments", s.Count(), len(m.Segments))
	}
	for i := range s.Count() {
		off, n := s.Piece(i)
		if sum := sha256.Sum256(data[off : off+n]); !bytes.Equal(s.PieceHash(i), sum[:]) {
			t.Errorf("piece %d (%d+%d): SHA-256 differs from that of its bytes", i, off, n)
		}
	}
}

// BuildManifest hashes every segment and the whole file with SHA-256 in
// the same pass as with BLAKE3, whatever the layout: the pieces are the
// segments.
func TestBuildManifest_SHA256(t *testing.T) {
	tests := []struct {
		name    string
		size    int
		segSize int64
	}{
		{"empty file", 0, 0},
		{"one byte", 1, 0},
		{"exactly one segment", 64 << 10, 0},
		{"partial last segment", 3<<16 + 17, 0},
		{"more segments than read-ahead buffers", 300 * 4096, 4096},
		{"segment size not a power of two", 100_000, 5000},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path, data := randomFile(t, tt.size, uint64(100+i))
			m, err := BuildManifest(path, tt.segSize)
			if err != nil {
				t.Fatal(err)
			}
			checkSHA256(t, m, data)
			for i := range m.Segments {
				off, n := m.Segment(i)
				if m.Segments[i] != SumSegment(data[off:off+n]) {
					t.Fatalf("segment %d: BLAKE3 differs", i)
				}
			}
			if err := m.Validate(); err != nil {
				t.Errorf("Validate: %v", err)
			}
		})
	}
}

// A manifest whose SHA-256 hashes do not fit its segments is invalid.
func TestManifest_Validate_SHA256(t *testing.T) {
	path, _ := randomFile(t, 200_000, 7)
	tests := []struct {
		name   string
		change func(s *identity.File)
	}{
		{"other size", func(s *identity.File) { s.Size++ }},
		{"other piece length", func(s *identity.File) { s.PieceLen *= 2 }},
		{"other algorithm", func(s *identity.File) { s.Algo = identity.BLAKE3 }},
		{"a piece hash missing", func(s *identity.File) { s.Pieces = s.Pieces[32:] }},
		{"no piece hashes", func(s *identity.File) { s.Pieces = nil }},
		{"no whole-file digest", func(s *identity.File) { s.Digests = nil }},
		{"short whole-file digest", func(s *identity.File) { s.Digests[0].Sum = s.Digests[0].Sum[1:] }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := BuildManifest(path, 0)
			if err != nil {
				t.Fatal(err)
			}
			tt.change(m.SHA256)
			if err := m.Validate(); err == nil {
				t.Error("Validate accepted it")
			}
		})
	}
}

// reprDigest returns the Repr-Digest header value of data.
func reprDigest(data []byte) string {
	sum := sha256.Sum256(data)
	return "sha-256=:" + base64.StdEncoding.EncodeToString(sum[:]) + ":"
}

// Every answer of the file, whole, in ranges, or to HEAD, gives the
// whole file's SHA-256 in Repr-Digest (RFC 9530: a range has the digest
// of the representation, not of its part) and links to the Metalink.
func TestServer_HTTP_ReprDigestAndLink(t *testing.T) {
	path, data := randomFile(t, fileSize, 40)
	srv := startServer(t, path, nil)
	base := "http://" + addrOf(t, srv)
	client := httpClient(t)
	wantLink := `</` + srv.Manifest.Name + `.meta4>; rel=describedby; type="application/metalink4+xml"`
	tests := []struct {
		name, method, path string
		header             map[string]string
		status             int
	}{
		{"GET /", "GET", "/", nil, 200},
		{"GET /<name>", "GET", "/" + srv.Manifest.Name, nil, 200},
		{"HEAD", "HEAD", "/", nil, 200},
		{"range", "GET", "/", map[string]string{"Range": "bytes=100-199"}, 206},
		{"two ranges", "GET", "/", map[string]string{"Range": "bytes=0-9,500-599"}, 206},
		{"not modified", "GET", "/", map[string]string{"If-None-Match": `"` + srv.Manifest.Root().String() + `"`}, 304},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, _ := httpGet(t, client, tt.method, base+tt.path, tt.header)
			if resp.StatusCode != tt.status {
				t.Fatalf("status %s, want %d", resp.Status, tt.status)
			}
			if got, want := resp.Header.Get("Repr-Digest"), reprDigest(data); got != want {
				t.Errorf("Repr-Digest %q, want %q", got, want)
			}
			if got := resp.Header.Get("Link"); got != wantLink {
				t.Errorf("Link %q, want %q", got, wantLink)
			}
		})
	}
	// The Metalink's own answer is another representation: not the
	// file's digest.
	resp, _ := httpGet(t, client, "GET", base+"/"+srv.Manifest.Name+".meta4", nil)
	if resp.Header.Get("Repr-Digest") != "" || resp.Header.Get("Link") != "" {
		t.Errorf("the Metalink's answer has Repr-Digest %q, Link %q; want neither", resp.Header.Get("Repr-Digest"), resp.Header.Get("Link"))
	}
}

// getMeta4 fetches and parses a server's Metalink at url.
func getMeta4(t *testing.T, client *http.Client, url string) metalink.File {
	t.Helper()
	resp, body := httpGet(t, client, "GET", url, nil)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	if ct := resp.Header.Get("Content-Type"); ct != metalink.MediaType {
		t.Errorf("Content-Type %q, want %q", ct, metalink.MediaType)
	}
	files, err := metalink.Parse(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("metalink.Parse: %v\n%s", err, body)
	}
	if len(files) != 1 {
		t.Fatalf("%d files in the Metalink, want 1", len(files))
	}
	return files[0]
}

// GET /<name>.meta4 is a Metalink that Metalink clients read: the file's
// name, size, SHA-256 and SHA-256 pieces, which verify the file, and the
// server's own URL, which gives the file.
func TestServer_HTTP_Meta4(t *testing.T) {
	path, data := randomFile(t, fileSize, 41)
	srv := startServer(t, path, nil)
	base := "http://" + addrOf(t, srv)
	client := httpClient(t)
	f := getMeta4(t, client, base+"/"+srv.Manifest.Name+".meta4")
	if f.Name != srv.Manifest.Name || f.Size != int64(len(data)) {
		t.Errorf("file %q of %d bytes, want %q of %d", f.Name, f.Size, srv.Manifest.Name, len(data))
	}
	whole := sha256.Sum256(data)
	if len(f.Digests) != 1 || f.Digests[0].Algo != identity.SHA256 || !bytes.Equal(f.Digests[0].Sum, whole[:]) {
		t.Errorf("digests %v, want the file's SHA-256 alone", f.Digests)
	}
	p := f.Pieces
	if p == nil || p.Algo != identity.SHA256 || p.PieceLen != srv.Manifest.SegmentSize || p.Count() != len(srv.Manifest.Segments) {
		t.Fatalf("pieces %+v, want SHA-256 pieces of the segment size", p)
	}
	for i := range p.Count() {
		off, n := p.Piece(i)
		if sum := sha256.Sum256(data[off : off+n]); !bytes.Equal(p.PieceHash(i), sum[:]) {
			t.Errorf("piece %d does not verify the file's bytes %d+%d", i, off, n)
		}
	}
	want := base + "/" + srv.Manifest.Name
	if len(f.Mirrors) != 1 || f.Mirrors[0].URL != want {
		t.Fatalf("mirrors %v, want %s alone", f.Mirrors, want)
	}
	if _, body := httpGet(t, client, "GET", f.Mirrors[0].URL, nil); !bytes.Equal(body, data) {
		t.Error("the Metalink's URL does not give the file")
	}
	resp, body := httpGet(t, client, "HEAD", base+"/"+srv.Manifest.Name+".meta4", nil)
	if resp.StatusCode != 200 || len(body) != 0 || resp.ContentLength <= 0 || resp.Header.Get("Content-Type") != metalink.MediaType {
		t.Errorf("HEAD: %s, %d bytes of body, Content-Length %d, Content-Type %q", resp.Status, len(body), resp.ContentLength, resp.Header.Get("Content-Type"))
	}
	for _, bad := range []string{"/.meta4", "/" + srv.Manifest.Name + ".meta4x", "/" + srv.Manifest.Name + ".META4"} {
		if resp, _ := httpGet(t, client, "GET", base+bad, nil); resp.StatusCode != 404 {
			t.Errorf("GET %s: %s, want 404", bad, resp.Status)
		}
	}
}

// rawGet sends one request written by hand, so that its Host header can
// be anything, and returns the answer.
func rawGet(t *testing.T, addr, request string) (*http.Response, []byte) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, waitLimit)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(waitLimit))
	if _, err := io.WriteString(c, request); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

// The Metalink's URL is the one the client reached the server by: its
// Host header when that is a host and port, and otherwise the address it
// connected to, never text that would change what the URL means.
func TestServer_HTTP_Meta4_Host(t *testing.T) {
	path, _ := randomFile(t, 10_000, 42)
	srv := startServer(t, path, nil)
	addr := addrOf(t, srv)
	own := "http://" + addr + "/" + srv.Manifest.Name
	tests := []struct {
		host string // "" sends no Host, as HTTP/1.0 may
		want string
	}{
		{"mirror.example:8080", "http://mirror.example:8080/" + srv.Manifest.Name},
		{"Mirror.Example", "http://mirror.example/" + srv.Manifest.Name},
		{"10.1.2.3:9001", "http://10.1.2.3:9001/" + srv.Manifest.Name},
		{"[::1]:9001", "http://[::1]:9001/" + srv.Manifest.Name},
		{"[::1]", "http://[::1]/" + srv.Manifest.Name},
		{"", own},
		{"evil.example/other?", own},
		{"user@evil.example", own},
		{"evil.example:80@other.example", own},
		{"evil.example:99999", own},
		{"evil.example:+80", own},
		{"::1", own},
		{"[evil.example]:80", own},
		{"[fe80::1%25eth0]:80", own},
		{"-evil.example", own},
		{"evil..example", own},
		{"%65vil.example", own},
	}
	for _, tt := range tests {
		t.Run(tt.host, func(t *testing.T) {
			req := "GET /" + srv.Manifest.Name + ".meta4 HTTP/1.0\r\n"
			if tt.host != "" {
				req = "GET /" + srv.Manifest.Name + ".meta4 HTTP/1.1\r\nHost: " + tt.host + "\r\nConnection: close\r\n"
			}
			resp, body := rawGet(t, addr, req+"\r\n")
			if resp.StatusCode == 400 && tt.want == own {
				return // net/http refused the Host itself: as good
			}
			if resp.StatusCode != 200 {
				t.Fatalf("status %s: %s", resp.Status, body)
			}
			files, err := metalink.Parse(bytes.NewReader(body))
			if err != nil {
				t.Fatalf("metalink.Parse: %v\n%s", err, body)
			}
			if got := files[0].Mirrors[0].URL; got != tt.want {
				t.Errorf("URL %q, want %q", got, tt.want)
			}
		})
	}
}

func TestValidHost(t *testing.T) {
	for host, want := range map[string]bool{
		"example.com": true, "example.com:80": true, "a_b.example:1": true, "127.0.0.1": true,
		"127.0.0.1:65535": true, "[::1]": true, "[2001:db8::1]:443": true, "localhost": true,
		"": false, ":80": false, "example.com:": false, "example.com:0": false, "example.com:65536": false,
		"example.com:080a": false, "example.com:+80": false, "a b": false, "a/b": false, "a?b": false,
		"a#b": false, "a@b": false, "::1": false, "[::1": false, "[127.0.0.1]": false, "[a]:80": false,
		"[fe80::1%eth0]": false, "-a.example": false, "a..b": false, ".": false, "a.": false,
		strings.Repeat("a", 64) + ".example": false, strings.Repeat("a.", 127) + "a": false,
	} {
		if got := validHost(host); got != want {
			t.Errorf("validHost(%q) = %v, want %v", host, got, want)
		}
	}
}

// A file's name goes into the Link and the Metalink's URL path-escaped,
// so that a name with spaces, '#', '%' or ';' still names the file.
func TestServer_HTTP_Meta4_EscapedName(t *testing.T) {
	name := "a b#c%d;e,f.bin"
	data := randomBytes(70_000, 43)
	path := writeFile(t, name, data)
	srv := startServer(t, path, nil)
	base := "http://" + addrOf(t, srv)
	client := httpClient(t)
	resp, _ := httpGet(t, client, "HEAD", base+"/", nil)
	escaped := url.PathEscape(name)
	if want := `</` + escaped + `.meta4>; rel=describedby; type="application/metalink4+xml"`; resp.Header.Get("Link") != want {
		t.Fatalf("Link %q, want %q", resp.Header.Get("Link"), want)
	}
	f := getMeta4(t, client, base+"/"+escaped+".meta4")
	if f.Name != name {
		t.Errorf("name %q, want %q", f.Name, name)
	}
	if want := base + "/" + escaped; f.Mirrors[0].URL != want {
		t.Errorf("URL %q, want %q", f.Mirrors[0].URL, want)
	}
	if _, body := httpGet(t, client, "GET", f.Mirrors[0].URL, nil); !bytes.Equal(body, data) {
		t.Error("the Metalink's URL does not give the file")
	}
}

// A manifest without SHA-256 (one read from the network), or of a file
// whose name a Metalink cannot give, is served without a Metalink and
// without a link to one; the file itself is served as before.
func TestServer_HTTP_NoMeta4(t *testing.T) {
	t.Run("no SHA-256", func(t *testing.T) {
		path, data := randomFile(t, 10_000, 44)
		srv := startServer(t, path, func(s *Server) { s.Manifest.SHA256 = nil })
		base := "http://" + addrOf(t, srv)
		client := httpClient(t)
		resp, body := httpGet(t, client, "GET", base+"/", nil)
		if !bytes.Equal(body, data) || resp.Header.Values("Repr-Digest") != nil || resp.Header.Values("Link") != nil {
			t.Errorf("GET /: %d bytes, Repr-Digest %q, Link %q; want the file, neither header", len(body), resp.Header.Get("Repr-Digest"), resp.Header.Get("Link"))
		}
		if resp, _ := httpGet(t, client, "GET", base+"/"+srv.Manifest.Name+".meta4", nil); resp.StatusCode != 404 {
			t.Errorf("GET .meta4: %s, want 404", resp.Status)
		}
		if _, err := srv.Manifest.Metalink(nil); !errors.Is(err, ErrNoSHA256) {
			t.Errorf("Metalink: %v, want ErrNoSHA256", err)
		}
	})
	t.Run("a name Metalink refuses", func(t *testing.T) {
		data := randomBytes(10_000, 45)
		path := writeFile(t, `back\slash.bin`, data)
		srv := startServer(t, path, nil)
		base := "http://" + addrOf(t, srv)
		client := httpClient(t)
		resp, body := httpGet(t, client, "GET", base+"/", nil)
		if !bytes.Equal(body, data) || resp.Header.Get("Repr-Digest") != reprDigest(data) || resp.Header.Values("Link") != nil {
			t.Errorf("GET /: %d bytes, Repr-Digest %q, Link %q; want the file, its digest, no link", len(body), resp.Header.Get("Repr-Digest"), resp.Header.Get("Link"))
		}
		if resp, _ := httpGet(t, client, "GET", base+"/"+url.PathEscape(srv.Manifest.Name)+".meta4", nil); resp.StatusCode != 404 {
			t.Errorf("GET .meta4: %s, want 404", resp.Status)
		}
	})
}

// A file changed since the server started has other hashes: its Metalink
// is refused, as the file is.
func TestServer_HTTP_Meta4_FileChanged(t *testing.T) {
	path, _ := randomFile(t, 10_000, 46)
	srv := startServer(t, path, nil)
	if err := os.WriteFile(path, []byte("something else"), 0o644); err != nil {
		t.Fatal(err)
	}
	resp, _ := httpGet(t, httpClient(t), "GET", "http://"+addrOf(t, srv)+"/"+filepath.Base(path)+".meta4", nil)
	if resp.StatusCode != 500 {
		t.Errorf("GET .meta4 of a changed file: %s, want 500", resp.Status)
	}
}

// A file with more pieces than a Metalink lists is described by its size
// and SHA-256 alone.
func TestManifest_Metalink_ManyPieces(t *testing.T) {
	m := &Manifest{Name: "big", Size: (maxMetalinkPieces + 1) * MinSegmentSize, SegmentSize: MinSegmentSize}
	m.SHA256 = &identity.File{Size: m.Size, PieceLen: m.SegmentSize, Algo: identity.SHA256,
		Pieces:  make([]byte, (maxMetalinkPieces+1)*sha256.Size),
		Digests: []identity.Digest{{Algo: identity.SHA256, Sum: make([]byte, 32)}}}
	f, err := m.Metalink([]string{"http://h.test/big"})
	if err != nil {
		t.Fatal(err)
	}
	if f.Pieces != nil || len(f.Digests) != 1 {
		t.Errorf("pieces %v, %d digests; want no pieces and the SHA-256", f.Pieces != nil, len(f.Digests))
	}
	m.Size, m.SHA256.Size = maxMetalinkPieces*MinSegmentSize, maxMetalinkPieces*MinSegmentSize
	m.SHA256.Pieces = m.SHA256.Pieces[:maxMetalinkPieces*sha256.Size]
	if f, _ := m.Metalink([]string{"http://h.test/big"}); f.Pieces == nil {
		t.Error("pieces left out at the limit")
	}
	var b bytes.Buffer
	if err := metalink.Write(&b, []metalink.File{f}); err != nil || b.Len() > metalink.MaxSize {
		t.Errorf("Metalink at the limit: %v, %d bytes, want at most %d", err, b.Len(), metalink.MaxSize)
	}
}
