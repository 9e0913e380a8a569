package transport

import (
	"sync"
	"testing"
	"time"
)

// TestServer_Rate measures a rate over seconds: it checks that Server.Rate
// is honoured (a correctness check); it is not a speed test. Every server
// and file is made first, then the measurements run in parallel with each
// other, each against its own server, so that nothing else competes for
// the CPU while they run.
func TestServer_Rate(t *testing.T) {
	const (
		rateLimit = 4e6 // bytes per second
		size      = 3 * rateLimit
	)
	checkRate := func(t *testing.T, what string, bytes int, elapsed time.Duration) {
		t.Helper()
		got := float64(bytes) / elapsed.Seconds()
		t.Logf("%s: %d bytes in %v: %.2f MB/s", what, bytes, elapsed.Round(time.Millisecond), got/1e6)
		if got < 0.9*rateLimit || got > 1.1*rateLimit {
			t.Errorf("%s: %.2f MB/s, want %.2f MB/s within 10%%", what, got/1e6, rateLimit/1e6)
		}
	}
	limited := func(s *Server) { s.Rate = rateLimit }

	onePath, oneData := randomFile(t, size, 40)
	one := startServer(t, onePath, limited)
	oneConn := dial(t, addrOf(t, one))

	twoPath, twoData := randomFile(t, size/2, 41)
	two := startServer(t, twoPath, limited)
	twoConns := []*Conn{dial(t, addrOf(t, two)), dial(t, addrOf(t, two))}

	httpPath, httpData := randomFile(t, size, 42)
	httpSrv := startServer(t, httpPath, limited)
	client := httpClient(t)

	t.Run("one idm client", func(t *testing.T) {
		t.Parallel()
		start := time.Now()
		if err := fetchAll(oneConn, one.Manifest, oneData); err != nil {
			t.Fatal(err)
		}
		checkRate(t, "one client", size, time.Since(start))
	})

	t.Run("two idm clients share the rate", func(t *testing.T) {
		t.Parallel()
		errs := make([]error, len(twoConns))
		var wg sync.WaitGroup
		start := time.Now()
		for i, cn := range twoConns {
			wg.Go(func() { errs[i] = fetchAll(cn, two.Manifest, twoData) })
		}
		wg.Wait()
		elapsed := time.Since(start)
		for i, err := range errs {
			if err != nil {
				t.Fatalf("client %d: %v", i, err)
			}
		}
		checkRate(t, "two clients together", 2*len(twoData), elapsed)
	})

	t.Run("HTTP", func(t *testing.T) {
		t.Parallel()
		start := time.Now()
		if err := httpFetch(client, "http://"+addrOf(t, httpSrv)+"/", httpData); err != nil {
			t.Fatal(err)
		}
		checkRate(t, "HTTP GET", size, time.Since(start))
	})
}
