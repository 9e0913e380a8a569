package reliability

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/idmproject/idm/daemon/api"
	"github.com/idmproject/idm/internal/proctest"
	"github.com/idmproject/idm/store"
)

// chaosConfig is the size of one form of TestChaos.
type chaosConfig struct {
	size         int      // bytes of the file
	rates        string   // idm-server's --rate, one per server
	servers      int      // virtual servers
	serverEvents int      // stops and starts of servers
	kills        int      // SIGKILLs of idmd
	seeds        []uint64 // the seeds run when IDM_CHAOS_SEED is not set
	deadline     time.Duration
}

var (
	chaosShort = chaosConfig{
		size: 16 << 20, rates: "2M,2M,1M,1M", servers: 4,
		serverEvents: 8, kills: 2, seeds: []uint64{11}, deadline: 2 * time.Minute,
	}
	chaosLong = chaosConfig{
		size: 256 << 20, rates: "8M,6M,6M,4M", servers: 4,
		serverEvents: 30, kills: 5, seeds: []uint64{1, 2, 3, 4, 5}, deadline: 10 * time.Minute,
	}
)

// TestChaos downloads one file from rate-limited servers while a seeded
// schedule stops and starts the servers as crashes would and kills idmd
// with SIGKILL, restarting it on the same state. Whatever the seed, the
// job must end completed by itself, with exactly the original bytes
// under the file's own name and nothing else in the output directory.
//
// IDM_CHAOS_SEED=7 (or a comma list) runs those seeds instead of the
// form's own; a failing run prints its seed and how to replay it.
func TestChaos(t *testing.T) {
	cfg := pick(chaosShort, chaosLong)
	if env := os.Getenv("IDM_CHAOS_SEED"); env != "" {
		cfg.seeds = nil
		for f := range strings.SplitSeq(env, ",") {
			seed, err := strconv.ParseUint(strings.TrimSpace(f), 10, 64)
			if err != nil {
				t.Fatalf("IDM_CHAOS_SEED=%q: want a seed or a comma list of seeds", env)
			}
			cfg.seeds = append(cfg.seeds, seed)
		}
	}
	var runs []chaosResult
	for _, seed := range cfg.seeds {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			r := runChaos(t, cfg, seed)
			t.Logf("seed %d: %s", seed, r)
			runs = append(runs, r)
		})
	}
	var b strings.Builder
	b.WriteString("| seed | stops | starts | all down | kills | time | fetched beyond the size | sent beyond the size | bytes lost |\n|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range runs {
		fmt.Fprintf(&b, "| %d | %d | %d | %d | %d | %.1f s | %s | %s | %d |\n", r.seed, r.stops, r.starts, r.outages, r.kills,
			r.took.Seconds(), mibPercent(r.refetched, r.size), mibPercent(r.oversent, r.size), r.lost)
	}
	t.Logf("%d MiB from %d servers at %s B/s, %d server events and %d kills a seed:\n%s",
		cfg.size>>20, cfg.servers, cfg.rates, cfg.serverEvents, cfg.kills, b.String())
}

func mibPercent(n, of int64) string {
	return fmt.Sprintf("%.1f MiB (%.1f %%)", float64(n)/(1<<20), 100*float64(n)/float64(of))
}

// A chaos schedule is a list of events, each fired once the job has
// verified a fraction of its file, so that it does not depend on the
// machine's speed, and some time after the event before it, so that
// events bunched on one segment still leave each fault some life.
type chaosEvent struct {
	at    float64       // fraction of the file verified; 0 for none
	after time.Duration // least time since the previous event fired
	op    byte          // 'E' stops a server, 'S' starts it, 'K' kills idmd
	srv   int           // the server, from 1, for E and S
	down  time.Duration // for K: how long idmd stays dead
}

func (e chaosEvent) String() string {
	when := fmt.Sprintf("at %5.1f%% +%4dms", 100*e.at, e.after.Milliseconds())
	if e.at == 0 {
		when = fmt.Sprintf("every server down %4dms", e.after.Milliseconds())
	}
	switch e.op {
	case 'K':
		return fmt.Sprintf("%s  kill -9 idmd, restart after %dms", when, e.down.Milliseconds())
	case 'E':
		return fmt.Sprintf("%s  E%d (stop server %d)", when, e.srv, e.srv)
	}
	return fmt.Sprintf("%s  S%d (start server %d)", when, e.srv, e.srv)
}

