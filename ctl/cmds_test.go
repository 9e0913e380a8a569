package ctl

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/idmproject/idm/daemon/api"
)

func TestMain_DaemonNotRunning(t *testing.T) {
	sock := t.TempDir() + "/idmd.sock"
	want := "idmctl: idmd is not running (no answer on " + sock + `); start it with "idmd run" or install it as a service ("idmd install")` + "\n"
	for _, args := range [][]string{
		{"ls"},
		{"status", "1"},
		{"get", "-i", "1", "-o", "/data", "-a", "127.0.0.1", "-p", "9001"},
		{"add", "idm://127.0.0.1:9001"},
		{"wait", "1"},
		{"watch"},
		{"pause", "1", "2"},
		{"limit"},
		{"limit", "1M"},
		{"line"},
		{"move", "1", "first"},
	} {
		t.Run(args[0], func(t *testing.T) {
			r := runCLI(t, t.Context(), nil, nil, append([]string{"--socket", sock}, args...)...)
			checkResult(t, r, ExitNotRunning, "", want)
		})
	}
	t.Run("version", func(t *testing.T) {
		r := runCLI(t, t.Context(), nil, nil, "--socket", sock, "version")
		checkResult(t, r, ExitNotRunning, "idmctl dev (api 1)\n", want)
	})
	t.Run("socket from the environment", func(t *testing.T) {
		t.Setenv(api.EnvSocket, sock)
		r := runCLI(t, t.Context(), nil, nil, "ls")
		checkResult(t, r, ExitNotRunning, "", want)
	})
}

func TestMain_Usage(t *testing.T) {
	tests := []struct {
		name   string
		args   []string
		code   int
		stdout string // a prefix
		stderr string // a prefix
	}{
		{"no command", nil, ExitUsage, "", "idmctl: missing the command\n\nusage: idmctl [--socket PATH] [--json] COMMAND [ARGS]\n"},
		{"unknown command", []string{"fetch"}, ExitUsage, "", "idmctl: unknown command \"fetch\"\n\nusage: idmctl"},
		{"unknown global flag", []string{"--fast", "ls"}, ExitUsage, "", "idmctl: flag provided but not defined: -fast\n\nusage: idmctl"},
		{"help", []string{"help"}, ExitOK, "usage: idmctl [--socket PATH] [--json] COMMAND [ARGS]\n", ""},
		{"-h", []string{"-h"}, ExitOK, "usage: idmctl [--socket PATH] [--json] COMMAND [ARGS]\n", ""},
		{"help get", []string{"help", "get"}, ExitOK, "usage: idmctl get [-r] [--content HASH] -i SECONDS -o DIR -a IP -p PORT [PORT ...]\n\nGet asks idmd", ""},
		{"get -h", []string{"get", "-h"}, ExitOK, "usage: idmctl get [-r] [--content HASH] -i SECONDS -o DIR -a IP -p PORT [PORT ...]\n\nGet asks idmd", ""},
		{"help pause", []string{"help", "pause"}, ExitOK, "usage: idmctl pause ID ...\n", ""},
		{"global flag after the command", []string{"pause", "--json", "1"}, ExitUsage, "", "idmctl pause: --json goes before the command: idmctl --json pause ...\n\nusage: idmctl pause"},
		{"help for no command", []string{"help", "fetch"}, ExitUsage, "", "idmctl help: unknown command \"fetch\"\n\nusage: idmctl"},
		{"status without ID", []string{"status"}, ExitUsage, "", "idmctl status: want one job ID\n\nusage: idmctl status [--json] ID\n"},
		{"bad ID", []string{"pause", "1", "x"}, ExitUsage, "", "idmctl pause: invalid job ID \"x\"\n\nusage: idmctl pause ID ...\n"},
		{"no ID", []string{"rm"}, ExitUsage, "", "idmctl rm: missing job ID\n"},
		{"ls with an argument", []string{"ls", "1"}, ExitUsage, "", "idmctl ls: unexpected argument \"1\"\n"},
		{"watch two IDs", []string{"watch", "1", "2"}, ExitUsage, "", "idmctl watch: want at most one job ID\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := newFakeDaemon(t)
			r := run(t, d, tt.args...)
			if r.code != tt.code || !strings.HasPrefix(r.stdout, tt.stdout) || !strings.HasPrefix(r.stderr, tt.stderr) {
				t.Errorf("got exit %d\nstdout:\n%s\nstderr:\n%s\nwant exit %d, stdout starting %q, stderr starting %q",
					r.code, r.stdout, r.stderr, tt.code, tt.stdout, tt.stderr)
			}
			if tt.stdout == "" && r.stdout != "" {
				t.Errorf("stdout %q", r.stdout)
			}
			if len(d.requests()) != 0 {
				t.Errorf("daemon got %q", d.requests())
			}
		})
	}
}

