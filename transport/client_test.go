package transport

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// acceptHello is a fake server's first step: read the client's hello and
// answer it as a real server does. It reports whether that worked.
func acceptHello(c net.Conn) bool {
	var hello [helloLen]byte
	if _, err := io.ReadFull(c, hello[:]); err != nil {
		return false
	}
	_, err := c.Write(helloReply())
	return err == nil
}

// TestConn_Receive_Stalled has a server send a data frame's header and
// half its body, then nothing, while keeping the connection open.
func TestConn_Receive_Stalled(t *testing.T) {
	addr := fakeServer(t, func(c net.Conn) {
		if !acceptHello(c) {
			return
		}
		if _, err := readRequest(bufReader(c)); err != nil {
			return
		}
		c.Write(append(appendHeader(nil, frameData, 100), make([]byte, 50)...))
		silent(c)
	})
	d := Dialer{StallTimeout: 200 * time.Millisecond}
	ctx, cancel := context.WithTimeout(t.Context(), waitLimit)
	defer cancel()
	cn, err := d.Dial(ctx, addr)
	if err != nil {
		t.Fatal(err)
	}
	defer cn.Close()
	if err := cn.Request(0, 100); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	result := make(chan error, 1)
	go func() { result <- cn.Receive(make([]byte, 100)) }()
	select {
	case err = <-result:
	case <-time.After(waitLimit):
		cn.Close()
		<-result
		t.Fatal("Receive still blocked on a silent server")
	}
	elapsed := time.Since(start)
	if !errors.Is(err, ErrStalled) {
		t.Fatalf("Receive: %v, want ErrStalled", err)
	}
	if elapsed < 200*time.Millisecond || elapsed > time.Second {
		t.Errorf("stalled after %v, want between 200 ms and 1 s", elapsed)
	}
}

// A server that keeps sending, but a byte now and then, fails as a
// silent one does: with the default minimum rate, a trickle of a few
// bytes a second over the stall time-out is ErrStalled.
func TestConn_Receive_TrickleBelowMinRate(t *testing.T) {
	const stall = 300 * time.Millisecond
	addr := fakeServer(t, func(c net.Conn) {
		if !acceptHello(c) {
			return
		}
		if _, err := readRequest(bufReader(c)); err != nil {
			return
		}
		c.Write(appendHeader(nil, frameData, 1000))
		for i := range 1000 {
			time.Sleep(stall / 6)
			if _, err := c.Write([]byte{byte(i)}); err != nil {
				return
			}
		}
	})
	d := Dialer{StallTimeout: stall}
	cn, err := d.Dial(t.Context(), addr)
	if err != nil {
		t.Fatal(err)
	}
	defer cn.Close()
	if err := cn.Request(0, 1000); err != nil {
		t.Fatal(err)
	}
	err = cn.Receive(make([]byte, 1000))
	if !errors.Is(err, ErrStalled) || !strings.Contains(err.Error(), "slower than") {
		t.Fatalf("Receive of a trickle = %v, want ErrStalled for being slower than the minimum", err)
	}
}

// TestConn_Receive_SlowButSteady checks that the stall time-out measures
// silence, not the length of an answer: a body trickling in over several
// stall periods arrives whole.
func TestConn_Receive_SlowButSteady(t *testing.T) {
	// A byte every 150 ms for 0.9 s, against a 600 ms stall time-out: the
	// margin is wide because the machine may be busy.
	const pieces = 6
	const stall = 600 * time.Millisecond
	addr := fakeServer(t, func(c net.Conn) {
		if !acceptHello(c) {
			return
		}
		if _, err := readRequest(bufReader(c)); err != nil {
			return
		}
		c.Write(appendHeader(nil, frameData, pieces))
		tick := time.NewTicker(stall / 4)
		defer tick.Stop()
		for i := range pieces {
			<-tick.C
			if _, err := c.Write([]byte{byte(i)}); err != nil {
				return
			}
		}
		silent(c)
	})
	// No minimum rate: this is about silence alone.
	d := Dialer{StallTimeout: stall, MinRate: -1}
	cn, err := d.Dial(t.Context(), addr)
	if err != nil {
		t.Fatal(err)
	}
	defer cn.Close()
	if err := cn.Request(0, pieces); err != nil {
		t.Fatal(err)
	}
	p := make([]byte, pieces)
	if err := cn.Receive(p); err != nil {
		t.Fatalf("Receive of a steady trickle: %v", err)
	}
	for i, b := range p {
		if b != byte(i) {
			t.Fatalf("byte %d = %d", i, b)
		}
	}
}

