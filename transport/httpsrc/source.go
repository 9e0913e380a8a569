package httpsrc

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/idmproject/idm/identity"
	"github.com/idmproject/idm/transport/addr"
)

// DefaultStallTimeout is how long a response may deliver no byte, its
// header included, before the request fails as stalled.
const DefaultStallTimeout = 10 * time.Second

const (
	// maxRedirects is how many redirects one request follows.
	maxRedirects = 10
	// maxHeaderBytes bounds a response's header, so a mirror cannot make
	// a client buffer without end before a single check is made.
	maxHeaderBytes = 64 << 10
)

// Validator is what identifies one version of a file on a mirror.
type Validator struct {
	// ETag is the mirror's strong entity tag, quotes included; empty
	// when it gave none or only a weak one, which If-Range cannot carry
	// (RFC 9110, 13.1.5).
	ETag string
	// LastModified is the Last-Modified date as the mirror wrote it.
	LastModified string
}

// String returns the validator as messages show it.
func (v Validator) String() string {
	switch {
	case v.ETag != "" && v.LastModified != "":
		return "ETag " + shown(v.ETag) + " modified " + shown(v.LastModified)
	case v.ETag != "":
		return "ETag " + shown(v.ETag)
	case v.LastModified != "":
		return "modified " + shown(v.LastModified)
	}
	return "no validator"
}

// ifRange returns the If-Range value that asks for v: its strong ETag,
// else its date, else nothing.
func (v Validator) ifRange() string {
	if strongETag(v.ETag) {
		return v.ETag
	}
	return v.LastModified
}

// Options set how a Source asks its mirror.
type Options struct {
	// Client sends the requests; a job's connections to one mirror share
	// it, so their keep-alive connections are reused from range to
	// range. Nil means NewClient(). Whatever its own policy, redirects
	// beyond ten or from https to http are refused. A Timeout on it
	// bounds a whole range, however fast it arrives: leave it zero and
	// rely on StallTimeout.
	Client *http.Client
	// StallTimeout is how long a response may deliver no byte before the
	// request fails, transiently. Zero means DefaultStallTimeout.
	StallTimeout time.Duration
	// Header holds extra headers sent on every request (User-Agent,
	// cookies, tokens). Like a redirect, a request to the address a
	// redirect led to carries no credentials unless it is on the same
	// host or a subdomain of it. It may be nil.
	Header http.Header
	// Validator is the version an earlier run recorded (see
	// Source.Validator). When set, every request carries it as If-Range,
	// and a mirror that answers with another version fails permanently.
	// The zero value sends none.
	Validator Validator
	// OnDuplicates, when set, is called with the other mirrors of the
	// file a mirror's answer announces (Link: rel=duplicate, RFC 6249),
	// best first, each time one describes the file, and with the reach
	// the announcing server allows them (Trip.Onward): give it to the
	// Options of a Source made of one. It must not block.
	OnDuplicates func(urls []string, reach Class)
	// Reach is the most internal class of address the source may make
	// idmd connect to, itself or by redirect; every redirect narrows it
	// further, to addresses no more internal than the redirecting
	// server's. The zero value, Machine, is a source the user gave: it
	// may reach any address. A mirror a server named gets the reach that
	// server allows. Only a client of NewClient or NewClientWith
	// enforces it, at the dial; one a caller builds itself connects
	// wherever it is sent.
	Reach Class
	// AcceptMetalink takes an answer that is a Metalink 4 (Content-Type
	// application/metalink4+xml) as the file, for a job that downloads
	// a document its owner then reads (see MediaType); the copies such an
	// answer announces are not passed to OnDuplicates. By default such
	// an answer, a list of other files, fails with ErrMetalink; a
	// Metalink 3 always fails.
	AcceptMetalink bool
}

// NewClient returns the client a Source uses when given none: TLS
// verified against the system's roots, HTTP/2 when a TLS server offers
// it, proxies from the environment, up to 16 idle connections kept per
// host for the next ranges, bounded dial, handshake and header waits and
// header size, and at most ten redirects, none from https to http.
//
// It keeps each request within the reach its context carries (Options.Reach
// for a Source's, WithReach for others; none is reach Machine): a literal
// address or localhost beyond it is refused before any dial, and the dial
// checks the address a name resolved to, so that a name that resolves
// (or resolves again) to an internal address is refused too. A proxy is
// always dialled, and resolves names itself: through one, only literal
// addresses and localhost are checked.
func NewClient() *http.Client {
	c, _ := NewClientWith(ClientOptions{})
	return c
}

