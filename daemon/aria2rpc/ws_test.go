package aria2rpc

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// Over a WebSocket, calls are answered in order, batches and bad input
// as over HTTP; a message larger than a request may be closes the
// connection, and nothing else.
func TestWebSocket_Calls(t *testing.T) {
	e := newEnv(t, nil)
	ws := e.dial()
	ws.send(`{"jsonrpc":"2.0","id":1,"method":"aria2.getVersion","params":["token:` + testSecret + `"]}`)
	ws.send(`{"jsonrpc":"2.0","id":2,"method":"aria2.getVersion","params":["token:wrong"]}`)
	ws.send(`[{"jsonrpc":"2.0","id":3,"method":"system.listMethods"}]`)
	ws.send(`{"jsonrpc":"2.0","id":4,"method":`)
	if r := ws.answer("1"); r.Error != nil {
		t.Errorf("answer 1: %+v", r.Error)
	}
	if r := ws.answer("2"); r.Error == nil || r.Error.Message != "Unauthorized" {
		t.Errorf("answer 2: %s %+v", r.Result, r.Error)
	}
	ws.await("the batch's answer", func(r reply) bool { return r.JSONRPC == "" && r.ID == nil })
	if r := ws.await("the parse error", func(r reply) bool { return r.Error != nil && r.Error.Code == codeParse }); string(r.ID) != "null" {
		t.Errorf("the parse error's id: %s", r.ID)
	}

	big := e.dial()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := big.c.Write(ctx, websocket.MessageText, bytes.Repeat([]byte(" "), maxBody+1))
	if err == nil {
		select {
		case <-big.done:
		case <-ctx.Done():
			t.Fatal("a message over 2 MiB left the connection open")
		}
	}
	ws.send(`{"jsonrpc":"2.0","id":5,"method":"system.listNotifications"}`)
	ws.answer("5")
}

// At most MaxWebSockets connections are open at once; one more is
// refused with a JSON-RPC error and an HTTP 503.
func TestWebSocket_MaxConnections(t *testing.T) {
	e := newEnv(t, func(s *Server) { s.MaxWebSockets = 2 })
	e.dial()
	e.dial()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, res, err := websocket.Dial(ctx, strings.Replace(e.url, "http://", "ws://", 1), nil)
	if err == nil || res == nil || res.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("a third WebSocket: %v, %v", err, res)
	}
	// Plain HTTP still answers.
	e.call(nil, "aria2.getVersion")
}

// A client that leaves gives its connection back: many more than
// MaxWebSockets may come and go, one after the other.
func TestWebSocket_ClientsLeave(t *testing.T) {
	e := newEnv(t, func(s *Server) { s.MaxWebSockets = 2 })
	for range 10 {
		w := e.dial()
		w.send(`{"jsonrpc":"2.0","id":1,"method":"system.listMethods"}`)
		w.answer("1")
		w.close()
		waitFor(t, "the server to let the client go", func() bool {
			e.srv.mu.Lock()
			defer e.srv.mu.Unlock()
			return len(e.srv.conns) == 0 && len(e.srv.wsSlots) == 0
		})
	}
}

// A WebSocket client that reads nothing is dropped once the messages for
// it fill its queue: it holds up no other client, and costs at most its
// queue.
func TestWebSocket_SlowClient(t *testing.T) {
	e := newEnv(t, nil)
	fast := e.dial()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	slow, _, err := websocket.Dial(ctx, strings.Replace(e.url, "http://", "ws://", 1), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.CloseNow()
	waitFor(t, "two clients", func() bool {
		e.srv.mu.Lock()
		defer e.srv.mu.Unlock()
		return len(e.srv.conns) == 2
	})
	msg, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "method": notifyStart, "params": []any{map[string]string{"pad": strings.Repeat("x", 64<<10)}}})
	sent := 0
	for {
		e.srv.broadcast(msg)
		sent++
		e.srv.mu.Lock()
		n := len(e.srv.conns)
		e.srv.mu.Unlock()
		if n == 1 {
			break
		}
		if sent > 10000 {
			t.Fatal("the client that reads nothing was never dropped")
		}
		time.Sleep(time.Millisecond)
	}
	// The fast client got every message, the ones after the drop too.
	e.srv.notify(notifyComplete, 7)
	fast.notification(notifyComplete, gid(7))
	got := 0
	for _, n := range fast.notifications() {
		if strings.HasPrefix(n, notifyStart) {
			got++
		}
	}
	if got != sent {
		t.Errorf("the reading client got %d of %d messages", got, sent)
	}
	_, _, err = slow.Read(ctx)
	if err == nil || errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("the dropped client's connection is still open: %v", err)
	}
	t.Logf("dropped after %d messages of 64 KiB", sent)
}
