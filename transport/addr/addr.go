// Package addr reads the addresses of sources, as users type them and as
// jobs record them, and writes them in one normal form, so that the same
// source given twice is seen as one.
//
// It knows the syntax of an address and nothing of the protocol behind
// it: it is a leaf, so that idmctl checks what a user typed without
// linking the protocols, and the daemon checks it again with the same
// code when a job is created.
package addr

import (
	"fmt"
	"net"
	"net/url"
	"strconv"
)

// Addr is a source's address in its normal form.
type Addr struct {
	// Scheme is the protocol: "idm" for an idm server.
	Scheme string
	// Host is the server's host:port, an IPv6 address in brackets.
	Host string
}

// String returns the address in its normal form, which Parse reads back
// to the same Addr.
func (a Addr) String() string { return a.Scheme + "://" + a.Host }

// Parse reads a source address. Only idm://host:port is known for now;
// the host may be a name, an IPv4 address or a bracketed IPv6 one. The
// error names the address as it was given.
func Parse(raw string) (Addr, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return Addr{}, fmt.Errorf("source %q: %w", raw, err)
	}
	if u.Scheme != "idm" {
		return Addr{}, fmt.Errorf("source %q: want idm://host:port", raw)
	}
	if u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return Addr{}, fmt.Errorf("source %q: want idm://host:port and nothing more", raw)
	}
	host, port, err := net.SplitHostPort(u.Host)
	if err != nil || host == "" {
		return Addr{}, fmt.Errorf("source %q: want idm://host:port", raw)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		return Addr{}, fmt.Errorf("source %q: port must be 1..65535", raw)
	}
	return Addr{Scheme: "idm", Host: net.JoinHostPort(host, port)}, nil
}
