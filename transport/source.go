package transport

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/url"
	"strconv"
)

// IDMSource is a server speaking the idm protocol.
type IDMSource struct {
	// Addr is the server's host:port.
	Addr string
	// Dialer sets the connection's options.
	Dialer Dialer
}

// Dial connects to the server.
func (s *IDMSource) Dial(ctx context.Context) (*Conn, error) {
	return s.Dialer.Dial(ctx, s.Addr)
}

// String returns the source as an idm:// URL.
func (s *IDMSource) String() string { return "idm://" + s.Addr }

// ParseSource reads a source address. Only idm://host:port is known for
// now; the host may be a name, an IPv4 address or a bracketed IPv6 one.
func ParseSource(raw string) (*IDMSource, error) {
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

// Fetch asks for the bytes [off, off+n) and writes them to w as they
// arrive. Call it with no other request outstanding.
func (cn *Conn) Fetch(ctx context.Context, off, n int64, w io.Writer) error {
	stop := context.AfterFunc(ctx, func() { cn.Close() })
	defer stop()
	if err := cn.Request(off, n); err != nil {
		return cn.ctxErr(ctx, err)
	}
	return cn.ctxErr(ctx, cn.ReceiveTo(w, n))
}
