package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

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
}

const usageText = `usage: idm-server -i <status_interval> -n <num_servers> -f <file_location> -p <port> [<port> ...]

Runs n independent virtual servers, each serving its own copy of a file over
the idm protocol and plain HTTP (GET/HEAD with byte ranges) on its own port.

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

// parseArgs reads the command line. The ports of -p may follow it as
// separate arguments, so parsing resumes after each run of them.
func parseArgs(args []string) (*config, error) {
	fs := flag.NewFlagSet("idm-server", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var (
		interval = fs.Float64("i", 0, "")
		n        = fs.Int("n", 0, "")
		bind     = fs.String("bind", "", "")
		rate     = fs.String("rate", "", "")
		segSize  = fs.String("segment-size", "", "")
		maxConns = fs.Int("max-conns", transport.DefaultMaxConns, "")
		files    listFlag
		ports    listFlag
		help     bool
	)
	fs.Var(&files, "f", "")
	fs.Var(&ports, "p", "")
	fs.BoolVar(&help, "h", false, "")
	fs.BoolVar(&help, "help", false, "")
	seen := map[string]bool{}
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, errHelp
			}
			return nil, err
		}
		fs.Visit(func(f *flag.Flag) { seen[f.Name] = true })
		args = fs.Args()
		if len(args) == 0 {
			break
		}
		if !seen["p"] || strings.HasPrefix(args[0], "-") {
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
	for _, name := range []string{"i", "n", "f", "p"} {
		if !seen[name] {
			return nil, fmt.Errorf("-%s is required", name)
		}
	}
	c := &config{bind: *bind, maxConns: *maxConns}
	// A tiny interval rounds to 0 and a huge or NaN one overflows; the
	// status ticker panics on either.
	c.interval = time.Duration(*interval * float64(time.Second))
	if !(*interval > 0 && *interval < math.MaxInt64/float64(time.Second)) || c.interval <= 0 {
		return nil, fmt.Errorf("-i must be a positive number of seconds, at least a nanosecond, not %v", *interval)
	}
	if *n < 1 {
		return nil, fmt.Errorf("-n must be at least 1, not %d", *n)
	}
	if len(ports) != *n {
		return nil, fmt.Errorf("-n is %d but %d ports were given", *n, len(ports))
	}
	used := map[int]bool{}
	for _, p := range ports {
		v, err := strconv.Atoi(strings.TrimSpace(p))
		if err != nil || v < 1 || v > 65535 {
			return nil, fmt.Errorf("port %q: must be a number in 1..65535", p)
		}
		if used[v] {
			return nil, fmt.Errorf("port %d given twice", v)
		}
		used[v] = true
		c.ports = append(c.ports, v)
	}
	switch len(files) {
	case 1:
		for range *n {
			c.files = append(c.files, files[0])
		}
	case *n:
		c.files = files
	default:
		return nil, fmt.Errorf("-f names %d files: give one for all servers or one per server (%d)", len(files), *n)
	}
	for _, f := range c.files {
		if err := checkReadable(f); err != nil {
			return nil, err
		}
	}
	var err error
	if c.rates, err = parseRates(*rate, *n); err != nil {
		return nil, err
	}
	if *segSize != "" {
		v, err := transport.ParseBytes(*segSize)
		if err != nil || v < transport.MinSegmentSize || v > transport.MaxSegmentSize {
			return nil, fmt.Errorf("--segment-size %q: must be %d..%d bytes", *segSize, transport.MinSegmentSize, transport.MaxSegmentSize)
		}
		c.segSize = v
	}
	if c.maxConns < 1 {
		return nil, fmt.Errorf("--max-conns must be at least 1")
	}
	if c.bind != "" && net.ParseIP(c.bind) == nil {
		return nil, fmt.Errorf("--bind %q: not an IP address", c.bind)
	}
	return c, nil
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
		v, err := transport.ParseBytes(parts[min(i, len(parts)-1)])
		if err != nil {
			return nil, fmt.Errorf("--rate: %w", err)
		}
		out[i] = v
	}
	return out, nil
}
