//go:build linux && (amd64 || arm64)

package localapi

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/idmproject/idm/daemon/api"
	"github.com/idmproject/idm/daemon/jobs"
	"github.com/idmproject/idm/internal/usertest"
	"github.com/idmproject/idm/store"
)

// Over the real socket, a job's owner, root and the daemon's user may
// change the job; another member of the daemon's group is refused with
// 403 permission_denied, in one line, and nothing changes: the job keeps
// its state, its limit and its partial file. Anyone admitted may change a
// job with no recorded owner. In this process the daemon's user is root;
// reliability's TestAccess_ServiceUser runs idmd as a user of its own.
func TestServer_JobOwner(t *testing.T) {
	usertest.NeedRoot(t)
	path, _ := testFile(t, 4<<20, 81)
	// Slow enough that no job ends during the test: each holds a partial
	// file, which a cancel would delete.
	sources := startServers(t, path, 64<<10, 64<<10)
	shared := usertest.Mkdir(t, filepath.Join(usertest.ReachableTempDir(t), "shared"), 0, gidShared, 0o3775)
	d := openQueue(t, jobs.Config{MaxActive: 100})
	asAnn, asBob, asRoot := controlAs(t, d, ann), controlAs(t, d, bob), controlAs(t, d, root)

	n := 0
	// newJob queues a job into a directory of its own, as ann or, with
	// nil, as a caller with no identity, and waits for its partial file,
	// whose path it returns.
	newJob := func(t *testing.T, owner *apiClient) (api.Job, string) {
		t.Helper()
		n++
		dir := usertest.Mkdir(t, filepath.Join(shared, fmt.Sprint(n)), 0, gidShared, 0o775)
		req := api.CreateRequest{Sources: sources, Dir: dir}
		var j api.Job
		if owner == nil {
			var err error
			if j, _, err = d.Create(context.Background(), req); err != nil {
				t.Fatal(err)
			}
		} else if status, eb := owner.do("POST", "/v1/jobs", mustJSON(req), &j); status != http.StatusCreated {
			t.Fatalf("create: %d %+v", status, eb)
		}
		var part string
		waitFor(t, fmt.Sprintf("job %d's partial file", j.ID), time.Minute, func() bool {
			part = partialFile(t, dir)
			return part != ""
		})
		return j, part
	}
	// job returns job id as it is now, or nil once it is removed.
	job := func(t *testing.T, id uint64) *api.Job {
		t.Helper()
		j, err := d.Job(id)
		if errors.Is(err, jobs.ErrNotFound) {
			return nil
		}
		if err != nil {
			t.Fatal(err)
		}
		return &j
	}

	ops := []struct {
		name, method, path, body string
		paused                   bool // the job is paused first, for the operation to change it
		// changed reports whether the operation did what it asks, given the
		// job afterwards (nil: it is gone) and whether its partial file is
		// there.
		changed func(j *api.Job, part bool) bool
	}{
		{"pause", "POST", "/v1/jobs/%d/pause", "", false, func(j *api.Job, part bool) bool {
			return j != nil && j.State == api.StatePaused && part
		}},
		{"resume", "POST", "/v1/jobs/%d/resume", "", true, func(j *api.Job, part bool) bool {
			return j != nil && j.State != api.StatePaused && part
		}},
		{"cancel", "POST", "/v1/jobs/%d/cancel", "", false, func(j *api.Job, part bool) bool {
			return j != nil && j.State == api.StateCancelled && !part
		}},
		{"remove", "DELETE", "/v1/jobs/%d", "", false, func(j *api.Job, part bool) bool {
			return j == nil && !part
		}},
		{"limit", "PUT", "/v1/jobs/%d/limit", `{"limit":12345}`, false, func(j *api.Job, part bool) bool {
			return j != nil && j.Limit == 12345 && part
		}},
	}
	callers := []struct {
		name    string
		owner   *apiClient // who creates the job; nil: nobody known
		caller  *apiClient
		allowed bool
	}{
		{"owner", asAnn, asAnn, true},
		{"other member", asAnn, asBob, false},
		{"root", asAnn, asRoot, true},
		{"anyone, job with no owner", nil, asBob, true},
	}
	for _, op := range ops {
		for _, who := range callers {
			t.Run(op.name+"/"+who.name, func(t *testing.T) {
				before, part := newJob(t, who.owner)
				if op.paused {
					if status, eb := asRoot.do("POST", fmt.Sprintf("/v1/jobs/%d/pause", before.ID), "", &before); status != http.StatusOK {
						t.Fatalf("pause: %d %+v", status, eb)
					}
				}
				status, eb := who.caller.do(op.method, fmt.Sprintf(op.path, before.ID), op.body, nil)
				// A change to a running job stops its transfer and answers
				// once it has: the job is as the answer left it.
				j := job(t, before.ID)
				if who.allowed {
					if status >= 400 || !op.changed(j, exists(part)) {
						t.Fatalf("%d %+v; the job is now %+v, partial file there: %v", status, eb, j, exists(part))
					}
					return
				}
				says := fmt.Sprintf("job %d belongs to uid %d; only its owner, root or the daemon's user may change it", before.ID, uidAnn)
				if status != http.StatusForbidden || eb.Code != api.CodePermissionDenied || eb.Error != says {
					t.Errorf("%d %+v, want 403 %s saying %q", status, eb, api.CodePermissionDenied, says)
				}
				// A running job's state comes and goes with its sources;
				// what a refused change would have changed must not have.
				if j == nil || op.changed(j, exists(part)) || (j.State == api.StatePaused) != op.paused || j.Limit != before.Limit || !exists(part) {
					t.Errorf("a refused %s changed the job: it was %s, limit %d; it is %+v, partial file there: %v",
						op.name, before.State, before.Limit, j, exists(part))
				}
			})
		}
	}

	// Creating a job with the sources and directory of another's
	// unfinished job makes a new job, with "resume" too: the other's is
	// neither named nor touched. Each caller's own duplicate is found.
	t.Run("create", func(t *testing.T) {
		anns, _ := newJob(t, asAnn)
		if status, eb := asAnn.do("POST", fmt.Sprintf("/v1/jobs/%d/pause", anns.ID), "", nil); status != http.StatusOK {
			t.Fatalf("pause: %d %+v", status, eb)
		}
		req := api.CreateRequest{Sources: anns.Sources, Dir: anns.Dir, Resume: true}
		var bobs api.Job
		if status, eb := asBob.do("POST", "/v1/jobs", mustJSON(req), &bobs); status != http.StatusCreated || bobs.ID == anns.ID {
			t.Errorf("bob resumes ann's job by creating it: %d %+v, job %d; want 201 and a new job", status, eb, bobs.ID)
		}
		req.Resume = false
		if status, eb := asBob.do("POST", "/v1/jobs", mustJSON(req), nil); status != http.StatusConflict || eb.Code != api.CodeExists || eb.Job != bobs.ID {
			t.Errorf("bob creates his job again: %d %+v, want 409 exists naming his job %d", status, eb, bobs.ID)
		}
		if status, eb := asAnn.do("POST", "/v1/jobs", mustJSON(req), nil); status != http.StatusConflict || eb.Code != api.CodeExists || eb.Job != anns.ID {
			t.Errorf("ann creates her job again: %d %+v, want 409 exists naming her job %d", status, eb, anns.ID)
		}
		if j := job(t, anns.ID); j == nil || j.State != api.StatePaused {
			t.Errorf("bob's creates changed ann's job: %+v", j)
		}
		// Root may change both; the oldest is resumed.
		req.Resume = true
		var j api.Job
		if status, eb := asRoot.do("POST", "/v1/jobs", mustJSON(req), &j); status != http.StatusOK || j.ID != anns.ID || j.State == api.StatePaused {
			t.Errorf("root resumes ann's job by creating it: %d %+v, job %d %s", status, eb, j.ID, j.State)
		}
	})

	// The global limit slows every job: only root and the daemon's user
	// may set it. Anyone admitted may read it.
	t.Run("global limit", func(t *testing.T) {
		status, eb := asBob.do("PUT", "/v1/limit", `{"limit":1000}`, nil)
		says := fmt.Sprintf("uid %d may not set the global limit: it slows every job, so only root or the daemon's user may set it", uidBob)
		if status != http.StatusForbidden || eb.Code != api.CodePermissionDenied || eb.Error != says {
			t.Errorf("bob sets the global limit: %d %+v, want 403 %s saying %q", status, eb, api.CodePermissionDenied, says)
		}
		var l api.LimitResponse
		if status, eb := asBob.do("GET", "/v1/limit", "", &l); status != http.StatusOK || l.Limit != 0 {
			t.Errorf("bob reads the global limit after his refused change: %d %+v, limit %d; want 200, 0", status, eb, l.Limit)
		}
		if status, eb := asRoot.do("PUT", "/v1/limit", `{"limit":0}`, &l); status != http.StatusOK {
			t.Errorf("root sets the global limit: %d %+v", status, eb)
		}
	})

	// The line of waiting jobs is each caller's own: bob sees and moves
	// his jobs, not ann's; root sees and moves both.
	t.Run("line", func(t *testing.T) {
		anns, _ := newJob(t, asAnn)
		bobs, _ := newJob(t, asBob)
		for _, j := range []api.Job{anns, bobs} {
			if status, eb := asRoot.do("POST", fmt.Sprintf("/v1/jobs/%d/pause", j.ID), "", nil); status != http.StatusOK {
				t.Fatalf("pause: %d %+v", status, eb)
			}
		}
		lineOf := func(c *apiClient) []uint64 {
			t.Helper()
			var line []api.JobSummary
			if status, eb := c.do("GET", "/v1/line", "", &line); status != http.StatusOK {
				t.Fatalf("GET /v1/line: %d %+v", status, eb)
			}
			var ids []uint64
			for _, j := range line {
				ids = append(ids, j.ID)
			}
			return ids
		}
		if got := lineOf(asBob); slices.Contains(got, anns.ID) || !slices.Contains(got, bobs.ID) {
			t.Errorf("bob's line is %v: want his job %d, not ann's %d", got, bobs.ID, anns.ID)
		}
		if got := lineOf(asRoot); !slices.Contains(got, anns.ID) || !slices.Contains(got, bobs.ID) {
			t.Errorf("root's line is %v: want jobs %d and %d", got, anns.ID, bobs.ID)
		}
		says := fmt.Sprintf("job %d belongs to uid %d; only its owner, root or the daemon's user may change it", anns.ID, uidAnn)
		if status, eb := asBob.do("POST", fmt.Sprintf("/v1/jobs/%d/move", anns.ID), `{"position":0}`, nil); status != http.StatusForbidden || eb.Error != says {
			t.Errorf("bob moves ann's job: %d %+v, want 403 saying %q", status, eb, says)
		}
		for _, c := range []*apiClient{asAnn, asRoot} {
			var m api.MoveResponse
			if status, eb := c.do("POST", fmt.Sprintf("/v1/jobs/%d/move", anns.ID), `{"position":0}`, &m); status != http.StatusOK || m.Position != 0 {
				t.Errorf("move ann's job to the front: %d %+v, position %d", status, eb, m.Position)
			}
		}
		if got := lineOf(asRoot); len(got) == 0 || got[0] != anns.ID {
			t.Errorf("root's line is %v, want ann's job %d first", got, anns.ID)
		}
	})

	// Reading stays open: another member lists, gets and watches ann's
	// jobs.
	t.Run("read", func(t *testing.T) {
		anns, _ := newJob(t, asAnn)
		var jobs []api.Job
		if status, eb := asBob.do("GET", "/v1/jobs", "", &jobs); status != http.StatusOK || len(jobs) == 0 {
			t.Errorf("bob lists the jobs: %d %+v, %d jobs", status, eb, len(jobs))
		}
		var j api.Job
		if status, eb := asBob.do("GET", fmt.Sprintf("/v1/jobs/%d", anns.ID), "", &j); status != http.StatusOK || j.ID != anns.ID {
			t.Errorf("bob gets ann's job: %d %+v", status, eb)
		}
		resp, err := asBob.http.Get(fmt.Sprintf("http://idmd/v1/jobs/%d/events", anns.ID))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var e api.Event
		line, err := bufio.NewReader(resp.Body).ReadBytes('\n')
		if resp.StatusCode != http.StatusOK || err != nil || json.Unmarshal(line, &e) != nil || e.Job.ID != anns.ID {
			t.Errorf("bob watches ann's job: %d, first line %q (%v)", resp.StatusCode, line, err)
		}
	})
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

// partialFile returns the path of the partial file in dir, or "" when
// there is none.
func partialFile(t *testing.T, dir string) string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".idmpart") {
			return filepath.Join(dir, e.Name())
		}
	}
	return ""
}

