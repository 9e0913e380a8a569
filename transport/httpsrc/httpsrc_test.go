package httpsrc

import (
	"bytes"
	"context"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/idmproject/idm/identity"
	"github.com/idmproject/idm/internal/leaktest"
	"github.com/idmproject/idm/internal/servertest"
)

// waitLimit bounds every wait for something that should happen promptly;
// reaching it is a failure, not a timing.
const waitLimit = 10 * time.Second

// secret is in the query of every address the tests give, as the
// signature of a signed link would be: no error may show it.
const secret = "s3cr3t"

// modTime is the modification time of the tests' files.
var modTime = time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)

func randomData(n int, seed uint64) []byte {
	b := make([]byte, n)
	rand.NewChaCha8([32]byte{byte(seed)}).Read(b)
	return b
}

// mirror serves data as a well-behaved mirror does, with an ETag when
// etag is set.
func mirror(data []byte, etag string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if etag != "" {
			w.Header().Set("ETag", etag)
		}
		http.ServeContent(w, r, "", modTime, bytes.NewReader(data))
	}
}

// serve starts h on a loopback port for the test.
func serve(t *testing.T, h http.Handler) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

// newSource makes the Source at url (a secret added to its query) with
// its own client, whose idle connections close when the test ends.
func newSource(t *testing.T, url string, opt Options) *Source {
	t.Helper()
	if opt.Client == nil {
		opt.Client = NewClient()
	}
	t.Cleanup(opt.Client.CloseIdleConnections)
	if !strings.Contains(url, "?") {
		url += "?sig=" + secret
	}
	s, err := New(url, opt)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func open(t *testing.T, s *Source) *Conn {
	t.Helper()
	c, err := s.Open(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// permanent is how the engine classes an error.
func permanent(err error) bool {
	var p interface{ Permanent() bool }
	return errors.As(err, &p) && p.Permanent()
}

// checkErr fails the test unless err is an error of the class wanted, of
// one line, that shows no secret.
func checkErr(t *testing.T, err error, wantPermanent bool, wantIs error) {
	t.Helper()
	switch {
	case err == nil:
		t.Fatalf("no error, want a %s one", class(wantPermanent))
	case permanent(err) != wantPermanent:
		t.Errorf("%v: %s, want %s", err, class(permanent(err)), class(wantPermanent))
	case wantIs != nil && !errors.Is(err, wantIs):
		t.Errorf("%v: not %v", err, wantIs)
	}
	if msg := err.Error(); strings.Contains(msg, secret) || strings.Contains(msg, "\n") {
		t.Errorf("message %q shows the secret or has several lines", msg)
	}
}

func class(permanent bool) string {
	if permanent {
		return "permanent"
	}
	return "transient"
}

// rangeOfRequest returns the range a request asks for.
func rangeOfRequest(t *testing.T, r *http.Request) (off, n int64) {
	var last int64
	if _, err := fmt.Sscanf(r.Header.Get("Range"), "bytes=%d-%d", &off, &last); err != nil {
		t.Errorf("Range %q: %v", r.Header.Get("Range"), err)
	}
	return off, last - off + 1
}

func TestNew_RefusesOtherSchemes(t *testing.T) {
	for _, raw := range []string{"idm://127.0.0.1:4000", "ftp://127.0.0.1/f?sig=" + secret, "file:///etc/passwd", "127.0.0.1/f"} {
		if _, err := New(raw, Options{}); err == nil {
			t.Errorf("New(%q) succeeded", raw)
		} else if strings.Contains(err.Error(), secret) {
			t.Errorf("New(%q): %q shows the secret", raw, err)
		}
	}
}

func TestSource_String_Redacted(t *testing.T) {
	s, err := New("https://user:"+secret+"@127.0.0.1/f.iso?sig="+secret+"&e=1", Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got := s.String(); strings.Contains(got, secret) || !strings.HasPrefix(got, "https://user:") {
		t.Errorf("String() = %q, want the address without its secrets", got)
	}
}

func TestConn_Headers(t *testing.T) {
	data := randomData(1000, 1)
	var (
		mu   sync.Mutex
		seen []http.Header
	)
	srv := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Header.Clone())
		mu.Unlock()
		mirror(data, `"v1"`)(w, r)
	}))
	s := newSource(t, srv.URL+"/f", Options{Header: http.Header{"User-Agent": {"idm-test"}, "X-Token": {"t1"}}})
	c := open(t, s)
	if _, err := c.Describe(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := c.Fetch(t.Context(), 10, 20, io.Discard); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	for i, wantRange := range []string{"bytes=0-0", "bytes=10-29"} {
		h := seen[i]
		for k, want := range map[string]string{"Range": wantRange, "Accept-Encoding": "identity", "User-Agent": "idm-test", "X-Token": "t1", "If-Range": ""} {
			if got := h.Get(k); got != want {
				t.Errorf("request %d: %s %q, want %q", i, k, got, want)
			}
		}
	}
}

func TestConn_Describe(t *testing.T) {
	data := randomData(5000, 2)
	sha256Sum, sha1Sum := sha256.Sum256(data), sha1.Sum(data)
	b64 := base64.StdEncoding.EncodeToString
	tests := []struct {
		name        string
		path        string
		header      map[string]string
		data        []byte
		wantName    string
		wantDigests []identity.Digest
	}{
		{name: "name from the path", path: "/dir/file%20one.iso", wantName: "file one.iso"},
		{name: "name from Content-Disposition", path: "/get", header: map[string]string{"Content-Disposition": `attachment; filename="a.bin"`}, wantName: "a.bin"},
		{name: "name from filename*", path: "/get", header: map[string]string{"Content-Disposition": `attachment; filename="x.bin"; filename*=UTF-8''na%C3%AFve.bin`}, wantName: "naïve.bin"},
		{name: "no name", path: "/", wantName: ""},
		{
			name: "Repr-Digest and Digest", path: "/f",
			header:      map[string]string{"Repr-Digest": "sha-512=:AAAA:, sha-256=:" + b64(sha256Sum[:]) + ":", "Digest": "MD5=AAAA,SHA=" + b64(sha1Sum[:])},
			wantName:    "f",
			wantDigests: []identity.Digest{{Algo: identity.SHA256, Sum: sha256Sum[:]}, {Algo: identity.SHA1, Sum: sha1Sum[:]}},
		},
		{
			name: "RFC 3230 Digest", path: "/f",
			header:      map[string]string{"Digest": "SHA-256=" + b64(sha256Sum[:])},
			wantName:    "f",
			wantDigests: []identity.Digest{{Algo: identity.SHA256, Sum: sha256Sum[:]}},
		},
		{
			name: "malformed digests are ignored", path: "/f",
			header:   map[string]string{"Repr-Digest": "sha-256=:!!notbase64:, sha-256, =:::", "Digest": "SHA-256=" + b64(sha256Sum[:5]) + ",SHA"},
			wantName: "f",
		},
		{name: "empty file, 200", path: "/empty", data: []byte{}, wantName: "empty"},
		{name: "empty file, 416", path: "/empty", data: []byte{}, header: map[string]string{"X-Answer": "416"}, wantName: "empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := data
			if tt.data != nil {
				body = tt.data
			}
			srv := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				for k, v := range tt.header {
					w.Header().Set(k, v)
				}
				if tt.header["X-Answer"] == "416" {
					w.Header().Set("Last-Modified", modTime.Format(http.TimeFormat))
					answer(w, 416, "bytes */0", nil)
					return
				}
				mirror(body, "")(w, r)
			}))
			d, err := newSource(t, srv.URL+tt.path, Options{}).Open(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			desc, err := d.Describe(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			if desc.Size != int64(len(body)) || desc.PieceLen != 0 || desc.Name != tt.wantName || !desc.ModTime.Equal(modTime) {
				t.Errorf("described %d bytes, piece length %d, name %q, time %v; want %d, 0, %q, %v", desc.Size, desc.PieceLen, desc.Name, desc.ModTime, len(body), tt.wantName, modTime)
			}
			if fmt.Sprint(desc.Digests) != fmt.Sprint(tt.wantDigests) {
				t.Errorf("digests %v, want %v", desc.Digests, tt.wantDigests)
			}
		})
	}
}

