// Package addr reads the addresses of sources, as users type them and as
// jobs record them, and writes them in one normal form, so that the same
// source given twice is seen as one.
//
// It knows the syntax of an address and nothing of the protocol behind
// it: it is a leaf, so that idmctl checks what a user typed without
// linking the protocols, and the daemon checks it again with the same
// code when a job is created.
//
// An address may carry a secret: a password in an http(s) URL, or a
// signature in its query, as signed links have. String keeps it, since
// the source cannot be reached without it; Redacted hides it, and is what
// logs and listings show.
package addr

import (
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
)

// The schemes a source may have.
const (
	IDM   = "idm"
	HTTP  = "http"
	HTTPS = "https"
)

// MaxLen bounds the length of an address: no mirror needs more, and it
// bounds what one job's record can hold.
const MaxLen = 8 << 10

// Addr is a source's address in its normal form.
type Addr struct {
	// Scheme is the protocol: IDM, HTTP or HTTPS.
	Scheme string
	// Host is the server's host:port for an idm server, an IPv6 address
	// in brackets; for http(s), the host in lower case and the port
	// unless it is the scheme's default.
	Host string
	// URL is the whole address in its normal form: for http(s), the URL
	// without its fragment, which is never sent to a server.
	URL string
}

// String returns the address in its normal form, which Parse reads back
// to the same Addr. It holds any secret the address was given with.
func (a Addr) String() string { return a.URL }

// Redacted returns the address with its secrets hidden: the password of
// its user information and the value of every query parameter. It is what
// may be logged or shown to anyone.
func (a Addr) Redacted() string {
	if a.Scheme == IDM {
		return a.URL
	}
	u, err := url.Parse(a.URL)
	if err != nil { // not an Addr that Parse made
		return a.Scheme + "://" + a.Host + "/..."
	}
	return redact(u)
}

// redact writes u with the password of its user information and the
// value of every query parameter hidden.
func redact(u *url.URL) string {
	c := *u
	if c.User != nil {
		if _, has := c.User.Password(); has {
			c.User = url.UserPassword(c.User.Username(), "xxxxx")
		}
	}
	if c.RawQuery != "" {
		parts := strings.Split(c.RawQuery, "&")
		for i, p := range parts {
			if k, _, ok := strings.Cut(p, "="); ok {
				parts[i] = k + "=xxxxx"
			}
		}
		c.RawQuery = strings.Join(parts, "&")
	}
	return c.String()
}

// Redact returns raw with its secrets hidden, as Redacted does. What does
// not read as a URL loses its query and user information.
func Redact(raw string) string {
	if u, err := url.Parse(raw); err == nil {
		return redact(u)
	}
	return unreadable(raw)
}

// unreadable returns what can be shown of an address that does not read
// as a URL: all but its user information, query and fragment.
func unreadable(raw string) string {
	s := raw
	if i := strings.IndexAny(s, "?#"); i >= 0 {
		s = s[:i] + "?..."
	}
	if i := strings.Index(s, "://"); i >= 0 {
		if j := strings.LastIndex(s[i+3:], "@"); j >= 0 {
			s = s[:i+3] + "..." + s[i+3+j:]
		}
	}
	return s
}

// WithLogin returns the http(s) address raw with user and password as its
// user information, or raw itself when it is not an http(s) URL or has
// user information of its own, which wins over any given elsewhere.
func WithLogin(raw, user, password string) string {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != HTTP && u.Scheme != HTTPS) || u.User != nil || user == "" {
		return raw
	}
	u.User = url.UserPassword(user, password)
	return u.String()
}

// Parse reads a source address: idm://host:port, where the host may be a
// name, an IPv4 address or a bracketed IPv6 one, or an http:// or
// https:// URL. The error names the address as it was given, redacted.
func Parse(raw string) (Addr, error) {
	if len(raw) > MaxLen {
		return Addr{}, fmt.Errorf("source %q: longer than %d bytes", unreadable(raw[:40]), MaxLen)
	}
	u, err := url.Parse(raw)
	if err != nil {
		// url's errors quote the whole address, secrets and all.
		return Addr{}, fmt.Errorf("source %q: not a URL", unreadable(raw))
	}
	switch u.Scheme {
	case IDM:
		return parseIDM(raw, u)
	case HTTP, HTTPS:
		return parseHTTP(raw, u)
	}
	return Addr{}, fmt.Errorf("source %q: want idm://host:port or an http:// or https:// URL", redact(u))
}

func parseIDM(raw string, u *url.URL) (Addr, error) {
	if u.User != nil || u.Opaque != "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return Addr{}, fmt.Errorf("source %q: want idm://host:port and nothing more", raw)
	}
	host, port, err := net.SplitHostPort(u.Host)
	if err != nil || host == "" {
		return Addr{}, fmt.Errorf("source %q: want idm://host:port", raw)
	}
	if !validPort(port) {
		return Addr{}, fmt.Errorf("source %q: port must be 1..65535", raw)
	}
	hp := net.JoinHostPort(host, port)
	return Addr{Scheme: IDM, Host: hp, URL: IDM + "://" + hp}, nil
}

func parseHTTP(raw string, u *url.URL) (Addr, error) {
	shown := redact(u)
	if u.Opaque != "" || u.Host == "" {
		return Addr{}, fmt.Errorf("source %q: want %s://host/path", shown, u.Scheme)
	}
	host, port := u.Hostname(), u.Port()
	if host == "" || strings.ContainsAny(host, " %") {
		return Addr{}, fmt.Errorf("source %q: no host name", shown)
	}
	if strings.HasSuffix(u.Host, ":") || (port != "" && !validPort(port)) {
		return Addr{}, fmt.Errorf("source %q: port must be 1..65535", shown)
	}
	host = strings.ToLower(host)
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	if port != "" && !(u.Scheme == HTTP && port == "80") && !(u.Scheme == HTTPS && port == "443") {
		host += ":" + port
	}
	n := url.URL{Scheme: u.Scheme, User: u.User, Host: host, Path: u.Path, RawPath: u.RawPath, RawQuery: u.RawQuery}
	if n.Path == "" {
		n.Path = "/"
		n.RawPath = ""
	}
	return Addr{Scheme: u.Scheme, Host: host, URL: n.String()}, nil
}

func validPort(p string) bool {
	n, err := strconv.Atoi(p)
	return err == nil && n >= 1 && n <= 65535 && p[0] != '+'
}
