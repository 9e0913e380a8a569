package aria2rpc

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/coder/websocket"
)

// Bounds on one WebSocket client.
const (
	// queuedMessages is how many answers and notifications may wait for
	// one client; a notification that finds no room drops the client.
	queuedMessages = 64
	// wsWriteTimeout bounds the write of one message: a client that
	// takes longer is dropped.
	wsWriteTimeout = 10 * time.Second
)

// errTooSlow drops a WebSocket client that does not read what it is
// sent.
var errTooSlow = errors.New("the client reads its messages too slowly")

// wsConn is one WebSocket client: its messages wait in out for the one
// goroutine that writes them.
type wsConn struct {
	c      *websocket.Conn
	out    chan []byte
	cancel context.CancelCauseFunc
}

// serveWebSocket answers JSON-RPC over a WebSocket: each text message a
// request, each answer a message, in order, with notifications between.
func (s *Server) serveWebSocket(w http.ResponseWriter, r *http.Request) {
	select {
	case s.wsSlots <- struct{}{}:
		defer func() { <-s.wsSlots }()
	default:
		s.reply(w, marshal(&response{Error: failf("too many WebSocket connections: at most %d", cap(s.wsSlots))}), http.StatusServiceUnavailable, "")
		return
	}
	s.mu.Lock()
	if s.ctx.Err() != nil {
		s.mu.Unlock()
		return
	}
	s.wg.Add(1)
	s.mu.Unlock()
	defer s.wg.Done()
	c, err := websocket.Accept(w, r, &websocket.AcceptOptions{
		// Every origin: the secret gates every call, and a page on
		// another origin cannot learn it; a loopback listener refused
		// other hosts before (docs/aria2-rpc.md).
		InsecureSkipVerify: true,
	})
	if err != nil {
		s.logger().Debug("WebSocket not accepted", "from", r.RemoteAddr, "err", err)
		return
	}
	defer c.CloseNow()
	c.SetReadLimit(maxBody)
	ctx, cancel := context.WithCancelCause(s.ctx)
	defer cancel(nil)
	conn := &wsConn{c: c, out: make(chan []byte, queuedMessages), cancel: cancel}
	s.mu.Lock()
	s.conns[conn] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.conns, conn)
		s.mu.Unlock()
	}()
	var writer sync.WaitGroup
	writer.Go(func() { conn.write(ctx) })
	defer func() {
		// The writer ends with ctx: a client that left must not keep it,
		// and this connection's slot, until idmd stops.
		cancel(nil)
		writer.Wait()
	}()
	from := remoteAddr(r)
	for {
		_, msg, err := c.Read(ctx)
		if err != nil {
			if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) {
				s.logger().Info("WebSocket client dropped", "from", r.RemoteAddr, "why", cause)
			}
			return
		}
		// No second's wait for a wrong secret here: the client waits
		// for this answer before its next call is read anyway.
		out, _ := s.answer(ctx, &exchange{from: from}, msg)
		select {
		case conn.out <- out:
		case <-ctx.Done():
			return
		}
	}
}

// write writes conn's messages until ctx ends or a write fails.
func (conn *wsConn) write(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case m := <-conn.out:
			wctx, cancel := context.WithTimeout(ctx, wsWriteTimeout)
			err := conn.c.Write(wctx, websocket.MessageText, m)
			cancel()
			if err != nil {
				conn.cancel(fmt.Errorf("write: %w", err))
				return
			}
		}
	}
}

// broadcast queues msg for every WebSocket client; a client with no room
// left is dropped, so that one that does not read holds up no other and
// costs at most its queue.
func (s *Server) broadcast(msg []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for conn := range s.conns {
		select {
		case conn.out <- msg:
		default:
			conn.cancel(errTooSlow)
		}
	}
}