// chaosSchedule derives a schedule from the seed alone:
//
//   - serverEvents stops and starts, at sorted fractions between 2 % and
//     93 %: a stop when every server is up, a start when none is, and
//     otherwise either, at even odds, but the last server stops only at
//     one chance in four;
//   - when every server is down no progress can come, so the start that
//     ends the outage waits 1 to 4 s instead of a fraction: the job must
//     wait and go on by itself, and no outage outlasts a few seconds;
//   - the schedule never ends with every server down;
//   - kills SIGKILLs of idmd, one in each equal slice of 5 % to 95 %, each
//     restarted after 0.1 to 2 s;
//   - every event but a timed start also waits 0.1 to 0.6 s after the
//     one before it.
func chaosSchedule(seed uint64, servers, serverEvents, kills int) []chaosEvent {
	r := rand.New(rand.NewPCG(seed, 0x1dc4a05))
	gap := func() time.Duration { return time.Duration(100+r.IntN(500)) * time.Millisecond }
	fracs := make([]float64, serverEvents)
	for i := range fracs {
		fracs[i] = 0.02 + 0.91*r.Float64()
	}
	slices.Sort(fracs)
	up := make([]bool, servers)
	for i := range up {
		up[i] = true
	}
	pickServer := func(want bool) int {
		var c []int
		for i, u := range up {
			if u == want {
				c = append(c, i)
			}
		}
		return c[r.IntN(len(c))]
	}
	var evs []chaosEvent
	for i := range serverEvents {
		n := 0
		for _, u := range up {
			if u {
				n++
			}
		}
		stop := false
		switch {
		case n == servers:
			stop = true
		case n == 0:
		case n == 1:
			stop = i < serverEvents-1 && r.IntN(4) == 0
		default:
			stop = r.IntN(2) == 0
		}
		e := chaosEvent{at: fracs[i], after: gap(), op: 'S'}
		if n == 0 {
			e.at, e.after = 0, time.Duration(1000+r.IntN(3000))*time.Millisecond
		}
		if stop {
			e.op = 'E'
		}
		k := pickServer(stop)
		up[k] = !stop
		e.srv = k + 1
		evs = append(evs, e)
	}
	var ks []chaosEvent
	for j := range kills {
		ks = append(ks, chaosEvent{
			at:    0.05 + (float64(j)+r.Float64())*0.90/float64(kills),
			after: gap(), op: 'K',
			down: time.Duration(100+r.IntN(1900)) * time.Millisecond,
		})
	}
	// Merge the kills in by fraction; a timed start stays right behind
	// the stop that took the last server down.
	var out []chaosEvent
	for _, e := range evs {
		for e.at > 0 && len(ks) > 0 && ks[0].at < e.at {
			out, ks = append(out, ks[0]), ks[1:]
		}
		out = append(out, e)
	}
	return append(out, ks...)
}

// chaosResult is what one run did and what it cost.
type chaosResult struct {
	seed                          uint64
	stops, starts, outages, kills int
	took                          time.Duration
	size                          int64
	refetched                     int64 // progress.fetched beyond the file's size
	oversent                      int64 // bytes the servers sent beyond the file's size
	lost                          int64 // bytes of the finished file that differ
}

func (r chaosResult) String() string {
	return fmt.Sprintf("%d stops, %d starts (%d with every server down), %d kills; %.1f s; %d bytes; fetched beyond it %d (%.2f %%), sent beyond it %d (%.2f %%); %d bytes lost",
		r.stops, r.starts, r.outages, r.kills, r.took.Seconds(), r.size,
		r.refetched, 100*float64(r.refetched)/float64(r.size), r.oversent, 100*float64(r.oversent)/float64(r.size), r.lost)
}