func TestAdd(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name string
		args []string
		want api.CreateRequest
	}{
		{
			name: "sources",
			args: []string{"-o", dir, "idm://127.0.0.1:9001", "idm://[::1]:9002"},
			want: api.CreateRequest{Sources: []string{"idm://127.0.0.1:9001", "idm://[::1]:9002"}, Dir: dir},
		},
		{
			name: "-a and -p, a limit",
			args: []string{"-limit", "10M", "-a", "127.0.0.1", "-p", "9001", "9002", "-o", dir},
			want: api.CreateRequest{Sources: []string{"idm://127.0.0.1:9001", "idm://127.0.0.1:9002"}, Dir: dir, Limit: 10_000_000},
		},
		{
			name: "flags after a source, -r",
			args: []string{"idm://host.example:9001", "-o", dir, "--limit", "1Mi", "-r"},
			want: api.CreateRequest{Sources: []string{"idm://host.example:9001"}, Dir: dir, Limit: 1 << 20, Resume: true},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := newFakeDaemon(t)
			d.reply("POST /v1/jobs", 201, testJob(7, api.StateQueued))
			r := run(t, d, append([]string{"add"}, tt.args...)...)
			checkResult(t, r, 0, "7\n", "")
			reqs := d.requests()
			if len(reqs) != 1 {
				t.Fatalf("daemon got %q", reqs)
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
	t.Run("errors", func(t *testing.T) {
		d := newFakeDaemon(t)
		d.reply("POST /v1/jobs", 409, api.ErrorBody{Error: "exists", Code: api.CodeExists, Job: 2})
		checkResult(t, run(t, d, "add", "-o", dir, "idm://127.0.0.1:9001"), ExitError, "",
			"idmctl: a download of the same servers into "+dir+" exists (job 2); use -r to resume it\n")
		r := run(t, d, "add", "-o", dir)
		if r.code != ExitUsage || !strings.HasPrefix(r.stderr, "idmctl add: missing the sources\n") {
			t.Errorf("no sources: exit %d, stderr %q", r.code, r.stderr)
		}
		r = run(t, d, "add", "ftp://127.0.0.1:9001")
		if r.code != ExitUsage || !strings.HasPrefix(r.stderr, `idmctl add: source "ftp://127.0.0.1:9001": want idm://host:port or an http:// or https:// URL`) {
			t.Errorf("bad source: exit %d, stderr %q", r.code, r.stderr)
		}
		r = run(t, d, "add", "-limit", "fast", "idm://127.0.0.1:9001")
		if r.code != ExitUsage {
			t.Errorf("bad limit: exit %d, stderr %q", r.code, r.stderr)
		}
	})
	t.Run("json", func(t *testing.T) {
		d := newFakeDaemon(t)
		j := testJob(7, api.StateQueued)
		d.reply("POST /v1/jobs", 201, j)
		r := run(t, d, "--json", "add", "idm://127.0.0.1:9001")
		var got api.Job
		if err := json.Unmarshal([]byte(r.stdout), &got); err != nil || !reflect.DeepEqual(got, j) {
			t.Errorf("got %q (%v), want job 7 as JSON", r.stdout, err)
		}
	})
}

// lsJobs are three jobs: one done, one downloading, one not started.
func lsJobs() []api.Job {
	done := progressed(testJob(1, api.StateCompleted), t0, 268435456, 134217728, 134217728)
	done.Name = "video.bin"
	running := progressed(testJob(2, api.StateDownloading), t0, 1000000, 300000, 170000)
	running.Progress.Speed = 13003366
	queued := testJob(3, api.StateQueued)
	return []api.Job{done, running, queued}
}

// replyJobs answers GET /v1/jobs with jobs, in brief when asked.
func replyJobs(d *fakeDaemon, jobs []api.Job) {
	d.handle("GET /v1/jobs", func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Query().Get("view") {
		case "summary":
			brief := []api.JobSummary{}
			for i := range jobs {
				brief = append(brief, jobs[i].Summary())
			}
			writeJSON(w, 200, brief)
		case "":
			writeJSON(w, 200, jobs)
		default:
			writeJSON(w, 400, api.ErrorBody{Error: "bad view", Code: api.CodeBadRequest})
		}
	})
}

func TestLs(t *testing.T) {
	d := newFakeDaemon(t)
	replyJobs(d, lsJobs())
	checkResult(t, run(t, d, "ls"), 0,
		"ID  STATE        PROGRESS  SIZE       SPEED       NAME\n"+
			"1   completed    100.0%    256.0 MiB  -           video.bin\n"+
			"2   downloading  47.0%     976.6 KiB  12.4 MiB/s  f.bin\n"+
			"3   queued       -         -          -           idm://127.0.0.1:9001\n", "")
	for _, args := range [][]string{{"--json", "ls"}, {"ls", "--json"}} {
		r := run(t, d, args...)
		var got []api.Job
		if err := json.Unmarshal([]byte(r.stdout), &got); err != nil || !reflect.DeepEqual(got, lsJobs()) || r.code != 0 {
			t.Errorf("%v: exit %d, %v, stdout:\n%s", args, r.code, err, r.stdout)
		}
	}
	d2 := newFakeDaemon(t)
	replyJobs(d2, nil)
	checkResult(t, run(t, d2, "ls"), 0, "ID  STATE  PROGRESS  SIZE  SPEED  NAME\n", "")
}

func TestStatus(t *testing.T) {
	j := progressed(testJob(2, api.StateDownloading), t0, 1000000, 300000, 170000)
	j.Progress.Speed = 13003366
	j.Progress.Sources[0].Speed = 6501683
	j.Progress.Sources[1].State = api.SourceDown
	j.Progress.Sources[1].Corrupt = 2
	j.Progress.Sources[1].LastError = "connection refused"
	j.Progress.Sources[1].NextRetry = time.Now().Add(time.Hour)
	j.Limit = 10 << 20
	j.Content = "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"
	d := newFakeDaemon(t)
	d.reply("GET /v1/jobs/2", 200, j)
	r := run(t, d, "status", "2")
	want := "Job:       2\n" +
		"State:     downloading\n" +
		"Name:      f.bin\n" +
		"Directory: /data\n" +
		"Size:      976.6 KiB (1000000 bytes)\n" +
		"Verified:  459.0 KiB (47.0%)\n" +
		"Fetched:   459.0 KiB\n" +
		"Speed:     12.4 MiB/s\n" +
		"Limit:     10.0 MiB/s (10485760 B/s)\n" +
		"Content:   blake3 af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262\n" +
		"\n" +
		"#  SOURCE                STATE  VERIFIED   SPEED      CORRUPT  LAST ERROR\n" +
		"1  idm://127.0.0.1:9001  up     293.0 KiB  6.2 MiB/s  0        -\n" +
		"2  idm://127.0.0.1:9002  down   166.0 KiB  0 B/s      2        connection refused (retry in "
	if r.code != 0 || !strings.HasPrefix(r.stdout, want) || r.stderr != "" {
		t.Errorf("got exit %d\nstdout:\n%s\nstderr:\n%s\nwant stdout starting:\n%s", r.code, r.stdout, r.stderr, want)
	}
	d.reply("GET /v1/jobs/9", 404, api.ErrorBody{Error: "no such job: 9", Code: api.CodeNotFound})
	checkResult(t, run(t, d, "status", "9"), ExitError, "", "idmctl: no such job: 9\n")
	r = run(t, d, "--json", "status", "2")
	var got api.Job
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil || got.ID != 2 || len(got.Progress.Sources) != 2 {
		t.Errorf("--json: %v, stdout:\n%s", err, r.stdout)
	}
	// A source a server named says so.
	named := progressed(testJob(3, api.StateDownloading), t0, 1000000, 300000, 170000)
	named.Progress.Sources[1].Source = "http://127.0.0.2:8080/f.bin"
	named.Progress.Sources[1].Reach = "public"
	d.reply("GET /v1/jobs/3", 200, named)
	r = run(t, d, "status", "3")
	if !strings.Contains(r.stdout, "\n1  idm://127.0.0.1:9001    ") || !strings.Contains(r.stdout, "\n2  http://127.0.0.2:8080/f.bin (named by a server)  ") {
		t.Errorf("stdout:\n%s\nwant source 2, only, marked as named by a server", r.stdout)
	}
}

func TestWait(t *testing.T) {
	running := stateEvent(progressed(testJob(4, api.StateDownloading), t0, 300, 100, 0))
	failed := testJob(4, api.StateFailed)
	failed.LastError = "disk full"
	tests := []struct {
		name   string
		final  api.Event
		code   int
		stderr string
	}{
		{"completed", stateEvent(testJob(4, api.StateCompleted)), ExitOK, ""},
		{"failed", stateEvent(failed), ExitError, "idmctl: job 4 failed: disk full\n"},
		{"cancelled", stateEvent(testJob(4, api.StateCancelled)), ExitCancelled, "idmctl: job 4 was cancelled\n"},
		{"removed", api.Event{Type: api.EventRemoved, Job: testJob(4, api.StateDownloading)}, ExitCancelled, "idmctl: job 4 was removed\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := newFakeDaemon(t)
			d.stream("GET /v1/jobs/4/events", running, tt.final)
			checkResult(t, run(t, d, "wait", "4"), tt.code, "", tt.stderr)
		})
	}
	t.Run("not found", func(t *testing.T) {
		d := newFakeDaemon(t)
		d.reply("GET /v1/jobs/4/events", 404, api.ErrorBody{Error: "no such job: 4", Code: api.CodeNotFound})
		checkResult(t, run(t, d, "wait", "4"), ExitError, "", "idmctl: no such job: 4\n")
	})
	t.Run("reconnects", func(t *testing.T) {
		d := newFakeDaemon(t)
		n := 0
		d.handle("GET /v1/jobs/4/events", func(w http.ResponseWriter, r *http.Request) {
			if n++; n == 1 {
				sendEvents(w, running) // then the daemon stops
				return
			}
			sendEvents(w, stateEvent(testJob(4, api.StateCompleted)))
		})
		checkResult(t, run(t, d, "wait", "4"), ExitOK, "", "")
	})
	t.Run("json", func(t *testing.T) {
		d := newFakeDaemon(t)
		d.stream("GET /v1/jobs/4/events", running, stateEvent(failed))
		r := run(t, d, "wait", "--json", "4")
		var got api.Job
		if err := json.Unmarshal([]byte(r.stdout), &got); err != nil || got.State != api.StateFailed || r.code != ExitError {
			t.Errorf("exit %d, %v, stdout:\n%s", r.code, err, r.stdout)
		}
	})
}

