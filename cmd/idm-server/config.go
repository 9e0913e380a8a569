package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/idmproject/idm/internal/bytesize"
	"github.com/idmproject/idm/transport"
)

// config is a parsed and checked command line.
type config struct {
	interval time.Duration
	files    []string // one per server
	ports    []int
	bind     string
	rates    []int64 // one per server, 0 for none
	segSize  int64
	maxConns int
	cache    cacheConfig
}

// cacheConfig says where the manifests of the files are cached.
type cacheConfig struct {
	dir      string // "" for no cache
	explicit bool   // dir was given with --cache-dir, not the default
	noDir    error  // why there is no default directory, if so
}

const usageText = `usage: idm-server -i <status_interval> -n <num_servers> -f <file_location> -p <port> [<port> ...]
       idm-server meta4 -f FILE --url URL [--url URL ...]

Runs n independent virtual servers, each serving its own copy of a file over
the idm protocol and plain HTTP (GET/HEAD with byte ranges) on its own port.
Over HTTP, /<name>.meta4 is a Metalink of the file (its size, SHA-256 and
SHA-256 pieces), and the file's answers give its SHA-256 in Repr-Digest.
idm-server meta4 prints a Metalink of a file held by several servers (see
idm-server meta4 --help).

Flags:
  -i SECONDS          print a status line per server every SECONDS (required, > 0)
  -n N                number of virtual servers (required; equals the number of ports)
  -f FILE             the file to serve (required); give -f n times, or one
                      comma-separated list, to give each server its own copy
  -p PORT [PORT ...]  one port per server, as separate arguments or one
                      comma-separated list (required; distinct, 1..65535)
  --bind ADDR         address to listen on (default: all interfaces)
  --rate RATE         cap each server's sending, in bytes per second: one value
                      for all or a comma list, one per server; K, M, G are powers
                      of 1000, Ki, Mi, Gi of 1024 (e.g. --rate 40M,20M,10M,5M)
  --segment-size SIZE segment size of the manifest (default: from the file
                      size alone, 64 KiB..4 MiB, so servers agree without talking)
  --max-conns N       connections each server accepts at once (default 64)
  --cache-dir DIR     keep each file's hashes in DIR, so that a restart on an
                      unchanged file does not read it again (default:
                      $XDG_CACHE_HOME/idm-server or ~/.cache/idm-server); it
                      must be private to the user; --cache-dir '' keeps none
  --no-cache          hash the files at every start, keeping nothing
  -h, --help          show this help

Console commands (type them on standard input, then Enter):
  E<k>   shut server k down at once, dropping its connections, as a crash would
  S<k>   start server k again on its port

End of standard input stops nothing; SIGINT or SIGTERM stops every server.

Example:
  idm-server -i 5 -n 4 -f video.mp4 -p 9001 9002 9003 9004 --rate 40M,20M,10M,5M
`

// errHelp asks for the usage text and exit status 0.
var errHelp = errors.New("help requested")

// listFlag collects a flag given several times or as a comma list.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }

func (l *listFlag) Set(v string) error {
	*l = append(*l, strings.Split(v, ",")...)
	return nil
}

// errTwice stops parsing at a flag given a second time.
var errTwice = errors.New("given twice")

// onceFlags are the flags that take one value and may be given once; a
// second value would silently win otherwise.
type onceFlags struct {
	vals  map[string]string
	twice string // the first flag given twice
}

func (o *onceFlags) define(fs *flag.FlagSet, name string) {
	fs.Func(name, "", func(v string) error {
		if _, ok := o.vals[name]; ok {
			o.twice = name
			return errTwice
		}
		o.vals[name] = v
		return nil
	})
}

func (o *onceFlags) given(name string) bool {
	_, ok := o.vals[name]
	return ok
}

// parseError turns an error of fs.Parse into idm-server's words: the
// flag package spells every flag with one dash, and says only "parse
// error" of a boolean given a value.
func parseError(err error, once *onceFlags) error {
	switch {
	case errors.Is(err, flag.ErrHelp):
		return errHelp
	case once.twice != "":
		return fmt.Errorf("%s given twice", flagName(once.twice))
	}
	if name, ok := strings.CutPrefix(err.Error(), "flag needs an argument: -"); ok {
		return fmt.Errorf("%s needs a value", flagName(name))
	}
	if strings.HasPrefix(err.Error(), "invalid boolean value") {
		if strings.Contains(err.Error(), " for -no-cache:") {
			return errors.New("--no-cache takes no value")
		}
		return errors.New("-h and --help take no value")
	}
	return err
}

// flagName spells a flag as the usage does: -i, --rate.
func flagName(name string) string {
	if len(name) == 1 {
		return "-" + name
	}
	return "--" + name
}

