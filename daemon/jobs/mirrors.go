package jobs

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/idmproject/idm/daemon/api"
	"github.com/idmproject/idm/daemon/engine"
	"github.com/idmproject/idm/store"
	"github.com/idmproject/idm/transport"
	"github.com/idmproject/idm/transport/addr"
	"github.com/idmproject/idm/transport/httpsrc"
)

// Limits on a job's HTTP options: they bound what one request can make
// the daemon keep and send with every range.
const (
	maxHeaders       = 32
	maxHeaderLen     = 8 << 10
	maxCA            = 1 << 20
	maxUserAgent     = 512
	defaultUserAgent = "idmd"
)

// ownHeaders are the request headers idmd sets itself: a job may not
// change how ranges are asked for, where they go, or how they are framed.
var ownHeaders = []string{"Host", "Range", "If-Range", "Accept-Encoding", "Content-Length", "Transfer-Encoding",
	"Connection", "Keep-Alive", "Te", "Trailer", "Upgrade", "Proxy-Connection", "User-Agent"}

// validateHTTPOptions checks the HTTP options of a create request whose
// sources are normalised.
func validateHTTPOptions(req *api.CreateRequest) error {
	if len(req.Headers) > 0 || req.UserAgent != "" || req.CA != "" || req.Proxy != "" {
		if !slices.ContainsFunc(req.Sources, func(s string) bool { return !strings.HasPrefix(s, addr.IDM+"://") }) {
			return errNoMirrorOptions
		}
	}
	if len(req.Headers) > maxHeaders {
		return fmt.Errorf("%d headers: at most %d", len(req.Headers), maxHeaders)
	}
	for _, h := range req.Headers {
		name, _, err := splitHeader(h)
		if err != nil {
			return err
		}
		if slices.Contains(ownHeaders, http.CanonicalHeaderKey(name)) {
			return fmt.Errorf("header %s is idmd's to set (use --user-agent for User-Agent)", name)
		}
	}
	if len(req.UserAgent) > maxUserAgent || strings.ContainsAny(req.UserAgent, "\r\n\x00") {
		return fmt.Errorf("user agent: at most %d bytes on one line", maxUserAgent)
	}
	if len(req.CA) > maxCA {
		return fmt.Errorf("CA: larger than %d KiB", maxCA>>10)
	}
	if req.CA != "" || req.Proxy != "" {
		if _, err := httpsrc.NewClientWith(httpsrc.ClientOptions{CA: req.CA, Proxy: req.Proxy}); err != nil {
			return err
		}
	}
	return nil
}

// splitHeader reads "Name: value", refusing what would not be one header
// line: a name that is not an HTTP token, a value with a line break.
func splitHeader(h string) (name, value string, err error) {
	if len(h) > maxHeaderLen {
		shown := cutAt(h, ":")
		return "", "", fmt.Errorf("header %.40q: longer than %d bytes", shown, maxHeaderLen)
	}
	name, value, ok := strings.Cut(h, ":")
	switch {
	case !ok:
		// All of it may be a secret: none of it is shown.
		return "", "", errors.New("a header without a colon: want Name: value")
	case name == "" || strings.IndexFunc(name, notTokenChar) >= 0:
		return "", "", fmt.Errorf("header %q: want Name: value, the name an HTTP token", name)
	}
	if strings.ContainsAny(value, "\r\n\x00") {
		return "", "", fmt.Errorf("header %s: its value must be one line", name)
	}
	return name, strings.TrimSpace(value), nil
}

// cutAt returns s up to sep, or s when it has none.
func cutAt(s, sep string) string {
	before, _, _ := strings.Cut(s, sep)
	return before
}

// notTokenChar reports whether r may not appear in an HTTP token (RFC
// 9110, 5.6.2).
func notTokenChar(r rune) bool {
	return r > 0x7e || r <= ' ' || strings.ContainsRune(`"(),/:;<=>?@[\]{}`, r)
}

