package httpsrc

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/netip"
	"net/url"
	"sync/atomic"
	"syscall"

	"github.com/idmproject/idm/internal/nethook"
)

// guard is the RoundTripper of NewClient's clients: it keeps every
// request within the reach its context's Trip gives it, and narrows the
// Trip by the class of each server that answers.
//
// It keeps one http.Transport per reach, each with a dialer that refuses
// addresses beyond that reach, so that a request never gets a kept-alive
// connection dialled for a wider reach than its own: a connection to
// 127.0.0.1 a user's source left idle is not there for a redirect from a
// public server to take.
type guard struct {
	byReach [Public + 1]*http.Transport
	proxy   func(*http.Request) (*url.URL, error)
}

// guarded returns the guard of transports like tr, dialling with d.
func guarded(tr *http.Transport, d *net.Dialer) *guard {
	g := &guard{proxy: tr.Proxy}
	if g.proxy == nil {
		g.proxy = func(*http.Request) (*url.URL, error) { return nil, nil }
	}
	for c := range g.byReach {
		t := tr.Clone()
		dc := *d
		dc.Resolver = nethook.Resolver()
		dc.ControlContext = admit(Class(c))
		t.DialContext = dc.DialContext
		g.byReach[c] = t
	}
	return g
}

// hopKey keys the hop a request's context carries to the dialer.
type hopKey struct{}

// hop is what the dialer is told of the request it dials for.
type hop struct {
	reach   Class
	proxied bool   // the dial is the proxy's
	from    string // the server that sent idmd here, redacted, if any
	host    string // the host of the request's URL
}

// admit returns the dialer's check of the address it is about to
// connect to: the address itself, resolved, whatever name the request
// gave. The proxy of a request is always admitted: it is the user's.
func admit(reach Class) func(ctx context.Context, network, address string, _ syscall.RawConn) error {
	return func(ctx context.Context, network, address string, _ syscall.RawConn) error {
		h, _ := ctx.Value(hopKey{}).(*hop)
		if h == nil {
			h = &hop{reach: reach}
		}
		if h.proxied {
			return nil
		}
		ap, err := netip.ParseAddrPort(address)
		if err != nil {
			// The dialer hands over the address it resolved; anything
			// else cannot be weighed, and is not connected to.
			return &refusal{from: h.from, host: h.host, reach: max(reach, h.reach)}
		}
		if c := classify(ap.Addr()); c < max(reach, h.reach) {
			return &refusal{from: h.from, host: h.host, ip: ap.Addr().Unmap(), class: c, reach: max(reach, h.reach)}
		}
		return nil
	}
}

// RoundTrip sends req within its reach: a host known beyond it without
// a resolver (a literal address, localhost) is refused before any dial,
// and a name resolved beyond it at the dial.
func (g *guard) RoundTrip(req *http.Request) (*http.Response, error) {
	trip := tripOf(req.Context())
	h := &hop{reach: Machine, host: req.URL.Hostname()}
	if trip != nil {
		h.reach, h.from = trip.hop()
	}
	if p, err := g.proxy(req); err == nil && p != nil {
		h.proxied = true
	}
	ip, class, literal := hostClass(h.host)
	if literal && class < h.reach {
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, &refusal{from: h.from, host: h.host, ip: ip, class: class, reach: h.reach}
	}
	ctx := context.WithValue(req.Context(), hopKey{}, h)
	var remote atomic.Pointer[netip.Addr]
	if trip != nil {
		ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{GotConn: func(info httptrace.GotConnInfo) {
			if a, ok := info.Conn.RemoteAddr().(*net.TCPAddr); ok {
				ip := a.AddrPort().Addr()
				remote.Store(&ip)
			}
		}})
	}
	resp, err := g.byReach[h.reach].RoundTrip(req.WithContext(ctx))
	var r *refusal
	if errors.As(err, &r) {
		// The dial's, wrapped in what the dial was: the refusal says
		// all of it, and names no more of the address than it should.
		return nil, r
	}
	if err != nil || trip == nil {
		return resp, err
	}
	// The server's class: that of the address connected to; behind a
	// proxy, which resolves names itself, that of a literal host, and
	// public for a name, as little as it could be.
	server := Public
	switch ip := remote.Load(); {
	case h.proxied && literal:
		server = class
	case !h.proxied && ip != nil:
		server = classify(*ip)
	}
	trip.answered(server, req.URL)
	return resp, nil
}

// CloseIdleConnections closes the idle connections of every reach, as
// http.Client.CloseIdleConnections asks.
func (g *guard) CloseIdleConnections() {
	for _, t := range g.byReach {
		t.CloseIdleConnections()
	}
}
