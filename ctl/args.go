package ctl

import (
	"encoding/hex"
	"flag"
	"fmt"
	"net"
	"net/url"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/idmproject/idm/internal/bytesize"
	"github.com/idmproject/idm/transport/addr"
)

// sourceArgs collects sources given as addresses (idm://host:port, or an
// http:// or https:// URL) or, as
// the seed's client takes them, as one server address (-a) and ports
// (-p) that may follow -p as separate arguments or as a comma list.
type sourceArgs struct {
	addr    string
	ports   []string
	sawP    bool
	sources []string // as given on the command line, in order
	// metalinks are the Metalink files named (add takes one, alone).
	metalinks []string
}

// isMetalink reports whether arg names a Metalink, a file or an http(s)
// URL, by its extension.
func isMetalink(arg string) bool {
	p := arg
	if strings.Contains(arg, "://") {
		u, err := url.Parse(arg)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") {
			return false
		}
		p = u.Path
	}
	ext := strings.ToLower(path.Ext(p))
	return ext == ".meta4" || ext == ".metalink"
}

func (s *sourceArgs) register(fs *flag.FlagSet) {
	fs.StringVar(&s.addr, "a", "", "the servers' `IP` address (or host name)")
	fs.Func("p", "the servers' `PORT`s, as separate arguments or a comma list: -p 9001 9002 9003 or -p 9001,9002,9003", func(v string) error {
		s.sawP = true
		return s.addPorts(v)
	})
}

func (s *sourceArgs) addPorts(v string) error {
	for p := range strings.SplitSeq(v, ",") {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("invalid port %q: want 1..65535", p)
		}
		s.ports = append(s.ports, p)
	}
	return nil
}

// positional takes a non-flag argument: a source, or more ports after -p.
func (s *sourceArgs) positional(arg string) error {
	if isMetalink(arg) {
		s.metalinks = append(s.metalinks, arg)
		return nil
	}
	if strings.Contains(arg, "://") {
		s.sources = append(s.sources, arg)
		return nil
	}
	if s.sawP {
		return s.addPorts(arg)
	}
	return fmt.Errorf("unexpected argument %q", arg)
}

// list returns the sources as idm:// URLs, the -a/-p ones first.
func (s *sourceArgs) list() ([]string, error) {
	switch {
	case s.addr != "" && len(s.ports) == 0:
		return nil, fmt.Errorf("-a needs the servers' ports (-p)")
	case s.addr == "" && len(s.ports) > 0:
		return nil, fmt.Errorf("-p needs the servers' address (-a)")
	}
	raw := make([]string, 0, len(s.ports)+len(s.sources))
	host := strings.TrimSuffix(strings.TrimPrefix(s.addr, "["), "]")
	for _, p := range s.ports {
		raw = append(raw, "idm://"+net.JoinHostPort(host, p))
	}
	raw = append(raw, s.sources...)
	var out []string
	seen := map[string]bool{}
	for _, r := range raw {
		src, err := addr.Parse(r)
		if err != nil {
			return nil, err
		}
		u := src.String()
		if seen[u] {
			return nil, fmt.Errorf("source %s given twice", src.Redacted())
		}
		seen[u] = true
		out = append(out, u)
	}
	return out, nil
}

// parseInterleaved parses flags that may come between positional
// arguments, giving each positional one to pos, in order. Everything
// after "--" is positional.
func parseInterleaved(fs *flag.FlagSet, args []string, pos func(string) error) error {
	onlyOnce(fs)
	for len(args) > 0 {
		if err := fs.Parse(args); err != nil {
			return flagError(fs, err)
		}
		consumed := len(args) - fs.NArg()
		rest := fs.Args()
		if consumed > 0 && args[consumed-1] == "--" {
			for _, a := range rest {
				if err := pos(a); err != nil {
					return usagef(fs, "%v", err)
				}
			}
			return nil
		}
		for len(rest) > 0 && !isFlag(rest[0]) {
			if err := pos(rest[0]); err != nil {
				return usagef(fs, "%v", err)
			}
			rest = rest[1:]
		}
		args = rest
	}
	return nil
}

func isFlag(arg string) bool { return len(arg) > 1 && arg[0] == '-' }

// parseID reads a job ID.
func parseID(fs *flag.FlagSet, s string) (uint64, error) {
	id, err := strconv.ParseUint(strings.TrimPrefix(s, "#"), 10, 64)
	if err != nil || id == 0 {
		return 0, usagef(fs, "invalid job ID %q", s)
	}
	return id, nil
}

// parseIDs reads one or more job IDs.
func parseIDs(fs *flag.FlagSet, args []string) ([]uint64, error) {
	if len(args) == 0 {
		return nil, usagef(fs, "missing job ID")
	}
	ids := make([]uint64, 0, len(args))
	for _, a := range args {
		id, err := parseID(fs, a)
		if err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	return ids, nil
}

// parseRate reads a rate cap in bytes per second: a size as
// bytesize.Parse reads it, or 0, none, off or unlimited for no cap.
func parseRate(s string) (int64, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "0", "none", "off", "unlimited":
		return 0, nil
	}
	return bytesize.Parse(s)
}

// rateFlag is a --limit flag's value.
type rateFlag int64

func (r *rateFlag) String() string { return strconv.FormatInt(int64(*r), 10) }

func (r *rateFlag) Set(s string) error {
	v, err := parseRate(s)
	*r = rateFlag(v)
	return err
}

// parseInterval reads a report interval: seconds ("2", "0.5") or a
// duration ("500ms").
func parseInterval(s string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if err != nil {
		f, ferr := strconv.ParseFloat(s, 64)
		if ferr != nil {
			return 0, fmt.Errorf("invalid interval %q: want seconds, such as 1 or 0.5", s)
		}
		d = time.Duration(f * float64(time.Second))
	}
	if d <= 0 {
		return 0, fmt.Errorf("invalid interval %q: must be more than 0", s)
	}
	return d, nil
}

// absDir makes an output directory absolute, as the daemon wants it.
func absDir(dir string) (string, error) {
	if dir == "" {
		dir = "."
	}
	return filepath.Abs(dir)
}

// parseOneID parses a subcommand's flags and its one argument, a job ID.
func parseOneID(fs *flag.FlagSet, args []string) (uint64, error) {
	if err := parse(fs, args); err != nil {
		return 0, err
	}
	if fs.NArg() != 1 {
		return 0, usagef(fs, "want one job ID")
	}
	return parseID(fs, fs.Arg(0))
}

// contentFlag is a -content flag's value: the BLAKE3 hash, in hex, of
// the only file a job may take.
type contentFlag string

func (c *contentFlag) register(fs *flag.FlagSet) {
	fs.Var(c, "content", "take only the file whose content `HASH` this is (64 hex digits, as idm-server and idmctl status show it)")
}

func (c *contentFlag) String() string { return string(*c) }

func (c *contentFlag) Set(s string) error {
	// The daemon checks it again; this is to say so before asking it.
	h := strings.ToLower(strings.TrimSpace(s))
	if b, err := hex.DecodeString(h); err != nil || len(b) != 32 {
		return fmt.Errorf("not a content hash (64 hex digits): %q", s)
	}
	*c = contentFlag(h)
	return nil
}
