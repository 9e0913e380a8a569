package transport

import (
	"context"
	"fmt"
	"io"

	"github.com/idmproject/idm/transport/addr"
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

// ParseSource reads the address of an idm server, idm://host:port (see
// [addr.Parse]).
func ParseSource(raw string) (*IDMSource, error) {
	a, err := addr.Parse(raw)
	if err != nil {
		return nil, err
	}
	if a.Scheme != "idm" {
		return nil, fmt.Errorf("source %q: not an idm server", raw)
	}
	return &IDMSource{Addr: a.Host}, nil
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
