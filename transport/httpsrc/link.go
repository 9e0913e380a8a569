package httpsrc

import (
	"cmp"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/idmproject/idm/transport/addr"
)

// maxDuplicates bounds the mirrors one answer may announce: a mirror
// cannot make a job open connections without end.
const maxDuplicates = 10

// duplicates returns the mirrors an answer announces in its Link headers
// with rel=duplicate (RFC 6249), best first by their pri parameter,
// resolved against base and in their normal form; only http(s) ones, at
// most maxDuplicates, base itself left out.
func duplicates(h http.Header, base *url.URL) []string {
	type dup struct {
		url string
		pri int
	}
	var out []dup
	for _, v := range h.Values("Link") {
		for _, l := range parseLinks(v) {
			if !slices.Contains(strings.Fields(strings.ToLower(l.params["rel"])), "duplicate") {
				continue
			}
			ref, err := url.Parse(l.target)
			if err != nil {
				continue
			}
			a, err := addr.Parse(base.ResolveReference(ref).String())
			if err != nil || a.Scheme == addr.IDM || a.URL == base.String() {
				continue
			}
			pri, err := strconv.Atoi(l.params["pri"])
			if err != nil || pri < 1 {
				pri = 999999
			}
			if !slices.ContainsFunc(out, func(d dup) bool { return d.url == a.URL }) {
				out = append(out, dup{a.URL, pri})
			}
		}
	}
	slices.SortStableFunc(out, func(a, b dup) int { return cmp.Compare(a.pri, b.pri) })
	var urls []string
	for _, d := range out[:min(len(out), maxDuplicates)] {
		urls = append(urls, d.url)
	}
	return urls
}

// link is one link of a Link header (RFC 8288): its target and its
// parameters, names in lower case.
type link struct {
	target string
	params map[string]string
}

// parseLinks reads the links of one Link header value. What cannot be
// read ends the value; the links read so far are kept.
func parseLinks(v string) []link {
	var out []link
	for {
		v = strings.TrimLeft(v, " \t,")
		if !strings.HasPrefix(v, "<") {
			return out
		}
		end := strings.IndexByte(v, '>')
		if end < 0 {
			return out
		}
		l := link{target: v[1:end], params: map[string]string{}}
		v = v[end+1:]
		for {
			v = strings.TrimLeft(v, " \t")
			if !strings.HasPrefix(v, ";") {
				break
			}
			v = strings.TrimLeft(v[1:], " \t")
			i := strings.IndexAny(v, "=;,")
			if i < 0 {
				l.params[strings.ToLower(strings.TrimSpace(v))] = ""
				v = ""
				break
			}
			name := strings.ToLower(strings.TrimSpace(v[:i]))
			if v[i] != '=' {
				l.params[name] = ""
				v = v[i:]
				continue
			}
			v = strings.TrimLeft(v[i+1:], " \t")
			var val string
			if strings.HasPrefix(v, `"`) {
				j := strings.IndexByte(v[1:], '"')
				if j < 0 {
					return append(out, l)
				}
				val, v = v[1:j+1], v[j+2:]
			} else {
				j := strings.IndexAny(v, ";,")
				if j < 0 {
					j = len(v)
				}
				val, v = strings.TrimSpace(v[:j]), v[j:]
			}
			if _, seen := l.params[name]; !seen {
				l.params[name] = val
			}
		}
		out = append(out, l)
	}
}
