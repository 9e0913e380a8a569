package transport

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/url"
	"strconv"
)

// Source is one place a file can be fetched from. The download engine
// needs nothing else of a server.
type Source interface {
	// Open connects to the source.
	Open(ctx context.Context) (Stream, error)
	// String returns the source's address as a user would write it.
	String() string
}

// Stream is one open connection to a source. Ranges may be pipelined:
// several Requests, then one ReceiveTo per request, answered in order.
// Close unblocks a ReceiveTo waiting in another goroutine.
type Stream interface {
	// Manifest describes the file; call it with no range outstanding.
	Manifest(ctx context.Context) (*Manifest, error)
	// Summary describes the file as Manifest does, without the segment
	// hashes, in memory that does not grow with the file.
	Summary(ctx context.Context) (*Summary, error)
	// Request asks for the bytes [off, off+n).
	Request(off, n int64) error
	// ReceiveTo writes the oldest outstanding answer, n bytes long (the
	// length of the range asked for), to w as it arrives.
	ReceiveTo(w io.Writer, n int64) error
	// Close ends the stream.
	Close() error
}

// IDMSource is a server speaking the idm protocol.
type IDMSource struct {
	// Addr is the server's host:port.
	Addr string
	// Dialer sets the connection's options.
	Dialer Dialer
}

// Open dials the server.
func (s *IDMSource) Open(ctx context.Context) (Stream, error) {
	return s.Dialer.Dial(ctx, s.Addr)
}

// String returns the source as an idm:// URL.
func (s *IDMSource) String() string { return "idm://" + s.Addr }

// ParseSource reads a source address. Only idm://host:port is known for
// now; the host may be a name, an IPv4 address or a bracketed IPv6 one.
func ParseSource(raw string) (Source, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("source %q: %w", raw, err)
	}
	if u.Scheme != "idm" {
		return nil, fmt.Errorf("source %q: want idm://host:port", raw)
	}
	if u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("source %q: want idm://host:port and nothing more", raw)
	}
	host, port, err := net.SplitHostPort(u.Host)
	if err != nil || host == "" {
		return nil, fmt.Errorf("source %q: want idm://host:port", raw)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		return nil, fmt.Errorf("source %q: port must be 1..65535", raw)
	}
	return &IDMSource{Addr: net.JoinHostPort(host, port)}, nil
}