// status says what became of a job that follows a Metalink: pending, the
// jobs its file became, why it did not, or, for one of those jobs, the
// job it follows.
func TestStatus_FollowMetalink(t *testing.T) {
	pending := testJob(2, api.StateDownloading)
	pending.FollowMetalink = true
	followed := testJob(3, api.StateCompleted)
	followed.FollowMetalink, followed.FollowedBy = true, []uint64{8, 9}
	one := testJob(4, api.StateCompleted)
	one.FollowMetalink, one.FollowedBy = true, []uint64{8}
	not := testJob(5, api.StateCompleted)
	not.FollowMetalink, not.FollowError = true, "not followed as a Metalink: metalink: not a Metalink 4 document"
	follower := testJob(8, api.StateQueued)
	follower.Following = 3
	for _, tt := range []struct {
		job  api.Job
		want string
	}{
		{pending, "Metalink:  if the file is one, its files become jobs once it completes\n"},
		{followed, "Followed by: jobs 8, 9\n"},
		{one, "Followed by: job 8\n"},
		{not, "Not followed: not followed as a Metalink: metalink: not a Metalink 4 document\n"},
		{follower, "Following: job 3\n"},
	} {
		d := newFakeDaemon(t)
		d.reply(fmt.Sprintf("GET /v1/jobs/%d", tt.job.ID), 200, tt.job)
		r := run(t, d, "status", fmt.Sprint(tt.job.ID))
		if r.code != 0 || !strings.Contains(r.stdout, tt.want) {
			t.Errorf("job %d: exit %d, stdout:\n%s\nwant a line %q", tt.job.ID, r.code, r.stdout, tt.want)
		}
		if !tt.job.FollowMetalink && strings.Contains(r.stdout, "Metalink:") {
			t.Errorf("job %d, which follows nothing, says:\n%s", tt.job.ID, r.stdout)
		}
	}
}

