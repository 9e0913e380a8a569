//go:build linux

package engine

// The engine's benchmarks, whose figures the README reports. They measure
// wall-clock time and memory over real loopback sockets and real files,
// so each iteration is one whole download: run them with -benchtime 1x
// and -count N and take medians, as scripts/bench.sh does. Every figure
// is a custom metric; ns/op is suppressed because setup is not part of
// any of them.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/idmproject/idm/store"
	"github.com/idmproject/idm/transport"
)

// Environment variables the benchmarks read.
const (
	// envBenchDir names a directory where the benchmarks' random files
	// are kept between runs (bench-<size>.bin). Unset, each benchmark
	// makes its files in its own temporary directory.
	envBenchDir = "IDM_BENCH_DIR"
	// envHelperDir and envHelperSources make TestBenchHelperDownload, run
	// as a child process by BenchmarkEngine_PeakRSS, download from the
	// comma-separated idm:// sources into the directory.
	envHelperDir     = "IDM_BENCH_HELPER_DIR"
	envHelperSources = "IDM_BENCH_HELPER_SOURCES"
)

const (
	gib = 1 << 30
	mib = 1 << 20
)

// benchManifests caches each benchmark file's manifest by path, so a
// benchmark run -count times hashes its file once.
var benchManifests sync.Map

// benchFile returns the path and manifest of a file of size random bytes.
func benchFile(b *testing.B, size int64) (string, *transport.Manifest) {
	b.Helper()
	dir := os.Getenv(envBenchDir)
	if dir == "" {
		dir = b.TempDir()
	}
	path := filepath.Join(dir, fmt.Sprintf("bench-%d.bin", size))
	fi, err := os.Stat(path)
	if err != nil || fi.Size() != size {
		if err := writeRandom(path, size); err != nil {
			b.Fatal(err)
		}
		if fi, err = os.Stat(path); err != nil {
			b.Fatal(err)
		}
	}
	if v, ok := benchManifests.Load(path); ok {
		if m := v.(*transport.Manifest); m.Size == fi.Size() && m.ModTime.Equal(fi.ModTime()) {
			return path, m
		}
	}
	m, err := transport.BuildManifest(path, 0)
	if err != nil {
		b.Fatal(err)
	}
	benchManifests.Store(path, m)
	return path, m
}

// writeRandom writes size random bytes to path, through a temporary name
// so an interrupted run leaves no short file behind.
func writeRandom(path string, size int64) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	r := rand.NewChaCha8([32]byte{byte(size), byte(size >> 8), byte(size >> 16), byte(size >> 24)})
	buf := make([]byte, mib)
	for left := size; left > 0; left -= int64(len(buf)) {
		buf = buf[:min(left, int64(len(buf)))]
		r.Read(buf)
		if _, err := f.Write(buf); err != nil {
			f.Close()
			return err
		}
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// benchServers starts one in-process server per rate (0: unlimited) on
// loopback, all serving path.
func benchServers(b *testing.B, path string, m *transport.Manifest, rates ...int64) []*transport.Server {
	b.Helper()
	var out []*transport.Server
	for _, r := range rates {
		out = append(out, startServer(b, path, m, r))
	}
	return out
}

// benchTransfer makes a store (in a new directory if dbPath is empty), a
// job downloading from servers into a new directory, and a Transfer for
// it with the daemon's defaults, logging to the returned finishTimer.
func benchTransfer(b *testing.B, dbPath string, servers []*transport.Server) (*store.DB, *Transfer, *finishTimer) {
	b.Helper()
	db := openDB(b, dbPath)
	rec := newJob(b, db, serverSources(servers...))
	ft := new(finishTimer)
	tr := newTransfer(b, db, rec.ID, 0)
	tr.Logger = slog.New(ft)
	return db, tr, ft
}

// finishTimer is a log handler that keeps the finish_took of the
// engine's "download complete" line: the time from the last piece
// verified to the file published, spent on the sync and giving the file
// its name. It drops everything else.
type finishTimer struct{ took atomic.Int64 }

// seconds returns the last finish_took seen, or 0.
func (h *finishTimer) seconds() float64 { return time.Duration(h.took.Load()).Seconds() }

func (h *finishTimer) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelInfo }

func (h *finishTimer) Handle(_ context.Context, r slog.Record) error {
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "finish_took" && a.Value.Kind() == slog.KindDuration {
			h.took.Store(int64(a.Value.Duration()))
			return false
		}
		return true
	})
	return nil
}

func (h *finishTimer) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *finishTimer) WithGroup(string) slog.Handler      { return h }

