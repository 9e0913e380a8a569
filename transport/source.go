package transport

import (
	"context"
	"io"
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