// ClientOptions are what a job may change of NewClient's client.
type ClientOptions struct {
	// CA holds PEM certificates trusted beside the system's roots, for a
	// mirror whose certificate an authority of its own signed.
	CA string
	// Proxy, when set, is the proxy every request goes through (http://,
	// https:// or socks5://), in place of those of the environment.
	Proxy string
}

// NewClientWith returns NewClient's client with opt's changes. Nothing in
// opt can turn verification off: a CA only adds a root.
func NewClientWith(opt ClientOptions) (*http.Client, error) {
	proxy := http.ProxyFromEnvironment
	if opt.Proxy != "" {
		u, err := url.Parse(opt.Proxy)
		if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https" && u.Scheme != "socks5" && u.Scheme != "socks5h") {
			return nil, fmt.Errorf("proxy %q: want an http://, https:// or socks5:// URL", addr.Redact(opt.Proxy))
		}
		proxy = http.ProxyURL(u)
	}
	var tlsConf *tls.Config
	if opt.CA != "" {
		roots, err := x509.SystemCertPool()
		if err != nil {
			roots = x509.NewCertPool()
		}
		if !roots.AppendCertsFromPEM([]byte(opt.CA)) {
			return nil, errors.New("the CA holds no PEM certificate")
		}
		tlsConf = &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
	}
	d := &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}
	tr := &http.Transport{
		TLSClientConfig:        tlsConf,
		Proxy:                  proxy,
		ForceAttemptHTTP2:      true,
		MaxIdleConns:           100,
		MaxIdleConnsPerHost:    16,
		IdleConnTimeout:        90 * time.Second,
		TLSHandshakeTimeout:    10 * time.Second,
		ResponseHeaderTimeout:  30 * time.Second,
		ExpectContinueTimeout:  time.Second,
		MaxResponseHeaderBytes: maxHeaderBytes,
	}
	return &http.Client{Transport: guarded(tr, d), CheckRedirect: checkRedirect}, nil
}

// checkRedirect allows ten redirects and refuses any from https to http,
// which would send the request, and the file, in the clear.
func checkRedirect(req *http.Request, via []*http.Request) error {
	if len(via) > maxRedirects {
		return fmt.Errorf("%w: more than %d", ErrRedirect, maxRedirects)
	}
	if via[len(via)-1].URL.Scheme == "https" && req.URL.Scheme != "https" {
		return fmt.Errorf("%w: from https to %s", ErrRedirect, req.URL.Scheme)
	}
	return nil
}

// Source is a file on an HTTP(S) mirror. It is safe for concurrent use;
// its Conns share what it learns of the file and where the mirror
// redirects.
type Source struct {
	url    *url.URL // the address in its normal form, with its secrets
	shown  string   // the address redacted: the only one messages show
	client *http.Client
	stall  time.Duration
	header http.Header
	given  Validator

	onDuplicates func([]string, Class)
	reach        Class
	meta4        bool // a Metalink 4 answer is the file (Options.AcceptMetalink)

	mu         sync.Mutex
	media      string // the type of the first successful answer
	final      string // where the last redirect led, "" for nowhere
	finalReach Class  // the reach with which a request went there
	known      bool   // size and recorded hold what the mirror said first
	size       int64
	recorded   Validator
	etag       string         // the strong ETag every answer must match, if any
	file       *identity.File // the pieces its Metalink gives, once fetched
	metaDone   bool           // its Metalink was asked for

	metaMu sync.Mutex // held across the fetch of the Metalink
}