// wait on a job whose file was a Metalink waits for the jobs it became
// too, says so, and exits as the first of them that did not complete,
// having said why each did not.
func TestWait_FollowedBy(t *testing.T) {
	done := testJob(4, api.StateCompleted)
	done.FollowedBy = []uint64{8, 9}
	failed := testJob(8, api.StateFailed)
	failed.LastError = "no source left"
	for _, tt := range []struct {
		name   string
		eight  api.Job
		code   int
		stderr string
	}{
		{"all completed", testJob(8, api.StateCompleted), ExitOK, ""},
		{"one failed", failed, ExitError, "idmctl: job 8 failed: no source left\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			d := newFakeDaemon(t)
			d.stream("GET /v1/jobs/4/events", stateEvent(testJob(4, api.StateDownloading)), stateEvent(done))
			d.stream("GET /v1/jobs/8/events", stateEvent(tt.eight))
			d.stream("GET /v1/jobs/9/events", stateEvent(testJob(9, api.StateDownloading)), stateEvent(testJob(9, api.StateCompleted)))
			checkResult(t, run(t, d, "wait", "4"), tt.code, "", "Job 4's file is a Metalink: waiting for its jobs 8, 9\n"+tt.stderr)
			var paths []string
			d.mu.Lock()
			for _, r := range d.reqs {
				paths = append(paths, r.Path)
			}
			d.mu.Unlock()
			if want := []string{"/v1/jobs/4/events", "/v1/jobs/8/events", "/v1/jobs/9/events"}; !reflect.DeepEqual(paths, want) {
				t.Errorf("asked %q, want %q", paths, want)
			}
		})
	}
	// With --json, every job waited for is printed as it ends.
	d := newFakeDaemon(t)
	d.stream("GET /v1/jobs/4/events", stateEvent(done))
	d.stream("GET /v1/jobs/8/events", stateEvent(failed))
	d.stream("GET /v1/jobs/9/events", stateEvent(testJob(9, api.StateCompleted)))
	r := run(t, d, "wait", "--json", "4")
	dec := json.NewDecoder(strings.NewReader(r.stdout))
	var got []string
	for {
		var j api.Job
		if err := dec.Decode(&j); err == io.EOF {
			break
		} else if err != nil {
			t.Fatalf("stdout is not JSON objects: %v\n%s", err, r.stdout)
		}
		got = append(got, fmt.Sprint(j.ID, " ", j.State))
	}
	if want := []string{"4 completed", "8 failed", "9 completed"}; r.code != ExitError || !reflect.DeepEqual(got, want) {
		t.Errorf("wait --json: exit %d, jobs %q; want exit %d and %q", r.code, got, ExitError, want)
	}
}

