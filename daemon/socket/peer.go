package socket

import (
	"context"
	"net"

	"github.com/idmproject/idm/daemon/auth"
)

// ConnContext attaches the credentials of the process at the other end of
// c to ctx, for the requests that come over c to find with auth.PeerFrom.
// It is an http.Server's ConnContext. Where they cannot be read, ctx
// carries no caller.
func ConnContext(ctx context.Context, c net.Conn) context.Context {
	if p, ok := peerCred(c); ok {
		return auth.WithPeer(ctx, p)
	}
	return ctx
}
