package localapi

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/idmproject/idm/daemon/api"
	"github.com/idmproject/idm/daemon/jobs"
)

// POST /v1/jobs with follow_metalink answers a list of jobs, as POST
// /v1/metalinks does, when the lone source answers with a Metalink, and
// the one job, as ever, when it does not; Metalink options without
// follow_metalink are refused.
func TestServer_CreateFollowing(t *testing.T) {
	const doc = `<metalink xmlns="urn:ietf:params:xml:ns:metalink">
<file name="a.iso"><size>5</size><url>http://127.0.0.1:1/a.iso</url></file>
<file name="b.iso"><size>6</size><url>http://127.0.0.1:1/b.iso</url></file>
</metalink>`
	meta := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/download" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/metalink4+xml")
		fmt.Fprint(w, doc)
	}))
	t.Cleanup(meta.Close)
	_, c := startControl(t, jobs.Config{})

	var list []api.Job
	status, eb := c.do("POST", "/v1/jobs", mustJSON(api.CreateRequest{Sources: []string{meta.URL + "/download"}, Dir: t.TempDir(), FollowMetalink: true}), &list)
	if status != http.StatusCreated || len(list) != 2 || list[0].Name != "a.iso" || list[1].Name != "b.iso" {
		t.Errorf("a URL that answers with a Metalink: %d %+v, jobs %+v; want 201 and its two files' jobs", status, eb, list)
	}
	var one api.Job
	status, eb = c.do("POST", "/v1/jobs", mustJSON(api.CreateRequest{Sources: []string{meta.URL + "/missing"}, Dir: t.TempDir(), FollowMetalink: true}), &one)
	if status != http.StatusCreated || one.ID == 0 || len(one.Sources) != 1 {
		t.Errorf("a URL that answers with no Metalink: %d %+v, job %+v; want 201 and its one job", status, eb, one)
	}
	status, eb = c.do("POST", "/v1/jobs", mustJSON(api.CreateRequest{Sources: []string{meta.URL + "/download"}, Dir: t.TempDir(),
		MetalinkOptions: api.MetalinkOptions{Select: []string{"a.iso"}}}), nil)
	if status != http.StatusBadRequest || !strings.Contains(eb.Error, "follow_metalink") {
		t.Errorf("select without follow_metalink: %d %+v; want 400 saying why", status, eb)
	}
}
