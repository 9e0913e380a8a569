package transport

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// Fuzz targets for every decoder of network input. Run one with
//
//	go test -run '^$' -fuzz '^FuzzManifest_UnmarshalBinary$' -fuzztime 45s ./transport

// seedManifests returns encodings of valid manifests of several shapes.
func seedManifests(tb testing.TB) [][]byte {
	var out [][]byte
	for _, m := range []*Manifest{
		testManifest("empty", 0, 64<<10),
		testManifest("one", 1, MinSegmentSize),
		testManifest("partial.iso", 3*MinSegmentSize+17, MinSegmentSize),
		testManifest("exact.bin", 4*MinSegmentSize, MinSegmentSize),
		testManifest("résumé.pdf", 100, MaxSegmentSize),
	} {
		b, err := m.MarshalBinary()
		if err != nil {
			tb.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

func FuzzManifest_UnmarshalBinary(f *testing.F) {
	for _, b := range seedManifests(f) {
		f.Add(b)
		f.Add(b[:len(b)-1])
	}
	f.Add([]byte{})
	f.Add(make([]byte, manifestFixed))
	f.Fuzz(func(t *testing.T, b []byte) {
		var m Manifest
		if err := m.UnmarshalBinary(b); err != nil {
			return
		}
		if err := m.Validate(); err != nil {
			t.Fatalf("decoded a manifest that does not validate: %v", err)
		}
		again, err := m.MarshalBinary()
		if err != nil {
			t.Fatalf("cannot encode a decoded manifest: %v", err)
		}
		if !bytes.Equal(again, b) {
			t.Fatalf("decoding and encoding changed the bytes:\n in  % x\n out % x", b, again)
		}
	})
}

func FuzzReadRequest(f *testing.F) {
	f.Add(appendHeader(nil, frameManifestReq, 0))
	f.Add(encodeRangeRequest(nil, 0, 100))
	f.Add(encodeRangeRequest(encodeRangeRequest(appendHeader(nil, frameManifestReq, 0), 1<<62, 1<<62), 5, 0))
	f.Add(encodeRangeRequest(nil, -1, -1))
	f.Add(appendHeader(nil, frameRangeReq, 0xFFFFFFFF))
	f.Add([]byte{0x07, 0, 0, 0, 2, 1, 2})
	f.Add([]byte{frameRangeReq, 0, 0})
	f.Fuzz(func(t *testing.T, in []byte) {
		r := bytes.NewReader(in)
		br := bufReader(r)
		consumed := func() int { return len(in) - r.Len() - br.Buffered() }
		for prev := 0; ; prev = consumed() {
			req, err := readRequest(br)
			if err != nil {
				if !errors.Is(err, ErrProtocol) && err != io.EOF && err != io.ErrUnexpectedEOF {
					t.Fatalf("unexpected error %v", err)
				}
				return
			}
			var want []byte
			switch req.typ {
			case frameManifestReq:
				want = appendHeader(nil, frameManifestReq, 0)
			case frameRangeReq:
				if req.off < 0 || req.n < 0 || req.off > 1<<62 || req.n > 1<<62 {
					t.Fatalf("accepted range %d+%d", req.off, req.n)
				}
				want = encodeRangeRequest(nil, req.off, req.n)
			default:
				t.Fatalf("accepted request type 0x%02x", req.typ)
			}
			if got := in[prev:consumed()]; !bytes.Equal(got, want) {
				t.Fatalf("read %+v from % x, which encodes as % x", req, got, want)
			}
		}
	})
}

func FuzzDecodeError(f *testing.F) {
	for _, e := range []*Error{
		{CodeBadRequest, "frame 0x07"},
		{CodeBusy, ""},
		{ErrorCode(0xFFFF), strings.Repeat("x", MaxErrorMessage)},
	} {
		f.Add(encodeError(e)[frameHeaderLen:])
	}
	f.Add([]byte{0, 1, 0, 5, 'a'})
	f.Add([]byte{0, 1})
	f.Fuzz(func(t *testing.T, p []byte) {
		e, err := decodeError(p)
		if err != nil {
			if e != nil || !errors.Is(err, ErrProtocol) {
				t.Fatalf("decodeError = %v, %v; want nil and a protocol violation", e, err)
			}
			return
		}
		if frame := encodeError(e); !bytes.Equal(frame[frameHeaderLen:], p) {
			t.Fatalf("decoded %+v from % x, which encodes as % x", *e, p, frame[frameHeaderLen:])
		}
		if !errors.Is(e, &Error{Code: e.Code}) || e.Error() == "" {
			t.Fatalf("error %+v does not match its own code", *e)
		}
	})
}

// Modes of FuzzConn_Receive: what the fuzz bytes stand for.
const (
	fuzzHandshake = iota // the server's answer to the hello
	fuzzReceive          // answers to range requests, after a valid hello
	fuzzManifest         // the answer to a manifest request, after a valid hello
	fuzzModes
)

// FuzzConn_Receive has a fake server write the fuzz bytes to a real
// client, in place of the hello answer or after a valid one. The client
// must return data or an error, never panic, and whatever it returns must
// be what the bytes say.
func FuzzConn_Receive(f *testing.F) {
	dataFrame := func(n int) []byte {
		return append(appendHeader(nil, frameData, n), randomBytes(n, uint64(n))...)
	}
	cat := func(bs ...[]byte) []byte { return bytes.Join(bs, nil) }
	m := seedManifests(f)[2]
	f.Add(uint8(fuzzHandshake), uint16(4), cat(helloReply(), dataFrame(4)))
	f.Add(uint8(fuzzHandshake), uint16(0), encodeError(&Error{Code: CodeBusy, Message: "2 connections open"}))
	f.Add(uint8(fuzzHandshake), uint16(0), binary.BigEndian.AppendUint16(appendHeader(nil, frameHello, 2), 2))
	f.Add(uint8(fuzzReceive), uint16(10), cat(dataFrame(10), dataFrame(10), encodeError(&Error{Code: CodeOutOfRange, Message: "past the end"}), dataFrame(10)))
	f.Add(uint8(fuzzReceive), uint16(0), dataFrame(0))
	f.Add(uint8(fuzzReceive), uint16(1000), dataFrame(1000)[:500])
	f.Add(uint8(fuzzReceive), uint16(5), appendHeader(nil, frameData, 0xFFFFFFFF))
	f.Add(uint8(fuzzReceive), uint16(5), appendHeader(nil, frameError, 0xFFFF))
	f.Add(uint8(fuzzManifest), uint16(0), cat(appendHeader(nil, frameManifest, len(m)), m, dataFrame(0)))
	f.Add(uint8(fuzzManifest), uint16(0), encodeError(&Error{Code: CodeInternal}))

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { ln.Close() })
	addr := ln.Addr().String()

	f.Fuzz(func(t *testing.T, mode uint8, plen uint16, data []byte) {
		mode %= fuzzModes
		// Should the client fail to connect, Accept gives up.
		ln.(*net.TCPListener).SetDeadline(time.Now().Add(waitLimit))
		served := make(chan struct{})
		go func() {
			defer close(served)
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(waitLimit))
			var hello [helloLen]byte
			if _, err := io.ReadFull(c, hello[:]); err != nil {
				return
			}
			if mode != fuzzHandshake {
				c.Write(helloReply())
			}
			c.Write(data)
			// End the stream but read on until the client leaves, so the
			// close is a FIN and the client sees every byte.
			c.(*net.TCPConn).CloseWrite()
			io.Copy(io.Discard, c)
		}()
		defer func() { <-served }()

		ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
		defer cancel()
		d := Dialer{StallTimeout: waitLimit}
		cn, err := d.Dial(ctx, addr)
		off := 0 // how much of data the client has read
		var e *Error
		switch {
		case mode != fuzzHandshake && err != nil:
			t.Fatalf("Dial with a valid hello: %v", err)
		case err == nil && mode == fuzzHandshake:
			if !bytes.HasPrefix(data, helloReply()) {
				t.Fatalf("handshake succeeded on % x", data[:min(len(data), 16)])
			}
			off = len(helloReply())
		case errors.As(err, &e):
			checkErrorFrame(t, data, e)
			return
		case err != nil:
			return
		}
		defer cn.Close()

		if mode == fuzzManifest {
			m, err := cn.Manifest(ctx)
			if errors.As(err, &e) {
				checkErrorFrame(t, data, e)
				return
			}
			if err != nil {
				return
			}
			enc, err := m.MarshalBinary()
			if err != nil {
				t.Fatalf("returned a manifest that cannot be encoded: %v", err)
			}
			want := append(appendHeader(nil, frameManifest, len(enc)), enc...)
			if !bytes.HasPrefix(data, want) {
				t.Fatalf("returned manifest %+v from % x", m, data[:min(len(data), 64)])
			}
			off = len(want)
		}

		for {
			p := make([]byte, plen)
			err := cn.Receive(p)
			rest := data[off:]
			if errors.As(err, &e) {
				off += checkErrorFrame(t, rest, e)
				continue
			}
			if err != nil {
				return
			}
			want := append(appendHeader(nil, frameData, len(p)), p...)
			if !bytes.HasPrefix(rest, want) {
				t.Fatalf("returned %d bytes of data from % x", len(p), rest[:min(len(rest), 16)])
			}
			off += len(want)
		}
	})
}

// checkErrorFrame requires b to start with an error frame that carries e,
// and returns that frame's length.
func checkErrorFrame(t *testing.T, b []byte, e *Error) int {
	t.Helper()
	want := encodeError(e)
	if !bytes.HasPrefix(b, want) {
		t.Fatalf("returned error %+v from % x", *e, b[:min(len(b), 16)])
	}
	return len(want)
}

// panicWatch is a log handler that remembers any record about a panic:
// net/http recovers a panicking handler and only logs it.
type panicWatch struct{ seen atomic.Pointer[string] }

func (h *panicWatch) Enabled(context.Context, slog.Level) bool { return true }
func (h *panicWatch) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *panicWatch) WithGroup(string) slog.Handler            { return h }

