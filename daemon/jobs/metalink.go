package jobs

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/idmproject/idm/daemon/api"
	"github.com/idmproject/idm/daemon/engine"
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

// CreateFollowing is Create for a request that may name a Metalink by a
// URL that does not say so (FollowMetalink). When its one source is an
// http(s) URL that answers with a Metalink 4, whatever its name, the
// Metalink's files become jobs, as CreateMetalink makes them from that
// URL, with the request's directory, limit, connections, HTTP options,
// Resume and MetalinkOptions, and fromMetalink is true. Otherwise it is
// Create: jobs holds its one job. created says whether any job is new.
//
// The source is asked once, as its job would ask it, before any job is
// made; a source that cannot be asked, or answers with an error, is no
// Metalink, and its job meets what it does as it would have. With
// req.Resume, an existing job of the source is resumed without asking.
func (q *Queue) CreateFollowing(ctx context.Context, req api.CreateRequest) (jobs []api.Job, fromMetalink, created bool, err error) {
	rec, err := q.validate(ctx, &req)
	if err != nil {
		return nil, false, false, err
	}
	logins, err := loginsByHost(req.Logins)
	if err != nil {
		return nil, false, false, err
	}
	var doc string
	var self []string
	var reach httpsrc.Class
	if a := metalinkCandidate(&req); a != nil && !(req.Resume && q.sameJob(ctx, rec) != 0) {
		if doc, self, reach, err = q.probeMetalink(ctx, *a, req.HTTPOptions); err != nil {
			return nil, false, false, err
		}
	}
	if doc == "" {
		if len(req.Select) > 0 || len(req.Locations) > 0 {
			return nil, false, false, fmt.Errorf("%w: select and locations are for a Metalink, and the source answers with none", ErrInvalid)
		}
		view, created, err := q.add(ctx, rec, nil, req.Resume)
		if err != nil {
			return nil, false, false, err
		}
		return []api.Job{view}, false, created, nil
	}
	shown := addr.Redact(req.Sources[0])
	if req.Content != "" || req.Checksum != "" {
		return nil, false, false, fmt.Errorf("%w: %s answers with a Metalink, which brings its own hashes: add it without content or checksum", ErrInvalid, shown)
	}
	q.log.Info("source answers with a Metalink: its files become jobs", "source", shown)
	jobs, created, err = q.metalinkJobs(ctx, doc, self, reach, logins, api.MetalinkRequest{Dir: req.Dir, Limit: req.Limit, Connections: req.Connections,
		HTTPOptions: req.HTTPOptions, Resume: req.Resume, MetalinkOptions: req.MetalinkOptions})
	if err != nil {
		return nil, false, false, err
	}
	return jobs, true, created, nil
}

// metalinkCandidate returns the source of req that may answer with a
// Metalink: its only one, when it follows Metalinks and that is an
// http(s) URL. req's sources are normalised.
func metalinkCandidate(req *api.CreateRequest) *addr.Addr {
	if !req.FollowMetalink || len(req.Sources) != 1 {
		return nil
	}
	a, err := addr.Parse(req.Sources[0])
	if err != nil || a.Scheme == addr.IDM {
		return nil
	}
	return &a
}