func TestJobActions(t *testing.T) {
	d := newFakeDaemon(t)
	d.reply("POST /v1/jobs/1/pause", 200, testJob(1, api.StatePaused))
	d.reply("POST /v1/jobs/2/pause", 409, api.ErrorBody{Error: "not possible in the job's state: job 2 is completed", Code: api.CodeConflict, Job: 2})
	d.reply("POST /v1/jobs/4/pause", 500, api.ErrorBody{Error: "disk full", Code: api.CodeInternal})
	d.reply("POST /v1/jobs/3/pause", 200, testJob(3, api.StatePaused))
	d.reply("POST /v1/jobs/1/resume", 200, testJob(1, api.StateQueued))
	d.reply("POST /v1/jobs/1/cancel", 200, testJob(1, api.StateCancelled))
	d.reply("DELETE /v1/jobs/1", 204, nil)
	d.reply("DELETE /v1/jobs/9", 404, api.ErrorBody{Error: "no such job: 9", Code: api.CodeNotFound})

	checkResult(t, run(t, d, "pause", "1", "2", "3", "4"), ExitError, "job 1: paused\njob 3: paused\n",
		"idmctl: not possible in the job's state: job 2 is completed\nidmctl: job 4: disk full\n")
	checkResult(t, run(t, d, "resume", "1"), ExitOK, "job 1: queued\n", "")
	checkResult(t, run(t, d, "cancel", "1"), ExitOK, "job 1: cancelled\n", "")
	checkResult(t, run(t, d, "rm", "1", "9"), ExitError, "job 1: removed\n", "idmctl: no such job: 9\n")
	want := []request{
		{"POST", "/v1/jobs/1/pause", ""}, {"POST", "/v1/jobs/2/pause", ""}, {"POST", "/v1/jobs/3/pause", ""}, {"POST", "/v1/jobs/4/pause", ""},
		{"POST", "/v1/jobs/1/resume", ""}, {"POST", "/v1/jobs/1/cancel", ""},
		{"DELETE", "/v1/jobs/1", ""}, {"DELETE", "/v1/jobs/9", ""},
	}
	if got := d.requests(); !reflect.DeepEqual(got, want) {
		t.Errorf("daemon got %q\nwant %q", got, want)
	}
}