// mirrorOptions returns the options every HTTP mirror of job r is made
// with: the daemon's shared client, or one of the job's own when it has a
// CA or a proxy, its headers, and whether a Metalink is its file.
func (q *Queue) mirrorOptions(r *store.Record) (httpsrc.Options, error) {
	opt := httpsrc.Options{Client: q.mirrors(), StallTimeout: q.cfg.StallTimeout,
		Header: http.Header{"User-Agent": {cmp.Or(r.UserAgent, q.cfg.UserAgent, defaultUserAgent)}}}
	// A lone source whose Metalink the job follows: its answer is the
	// job's file, read once complete. Beside other mirrors, a Metalink
	// is not the file they hold, and is refused.
	opt.AcceptMetalink = r.Follow != nil && len(r.Sources) == 1
	for _, h := range r.Headers {
		name, value, err := splitHeader(h)
		if err != nil {
			return opt, fmt.Errorf("job %d: %w", r.ID, err)
		}
		opt.Header.Add(name, value)
	}
	if !r.NoDiscover {
		id := r.ID
		opt.OnDuplicates = func(urls []string, reach httpsrc.Class) { go q.discover(id, urls, reach) }
	}
	if r.CA != "" || r.Proxy != "" {
		c, err := httpsrc.NewClientWith(httpsrc.ClientOptions{CA: r.CA, Proxy: r.Proxy})
		if err != nil {
			return opt, fmt.Errorf("job %d: %w", r.ID, err)
		}
		opt.Client = c
	}
	return opt, nil
}

// idmSource is an idm server as the engine sees a source.
type idmSource struct{ *transport.IDMSource }

func (s idmSource) Open(ctx context.Context) (engine.Conn, error) { return s.Dial(ctx) }

// httpSource is an HTTP(S) mirror as the engine sees a source.
type httpSource struct{ *httpsrc.Source }

func (s httpSource) Open(ctx context.Context) (engine.Conn, error) { return s.Source.Open(ctx) }

func (s httpSource) Version() (etag, lastModified string) {
	v := s.Validator()
	return v.ETag, v.LastModified
}

// source turns a source's address, as the job records it, into what the
// engine opens; an HTTP mirror is made with opt, asking for the version
// of the file that stats, its recorded statistics, say it held.
// Addresses are checked when a job is created.
func (q *Queue) source(raw string, stats []store.SourceStat, opt httpsrc.Options) (engine.Source, error) {
	if q.cfg.openSource != nil {
		return q.cfg.openSource(raw)
	}
	a, err := addr.Parse(raw)
	if err != nil {
		return nil, err
	}
	if a.Scheme == addr.IDM {
		src := &transport.IDMSource{Addr: a.Host}
		src.Dialer.StallTimeout = q.cfg.StallTimeout
		return idmSource{src}, nil
	}
	// The engine keys statistics by the address as it shows it.
	for _, st := range stats {
		if st.Source == a.Redacted() {
			opt.Validator = httpsrc.Validator{ETag: st.ETag, LastModified: st.LastModified}
		}
	}
	src, err := httpsrc.New(raw, opt)
	if err != nil {
		return nil, err
	}
	return httpSource{src}, nil
}

// redactAll returns addrs with their secrets hidden (addr.Addr.Redacted),
// as the API shows them and the log writes them; addrs itself when none
// has any, as idm servers' never do.
func redactAll(addrs []string) []string {
	var out []string
	for i, a := range addrs {
		r := addr.Redact(a)
		if r != a && out == nil {
			out = slices.Clone(addrs[:i])
		}
		if out != nil {
			out = append(out, r)
		}
	}
	if out == nil {
		return addrs
	}
	return out
}

// redactHeaders returns headers with every value hidden: a header given
// to a job is there for a cookie or a token more often than not.
func redactHeaders(headers []string) []string {
	var out []string
	for _, h := range headers {
		out = append(out, cutAt(h, ":")+": xxxxx")
	}
	return out
}

// errNoMirrorOptions is returned when HTTP options come without a mirror.
var errNoMirrorOptions = errors.New("HTTP options (headers, user agent, CA, proxy) but no http:// or https:// source")

// maxDiscovered bounds the sources discovery may bring a job to.
const maxDiscovered = 16

