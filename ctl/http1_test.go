package ctl

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// serveRaw answers every connection to a new socket with answer, after
// reading the request's header, closes the connection, and returns a
// client of that socket.
func serveRaw(t *testing.T, answer string) *Client { return serveRawHold(t, answer, false) }

// serveRawHold is serveRaw; with hold, the connection stays open after
// the answer until the client closes it, as an event stream's does.
func serveRawHold(t *testing.T, answer string, hold bool) *Client {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "s")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				br := bufio.NewReader(conn)
				if _, err := http.ReadRequest(br); err != nil {
					return
				}
				io.WriteString(conn, answer)
				if hold {
					io.Copy(io.Discard, br)
				}
			}()
		}
	}()
	return &Client{Socket: sock}
}

func TestRoundTrip_Framing(t *testing.T) {
	const hdr = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
	tests := []struct {
		name, answer string
		want         string // the version read, or "error"
	}{
		{"content length", hdr + "Content-Length: 18\r\n\r\n" + `{"version":"1.2"}` + "\n", "1.2"},
		{"chunked", hdr + "Transfer-Encoding: chunked\r\n\r\n5\r\n{\"ver\r\na;ext=1\r\nsion\":\"3\"}\r\n0\r\nX-Trailer: y\r\n\r\n", "3"},
		{"until close", hdr + "\r\n" + `{"version":"4"}`, "4"},
		{"interim answers skipped", "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: x\r\n\r\n" + hdr + "Content-Length: 15\r\n\r\n" + `{"version":"5"}`, "5"},
		{"short body", hdr + "Content-Length: 40\r\n\r\n" + `{"version":"6"}`, "error"},
		{"chunked cut before the last chunk", hdr + "Transfer-Encoding: chunked\r\n\r\nf\r\n{\"version\":\"7\"}\r\n", "error"},
		{"chunk longer than its size", hdr + "Transfer-Encoding: chunked\r\n\r\n2\r\n{\"version\":\"8\"}\r\n0\r\n\r\n", "error"},
		{"bad chunk size", hdr + "Transfer-Encoding: chunked\r\n\r\n-1\r\n", "error"},
		{"other transfer coding", hdr + "Transfer-Encoding: gzip, chunked\r\n\r\n", "error"},
		{"two lengths", hdr + "Content-Length: 15\r\nContent-Length: 16\r\n\r\n" + `{"version":"9"}`, "error"},
		{"not HTTP", "SSH-2.0-OpenSSH\r\n\r\n", "error"},
		{"switching protocols", "HTTP/1.1 101 Switching Protocols\r\n\r\n", "error"},
		{"endless header", hdr + "X: " + strings.Repeat("a", 2*maxHeaderBytes), "error"},
		{"no answer", "", "error"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := serveRaw(t, tt.answer)
			v, err := c.Version(context.Background())
			got := "error"
			if err == nil {
				got = v.Version
			}
			if got != tt.want {
				t.Fatalf("Version = %q (err %v), want %q", got, err, tt.want)
			}
		})
	}
}

func TestRoundTrip_ErrorAnswer(t *testing.T) {
	c := serveRaw(t, "HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\n\r\nno route\n")
	_, err := c.Version(context.Background())
	if !IsNotFound(err) || err.Error() != "no route" {
		t.Fatalf("err = %v, want the not-found answer's text", err)
	}
	c = serveRaw(t, "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
	_, err = c.Version(context.Background())
	if err == nil || err.Error() != "idmd answered 502 Bad Gateway" {
		t.Fatalf("err = %v, want the status line", err)
	}
}

func TestRoundTrip_RefusesLineBreaks(t *testing.T) {
	c := serveRaw(t, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
	conn, err := c.dial(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	_, err = roundTrip(context.Background(), conn, "GET", "/v1/version\r\nX-Evil: 1", nil, nil)
	if err == nil {
		t.Fatal("a path with a line break was sent")
	}
}

// TestWatch_CancelEndsStream shows that cancelling the context of a
// stream the daemon keeps open unblocks Next with the context's error.
func TestWatch_CancelEndsStream(t *testing.T) {
	c := serveRawHold(t, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n", true)
	ctx, cancel := context.WithCancel(context.Background())
	w, err := c.WatchAll(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if _, err := w.Next(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { _, err := w.Next(); done <- err }()
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Next after cancel = %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Next still blocked 10 s after cancel")
	}
}

// FuzzChunkedReader checks the chunked decoder against net/http's: what
// it accepts, net/http accepts with the same bytes.
func FuzzChunkedReader(f *testing.F) {
	f.Add([]byte("5\r\nhello\r\n0\r\n\r\n"))
	f.Add([]byte("3;a=b\r\nabc\r\n1\r\nd\r\n0\r\nT: v\r\n\r\n"))
	f.Add([]byte("A\r\n0123456789\r\n0\r\n\r\n"))
	f.Add([]byte("5\r\nhel"))
	f.Fuzz(func(t *testing.T, in []byte) {
		got, err := io.ReadAll(&chunkedReader{r: bufio.NewReader(bytes.NewReader(in))})
		if err != nil {
			return
		}
		want, err := io.ReadAll(httputil.NewChunkedReader(bytes.NewReader(in)))
		if err != nil {
			t.Fatalf("accepted %q as %q; net/http: %v", in, got, err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("%q decoded as %q, net/http says %q", in, got, want)
		}
	})
}

// FuzzReadResponse checks the answer reader against net/http's: what it
// accepts, net/http reads with the same status and body.
func FuzzReadResponse(f *testing.F) {
	f.Add([]byte("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}"))
	f.Add([]byte("HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n"))
	f.Add([]byte("HTTP/1.0 503 Service Unavailable\r\n\r\nbusy"))
	f.Add([]byte("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		res, err := readResponse(bufio.NewReader(bytes.NewReader(in)), "GET")
		if err != nil {
			return
		}
		got, err := io.ReadAll(res.body)
		if err != nil {
			return
		}
		// Skip interim answers as net/http's transport does.
		br := bufio.NewReader(bytes.NewReader(in))
		hres, err := http.ReadResponse(br, nil)
		for err == nil && hres.StatusCode/100 == 1 {
			hres, err = http.ReadResponse(br, nil)
		}
		if err != nil {
			t.Fatalf("accepted %q (status %d); net/http: %v", in, res.status, err)
		}
		want, err := io.ReadAll(hres.Body)
		if err != nil {
			t.Fatalf("accepted %q; net/http's body: %v", in, err)
		}
		if hres.StatusCode != res.status || !bytes.Equal(got, want) {
			t.Fatalf("%q read as %d %q, net/http says %d %q", in, res.status, got, hres.StatusCode, want)
		}
	})
}