// answer writes a range answer whose headers say what the test wants.
func answer(w http.ResponseWriter, status int, contentRange string, body []byte) {
	if contentRange != "" {
		w.Header().Set("Content-Range", contentRange)
	}
	w.WriteHeader(status)
	w.Write(body)
}

func TestConn_Describe_Refused(t *testing.T) {
	tests := []struct {
		name          string
		handler       http.HandlerFunc
		wantPermanent bool
		wantIs        error
	}{
		{"200 with the whole file", func(w http.ResponseWriter, r *http.Request) { answer(w, 200, "", []byte("whole file")) }, true, ErrNoRanges},
		{"compressed", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Encoding", "gzip")
			answer(w, 206, "bytes 0-0/100", []byte{1})
		}, true, ErrProtocol},
		{"unknown size", func(w http.ResponseWriter, r *http.Request) { answer(w, 206, "bytes 0-0/*", []byte{1}) }, true, ErrProtocol},
		{"another range", func(w http.ResponseWriter, r *http.Request) { answer(w, 206, "bytes 0-1/100", []byte{1, 2}) }, true, ErrProtocol},
		{"larger than any file", func(w http.ResponseWriter, r *http.Request) {
			answer(w, 206, fmt.Sprintf("bytes 0-0/%d", int64(identity.MaxSize)+1), []byte{1})
		}, true, ErrProtocol},
		{"416 of a non-empty file", func(w http.ResponseWriter, r *http.Request) { answer(w, 416, "bytes */100", nil) }, true, nil},
		{"401", func(w http.ResponseWriter, r *http.Request) { answer(w, 401, "", []byte("who are you")) }, true, nil},
		{"403", func(w http.ResponseWriter, r *http.Request) { answer(w, 403, "", nil) }, true, nil},
		{"404", func(w http.ResponseWriter, r *http.Request) { http.NotFound(w, r) }, true, nil},
		{"410", func(w http.ResponseWriter, r *http.Request) { answer(w, 410, "", nil) }, true, nil},
		{"408", func(w http.ResponseWriter, r *http.Request) { answer(w, 408, "", nil) }, false, nil},
		{"429", func(w http.ResponseWriter, r *http.Request) { answer(w, 429, "", nil) }, false, nil},
		{"500", func(w http.ResponseWriter, r *http.Request) { answer(w, 500, "", []byte("<html>oops</html>")) }, false, nil},
		{"503", func(w http.ResponseWriter, r *http.Request) { answer(w, 503, "", nil) }, false, nil},
		{"204", func(w http.ResponseWriter, r *http.Request) { answer(w, 204, "", nil) }, true, ErrProtocol},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := serve(t, tt.handler)
			_, err := open(t, newSource(t, srv.URL+"/f", Options{})).Describe(t.Context())
			checkErr(t, err, tt.wantPermanent, tt.wantIs)
			if code, _, _ := strings.Cut(tt.name, " "); len(code) == 3 && err != nil && !strings.Contains(err.Error(), code) {
				t.Errorf("%q does not name the status %s", err, code)
			}
		})
	}
}

