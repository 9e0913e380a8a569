package httpsrc

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"

	"github.com/idmproject/idm/internal/nethook"
	"github.com/idmproject/idm/transport/addr"
)

// A Class says how far inside idmd's networks an address is: Machine,
// Internal or Public, from the most internal to the least.
//
// As a source's reach (Options.Reach) it is the most internal class of
// address the source may make idmd connect to. Each server idmd hears
// from narrows what it may send idmd to next, by redirect, by announcing
// a mirror or by listing one in a Metalink: to addresses no more internal
// than its own. A source the user gave has reach Machine, the zero value,
// and may go anywhere; a mirror a public server named, reach Public.
type Class uint8

const (
	// Machine is this machine: the loopback addresses (127.0.0.0/8, ::1)
	// and the unspecified ones (0.0.0.0/8, ::), which connect to it.
	Machine Class = iota
	// Internal is the internal networks: private (RFC 1918), shared
	// (100.64.0.0/10), link-local (169.254.0.0/16, fe80::/10), unique
	// local (fc00::/7), multicast, and the other ranges that are not
	// routed on the internet (documentation, benchmarking, reserved).
	Internal
	// Public is every other address.
	Public
)

// String returns the class's word, as a job's record keeps it: machine,
// internal or public.
func (c Class) String() string {
	switch c {
	case Machine:
		return "machine"
	case Internal:
		return "internal"
	case Public:
		return "public"
	}
	return "class " + strconv.Itoa(int(c))
}

// ParseClass reads the word String writes.
func ParseClass(s string) (Class, error) {
	for c := Machine; c <= Public; c++ {
		if s == c.String() {
			return c, nil
		}
	}
	return Public, fmt.Errorf("address class %q: want machine, internal or public", s)
}

// an names an address of the class in a message.
func (c Class) an() string {
	switch c {
	case Machine:
		return "an address of this machine"
	case Internal:
		return "an address of an internal network"
	}
	return "a public address"
}

// sender names, in a message, a server whose answers narrow a reach to c.
func (c Class) sender() string {
	switch c {
	case Machine:
		return "a server of this machine"
	case Internal:
		return "a server on an internal network"
	}
	return "a public server"
}

// internalPrefixes are the ranges beyond those netip names (private,
// link-local, multicast) that are not routed on the internet, so that
// whatever answers at them is on a network of idmd's own.
var internalPrefixes = []netip.Prefix{
	netip.MustParsePrefix("100.64.0.0/10"),   // shared address space (RFC 6598)
	netip.MustParsePrefix("192.0.0.0/24"),    // IETF protocol assignments
	netip.MustParsePrefix("192.0.2.0/24"),    // documentation
	netip.MustParsePrefix("198.18.0.0/15"),   // benchmarking
	netip.MustParsePrefix("198.51.100.0/24"), // documentation
	netip.MustParsePrefix("203.0.113.0/24"),  // documentation
	netip.MustParsePrefix("240.0.0.0/4"),     // reserved, and the broadcast address
	netip.MustParsePrefix("::/96"),           // IPv4-compatible (deprecated)
	netip.MustParsePrefix("64:ff9b:1::/48"),  // local-use IPv4/IPv6 translation
	netip.MustParsePrefix("100::/64"),        // discard-only
	netip.MustParsePrefix("2001:2::/48"),     // benchmarking
	netip.MustParsePrefix("2001:db8::/32"),   // documentation
	netip.MustParsePrefix("3fff::/20"),       // documentation
	netip.MustParsePrefix("5f00::/16"),       // segment routing
	netip.MustParsePrefix("fec0::/10"),       // site-local (deprecated)
}

// Prefixes whose addresses carry an IPv4 address, which a gateway
// connects to on idmd's behalf.
var (
	nat64     = netip.MustParsePrefix("64:ff9b::/96")
	sixToFour = netip.MustParsePrefix("2002::/16")
)

// ClassOf returns the class of ip. An IPv4 address mapped into IPv6 is
// the IPv4 address; an IPv6 address that carries an IPv4 one for a
// gateway to reach (NAT64's 64:ff9b::/96, 6to4's 2002::/16) is of that
// address's class, and at best of an internal network, the gateway's. An
// invalid address is of this machine: the most internal, never let
// through where a class is asked for.
func ClassOf(ip netip.Addr) Class {
	ip = ip.Unmap().WithZone("")
	switch {
	case !ip.IsValid() || ip.IsLoopback() || ip.IsUnspecified():
		return Machine
	case ip.Is4() && ip.As4()[0] == 0:
		return Machine
	case nat64.Contains(ip):
		b := ip.As16()
		return max(ClassOf(netip.AddrFrom4([4]byte(b[12:]))), Internal)
	case sixToFour.Contains(ip):
		b := ip.As16()
		return max(ClassOf(netip.AddrFrom4([4]byte(b[2:6]))), Internal)
	case ip.IsPrivate() || ip.IsLinkLocalUnicast() || ip.IsMulticast() || !ip.IsGlobalUnicast():
		return Internal
	}
	for _, p := range internalPrefixes {
		if p.Contains(ip) {
			return Internal
		}
	}
	return Public
}

// classify is ClassOf, but for the addresses a test gave a class of its
// own (package nethook).
func classify(ip netip.Addr) Class {
	if c, ok := nethook.Class(ip.Unmap().WithZone("")); ok {
		return Class(c)
	}
	return ClassOf(ip)
}