// TestDial_NoHelloAnswer has a server accept the connection and never
// answer the hello; the context's deadline ends the Dial.
func TestDial_NoHelloAnswer(t *testing.T) {
	addr := fakeServer(t, silent)
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	d := Dialer{StallTimeout: waitLimit} // the context must end it, not the stall
	start := time.Now()
	cn, err := d.Dial(ctx, addr)
	if err == nil {
		cn.Close()
		t.Fatal("Dial succeeded without a hello")
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Dial: %v, want context.DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Dial returned after %v, the context ended after 300 ms", d)
	}
}

// TestDial_NoHelloAnswer_Stalled is the same without a deadline on the
// context: the stall time-out ends it.
func TestDial_NoHelloAnswer_Stalled(t *testing.T) {
	addr := fakeServer(t, silent)
	d := Dialer{StallTimeout: 200 * time.Millisecond}
	ctx, cancel := context.WithTimeout(t.Context(), waitLimit)
	defer cancel()
	cn, err := d.Dial(ctx, addr)
	if err == nil {
		cn.Close()
		t.Fatal("Dial succeeded without a hello")
	}
	if !errors.Is(err, ErrStalled) {
		t.Errorf("Dial: %v, want ErrStalled", err)
	}
}

// TestDial_BadHandshake has a server answer the hello wrongly.
func TestDial_BadHandshake(t *testing.T) {
	hello := func(typ byte, n uint32, payload ...byte) []byte {
		return append(append([]byte{typ}, binary.BigEndian.AppendUint32(nil, n)...), payload...)
	}
	tests := []struct {
		name    string
		answer  []byte
		wantErr error
	}{
		{"other version", hello(frameHello, 2, 0, 9), ErrProtocol},
		{"hello with 3 bytes", hello(frameHello, 3, 0, 1, 0), ErrProtocol},
		{"data frame", hello(frameData, 2, 0, 1), ErrProtocol},
		{"length over the limit", hello(frameHello, 0xFFFFFFFF), ErrProtocol},
		{"HTTP", []byte("HTTP/1.1 400 Bad Request\r\n\r\n"), ErrProtocol},
		{"malformed error frame", hello(frameError, 4, 0, 5, 0, 9), ErrProtocol},
		{"busy", encodeError(&Error{Code: CodeBusy, Message: "full"}), ErrBusy},
		{"unsupported version", encodeError(&Error{Code: CodeUnsupportedVersion}), ErrUnsupportedVersion},
		{"closed halfway", helloReply()[:4], io.ErrUnexpectedEOF},
		{"closed at once", nil, io.EOF},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr := fakeServer(t, func(c net.Conn) {
				var h [helloLen]byte
				if _, err := io.ReadFull(c, h[:]); err != nil {
					return
				}
				c.Write(tt.answer)
				c.Close()
			})
			ctx, cancel := context.WithTimeout(t.Context(), waitLimit)
			defer cancel()
			cn, err := Dial(ctx, addr)
			if err == nil {
				cn.Close()
				t.Fatal("Dial succeeded")
			}
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Dial: %v, want %v", err, tt.wantErr)
			}
		})
	}
}

// TestConn_FrameOverLimit has a server announce frames longer than the
// client accepts and then wait. The client must refuse from the header
// alone, without waiting for (or allocating) the body.
func TestConn_FrameOverLimit(t *testing.T) {
	tests := []struct {
		name   string
		header []byte
		call   func(*Conn) error
	}{
		{"data over MaxRangeLen", appendHeader(nil, frameData, MaxRangeLen+1), receive(10)},
		{"data of 2^32-1 bytes", appendHeader(nil, frameData, 0xFFFFFFFF), receive(10)},
		{"data longer than asked", appendHeader(nil, frameData, 11), receive(10)},
		{"data shorter than asked", appendHeader(nil, frameData, 9), receive(10)},
		{"error frame over its limit", appendHeader(nil, frameError, 4+MaxErrorMessage+1), receive(10)},
		{"unknown answer", appendHeader(nil, 0x99, 1), receive(10)},
		{"hello instead of data", appendHeader(nil, frameHello, 2), receive(10)},
		{"manifest over its limit", appendHeader(nil, frameManifest, maxManifestPayload+1), manifest},
		{"manifest of 2^32-1 bytes", appendHeader(nil, frameManifest, 0xFFFFFFFF), manifest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr := fakeServer(t, func(c net.Conn) {
				if !acceptHello(c) {
					return
				}
				c.Write(tt.header)
				silent(c)
			})
			d := Dialer{StallTimeout: waitLimit}
			cn, err := d.Dial(t.Context(), addr)
			if err != nil {
				t.Fatal(err)
			}
			defer cn.Close()
			if err := tt.call(cn); !errors.Is(err, ErrProtocol) {
				t.Fatalf("got %v, want a protocol violation", err)
			}
		})
	}
}