// A mirror that answers with a Metalink, whole or as the range asked
// for, of version 4 or 3, holds another file: its answer is refused for
// good, as another file, before a byte of it is taken for the file's. An
// error page that says it is a Metalink is only an error page.
func TestConn_Describe_Metalink(t *testing.T) {
	doc := []byte(`<metalink xmlns="urn:ietf:params:xml:ns:metalink"></metalink>`)
	for _, tt := range []struct {
		name, ctype string
		status      int
		other       bool
	}{
		{"Metalink 4, whole", "application/metalink4+xml", 200, true},
		{"Metalink 4, a range", "application/metalink4+xml; charset=utf-8", 206, true},
		{"Metalink 3", "application/metalink+xml", 200, true},
		{"an error page", "application/metalink4+xml", 404, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			srv := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", tt.ctype)
				if tt.status == 206 {
					answer(w, 206, fmt.Sprintf("bytes 0-0/%d", len(doc)), doc[:1])
					return
				}
				answer(w, tt.status, "", doc)
			}))
			_, err := open(t, newSource(t, srv.URL+"/download", Options{})).Describe(t.Context())
			var e *Error
			if !errors.As(err, &e) || e.OtherFile() != tt.other || !e.Permanent() {
				t.Fatalf("%v: want a permanent error, OtherFile %v", err, tt.other)
			}
			if tt.other {
				checkErr(t, err, true, ErrMetalink)
			}
		})
	}
	t.Run("after a description", func(t *testing.T) {
		data := randomData(10_000, 9)
		srv := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("Range") != "bytes=0-0" {
				w.Header().Set("Content-Type", "application/metalink4+xml")
			}
			mirror(data, "")(w, r)
		}))
		c := open(t, newSource(t, srv.URL+"/f", Options{}))
		if _, err := c.Describe(t.Context()); err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		err := c.Fetch(t.Context(), 100, 200, &buf)
		checkErr(t, err, true, ErrMetalink)
		if buf.Len() > 0 {
			t.Errorf("%d bytes of a Metalink written as the file's", buf.Len())
		}
	})
}

// A source that accepts a Metalink 4 as its file takes it as any file:
// described by its ranges, fetched whole, with its type kept for its
// owner to read. A Metalink 3 is still refused, saying why, and an answer
// of another type is a file as ever, its type kept too.
func TestConn_AcceptMetalink(t *testing.T) {
	doc := []byte(`<metalink xmlns="urn:ietf:params:xml:ns:metalink"><file name="a"><url>http://a.example/a</url></file></metalink>`)
	serveAs := func(ctype string) *httptest.Server {
		return serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", ctype)
			http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(doc))
		}))
	}
	t.Run("Metalink 4", func(t *testing.T) {
		src := newSource(t, serveAs("application/metalink4+xml; charset=utf-8").URL+"/download", Options{AcceptMetalink: true})
		c := open(t, src)
		d, err := c.Describe(t.Context())
		if err != nil || d.Size != int64(len(doc)) {
			t.Fatalf("Describe = %+v, %v; want the document's size", d, err)
		}
		var buf bytes.Buffer
		if err := c.Fetch(t.Context(), 0, int64(len(doc)), &buf); err != nil || !bytes.Equal(buf.Bytes(), doc) {
			t.Fatalf("Fetch = %q, %v; want the document", buf.Bytes(), err)
		}
		if mt := src.MediaType(); mt != "application/metalink4+xml" {
			t.Errorf("MediaType = %q, want the answer's, without parameters", mt)
		}
	})
	t.Run("announcing copies of itself", func(t *testing.T) {
		srv := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/metalink4+xml")
			w.Header().Set("Link", `<http://copy.example/download>; rel=duplicate; pri=1`)
			http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(doc))
		}))
		var announced atomic.Bool
		src := newSource(t, srv.URL+"/download", Options{AcceptMetalink: true, OnDuplicates: func([]string, Class) { announced.Store(true) }})
		if _, err := open(t, src).Describe(t.Context()); err != nil {
			t.Fatal(err)
		}
		if announced.Load() {
			t.Error("the copies of a Metalink taken as the file were announced as the file's mirrors")
		}
	})
	t.Run("Metalink 3", func(t *testing.T) {
		_, err := open(t, newSource(t, serveAs("application/metalink+xml").URL+"/f.metalink", Options{AcceptMetalink: true})).Describe(t.Context())
		checkErr(t, err, true, ErrMetalink3)
		var e *Error
		if !errors.As(err, &e) || !e.OtherFile() || !strings.Contains(err.Error(), "Metalink 4 (.meta4)") {
			t.Errorf("%v: want another file, and what to give instead", err)
		}
	})
	t.Run("a file", func(t *testing.T) {
		src := newSource(t, serveAs("Application/Octet-Stream").URL+"/f", Options{AcceptMetalink: true})
		if _, err := open(t, src).Describe(t.Context()); err != nil {
			t.Fatal(err)
		}
		if mt := src.MediaType(); mt != "application/octet-stream" {
			t.Errorf("MediaType = %q, want the answer's in lower case", mt)
		}
	})
}

