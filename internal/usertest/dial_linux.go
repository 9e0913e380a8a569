//go:build linux && (amd64 || arm64)

// The raw setresuid and setresgid below take 32-bit IDs on these; on
// 386 and arm they are other system calls.

package usertest

import (
	"net"
	"runtime"

	"golang.org/x/sys/unix"

	"github.com/idmproject/idm/store"
)

// DialAs connects to a Unix socket as another user, for real: the
// connection is made from an OS thread that takes on who's groups, group
// and user, so the kernel reports them to the other end. The thread is
// never given back to the runtime: it ends with its goroutine, and no
// other goroutine runs on it meanwhile. Only root may do this.
func DialAs(who *store.Owner, sock string) (net.Conn, error) {
	type result struct {
		c   net.Conn
		err error
	}
	done := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		// Per thread, unlike syscall.Setresuid, which changes every
		// thread of the process.
		err := unix.Setgroups(who.Groups)
		if err == nil {
			if _, _, e := unix.RawSyscall(unix.SYS_SETRESGID, ^uintptr(0), uintptr(who.GID), ^uintptr(0)); e != 0 {
				err = e
			}
		}
		if err == nil {
			if _, _, e := unix.RawSyscall(unix.SYS_SETRESUID, ^uintptr(0), uintptr(who.UID), ^uintptr(0)); e != 0 {
				err = e
			}
		}
		if err != nil {
			done <- result{nil, err}
			return
		}
		c, err := net.Dial("unix", sock)
		done <- result{c, err}
	}()
	r := <-done
	return r.c, r.err
}