func (h *panicWatch) Handle(_ context.Context, r slog.Record) error {
	if strings.Contains(r.Message, "panic") {
		msg := r.Message
		h.seen.Store(&msg)
	}
	return nil
}

// FuzzServer_Input has a raw client write the fuzz bytes to a real
// server, after a valid hello or instead of one, then end its side of the
// connection. The server must neither crash nor hold the connection open,
// and must go on serving a well-behaved client. One server serves the
// whole run of a fuzzing process.
func FuzzServer_Input(f *testing.F) {
	const size = 3000
	path, data := randomFile(f, size, 60)
	watch := new(panicWatch)
	srv := startServer(f, path, func(s *Server) { s.Logger = slog.New(watch) })
	addr := addrOf(f, srv)

	cat := func(bs ...[]byte) []byte { return bytes.Join(bs, nil) }
	manifestReq := appendHeader(nil, frameManifestReq, 0)
	f.Add(true, manifestReq)
	f.Add(true, encodeRangeRequest(nil, 0, size))
	f.Add(true, cat(manifestReq, encodeRangeRequest(nil, 10, 20), encodeRangeRequest(nil, size, 0), manifestReq))
	f.Add(true, cat(encodeRangeRequest(nil, size-1, 2), encodeRangeRequest(nil, 0, 1)))
	f.Add(true, encodeRangeRequest(nil, 0, MaxRangeLen+1))
	f.Add(true, cat(encodeRangeRequest(nil, 0, 1), []byte{0x07, 0, 0, 0, 0}))
	f.Add(true, appendHeader(nil, frameRangeReq, 0xFFFFFFFF))
	f.Add(true, encodeRangeRequest(nil, 5, 5)[:10])
	f.Add(true, helloBytes(Version))
	f.Add(false, helloBytes(2))
	f.Add(false, []byte(Magic))
	f.Add(false, []byte("IDM"))
	f.Add(false, []byte{})
	f.Add(false, []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
	f.Add(false, []byte("GET /payload.bin HTTP/1.1\r\nHost: x\r\nRange: bytes=0-9,100-\r\n\r\nHEAD / HTTP/1.1\r\nHost: x\r\n\r\n"))
	f.Add(false, []byte("GET / HTTP/1.1\r\nHost: x\r\nRange: bytes=-50\r\nIf-Range: \"x\"\r\n\r\n"))
	f.Add(false, []byte("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"))
	f.Add(false, []byte("GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"))
	f.Add(false, []byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"))
	f.Add(false, []byte("GET / HTTP/1.1\r\n"))

	f.Fuzz(func(t *testing.T, withHello bool, in []byte) {
		c, err := net.DialTimeout("tcp", addr, waitLimit)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(waitLimit))
		drained := make(chan error, 1)
		go func() {
			_, err := io.Copy(io.Discard, c)
			drained <- err
		}()
		if withHello {
			in = append(helloBytes(Version), in...)
		}
		// The server may close before reading everything; that is its
		// right, so write errors are not failures.
		c.Write(in)
		c.(*net.TCPConn).CloseWrite()
		if err := <-drained; errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("server held the connection open after the input ended")
		}
		// net/http logs a recovered panic before it closes the
		// connection, so the log is complete once the drain has ended.
		if msg := watch.seen.Swap(nil); msg != nil {
			t.Fatalf("server logged a panic: %s", *msg)
		}

		ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
		defer cancel()
		cn, err := Dial(ctx, addr)
		if err != nil {
			t.Fatalf("a well-behaved client after the input: %v", err)
		}
		defer cn.Close()
		if p, err := fetch(cn, 0, size); err != nil || !bytes.Equal(p, data) {
			t.Fatalf("a well-behaved client after the input: %v", err)
		}
	})
}

func FuzzParseHash(f *testing.F) {
	for _, s := range []string{strings.Repeat("af", HashSize), strings.Repeat("AF", HashSize), "", "zz", strings.Repeat("0", 2*HashSize+1)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		h, err := ParseHash(s)
		if err != nil {
			return
		}
		// A hash reads back from its own String, which is s in lower case.
		if again, err := ParseHash(h.String()); err != nil || again != h || h.String() != strings.ToLower(s) {
			t.Fatalf("ParseHash(%q) = %s, which reads back as %s, %v", s, h, again, err)
		}
	})
}