func TestError_RetryAfter(t *testing.T) {
	date := time.Now().Add(time.Hour).UTC().Format(http.TimeFormat)
	tests := []struct {
		status   int
		header   string
		min, max time.Duration
	}{
		{429, "7", 7 * time.Second, 7 * time.Second},
		{503, date, 58 * time.Minute, time.Hour},
		{503, "", 0, 0},
		{503, "soon", 0, 0},
		{500, "7", 0, 0},
	}
	for _, tt := range tests {
		srv := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if tt.header != "" {
				w.Header().Set("Retry-After", tt.header)
			}
			w.WriteHeader(tt.status)
		}))
		err := open(t, newSource(t, srv.URL+"/f", Options{})).Fetch(t.Context(), 0, 10, io.Discard)
		checkErr(t, err, false, nil)
		var ra interface{ RetryAfter() time.Duration }
		if !errors.As(err, &ra) {
			t.Fatalf("%d with Retry-After %q: %v has no RetryAfter", tt.status, tt.header, err)
		}
		if got := ra.RetryAfter(); got < tt.min || got > tt.max {
			t.Errorf("%d with Retry-After %q: RetryAfter %v, want %v..%v", tt.status, tt.header, got, tt.min, tt.max)
		}
	}
}

func TestConn_Fetch(t *testing.T) {
	data := randomData(100_000, 3)
	srv := serve(t, mirror(data, `"v1"`))
	s := newSource(t, srv.URL+"/f", Options{})
	// A Conn that fetches before any Describe learns the size itself.
	c := open(t, s)
	var buf bytes.Buffer
	for _, r := range [][2]int64{{0, 1}, {1000, 4096}, {99_000, 1000}} {
		buf.Reset()
		if err := c.Fetch(t.Context(), r[0], r[1], &buf); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(buf.Bytes(), data[r[0]:r[0]+r[1]]) {
			t.Errorf("range %d+%d: %d bytes that differ from the file", r[0], r[1], buf.Len())
		}
	}
	err := c.Fetch(t.Context(), 99_500, 1000, &buf)
	checkErr(t, err, true, nil)
}

func TestConn_Fetch_Refused(t *testing.T) {
	data := randomData(10_000, 4)
	const off, n = 2000, 3000
	right := fmt.Sprintf("bytes %d-%d/%d", off, off+n-1, len(data))
	tests := []struct {
		name          string
		handler       func(w http.ResponseWriter, r *http.Request)
		wantPermanent bool
		wantIs        error
		mayWrite      bool // the header was right: bytes may have gone to w
	}{
		{"error page", func(w http.ResponseWriter, r *http.Request) { answer(w, 500, "", []byte("<html>error</html>")) }, false, nil, false},
		{"not found", func(w http.ResponseWriter, r *http.Request) { http.NotFound(w, r) }, true, nil, false},
		{"200 with the whole file", func(w http.ResponseWriter, r *http.Request) { answer(w, 200, "", data) }, true, ErrNoRanges, false},
		{"another range", func(w http.ResponseWriter, r *http.Request) {
			answer(w, 206, fmt.Sprintf("bytes 0-%d/%d", n-1, len(data)), data[:n])
		}, true, ErrProtocol, false},
		{"another size", func(w http.ResponseWriter, r *http.Request) {
			answer(w, 206, fmt.Sprintf("bytes %d-%d/%d", off, off+n-1, len(data)+1), data[off:off+n])
		}, true, ErrChanged, false},
		{"a range that starts late, chunked", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", off+1, off+n-1, len(data)))
			w.WriteHeader(206)
			w.(http.Flusher).Flush()
			w.Write(data[off+1 : off+n])
		}, true, ErrProtocol, false},
		{"no Content-Range", func(w http.ResponseWriter, r *http.Request) { answer(w, 206, "", data[off:off+n]) }, true, ErrProtocol, false},
		{"Content-Length of another length", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", fmt.Sprint(n+1))
			answer(w, 206, right, data[off:off+n+1])
		}, true, ErrProtocol, false},
		{"compressed", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Encoding", "br")
			answer(w, 206, right, data[off:off+n])
		}, true, ErrProtocol, false},
		{"another ETag", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("ETag", `"v2"`)
			answer(w, 206, right, data[off:off+n])
		}, true, ErrChanged, false},
		{"long body, chunked", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Range", right)
			w.WriteHeader(206)
			w.Write(data[off : off+n])
			w.(http.Flusher).Flush()
			w.Write([]byte("and more"))
		}, true, ErrProtocol, true},
		{"short body", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", fmt.Sprint(n))
			answer(w, 206, right, data[off:off+n-10])
		}, false, nil, true},
		{"reset", func(w http.ResponseWriter, r *http.Request) {
			conn, bw, err := w.(http.Hijacker).Hijack()
			if err != nil {
				t.Error(err)
				return
			}
			fmt.Fprintf(bw, "HTTP/1.1 206 Partial Content\r\nContent-Range: %s\r\nContent-Length: %d\r\n\r\n", right, n)
			bw.Write(data[off : off+n/2])
			bw.Flush()
			conn.(*net.TCPConn).SetLinger(0)
			conn.Close()
		}, false, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.Header.Get("Range") == "bytes=0-0" {
					mirror(data, `"v1"`)(w, r)
					return
				}
				tt.handler(w, r)
			}))
			c := open(t, newSource(t, srv.URL+"/f", Options{}))
			if _, err := c.Describe(t.Context()); err != nil {
				t.Fatal(err)
			}
			var buf bytes.Buffer
			err := c.Fetch(t.Context(), off, n, &buf)
			checkErr(t, err, tt.wantPermanent, tt.wantIs)
			if !tt.mayWrite && buf.Len() > 0 {
				t.Errorf("%d bytes written from an answer that is not the range", buf.Len())
			}
			if !bytes.HasPrefix(data[off:], buf.Bytes()) {
				t.Errorf("the %d bytes written are not the range's", buf.Len())
			}
		})
	}
}