// A job whose record cannot be read has an owner no one can tell: another
// member may not remove it, root may.
func TestServer_BadRecord_OwnerUnknown(t *testing.T) {
	usertest.NeedRoot(t)
	dir, bad := stateWithBadRecord(t)
	d := openQueue(t, jobs.Config{StateDir: dir})
	asBob, asRoot := controlAs(t, d, bob), controlAs(t, d, root)
	url := fmt.Sprintf("/v1/jobs/%d", bad)
	says := fmt.Sprintf("job %d cannot be read, so its owner is unknown; only root or the daemon's user may change it", bad)
	if status, eb := asBob.do("DELETE", url, "", nil); status != http.StatusForbidden || eb.Code != api.CodePermissionDenied || eb.Error != says {
		t.Errorf("bob removes the job that cannot be read: %d %+v, want 403 %s saying %q", status, eb, api.CodePermissionDenied, says)
	}
	if _, err := d.Job(bad); !errors.Is(err, store.ErrBadRecord) {
		t.Errorf("after bob's refused remove the job reads %v, want it still there and unreadable", err)
	}
	if status, eb := asRoot.do("DELETE", url, "", nil); status != http.StatusNoContent {
		t.Errorf("root removes the job that cannot be read: %d %+v", status, eb)
	}
}
