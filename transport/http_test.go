package transport

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"
)

// httpGet sends one request with the given headers and returns the
// response with its whole body.
func httpGet(t *testing.T, client *http.Client, method, url string, header map[string]string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading the body: %v", method, url, err)
	}
	return resp, body
}

func TestServer_HTTP_Get(t *testing.T) {
	path, data := randomFile(t, fileSize, 30)
	srv := startServer(t, path, nil)
	base := "http://" + addrOf(t, srv)
	etag := `"` + srv.Manifest.Root().String() + `"`
	client := httpClient(t)
	for name, p := range map[string]string{"root": "/", "file name": "/" + srv.Manifest.Name} {
		t.Run(name, func(t *testing.T) {
			resp, body := httpGet(t, client, "GET", base+p, nil)
			if resp.StatusCode != 200 {
				t.Fatalf("status %s, want 200", resp.Status)
			}
			if !bytes.Equal(body, data) {
				t.Fatalf("body of %d bytes differs from the file", len(body))
			}
			h := resp.Header
			wants := map[string]string{
				"Content-Length": strconv.Itoa(fileSize),
				"Accept-Ranges":  "bytes",
				"ETag":           etag,
				"Last-Modified":  srv.Manifest.ModTime.UTC().Format(http.TimeFormat),
				"Content-Type":   "application/octet-stream",
			}
			for k, want := range wants {
				if got := h.Get(k); got != want {
					t.Errorf("%s: %q, want %q", k, got, want)
				}
			}
			_, params, err := mime.ParseMediaType(h.Get("Content-Disposition"))
			if err != nil || params["filename"] != srv.Manifest.Name {
				t.Errorf("Content-Disposition %q: want the file name %q", h.Get("Content-Disposition"), srv.Manifest.Name)
			}
		})
	}
}

func TestServer_HTTP_Range(t *testing.T) {
	path, data := randomFile(t, fileSize, 31)
	srv := startServer(t, path, nil)
	url := "http://" + addrOf(t, srv) + "/"
	etag := `"` + srv.Manifest.Root().String() + `"`
	client := httpClient(t)
	tests := []struct {
		name       string
		header     map[string]string
		wantStatus int
		from, to   int // the bytes expected, [from, to)
	}{
		{"middle", map[string]string{"Range": "bytes=100-199"}, 206, 100, 200},
		{"first byte", map[string]string{"Range": "bytes=0-0"}, 206, 0, 1},
		{"open-ended", map[string]string{"Range": "bytes=1000-"}, 206, 1000, fileSize},
		{"suffix", map[string]string{"Range": "bytes=-50"}, 206, fileSize - 50, fileSize},
		{"end past the file is cut", map[string]string{"Range": fmt.Sprintf("bytes=%d-%d", fileSize-10, fileSize+1000)}, 206, fileSize - 10, fileSize},
		{"If-Range with the ETag", map[string]string{"Range": "bytes=100-199", "If-Range": etag}, 206, 100, 200},
		{"If-Range with another ETag", map[string]string{"Range": "bytes=100-199", "If-Range": `"0000"`}, 200, 0, fileSize},
		{"If-None-Match with the ETag", map[string]string{"If-None-Match": etag}, 304, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := httpGet(t, client, "GET", url, tt.header)
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("status %s, want %d", resp.Status, tt.wantStatus)
			}
			if !bytes.Equal(body, data[tt.from:tt.to]) {
				t.Fatalf("body of %d bytes, want bytes %d-%d of the file", len(body), tt.from, tt.to-1)
			}
			if tt.wantStatus == 304 {
				return
			}
			if got, want := resp.Header.Get("Content-Length"), strconv.Itoa(tt.to-tt.from); got != want {
				t.Errorf("Content-Length %q, want %q", got, want)
			}
			if tt.wantStatus == 206 {
				want := fmt.Sprintf("bytes %d-%d/%d", tt.from, tt.to-1, fileSize)
				if got := resp.Header.Get("Content-Range"); got != want {
					t.Errorf("Content-Range %q, want %q", got, want)
				}
			}
		})
	}
}

func TestServer_HTTP_Range_NotSatisfiable(t *testing.T) {
	path, _ := randomFile(t, fileSize, 32)
	srv := startServer(t, path, nil)
	url := "http://" + addrOf(t, srv) + "/"
	client := httpClient(t)
	for _, r := range []string{
		fmt.Sprintf("bytes=%d-", fileSize),
		fmt.Sprintf("bytes=%d-%d", fileSize+10, fileSize+20),
	} {
		resp, _ := httpGet(t, client, "GET", url, map[string]string{"Range": r})
		if resp.StatusCode != http.StatusRequestedRangeNotSatisfiable {
			t.Errorf("Range %s: status %s, want 416", r, resp.Status)
		}
		if got, want := resp.Header.Get("Content-Range"), fmt.Sprintf("bytes */%d", fileSize); got != want {
			t.Errorf("Range %s: Content-Range %q, want %q", r, got, want)
		}
	}
}

