package ctl

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/idmproject/idm/daemon/api"
)

// getDaemon is a fake daemon that creates job 5 and streams events for
// it: the given ones, or else the job completed at once.
func getDaemon(t *testing.T, events ...api.Event) *fakeDaemon {
	d := newFakeDaemon(t)
	d.reply("POST /v1/jobs", 201, testJob(5, api.StateQueued))
	if len(events) == 0 {
		events = []api.Event{stateEvent(progressed(testJob(5, api.StateCompleted), t0, 300, 100, 200))}
	}
	d.stream("GET /v1/jobs/5/events", events...)
	return d
}

func TestGet_Args(t *testing.T) {
	dir := t.TempDir()
	cwd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		want api.CreateRequest
	}{
		{
			name: "ports as separate arguments",
			args: []string{"-i", "1", "-o", dir, "-a", "127.0.0.1", "-p", "9001", "9002", "9003"},
			want: api.CreateRequest{Sources: []string{"idm://127.0.0.1:9001", "idm://127.0.0.1:9002", "idm://127.0.0.1:9003"}, Dir: dir},
		},
		{
			name: "ports as a comma list",
			args: []string{"-p", "9001,9002", "-a", "127.0.0.1", "-o", dir, "-i", "1"},
			want: api.CreateRequest{Sources: []string{"idm://127.0.0.1:9001", "idm://127.0.0.1:9002"}, Dir: dir},
		},
		{
			name: "flags after the ports, -r resumes",
			args: []string{"-a", "127.0.0.1", "-p", "9001", "9002", "-o", dir, "-i", "1", "-r"},
			want: api.CreateRequest{Sources: []string{"idm://127.0.0.1:9001", "idm://127.0.0.1:9002"}, Dir: dir, Resume: true},
		},
		{
			name: "-r first, IPv6",
			args: []string{"-r", "-i", "1", "-o", dir, "-a", "::1", "-p", "9001"},
			want: api.CreateRequest{Sources: []string{"idm://[::1]:9001"}, Dir: dir, Resume: true},
		},
		{
			name: "-p twice, interval in fractions",
			args: []string{"-i", "0.5", "-o", dir, "-a", "10.0.0.1", "-p", "9001", "-p", "9002,9003"},
			want: api.CreateRequest{Sources: []string{"idm://10.0.0.1:9001", "idm://10.0.0.1:9002", "idm://10.0.0.1:9003"}, Dir: dir},
		},
		{
			name: "named",
			args: []string{"-i", "1", "-o", dir, "--name", "f.iso", "-a", "10.0.0.1", "-p", "9001"},
			want: api.CreateRequest{Sources: []string{"idm://10.0.0.1:9001"}, Dir: dir, Name: "f.iso"},
		},
		{
			name: "relative directory made absolute",
			args: []string{"-i", "1", "-o", ".", "-a", "10.0.0.1", "-p", "9001"},
			want: api.CreateRequest{Sources: []string{"idm://10.0.0.1:9001"}, Dir: cwd},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := getDaemon(t)
			r := run(t, d, append([]string{"get"}, tt.args...)...)
			if r.code != 0 {
				t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
			}
			reqs := d.requests()
			if len(reqs) != 1 || reqs[0].Method != "POST" || reqs[0].Path != "/v1/jobs" {
				t.Fatalf("daemon got %q, want one POST /v1/jobs", reqs)
			}
			var got api.CreateRequest
			if err := json.Unmarshal([]byte(reqs[0].Body), &got); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("created %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestGet_Usage(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name string
		args []string
		msg  string
	}{
		{"no flags", nil, "missing the servers (-a IP -p PORT ...)"},
		{"no -i", []string{"-o", dir, "-a", "127.0.0.1", "-p", "9001"}, "missing the report interval (-i SECONDS)"},
		{"no -o", []string{"-i", "1", "-a", "127.0.0.1", "-p", "9001"}, "missing the output directory (-o DIR)"},
		{"no -a", []string{"-i", "1", "-o", dir, "-p", "9001"}, "-p needs the servers' address (-a)"},
		{"no -p", []string{"-i", "1", "-o", dir, "-a", "127.0.0.1"}, "-a needs the servers' ports (-p)"},
		{"bad port", []string{"-i", "1", "-o", dir, "-a", "127.0.0.1", "-p", "9001", "70000"}, `invalid port "70000": want 1..65535`},
		{"port before -p", []string{"-i", "1", "9001", "-o", dir, "-a", "127.0.0.1", "-p", "9002"}, `unexpected argument "9001"`},
		{"bad interval", []string{"-i", "soon", "-o", dir, "-a", "127.0.0.1", "-p", "9001"}, `invalid value "soon" for flag -i: invalid interval "soon": want seconds, such as 1 or 0.5`},
		{"zero interval", []string{"-i", "0", "-o", dir, "-a", "127.0.0.1", "-p", "9001"}, `invalid value "0" for flag -i: invalid interval "0": must be more than 0`},
		{"unknown flag", []string{"-x"}, "flag provided but not defined: -x"},
		{"same port twice", []string{"-i", "1", "-o", dir, "-a", "127.0.0.1", "-p", "9001,9001"}, "source idm://127.0.0.1:9001 given twice"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := getDaemon(t)
			r := run(t, d, append([]string{"get"}, tt.args...)...)
			if r.code != ExitUsage {
				t.Errorf("exit %d, want %d", r.code, ExitUsage)
			}
			first, rest, _ := strings.Cut(r.stderr, "\n")
			if want := "idmctl get: " + tt.msg; first != want {
				t.Errorf("first line %q, want %q", first, want)
			}
			if !strings.HasPrefix(rest, "\nusage: idmctl get [-r] [--content HASH] -i SECONDS -o DIR -a IP -p PORT [PORT ...]\n") || !strings.Contains(rest, "  -p PORT") {
				t.Errorf("no usage after the message:\n%s", rest)
			}
			if r.stdout != "" {
				t.Errorf("stdout %q", r.stdout)
			}
			if reqs := d.requests(); len(reqs) != 0 {
				t.Errorf("daemon got %q", reqs)
			}
		})
	}
}