// finished checks the job completed with a file of the expected size,
// then deletes the file so the next download starts on an empty disk.
// The engine itself verified every piece.
func finished(b *testing.B, db *store.DB, id uint64, size int64) {
	b.Helper()
	rec, err := db.Get(id)
	if err != nil {
		b.Fatal(err)
	}
	if rec.Path == "" {
		b.Fatalf("job not published (last error %q)", rec.LastError)
	}
	fi, err := os.Stat(rec.Path)
	if err != nil {
		b.Fatal(err)
	}
	if fi.Size() != size {
		b.Fatalf("downloaded %d bytes, want %d", fi.Size(), size)
	}
	os.Remove(rec.Path)
}

// sentBeyond returns how many bytes the servers sent beyond size: what a
// download of size bytes fetched more than once, or lost.
func sentBeyond(servers []*transport.Server, size int64) int64 {
	var sent int64
	for _, s := range servers {
		sent += s.BytesSent()
	}
	return sent - size
}

// warmedUp is set once BenchmarkEngine_Unlimited has run its untimed
// warm-up downloads in this process.
var warmedUp bool

// BenchmarkEngine_Unlimited downloads 1 GiB from four unthrottled
// servers, from Run's start to the verified file under its final name,
// and has curl fetch the same file over HTTP from one of the same servers
// onto the same disk. Each iteration runs engine, curl, curl, engine, so
// that neither side always goes first, and reports each side's speed over
// its two downloads. The engine's time includes making the file durable
// (it syncs it); curl's does not, so curl+sync-MB/s adds the time an
// fsync of curl's file takes afterwards.
func BenchmarkEngine_Unlimited(b *testing.B) {
	if _, err := exec.LookPath("curl"); err != nil {
		b.Skip("needs curl")
	}
	path, m := benchFile(b, gib)
	srv := benchServers(b, path, m, 0, 0, 0, 0)
	url := "http://" + srv[0].Addr + "/" + m.Name
	// engine downloads once, into a new directory on the same disk, and
	// returns the seconds taken and those spent after the last segment
	// was verified.
	engine := func() (took, finish float64) {
		db, tr, ft := benchTransfer(b, "", srv)
		start := time.Now()
		if err := tr.Run(context.Background()); err != nil {
			b.Fatal(err)
		}
		took = time.Since(start).Seconds()
		finished(b, db, tr.Job.ID, m.Size)
		return took, ft.seconds()
	}
	curl := func(dir string) (took, sync float64) {
		return curlFetch(b, url, filepath.Join(dir, "curl.bin"), m.Size)
	}
	if !warmedUp {
		// The first gigabyte a process writes is much slower than the
		// next on the virtual machines this runs on (the host backs
		// fresh guest pages on first touch): spend it on neither side.
		engine()
		curl(b.TempDir())
		warmedUp = true
	}
	var idm, base, synced, ratio, ratioSynced, finish float64
	for b.Loop() {
		dir := b.TempDir()
		e1, f1 := engine()
		c1, s1 := curl(dir)
		c2, s2 := curl(dir)
		e2, f2 := engine()
		mbps := func(secs float64) float64 { return 2 * float64(m.Size) / secs / 1e6 }
		e, c, cs := mbps(e1+e2), mbps(c1+c2), mbps(c1+s1+c2+s2)
		idm, base, synced = idm+e, base+c, synced+cs
		ratio, ratioSynced, finish = ratio+e/c, ratioSynced+e/cs, finish+(f1+f2)/2
	}
	n := float64(b.N)
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(idm/n, "idm-MB/s")
	b.ReportMetric(base/n, "curl-MB/s")
	b.ReportMetric(synced/n, "curl+sync-MB/s")
	b.ReportMetric(ratio/n, "idm/curl")
	b.ReportMetric(ratioSynced/n, "idm/curl+sync")
	b.ReportMetric(finish/n, "finish-s")
}

// curlFetch has curl download url to out and returns the seconds it
// took, from curl's own speed, and then the seconds an fsync of out took;
// then it deletes out. The engine syncs what it downloads; curl does not,
// and the sync puts both on the same footing for the download after.
func curlFetch(b *testing.B, url, out string, size int64) (took, sync float64) {
	b.Helper()
	cmd := exec.Command("curl", "-sS", "--fail", "-o", out, "-w", "%{size_download} %{speed_download}", url)
	cmd.Stderr = os.Stderr
	res, err := cmd.Output()
	if err != nil {
		b.Fatalf("curl %s: %v", url, err)
	}
	defer os.Remove(out)
	var n int64
	var speed float64
	if _, err := fmt.Sscan(string(res), &n, &speed); err != nil || n != size || speed <= 0 {
		b.Fatalf("curl %s: got %q, want %d bytes", url, res, size)
	}
	f, err := os.Open(out)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	start := time.Now()
	if err := f.Sync(); err != nil {
		b.Fatal(err)
	}
	return float64(size) / speed, time.Since(start).Seconds()
}