// New returns the source at raw, an http:// or https:// URL.
func New(raw string, opt Options) (*Source, error) {
	a, err := addr.Parse(raw)
	if err != nil {
		return nil, err
	}
	if a.Scheme != addr.HTTP && a.Scheme != addr.HTTPS {
		return nil, fmt.Errorf("source %q: not an http:// or https:// URL", a.Redacted())
	}
	u, err := url.Parse(a.URL)
	if err != nil {
		return nil, fmt.Errorf("source %q: not a URL", a.Redacted())
	}
	base := opt.Client
	if base == nil {
		base = NewClient()
	}
	// A shallow copy shares the transport, and so its connections, while
	// the redirect policy is enforced whoever built the client.
	client := *base
	theirs := base.CheckRedirect
	client.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if err := checkRedirect(req, via); err != nil || theirs == nil {
			return err
		}
		return theirs(req, via)
	}
	s := &Source{url: u, shown: a.Redacted(), client: &client, stall: opt.StallTimeout, header: opt.Header.Clone(), given: opt.Validator,
		onDuplicates: opt.OnDuplicates, reach: opt.Reach, meta4: opt.AcceptMetalink}
	if s.stall <= 0 {
		s.stall = DefaultStallTimeout
	}
	if strongETag(opt.Validator.ETag) {
		s.etag = opt.Validator.ETag
	}
	return s, nil
}

// String returns the address with its secrets hidden: it is what logs
// and statistics show.
func (s *Source) String() string { return s.shown }

// Open returns a connection to the mirror. It sends nothing: the first
// request goes with the first Describe or Fetch.
func (s *Source) Open(ctx context.Context) (*Conn, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return &Conn{src: s}, nil
}

// Validator returns what identified the file the first time the mirror
// described it, for a later run to pass in Options; before that, the one
// given in Options.
func (s *Source) Validator() Validator {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.known && s.recorded != (Validator{}) {
		return s.recorded
	}
	return s.given
}

// MediaType returns the type of the mirror's file as its first
// successful answer gave it (its Content-Type, without parameters, in
// lower case), or "" before any such answer, or when it gave none.
func (s *Source) MediaType() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.media
}

// target returns the address the next request goes to, its reach, and
// whether it is one a redirect led to: that address keeps the reach the
// redirects left, so going back to it straight widens nothing.
func (s *Source) target() (string, Class, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.final != "" {
		return s.final, s.finalReach, true
	}
	return s.url.String(), s.reach, false
}

// remember keeps the address a good answer came from, and the reach with
// which it was asked.
func (s *Source) remember(final *url.URL, reach Class) {
	f := final.String()
	if f == s.url.String() {
		f = ""
	}
	s.mu.Lock()
	s.final, s.finalReach = f, reach
	s.mu.Unlock()
}

// forget drops the remembered address u, unless another connection has
// replaced it already.
func (s *Source) forget(u string) {
	s.mu.Lock()
	if s.final == u {
		s.final = ""
	}
	s.mu.Unlock()
}

// observe checks the size and validator of an answer against what the
// mirror said first, or records them if it is the first to say.
func (s *Source) observe(size int64, v Validator) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.etag != "" && v.ETag != "" && v.ETag != s.etag {
		return fmt.Errorf("%w: ETag %s, was %s", ErrChanged, shown(v.ETag), shown(s.etag))
	}
	if s.known && size != s.size {
		return fmt.Errorf("%w: %d bytes, was %d", ErrChanged, size, s.size)
	}
	if !s.known {
		s.known, s.size, s.recorded = true, size, v
		if s.etag == "" {
			s.etag = v.ETag
		}
	}
	return nil
}

// knownSize returns the file's size if the mirror has said it.
func (s *Source) knownSize() (int64, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.size, s.known
}

// sensitive are the headers a redirect to another site drops, as
// net/http does.
var sensitive = []string{"Authorization", "Www-Authenticate", "Cookie", "Cookie2", "Proxy-Authorization", "Proxy-Authenticate"}

// setHeader writes the headers of a request for bytes [off, off+n) to u.
func (s *Source) setHeader(h http.Header, u *url.URL, off, n int64) {
	for k, vv := range s.header {
		for _, v := range vv {
			h.Add(k, v)
		}
	}
	if !domainOrSubdomain(strings.ToLower(u.Hostname()), strings.ToLower(s.url.Hostname())) {
		for _, k := range sensitive {
			h.Del(k)
		}
	}
	// Compressed, the body would not be the bytes of the range.
	h.Set("Accept-Encoding", "identity")
	h.Set("Range", fmt.Sprintf("bytes=%d-%d", off, off+n-1))
	h.Del("If-Range")
	if v := s.given.ifRange(); v != "" {
		h.Set("If-Range", v)
	}
}

// domainOrSubdomain reports whether host is parent or a name under it.
func domainOrSubdomain(host, parent string) bool {
	return host == parent || (!strings.ContainsAny(host, ":%") && strings.HasSuffix(host, "."+parent))
}
