package jobs

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/idmproject/idm/daemon/api"
	"github.com/idmproject/idm/daemon/auth"
	"github.com/idmproject/idm/daemon/engine"
	"github.com/idmproject/idm/internal/safetext"
	"github.com/idmproject/idm/store"
	"github.com/idmproject/idm/transport/addr"
	"github.com/idmproject/idm/transport/httpsrc"
	"github.com/idmproject/idm/transport/metalink"
)

// CreateMetalink queues one job per file of a Metalink 4 document (those
// req.Select names, or every one): each downloads from the file's
// mirrors, best first, and starts with its file decided when the
// Metalink gives piece hashes, so every piece is checked against them;
// its whole-file digests are checked before it is published. A Metalink
// named by its URL is fetched as its jobs' mirrors are, with the
// request's HTTP options; a mirror that is that URL is left out, since
// it answers with the Metalink, not the file. The whole request is
// checked before any job is created: a file whose unfinished job exists
// already (same mirrors and directory) refuses it with ErrExists, unless
// req.Resume asks for that job to be resumed. created says whether any
// job is new.
func (q *Queue) CreateMetalink(ctx context.Context, req api.MetalinkRequest) (jobs []api.Job, created bool, err error) {
	logins, err := loginsByHost(req.Logins)
	if err != nil {
		return nil, false, err
	}
	doc := req.Document
	var self []string
	reach := httpsrc.Machine // a document the user gave lists the user's mirrors
	if req.URL != "" {
		if req.Document != "" {
			return nil, false, fmt.Errorf("%w: a Metalink's document or its URL, not both", ErrInvalid)
		}
		a, err := addr.Parse(req.URL)
		if err != nil || a.Scheme == addr.IDM {
			return nil, false, fmt.Errorf("%w: Metalink %q: want an http:// or https:// URL", ErrInvalid, addr.Redact(req.URL))
		}
		if doc, self, reach, err = q.fetchMetalink(ctx, a, req.HTTPOptions); err != nil {
			return nil, false, err
		}
	}
	return q.metalinkJobs(ctx, doc, self, reach, logins, req)
}

// metalinkJobs queues the jobs of the Metalink document doc as
// CreateMetalink says, those of req's options. self are the addresses
// the document was fetched from: no job takes them as a mirror. Only
// mirrors within reach, what the server that sent the document allows,
// are kept. A mirror on a host of logins is given its credentials.
func (q *Queue) metalinkJobs(ctx context.Context, doc string, self []string, reach httpsrc.Class, logins map[string]api.Login, req api.MetalinkRequest) (jobs []api.Job, created bool, err error) {
	plan, err := q.planMetalink(ctx, doc, self, reach, logins, req)
	if err != nil {
		return nil, false, err
	}
	for _, p := range plan {
		if p.same != 0 && !req.Resume {
			// Said before any job is made: half a Metalink's jobs, made
			// and not named, would be for the caller to find.
			return nil, false, fmt.Errorf("%s: %w", p.rec.Name, &existsError{p.same})
		}
	}
	for _, p := range plan {
		j, made, err := q.add(ctx, p.rec, p.hashes, req.Resume)
		if err != nil {
			return nil, false, fmt.Errorf("%s: %w", p.rec.Name, err)
		}
		jobs = append(jobs, j)
		created = created || made
	}
	return jobs, created, nil
}

// planned is the job of one file of a Metalink, checked and not yet
// stored: its record and piece hashes, and the unfinished job of the same
// mirrors and directory that the caller of the request may change, if
// there is one.
type planned struct {
	rec    *store.Record
	hashes []byte
	same   uint64
}

// maxMetalinkJobs bounds the jobs one Metalink makes. They are planned,
// and a followed Metalink's are stored, in one go while no other job is
// made: 10,000 take about 1.5 s, and the daemon holds that many jobs
// with ease.
const maxMetalinkJobs = 10_000