func TestGet_Report_AtTheEnd(t *testing.T) {
	j := testJob(5, api.StateDownloading)
	done := testJob(5, api.StateCompleted)
	tests := []struct {
		name   string
		events []api.Event
		want   string
	}{
		{
			name: "slow",
			events: []api.Event{
				stateEvent(progressed(j, t0, 300, 0, 0)),
				progressEvent(progressed(j, t0.Add(500*time.Millisecond), 300, 50, 100)),
				stateEvent(progressed(done, t0.Add(time.Second), 300, 100, 200)),
			},
			want: "Server 1: 100/300, download speed: 0kb/s\n" +
				"Server 2: 200/300, download speed: 0kb/s\n" +
				"Total: 300/300, download speed: 0kb/s\n",
		},
		{
			name: "speeds over the time since the first snapshot",
			events: []api.Event{
				stateEvent(progressed(j, t0, 614400, 0, 0)),
				progressEvent(progressed(j, t0.Add(time.Second), 614400, 102400, 204800)),
				stateEvent(progressed(done, t0.Add(2*time.Second), 614400, 204800, 409600)),
			},
			want: "Server 1: 204800/614400, download speed: 100kb/s\n" +
				"Server 2: 409600/614400, download speed: 200kb/s\n" +
				"Total: 614400/614400, download speed: 300kb/s\n",
		},
		{
			name: "measured from a recount, not across it",
			events: []api.Event{
				stateEvent(progressed(j, t0, 716800, 0, 0)),
				progressEvent(progressed(j, t0.Add(time.Second), 716800, 204800, 204800)),
				stateEvent(progressed(j, t0.Add(3*time.Second), 716800, 102400, 409600)), // after a restart
				stateEvent(progressed(done, t0.Add(4*time.Second), 716800, 204800, 512000)),
			},
			want: "Server 1: 204800/716800, download speed: 100kb/s\n" +
				"Server 2: 512000/716800, download speed: 100kb/s\n" +
				"Total: 716800/716800, download speed: 200kb/s\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := getDaemon(t, tt.events...)
			r := run(t, d, "get", "-i", "100", "-o", "/data", "-a", "127.0.0.1", "-p", "9001", "9002")
			size := tt.events[len(tt.events)-1].Job.Size
			checkResult(t, r, 0, tt.want, fmt.Sprintf("Saved /data/f.bin (%d bytes, blake3 verified)\n", size))
		})
	}
}