// TestConn_Fetch_BeforeDescribe_KnowsTheSize has one Conn describe the
// file and another, which never described it, refuse an answer that says
// the file has another size.
func TestConn_Fetch_BeforeDescribe_KnowsTheSize(t *testing.T) {
	data := randomData(10_000, 5)
	var grown atomic.Bool
	srv := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if grown.Load() {
			off, n := rangeOfRequest(t, r)
			answer(w, 206, fmt.Sprintf("bytes %d-%d/%d", off, off+n-1, len(data)+10), data[off:off+n])
			return
		}
		mirror(data, "")(w, r)
	}))
	s := newSource(t, srv.URL+"/f", Options{})
	if _, err := open(t, s).Describe(t.Context()); err != nil {
		t.Fatal(err)
	}
	grown.Store(true)
	var buf bytes.Buffer
	err := open(t, s).Fetch(t.Context(), 100, 100, &buf)
	checkErr(t, err, true, ErrChanged)
	if buf.Len() > 0 {
		t.Errorf("%d bytes written from a file of another size", buf.Len())
	}
}

// signer is a mirror whose /get redirects to a fresh signed link to the
// file; a test can make the links handed out so far expire.
type signer struct {
	data    []byte
	gets    atomic.Int32 // requests to /get
	fetches atomic.Int32 // requests to the signed links
	mu      sync.Mutex
	valid   int // the oldest link still valid
}

func (sg *signer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/get":
		g := sg.gets.Add(1)
		http.Redirect(w, r, fmt.Sprintf("/files/file.iso?sig=%s-%d", secret, g), http.StatusFound)
	case "/files/file.iso":
		sg.fetches.Add(1)
		var g int
		fmt.Sscanf(strings.TrimPrefix(r.URL.Query().Get("sig"), secret+"-"), "%d", &g)
		sg.mu.Lock()
		expired := g < sg.valid
		sg.mu.Unlock()
		if expired {
			http.Error(w, "link expired", http.StatusForbidden)
			return
		}
		mirror(sg.data, "")(w, r)
	default:
		http.NotFound(w, r)
	}
}

func (sg *signer) expire() {
	sg.mu.Lock()
	sg.valid = int(sg.gets.Load()) + 1
	sg.mu.Unlock()
}

func TestSource_Redirect_RemembersAndForgets(t *testing.T) {
	sg := &signer{data: randomData(10_000, 6)}
	srv := serve(t, sg)
	s := newSource(t, srv.URL+"/get", Options{})
	c := open(t, s)
	d, err := c.Describe(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if d.Name != "file.iso" {
		t.Errorf("name %q, want the final address's file.iso", d.Name)
	}
	var buf bytes.Buffer
	if err := open(t, s).Fetch(t.Context(), 100, 100, &buf); err != nil {
		t.Fatal(err)
	}
	if g := sg.gets.Load(); g != 1 {
		t.Errorf("%d requests to the original address, want 1: the final one is not remembered", g)
	}
	sg.expire()
	err = c.Fetch(t.Context(), 200, 100, io.Discard)
	checkErr(t, err, false, nil)
	buf.Reset()
	if err := c.Fetch(t.Context(), 300, 100, &buf); err != nil {
		t.Fatalf("after the link expired: %v", err)
	}
	if g := sg.gets.Load(); g != 2 {
		t.Errorf("%d requests to the original address, want 2: the expired link is not forgotten", g)
	}
	if !bytes.Equal(buf.Bytes(), sg.data[300:400]) {
		t.Error("bytes from the fresh link differ from the file")
	}
}

// TestSource_Redirect_NoCredentialsToAnotherHost has a mirror redirect to
// another host: neither the redirect nor the later requests straight to
// it carry the credentials meant for the first.
func TestSource_Redirect_NoCredentialsToAnotherHost(t *testing.T) {
	data := randomData(1000, 7)
	var leaked atomic.Int32
	other := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "" || r.Header.Get("Cookie") != "" {
			leaked.Add(1)
		}
		mirror(data, "")(w, r)
	}))
	_, port, _ := net.SplitHostPort(other.Listener.Addr().String())
	first := serve(t, http.RedirectHandler("http://localhost:"+port+"/f", http.StatusFound))
	s := newSource(t, first.URL+"/get", Options{Header: http.Header{"Authorization": {"Bearer " + secret}, "Cookie": {"session=" + secret}}})
	c := open(t, s)
	if _, err := c.Describe(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := c.Fetch(t.Context(), 10, 10, io.Discard); err != nil {
		t.Fatal(err)
	}
	if n := leaked.Load(); n != 0 {
		t.Errorf("%d requests to another host carried the credentials", n)
	}
}

