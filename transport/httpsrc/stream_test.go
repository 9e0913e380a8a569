package httpsrc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/idmproject/idm/internal/leaktest"
)

// ignoring serves data as a mirror that ignores Range does: every answer
// is a 200 with all of it, and counts the requests.
func ignoring(data []byte, etag string, asked *atomic.Int32) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		asked.Add(1)
		if etag != "" {
			w.Header().Set("ETag", etag)
		}
		w.Header().Set("Content-Length", fmt.Sprint(len(data)))
		w.Header().Set("Last-Modified", modTime.Format(http.TimeFormat))
		w.WriteHeader(http.StatusOK)
		w.Write(data)
	}
}

// A mirror that answers a range with the whole file fails Describe with
// ErrNoRanges, as it always has, but the error describes the file, and
// Stream takes it from that very answer: one request in all.
func TestConn_Stream_FromTheKeptAnswer(t *testing.T) {
	leaktest.Check(t)
	data := randomData(300_000, 40)
	var asked atomic.Int32
	srv := serve(t, ignoring(data, `"v1"`, &asked))
	c := open(t, newSource(t, srv.URL+"/dir/f.iso", Options{}))
	_, err := c.Describe(t.Context())
	checkErr(t, err, true, ErrNoRanges)
	var e *Error
	if !errors.As(err, &e) || e.Whole() == nil {
		t.Fatalf("%v: no description of the whole file", err)
	}
	if d := e.Whole(); d.Size != int64(len(data)) || d.Name != "f.iso" || !d.ModTime.Equal(modTime) {
		t.Errorf("the whole answer describes %d bytes named %q of %v; want %d, f.iso, %v", d.Size, d.Name, d.ModTime, len(data), modTime)
	}
	var buf bytes.Buffer
	if err := c.Stream(t.Context(), &buf); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf.Bytes(), data) {
		t.Errorf("streamed %d bytes that differ from the file's %d", buf.Len(), len(data))
	}
	if n := asked.Load(); n != 1 {
		t.Errorf("the mirror was asked %d times, want once", n)
	}
	// The answer is spent: another stream asks again.
	buf.Reset()
	if err := c.Stream(t.Context(), &buf); err != nil || !bytes.Equal(buf.Bytes(), data) {
		t.Errorf("second stream: %v, %d bytes", err, buf.Len())
	}
	if n := asked.Load(); n != 2 {
		t.Errorf("the mirror was asked %d times, want twice", n)
	}
}

// A whole answer that cannot be taken as the file is not offered: its
// length not given, or compressed.
func TestConn_Describe_WholeNotOffered(t *testing.T) {
	data := randomData(10_000, 41)
	for name, h := range map[string]http.HandlerFunc{
		"no length": func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(200)
			w.(http.Flusher).Flush()
			w.Write(data)
		},
		"compressed": func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Encoding", "gzip")
			answer(w, 200, "", data)
		},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := open(t, newSource(t, serve(t, h).URL+"/f", Options{})).Describe(t.Context())
			checkErr(t, err, true, ErrNoRanges)
			var e *Error
			if errors.As(err, &e) && e.Whole() != nil {
				t.Errorf("a whole answer offered as the file: %+v", e.Whole())
			}
		})
	}
}

// A mirror that honours ranges streams too: Stream asks for all of the
// file as one range.
func TestConn_Stream_OneRange(t *testing.T) {
	data := randomData(100_000, 42)
	var (
		mu     sync.Mutex
		ranges []string
	)
	srv := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		ranges = append(ranges, r.Header.Get("Range"))
		mu.Unlock()
		mirror(data, "")(w, r)
	}))
	c := open(t, newSource(t, srv.URL+"/f", Options{}))
	if _, err := c.Describe(t.Context()); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := c.Stream(t.Context(), &buf); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf.Bytes(), data) {
		t.Errorf("streamed %d bytes that differ from the file", buf.Len())
	}
	mu.Lock()
	defer mu.Unlock()
	if want := fmt.Sprintf("[bytes=0-0 bytes=0-%d]", len(data)-1); fmt.Sprint(ranges) != want {
		t.Errorf("ranges asked %v, want %s", ranges, want)
	}
}

