package httpsrc

import (
	"net/netip"
	"testing"

	"github.com/idmproject/idm/internal/dnstest"
	"github.com/idmproject/idm/internal/nethook"
)

// pretend makes the loopback addresses of classes count as of the
// classes given, for the test's duration: tests may use loopback only,
// and need some of it to stand for public and internal networks. The
// clients check what they connect to, and what they narrow reaches by,
// with these classes.
func pretend(t *testing.T, classes map[string]Class) {
	t.Helper()
	m := map[netip.Addr]uint8{}
	for a, c := range classes {
		m[netip.MustParseAddr(a)] = uint8(c)
	}
	t.Cleanup(nethook.SetClasses(m))
}

// resolve makes the clients made after it, for the test's duration,
// resolve names with answer (see dnstest.Resolver), and nothing else:
// no hosts file, no DNS server.
func resolve(t *testing.T, answer func(name string) netip.Addr) {
	t.Helper()
	t.Cleanup(nethook.SetResolver(dnstest.Resolver(answer)))
}