func TestLimit(t *testing.T) {
	tests := []struct {
		name   string
		args   []string
		req    request
		answer any
		stdout string
	}{
		{"show", nil, request{"GET", "/v1/limit", ""}, api.LimitResponse{}, "global limit: none\n"},
		{"show set", nil, request{"GET", "/v1/limit", ""}, api.LimitResponse{Limit: 5 << 20}, "global limit: 5.0 MiB/s (5242880 B/s)\n"},
		{"set SI", []string{"10M"}, request{"PUT", "/v1/limit", `{"limit":10000000}`}, api.LimitResponse{Limit: 10000000}, "global limit: 9.5 MiB/s (10000000 B/s)\n"},
		{"set binary", []string{"512Ki"}, request{"PUT", "/v1/limit", `{"limit":524288}`}, api.LimitResponse{Limit: 524288}, "global limit: 512.0 KiB/s (524288 B/s)\n"},
		{"set bytes", []string{"1500"}, request{"PUT", "/v1/limit", `{"limit":1500}`}, api.LimitResponse{Limit: 1500}, "global limit: 1.5 KiB/s (1500 B/s)\n"},
		{"remove 0", []string{"0"}, request{"PUT", "/v1/limit", `{"limit":0}`}, api.LimitResponse{}, "global limit: none\n"},
		{"remove none", []string{"none"}, request{"PUT", "/v1/limit", `{"limit":0}`}, api.LimitResponse{}, "global limit: none\n"},
		{"remove off", []string{"off"}, request{"PUT", "/v1/limit", `{"limit":0}`}, api.LimitResponse{}, "global limit: none\n"},
		{"job", []string{"3", "1Mi"}, request{"PUT", "/v1/jobs/3/limit", `{"limit":1048576}`}, api.Job{ID: 3, Limit: 1 << 20}, "job 3 limit: 1.0 MiB/s (1048576 B/s)\n"},
		{"job off", []string{"3", "off"}, request{"PUT", "/v1/jobs/3/limit", `{"limit":0}`}, api.Job{ID: 3}, "job 3 limit: none\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := newFakeDaemon(t)
			d.reply(tt.req.Method+" "+tt.req.Path, 200, tt.answer)
			checkResult(t, run(t, d, append([]string{"limit"}, tt.args...)...), 0, tt.stdout, "")
			if got := d.requests(); !reflect.DeepEqual(got, []request{tt.req}) {
				t.Errorf("daemon got %q, want %q", got, tt.req)
			}
		})
	}
	for _, args := range [][]string{{"fast"}, {"-1"}, {"x", "1M"}, {"3", "fast"}, {"1", "2", "3"}} {
		t.Run("bad "+strings.Join(args, " "), func(t *testing.T) {
			d := newFakeDaemon(t)
			r := run(t, d, append([]string{"limit"}, args...)...)
			if r.code != ExitUsage || !strings.Contains(r.stderr, "usage: idmctl limit [--json] [[ID] RATE]") {
				t.Errorf("exit %d, stderr:\n%s", r.code, r.stderr)
			}
			if len(d.requests()) != 0 {
				t.Errorf("daemon got %q", d.requests())
			}
		})
	}
	t.Run("json", func(t *testing.T) {
		d := newFakeDaemon(t)
		d.reply("PUT /v1/limit", 200, api.LimitResponse{Limit: 1000})
		checkResult(t, run(t, d, "--json", "limit", "1K"), 0, "{\n  \"limit\": 1000\n}\n", "")
	})
}