// chain redirects /r/k to /r/k+1 until k is hops, then serves data.
func chain(data []byte, hops int) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var k int
		fmt.Sscanf(r.URL.Path, "/r/%d", &k)
		if k < hops {
			http.Redirect(w, r, fmt.Sprintf("/r/%d?sig=%s", k+1, secret), http.StatusFound)
			return
		}
		mirror(data, "")(w, r)
	}
}

func TestSource_Redirect_Limit(t *testing.T) {
	data := randomData(100, 8)
	srv := serve(t, chain(data, 10))
	if _, err := open(t, newSource(t, srv.URL+"/r/0", Options{})).Describe(t.Context()); err != nil {
		t.Errorf("ten redirects: %v", err)
	}
	srv = serve(t, chain(data, 11))
	_, err := open(t, newSource(t, srv.URL+"/r/0", Options{})).Describe(t.Context())
	checkErr(t, err, true, ErrRedirect)
}

// TestSource_Redirect_UnparsableLocation has a mirror redirect to an
// address that does not parse: net/http's error quotes it, signature
// and all, and must not be shown.
func TestSource_Redirect_UnparsableLocation(t *testing.T) {
	srv := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Location", "http://[::1/f?sig="+secret)
		w.WriteHeader(http.StatusFound)
	}))
	_, err := open(t, newSource(t, srv.URL+"/f", Options{})).Describe(t.Context())
	checkErr(t, err, true, ErrRedirect)
}

// tlsClient returns NewClient's client trusting srv's certificate.
func tlsClient(srv *httptest.Server) *http.Client {
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	c, err := NewClientWith(ClientOptions{CA: string(ca)})
	if err != nil {
		panic(err)
	}
	return c
}

func TestSource_Redirect_Downgrade(t *testing.T) {
	data := randomData(100, 9)
	var plainHits atomic.Int32
	plain := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		plainHits.Add(1)
		mirror(data, "")(w, r)
	}))
	secure := httptest.NewTLSServer(http.RedirectHandler(plain.URL+"/f", http.StatusFound))
	t.Cleanup(secure.Close)
	for name, client := range map[string]*http.Client{"NewClient": tlsClient(secure), "a client without a redirect policy": secure.Client()} {
		_, err := open(t, newSource(t, secure.URL+"/f", Options{Client: client})).Describe(t.Context())
		checkErr(t, err, true, ErrRedirect)
		if plainHits.Load() != 0 {
			t.Errorf("%s: the redirect to http was followed", name)
		}
	}
}

func TestNewClient_TLS_HTTP2(t *testing.T) {
	data := randomData(50_000, 10)
	var protos sync.Map
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		protos.Store(r.Proto, true)
		mirror(data, `"v1"`)(w, r)
	}))
	srv.EnableHTTP2 = true
	// The last request, by a client that does not trust the server,
	// makes it log a handshake error.
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	c := open(t, newSource(t, srv.URL+"/f", Options{Client: tlsClient(srv)}))
	if _, err := c.Describe(t.Context()); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := c.Fetch(t.Context(), 1000, 20_000, &buf); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf.Bytes(), data[1000:21_000]) {
		t.Error("bytes differ from the file")
	}
	protos.Range(func(k, _ any) bool {
		if k != "HTTP/2.0" {
			t.Errorf("a request over %v, want HTTP/2.0", k)
		}
		return true
	})
	// The system's roots do not know the test's certificate: the mirror
	// can never be trusted, so it is refused for good...
	_, err := open(t, newSource(t, srv.URL+"/f", Options{})).Describe(t.Context())
	checkErr(t, err, true, nil)
	// ...unless its CA is given, which adds a root and turns nothing off.
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	client, err := NewClientWith(ClientOptions{CA: string(ca)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := open(t, newSource(t, srv.URL+"/f", Options{Client: client})).Describe(t.Context()); err != nil {
		t.Errorf("with the mirror's CA given: %v", err)
	}
	if _, err := NewClientWith(ClientOptions{CA: "not a certificate"}); err == nil {
		t.Error("a CA without a certificate was taken")
	}
	for _, p := range []string{"ftp://127.0.0.1:1", "127.0.0.1:3128", "http://u:secret@"} {
		if _, err := NewClientWith(ClientOptions{Proxy: p}); err == nil || strings.Contains(err.Error(), "secret") {
			t.Errorf("proxy %q: %v, want an error that shows no secret", p, err)
		}
	}
}

func TestSource_Validator_Recorded(t *testing.T) {
	data := randomData(1000, 11)
	lm := modTime.Format(http.TimeFormat)
	for etag, want := range map[string]Validator{`"v1"`: {ETag: `"v1"`, LastModified: lm}, `W/"v1"`: {LastModified: lm}} {
		srv := serve(t, mirror(data, etag))
		given := Validator{ETag: `"given"`}
		s := newSource(t, srv.URL+"/f", Options{})
		if got := s.Validator(); got != (Validator{}) {
			t.Errorf("before any answer: %v, want none", got)
		}
		s = newSource(t, srv.URL+"/f", Options{Validator: given})
		if got := s.Validator(); got != given {
			t.Errorf("before any answer: %v, want the given %v", got, given)
		}
		s = newSource(t, srv.URL+"/f", Options{})
		if _, err := open(t, s).Describe(t.Context()); err != nil {
			t.Fatal(err)
		}
		if got := s.Validator(); got != want {
			t.Errorf("ETag %s: recorded %v, want %v", etag, got, want)
		}
	}
}

// TestSource_WeakETag_NotCompared has a mirror change its weak ETag from
// answer to answer, as compressing proxies do: it is no change of file.
func TestSource_WeakETag_NotCompared(t *testing.T) {
	data := randomData(1000, 12)
	var n atomic.Int32
	srv := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mirror(data, fmt.Sprintf(`W/"%d"`, n.Add(1)))(w, r)
	}))
	c := open(t, newSource(t, srv.URL+"/f", Options{}))
	if _, err := c.Describe(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := c.Fetch(t.Context(), 0, 100, io.Discard); err != nil {
		t.Fatal(err)
	}
}

