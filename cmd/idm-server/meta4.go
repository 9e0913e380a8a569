package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/idmproject/idm/internal/bytesize"
	"github.com/idmproject/idm/transport"
	"github.com/idmproject/idm/transport/addr"
	"github.com/idmproject/idm/transport/metalink"
)

const meta4UsageText = `usage: idm-server meta4 -f FILE --url URL [--url URL ...]

Prints a Metalink 4 document (.meta4) of FILE on standard output: its name,
size, SHA-256 and the SHA-256 of its pieces, and one <url> per --url, so that
a Metalink client (aria2c, idmctl add) downloads it from every server at once
and checks each piece. The pieces are the segments idm-server cuts FILE
into; FILE's hashes come from the manifest cache when it holds them.

Flags:
  -f FILE             the file (required)
  --url URL           an http:// or https:// URL of FILE; give --url once per
                      server (at least one). idm-server serves its file at
                      http://HOST:PORT/ and at http://HOST:PORT/<name>
  --segment-size SIZE piece length (default: the segment size idm-server
                      gives FILE, 64 KiB..4 MiB)
  --cache-dir DIR     the manifest cache, as when serving
  --no-cache          hash FILE without the cache
  -h, --help          show this help

Example:
  idm-server meta4 -f video.mp4 --url http://10.0.0.1:9001/ --url http://10.0.0.2:9001/ >video.mp4.meta4
`

// meta4Config is a parsed and checked meta4 command line.
type meta4Config struct {
	file    string
	urls    []string // in their normal form
	segSize int64
	cache   cacheConfig
}

// parseMeta4Args reads the command line of idm-server meta4.
func parseMeta4Args(args []string) (*meta4Config, error) {
	fs := flag.NewFlagSet("idm-server meta4", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	once := &onceFlags{vals: map[string]string{}}
	for _, name := range []string{"f", "segment-size", "cache-dir"} {
		once.define(fs, name)
	}
	var urls []string
	fs.Func("url", "", func(v string) error { urls = append(urls, v); return nil })
	var help, noCache bool
	fs.BoolVar(&help, "h", false, "")
	fs.BoolVar(&help, "help", false, "")
	fs.BoolVar(&noCache, "no-cache", false, "")
	if err := fs.Parse(args); err != nil {
		if name, ok := strings.CutPrefix(err.Error(), "flag provided but not defined: -"); ok {
			return nil, fmt.Errorf("unknown flag %s", flagName(name))
		}
		return nil, parseError(err, once)
	}
	if help {
		return nil, errHelp
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q: give the file with -f and each URL with --url", fs.Arg(0))
	}
	c := &meta4Config{file: once.vals["f"]}
	if c.file == "" {
		return nil, errors.New("-f FILE is required")
	}
	if len(urls) == 0 {
		return nil, errors.New("--url is required: one per server that holds the file")
	}
	seen := map[string]bool{}
	for _, u := range urls {
		a, err := addr.Parse(u)
		if err == nil && a.Scheme != addr.HTTP && a.Scheme != addr.HTTPS {
			err = fmt.Errorf("source %q: Metalink clients fetch http:// and https:// URLs only", a.Redacted())
		}
		if err != nil {
			return nil, fmt.Errorf("--url: %w", err)
		}
		if seen[a.URL] {
			return nil, fmt.Errorf("--url %q given twice", a.Redacted())
		}
		seen[a.URL] = true
		c.urls = append(c.urls, a.URL)
	}
	if v := once.vals["segment-size"]; once.given("segment-size") {
		size, err := bytesize.Parse(v)
		if err != nil || size < transport.MinSegmentSize || size > transport.MaxSegmentSize {
			return nil, fmt.Errorf("--segment-size %q: must be %d..%d bytes", v, transport.MinSegmentSize, transport.MaxSegmentSize)
		}
		c.segSize = size
	}
	var err error
	if c.cache, err = parseCache(once.vals["cache-dir"], once.given("cache-dir"), noCache); err != nil {
		return nil, err
	}
	return c, nil
}

// meta4Main runs idm-server meta4 and returns its exit status: 2 for a
// command line that is wrong, 1 for a file that cannot be described.
// Either is said in one line.
func meta4Main(args []string, stdout, stderr io.Writer) int {
	cfg, err := parseMeta4Args(args)
	if errors.Is(err, errHelp) {
		io.WriteString(stdout, meta4UsageText)
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "idm-server meta4: %v (see idm-server meta4 --help)\n", err)
		return 2
	}
	// Only warnings: the document is the output, and the cache is
	// worth a word only when it cannot be used.
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	if err := runMeta4(cfg, stdout, log); err != nil {
		fmt.Fprintln(stderr, "idm-server meta4:", err)
		return 1
	}
	return 0
}

// runMeta4 writes the Metalink cfg asks for to w.
func runMeta4(cfg *meta4Config, w io.Writer, log *slog.Logger) error {
	if err := checkReadable(cfg.file); err != nil {
		return err
	}
	cache, err := openCache(cfg.cache, log)
	if err != nil {
		return fmt.Errorf("--cache-dir: %w", err)
	}
	m, _, err := cache.Manifest(cfg.file, cfg.segSize)
	if err != nil {
		return err
	}
	f, err := m.Metalink(cfg.urls)
	if err != nil {
		return err
	}
	return metalink.Write(w, []metalink.File{f})
}