func TestServer_HTTP_MultipleRanges(t *testing.T) {
	path, data := randomFile(t, fileSize, 33)
	srv := startServer(t, path, nil)
	resp, body := httpGet(t, httpClient(t), "GET", "http://"+addrOf(t, srv)+"/", map[string]string{"Range": "bytes=0-9,1000-1099"})
	if resp.StatusCode != 206 {
		t.Fatalf("status %s, want 206", resp.Status)
	}
	mt, params, err := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/byteranges" {
		t.Fatalf("Content-Type %q, want multipart/byteranges", resp.Header.Get("Content-Type"))
	}
	mr := multipart.NewReader(bytes.NewReader(body), params["boundary"])
	for _, want := range [][2]int{{0, 10}, {1000, 1100}} {
		part, err := mr.NextPart()
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(part)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, data[want[0]:want[1]]) {
			t.Errorf("part for %d-%d differs from the file", want[0], want[1]-1)
		}
	}
	if _, err := mr.NextPart(); err != io.EOF {
		t.Errorf("after two parts: %v, want io.EOF", err)
	}
}

func TestServer_HTTP_Head(t *testing.T) {
	path, _ := randomFile(t, fileSize, 34)
	srv := startServer(t, path, nil)
	resp, body := httpGet(t, httpClient(t), "HEAD", "http://"+addrOf(t, srv)+"/", nil)
	if resp.StatusCode != 200 {
		t.Fatalf("status %s, want 200", resp.Status)
	}
	if len(body) != 0 {
		t.Errorf("HEAD answered with a %d-byte body", len(body))
	}
	wants := map[string]string{
		"Content-Length": strconv.Itoa(fileSize),
		"Accept-Ranges":  "bytes",
		"ETag":           `"` + srv.Manifest.Root().String() + `"`,
		"Last-Modified":  srv.Manifest.ModTime.UTC().Format(http.TimeFormat),
	}
	for k, want := range wants {
		if got := resp.Header.Get(k); got != want {
			t.Errorf("%s: %q, want %q", k, got, want)
		}
	}
}

func TestServer_HTTP_Errors(t *testing.T) {
	path, _ := randomFile(t, 100, 35)
	srv := startServer(t, path, nil)
	base := "http://" + addrOf(t, srv)
	client := httpClient(t)
	tests := []struct {
		method, path string
		want         int
	}{
		{"GET", "/other", 404},
		{"GET", "/" + srv.Manifest.Name + "/x", 404},
		{"HEAD", "/other", 404},
		{"POST", "/", 405},
		{"PUT", "/" + srv.Manifest.Name, 405},
		{"DELETE", "/", 405},
	}
	for _, tt := range tests {
		resp, _ := httpGet(t, client, tt.method, base+tt.path, nil)
		if resp.StatusCode != tt.want {
			t.Errorf("%s %s: status %s, want %d", tt.method, tt.path, resp.Status, tt.want)
		}
		if tt.want == 405 && resp.Header.Get("Allow") != "GET, HEAD" {
			t.Errorf("%s %s: Allow %q, want \"GET, HEAD\"", tt.method, tt.path, resp.Header.Get("Allow"))
		}
	}
}

// TestServer_HTTP_AndIDM_SamePort serves idm and HTTP clients at the same
// time on one port.
func TestServer_HTTP_AndIDM_SamePort(t *testing.T) {
	path, data := randomFile(t, 1<<20, 36)
	srv := startServer(t, path, nil)
	addr := addrOf(t, srv)
	client := httpClient(t)
	errs := make(chan error, 20)
	var wg sync.WaitGroup
	for i := range 10 {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			cn, err := Dial(ctx, addr)
			if err != nil {
				errs <- err
				return
			}
			defer cn.Close()
			if err := fetchAll(cn, srv.Manifest, data); err != nil {
				errs <- fmt.Errorf("idm client %d: %w", i, err)
			}
		})
		wg.Go(func() {
			if err := httpFetch(client, "http://"+addr+"/", data); err != nil {
				errs <- fmt.Errorf("HTTP client %d: %w", i, err)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// httpFetch GETs url and compares the body with want as it arrives.
func httpFetch(client *http.Client, url string, want []byte) error {
	resp, err := client.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("status %s", resp.Status)
	}
	buf := make([]byte, 64<<10)
	off := 0
	for {
		n, err := resp.Body.Read(buf)
		if off+n > len(want) || !bytes.Equal(buf[:n], want[off:off+n]) {
			return fmt.Errorf("body differs from the file after byte %d", off)
		}
		off += n
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
	}
	if off != len(want) {
		return fmt.Errorf("body of %d bytes, want %d", off, len(want))
	}
	return nil
}

// TestServer_HTTP_ManyClients has 100 HTTP clients GET the whole file at
// once.
func TestServer_HTTP_ManyClients(t *testing.T) {
	const clients = 100
	path, data := randomFile(t, 4<<20, 37)
	srv := startServer(t, path, func(s *Server) { s.MaxConns = clients + 10 })
	url := "http://" + addrOf(t, srv) + "/"
	client := httpClient(t)
	errs := make(chan error, clients)
	var wg sync.WaitGroup
	for i := range clients {
		wg.Go(func() {
			if err := httpFetch(client, url, data); err != nil {
				errs <- fmt.Errorf("client %d: %w", i, err)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