// runChaos runs one seed's schedule to the job's end and checks the file.
func runChaos(t *testing.T, cfg chaosConfig, seed uint64) chaosResult {
	sched := chaosSchedule(seed, cfg.servers, cfg.serverEvents, cfg.kills)
	var trace []string // what was fired, when, at what progress
	t.Cleanup(func() {
		if !t.Failed() {
			if testing.Verbose() {
				t.Logf("seed %d fired:\n  %s", seed, strings.Join(trace, "\n  "))
			}
			return
		}
		var b strings.Builder
		for i, e := range sched {
			fmt.Fprintf(&b, "  %2d. %s\n", i+1, e)
		}
		form := ""
		if long {
			form = "IDM_RELIABILITY=long "
		}
		t.Logf("chaos seed %d FAILED. Schedule:\n%sFired:\n  %s\nReplay: %sIDM_CHAOS_SEED=%d go test -count=1 -run 'TestChaos$' -v ./reliability/",
			seed, b.String(), strings.Join(trace, "\n  "), form, seed)
	})

	file, want := proctest.Sample(t, cfg.size, seed)
	srv := proctest.StartServers(t, file, cfg.servers, cfg.rates)
	d := proctest.NewDaemon(t)
	d.Start()
	out := t.TempDir()
	sentBefore := serverWritten(t, srv.Cmd.Process.Pid)
	start := time.Now()
	id := d.Add(out, srv)
	res := chaosResult{seed: seed, size: int64(cfg.size)}
	deadline := start.Add(cfg.deadline)

	// job polls the job's state; it fails the test if the job ended
	// other than completed, or if idmd stopped answering.
	job := func() *api.Job {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		j, err := d.Client().Job(ctx, id)
		if err != nil {
			t.Fatalf("idmd stopped answering: %v", err)
		}
		if j.Done() && j.State != api.StateCompleted {
			t.Fatalf("job %d ended %s: %s", id, j.State, j.LastError)
		}
		return j
	}
	// The counter of fetched bytes is flushed with the bitmap, about once
	// a second, so a kill loses what was counted since: lostCount adds it
	// back, from the API just before each kill and the store just after.
	var lostCount int64
	last := time.Now()
	var j *api.Job
	early := false // the job completed before the schedule's end
events:
	for i, e := range sched {
		for {
			j = job()
			if j.State == api.StateCompleted {
				trace = append(trace, fmt.Sprintf("%6.2fs job completed; events %d.. not fired", time.Since(start).Seconds(), i+1))
				early = true
				break events
			}
			if j.Size > 0 && float64(j.Progress.Verified) >= e.at*float64(j.Size) && time.Since(last) >= e.after {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("event %d (%s) not reached within %v: job %s, %d/%d verified", i+1, e, cfg.deadline, j.State, j.Progress.Verified, j.Size)
			}
			time.Sleep(25 * time.Millisecond)
		}
		trace = append(trace, fmt.Sprintf("%6.2fs %5.1f%% %d. %s", time.Since(start).Seconds(),
			100*float64(j.Progress.Verified)/float64(j.Size), i+1, e))
		switch e.op {
		case 'E':
			srv.Console(t, fmt.Sprintf("E%d", e.srv))
			awaitPort(t, srv.Ports[e.srv-1], false)
			res.stops++
		case 'S':
			srv.Console(t, fmt.Sprintf("S%d", e.srv))
			awaitPort(t, srv.Ports[e.srv-1], true)
			res.starts++
			if e.at == 0 {
				res.outages++
			}
		case 'K':
			before := job()
			d.Kill()
			res.kills++
			lost := before.Progress.Fetched - deadDaemonRecord(t, d.StateDir, id).Fetched
			lostCount += lost
			trace = append(trace, fmt.Sprintf("        the kill lost %d bytes from the fetched counter", lost))
			time.Sleep(e.down)
			d.Start()
			// Nothing verified before the kill may be lost: every
			// verified segment was written to the partial file, and the
			// recheck after an unclean start finds it there. Refetching
			// a segment takes far longer than this wait for the
			// restarted transfer to be past its start (the recheck).
			var after *api.Job
			proctest.WaitFor(t, "the restarted job's progress", 30*time.Second, func() bool {
				after = job()
				return after.State == api.StateCompleted || (after.Progress.Phase != "" && after.Progress.Phase != "starting")
			})
			if after.State != api.StateCompleted && after.Progress.Verified < before.Progress.Verified {
				t.Errorf("kill %d lost verified work: %d bytes verified before it, %d after the restart",
					res.kills, before.Progress.Verified, after.Progress.Verified)
			}
		}
		last = time.Now()
	}

	proctest.WaitFor(t, fmt.Sprintf("job %d to complete", id), time.Until(deadline), func() bool {
		j = job()
		return j.State == api.StateCompleted
	})
	res.took = time.Since(start)
	if !early {
		trace = append(trace, fmt.Sprintf("%6.2fs job completed", res.took.Seconds()))
	}
	if r := d.Idmctl("wait", strconv.FormatUint(id, 10)); r.Code != 0 {
		t.Errorf("idmctl wait on the completed job: exit %d: %s", r.Code, r.Stderr)
	}
	res.refetched = j.Progress.Fetched + lostCount - j.Size
	res.oversent = serverWritten(t, srv.Cmd.Process.Pid) - sentBefore - j.Size
	wantPath := filepath.Join(out, filepath.Base(file))
	if j.Path != wantPath {
		t.Errorf("the job's file is %q, want %q", j.Path, wantPath)
	}
	res.lost = diffSoleFile(t, out, filepath.Base(file), want)
	if res.lost != 0 {
		t.Errorf("%d bytes of the completed file differ from the original", res.lost)
	}
	return res
}

