package jobs

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/idmproject/idm/daemon/api"
	"github.com/idmproject/idm/daemon/auth"
	"github.com/idmproject/idm/internal/usertest"
	"github.com/idmproject/idm/store"
)

// The daemon checks the owner again each time a job starts: a job whose
// directory its owner may no longer write to fails, saying why, when it
// is resumed and when idmd starts again, and nothing is written there.
func TestQueue_Start_RechecksOwner(t *testing.T) {
	usertest.NeedRoot(t)
	base := usertest.ReachableTempDir(t)
	dir := usertest.Mkdir(t, filepath.Join(base, "shared"), 0, usertest.GIDShared, 0o775|fs.ModeSetgid)
	state := t.TempDir()
	d, err := Open(Config{StateDir: state, Logger: quietLog()})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { d.Close() }()
	ann := usertest.Ann
	asAnn := auth.WithPeer(context.Background(), auth.Peer{UID: ann.UID, GID: ann.GID, Groups: ann.Groups})
	// Nobody listens on these: the jobs wait, retrying, until stopped.
	create := func(port string) uint64 {
		t.Helper()
		j, _, err := d.Create(asAnn, api.CreateRequest{Sources: []string{"idm://127.0.0.1:" + port}, Dir: dir})
		if err != nil {
			t.Fatal(err)
		}
		rec, err := d.db.Get(j.ID)
		if err != nil {
			t.Fatal(err)
		}
		_, dirID, err := auth.ResolveDir(dir, nil)
		if err != nil {
			t.Fatal(err)
		}
		if rec.Owner == nil || rec.Owner.UID != ann.UID || rec.Owner.GID != ann.GID || !slices.Equal(rec.Owner.Groups, ann.Groups) || rec.DirID != dirID {
			t.Fatalf("job %d records owner %+v and directory %+v; want %+v and %+v", j.ID, rec.Owner, rec.DirID, ann, dirID)
		}
		return j.ID
	}
	paused := create("1")
	if _, err := d.Pause(context.Background(), paused); err != nil {
		t.Fatal(err)
	}
	running := create("2")

	// ann's group loses write permission.
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	failed := func(id uint64) {
		t.Helper()
		j, err := d.Job(id)
		if err != nil {
			t.Fatal(err)
		}
		if j.State != api.StateFailed || !strings.Contains(j.LastError, "uid 64101 may not create files in "+dir) {
			t.Errorf("job %d: %s (%q), want failed saying why", id, j.State, j.LastError)
		}
	}
	if _, err := d.Resume(context.Background(), paused); err != nil {
		t.Fatal(err)
	}
	failed(paused)

	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if d, err = Open(Config{StateDir: state, Logger: quietLog()}); err != nil {
		t.Fatal(err)
	}
	failed(running)
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("refused jobs left files in %s: %v", dir, ents)
	}
}

// Only who may change a job may change its sources: another user is
// refused, and the job keeps its sources.
func TestQueue_SetSources_OtherUserRefused(t *testing.T) {
	usertest.NeedRoot(t)
	base := usertest.ReachableTempDir(t)
	dir := usertest.Mkdir(t, filepath.Join(base, "shared"), 0, usertest.GIDShared, 0o775|fs.ModeSetgid)
	d, err := Open(Config{StateDir: t.TempDir(), Logger: quietLog()})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	as := func(o *store.Owner) context.Context {
		return auth.WithPeer(context.Background(), auth.Peer{UID: o.UID, GID: o.GID, Groups: o.Groups})
	}
	j, _, err := d.Create(as(usertest.Ann), api.CreateRequest{Sources: []string{"http://127.0.0.1:1/f.iso"}, Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	_, err = d.SetSources(as(usertest.Bob), j.ID, []string{"http://127.0.0.1:2/evil.iso"}, []string{"http://127.0.0.1:1/f.iso"})
	var denied *auth.DeniedError
	if !errors.As(err, &denied) {
		t.Errorf("bob changing ann's sources: %v, want refused", err)
	}
	if got, _ := d.Job(j.ID); len(got.Sources) != 1 || got.Sources[0] != "http://127.0.0.1:1/f.iso" {
		t.Errorf("after the refusal the job's sources are %v", got.Sources)
	}
	if _, err := d.SetSources(as(usertest.Ann), j.ID, []string{"http://127.0.0.1:2/f.iso"}, nil); err != nil {
		t.Errorf("ann adding a source to her job: %v", err)
	}
}