func TestSource_Validator_IfRange(t *testing.T) {
	data := randomData(1000, 13)
	lm := modTime.Format(http.TimeFormat)
	later := modTime.Add(time.Hour).Format(http.TimeFormat)
	ignoresIfRange := func(etag string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			r.Header.Del("If-Range")
			mirror(data, etag)(w, r)
		}
	}
	ignoresRanges := func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("ETag", `"v1"`)
		answer(w, 200, "", data)
	}
	changedLater := func(w http.ResponseWriter, r *http.Request) {
		http.ServeContent(w, r, "", modTime.Add(time.Hour), bytes.NewReader(data))
	}
	tests := []struct {
		name        string
		given       Validator
		handler     http.HandlerFunc
		wantIfRange string
		wantIs      error    // nil: success
		wantNamed   []string // in the message
	}{
		{"same ETag", Validator{ETag: `"v1"`}, mirror(data, `"v1"`), `"v1"`, nil, nil},
		{"same date", Validator{LastModified: lm}, mirror(data, ""), lm, nil, nil},
		{"weak ETag: the date is sent", Validator{ETag: `W/"v1"`, LastModified: lm}, mirror(data, ""), lm, nil, nil},
		{"another ETag", Validator{ETag: `"v1"`}, mirror(data, `"v2"`), `"v1"`, ErrChanged, []string{`"v1"`, `"v2"`}},
		{"a later date", Validator{LastModified: lm}, changedLater, lm, ErrChanged, []string{lm, later}},
		{"another ETag, If-Range ignored", Validator{ETag: `"v1"`}, ignoresIfRange(`"v2"`), `"v1"`, ErrChanged, []string{`"v1"`, `"v2"`}},
		{"ranges ignored", Validator{ETag: `"v1"`}, ignoresRanges, `"v1"`, ErrNoRanges, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var ifRange atomic.Value
			srv := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				ifRange.Store(r.Header.Get("If-Range"))
				tt.handler(w, r)
			}))
			c := open(t, newSource(t, srv.URL+"/f", Options{Validator: tt.given}))
			_, err := c.Describe(t.Context())
			if got := ifRange.Load(); got != tt.wantIfRange {
				t.Errorf("If-Range %q, want %q", got, tt.wantIfRange)
			}
			if tt.wantIs == nil {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			checkErr(t, err, true, tt.wantIs)
			for _, s := range tt.wantNamed {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("%q does not name %s", err, s)
				}
			}
		})
	}
}

// serveBlocking serves a mirror that answers a range with its header and
// half its bytes, or with nothing when silent, then waits until the
// client goes away or the test ends. started is closed once it has
// answered what it will.
func serveBlocking(t *testing.T, data []byte, silent bool, started chan struct{}) *httptest.Server {
	release := make(chan struct{})
	var once sync.Once
	srv := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !silent {
			off, n := rangeOfRequest(t, r)
			w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", off, off+n-1, len(data)))
			w.Header().Set("Content-Length", fmt.Sprint(n))
			w.WriteHeader(206)
			w.Write(data[off : off+n/2])
			w.(http.Flusher).Flush()
		}
		once.Do(func() { close(started) })
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	// Cleanups run last first: the handler is released before the
	// server waits for it.
	t.Cleanup(func() { close(release) })
	return srv
}

func TestConn_Fetch_Stall(t *testing.T) {
	leaktest.Check(t)
	data := randomData(100_000, 14)
	for _, silent := range []bool{false, true} {
		t.Run(fmt.Sprintf("silent=%v", silent), func(t *testing.T) {
			srv := serveBlocking(t, data, silent, make(chan struct{}))
			c := open(t, newSource(t, srv.URL+"/f", Options{StallTimeout: 200 * time.Millisecond}))
			ctx, cancel := context.WithTimeout(t.Context(), waitLimit)
			defer cancel()
			var buf bytes.Buffer
			err := c.Fetch(ctx, 0, 10_000, &buf)
			if ctx.Err() != nil {
				t.Fatal("the stalled fetch did not fail by itself")
			}
			checkErr(t, err, false, ErrStalled)
			if want := data[:5000]; !silent && !bytes.Equal(buf.Bytes(), want) {
				t.Errorf("%d bytes written before the stall, want the %d sent", buf.Len(), len(want))
			}
		})
	}
}

