package localapi

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/idmproject/idm/daemon/api"
	"github.com/idmproject/idm/daemon/auth"
	"github.com/idmproject/idm/daemon/jobs"
	"github.com/idmproject/idm/daemon/socket"
)

// Shutdown stops a Server for good, whether it comes before Serve or
// while Serve starts: Serve returns nil, and the socket no longer
// answers. Under -race this also shows that the two share the server
// safely, as idmd's main needs when SIGTERM comes early.
func TestServer_Shutdown_RacesServe(t *testing.T) {
	d := openQueue(t, jobs.Config{})
	dir := t.TempDir()
	for i := range 50 {
		sock := filepath.Join(dir, fmt.Sprintf("%d.sock", i))
		ln, err := socket.Listen(sock, 0o600, -1)
		if err != nil {
			t.Fatal(err)
		}
		srv := &Server{Queue: d, Access: auth.Access{UID: os.Geteuid(), Group: -1}, Logger: quietLog()}
		served, shut := make(chan error, 1), make(chan error, 1)
		serve := func() { served <- srv.Serve(ln) }
		shutdown := func() { shut <- srv.Shutdown(context.Background()) }
		if i == 0 {
			// Strictly before.
			shutdown()
			go serve()
		} else {
			start := make(chan struct{})
			go func() { <-start; serve() }()
			go func() { <-start; shutdown() }()
			close(start)
		}
		select {
		case err := <-served:
			if err != nil {
				t.Errorf("round %d: Serve after Shutdown: %v", i, err)
			}
		case <-time.After(10 * time.Second):
			ln.Close()
			<-served
			t.Fatalf("round %d: Serve went on serving after Shutdown", i)
		}
		if err := <-shut; err != nil {
			t.Errorf("round %d: Shutdown: %v", i, err)
		}
		if c, err := net.Dial("unix", sock); err == nil {
			c.Close()
			t.Fatalf("round %d: the socket still answers after Shutdown", i)
		}
	}
}

// A daemon that is shutting down answers 503 with a code of its own,
// which a client can tell from a failure and retry.
func TestServer_ShuttingDown_Unavailable(t *testing.T) {
	d, c := startControl(t, jobs.Config{})
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	req := mustJSON(api.CreateRequest{Sources: []string{"idm://127.0.0.1:1"}, Dir: t.TempDir()})
	status, eb := c.do("POST", "/v1/jobs", req, nil)
	if status != http.StatusServiceUnavailable || eb.Code != api.CodeUnavailable || eb.Error != "daemon shutting down" {
		t.Errorf("create on a closing daemon: %d %+v, want 503 %s saying it is shutting down", status, eb, api.CodeUnavailable)
	}
}
