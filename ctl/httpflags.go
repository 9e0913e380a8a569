package ctl

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/idmproject/idm/daemon/api"
	"github.com/idmproject/idm/transport/addr"
)

// maxCAFile bounds the --ca-file idmctl reads and sends.
const maxCAFile = 1 << 20

// httpFlags are the options of a job's HTTP mirrors, as add and get take
// them.
type httpFlags struct {
	headers   headerList
	userAgent string
	caFile    string
	proxy     string
	netrc     bool
	noDisc    bool
}

func (h *httpFlags) register(fs *flag.FlagSet) {
	fs.Var(&h.headers, "header", "send `NAME: VALUE` to the HTTP mirrors too (a cookie, a token); may be repeated")
	fs.StringVar(&h.userAgent, "user-agent", "", "name the client `AGENT` to the HTTP mirrors")
	fs.StringVar(&h.caFile, "ca-file", "", "trust the certificates in `FILE` (PEM) too, for the https mirrors")
	fs.StringVar(&h.proxy, "proxy", "", "reach the HTTP mirrors through `URL` (http://, https:// or socks5://)")
	fs.BoolVar(&h.netrc, "netrc", false, "log in to the HTTP mirrors with the credentials ~/.netrc has for their hosts (a Metalink's mirrors: never the default entry's)")
	fs.BoolVar(&h.noDisc, "no-discover", false, "do not add the mirrors a mirror announces (Link: rel=duplicate)")
}

// options returns the options, reading the CA file here: idmd never
// opens a file a caller names.
func (h *httpFlags) options() (api.HTTPOptions, error) {
	o := api.HTTPOptions{Headers: h.headers, UserAgent: h.userAgent, Proxy: h.proxy, NoDiscover: h.noDisc}
	if h.caFile != "" {
		b, err := readBounded(h.caFile, maxCAFile)
		if err != nil {
			return o, err
		}
		o.CA = string(b)
	}
	return o, nil
}

// apply puts the options into req and, with --netrc, the credentials
// ~/.netrc has for its sources' hosts (or its default ones: the user
// typed these addresses) into their addresses. For a lone URL that may
// answer with a Metalink, the netrc's machine entries go with the
// request, for the mirrors the Metalink lists.
func (h *httpFlags) apply(req *api.CreateRequest) error {
	var err error
	if req.HTTPOptions, err = h.options(); err != nil {
		return err
	}
	logins, err := h.netrcLogins()
	if err != nil || logins == nil {
		return err
	}
	for i, s := range req.Sources {
		req.Sources[i] = withLogin(s, logins)
	}
	if req.FollowMetalink {
		req.Logins = machineLogins(logins)
	}
	return nil
}

// applyMetalink puts the options into req and, with --netrc, the
// credentials ~/.netrc has for the host of its URL (or its default ones)
// into it, and the netrc's machine entries with the request, for the
// mirrors the Metalink lists.
func (h *httpFlags) applyMetalink(req *api.MetalinkRequest) error {
	var err error
	if req.HTTPOptions, err = h.options(); err != nil {
		return err
	}
	logins, err := h.netrcLogins()
	if err != nil || logins == nil {
		return err
	}
	if req.URL != "" {
		req.URL = withLogin(req.URL, logins)
	}
	req.Logins = machineLogins(logins)
	return nil
}

// netrcLogins reads ~/.netrc, the caller's own, when --netrc was given:
// idmd never reads one. It returns nil without --netrc.
func (h *httpFlags) netrcLogins() (map[string]netrcLogin, error) {
	if !h.netrc {
		return nil, nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return nil, err
	}
	b, err := readBounded(filepath.Join(home, ".netrc"), maxNetrc)
	if err != nil {
		return nil, err
	}
	return parseNetrc(bytes.NewReader(b)), nil
}

// maxNetrc bounds the ~/.netrc idmctl reads.
const maxNetrc = 1 << 20

// machineLogins returns the machine entries of logins, by host, for idmd
// to give the mirrors of those hosts a Metalink lists. The default entry
// is left out: it would go to every host a Metalink's author chose.
func machineLogins(logins map[string]netrcLogin) []api.Login {
	var out []api.Login
	for host, l := range logins {
		if host != "" && l.login != "" {
			out = append(out, api.Login{Host: host, Login: l.login, Password: l.password})
		}
	}
	slices.SortFunc(out, func(a, b api.Login) int { return strings.Compare(a.Host, b.Host) })
	return out
}

// readBounded reads the file at path, refusing one larger than max.
func readBounded(path string, max int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("%s: larger than %d KiB", path, max>>10)
	}
	return b, nil
}

// headerList is a repeatable flag's values.
type headerList []string

func (l *headerList) String() string     { return strings.Join(*l, ", ") }
func (l *headerList) Set(s string) error { *l = append(*l, s); return nil }
func (l *headerList) repeatable()        {}

// netrcLogin is one machine's credentials in ~/.netrc.
type netrcLogin struct{ login, password string }

// parseNetrc reads the machines of a .netrc file (the "default" entry
// under the name ""); macdef bodies are skipped.
func parseNetrc(r io.Reader) map[string]netrcLogin {
	out := map[string]netrcLogin{}
	sc := bufio.NewScanner(r)
	var machine string
	var cur *netrcLogin
	inMacro := false
	for sc.Scan() {
		line := sc.Text()
		if inMacro {
			inMacro = strings.TrimSpace(line) != ""
			continue
		}
		f := strings.Fields(line)
		for i := 0; i < len(f); i++ {
			next := func() string {
				if i+1 < len(f) {
					i++
					return f[i]
				}
				return ""
			}
			switch f[i] {
			case "machine", "default":
				if cur != nil {
					out[machine] = *cur
				}
				machine, cur = "", &netrcLogin{}
				if f[i] == "machine" {
					machine = strings.ToLower(next())
				}
			case "login":
				if cur != nil {
					cur.login = next()
				}
			case "password":
				if cur != nil {
					cur.password = next()
				}
			case "macdef":
				inMacro = true
				i = len(f)
			}
		}
	}
	if cur != nil {
		out[machine] = *cur
	}
	return out
}

// withLogin returns the http(s) source s, as the user typed it, with the
// credentials logins has for its host (or the default ones) when it has
// none of its own.
func withLogin(s string, logins map[string]netrcLogin) string {
	u, err := url.Parse(s)
	if err != nil {
		return s
	}
	l, ok := logins[strings.ToLower(u.Hostname())]
	if !ok {
		l = logins[""]
	}
	return addr.WithLogin(s, l.login, l.password)
}