// metalinkJobs queues the jobs of the Metalink document doc as
// CreateMetalink says, those of req's options. self are the addresses
// the document was fetched from: no job takes them as a mirror. Only
// mirrors within reach, what the server that sent the document allows,
// are kept. A mirror on a host of logins is given its credentials.
func (q *Queue) metalinkJobs(ctx context.Context, doc string, self []string, reach httpsrc.Class, logins map[string]api.Login, req api.MetalinkRequest) (jobs []api.Job, created bool, err error) {
	files, err := metalink.Parse(strings.NewReader(doc))
	if err != nil {
		return nil, false, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if files, err = selectFiles(files, req.Select); err != nil {
		return nil, false, err
	}
	type planned struct {
		rec    *store.Record
		hashes []byte
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
			return nil, false, fmt.Errorf("%w: %s: its only mirror is the Metalink itself", ErrInvalid, f.Name)
		}
		mirrors, refused := q.admit(cr.Sources, reach, "metalink", addr.Redact(req.URL), "file", f.Name)
		if len(mirrors) == 0 {
			return nil, false, fmt.Errorf("%w: %s: no mirror left: %v", ErrInvalid, f.Name, refused[0])
		}
		cr.Sources = mirrors
		if f.Pieces == nil && len(f.Digests) > 0 {
			cr.Checksum = f.Digests[0].String()
		}
		rec, err := q.validate(ctx, &cr)
		if err != nil {
			return nil, false, fmt.Errorf("%s: %w", f.Name, err)
		}
		if id := q.sameJob(ctx, rec); id != 0 && !req.Resume {
			// Said before any job is made: half a Metalink's jobs, made
			// and not named, would be for the caller to find.
			return nil, false, fmt.Errorf("%s: %w", f.Name, &existsError{id})
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
		plan = append(plan, planned{rec, hashes})
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

// selectFiles returns the files named in names, in the document's order,
// or every file when names is empty.
func selectFiles(files []metalink.File, names []string) ([]metalink.File, error) {
	if len(names) == 0 {
		return files, nil
	}
	var out []metalink.File
	for _, n := range names {
		i := slices.IndexFunc(files, func(f metalink.File) bool { return f.Name == n })
		if i < 0 {
			return nil, fmt.Errorf("%w: the Metalink has no file %q", ErrInvalid, n)
		}
		if !slices.ContainsFunc(out, func(f metalink.File) bool { return f.Name == n }) {
			out = append(out, files[i])
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

// probeMetalink asks the http(s) source a for its first byte, as its job
// would ask it (with opt), and returns the Metalink 4 document it
// answers with, if it does, and the addresses it came from: the answer's
// body when it is whole, or else the whole document fetched again. An
// answer of another type, or none (a failure, a time-out, an error
// status), is no Metalink: "" and no error. A Metalink 3 is refused: it
// is not the file either, and idmd does not read it. reach is what the
// server that sent the document allows the mirrors it lists.
func (q *Queue) probeMetalink(ctx context.Context, a addr.Addr, opt api.HTTPOptions) (doc string, from []string, reach httpsrc.Class, err error) {
	ctx, cancel := context.WithTimeout(ctx, metalinkTimeout)
	defer cancel()
	ctx, trip := httpsrc.WithReach(ctx, httpsrc.Machine) // the user's URL
	// The answer's header must come within a stall time-out, as a job's
	// would; the body of a Metalink, within the Metalink's time.
	stall := time.AfterFunc(cmp.Or(q.cfg.StallTimeout, httpsrc.DefaultStallTimeout), cancel)
	resp, err := q.get(ctx, a, opt, http.Header{"Range": {"bytes=0-0"}})
	stall.Stop()
	if err != nil {
		q.log.Debug("source not asked whether it is a Metalink", "source", a.Redacted(), "err", err)
		return "", nil, 0, nil
	}
	defer func() {
		// A little is read, so that the byte of a file's range leaves the
		// connection for its job's first request; not a whole file's.
		io.CopyN(io.Discard, resp.Body, 4<<10)
		resp.Body.Close()
	}()
	mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	switch {
	case resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusPartialContent:
		return "", nil, 0, nil
	case mt == metalink.MediaType3:
		return "", nil, 0, fmt.Errorf("%w: %s answers with a Metalink 3 (%s), which idmd does not read: give the URL of its Metalink 4 (.meta4)", ErrInvalid, a.Redacted(), mt)
	case mt != metalink.MediaType:
		return "", nil, 0, nil
	case resp.StatusCode == http.StatusPartialContent:
		// Only the range asked for came: the whole document is fetched.
		resp.Body.Close()
		return q.fetchMetalink(ctx, a, opt)
	}
	doc, from, err = readMetalink(a, resp)
	return doc, from, trip.Onward(), err
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
