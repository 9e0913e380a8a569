//go:build linux && (amd64 || arm64)

// usertest.DialAs is for these only.

package localapi

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/idmproject/idm/daemon/api"
	"github.com/idmproject/idm/daemon/auth"
	"github.com/idmproject/idm/daemon/jobs"
	"github.com/idmproject/idm/internal/usertest"
	"github.com/idmproject/idm/store"
)

// The users of the access tests (see package usertest).
const (
	uidAnn, uidBob = usertest.UIDAnn, usertest.UIDBob
	gidShared      = usertest.GIDShared
)

var ann, bob, root = usertest.Ann, usertest.Bob, usertest.Root

// controlAs serves a daemon's API on a socket open to everyone, for the
// members of gidShared, and returns a client that calls it as who.
func controlAs(t *testing.T, d *jobs.Queue, who *store.Owner) *apiClient {
	t.Helper()
	sock := filepath.Join(usertest.ReachableTempDir(t), "idmd.sock")
	serve(t, &Server{Queue: d, Access: auth.Access{UID: os.Geteuid(), Group: gidShared}, Logger: quietLog()}, sock, 0o666)
	return &apiClient{t: t, http: &http.Client{Transport: &http.Transport{
		DialContext: func(context.Context, string, string) (net.Conn, error) { return usertest.DialAs(who, sock) },
	}}}
}

// Over the real socket, as a member of the daemon's group: a directory
// the member may not create files in is refused with 403
// permission_denied, saying which and why, and nothing is written or
// queued; one it may, by a supplementary group, is accepted, and the job
// is the caller's: another member may not change it.
func TestServer_Create_DirDenied(t *testing.T) {
	usertest.NeedRoot(t)
	base := usertest.ReachableTempDir(t)
	at := func(name string) string { return filepath.Join(base, name) }
	usertest.Mkdir(t, at("rootonly"), 0, 0, 0o700)
	usertest.Mkdir(t, at("bobs"), uidBob, uidBob, 0o755)
	usertest.Mkdir(t, at("shared"), 0, gidShared, 0o775|fs.ModeSetgid|fs.ModeSticky)
	os.Symlink("../rootonly", at("shared/planted"))

	d := openQueue(t, jobs.Config{})
	c := controlAs(t, d, ann)
	create := func(dir string, out any) (int, api.ErrorBody) {
		// Nobody listens there: an accepted job waits.
		return c.do("POST", "/v1/jobs", mustJSON(api.CreateRequest{Sources: []string{"idm://127.0.0.1:1"}, Dir: dir}), out)
	}
	for _, tc := range []struct{ dir, says string }{
		{at("rootonly"), "uid 64101 may not create files in " + at("rootonly") + ": no write or search permission on " + at("rootonly") + " (mode 0700, owner 0, group 0)"},
		{at("bobs"), "uid 64101 may not create files in " + at("bobs") + ": no write permission on " + at("bobs") + " (mode 0755, owner 64102, group 64102)"},
		{at("shared/planted"), "uid 64101 may not create files in " + at("shared/planted") + ": no write or search permission on " + at("rootonly") + " (mode 0700, owner 0, group 0)"},
	} {
		status, eb := create(tc.dir, nil)
		if status != http.StatusForbidden || eb.Code != api.CodePermissionDenied || eb.Error != "permission denied: "+tc.says {
			t.Errorf("%s: %d %+v, want 403 %s saying %q", tc.dir, status, eb, api.CodePermissionDenied, tc.says)
		}
	}
	for _, dir := range []string{at("rootonly"), at("bobs")} {
		if ents, _ := os.ReadDir(dir); len(ents) != 0 {
			t.Errorf("a refused request left files in %s: %v", dir, ents)
		}
	}
	if all := d.Jobs(); len(all) != 0 {
		t.Fatalf("refused requests queued %d jobs", len(all))
	}

	var j api.Job
	if status, eb := create(at("shared"), &j); status != http.StatusCreated {
		t.Fatalf("shared directory: %d %+v", status, eb)
	}
	pause := fmt.Sprintf("/v1/jobs/%d/pause", j.ID)
	says := fmt.Sprintf("job %d belongs to uid %d; only its owner, root or the daemon's user may change it", j.ID, uidAnn)
	if status, eb := controlAs(t, d, bob).do("POST", pause, "", nil); status != http.StatusForbidden || eb.Error != says {
		t.Errorf("bob pauses ann's job: %d %+v, want 403 saying %q", status, eb, says)
	}
	if status, eb := c.do("POST", pause, "", nil); status != http.StatusOK {
		t.Errorf("ann pauses her job: %d %+v", status, eb)
	}
	b, _ := json.Marshal(j)
	if strings.Contains(string(b), "owner") {
		t.Errorf("the API shows the owner: %s", b)
	}
}

// The aria2 RPC's secret goes to every caller the socket admits, a
// member of the daemon's group too, and to no one else.
func TestServer_RPC_Access(t *testing.T) {
	usertest.NeedRoot(t)
	d := openQueue(t, jobs.Config{})
	info := &api.RPC{Listen: "127.0.0.1:6800", URL: "http://127.0.0.1:6800/jsonrpc", Secret: "abc"}
	for _, tc := range []struct {
		group  int
		status int
	}{{gidShared, http.StatusOK}, {-1, http.StatusForbidden}} {
		sock := filepath.Join(usertest.ReachableTempDir(t), "idmd.sock")
		serve(t, &Server{Queue: d, Access: auth.Access{UID: os.Geteuid(), Group: tc.group}, Logger: quietLog(), RPC: info}, sock, 0o666)
		c := &apiClient{t: t, http: &http.Client{Transport: &http.Transport{
			DialContext: func(context.Context, string, string) (net.Conn, error) { return usertest.DialAs(ann, sock) },
		}}}
		var got api.RPC
		status, eb := c.do("GET", "/v1/rpc", "", &got)
		if status != tc.status || (status == http.StatusOK && got != *info) || (status != http.StatusOK && eb.Code != api.CodeForbidden) {
			t.Errorf("group %d: %d %+v %+v, want %d", tc.group, status, got, eb, tc.status)
		}
	}
}