// discover adds to job id the mirrors one of its mirrors announced, those
// it has not got, up to maxDiscovered sources in all, with the reach the
// announcing server allows them: one beyond it is refused. They are
// checked as any source is: one that holds another file is rejected.
func (q *Queue) discover(id uint64, urls []string, reach httpsrc.Class) {
	urls, _ = q.admit(urls, reach, "job", id)
	q.mu.Lock()
	var fresh []string
	if j := q.jobs[id]; j != nil && j.run != nil {
		for _, u := range urls {
			if len(j.rec.Sources)+len(fresh) < maxDiscovered && !slices.Contains(j.rec.Sources, u) {
				fresh = append(fresh, u)
			}
		}
	}
	q.mu.Unlock()
	if len(fresh) == 0 {
		return
	}
	q.log.Info("mirrors discovered", "job", id, "mirrors", redactAll(fresh))
	if _, err := q.setSources(context.Background(), id, fresh, nil, reach); err != nil {
		q.log.Debug("discovered mirrors not added", "job", id, "err", err)
	}
}

// SetSources adds sources to job id and removes others, keeping every
// verified byte: a running job stops, with a last checkpoint, and starts
// again at once with its new sources; a paused or failed one keeps them
// for when it goes on. A source to remove is named as it was given, in
// its normal form, or as the job's view shows it, secrets hidden. A job
// keeps at least one source; a completed or cancelled one cannot change.
// Only those who may change the job may (see authorize). The sources
// added are the caller's own: they may reach any address.
func (q *Queue) SetSources(ctx context.Context, id uint64, add, remove []string) (api.Job, error) {
	return q.setSources(ctx, id, add, remove, httpsrc.Machine)
}

// setSources is SetSources, the sources added with the given reach.
func (q *Queue) setSources(ctx context.Context, id uint64, add, remove []string, reach httpsrc.Class) (api.Job, error) {
	q.wmu.Lock()
	q.mu.Lock()
	j, err := q.authorize(ctx, id)
	if err == nil && j.bad != nil {
		err = j.bad
	}
	if err == nil && !j.state.Unfinished() {
		err = fmt.Errorf("%w: job %d is %s", ErrConflict, id, apiState(j.state))
	}
	var next []string
	if err == nil {
		next, err = editSources(j.rec.Sources, add, remove)
	}
	q.mu.Unlock()
	if err != nil {
		q.wmu.Unlock()
		return api.Job{}, err
	}
	rec, err := q.db.Change(id, func(r *store.Record) error {
		r.SourceReach = nextReach(r.SourceReach, next, normalized(add), reach)
		r.Sources = next
		r.SourceStats = slices.DeleteFunc(r.SourceStats, func(s store.SourceStat) bool {
			return !slices.ContainsFunc(next, func(n string) bool { return addr.Redact(n) == s.Source })
		})
		return nil
	})
	if err != nil {
		q.wmu.Unlock()
		return api.Job{}, err
	}
	q.mu.Lock()
	q.unindex(j)
	j.rec = rec
	q.index(j)
	run := j.run
	if run != nil {
		// It starts again, with the record's new sources, once stopped.
		run.stop(stopCause{Stop})
	}
	q.events.send(api.EventState, id, nil)
	q.mu.Unlock()
	q.wmu.Unlock()
	q.log.Info("job sources changed", "job", id, "sources", redactAll(next))
	if run != nil {
		<-run.done // its end is written under wmu
	}
	return q.Job(id)
}

// editSources returns cur without the sources remove names and with
// those of add, each checked and in its normal form.
func editSources(cur, add, remove []string) ([]string, error) {
	next := slices.Clone(cur)
	for _, r := range remove {
		i := slices.IndexFunc(next, func(s string) bool {
			if s == r || addr.Redact(s) == r {
				return true
			}
			a, err := addr.Parse(r)
			return err == nil && a.String() == s
		})
		if i < 0 {
			return nil, fmt.Errorf("%w: %s is not one of the job's sources", ErrInvalid, addr.Redact(r))
		}
		next = slices.Delete(next, i, i+1)
	}
	for _, s := range add {
		a, err := addr.Parse(s)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
		}
		if slices.Contains(next, a.String()) {
			return nil, fmt.Errorf("%w: %s is a source of the job already", ErrInvalid, a.Redacted())
		}
		next = append(next, a.String())
	}
	if len(next) == 0 {
		return nil, fmt.Errorf("%w: a job keeps at least one source", ErrInvalid)
	}
	return next, nil
}