func TestGet_Report_EveryInterval(t *testing.T) {
	j := testJob(5, api.StateDownloading)
	var stdout *syncBuffer
	d := newFakeDaemon(t)
	d.reply("POST /v1/jobs", 201, j)
	d.handle("GET /v1/jobs/5/events", func(w http.ResponseWriter, r *http.Request) {
		sendEvents(w,
			stateEvent(progressed(j, t0, 614400, 0, 0)),
			progressEvent(progressed(j, t0.Add(time.Second), 614400, 102400, 204800)))
		if !eventually(func() bool { return strings.Count(stdout.String(), "Total:") >= 2 }) {
			t.Error("timed out waiting for two reports")
		}
		sendEvents(w, stateEvent(progressed(testJob(5, api.StateCompleted), t0.Add(2*time.Second), 614400, 307200, 307200)))
	})
	r := runCLI(t, context.Background(), func(c *cli) { stdout = c.stdout.(*syncBuffer) }, d,
		"get", "-i", "0.02", "-o", "/data", "-a", "127.0.0.1", "-p", "9001", "9002")
	if r.code != 0 {
		t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
	}
	// Every report is three lines. The first shows the progress since
	// the first snapshot, those after it the same figures again until
	// the next event; the last one the end. (Reports of the snapshot
	// alone come first if a tick beat the progress event.)
	zero := "Server 1: 0/614400, download speed: 0kb/s\n" +
		"Server 2: 0/614400, download speed: 0kb/s\n" +
		"Total: 0/614400, download speed: 0kb/s\n"
	for strings.HasPrefix(r.stdout, zero) {
		r.stdout = strings.TrimPrefix(r.stdout, zero)
	}
	lines := strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n")
	if len(lines)%3 != 0 || len(lines) < 9 {
		t.Fatalf("%d lines, want 3 per report and at least 3 reports:\n%s", len(lines), r.stdout)
	}
	first := "Server 1: 102400/614400, download speed: 100kb/s\n" +
		"Server 2: 204800/614400, download speed: 200kb/s\n" +
		"Total: 307200/614400, download speed: 300kb/s\n"
	last := "Server 1: 307200/614400, download speed: 200kb/s\n" +
		"Server 2: 307200/614400, download speed: 100kb/s\n" +
		"Total: 614400/614400, download speed: 300kb/s\n"
	if !strings.HasPrefix(r.stdout, first) || !strings.HasSuffix(r.stdout, last) {
		t.Errorf("reports:\n%s\nwant first:\n%s\nand last:\n%s", r.stdout, first, last)
	}
	if strings.Count(r.stdout, first) != len(lines)/3-1 {
		t.Errorf("the reports between the first and the last differ from the first:\n%s", r.stdout)
	}
}

func TestGet_Exists(t *testing.T) {
	dir := t.TempDir()
	d := newFakeDaemon(t)
	d.reply("POST /v1/jobs", 409, api.ErrorBody{Error: "job 3 downloads the same", Code: api.CodeExists, Job: 3})
	r := run(t, d, "get", "-i", "1", "-o", dir, "-a", "127.0.0.1", "-p", "9001", "9002")
	checkResult(t, r, ExitError, "", "idmctl: a download of the same servers into "+dir+" exists (job 3); use -r to resume it\n")
}

func TestGet_Resume(t *testing.T) {
	d := newFakeDaemon(t)
	d.reply("POST /v1/jobs", 200, testJob(5, api.StatePaused))
	d.stream("GET /v1/jobs/5/events", stateEvent(progressed(testJob(5, api.StateCompleted), t0, 300, 100, 200)))
	r := run(t, d, "get", "-r", "-i", "1", "-o", "/data", "-a", "127.0.0.1", "-p", "9001", "9002")
	checkResult(t, r, 0,
		"Server 1: 100/300, download speed: 0kb/s\nServer 2: 200/300, download speed: 0kb/s\nTotal: 300/300, download speed: 0kb/s\n",
		"Saved /data/f.bin (300 bytes, blake3 verified)\n")
}

