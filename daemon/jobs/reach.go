package jobs

import (
	"slices"

	"github.com/idmproject/idm/store"
	"github.com/idmproject/idm/transport/addr"
	"github.com/idmproject/idm/transport/httpsrc"
)

// A source the user gave may make idmd connect anywhere; one a server
// named (a mirror a mirror announced, one a Metalink fetched from a URL
// lists) only where that server may send idmd: to addresses no more
// internal than its own (httpsrc.Class). The job's record keeps that
// reach with the source, so that it stays a server's word, not the
// user's, across restarts.

// sourceReach returns the reach of job r's source raw: the user's own
// reaches anywhere. A word this daemon does not know reads as the
// narrowest.
func sourceReach(r *store.Record, raw string) httpsrc.Class {
	w, ok := r.SourceReach[raw]
	if !ok {
		return httpsrc.Machine
	}
	c, _ := httpsrc.ParseClass(w)
	return c
}

// nextReach returns the record's SourceReach for the sources next, where
// those of added, in their normal form, were named now by a server that
// allows reach (httpsrc.Machine: by the user) and the others keep what
// old gave them.
func nextReach(old map[string]string, next, added []string, reach httpsrc.Class) map[string]string {
	var m map[string]string
	for _, s := range next {
		w, ok := old[s]
		for _, a := range added {
			if a == s {
				w, ok = reach.String(), reach != httpsrc.Machine
			}
		}
		if ok {
			if m == nil {
				m = map[string]string{}
			}
			m[s] = w
		}
	}
	return m
}

// normalized returns the addresses of raw in their normal form, leaving
// out those that do not parse.
func normalized(raw []string) []string {
	var out []string
	for _, r := range raw {
		if a, err := addr.Parse(r); err == nil {
			out = append(out, a.String())
		}
	}
	return out
}

// admit returns those of urls, mirrors a server that allows reach named,
// that may be asked for the file: a literal address or localhost beyond
// reach is refused up front, the reason logged with what, the job or
// Metalink that would have had it. A name is weighed when it is dialled.
func (q *Queue) admit(urls []string, reach httpsrc.Class, what ...any) (kept []string, refused []error) {
	for _, u := range urls {
		if err := httpsrc.CheckReach(u, reach); err != nil {
			q.log.Warn("mirror refused", slices.Concat(what, []any{"mirror", addr.Redact(u), "err", err})...)
			refused = append(refused, err)
			continue
		}
		kept = append(kept, u)
	}
	return kept, refused
}