// deadDaemonRecord reads the job's record as a dead idmd left it in its
// store: what the next run starts from. Opening the store does not mark
// it clean, so the next run still sees the unclean shutdown.
func deadDaemonRecord(t *testing.T, stateDir string, id uint64) *store.Record {
	t.Helper()
	db, err := store.Open(filepath.Join(stateDir, "idmd.db"), nil)
	if err != nil {
		t.Fatalf("open idmd's store after the kill: %v", err)
	}
	defer db.Close()
	rec, err := db.Get(id)
	if err != nil {
		t.Fatalf("read job %d from idmd's store: %v", id, err)
	}
	return rec
}

// serverWritten returns how many bytes process pid has written, sendfile
// included: for idm-server, the file data sent to every client, along
// with its few status and log lines.
func serverWritten(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/io", pid))
	if err != nil {
		t.Fatalf("read idm-server's I/O counters: %v", err)
	}
	for l := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "wchar:"); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			if err != nil {
				t.Fatalf("idm-server's wchar %q: %v", v, err)
			}
			return n
		}
	}
	t.Fatalf("no wchar in /proc/%d/io", pid)
	return 0
}

// awaitPort waits until a console command has taken effect: the port
// accepts connections when up, and refuses them when not.
func awaitPort(t *testing.T, port string, up bool) {
	t.Helper()
	what := "server on " + port + " to stop"
	if up {
		what = "server on " + port + " to start"
	}
	proctest.WaitFor(t, what, 10*time.Second, func() bool {
		c, err := net.DialTimeout("tcp", "127.0.0.1:"+port, time.Second)
		if err == nil {
			c.Close()
		}
		return (err == nil) == up
	})
}

// diffSoleFile checks that dir holds exactly one file, name, with no
// partial file or duplicate beside it, and returns how many of its bytes
// differ from want (a length difference counts in full).
func diffSoleFile(t *testing.T, dir, name string, want []byte) int64 {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if len(names) != 1 || names[0] != name {
		t.Errorf("output directory holds %q, want only %q", names, name)
	}
	f, err := os.Open(filepath.Join(dir, name))
	if err != nil {
		t.Fatalf("open the completed file: %v", err)
	}
	defer f.Close()
	var lost, off int64
	buf := make([]byte, 1<<20)
	for {
		n, err := io.ReadFull(f, buf)
		w := want[min(off, int64(len(want))):min(off+int64(n), int64(len(want)))]
		if !bytes.Equal(buf[:n], w) {
			lost += int64(n - len(w))
			for i := range w {
				if buf[i] != w[i] {
					lost++
				}
			}
		}
		off += int64(n)
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			break
		}
		if err != nil {
			t.Fatalf("read the completed file: %v", err)
		}
	}
	if off < int64(len(want)) {
		lost += int64(len(want)) - off
	}
	return lost
}

