package main

import (
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"

	"github.com/idmproject/idm/transport"
)

// Fuzz targets for what idm-server reads: its command line and its
// console. Run one with
//
//	go test -run '^$' -fuzz '^FuzzParseArgs$' -fuzztime 60s ./cmd/idm-server

// FuzzParseArgs parses a command line (the fuzz string, its arguments
// separated by NUL). A configuration it accepts must be one the servers
// can run with: a positive status interval, one distinct valid port, file
// and rate per server, and limits in range. Arguments holding a path
// separator are not tried, so that only the files of this directory are
// ever opened.
func FuzzParseArgs(f *testing.F) {
	for _, args := range [][]string{
		{"-i", "5", "-n", "4", "-f", "main.go", "-p", "9001", "9002", "9003", "9004", "--rate", "40M,20M,10M,5M"},
		{"-i", "0.5", "-n", "2", "-f", "main.go,config.go", "-p", "9001,9002", "--bind", "::1", "--segment-size", "64Ki"},
		{"-i", "1", "-n", "1", "-f", "main.go", "-p", "1", "--max-conns", "1"},
		{"-n", "2", "-p", "1", "1", "-i", "1", "-f", "main.go"},
		{"-h"},
		{},
	} {
		f.Add(strings.Join(args, "\x00"))
	}
	f.Fuzz(func(t *testing.T, line string) {
		if strings.ContainsAny(line, `/\`) {
			return
		}
		c, err := parseArgs(strings.Split(line, "\x00"))
		if err != nil {
			return
		}
		n := len(c.ports)
		seen := map[int]bool{}
		for _, p := range c.ports {
			if p < 1 || p > 65535 || seen[p] {
				t.Fatalf("%q: port %d", line, p)
			}
			seen[p] = true
		}
		switch {
		case c.interval <= 0:
			t.Fatalf("%q: status interval %v", line, c.interval)
		case n < 1 || len(c.files) != n || len(c.rates) != n:
			t.Fatalf("%q: %d ports, %d files, %d rates", line, n, len(c.files), len(c.rates))
		case c.segSize != 0 && (c.segSize < transport.MinSegmentSize || c.segSize > transport.MaxSegmentSize):
			t.Fatalf("%q: segment size %d", line, c.segSize)
		case c.maxConns < 1:
			t.Fatalf("%q: %d connections", line, c.maxConns)
		case c.bind != "" && net.ParseIP(c.bind) == nil:
			t.Fatalf("%q: bind address %q", line, c.bind)
		}
		for _, r := range c.rates {
			if r < 0 {
				t.Fatalf("%q: rate %d", line, r)
			}
		}
	})
}

// FuzzConsole types a line on the console of a fleet of two servers,
// neither started: whatever the line, the console answers with an error
// or does what it says, and never fails.
func FuzzConsole(f *testing.F) {
	for _, s := range []string{"E1", "e2", "S0", "E3", "E-1", "E99999999999999999999", "X1", "", " ", "é1", "E", "S1\n"} {
		f.Add(s)
	}
	fl := &fleet{ports: []int{1, 2}, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	for range fl.ports {
		fl.servers = append(fl.servers, &transport.Server{Addr: "127.0.0.1:0"})
	}
	f.Fuzz(func(t *testing.T, line string) {
		if op := strings.ToUpper(strings.TrimSpace(line)); strings.HasPrefix(op, "S") {
			return // starting a server would listen on the machine
		}
		if err := fl.command(line); err == nil && strings.TrimSpace(line) != "" {
			t.Fatalf("console took %q, but no server of the fleet is running", line)
		}
	})
}