// planMetalink checks the Metalink document doc and returns the job of
// each file req selects, in the document's order, as the caller of ctx
// would make it with req's options, keeping the mirrors within reach;
// see metalinkJobs. Nothing is stored.
func (q *Queue) planMetalink(ctx context.Context, doc string, self []string, reach httpsrc.Class, logins map[string]api.Login, req api.MetalinkRequest) ([]planned, error) {
	files, err := metalink.Parse(strings.NewReader(doc))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if files, err = selectFiles(files, req.Select); err != nil {
		return nil, err
	}
	if len(files) > maxMetalinkJobs {
		return nil, fmt.Errorf("%w: the Metalink lists %d files, more than the %d one Metalink may make jobs of: select some", ErrInvalid, len(files), maxMetalinkJobs)
	}
	var plan []planned
	for _, f := range files {
		cr := api.CreateRequest{Dir: req.Dir, Limit: req.Limit, Connections: req.Connections, HTTPOptions: req.HTTPOptions}
		for _, m := range f.Ordered(req.Locations) {
			if slices.ContainsFunc(self, func(s string) bool { return sameResource(s, m.URL) }) {
				// It would answer with this Metalink again: rejected by
				// the job at best, and a loop at worst.
				q.log.Info("a Metalink's mirror is the Metalink itself, left out", "file", f.Name, "mirror", addr.Redact(m.URL))
				continue
			}
			cr.Sources = append(cr.Sources, withLogin(m.URL, logins))
		}
		if len(cr.Sources) == 0 {
			return nil, fmt.Errorf("%w: %s: its only mirror is the Metalink itself", ErrInvalid, f.Name)
		}
		mirrors, refused := q.admit(cr.Sources, reach, "metalink", addr.Redact(req.URL), "file", f.Name)
		if len(mirrors) == 0 {
			return nil, fmt.Errorf("%w: %s: no mirror left: %v", ErrInvalid, f.Name, refused[0])
		}
		cr.Sources = mirrors
		if f.Pieces == nil && len(f.Digests) > 0 {
			cr.Checksum = f.Digests[0].String()
		}
		rec, err := q.validate(ctx, &cr)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f.Name, err)
		}
		rec.SourceReach = nextReach(nil, rec.Sources, rec.Sources, reach)
		var hashes []byte
		if f.Pieces != nil {
			file := *f.Pieces
			file.Digests = f.Digests
			rec.SetFile(&file, engine.SanitizeName(f.Name), false)
			hashes = file.Pieces
		} else {
			rec.Name = engine.SanitizeName(f.Name)
		}
		plan = append(plan, planned{rec, hashes, q.sameJob(ctx, rec)})
	}
	return plan, nil
}

// followPlan is what a job's completion makes of its file when the job
// follows Metalinks: the jobs of the Metalink it is, or why none.
type followPlan struct {
	files []planned // in the Metalink's order
	why   string    // why the file was not followed, for the job's view
}

// news returns the jobs of p that do not exist already, for the store to
// make.
func (p *followPlan) news() []store.NewJob {
	var out []store.NewJob
	for _, f := range p.files {
		if f.same == 0 {
			out = append(out, store.NewJob{Record: f.rec, Hashes: f.hashes})
		}
	}
	return out
}

// followers returns the IDs of p's jobs in the Metalink's order, given
// those the store gave the new ones, in order.
func (p *followPlan) followers(ids []uint64) []uint64 {
	var out []uint64
	for _, f := range p.files {
		if f.same != 0 {
			out = append(out, f.same)
			continue
		}
		out = append(out, ids[0])
		ids = ids[1:]
	}
	return out
}

// maxFollowError bounds why a job was not followed, as its view shows it.
const maxFollowError = 512

// planFollow reads the file of job r, complete and published at path,
// as a Metalink 4 when r is to be followed, and plans the Metalink's jobs
// as CreateMetalink would make them for r's owner with r's options (its
// directory, limit, connections, HTTP options, select, locations and
// logins). r is followed when it follows Metalinks, has one http(s)
// source, and that source answered with a Metalink 4's Content-Type or
// its address names one (.meta4, .metalink). A file that cannot be read
// as one, or whose jobs cannot be made, is left as it is, and the plan
// says why. Called with wmu held, so that no job is made meanwhile that
// the plan should have found.
func (q *Queue) planFollow(r *store.Record, path string) followPlan {
	if r.Follow == nil || len(r.Sources) != 1 {
		return followPlan{}
	}
	a, err := addr.Parse(r.Sources[0])
	if err != nil || a.Scheme == addr.IDM {
		return followPlan{}
	}
	var mt string
	for _, st := range r.SourceStats {
		if st.Source == a.Redacted() {
			mt = st.MediaType
		}
	}
	if mt != metalink.MediaType && !metalinkName(a) {
		if len(r.Follow.Select) > 0 || len(r.Follow.Locations) > 0 {
			return followPlan{why: fmt.Sprintf("the file is no Metalink (%s): select and locations left unused", cmp.Or(mt, "no Content-Type"))}
		}
		return followPlan{}
	}
	fail := func(err error) followPlan {
		return followPlan{why: safetext.Line("not followed as a Metalink: "+err.Error(), '?', maxFollowError)}
	}
	doc, err := readPublished(r, path)
	if err != nil {
		return fail(err)
	}
	ls := make([]api.Login, 0, len(r.Follow.Logins))
	for _, l := range r.Follow.Logins {
		ls = append(ls, api.Login{Host: l.Host, Login: l.Login, Password: l.Password})
	}
	logins, err := loginsByHost(ls)
	if err != nil {
		return fail(err)
	}
	ctx := context.Background()
	if o := r.Owner; o != nil {
		// The owner's request, as if made now: its directory checked for
		// the owner, its jobs the owner's.
		ctx = auth.WithPeer(ctx, auth.Peer{UID: o.UID, GID: o.GID, Groups: o.Groups})
	}
	req := api.MetalinkRequest{Dir: r.Dir, Limit: r.Limit, Connections: r.Conns,
		HTTPOptions:     api.HTTPOptions{Headers: r.Headers, UserAgent: r.UserAgent, CA: r.CA, Proxy: r.Proxy, NoDiscover: r.NoDiscover},
		MetalinkOptions: api.MetalinkOptions{Select: r.Follow.Select, Locations: r.Follow.Locations}}
	// Which server sent the document, after redirects, is not kept: the
	// mirrors it lists get what its address allows, Public for a name.
	reach := httpsrc.NamedBy(a.URL, sourceReach(r, r.Sources[0]))
	plan, err := q.planMetalink(ctx, doc, []string{a.URL}, reach, logins, req)
	if err != nil {
		return fail(err)
	}
	for _, p := range plan {
		if p.rec.Dir != r.Dir || (r.DirID != (store.FileID{}) && p.rec.DirID != r.DirID) {
			return fail(fmt.Errorf("the directory %s was replaced since the job was created", r.Dir))
		}
		p.rec.Following = r.ID
	}
	return followPlan{files: plan}
}