// parseArgs reads the command line. The ports of -p may follow it as
// separate arguments, so parsing resumes after each run of them. It checks
// the command line alone; whether the files and ports can be used is for
// run to find out, as errors that are not the user's wording.
func parseArgs(args []string) (*config, error) {
	fs := flag.NewFlagSet("idm-server", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	once := &onceFlags{vals: map[string]string{}}
	for _, name := range []string{"i", "n", "bind", "rate", "segment-size", "max-conns", "cache-dir"} {
		once.define(fs, name)
	}
	var files, ports listFlag
	var help, noCache bool
	fs.BoolVar(&noCache, "no-cache", false, "")
	fs.Var(&files, "f", "")
	fs.Var(&ports, "p", "")
	fs.BoolVar(&help, "h", false, "")
	fs.BoolVar(&help, "help", false, "")
	for {
		if err := fs.Parse(args); err != nil {
			return nil, parseError(err, once)
		}
		args = fs.Args()
		if len(args) == 0 {
			break
		}
		if len(ports) == 0 || strings.HasPrefix(args[0], "-") {
			return nil, fmt.Errorf("unexpected argument %q", args[0])
		}
		for len(args) > 0 && !strings.HasPrefix(args[0], "-") {
			ports.Set(args[0])
			args = args[1:]
		}
	}
	if help {
		return nil, errHelp
	}
	for _, req := range []struct {
		name  string
		given bool
	}{
		{"i", once.given("i")}, {"n", once.given("n")}, {"f", len(files) > 0}, {"p", len(ports) > 0},
	} {
		if !req.given {
			return nil, fmt.Errorf("-%s is required", req.name)
		}
	}
	c := &config{bind: once.vals["bind"], maxConns: transport.DefaultMaxConns}
	// A day is the longest interval: beyond, it would overflow a
	// time.Duration long before it made sense.
	iv, err := strconv.ParseFloat(once.vals["i"], 64)
	// A tiny one would round to no time at all, on which the status
	// ticker panics.
	if err != nil || !(iv > 0 && iv <= 86400) || time.Duration(iv*float64(time.Second)) <= 0 {
		return nil, fmt.Errorf("-i %q: must be a number of seconds, more than 0 and at most 86400", once.vals["i"])
	}
	c.interval = time.Duration(iv * float64(time.Second))
	n, err := strconv.Atoi(once.vals["n"])
	if err != nil || n < 1 {
		return nil, fmt.Errorf("-n %q: must be a whole number of servers, at least 1", once.vals["n"])
	}
	used := map[int]bool{}
	for _, p := range ports {
		p = strings.TrimSpace(p)
		if p == "" {
			return nil, fmt.Errorf("-p: an empty port (a stray comma?)")
		}
		v, err := strconv.Atoi(p)
		if err != nil || v < 1 || v > 65535 {
			return nil, fmt.Errorf("port %q: must be a number in 1..65535", p)
		}
		if used[v] {
			return nil, fmt.Errorf("port %d given twice", v)
		}
		used[v] = true
		c.ports = append(c.ports, v)
	}
	if len(c.ports) != n {
		return nil, fmt.Errorf("-n is %d but %d ports were given", n, len(c.ports))
	}
	for _, f := range files {
		if f == "" {
			return nil, fmt.Errorf("-f: an empty file name")
		}
	}
	switch len(files) {
	case 1:
		for range n {
			c.files = append(c.files, files[0])
		}
	case n:
		c.files = files
	default:
		return nil, fmt.Errorf("-f names %d files: give one for all servers or one per server (%d)", len(files), n)
	}
	if c.rates, err = parseRates(once.vals["rate"], n); err != nil {
		return nil, err
	}
	if v := once.vals["segment-size"]; once.given("segment-size") {
		size, err := bytesize.Parse(v)
		if err != nil || size < transport.MinSegmentSize || size > transport.MaxSegmentSize {
			return nil, fmt.Errorf("--segment-size %q: must be %d..%d bytes", v, transport.MinSegmentSize, transport.MaxSegmentSize)
		}
		c.segSize = size
	}
	if v := once.vals["max-conns"]; once.given("max-conns") {
		if c.maxConns, err = strconv.Atoi(v); err != nil || c.maxConns < 1 {
			return nil, fmt.Errorf("--max-conns %q: must be a whole number, at least 1", v)
		}
	}
	if once.given("bind") && net.ParseIP(c.bind) == nil {
		return nil, fmt.Errorf("--bind %q: not an IP address", c.bind)
	}
	if c.cache, err = parseCache(once.vals["cache-dir"], once.given("cache-dir"), noCache); err != nil {
		return nil, err
	}
	return c, nil
}

// parseCache reads --cache-dir and --no-cache.
func parseCache(dir string, given, off bool) (cacheConfig, error) {
	switch {
	case given && off && dir != "":
		return cacheConfig{}, errors.New("--cache-dir and --no-cache: give one or the other")
	case off || given && dir == "":
		return cacheConfig{}, nil
	case given:
		return cacheConfig{dir: dir, explicit: true}, nil
	}
	base, err := os.UserCacheDir()
	if err != nil {
		return cacheConfig{noDir: err}, nil
	}
	return cacheConfig{dir: filepath.Join(base, "idm-server")}, nil
}

// checkReadable reports whether path is a regular file this process can
// open for reading.
func checkReadable(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("-f: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("-f: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("-f: %s is not a regular file", path)
	}
	return nil
}

// parseRates reads --rate: empty, one value for all, or one per server.
func parseRates(s string, n int) ([]int64, error) {
	out := make([]int64, n)
	if s == "" {
		return out, nil
	}
	parts := strings.Split(s, ",")
	if len(parts) != 1 && len(parts) != n {
		return nil, fmt.Errorf("--rate has %d values: give one for all servers or one per server (%d)", len(parts), n)
	}
	for i := range out {
		v, err := bytesize.Parse(parts[min(i, len(parts)-1)])
		if err != nil {
			return nil, fmt.Errorf("--rate: %w", err)
		}
		out[i] = v
	}
	return out, nil
}
