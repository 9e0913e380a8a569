package httpsrc

import (
	"bytes"
	"encoding/binary"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync/atomic"
	"testing"
)

// socks5 is a SOCKS5 proxy (RFC 1928) that knows CONNECT without
// authentication and nothing else: enough to show that a job's socks5://
// proxy carries its requests.
func socks5(t *testing.T) (addr string, connects *atomic.Int64) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	connects = new(atomic.Int64)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				target, err := socksHandshake(c)
				if err != nil {
					return
				}
				up, err := net.Dial("tcp", target)
				if err != nil {
					c.Write([]byte{5, 5, 0, 1, 0, 0, 0, 0, 0, 0}) // connection refused
					return
				}
				defer up.Close()
				connects.Add(1)
				if _, err := c.Write([]byte{5, 0, 0, 1, 0, 0, 0, 0, 0, 0}); err != nil {
					return
				}
				go io.Copy(up, c)
				io.Copy(c, up)
			}()
		}
	}()
	return ln.Addr().String(), connects
}

// socksHandshake reads a client's greeting and CONNECT request and
// returns the address it asks for.
func socksHandshake(c net.Conn) (string, error) {
	hdr := make([]byte, 2)
	if _, err := io.ReadFull(c, hdr); err != nil || hdr[0] != 5 {
		return "", io.ErrUnexpectedEOF
	}
	if _, err := io.ReadFull(c, make([]byte, hdr[1])); err != nil {
		return "", err
	}
	if _, err := c.Write([]byte{5, 0}); err != nil { // no authentication
		return "", err
	}
	req := make([]byte, 4)
	if _, err := io.ReadFull(c, req); err != nil || req[0] != 5 || req[1] != 1 {
		return "", io.ErrUnexpectedEOF
	}
	var host string
	switch req[3] {
	case 1: // IPv4
		ip := make([]byte, 4)
		if _, err := io.ReadFull(c, ip); err != nil {
			return "", err
		}
		host = net.IP(ip).String()
	case 3: // a name
		n := make([]byte, 1)
		if _, err := io.ReadFull(c, n); err != nil {
			return "", err
		}
		name := make([]byte, n[0])
		if _, err := io.ReadFull(c, name); err != nil {
			return "", err
		}
		host = string(name)
	default:
		return "", io.ErrUnexpectedEOF
	}
	port := make([]byte, 2)
	if _, err := io.ReadFull(c, port); err != nil {
		return "", err
	}
	return net.JoinHostPort(host, strconv.Itoa(int(binary.BigEndian.Uint16(port)))), nil
}

// A socks5:// proxy carries a mirror's requests, ranges and all.
func TestNewClientWith_SOCKS5(t *testing.T) {
	data := randomData(100_000, 21)
	mirror := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.ServeContent(w, r, "f", modTime, bytes.NewReader(data))
	}))
	t.Cleanup(mirror.Close)
	proxy, connects := socks5(t)
	client, err := NewClientWith(ClientOptions{Proxy: "socks5://" + proxy})
	if err != nil {
		t.Fatal(err)
	}
	c := open(t, newSource(t, mirror.URL+"/f", Options{Client: client}))
	var buf bytes.Buffer
	if err := c.Fetch(t.Context(), 5000, 20_000, &buf); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf.Bytes(), data[5000:25_000]) {
		t.Error("bytes through the proxy differ from the file")
	}
	if connects.Load() == 0 {
		t.Error("the request did not go through the socks5 proxy")
	}
}