// metalinkName reports whether the address a names a Metalink by its
// extension, as idmctl takes a file or URL to be one.
func metalinkName(a addr.Addr) bool {
	u, err := url.Parse(a.URL)
	if err != nil {
		return false
	}
	ext := strings.ToLower(path.Ext(u.Path))
	return ext == ".meta4" || ext == ".metalink"
}

// readPublished reads job r's finished file, published at p, up to one
// byte more than metalink.MaxSize, for Parse to refuse a larger one: the
// file the job published, never what a name in its directory holds now.
func readPublished(r *store.Record, p string) (string, error) {
	if filepath.Dir(p) != r.Dir {
		return "", fmt.Errorf("%s is not in the job's directory", p)
	}
	f, err := engine.OpenPublished(r.Dir, r.DirID, filepath.Base(p), r.PartStamp.ID)
	if err != nil {
		return "", err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, metalink.MaxSize+1))
	if err != nil {
		return "", err
	}
	if len(b) > metalink.MaxSize {
		return "", fmt.Errorf("the file is larger than %d MiB, the most a Metalink may be", metalink.MaxSize>>20)
	}
	return string(b), nil
}

// keptLogins checks a request's logins and returns those a job keeps for
// the Metalink its file may be: one per host, the first, as a ~/.netrc
// gives them.
func keptLogins(ls []api.Login) ([]store.Login, error) {
	byHost, err := loginsByHost(ls)
	if err != nil {
		return nil, err
	}
	var out []store.Login
	for _, l := range ls {
		host := strings.ToLower(l.Host)
		if k, ok := byHost[host]; ok {
			out = append(out, store.Login{Host: host, Login: k.Login, Password: k.Password})
			delete(byHost, host)
		}
	}
	return out, nil
}

// Bounds on a request's logins: more than a ~/.netrc holds, and little
// for the daemon to keep while it makes the jobs.
const (
	maxLogins    = 256
	maxHostLen   = 255
	maxLoginPart = 1 << 10
)

// loginsByHost checks a request's logins and returns them by host name,
// in lower case; of two for one host, the first wins, as in a ~/.netrc.
// Its errors show no user name or password.
func loginsByHost(ls []api.Login) (map[string]api.Login, error) {
	if len(ls) > maxLogins {
		return nil, fmt.Errorf("%w: %d logins: at most %d", ErrInvalid, len(ls), maxLogins)
	}
	out := make(map[string]api.Login, len(ls))
	for i, l := range ls {
		host := strings.ToLower(l.Host)
		switch {
		case host == "" || len(host) > maxHostLen || strings.ContainsAny(host, "/@?#\x00\t\r\n "):
			return nil, fmt.Errorf("%w: login %d: not a host name", ErrInvalid, i+1)
		case l.Login == "":
			return nil, fmt.Errorf("%w: login %d (%s): no user name", ErrInvalid, i+1, host)
		case len(l.Login) > maxLoginPart || len(l.Password) > maxLoginPart:
			return nil, fmt.Errorf("%w: login %d (%s): longer than %d bytes", ErrInvalid, i+1, host, maxLoginPart)
		}
		if _, dup := out[host]; !dup {
			out[host] = l
		}
	}
	return out, nil
}

// withLogin returns the http(s) address raw with the credentials logins
// has for its host, when it has none of its own.
func withLogin(raw string, logins map[string]api.Login) string {
	u, err := url.Parse(raw)
	if err != nil {
		return raw
	}
	if l, ok := logins[strings.ToLower(u.Hostname())]; ok {
		return addr.WithLogin(raw, l.Login, l.Password)
	}
	return raw
}