// hostClass returns the class of a URL's host when it can be known
// without a resolver: a literal IP address, in the forms resolvers read
// as one too (127.1, 2130706433, 0x7f.0.0.1), or localhost and the names
// under it (RFC 6761), which are this machine's. ip is the address, when
// the host is one.
func hostClass(host string) (ip netip.Addr, c Class, ok bool) {
	h := strings.TrimSuffix(strings.ToLower(host), ".")
	if h == "localhost" || strings.HasSuffix(h, ".localhost") {
		return netip.Addr{}, Machine, true
	}
	ip, err := netip.ParseAddr(h)
	if err != nil {
		if ip, ok = inetAton(h); !ok {
			return netip.Addr{}, 0, false
		}
	}
	return ip, classify(ip), true
}

// NamedBy returns the reach of what the server at raw, an http(s) URL,
// names, when only its address is known and not which server answered
// (after a restart, say): the class of its host when that is a literal
// address or localhost, narrowed to at least reach, and Public for a
// name, which could resolve anywhere.
func NamedBy(raw string, reach Class) Class {
	u, err := url.Parse(raw)
	if err != nil {
		return Public
	}
	if _, c, ok := hostClass(u.Hostname()); ok {
		return max(reach, c)
	}
	return Public
}

// inetAton reads an IPv4 address in the forms of inet_aton(3): one to
// four parts, each decimal, octal (0 first) or hexadecimal (0x), the last
// filling the bytes left. A proxy or a C resolver reads "127.1" as
// 127.0.0.1, so the check before any dial must too.
func inetAton(s string) (netip.Addr, bool) {
	parts := strings.Split(s, ".")
	if len(parts) > 4 {
		return netip.Addr{}, false
	}
	var n uint64
	for i, p := range parts {
		base := 10
		switch {
		case len(p) > 1 && (p[:2] == "0x" || p[:2] == "0X"):
			base, p = 16, p[2:]
		case len(p) > 1 && p[0] == '0':
			base, p = 8, p[1:]
		}
		v, err := strconv.ParseUint(p, base, 32)
		if err != nil {
			return netip.Addr{}, false
		}
		bits := 8
		if i == len(parts)-1 {
			bits = 8 * (4 - i)
		}
		if v >= 1<<bits {
			return netip.Addr{}, false
		}
		n = n<<bits | v
	}
	return netip.AddrFrom4([4]byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}), true
}

// ErrRefused reports an address a source may not make idmd connect to:
// one more internal than its reach, which a server narrowed by sending
// idmd there (a redirect), or by naming the source (a mirror it
// announced). It is permanent.
var ErrRefused = errors.New("address refused")

// refusal is an address refused for a source's reach, and why.
type refusal struct {
	from  string     // the server that redirected there, redacted; "" when none did
	host  string     // the URL's host
	ip    netip.Addr // the address connected to, when known
	class Class      // the address's
	reach Class      // the source's at that point
}

func (r *refusal) Error() string {
	where := r.host
	if r.ip.IsValid() && r.ip.String() != r.host {
		where += " (" + r.ip.String() + ")"
	}
	if r.from != "" {
		return fmt.Sprintf("refused: %s redirected to %s, %s, which %s may not send idmd to", r.from, where, r.class.an(), r.reach.sender())
	}
	return fmt.Sprintf("refused: %s is %s, which %s may not send idmd to", where, r.class.an(), r.reach.sender())
}

func (r *refusal) Is(target error) bool { return target == ErrRefused }

// CheckReach returns an error wrapping ErrRefused when the host of raw,
// an http(s) URL, is beyond reach as far as can be told before any dial:
// a literal IP address, or localhost. A name is not resolved; the
// clients of NewClient check what it resolves to when they connect. It
// is how a mirror a server named is weighed before it joins a job.
func CheckReach(raw string, reach Class) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("%s: not a URL", addr.Redact(raw))
	}
	if ip, c, ok := hostClass(u.Hostname()); ok && c < reach {
		return &refusal{host: u.Hostname(), ip: ip, class: c, reach: reach}
	}
	return nil
}

// A Trip follows one request through its redirects, as the clients of
// NewClient and NewClientWith see it: the reach each hop has, narrowed
// by every server that answered before it.
type Trip struct {
	mu    sync.Mutex
	reach Class  // what the next hop may reach
	used  Class  // what the last hop was allowed to reach
	from  string // the last server to answer, redacted
	known bool   // a server's class was learned
}

type tripKey struct{}

// WithReach returns a context that carries a new Trip starting at reach:
// a request made with it by a client of NewClient or NewClientWith, and
// every redirect it follows, connects only to addresses of reach or less
// internal. The Trip says, once the answer has come, what its last
// server may send idmd to.
func WithReach(ctx context.Context, reach Class) (context.Context, *Trip) {
	t := &Trip{reach: reach, used: reach}
	return context.WithValue(ctx, tripKey{}, t), t
}

// tripOf returns the Trip ctx carries, or nil.
func tripOf(ctx context.Context) *Trip {
	t, _ := ctx.Value(tripKey{}).(*Trip)
	return t
}

// Onward returns the reach of what the last server to answer names (a
// redirect, a mirror, a Metalink): the trip's, narrowed by the class of
// every server on the way. A client not made by NewClient cannot tell
// which servers answered, and gets Public.
func (t *Trip) Onward() Class {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.known {
		return Public
	}
	return t.reach
}

// allowed returns what the last hop was allowed to reach: the reach with
// which to go back straight to the address it led to.
func (t *Trip) allowed() Class {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.used
}

// hop starts the trip's next request: it returns the request's reach and
// the server that sent idmd to it, if any.
func (t *Trip) hop() (Class, string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.used = t.reach
	return t.reach, t.from
}

// answered narrows the trip by the class of the server at u, which
// answered.
func (t *Trip) answered(c Class, u *url.URL) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.reach = max(t.reach, c)
	t.from = addr.Redact(u.String())
	t.known = true
}
