package localapi

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/idmproject/idm/daemon/api"
	"github.com/idmproject/idm/daemon/auth"
	"github.com/idmproject/idm/daemon/jobs"
)

// On Linux, where idmd reads every caller's credentials, a caller whose
// credentials could not be read is refused on every route with 403
// forbidden, in one line that says so, and nothing changes: it may be
// anyone.
func TestServer_Unidentified_Forbidden(t *testing.T) {
	d := openQueue(t, jobs.Config{})
	out := t.TempDir()
	// A stream let through would never end: every request's context is
	// over before it starts, which changes nothing else.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	h := (&Server{Queue: d, Access: auth.Access{UID: os.Geteuid(), Group: -1}, Logger: quietLog()}).routes()
	for _, rt := range []struct{ method, path, body string }{
		{http.MethodGet, "/v1/version", ""},
		{http.MethodGet, "/v1/jobs", ""},
		{http.MethodPost, "/v1/jobs", mustJSON(api.CreateRequest{Sources: []string{"idm://127.0.0.1:1"}, Dir: out})},
		{http.MethodPut, "/v1/limit", `{"limit":1000}`},
		{http.MethodGet, "/v1/events", ""},
	} {
		// No ConnContext: the request's context carries no caller, as
		// when the socket cannot tell who is at the other end.
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequestWithContext(ctx, rt.method, "http://idmd"+rt.path, strings.NewReader(rt.body)))
		var eb api.ErrorBody
		json.Unmarshal(rec.Body.Bytes(), &eb)
		if rec.Code != http.StatusForbidden || eb.Code != api.CodeForbidden || !strings.Contains(eb.Error, "could not be identified") || strings.Contains(eb.Error, "\n") {
			t.Errorf("%s %s with no credentials: %d %s, want 403 %s saying the caller could not be identified", rt.method, rt.path, rec.Code, rec.Body.Bytes(), api.CodeForbidden)
		}
	}
	if all := d.Jobs(); len(all) != 0 || d.Limit() != 0 {
		t.Errorf("refused requests changed the daemon: %d jobs, limit %d", len(all), d.Limit())
	}
	if ents, _ := os.ReadDir(out); len(ents) != 0 {
		t.Errorf("refused requests left files in %s: %v", out, ents)
	}
}