// sameResource reports whether the http(s) addresses a and b, in their
// normal form, name the same resource, whatever credentials each holds.
func sameResource(a, b string) bool {
	ua, erra := url.Parse(a)
	ub, errb := url.Parse(b)
	if erra != nil || errb != nil {
		return false
	}
	ua.User, ub.User = nil, nil
	return ua.String() == ub.String()
}

// selectFiles returns the files named in names, in the document's
// order, or every file when names is empty.
func selectFiles(files []metalink.File, names []string) ([]metalink.File, error) {
	if len(names) == 0 {
		return files, nil
	}
	want := make(map[string]bool, len(names))
	for _, n := range names {
		want[n] = true
	}
	var out []metalink.File
	for _, f := range files {
		if want[f.Name] {
			out = append(out, f)
			delete(want, f.Name)
		}
	}
	for _, n := range names {
		if want[n] {
			return nil, fmt.Errorf("%w: the Metalink has no file %q", ErrInvalid, n)
		}
	}
	return out, nil
}

// metalinkTimeout bounds the fetch of a Metalink a caller named by URL.
const metalinkTimeout = time.Minute

// fetchMetalink fetches the Metalink document at a, an http(s) address,
// as its jobs' mirrors are fetched (see get): TLS verified, redirects
// followed (never from https to http), at most metalink.MaxSize bytes.
// It returns the document, the addresses it came from (a, and where
// redirects led) and the reach of the mirrors it lists: what the server
// that sent it allows.
func (q *Queue) fetchMetalink(ctx context.Context, a addr.Addr, opt api.HTTPOptions) (doc string, from []string, reach httpsrc.Class, err error) {
	ctx, cancel := context.WithTimeout(ctx, metalinkTimeout)
	defer cancel()
	ctx, trip := httpsrc.WithReach(ctx, httpsrc.Machine) // the user's URL
	resp, err := q.get(ctx, a, opt, http.Header{"Accept": {metalink.MediaType}})
	if err != nil {
		return "", nil, 0, fmt.Errorf("%w: Metalink %s: %v", ErrInvalid, a.Redacted(), err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", nil, 0, fmt.Errorf("%w: Metalink %s: %s", ErrInvalid, a.Redacted(), resp.Status)
	}
	doc, from, err = readMetalink(a, resp)
	return doc, from, trip.Onward(), err
}

// readMetalink reads the Metalink document of resp, the answer to a GET
// of a, up to one byte more than metalink.MaxSize, for Parse to refuse a
// larger one.
func readMetalink(a addr.Addr, resp *http.Response) (doc string, from []string, err error) {
	b, err := io.ReadAll(io.LimitReader(resp.Body, metalink.MaxSize+1))
	if err != nil {
		return "", nil, fmt.Errorf("%w: Metalink %s: %v", ErrInvalid, a.Redacted(), err)
	}
	return string(b), []string{a.URL, resp.Request.URL.String()}, nil
}

// get sends a GET of the http(s) address a as a job with the HTTP
// options opt asks its mirrors, with the same client (CA, proxy),
// headers and user agent, and extra. Its error shows no secret.
func (q *Queue) get(ctx context.Context, a addr.Addr, opt api.HTTPOptions, extra http.Header) (*http.Response, error) {
	if err := validateHTTPOptions(&api.CreateRequest{Sources: []string{a.URL}, HTTPOptions: opt}); err != nil {
		return nil, err
	}
	client := q.mirrors()
	if opt.CA != "" || opt.Proxy != "" {
		c, err := httpsrc.NewClientWith(httpsrc.ClientOptions{CA: opt.CA, Proxy: opt.Proxy})
		if err != nil {
			return nil, err
		}
		client = c
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.URL, nil)
	if err != nil {
		return nil, errors.New("not a URL") // its text would quote the URL
	}
	for _, h := range opt.Headers {
		name, value, _ := splitHeader(h) // checked above
		req.Header.Add(name, value)
	}
	req.Header.Set("User-Agent", cmp.Or(opt.UserAgent, q.cfg.UserAgent, defaultUserAgent))
	for k, v := range extra {
		req.Header[k] = v
	}
	resp, err := client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // its text quotes the URL, secrets and all
		}
		return nil, err
	}
	if client != q.mirrors() {
		// A client for this one request: none of its connections is
		// kept once it is done.
		resp.Body = &closeIdle{resp.Body, client}
	}
	return resp, nil
}

// closeIdle is the body of an answer whose client served it alone:
// closing the body closes the client's connections.
type closeIdle struct {
	io.ReadCloser
	client *http.Client
}

func (c *closeIdle) Close() error {
	err := c.ReadCloser.Close()
	c.client.CloseIdleConnections()
	return err
}
