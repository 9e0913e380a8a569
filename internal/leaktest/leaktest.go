// Package leaktest checks that a test leaves no goroutine, socket or file
// open behind it. It is imported only by tests.
package leaktest

import (
	"net"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"
)

// Check fails the test if, once everything it started has been cleaned
// up, more goroutines or file descriptors are open than before it. Call
// it first, so its cleanup runs last.
func Check(t *testing.T) {
	t.Helper()
	// The runtime's network poller opens descriptors of its own on first
	// use, once per process: start it before counting.
	if ln, err := net.Listen("tcp", "127.0.0.1:0"); err == nil {
		ln.Close()
	}
	goroutines, fds := runtime.NumGoroutine(), openFDs(t)
	t.Cleanup(func() {
		deadline := time.Now().Add(5 * time.Second)
		for {
			g, f := runtime.NumGoroutine(), openFDs(t)
			if g <= goroutines && f <= fds {
				return
			}
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<20)
				buf = buf[:runtime.Stack(buf, true)]
				t.Errorf("leak: %d goroutines (was %d), %d fds (was %d): %v\n%s", g, goroutines, f, fds, fdTargets(), buf)
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
}

// fdTargets lists the descriptors a download could leak: sockets and
// files. The runtime's own (pipes, the poller, cgroup files it opens
// lazily) come and go on their own schedule and are left out.
func fdTargets() []string {
	ents, _ := os.ReadDir("/proc/self/fd")
	var out []string
	for _, e := range ents {
		l, _ := os.Readlink("/proc/self/fd/" + e.Name())
		if strings.HasPrefix(l, "socket:") ||
			(strings.HasPrefix(l, "/") && !strings.HasPrefix(l, "/sys/") && !strings.HasPrefix(l, "/dev/") && !strings.HasPrefix(l, "/proc/")) {
			out = append(out, l)
		}
	}
	return out
}

func openFDs(t *testing.T) int {
	if _, err := os.Stat("/proc/self/fd"); err != nil {
		t.Skip("needs /proc/self/fd")
	}
	return len(fdTargets())
}