func TestGet_JobEnds(t *testing.T) {
	failed := progressed(testJob(5, api.StateFailed), t0, 300, 100, 0)
	failed.LastError = "every source holds a different file"
	report := "Server 1: 100/300, download speed: 0kb/s\nServer 2: 0/300, download speed: 0kb/s\nTotal: 100/300, download speed: 0kb/s\n"
	tests := []struct {
		name   string
		ev     api.Event
		code   int
		stderr string
	}{
		{"failed", stateEvent(failed), ExitError, "idmctl: job 5 failed: every source holds a different file\n"},
		{"cancelled", stateEvent(progressed(testJob(5, api.StateCancelled), t0, 300, 100, 0)), ExitCancelled, "idmctl: job 5 was cancelled\n"},
		{"removed", api.Event{Type: api.EventRemoved, Job: progressed(testJob(5, api.StateCancelled), t0, 300, 100, 0)}, ExitCancelled, "idmctl: job 5 was removed\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := getDaemon(t, stateEvent(progressed(testJob(5, api.StateDownloading), t0, 300, 100, 0)), tt.ev)
			r := run(t, d, "get", "-i", "100", "-o", "/data", "-a", "127.0.0.1", "-p", "9001", "9002")
			checkResult(t, r, tt.code, report, tt.stderr)
		})
	}
}

func TestGet_CreateFails(t *testing.T) {
	d := newFakeDaemon(t)
	d.reply("POST /v1/jobs", 400, api.ErrorBody{Error: "dir /nope: no such directory", Code: api.CodeBadRequest})
	r := run(t, d, "get", "-i", "1", "-o", "/nope", "-a", "127.0.0.1", "-p", "9001")
	checkResult(t, r, ExitError, "", "idmctl: dir /nope: no such directory\n")
}

func TestGet_Reconnects(t *testing.T) {
	j := testJob(5, api.StateDownloading)
	var streams atomic.Int32
	d := newFakeDaemon(t)
	d.reply("POST /v1/jobs", 201, j)
	d.handle("GET /v1/jobs/5/events", func(w http.ResponseWriter, r *http.Request) {
		switch streams.Add(1) {
		case 1:
			sendEvents(w, stateEvent(progressed(j, t0, 300, 0, 0)))
			panic(http.ErrAbortHandler) // killed mid-stream
		case 2:
			writeJSON(w, 503, api.ErrorBody{Error: "shutting down", Code: api.CodeInternal})
		case 3:
			// Stopped cleanly before the job ended.
			sendEvents(w, stateEvent(progressed(j, t0, 300, 50, 50)))
		default:
			sendEvents(w, stateEvent(progressed(testJob(5, api.StateCompleted), t0.Add(time.Second), 300, 100, 200)))
		}
	})
	r := run(t, d, "get", "-i", "100", "-o", "/data", "-a", "127.0.0.1", "-p", "9001", "9002")
	checkResult(t, r, 0,
		"Server 1: 100/300, download speed: 0kb/s\nServer 2: 200/300, download speed: 0kb/s\nTotal: 300/300, download speed: 0kb/s\n",
		"Saved /data/f.bin (300 bytes, blake3 verified)\n")
	if n := streams.Load(); n != 4 {
		t.Errorf("%d streams opened, want 4", n)
	}
}

func TestGet_DaemonGone(t *testing.T) {
	j := testJob(5, api.StateDownloading)
	d := newFakeDaemon(t)
	d.reply("POST /v1/jobs", 201, j)
	d.handle("GET /v1/jobs/5/events", func(w http.ResponseWriter, r *http.Request) {
		sendEvents(w, stateEvent(progressed(j, t0, 300, 0, 0)))
		go d.stop() // killed, and not restarted
		<-r.Context().Done()
	})
	start := time.Now()
	r := runCLI(t, context.Background(), func(c *cli) { c.retryTimeout = 200 * time.Millisecond }, d,
		"get", "-i", "100", "-o", "/data", "-a", "127.0.0.1", "-p", "9001", "9002")
	checkResult(t, r, ExitNotRunning, "",
		"idmctl: idmd is not running (no answer on "+d.sock+`); start it with "idmd run" or install it as a service ("idmd install")`+"\n")
	if took := time.Since(start); took < 200*time.Millisecond {
		t.Errorf("gave up after %v, before the retry timeout", took)
	}
}

func TestGet_JobGoneAfterRestart(t *testing.T) {
	j := testJob(5, api.StateDownloading)
	var streams atomic.Int32
	d := newFakeDaemon(t)
	d.reply("POST /v1/jobs", 201, j)
	d.handle("GET /v1/jobs/5/events", func(w http.ResponseWriter, r *http.Request) {
		if streams.Add(1) == 1 {
			sendEvents(w, stateEvent(progressed(j, t0, 300, 0, 0)))
			panic(http.ErrAbortHandler)
		}
		writeJSON(w, 404, api.ErrorBody{Error: "no such job: 5", Code: api.CodeNotFound})
	})
	r := run(t, d, "get", "-i", "100", "-o", "/data", "-a", "127.0.0.1", "-p", "9001", "9002")
	checkResult(t, r, ExitError, "", "idmctl: no such job: 5\n")
}

