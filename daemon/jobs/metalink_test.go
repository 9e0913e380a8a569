package jobs

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/idmproject/idm/daemon/api"
)

// metalinkServer answers every request with doc as a Metalink 4, as a
// download script of a mirror network does, whatever the URL's name.
func metalinkServer(t *testing.T, doc *string) *httptest.Server {
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/metalink4+xml")
		io.WriteString(w, *doc)
	}))
	t.Cleanup(s.Close)
	return s
}

// Among a job's sources, one that answers with a Metalink holds another
// file: it is rejected with that reason, and the others finish the job.
func TestQueue_Mirrors_MetalinkAnswerRejected(t *testing.T) {
	path, data := testFile(t, 2<<20, 90)
	good := fileMirror(t, filepath.Dir(path), nil)
	doc := meta4("video.bin", data, 256<<10, good.URL+"/video.bin")
	meta := metalinkServer(t, &doc)
	q := mirrorQueue(t)
	j, _, err := q.Create(context.Background(), api.CreateRequest{Sources: []string{meta.URL + "/download?id=5", good.URL + "/video.bin"}, Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	j = finish(t, q, j.ID)
	sameFile(t, j.Path, data)
	bad := j.Progress.Sources[0]
	if bad.State != api.SourceRejected || !strings.Contains(bad.LastError, "Metalink") || bad.Verified != 0 {
		t.Errorf("the source that answers with a Metalink: state %q, error %q, %d verified; want rejected, saying why", bad.State, bad.LastError, bad.Verified)
	}
}