func TestVersion(t *testing.T) {
	d := newFakeDaemon(t)
	d.reply("GET /v1/version", 200, api.Version{Version: "0.3.0", API: 1, PID: 4242, StateDir: "/var/lib/idmd"})
	checkResult(t, run(t, d, "version"), 0, "idmctl dev (api 1)\nidmd 0.3.0 (api 1, pid 4242, state /var/lib/idmd)\n", "")
	r := run(t, d, "--json", "version")
	want := "{\n  \"client\": \"dev\",\n  \"api\": 1,\n  \"daemon\": {\n    \"version\": \"0.3.0\",\n    \"api\": 1,\n    \"pid\": 4242,\n    \"state_dir\": \"/var/lib/idmd\"\n  }\n}\n"
	checkResult(t, r, 0, want, "")
}

// watchEvents are job 5's stream: halfway, then completed.
func watchEvents() []api.Event {
	half := progressed(testJob(5, api.StateDownloading), t0, 300, 100, 50)
	half.Progress.Speed = 2048
	return []api.Event{stateEvent(half), stateEvent(progressed(testJob(5, api.StateCompleted), t0, 300, 150, 150))}
}

func TestWatch_Lines(t *testing.T) {
	d := newFakeDaemon(t)
	d.stream("GET /v1/jobs/5/events", watchEvents()...)
	r := run(t, d, "watch", "5")
	// The job ends before a tick in most runs; the halfway line shows
	// only when a tick came between the two events.
	r.stdout = strings.TrimPrefix(r.stdout, "job 5 f.bin: 50.0% 150 B/300 B 2.0 KiB/s downloading\n")
	checkResult(t, r, 0, "job 5 f.bin: 100.0% 300 B/300 B 0 B/s completed\n", "")
}

func TestWatch_AllLines(t *testing.T) {
	jobs := lsJobs()
	d := newFakeDaemon(t)
	d.handle("GET /v1/events", func(w http.ResponseWriter, r *http.Request) {
		sendEvents(w, stateEvent(jobs[0]), stateEvent(jobs[1]), stateEvent(jobs[2]))
		<-r.Context().Done()
	})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	// Ctrl-C once the queued job's line is out.
	tune := func(c *cli) {
		out := c.stdout.(*syncBuffer)
		go func() {
			eventually(func() bool { return strings.Contains(out.String(), "job 3 ") })
			cancel()
		}()
	}
	r := runCLI(t, ctx, tune, d, "watch")
	if r.code != 0 || r.stderr != "" {
		t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
	}
	block := "job 2 f.bin: 47.0% 459.0 KiB/976.6 KiB 12.4 MiB/s downloading\n" +
		"job 3 idm://127.0.0.1:9001: 0.0% 0 B/? 0 B/s queued\n"
	if !strings.HasPrefix(r.stdout, block) || strings.Contains(r.stdout, "job 1 ") {
		t.Errorf("stdout:\n%s\nwant blocks of:\n%s", r.stdout, block)
	}
}

func TestWatch_JSON(t *testing.T) {
	d := newFakeDaemon(t)
	d.stream("GET /v1/jobs/5/events", watchEvents()...)
	r := run(t, d, "--json", "watch", "5")
	if r.code != 0 {
		t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
	}
	var got []api.Event
	dec := json.NewDecoder(strings.NewReader(r.stdout))
	for dec.More() {
		var ev api.Event
		if err := dec.Decode(&ev); err != nil {
			t.Fatal(err)
		}
		got = append(got, ev)
	}
	if !reflect.DeepEqual(got, watchEvents()) {
		t.Errorf("got %+v\nwant %+v", got, watchEvents())
	}
}

