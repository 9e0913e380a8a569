package ctl

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/idmproject/idm/daemon/api"
)

// line prints the waiting jobs numbered from 1, in the daemon's order.
func TestLine(t *testing.T) {
	d := newFakeDaemon(t)
	paused := testJob(3, api.StatePaused)
	paused.Name, paused.Size, paused.Progress.Size, paused.Progress.Verified = "b.iso", 1000, 1000, 250
	queued := testJob(7, api.StateQueued)
	queued.Name = "a.iso"
	line := []api.JobSummary{queued.Summary(), paused.Summary()}
	d.reply("GET /v1/line", 200, line)
	checkResult(t, run(t, d, "line"), 0,
		"#  ID  STATE   PROGRESS  SIZE    NAME\n"+
			"1  7   queued  -         -       a.iso\n"+
			"2  3   paused  25.0%     1000 B  b.iso\n", "")
	r := run(t, d, "line", "--json")
	var got []api.JobSummary
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil || !reflect.DeepEqual(got, line) {
		t.Errorf("line --json: %v, stdout:\n%s", err, r.stdout)
	}
}

// move sends each form of PLACE as the API's position and whence, and
// says where the job is now, counted from 1; a place it cannot read
// sends nothing.
func TestMove(t *testing.T) {
	for _, tt := range []struct {
		place string
		want  api.MoveRequest
	}{
		{"1", api.MoveRequest{Position: 0, From: "start"}},
		{"3", api.MoveRequest{Position: 2, From: "start"}},
		{"first", api.MoveRequest{Position: 0, From: "start"}},
		{"last", api.MoveRequest{Position: 0, From: "end"}},
		{"+2", api.MoveRequest{Position: 2, From: "current"}},
		{"-1", api.MoveRequest{Position: -1, From: "current"}},
	} {
		t.Run(tt.place, func(t *testing.T) {
			d := newFakeDaemon(t)
			d.reply("POST /v1/jobs/5/move", 200, api.MoveResponse{Position: 1})
			checkResult(t, run(t, d, "move", "5", tt.place), 0, "job 5 is number 2 in line\n", "")
			reqs := d.requests()
			var got api.MoveRequest
			if len(reqs) != 1 || json.Unmarshal([]byte(reqs[0].Body), &got) != nil || got != tt.want {
				t.Errorf("daemon got %q, want %+v", reqs, tt.want)
			}
		})
	}
	d := newFakeDaemon(t)
	for _, args := range [][]string{{"5", "0"}, {"5", "front"}, {"5"}, {"x", "1"}, {"5", "1", "2"}} {
		r := run(t, d, append([]string{"move"}, args...)...)
		if r.code != ExitUsage || strings.Count(r.stderr, "\n") < 1 || !strings.HasPrefix(r.stderr, "idmctl move: ") {
			t.Errorf("move %q: exit %d, stderr %q; want a usage error", args, r.code, r.stderr)
		}
	}
	if reqs := d.requests(); len(reqs) != 0 {
		t.Errorf("bad places sent %q", reqs)
	}
	d.reply("POST /v1/jobs/2/move", 409, api.ErrorBody{Error: "not possible in the job's state: job 2 is downloading, not waiting", Code: api.CodeConflict, Job: 2})
	checkResult(t, run(t, d, "move", "2", "first"), ExitError, "", "idmctl: not possible in the job's state: job 2 is downloading, not waiting\n")
}