// Rates of the throttled benchmarks, bytes per second.
var benchRates = []int64{40e6, 20e6, 10e6, 5e6}

const rateFileSize = 300e6

// BenchmarkEngine_RateLimited downloads 300 MB from four servers held to
// 40, 20, 10 and 5 MB/s and compares the time with the ideal: the size
// over the sum of the rates.
func BenchmarkEngine_RateLimited(b *testing.B) {
	path, m := benchFile(b, rateFileSize)
	var sum int64
	for _, r := range benchRates {
		sum += r
	}
	ideal := float64(m.Size) / float64(sum)
	var elapsed, finish, dup float64
	for b.Loop() {
		srv := benchServers(b, path, m, benchRates...)
		db, tr, ft := benchTransfer(b, "", srv)
		start := time.Now()
		if err := tr.Run(context.Background()); err != nil {
			b.Fatal(err)
		}
		elapsed += time.Since(start).Seconds()
		finished(b, db, tr.Job.ID, m.Size)
		finish += ft.seconds()
		for _, s := range srv {
			s.Stop()
		}
		dup += float64(sentBeyond(srv, m.Size))
	}
	n := float64(b.N)
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(elapsed/n, "s")
	b.ReportMetric(ideal, "ideal-s")
	b.ReportMetric(elapsed/n/ideal, "elapsed/ideal")
	b.ReportMetric(finish/n, "finish-s")
	b.ReportMetric(100*dup/n/float64(m.Size), "sent-twice-%")
}

// lostServer is the index in benchRates of the server
// BenchmarkEngine_ServerLost stops: the 20 MB/s one.
const lostServer = 1

// BenchmarkEngine_ServerLost is BenchmarkEngine_RateLimited with the
// 20 MB/s server stopped, as a crash would, once 30 % of the file is
// verified. The ideal is the time taken to that point plus what was left
// to verify over the sum of the surviving servers' rates.
func BenchmarkEngine_ServerLost(b *testing.B) {
	path, m := benchFile(b, rateFileSize)
	var rest int64
	for i, r := range benchRates {
		if i != lostServer {
			rest += r
		}
	}
	var elapsed, ideal, finish, dup float64
	for b.Loop() {
		srv := benchServers(b, path, m, benchRates...)
		db, tr, ft := benchTransfer(b, "", srv)
		start := time.Now()
		wait := runTransfer(b, context.Background(), tr)
		var verified int64
		waitFor(b, "30 % verified", time.Minute, func() bool {
			verified = tr.Progress().Verified
			return verified >= m.Size*3/10
		})
		srv[lostServer].Stop()
		at := time.Since(start).Seconds()
		if err := wait(); err != nil {
			b.Fatal(err)
		}
		el := time.Since(start).Seconds()
		finished(b, db, tr.Job.ID, m.Size)
		finish += ft.seconds()
		for _, s := range srv {
			s.Stop()
		}
		dup += float64(sentBeyond(srv, m.Size))
		elapsed += el
		ideal += at + float64(m.Size-verified)/float64(rest)
	}
	n := float64(b.N)
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(elapsed/n, "s")
	b.ReportMetric(ideal/n, "ideal-s")
	b.ReportMetric(elapsed/ideal, "elapsed/ideal")
	b.ReportMetric(finish/n, "finish-s")
	b.ReportMetric(100*dup/n/float64(m.Size), "sent-twice-%")
}

// crashRate holds each of BenchmarkEngine_CrashRestart's servers to
// 100 MB/s, so the crash lands at half way whatever the machine's speed.
const crashRate = 100e6

// BenchmarkEngine_CrashRestart downloads 1 GiB from four servers, stops
// the engine at half way without a flush, as a killed process would,
// restarts it from the store and the partial file, and counts what the
// servers sent beyond the file's size: the bytes fetched twice.
func BenchmarkEngine_CrashRestart(b *testing.B) {
	path, m := benchFile(b, gib)
	var again, crashedAt float64
	for b.Loop() {
		srv := benchServers(b, path, m, crashRate, crashRate, crashRate, crashRate)
		dbPath := filepath.Join(b.TempDir(), "state.db")
		db, tr, _ := benchTransfer(b, dbPath, srv)
		wait := runTransfer(b, context.Background(), tr)
		var verified int64
		waitFor(b, "half verified", time.Minute, func() bool {
			verified = tr.Progress().Verified
			return verified >= m.Size/2
		})
		tr.crash()
		if err := wait(); !errors.Is(err, errCrash) {
			b.Fatalf("crashed Run = %v", err)
		}
		db.Close() // no MarkClean: the next open sees an unclean shutdown

		db = openDB(b, dbPath)
		tr2 := newTransfer(b, db, tr.Job.ID, 0)
		tr2.Job.Recheck = !db.WasClean()
		if !tr2.Job.Recheck {
			b.Fatal("store reports a clean shutdown after a crash")
		}
		if err := tr2.Run(context.Background()); err != nil {
			b.Fatal(err)
		}
		finished(b, db, tr.Job.ID, m.Size)
		for _, s := range srv {
			s.Stop()
		}
		again += float64(sentBeyond(srv, m.Size))
		crashedAt += float64(verified) / float64(m.Size)
	}
	n := float64(b.N)
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(again/n/mib, "refetched-MiB")
	b.ReportMetric(100*again/n/float64(m.Size), "refetched-%")
	b.ReportMetric(100*crashedAt/n, "crash-at-%")
}