func TestWatch_Bars(t *testing.T) {
	failed := progressed(testJob(5, api.StateFailed), t0, 300, 100, 50)
	failed.LastError = "disk full"
	d := newFakeDaemon(t)
	d.stream("GET /v1/jobs/5/events", watchEvents()[0], stateEvent(failed))
	r := runCLI(t, t.Context(), func(c *cli) { c.isTerminal = func(io.Writer) bool { return true } }, d, "watch", "5")
	if r.code != ExitError || r.stderr != "idmctl: job 5 failed: disk full\n" {
		t.Errorf("exit %d, stderr %q", r.code, r.stderr)
	}
	for _, s := range []string{"job 5 f.bin", "#1 idm://127.0.0.1:9001", "#2 idm://127.0.0.1:9002", "failed", "150 B/300 B", "100 B"} {
		if !strings.Contains(r.stdout, s) {
			t.Errorf("the bars lack %q:\n%s", s, r.stdout)
		}
	}
}

// Help lists every flag as the usage lines spell it: one-letter flags
// with one dash, the others with two, and every flag of a usage line in
// the list.
func TestHelp_FlagSpelling(t *testing.T) {
	pages := map[string][]string{"idmctl": {"help"}}
	for _, cmd := range commands() {
		pages[cmd.name] = []string{"help", cmd.name}
	}
	flagRE := regexp.MustCompile(`(?:^|[\s\[|])(--?[a-z][a-z-]*)`)
	for name, args := range pages {
		t.Run(name, func(t *testing.T) {
			r := run(t, nil, args...)
			if r.code != 0 {
				t.Fatalf("exit %d: %s", r.code, r.stderr)
			}
			usage, _, _ := strings.Cut(r.stdout, "\n")
			listed := map[string]bool{}
			inFlags := false
			for _, l := range strings.Split(r.stdout, "\n") {
				switch {
				case strings.HasSuffix(l, "flags:"):
					inFlags = true
					continue
				case l == "":
					inFlags = false
				}
				if !inFlags {
					continue
				}
				f, _, _ := strings.Cut(strings.TrimSpace(l), " ")
				listed[f] = true
				if long := len(strings.TrimLeft(f, "-")) > 1; long != strings.HasPrefix(f, "--") {
					t.Errorf("flag listed as %q in %q", f, l)
				}
			}
			for _, m := range flagRE.FindAllStringSubmatch(usage, -1) {
				if f := m[1]; !listed[f] {
					t.Errorf("usage line %q names %s, which the flag list does not show as such", usage, f)
				}
			}
		})
	}
}

func TestRPCSecret(t *testing.T) {
	d := newFakeDaemon(t)
	d.reply("GET /v1/rpc", 200, api.RPC{Listen: "127.0.0.1:6800", URL: "http://127.0.0.1:6800/jsonrpc", Secret: "0123abcd"})
	checkResult(t, run(t, d, "rpc-secret"), 0, "0123abcd\n", "")
	checkResult(t, run(t, d, "rpc-secret", "--json"), 0,
		"{\n  \"listen\": \"127.0.0.1:6800\",\n  \"url\": \"http://127.0.0.1:6800/jsonrpc\",\n  \"secret\": \"0123abcd\"\n}\n", "")
	r := run(t, d, "rpc-secret", "extra")
	if r.code != ExitUsage || !strings.Contains(r.stderr, `unexpected argument "extra"`) {
		t.Errorf("an extra argument: %+v", r)
	}

	off := newFakeDaemon(t)
	off.reply("GET /v1/rpc", 404, api.ErrorBody{Error: "the aria2 RPC listener is off: start idmd with --rpc-listen ADDR", Code: api.CodeNotFound})
	checkResult(t, run(t, off, "rpc-secret"), 1, "", "idmctl: the aria2 RPC listener is off: start idmd with --rpc-listen ADDR\n")
}