// The schedule is the seed's alone, and whatever the seed it keeps the
// rules that let every run end: a server stops only when up and starts
// only when down, every outage of all servers ends on a timer of a few
// seconds, the schedule never ends with every server down, and the kills
// are spread over the download.
func TestChaosSchedule(t *testing.T) {
	for _, cfg := range []chaosConfig{chaosShort, chaosLong} {
		outages := 0
		for seed := range uint64(2000) {
			s := chaosSchedule(seed, cfg.servers, cfg.serverEvents, cfg.kills)
			if !slices.Equal(s, chaosSchedule(seed, cfg.servers, cfg.serverEvents, cfg.kills)) {
				t.Fatalf("seed %d: two schedules differ", seed)
			}
			up, at, kills, serverEvents := cfg.servers, 0.0, 0, 0
			down := make([]bool, cfg.servers)
			for i, e := range s {
				bad := func(why string) { t.Fatalf("seed %d, event %d (%s): %s", seed, i+1, e, why) }
				if e.at != 0 {
					if e.at < at {
						bad("fraction goes back")
					}
					at = e.at
				}
				if (up == 0) != (e.at == 0) {
					bad("only the start that ends an outage, and every such start, waits on a timer")
				}
				if e.at == 0 && (e.op != 'S' || e.after < time.Second || e.after > 4*time.Second) {
					bad("an outage must end with a start after 1 to 4 s")
				}
				switch e.op {
				case 'K':
					kills++
					if e.at < 0.05 || e.at > 0.95 {
						bad("kill outside 5 %..95 %")
					}
					if want := 0.05 + float64(kills-1)*0.90/float64(cfg.kills); e.at < want {
						bad("kills are not one per slice")
					}
				case 'E', 'S':
					serverEvents++
					if e.srv < 1 || e.srv > cfg.servers || down[e.srv-1] != (e.op == 'S') {
						bad("stops a server that is down or starts one that is up")
					}
					down[e.srv-1] = e.op == 'E'
					if e.op == 'E' {
						up--
					} else {
						up++
					}
					if up == 0 {
						outages++
					}
				}
			}
			if kills != cfg.kills || serverEvents != cfg.serverEvents {
				t.Fatalf("seed %d: %d kills and %d server events, want %d and %d", seed, kills, serverEvents, cfg.kills, cfg.serverEvents)
			}
			if up == 0 {
				t.Fatalf("seed %d: the schedule ends with every server down", seed)
			}
		}
		if outages == 0 {
			t.Errorf("%d server events: no seed of 2000 ever has every server down", cfg.serverEvents)
		}
		t.Logf("%d server events: %.2f outages of every server per seed", cfg.serverEvents, float64(outages)/2000)
	}
	if slices.Equal(chaosSchedule(1, 4, 30, 5), chaosSchedule(2, 4, 30, 5)) {
		t.Error("seeds 1 and 2 give the same schedule")
	}
}

// A kill -9 of idmd just as the finished file appears under its own name,
// before the job is recorded completed: the restarted idmd must find the
// job done, with the one file, fetching nothing again and publishing no
// second copy. The kill lands in that window only when the test sees the
// name soon enough; the rounds that did are counted.
func TestChaosKillAtPublish(t *testing.T) {
	const size = 8 << 20
	rounds := pick(3, 10)
	landed := 0
	for i := range rounds {
		t.Run(fmt.Sprintf("round=%d", i), func(t *testing.T) {
			file, want := proctest.Sample(t, size, uint64(100+i))
			srv := proctest.StartServers(t, file, 4, "8M")
			d := proctest.NewDaemon(t)
			d.Start()
			out := t.TempDir()
			id := d.Add(out, srv)
			final := filepath.Join(out, filepath.Base(file))
			deadline := time.Now().Add(time.Minute)
			for {
				if _, err := os.Lstat(final); err == nil {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("%s did not appear within a minute", final)
				}
				time.Sleep(100 * time.Microsecond)
			}
			d.Kill()
			sent := serverWritten(t, srv.Cmd.Process.Pid)
			if state := deadDaemonRecord(t, d.StateDir, id).State; state != api.StateCompleted {
				landed++
				t.Logf("killed with the file published and the job still %s in the store", state)
			}
			d.Start()
			var j *api.Job
			proctest.WaitFor(t, "the job to complete", time.Minute, func() bool {
				j = d.Job(id)
				if j.Done() && j.State != api.StateCompleted {
					t.Fatalf("job ended %s: %s", j.State, j.LastError)
				}
				return j.State == api.StateCompleted
			})
			if j.Path != final {
				t.Errorf("the job's file is %q, want %q", j.Path, final)
			}
			if lost := diffSoleFile(t, out, filepath.Base(file), want); lost != 0 {
				t.Errorf("%d bytes of the completed file differ from the original", lost)
			}
			if again := serverWritten(t, srv.Cmd.Process.Pid) - sent; again > size/4 {
				t.Errorf("the servers sent %d bytes more after the restart: the finished file was fetched again", again)
			}
		})
	}
	t.Logf("%d of %d kills landed between the file's publication and the job's record", landed, rounds)
}
