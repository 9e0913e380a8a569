// Command idm-server runs n independent virtual servers, each serving its
// own copy of a file over the idm protocol and HTTP. See idm-server --help.
package main

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/idmproject/idm/identity"
	"github.com/idmproject/idm/transport"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "meta4" {
		os.Exit(meta4Main(os.Args[2:], os.Stdout, os.Stderr))
	}
	cfg, err := parseArgs(os.Args[1:])
	if errors.Is(err, errHelp) {
		fmt.Print(usageText)
		return
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "idm-server: %v\n\n%s", err, usageText)
		os.Exit(2)
	}
	if err := run(cfg); err != nil {
		fmt.Fprintln(os.Stderr, "idm-server:", err)
		os.Exit(1)
	}
}

func run(cfg *config) error {
	// What can be found wrong before the files are hashed is said at
	// once, before any log line: hashing a large file takes a while.
	for _, f := range cfg.files {
		if err := checkReadable(f); err != nil {
			return err
		}
	}
	for i, port := range cfg.ports {
		ln, err := net.Listen("tcp", net.JoinHostPort(cfg.bind, strconv.Itoa(port)))
		if err != nil {
			return listenError(i+1, port, err)
		}
		ln.Close()
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	cache, err := openCache(cfg.cache, log)
	if err != nil {
		return fmt.Errorf("--cache-dir: %w", err)
	}
	// Each distinct file is hashed once; the servers sharing it still
	// each open their own copy.
	manifests := map[string]*transport.Manifest{}
	f := &fleet{ports: cfg.ports, log: log}
	for i, path := range cfg.files {
		m := manifests[path]
		if m == nil {
			start := time.Now()
			var cached bool
			if m, cached, err = cache.Manifest(path, cfg.segSize); err != nil {
				return err
			}
			manifests[path] = m
			msg := "hashed file"
			if cached {
				msg = "manifest from cache"
			}
			sha, _ := m.SHA256.Digest(identity.SHA256)
			log.Info(msg, "path", path, "size", m.Size, "segments", len(m.Segments),
				"segment_size", m.SegmentSize, "content", m.Root().String(), "blake3", m.Content.String(),
				"sha256", hex.EncodeToString(sha), "took", time.Since(start).Round(time.Millisecond))
		}
		f.servers = append(f.servers, &transport.Server{
			Addr:     net.JoinHostPort(cfg.bind, strconv.Itoa(cfg.ports[i])),
			Path:     path,
			Manifest: m,
			Rate:     cfg.rates[i],
			MaxConns: cfg.maxConns,
			Logger:   log.With("server", i+1),
		})
	}
	for i, s := range f.servers {
		if err := s.Start(); err != nil {
			for _, s := range f.servers[:i] {
				s.Stop()
			}
			return listenError(i+1, cfg.ports[i], err)
		}
	}
	log.Info("serving", "servers", len(f.servers))

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	go f.console(os.Stdin, os.Stderr)
	tick := time.NewTicker(cfg.interval)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
			f.statusLines(os.Stdout)
		case <-ctx.Done():
			log.Info("stopping")
			sctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			defer cancel()
			var wg sync.WaitGroup
			for _, s := range f.servers {
				wg.Go(func() { s.Shutdown(sctx) })
			}
			wg.Wait()
			return nil
		}
	}
}

// listenError says why server k could not listen on its port.
func listenError(k, port int, err error) error {
	if errors.Is(err, syscall.EADDRINUSE) {
		return fmt.Errorf("server %d: port %d is taken by another program: %w", k, port, err)
	}
	if errors.Is(err, syscall.EADDRNOTAVAIL) {
		return fmt.Errorf("server %d: --bind: no interface of this machine has that address: %w", k, err)
	}
	return fmt.Errorf("server %d: port %d: %w", k, port, err)
}