func receive(n int) func(*Conn) error {
	return func(cn *Conn) error { return cn.Receive(make([]byte, n)) }
}

func manifest(cn *Conn) error {
	_, err := cn.Manifest(context.Background())
	return err
}

// TestConn_Manifest_Invalid has a server answer the manifest request with
// a well-framed but invalid manifest, or an error frame.
func TestConn_Manifest_Invalid(t *testing.T) {
	good, err := testManifest("f", 10, MinSegmentSize).MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		answer []byte
		want   error // nil: any error
	}{
		{"invalid manifest", append(appendHeader(nil, frameManifest, len(good)-1), good[:len(good)-1]...), nil},
		{"data frame", append(appendHeader(nil, frameData, len(good)), good...), ErrProtocol},
		{"error frame", encodeError(&Error{Code: CodeInternal}), ErrInternal},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr := fakeServer(t, func(c net.Conn) {
				if !acceptHello(c) {
					return
				}
				if _, err := readRequest(bufReader(c)); err != nil {
					return
				}
				c.Write(tt.answer)
				silent(c)
			})
			cn := dial(t, addr)
			m, err := cn.Manifest(t.Context())
			if err == nil {
				t.Fatalf("accepted manifest %+v", m)
			}
			if tt.want != nil && !errors.Is(err, tt.want) {
				t.Fatalf("Manifest: %v, want %v", err, tt.want)
			}
		})
	}
}

// TestConn_Manifest_ContextCancelled has a server never answer the
// manifest request; cancelling the context ends the wait.
func TestConn_Manifest_ContextCancelled(t *testing.T) {
	addr := fakeServer(t, func(c net.Conn) {
		if acceptHello(c) {
			silent(c)
		}
	})
	d := Dialer{StallTimeout: waitLimit}
	cn, err := d.Dial(t.Context(), addr)
	if err != nil {
		t.Fatal(err)
	}
	defer cn.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, err := cn.Manifest(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Manifest: %v, want context.DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Manifest returned after %v, the context ended after 200 ms", d)
	}
}

// TestConn_Close_UnblocksReceive checks Close from another goroutine, and
// that closing twice is harmless.
func TestConn_Close_UnblocksReceive(t *testing.T) {
	addr := fakeServer(t, func(c net.Conn) {
		if acceptHello(c) {
			silent(c)
		}
	})
	d := Dialer{StallTimeout: waitLimit}
	cn, err := d.Dial(t.Context(), addr)
	if err != nil {
		t.Fatal(err)
	}
	if cn.RemoteAddr().String() != addr {
		t.Errorf("RemoteAddr = %v, want %s", cn.RemoteAddr(), addr)
	}
	blocked := make(chan error, 1)
	go func() { blocked <- cn.Receive(make([]byte, 1)) }()
	if err := cn.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-blocked:
		if err == nil || errors.Is(err, ErrStalled) {
			t.Fatalf("Receive after Close: %v", err)
		}
	case <-time.After(waitLimit):
		t.Fatal("Receive still blocked after Close")
	}
	if err := cn.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func TestDial_Refused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	if cn, err := Dial(t.Context(), addr); err == nil {
		cn.Close()
		t.Fatal("Dial succeeded with nobody listening")
	}
}

// ReceiveTo delivers pipelined answers in pieces, and error frames as
// errors, just as Receive does.
func TestConn_ReceiveTo(t *testing.T) {
	path, data := randomFile(t, 1<<20, 31)
	c := dial(t, addrOf(t, startServer(t, path, nil)))
	for _, r := range [][2]int64{{0, 100}, {5000, 70000}, {1<<20 - 10, 10}} {
		if err := c.Request(r[0], r[1]); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Request(1<<20, 1); err != nil { // out of range
		t.Fatal(err)
	}
	for _, r := range [][2]int64{{0, 100}, {5000, 70000}, {1<<20 - 10, 10}} {
		var got bytes.Buffer
		if err := c.ReceiveTo(&got, r[1]); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got.Bytes(), data[r[0]:r[0]+r[1]]) {
			t.Fatalf("range %v differs", r)
		}
	}
	var got bytes.Buffer
	if err := c.ReceiveTo(&got, 1); !errors.Is(err, ErrOutOfRange) || got.Len() != 0 {
		t.Fatalf("ReceiveTo of an out-of-range answer: %v, %d bytes written", err, got.Len())
	}
}