// fetchBlocked starts a Fetch on c from a mirror that stops half way, and
// returns once the mirror has stopped, with the channel the Fetch's error
// will come on.
func fetchBlocked(t *testing.T, ctx context.Context, opt Options) (*Conn, <-chan error) {
	t.Helper()
	data := randomData(100_000, 15)
	started := make(chan struct{})
	srv := serveBlocking(t, data, false, started)
	c := open(t, newSource(t, srv.URL+"/f", opt))
	done := make(chan error, 1)
	go func() { done <- c.Fetch(ctx, 0, 10_000, io.Discard) }()
	select {
	case <-started:
	case <-time.After(waitLimit):
		t.Fatal("the mirror was not asked")
	}
	return c, done
}

// result waits for a Fetch's error.
func result(t *testing.T, done <-chan error) error {
	t.Helper()
	select {
	case err := <-done:
		return err
	case <-time.After(waitLimit):
		t.Fatal("the blocked fetch did not return")
		return nil
	}
}

func TestConn_Close_UnblocksFetch(t *testing.T) {
	leaktest.Check(t)
	c, done := fetchBlocked(t, t.Context(), Options{StallTimeout: time.Hour})
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	checkErr(t, result(t, done), false, nil)
	if err := c.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	// A request after Close would block on this mirror: the deadline
	// tells.
	ctx, cancel := context.WithTimeout(t.Context(), waitLimit)
	defer cancel()
	err := c.Fetch(ctx, 0, 10, io.Discard)
	if ctx.Err() != nil {
		t.Fatal("a Fetch after Close asked the mirror")
	}
	checkErr(t, err, false, nil)
}

func TestConn_Fetch_ContextCancelled(t *testing.T) {
	leaktest.Check(t)
	ctx, cancel := context.WithCancel(t.Context())
	_, done := fetchBlocked(t, ctx, Options{StallTimeout: time.Hour})
	cancel()
	if err := result(t, done); !errors.Is(err, context.Canceled) {
		t.Errorf("%v, want context.Canceled", err)
	}
}

// TestConn_Fetch_ErrorPageNotReadToTheEnd has a mirror send an endless
// error page, fast or a byte at a time: the fetch fails without reading
// it all.
func TestConn_Fetch_ErrorPageNotReadToTheEnd(t *testing.T) {
	page := bytes.Repeat([]byte("<p>error</p>"), 1000)
	for name, chunk := range map[string][]byte{"fast": page, "a byte at a time": page[:1]} {
		t.Run(name, func(t *testing.T) {
			srv := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(http.StatusInternalServerError)
				for r.Context().Err() == nil {
					if _, err := w.Write(chunk); err != nil {
						return
					}
					w.(http.Flusher).Flush()
					if len(chunk) == 1 {
						time.Sleep(50 * time.Millisecond) // a trickle, well within the stall time-out
					}
				}
			}))
			ctx, cancel := context.WithTimeout(t.Context(), waitLimit)
			defer cancel()
			err := open(t, newSource(t, srv.URL+"/f", Options{StallTimeout: 500 * time.Millisecond})).Fetch(ctx, 0, 10, io.Discard)
			if ctx.Err() != nil {
				t.Fatal("the fetch kept reading the error page")
			}
			checkErr(t, err, false, nil)
		})
	}
}

func TestConn_Describe_HeaderTooLarge(t *testing.T) {
	srv := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Filler", strings.Repeat("x", 100<<10))
		answer(w, 206, "bytes 0-0/10", []byte{1})
	}))
	if _, err := open(t, newSource(t, srv.URL+"/f", Options{})).Describe(t.Context()); err == nil {
		t.Error("a 100 KiB header was taken")
	}
}

// TestSource_TransportServer downloads a file from the repository's own
// range server through two Conns, range by range.
func TestSource_TransportServer(t *testing.T) {
	leaktest.Check(t)
	path, data := servertest.File(t, 3<<20+12345, 16)
	srv := servertest.Start(t, path, 0, 0)[0]
	s := newSource(t, "http://"+srv.Addr+"/", Options{})
	conns := []*Conn{open(t, s), open(t, s)}
	d, err := conns[0].Describe(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if d.Size != int64(len(data)) {
		t.Fatalf("described %d bytes, want %d", d.Size, len(data))
	}
	if want := `"` + srv.Manifest.Root().String() + `"`; s.Validator().ETag != want {
		t.Errorf("recorded ETag %q, want the server's %q", s.Validator().ETag, want)
	}
	var got bytes.Buffer
	const step = 300_000
	for i, off := 0, int64(0); off < d.Size; i, off = i+1, off+step {
		if err := conns[i%2].Fetch(t.Context(), off, min(step, d.Size-off), &got); err != nil {
			t.Fatalf("range at %d: %v", off, err)
		}
	}
	if !bytes.Equal(got.Bytes(), data) {
		t.Error("the file downloaded differs from the one served")
	}
}
