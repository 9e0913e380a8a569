package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync"

	"github.com/idmproject/idm/transport"
)

// fleet is the n virtual servers of one idm-server process. Servers are
// numbered from 1, as the console and the status lines show them.
type fleet struct {
	servers []*transport.Server
	ports   []int
	log     *slog.Logger
	mu      sync.Mutex // serialises console commands with each other
}

// statusLines writes one line per server, in the seed's exact format.
func (f *fleet) statusLines(w io.Writer) {
	var b strings.Builder
	for i, s := range f.servers {
		state := "dead"
		if s.Alive() {
			state = "alive"
		}
		fmt.Fprintf(&b, "Server %d: Port: %d Status: %s, To Shutdown Server %d Enter: E%d\n", i+1, f.ports[i], state, i+1, i+1)
	}
	io.WriteString(w, b.String())
}

// command carries out one console line and returns the error to show the
// user, if any.
func (f *fleet) command(line string) error {
	line = strings.TrimSpace(line)
	if line == "" {
		return nil
	}
	op := strings.ToUpper(line[:1])
	k, err := strconv.Atoi(line[1:])
	if (op != "E" && op != "S") || err != nil {
		if len(line) > 40 {
			line = line[:40] + "..."
		}
		return fmt.Errorf("unknown command %q: type E<k> to shut server k down or S<k> to start it", line)
	}
	if k < 1 || k > len(f.servers) {
		return fmt.Errorf("no server %d: servers are numbered 1 to %d", k, len(f.servers))
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	s := f.servers[k-1]
	if op == "E" {
		if !s.Alive() {
			return fmt.Errorf("server %d is already down", k)
		}
		s.Stop()
		f.log.Info("server shut down", "server", k, "port", f.ports[k-1])
		return nil
	}
	if s.Alive() {
		return fmt.Errorf("server %d is already up", k)
	}
	if err := s.Start(); err != nil {
		return fmt.Errorf("start %w", listenError(k, f.ports[k-1], err))
	}
	f.log.Info("server started", "server", k, "port", f.ports[k-1])
	return nil
}

// maxLine bounds a console line; a command is a few bytes.
const maxLine = 4 << 10

// console reads commands from r until it ends. The end of input stops
// nothing: a server run by a service manager has none. A line longer than
// maxLine is skipped with an error, and reading goes on.
func (f *fleet) console(r io.Reader, errw io.Writer) {
	br := bufio.NewReaderSize(r, maxLine)
	for {
		line, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			n := len(line)
			for errors.Is(err, bufio.ErrBufferFull) {
				line, err = br.ReadSlice('\n')
				n += len(line)
			}
			n -= len(line) - len(bytes.TrimRight(line, "\r\n"))
			fmt.Fprintf(errw, "idm-server: console line too long (%d bytes), ignored: type E<k> to shut server k down or S<k> to start it\n", n)
		} else if len(line) > 0 {
			if err := f.command(string(line)); err != nil {
				fmt.Fprintln(errw, "idm-server:", err)
			}
		}
		if err != nil {
			return
		}
	}
}
