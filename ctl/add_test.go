package ctl

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/idmproject/idm/daemon/api"
)

// A lone URL is sent to idmd as one job that follows the Metalink it may
// answer with, with --select and --location for that Metalink; add
// prints that one job's ID, as idmd answers at once, whatever the URL
// turns out to be.
func TestAdd_LoneURLFollowsMetalink(t *testing.T) {
	dir := t.TempDir()
	for _, tt := range []struct {
		name string
		args []string
		want api.CreateRequest
	}{
		{
			name: "select and locations",
			args: []string{"-o", dir, "--select", "b.iso, c.iso", "--location", "de,fr", "https://dl.example.org/download?id=5"},
			want: api.CreateRequest{Sources: []string{"https://dl.example.org/download?id=5"}, Dir: dir, FollowMetalink: true,
				MetalinkOptions: api.MetalinkOptions{Select: []string{"b.iso", "c.iso"}, Locations: []string{"de", "fr"}}},
		},
		{
			name: "resumed",
			args: []string{"-o", dir, "-r", "http://dl.example.org/f.iso"},
			want: api.CreateRequest{Sources: []string{"http://dl.example.org/f.iso"}, Dir: dir, Resume: true, FollowMetalink: true},
		},
		{
			name: "named",
			args: []string{"-o", dir, "--name", "debian.iso", "https://dl.example.org/download?id=5"},
			want: api.CreateRequest{Sources: []string{"https://dl.example.org/download?id=5"}, Dir: dir, Name: "debian.iso", FollowMetalink: true},
		},
		{
			name: "an idm server follows nothing",
			args: []string{"-o", dir, "idm://127.0.0.1:9001"},
			want: api.CreateRequest{Sources: []string{"idm://127.0.0.1:9001"}, Dir: dir},
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			d := newFakeDaemon(t)
			d.reply("POST /v1/jobs", 201, testJob(7, api.StateQueued))
			checkResult(t, run(t, d, append([]string{"add"}, tt.args...)...), 0, "7\n", "")
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
	t.Run("json", func(t *testing.T) {
		d := newFakeDaemon(t)
		j := testJob(7, api.StateQueued)
		j.FollowMetalink = true
		d.reply("POST /v1/jobs", 201, j)
		r := run(t, d, "--json", "add", "https://dl.example.org/download?id=5")
		var got api.Job
		if err := json.Unmarshal([]byte(r.stdout), &got); err != nil || !reflect.DeepEqual(got, j) {
			t.Errorf("got %q (%v), want the one job as JSON", r.stdout, err)
		}
	})
	t.Run("exists", func(t *testing.T) {
		d := newFakeDaemon(t)
		d.reply("POST /v1/jobs", 409, api.ErrorBody{Error: "exists", Code: api.CodeExists, Job: 3})
		checkResult(t, run(t, d, "add", "-o", dir, "https://dl.example.org/download?id=5"), ExitError, "",
			"idmctl: a download of the same servers into "+dir+" exists (job 3); use -r to resume it\n")
	})
	t.Run("select without a Metalink", func(t *testing.T) {
		d := newFakeDaemon(t)
		r := run(t, d, "add", "--select", "a.iso", "http://a.example/f", "http://b.example/f")
		if r.code != ExitUsage || !strings.Contains(r.stderr, "--select and --location are for a Metalink") || len(d.requests()) != 0 {
			t.Errorf("exit %d, stderr %q, daemon got %q; want a usage error and no request", r.code, r.stderr, d.requests())
		}
	})
}

// A Metalink file is sent whole, with -r to resume the jobs of its files
// that exist already.
func TestAdd_MetalinkFile(t *testing.T) {
	dir := t.TempDir()
	const doc = `<metalink xmlns="urn:ietf:params:xml:ns:metalink"/>`
	path := filepath.Join(t.TempDir(), "release.meta4")
	if err := os.WriteFile(path, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	d := newFakeDaemon(t)
	d.reply("POST /v1/metalinks", 200, []api.Job{testJob(4, api.StateQueued)})
	checkResult(t, run(t, d, "add", "-r", "-o", dir, "--select", "a.iso", path), 0, "4\n", "")
	reqs := d.requests()
	if len(reqs) != 1 {
		t.Fatalf("daemon got %q", reqs)
	}
	var got api.MetalinkRequest
	if err := json.Unmarshal([]byte(reqs[0].Body), &got); err != nil {
		t.Fatal(err)
	}
	want := api.MetalinkRequest{Document: doc, Dir: dir, Resume: true, MetalinkOptions: api.MetalinkOptions{Select: []string{"a.iso"}}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("sent %+v, want %+v", got, want)
	}
	// A Metalink names its files: a name for one is refused.
	r := run(t, d, "add", "--name", "x.iso", path)
	if r.code != ExitUsage || !strings.Contains(r.stderr, "a Metalink names its own files") || len(d.requests()) != 1 {
		t.Errorf("exit %d, stderr %q, daemon got %q; want a usage error and no request", r.code, r.stderr, d.requests())
	}
}

// testNetrc writes a ~/.netrc in a new home for the test: two machines
// and a default entry.
func testNetrc(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	netrc := "machine dl.example.org login ann password pw1\nmachine Mirror.Example.net login bob password pw2\ndefault login anon password pw3\n"
	if err := os.WriteFile(filepath.Join(home, ".netrc"), []byte(netrc), 0o600); err != nil {
		t.Fatal(err)
	}
}

// With --netrc, a URL the user typed gets its host's credentials, or the
// default ones, in its address; the mirrors a Metalink lists get only
// the machine entries, sent with the request for idmd to give each
// mirror its own host's: never the default entry, which would go to
// every host the Metalink's author chose.
func TestAdd_Netrc(t *testing.T) {
	testNetrc(t)
	machines := []api.Login{{Host: "dl.example.org", Login: "ann", Password: "pw1"}, {Host: "mirror.example.net", Login: "bob", Password: "pw2"}}
	doc := filepath.Join(t.TempDir(), "f.meta4")
	if err := os.WriteFile(doc, []byte("<metalink/>"), 0o644); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for _, tt := range []struct {
		name, route string
		args        []string
		want        any
	}{
		{"a lone URL", "POST /v1/jobs", []string{"https://dl.example.org/download?id=5"},
			&api.CreateRequest{Sources: []string{"https://ann:pw1@dl.example.org/download?id=5"}, Dir: dir, FollowMetalink: true, MetalinkOptions: api.MetalinkOptions{Logins: machines}}},
		{"two URLs", "POST /v1/jobs", []string{"https://dl.example.org/f", "https://other.example/f"},
			&api.CreateRequest{Sources: []string{"https://ann:pw1@dl.example.org/f", "https://anon:pw3@other.example/f"}, Dir: dir}},
		{"a Metalink's URL", "POST /v1/metalinks", []string{"https://other.example/f.meta4"},
			&api.MetalinkRequest{URL: "https://anon:pw3@other.example/f.meta4", Dir: dir, MetalinkOptions: api.MetalinkOptions{Logins: machines}}},
		{"a Metalink file", "POST /v1/metalinks", []string{doc},
			&api.MetalinkRequest{Document: "<metalink/>", Dir: dir, MetalinkOptions: api.MetalinkOptions{Logins: machines}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			d := newFakeDaemon(t)
			var answer any = []api.Job{testJob(7, api.StateQueued)}
			if tt.route == "POST /v1/jobs" {
				answer = testJob(7, api.StateQueued)
			}
			d.reply(tt.route, 201, answer)
			checkResult(t, run(t, d, append([]string{"add", "--netrc", "-o", dir}, tt.args...)...), 0, "7\n", "")
			reqs := d.requests()
			if len(reqs) != 1 {
				t.Fatalf("daemon got %q", reqs)
			}
			got := reflect.New(reflect.TypeOf(tt.want).Elem()).Interface()
			if err := json.Unmarshal([]byte(reqs[0].Body), got); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("sent %+v, want %+v", got, tt.want)
			}
		})
	}
}

// mirrors add --netrc gives the URLs the user typed their hosts'
// credentials, or the default ones, as add does.
func TestMirrors_Netrc(t *testing.T) {
	testNetrc(t)
	d := newFakeDaemon(t)
	d.reply("POST /v1/jobs/3/sources", 200, testJob(3, api.StateQueued))
	run(t, d, "mirrors", "add", "--netrc", "3", "https://mirror.example.net/f", "https://ann:own@dl.example.org/f", "https://else.example/f")
	reqs := d.requests()
	if len(reqs) != 1 {
		t.Fatalf("daemon got %q", reqs)
	}
	var got api.SourcesRequest
	if err := json.Unmarshal([]byte(reqs[0].Body), &got); err != nil {
		t.Fatal(err)
	}
	want := []string{"https://bob:pw2@mirror.example.net/f", "https://ann:own@dl.example.org/f", "https://anon:pw3@else.example/f"}
	if !reflect.DeepEqual(got.Add, want) {
		t.Errorf("added %q, want %q", got.Add, want)
	}
	if r := run(t, d, "mirrors", "rm", "--netrc", "3", "https://mirror.example.net/f"); r.code != ExitUsage {
		t.Errorf("mirrors rm --netrc: exit %d, stderr %q; want a usage error", r.code, r.stderr)
	}
}