// A stream that is not the file is refused before a byte is written, or,
// when the body turns out short or long, never written past the size.
func TestConn_Stream_Refused(t *testing.T) {
	data := randomData(50_000, 43)
	size := len(data)
	tests := []struct {
		name          string
		handler       http.HandlerFunc
		wantPermanent bool
		wantIs        error
		mayWrite      bool
	}{
		{"error page", func(w http.ResponseWriter, r *http.Request) { answer(w, 500, "", []byte("<html>error</html>")) }, false, nil, false},
		{"not found", func(w http.ResponseWriter, r *http.Request) { http.NotFound(w, r) }, true, nil, false},
		{"another length", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", fmt.Sprint(size-1))
			answer(w, 200, "", data[:size-1])
		}, true, ErrChanged, false},
		{"another ETag", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("ETag", `"v2"`)
			answer(w, 200, "", data)
		}, true, ErrChanged, false},
		{"compressed", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Encoding", "gzip")
			answer(w, 200, "", data)
		}, true, ErrProtocol, false},
		{"another range", func(w http.ResponseWriter, r *http.Request) {
			answer(w, 206, fmt.Sprintf("bytes 1-%d/%d", size-1, size), data[1:])
		}, true, ErrProtocol, false},
		{"short body", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", fmt.Sprint(size))
			answer(w, 200, "", data[:size/2])
		}, false, nil, true},
		{"short body, chunked", func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(200)
			w.(http.Flusher).Flush()
			w.Write(data[:size/2])
		}, false, nil, true},
		{"long body, chunked", func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(200)
			w.(http.Flusher).Flush()
			w.Write(data)
			w.Write([]byte("and more"))
		}, true, ErrProtocol, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.Header.Get("Range") == "bytes=0-0" {
					w.Header().Set("ETag", `"v1"`)
					ignoring(data, `"v1"`, new(atomic.Int32))(w, r)
					return
				}
				tt.handler(w, r)
			}))
			s := newSource(t, srv.URL+"/f", Options{})
			// One Conn describes the file; another, which holds no
			// answer, streams it.
			if _, err := open(t, s).Describe(t.Context()); !errors.Is(err, ErrNoRanges) {
				t.Fatalf("Describe: %v", err)
			}
			var buf bytes.Buffer
			err := open(t, s).Stream(t.Context(), &buf)
			checkErr(t, err, tt.wantPermanent, tt.wantIs)
			if !tt.mayWrite && buf.Len() > 0 {
				t.Errorf("%d bytes written from an answer that is not the file", buf.Len())
			}
			if buf.Len() > size || !bytes.HasPrefix(data, buf.Bytes()) {
				t.Errorf("the %d bytes written are not the file's first", buf.Len())
			}
		})
	}
}

// Stream needs the file's size: a Source that never described it refuses.
func TestConn_Stream_SizeUnknown(t *testing.T) {
	var asked atomic.Int32
	srv := serve(t, ignoring([]byte("data"), "", &asked))
	err := open(t, newSource(t, srv.URL+"/f", Options{})).Stream(t.Context(), new(bytes.Buffer))
	checkErr(t, err, true, nil)
	if asked.Load() != 0 {
		t.Error("the mirror was asked for a file of a size not known")
	}
}

// A kept answer is let go by Close, and by the next request; a stream of
// it ends with the caller's context or Close.
func TestConn_Stream_KeptAnswerReleased(t *testing.T) {
	leaktest.Check(t)
	data := randomData(1<<20, 44)
	// The mirror sends the header and a little, then waits for the client
	// to go away: the test ends only if each way lets the answer go.
	gone := make(chan struct{}, 4)
	srv := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", fmt.Sprint(len(data)))
		w.WriteHeader(200)
		w.Write(data[:1000])
		w.(http.Flusher).Flush()
		<-r.Context().Done()
		gone <- struct{}{}
	}))
	waitGone := func(what string) {
		t.Helper()
		select {
		case <-gone:
		case <-time.After(waitLimit):
			t.Fatalf("%s: the kept answer was not let go", what)
		}
	}
	s := newSource(t, srv.URL+"/f", Options{StallTimeout: time.Hour})
	describe := func() *Conn {
		t.Helper()
		c, err := s.Open(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Describe(t.Context()); !errors.Is(err, ErrNoRanges) {
			t.Fatalf("Describe: %v", err)
		}
		return c
	}

	c := describe()
	c.Close()
	waitGone("Close")

	c = describe()
	c.Describe(t.Context()) // a new request: answered the same way, and kept in turn
	waitGone("the next request")
	c.Close()
	waitGone("Close after the next request")

	c = describe()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	w := &firstWrite{at: make(chan struct{})}
	go func() { done <- c.Stream(ctx, w) }()
	select {
	case <-w.at:
	case <-time.After(waitLimit):
		t.Fatal("the stream wrote nothing")
	}
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("a cancelled stream: %v, want context.Canceled", err)
		}
	case <-time.After(waitLimit):
		t.Fatal("a cancelled stream did not return")
	}
	waitGone("a cancelled stream")
	c.Close()
}

// firstWrite is a writer that says when it is first written to.
type firstWrite struct {
	at   chan struct{}
	once sync.Once
}

func (w *firstWrite) Write(p []byte) (int, error) {
	w.once.Do(func() { close(w.at) })
	return len(p), nil
}
