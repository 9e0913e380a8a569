package localapi

import (
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/idmproject/idm/daemon/api"
	"github.com/idmproject/idm/daemon/auth"
	"github.com/idmproject/idm/daemon/jobs"
	"github.com/idmproject/idm/store"
)

// A client that opens a stream and never reads is dropped once a write
// makes no progress for EventWriteTimeout, and its connection closed.
func TestServer_Events_DropsStalledClient(t *testing.T) {
	// Jobs whose last error is long: their snapshot overfills the
	// socket's buffer.
	var recs []*store.Record
	for range 16 {
		recs = append(recs, &store.Record{Sources: []string{"idm://127.0.0.1:1"}, Dir: t.TempDir(), State: api.StatePaused, LastError: strings.Repeat("x", 64<<10)})
	}
	d := openQueue(t, jobs.Config{StateDir: stateDir(t, recs...)})
	sock := filepath.Join(t.TempDir(), "idmd.sock")
	serve(t, &Server{Queue: d, Access: auth.Access{UID: os.Geteuid(), Group: -1}, Logger: quietLog(), EventWriteTimeout: 500 * time.Millisecond}, sock, 0o600)
	cn, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer cn.Close()
	if _, err := io.WriteString(cn, "GET /v1/events HTTP/1.1\r\nHost: idmd\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the stalled stream to be dropped", time.Minute, func() bool { return hungUp(t, cn) })
	// Dropped, not paused: reading now finds the connection closed
	// after what the socket held.
	cn.SetReadDeadline(time.Now().Add(time.Minute))
	n, err := io.Copy(io.Discard, cn)
	if err != nil {
		t.Fatalf("read the dropped stream: %v after %d bytes", err, n)
	}
	if n >= 16*64<<10 {
		t.Fatalf("read %d bytes, the whole snapshot: the stream was not cut", n)
	}
}

// hungUp reports whether the other end of c has closed it, without
// reading what c holds.
func hungUp(t *testing.T, c net.Conn) bool {
	t.Helper()
	raw, err := c.(*net.UnixConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var revents int16
	err = raw.Control(func(fd uintptr) {
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLRDHUP}}
		if _, err := unix.Poll(fds, 0); err == nil {
			revents = fds[0].Revents
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	return revents&(unix.POLLRDHUP|unix.POLLHUP) != 0
}