// BenchmarkEngine_PeakRSS measures the peak resident memory of a process
// that runs only the engine, downloading from four unthrottled servers
// that run in this one: it re-executes the test binary to run
// TestBenchHelperDownload.
func BenchmarkEngine_PeakRSS(b *testing.B) {
	for _, size := range []int64{gib, 256 * mib} {
		b.Run(fmt.Sprintf("%dMiB", size/mib), func(b *testing.B) {
			path, m := benchFile(b, size)
			srv := benchServers(b, path, m, 0, 0, 0, 0)
			var hwm, speed float64
			for b.Loop() {
				dir := b.TempDir()
				cmd := exec.Command(os.Args[0], "-test.run=^TestBenchHelperDownload$", "-test.count=1", "-test.timeout=5m")
				cmd.Env = append(os.Environ(),
					envHelperDir+"="+dir,
					envHelperSources+"="+strings.Join(serverSources(srv...), ","))
				cmd.Stderr = os.Stderr
				out, err := cmd.Output()
				if err != nil {
					b.Fatalf("helper process: %v\n%s", err, out)
				}
				child, took := helperReport(b, out)
				if fi, err := os.Stat(filepath.Join(dir, m.Name)); err != nil || fi.Size() != m.Size {
					b.Fatalf("helper did not leave a %d-byte file: %v", m.Size, err)
				}
				os.Remove(filepath.Join(dir, m.Name))
				// The child reports its own VmHWM: the Maxrss of its
				// rusage is no use, as os/exec starts it with vfork and
				// the kernel counts this process's peak up to the exec.
				hwm += float64(child) / 1024
				speed += float64(m.Size) / took.Seconds() / 1e6
			}
			n := float64(b.N)
			b.ReportMetric(0, "ns/op")
			b.ReportMetric(hwm/n, "peak-RSS-MiB")
			b.ReportMetric(speed/n, "MB/s")
		})
	}
}

// helperReport reads the lines TestBenchHelperDownload prints.
func helperReport(b *testing.B, out []byte) (vmhwmKiB int64, took time.Duration) {
	b.Helper()
	var gotHWM, gotTook bool
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 2 {
			continue
		}
		switch f[0] {
		case "bench-vmhwm-kib":
			vmhwmKiB, _ = strconv.ParseInt(f[1], 10, 64)
			gotHWM = true
		case "bench-took":
			took, _ = time.ParseDuration(f[1])
			gotTook = true
		}
	}
	if !gotHWM || !gotTook || took <= 0 {
		b.Fatalf("helper process printed no report:\n%s", out)
	}
	return vmhwmKiB, took
}

// TestBenchHelperDownload is not a test: BenchmarkEngine_PeakRSS runs it
// in a child process, so the memory measured is the engine's alone. It
// downloads the job its environment describes and prints its own peak
// resident memory.
func TestBenchHelperDownload(t *testing.T) {
	dir := os.Getenv(envHelperDir)
	if dir == "" {
		t.Skip("run by BenchmarkEngine_PeakRSS only")
	}
	db, err := store.Open(filepath.Join(dir, "state.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rec := &store.Record{Sources: strings.Split(os.Getenv(envHelperSources), ","), Dir: dir, State: "queued"}
	if err := db.Create(rec, nil); err != nil {
		t.Fatal(err)
	}
	tr := newTransfer(t, db, rec.ID, 0)
	start := time.Now()
	if err := tr.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	hwm, err := vmHWM()
	if err != nil {
		t.Fatal(err)
	}
	fmt.Printf("bench-vmhwm-kib %d\nbench-took %s\n", hwm, took)
}

// vmHWM returns this process's peak resident set size in KiB.
func vmHWM() (int64, error) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(string(b)) {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			return strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
		}
	}
	return 0, errors.New("no VmHWM in /proc/self/status")
}