func TestGet_Interrupt(t *testing.T) {
	j := testJob(5, api.StateDownloading)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	d := newFakeDaemon(t)
	d.reply("POST /v1/jobs", 201, j)
	d.handle("GET /v1/jobs/5/events", func(w http.ResponseWriter, r *http.Request) {
		sendEvents(w, stateEvent(progressed(j, t0, 300, 0, 0)))
		cancel() // Ctrl-C
		<-r.Context().Done()
	})
	r := runCLI(t, ctx, nil, d, "get", "-i", "100", "-o", "/data", "-a", "127.0.0.1", "-p", "9001", "9002")
	checkResult(t, r, ExitInterrupted, "", "idmctl: job 5 keeps running in idmd; follow it with: idmctl watch 5\n")
	for _, req := range d.requests() {
		if req.Method != "POST" || req.Path != "/v1/jobs" {
			t.Errorf("Ctrl-C sent %s %s", req.Method, req.Path)
		}
	}
}

// down returns j with every source down for reason, as the daemon shows a
// job none of whose servers answers.
func down(j api.Job, at time.Time, reasons ...string) api.Job {
	j = progressed(j, at, 0, 0, 0)
	j.State, j.Progress.State = api.StateWaiting, api.StateWaiting
	for i := range j.Progress.Sources {
		j.Progress.Sources[i].State = api.SourceDown
		j.Progress.Sources[i].LastError = reasons[i]
	}
	return j
}

// When no server answers for a while, get says on stderr which and why,
// once, and again only when a reason changes; stdout keeps the seed's
// report lines alone.
func TestGet_SaysWhyNoServerAnswers(t *testing.T) {
	const (
		refused1 = "connect: dial tcp 127.0.0.1:9001: connect: connection refused"
		refused2 = "connect: dial tcp 127.0.0.1:9002: connect: connection refused"
		reset2   = "manifest: read: connection reset by peer"
	)
	said := func(r1, r2 string) string {
		return "idmctl: no server answers: server 1 (idm://127.0.0.1:9001): " + r1 + "\n" +
			"idmctl: no server answers: server 2 (idm://127.0.0.1:9002): " + r2 + "\n"
	}
	j := testJob(5, api.StateDownloading)
	var stderr *syncBuffer
	d := newFakeDaemon(t)
	d.reply("POST /v1/jobs", 201, j)
	d.handle("GET /v1/jobs/5/events", func(w http.ResponseWriter, r *http.Request) {
		sendEvents(w, stateEvent(progressed(j, t0, 300, 0, 0)), stateEvent(down(j, t0, refused1, refused2)))
		if !eventually(func() bool { return stderr.String() == said(refused1, refused2) }) {
			t.Errorf("stderr %q, want the reasons once", stderr.String())
		}
		// The same reasons again are not news; another one is.
		sendEvents(w, progressEvent(down(j, t0.Add(time.Second), refused1, refused2)),
			progressEvent(down(j, t0.Add(2*time.Second), refused1, reset2)))
		if !eventually(func() bool { return stderr.String() == said(refused1, refused2)+said(refused1, reset2) }) {
			t.Errorf("stderr %q, want the new reasons once more", stderr.String())
		}
		// A server back ends the outage; the next one is told again.
		sendEvents(w, progressEvent(progressed(j, t0.Add(3*time.Second), 300, 100, 0)),
			progressEvent(down(j, t0.Add(4*time.Second), refused1, refused2)))
		if !eventually(func() bool { return strings.Count(stderr.String(), said(refused1, refused2)) == 2 }) {
			t.Errorf("stderr %q, want the reasons told again after the server came back", stderr.String())
		}
		sendEvents(w, stateEvent(progressed(testJob(5, api.StateCompleted), t0.Add(5*time.Second), 300, 100, 200)))
	})
	r := runCLI(t, context.Background(), func(c *cli) {
		stderr = c.stderr.(*syncBuffer)
		c.outageAfter = 20 * time.Millisecond
	}, d, "get", "-i", "100", "-o", "/data", "-a", "127.0.0.1", "-p", "9001", "9002")
	checkResult(t, r, 0,
		"Server 1: 100/300, download speed: 0kb/s\nServer 2: 200/300, download speed: 0kb/s\nTotal: 300/300, download speed: 0kb/s\n",
		said(refused1, refused2)+said(refused1, reset2)+said(refused1, refused2)+"Saved /data/f.bin (300 bytes, blake3 verified)\n")
}

