package ctl

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/idmproject/idm/daemon/api"
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
	fs.BoolVar(&h.netrc, "netrc", false, "log in to the HTTP mirrors with the credentials ~/.netrc has for them")
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

// apply puts the options into req, and the credentials ~/.netrc has for
// its mirrors into their addresses.
func (h *httpFlags) apply(req *api.CreateRequest) error {
	var err error
	if req.HTTPOptions, err = h.options(); err != nil {
		return err
	}
	if h.netrc {
		home, err := os.UserHomeDir()
		if err != nil {
			return err
		}
		f, err := os.Open(filepath.Join(home, ".netrc"))
		if err != nil {
			return err
		}
		defer f.Close()
		logins := parseNetrc(f)
		for i, s := range req.Sources {
			req.Sources[i] = withLogin(s, logins)
		}
	}
	return nil
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

// withLogin returns the http(s) source s with the credentials logins has
// for its host (or the default ones) when it has none of its own.
func withLogin(s string, logins map[string]netrcLogin) string {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.User != nil {
		return s
	}
	l, ok := logins[strings.ToLower(u.Hostname())]
	if !ok {
		l, ok = logins[""]
	}
	if !ok || l.login == "" {
		return s
	}
	u.User = url.UserPassword(l.login, l.password)
	return u.String()
}
