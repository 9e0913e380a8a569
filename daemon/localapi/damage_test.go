package localapi

import (
	"fmt"
	"strings"
	"testing"

	"github.com/idmproject/idm/daemon/api"
	"github.com/idmproject/idm/daemon/jobs"
)

// TestServer_BadRecord asks the API for a job whose record is garbage:
// an error answer that says so, and the job can be removed.
func TestServer_BadRecord(t *testing.T) {
	dir, bad := stateWithBadRecord(t)
	_, c := startControl(t, jobs.Config{StateDir: dir})
	url := fmt.Sprintf("/v1/jobs/%d", bad)
	status, eb := c.do("GET", url, "", nil)
	if status != 500 || !strings.Contains(eb.Error, "cannot be read") {
		t.Errorf("GET the bad job: %d %+v, want 500 saying it cannot be read", status, eb)
	}
	var jobs []api.Job
	if status, eb := c.do("GET", "/v1/jobs", "", &jobs); status != 200 || len(jobs) != 1 {
		t.Errorf("GET jobs: %d %+v, %d jobs; want the good one", status, eb, len(jobs))
	}
	if status, eb := c.do("DELETE", url, "", nil); status != 204 {
		t.Errorf("DELETE the bad job: %d %+v", status, eb)
	}
	if status, _ := c.do("GET", url, "", nil); status != 404 {
		t.Errorf("GET the removed job: %d, want 404", status)
	}
}