// A job waiting for a download slot has no source to blame.
func TestGet_QueuedIsNoOutage(t *testing.T) {
	j := testJob(5, api.StateQueued)
	j.Progress.Sources[0].State, j.Progress.Sources[1].State = "", ""
	var stdout *syncBuffer
	d := newFakeDaemon(t)
	d.reply("POST /v1/jobs", 201, j)
	d.handle("GET /v1/jobs/5/events", func(w http.ResponseWriter, r *http.Request) {
		sendEvents(w, stateEvent(j))
		// Reports every 10 ms for well beyond the outage's 20 ms.
		if !eventually(func() bool { return strings.Count(stdout.String(), "Total:") >= 10 }) {
			t.Error("timed out waiting for reports")
		}
		sendEvents(w, stateEvent(progressed(testJob(5, api.StateCompleted), t0, 300, 100, 200)))
	})
	r := runCLI(t, context.Background(), func(c *cli) {
		stdout = c.stdout.(*syncBuffer)
		c.outageAfter = 20 * time.Millisecond
	}, d, "get", "-i", "0.01", "-o", "/data", "-a", "127.0.0.1", "-p", "9001", "9002")
	if r.code != 0 || r.stderr != "Saved /data/f.bin (300 bytes, blake3 verified)\n" {
		t.Errorf("exit %d, stderr %q", r.code, r.stderr)
	}
}

// get of a lone URL follows the Metalink it may answer with: when its
// job completes followed by the Metalink's jobs, get says so and reports
// on each in turn, saying why one did not complete, and exits as the
// first that did not.
func TestGet_FollowedBy(t *testing.T) {
	one := api.Job{ID: 5, Sources: []string{"https://dl.example.org/download?id=5"}, Dir: "/data", State: api.StateCompleted,
		Name: "download", Path: "/data/download", Size: 120, FollowedBy: []uint64{8, 9},
		Progress: api.Progress{State: api.StateCompleted, Size: 120, Verified: 120, Time: t0,
			Sources: []api.SourceProgress{{Source: "https://dl.example.org/download?id=5", State: api.SourceUp, Verified: 120}}}}
	failed := testJob(9, api.StateFailed)
	failed.LastError = "no source left"
	for _, tt := range []struct {
		name   string
		nine   api.Job
		code   int
		stderr string
	}{
		{"all completed", progressed(testJob(9, api.StateCompleted), t0, 300, 100, 200), ExitOK, "Saved /data/f.bin (300 bytes, blake3 verified)\n"},
		{"one failed", failed, ExitError, "idmctl: job 9 failed: no source left\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			d := newFakeDaemon(t)
			d.reply("POST /v1/jobs", 201, testJob(5, api.StateQueued))
			d.stream("GET /v1/jobs/5/events", stateEvent(one))
			d.stream("GET /v1/jobs/8/events", stateEvent(progressed(testJob(8, api.StateCompleted), t0, 300, 100, 200)))
			d.stream("GET /v1/jobs/9/events", stateEvent(tt.nine))
			r := run(t, d, "get", "-i", "100", "-o", "/data", "https://dl.example.org/download?id=5")
			wantErr := "Saved /data/download (120 bytes, blake3 verified)\n" +
				"Job 5's file is a Metalink: following its jobs 8, 9\n" +
				"Saved /data/f.bin (300 bytes, blake3 verified)\n" + tt.stderr
			if r.code != tt.code || r.stderr != wantErr {
				t.Errorf("exit %d, stderr:\n%s\nwant exit %d, stderr:\n%s", r.code, r.stderr, tt.code, wantErr)
			}
			var got api.CreateRequest
			if reqs := d.requests(); len(reqs) != 1 || json.Unmarshal([]byte(reqs[0].Body), &got) != nil || !got.FollowMetalink {
				t.Errorf("daemon got %q; want one job of the URL that follows its Metalink", reqs)
			}
		})
	}
}
