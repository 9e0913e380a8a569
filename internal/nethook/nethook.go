// Package nethook lets tests stand loopback addresses in for others.
//
// What idmd may connect to on a server's word depends on whether an
// address is of this machine, of an internal network or public (see
// package transport/httpsrc). Tests may talk to loopback addresses only,
// so a test gives chosen loopback addresses another class (127.0.0.2 as a
// public address, say) and gives names the addresses it wants with a
// resolver of its own. Only tests set these hooks; unset, they cost idmd
// one atomic load.
package nethook

import (
	"net"
	"net/netip"
	"sync/atomic"
)

var (
	classes  atomic.Pointer[map[netip.Addr]uint8]
	resolver atomic.Pointer[net.Resolver]
)

// Class returns the class a test gave ip, an httpsrc.Class, and whether
// it gave one.
func Class(ip netip.Addr) (uint8, bool) {
	m := classes.Load()
	if m == nil {
		return 0, false
	}
	c, ok := (*m)[ip]
	return c, ok
}

// SetClasses makes Class answer from m, until undo is called.
func SetClasses(m map[netip.Addr]uint8) (undo func()) {
	old := classes.Swap(&m)
	return func() { classes.Store(old) }
}

// Resolver returns the resolver a test set, or nil for the system's.
func Resolver() *net.Resolver { return resolver.Load() }

// SetResolver makes the clients made after it resolve names with r,
// until undo is called.
func SetResolver(r *net.Resolver) (undo func()) {
	old := resolver.Swap(r)
	return func() { resolver.Store(old) }
}
