package aria2rpc

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/idmproject/idm/daemon/api"
)

// maxConnsPerServer bounds max-connection-per-server, as aria2 and idmd
// both do.
const maxConnsPerServer = 16

// optionValues returns an option's value as strings: aria2 takes a
// string, and a number or a boolean as the string it writes; a list only
// for header. ok is false for anything else, which aria2 ignores.
func optionValues(raw json.RawMessage, list bool) (vals []string, ok bool) {
	var v any
	if json.Unmarshal(raw, &v) != nil {
		return nil, false
	}
	switch v := v.(type) {
	case string:
		return []string{v}, true
	case bool:
		return []string{strconv.FormatBool(v)}, true
	case float64:
		return []string{strings.TrimSpace(string(raw))}, true
	case []any:
		if !list {
			return nil, false
		}
		for _, e := range v {
			if s, ok := e.(string); ok {
				vals = append(vals, s)
			}
		}
		return vals, true
	}
	return nil, false
}

// option returns the value of option name in opts, when it has one that
// aria2 would take.
func option(opts map[string]json.RawMessage, name string) (string, bool) {
	raw, ok := opts[name]
	if !ok {
		return "", false
	}
	vals, ok := optionValues(raw, false)
	if !ok || len(vals) != 1 {
		return "", false
	}
	return vals[0], true
}

// parseSize reads a size as aria2 takes one: bytes, or a number of KiB
// with K, of MiB with M.
func parseSize(name, v string) (int64, error) {
	s := strings.TrimSpace(v)
	mult := int64(1)
	switch {
	case strings.HasSuffix(s, "K"), strings.HasSuffix(s, "k"):
		mult, s = 1<<10, s[:len(s)-1]
	case strings.HasSuffix(s, "M"), strings.HasSuffix(s, "m"):
		mult, s = 1<<20, s[:len(s)-1]
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 || n > (1<<62)/mult {
		return 0, failf("%s %q: want a number of bytes, with K (1024) or M (1048576) after it if you like, such as 500K", name, v)
	}
	return n * mult, nil
}

// wholeNumber reads option name's value, a whole number from min to max.
func wholeNumber(name, v string, min, max int64) (int64, error) {
	n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
	if err != nil || n < min || n > max {
		return 0, failf("%s %q: want a whole number from %d to %d", name, v, min, max)
	}
	return n, nil
}

// addOptions are a new download's options, as addUri and addMetalink
// take them: what idmd can do with, the rest ignored as aria2 ignores
// the options it does not know.
type addOptions struct {
	req   api.CreateRequest // Sources aside
	split int64
	pause bool
}

// parseAddOptions reads the options of a new download of uris. A
// relative dir is taken in the default download directory.
func (s *Server) parseAddOptions(opts map[string]json.RawMessage, uris []string) (addOptions, error) {
	var o addOptions
	o.req.Dir = s.defaultDir()
	if v, ok := option(opts, "dir"); ok && v != "" {
		if !filepath.IsAbs(v) {
			v = filepath.Join(o.req.Dir, v)
		}
		o.req.Dir = filepath.Clean(v)
	}
	if v, ok := option(opts, "out"); ok {
		o.req.Name = v
	}
	if raw, ok := opts["header"]; ok {
		vals, _ := optionValues(raw, true)
		for _, v := range vals {
			for line := range strings.SplitSeq(v, "\n") {
				if line = strings.TrimSpace(line); line != "" {
					o.req.Headers = append(o.req.Headers, line)
				}
			}
		}
	}
	if v, ok := option(opts, "referer"); ok && v != "" {
		if v == "*" && len(uris) > 0 {
			v = uris[0] // aria2's "*": each URI is its own referer; idmd sends the first
		}
		o.req.Headers = append(o.req.Headers, "Referer: "+v)
	}
	if v, ok := option(opts, "user-agent"); ok {
		o.req.UserAgent = v
	}
	if v, ok := option(opts, "all-proxy"); ok {
		o.req.Proxy = v
	}
	if v, ok := option(opts, "checksum"); ok && v != "" {
		o.req.Checksum = v
	}
	var err error
	if v, ok := option(opts, "max-download-limit"); ok {
		if o.req.Limit, err = parseSize("max-download-limit", v); err != nil {
			return o, err
		}
	}
	if v, ok := option(opts, "max-connection-per-server"); ok {
		n, err := wholeNumber("max-connection-per-server", v, 1, maxConnsPerServer)
		if err != nil {
			return o, err
		}
		o.req.Connections = int(n)
	}
	if v, ok := option(opts, "split"); ok {
		if o.split, err = wholeNumber("split", v, 1, 1<<16); err != nil {
			return o, err
		}
	}
	if v, ok := option(opts, "pause"); ok {
		o.pause = v == "true"
	}
	// aria2 follows a Metalink it downloads unless told "false"; "mem"
	// (follow without keeping the file) is taken as "true": idmd keeps it.
	o.req.FollowMetalink = true
	if v, ok := option(opts, "follow-metalink"); ok && v == "false" {
		o.req.FollowMetalink = false
	}
	return o, nil
}

// request returns the create request for a download of sources: split,
// aria2's connections for the whole download, becomes connections per
// source when max-connection-per-server does not say.
func (o addOptions) request(sources []string) api.CreateRequest {
	req := o.req
	req.Sources = sources
	if req.Connections == 0 && o.split > 0 && len(sources) > 0 {
		per := (o.split + int64(len(sources)) - 1) / int64(len(sources))
		req.Connections = int(min(max(per, 1), maxConnsPerServer))
	}
	// Again the same download is the one that exists: it goes on, as a
	// front-end that asks twice means.
	req.Resume = true
	return req
}

// metalinkRequest returns the Metalink request for document.
func (o addOptions) metalinkRequest(document string) api.MetalinkRequest {
	return api.MetalinkRequest{Document: document, Dir: o.req.Dir, Limit: o.req.Limit, Connections: o.req.Connections, HTTPOptions: o.req.HTTPOptions}
}

// String describes o for the log, secrets aside.
func (o addOptions) String() string {
	return fmt.Sprintf("dir=%s name=%q limit=%d connections=%d split=%d pause=%v headers=%d", o.req.Dir, o.req.Name, o.req.Limit, o.req.Connections, o.split, o.pause, len(o.req.Headers))
}
