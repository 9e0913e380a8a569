package jobs

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/idmproject/idm/daemon/api"
	"github.com/idmproject/idm/daemon/engine"
	"github.com/idmproject/idm/store"
	"github.com/idmproject/idm/transport/addr"
	"github.com/idmproject/idm/transport/metalink"
)

// CreateMetalink queues one job per file of a Metalink 4 document (those
// req.Select names, or every one): each downloads from the file's
// mirrors, best first, and starts with its file decided when the
// Metalink gives piece hashes, so every piece is checked against them;
// its whole-file digests are checked before it is published. The whole
// request is checked before any job is created. A file whose job exists
// already (same mirrors and directory) stops the request there, with
// the jobs created so far kept; their views come back with the error.
func (q *Queue) CreateMetalink(ctx context.Context, req api.MetalinkRequest) ([]api.Job, error) {
	doc := strings.NewReader(req.Document)
	if req.URL != "" {
		if req.Document != "" {
			return nil, fmt.Errorf("%w: a Metalink's document or its URL, not both", ErrInvalid)
		}
		body, err := q.fetchMetalink(ctx, req.URL)
		if err != nil {
			return nil, err
		}
		doc = strings.NewReader(body)
	}
	files, err := metalink.Parse(doc)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if files, err = selectFiles(files, req.Select); err != nil {
		return nil, err
	}
	type planned struct {
		rec    *store.Record
		hashes []byte
	}
	var plan []planned
	for _, f := range files {
		cr := api.CreateRequest{Dir: req.Dir, Limit: req.Limit, Connections: req.Connections, HTTPOptions: req.HTTPOptions}
		for _, m := range f.Ordered(req.Locations) {
			cr.Sources = append(cr.Sources, m.URL)
		}
		if f.Pieces == nil && len(f.Digests) > 0 {
			cr.Checksum = f.Digests[0].String()
		}
		rec, err := q.validate(ctx, &cr)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f.Name, err)
		}
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
	var out []api.Job
	for _, p := range plan {
		j, _, err := q.add(ctx, p.rec, p.hashes, false)
		if err != nil {
			return out, err
		}
		out = append(out, j)
	}
	return out, nil
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

// fetchMetalink fetches the Metalink document at raw, an http(s) URL,
// with the daemon's client: TLS verified, redirects followed (never from
// https to http), at most metalink.MaxSize bytes.
func (q *Queue) fetchMetalink(ctx context.Context, raw string) (string, error) {
	a, err := addr.Parse(raw)
	if err != nil || a.Scheme == addr.IDM {
		return "", fmt.Errorf("%w: Metalink %q: want an http:// or https:// URL", ErrInvalid, addr.Redact(raw))
	}
	ctx, cancel := context.WithTimeout(ctx, metalinkTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.URL, nil)
	if err != nil {
		return "", fmt.Errorf("%w: Metalink %s: not a URL", ErrInvalid, a.Redacted())
	}
	req.Header.Set("Accept", metalink.MediaType)
	req.Header.Set("User-Agent", cmp.Or(q.cfg.UserAgent, defaultUserAgent))
	resp, err := q.mirrors().Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // its text quotes the URL, secrets and all
		}
		return "", fmt.Errorf("%w: Metalink %s: %v", ErrInvalid, a.Redacted(), err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("%w: Metalink %s: %s", ErrInvalid, a.Redacted(), resp.Status)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, metalink.MaxSize+1))
	if err != nil {
		return "", fmt.Errorf("%w: Metalink %s: %v", ErrInvalid, a.Redacted(), err)
	}
	return string(b), nil
}
