package httpsrc

import (
	"encoding/base64"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/idmproject/idm/identity"
	"github.com/idmproject/idm/transport/metalink"
)

// What went wrong with a mirror, matched with errors.Is on an *Error.
var (
	// ErrNoRanges reports a mirror that answers a range with the whole
	// file. It is permanent: ranges are how the pieces of a job are
	// shared among its sources. When the answer can be taken as the
	// file, the error's Whole method describes it, and Conn.Stream sends
	// it, for a job that has no other source.
	ErrNoRanges = errors.New("the mirror ignores ranges")
	// ErrChanged reports a file whose size or version is not the one the
	// mirror first described, or the one a resumed job recorded. It is
	// permanent.
	ErrChanged = errors.New("the file changed on the mirror")
	// ErrProtocol reports an answer that is not the range asked for: the
	// mirror is broken, and permanently so.
	ErrProtocol = errors.New("protocol violation")
	// ErrRedirect reports a redirect refused: more than ten, from https
	// to http, or to an address that does not parse. It is permanent.
	ErrRedirect = errors.New("redirect refused")
	// ErrStalled reports a response that delivered no byte for the stall
	// time-out. It is transient.
	ErrStalled = errors.New("connection stalled")
	// ErrMetalink reports a mirror that answers with a Metalink (its
	// Content-Type says so), a list of files and their mirrors, in place
	// of the file. It is permanent, and the mirror holds another file
	// (see Error.OtherFile).
	ErrMetalink = errors.New("the mirror answers with a Metalink, not the file")
	// ErrMetalink3 reports a mirror that answers with a Metalink 3
	// (application/metalink+xml) where a Metalink was accepted as the
	// file (Options.AcceptMetalink): only Metalink 4 is read. It is
	// permanent, and the mirror holds another file.
	ErrMetalink3 = errors.New("the mirror answers with a Metalink 3, which idmd does not read")
)

// maxRetryAfter caps the wait a mirror may ask for.
const maxRetryAfter = 24 * time.Hour

// Error is a request to a mirror that failed. Its text names the mirror
// by its redacted address.
type Error struct {
	src        string
	err        error
	permanent  bool
	other      bool
	retryAfter time.Duration
	whole      *identity.Description // the file an answer sent whole, for ErrNoRanges
}

// Error returns the failure as one line.
func (e *Error) Error() string {
	msg := e.src + ": " + e.err.Error()
	if e.retryAfter > 0 {
		msg += fmt.Sprintf(" (retry after %v)", e.retryAfter.Round(time.Second))
	}
	return msg
}

// Unwrap returns what went wrong, for errors.Is.
func (e *Error) Unwrap() error { return e.err }

// Permanent reports whether the mirror can never serve the job: asking
// it again would give the same answer.
func (e *Error) Permanent() bool { return e.permanent }

// OtherFile reports whether the mirror answered with something that is
// not the job's file at all, such as a Metalink: a permanent failure that
// says the mirror holds another file, as one of another size does.
func (e *Error) OtherFile() bool { return e.other }

// RetryAfter returns how long the mirror asked to be left alone, with a
// Retry-After header on a 429 or 503 (capped at a day), or 0 when it did
// not say. The error is transient; a caller that honours the wait should
// back off at least this long before asking the mirror again.
func (e *Error) RetryAfter() time.Duration { return e.retryAfter }

// Whole returns, for a mirror that answered a range with the whole file
// (ErrNoRanges), the file that answer was: its length is the size the
// mirror first described, it is not compressed, and it is not of another
// version. It returns nil for any other failure, and for a whole answer
// that cannot be taken as the file. The Conn whose Describe failed so
// keeps the answer for Stream, which then wastes none of it.
func (e *Error) Whole() *identity.Description { return e.whole }

// refused wraps the error of an answer that cannot be taken as a
// permanent failure.
func (s *Source) refused(err error) *Error { return &Error{src: s.shown, err: err, permanent: true} }

// maxMediaType bounds the media type a source keeps: a real one is a few
// dozen bytes, and a mirror's header could hold kilobytes.
const maxMediaType = 127

// notTheFile is the failure of an answer that is a Metalink, not a file:
// the mirror holds another file. It returns nil for any other answer, and
// for a Metalink 4 when the source accepts one as its file. Only a
// successful answer counts: an error page's type says nothing of the
// file. The type of the first such answer is kept (MediaType).
func (s *Source) notTheFile(resp *http.Response) *Error {
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusPartialContent {
		return nil
	}
	mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if len(mt) <= maxMediaType {
		s.mu.Lock()
		if s.media == "" {
			s.media = mt
		}
		s.mu.Unlock()
	}
	switch {
	case mt == metalink.MediaType3 && s.meta4:
		return &Error{src: s.shown, err: fmt.Errorf("%w (%s): give the URL of its Metalink 4 (.meta4)", ErrMetalink3, mt), permanent: true, other: true}
	case mt == metalink.MediaType && s.meta4:
		return nil
	case mt == metalink.MediaType || mt == metalink.MediaType3:
		return &Error{src: s.shown, err: fmt.Errorf("%w (%s)", ErrMetalink, mt), permanent: true, other: true}
	}
	return nil
}

// isMetalink reports whether an answer says it is a Metalink 4.
func isMetalink(resp *http.Response) bool {
	mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	return mt == metalink.MediaType
}

// statusError is the failure of an answer whose status is not the one
// wanted.
func (s *Source) statusError(resp *http.Response) *Error {
	code := resp.StatusCode
	e := &Error{src: s.shown, err: errors.New(strings.TrimSpace(fmt.Sprintf("%d %s", code, http.StatusText(code))))}
	switch {
	case code == http.StatusOK:
		e.permanent = true
		if s.changed(resp.Header) {
			e.err = fmt.Errorf("%w: resumed with %s, the mirror now has %s", ErrChanged, s.given, validatorOf(resp.Header))
		} else {
			e.err = fmt.Errorf("%w: 200 with the whole file", ErrNoRanges)
			e.whole = s.wholeOf(resp)
		}
	case code == http.StatusRequestTimeout || code == http.StatusTooManyRequests || code >= 500:
		if code == http.StatusTooManyRequests || code == http.StatusServiceUnavailable {
			e.retryAfter = retryAfter(resp.Header.Get("Retry-After"), time.Now())
		}
	case code >= 400:
		e.permanent = true
	default:
		e.err = fmt.Errorf("%w: status %d to a range", ErrProtocol, code)
		e.permanent = true
	}
	return e
}

// takeWhole checks that an answer to a request for all of a file of size
// bytes, as one range, is that file: the range itself, or, from a mirror
// that ignores ranges, the whole file of that size and version, in the
// clear. A length that is not the size is the file changed; a body of a
// length not given is taken, and read up to the size only.
func (s *Source) takeWhole(resp *http.Response, size int64) error {
	switch resp.StatusCode {
	case http.StatusPartialContent:
		got, err := rangeOf(resp, 0, size)
		if err == nil {
			err = s.observe(got, validatorOf(resp.Header))
		}
		if err != nil {
			return s.refused(err)
		}
		return nil
	case http.StatusOK:
		if s.changed(resp.Header) {
			return s.statusError(resp)
		}
		if err := inClear(resp); err != nil {
			return s.refused(err)
		}
		if n := resp.ContentLength; n >= 0 && n != size {
			return s.refused(fmt.Errorf("%w: %d bytes, was %d", ErrChanged, n, size))
		}
		if err := s.observe(size, validatorOf(resp.Header)); err != nil {
			return s.refused(err)
		}
		return nil
	}
	return s.statusError(resp)
}

// wholeOf describes the file a 200 answer to a range sends whole, or
// returns nil when the answer cannot be taken as the file: compressed, of
// a length it does not give, or not the size or version the mirror first
// described.
func (s *Source) wholeOf(resp *http.Response) *identity.Description {
	n := resp.ContentLength
	if resp.StatusCode != http.StatusOK || n <= 0 || n > identity.MaxSize || inClear(resp) != nil || s.changed(resp.Header) {
		return nil
	}
	s.mu.Lock()
	other := (s.known && n != s.size) || (s.etag != "" && validatorOf(resp.Header).ETag != "" && validatorOf(resp.Header).ETag != s.etag)
	s.mu.Unlock()
	if other {
		return nil
	}
	return described(resp, n)
}

// described returns what an answer says of the file, of size bytes: its
// name, modification time and whole-file digests.
func described(resp *http.Response, size int64) *identity.Description {
	d := &identity.Description{Name: fileName(resp), Summary: identity.Summary{Size: size, Digests: digests(resp.Header)}}
	if t, err := http.ParseTime(resp.Header.Get("Last-Modified")); err == nil {
		d.ModTime = t
	}
	return d
}

// changed reports whether an answer to an If-Range request is of
// another version than the one asked for: a mirror that answers a
// request for a version it has with all of it ignores ranges.
func (s *Source) changed(h http.Header) bool {
	got := validatorOf(h)
	ir := s.given.ifRange()
	return ir != "" && ir != got.ETag && ir != got.LastModified
}

// inClear checks that an answer's body is the file's bytes as they are,
// not compressed.
func inClear(resp *http.Response) error {
	for _, v := range resp.Header.Values("Content-Encoding") {
		for c := range strings.SplitSeq(v, ",") {
			if c = strings.TrimSpace(c); c != "" && !strings.EqualFold(c, "identity") {
				return fmt.Errorf("%w: Content-Encoding %s, asked for identity", ErrProtocol, shown(c))
			}
		}
	}
	return nil
}

// rangeOf checks that a 206 answers exactly bytes [off, off+n), in the
// clear, and returns the size of the file it says they are of.
func rangeOf(resp *http.Response, off, n int64) (int64, error) {
	if err := inClear(resp); err != nil {
		return 0, err
	}
	h := resp.Header.Get("Content-Range")
	cr, ok := parseContentRange(h)
	if !ok || cr.first != off || cr.last != off+n-1 || cr.size < 0 {
		return 0, fmt.Errorf("%w: Content-Range %s to bytes=%d-%d", ErrProtocol, shown(h), off, off+n-1)
	}
	if cr.size > identity.MaxSize {
		return 0, fmt.Errorf("%w: a file of %d bytes, more than %d", ErrProtocol, cr.size, int64(identity.MaxSize))
	}
	if resp.ContentLength >= 0 && resp.ContentLength != n {
		return 0, fmt.Errorf("%w: Content-Length %d to a range of %d bytes", ErrProtocol, resp.ContentLength, n)
	}
	return cr.size, nil
}

// contentRange is a Content-Range header: bytes first-last/size. first
// and last are -1 for an unsatisfied range (bytes */size), size -1 when
// unknown (bytes first-last/*).
type contentRange struct{ first, last, size int64 }

// parseContentRange reads a Content-Range header (RFC 9110, 14.4).
func parseContentRange(s string) (contentRange, bool) {
	r := contentRange{first: -1, last: -1, size: -1}
	if len(s) < 6 || !strings.EqualFold(s[:6], "bytes ") {
		return r, false
	}
	rng, total, ok := strings.Cut(s[6:], "/")
	if !ok {
		return r, false
	}
	if total != "*" {
		if r.size, ok = decimal(total); !ok {
			return r, false
		}
	}
	if rng == "*" {
		return r, r.size >= 0
	}
	a, b, ok := strings.Cut(rng, "-")
	if !ok {
		return r, false
	}
	first, ok1 := decimal(a)
	last, ok2 := decimal(b)
	if !ok1 || !ok2 || last < first || (r.size >= 0 && last >= r.size) {
		return r, false
	}
	r.first, r.last = first, last
	return r, true
}

// String writes the header back.
func (r contentRange) String() string {
	total := "*"
	if r.size >= 0 {
		total = strconv.FormatInt(r.size, 10)
	}
	if r.first < 0 {
		return "bytes */" + total
	}
	return fmt.Sprintf("bytes %d-%d/%s", r.first, r.last, total)
}

// decimal reads a non-negative decimal integer of digits only: no sign,
// no space, which strconv would let through.
func decimal(s string) (int64, bool) {
	if s == "" || len(s) > 19 {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil
}

// retryAfter reads a Retry-After header, seconds or an HTTP date, as a
// wait from now; 0 when it says none or cannot be read.
func retryAfter(v string, now time.Time) time.Duration {
	if secs, ok := decimal(v); ok {
		return time.Duration(min(secs, int64(maxRetryAfter/time.Second))) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return min(max(t.Sub(now), 0), maxRetryAfter)
	}
	return 0
}

// validatorOf returns the validator an answer carries.
func validatorOf(h http.Header) Validator {
	v := Validator{LastModified: h.Get("Last-Modified")}
	if e := h.Get("ETag"); strongETag(e) {
		v.ETag = e
	}
	return v
}

// strongETag reports whether e is a strong entity tag: a quoted string
// with no W/ before it.
func strongETag(e string) bool { return len(e) >= 2 && e[0] == '"' && e[len(e)-1] == '"' }

// fileName returns the name an answer gives the file: the Content-
// Disposition's filename (filename* preferred), else the last segment of
// the final URL's path.
func fileName(resp *http.Response) string {
	if _, p, err := mime.ParseMediaType(resp.Header.Get("Content-Disposition")); err == nil && p["filename"] != "" {
		return p["filename"]
	}
	ep := resp.Request.URL.EscapedPath()
	seg := ep[strings.LastIndex(ep, "/")+1:]
	if name, err := url.PathUnescape(seg); err == nil {
		return name
	}
	return seg
}

// digestAlgos maps the names digest headers give algorithms to those
// identity knows: sha-256 and sha-512 in both, and "sha", SHA-1, in RFC
// 3230's Digest.
var digestAlgos = map[string]identity.Algo{"sha-256": identity.SHA256, "sha-512": identity.SHA512, "sha": identity.SHA1}

// digests returns the whole-file digests an answer claims, from
// Repr-Digest (RFC 9530: sha-256=:BASE64:) and then Digest (RFC 3230:
// SHA-256=BASE64), one per algorithm. Members that cannot be read, or are
// of other algorithms, are skipped: a digest is a claim to check later,
// and a malformed one is no reason to refuse the mirror.
func digests(h http.Header) []identity.Digest {
	var out []identity.Digest
	add := func(members []string, sequence bool) {
		for _, m := range members {
			k, v, _ := strings.Cut(m, "=")
			a, ok := digestAlgos[strings.ToLower(strings.TrimSpace(k))]
			if !ok || has(out, a) {
				continue
			}
			v, _, _ = strings.Cut(strings.TrimSpace(v), ";") // parameters
			v = strings.TrimSpace(v)
			if sequence {
				if len(v) < 2 || v[0] != ':' || v[len(v)-1] != ':' {
					continue
				}
				v = v[1 : len(v)-1]
			}
			sum, err := base64.StdEncoding.DecodeString(v)
			if err != nil {
				sum, err = base64.RawStdEncoding.DecodeString(v)
			}
			if err == nil && len(sum) == a.Size() {
				out = append(out, identity.Digest{Algo: a, Sum: sum})
			}
		}
	}
	add(strings.Split(strings.Join(h.Values("Repr-Digest"), ","), ","), true)
	add(strings.Split(strings.Join(h.Values("Digest"), ","), ","), false)
	return out
}

func has(ds []identity.Digest, a identity.Algo) bool {
	for _, d := range ds {
		if d.Algo == a {
			return true
		}
	}
	return false
}

// shown quotes a value a mirror sent for a message, cut short: it is
// the mirror's text, of any length and content. An entity tag that is
// plain text is quoted already.
func shown(s string) string {
	if len(s) > 80 {
		s = s[:80] + "..."
	}
	if strongETag(s) && strings.IndexFunc(s, func(r rune) bool { return r <= ' ' || r > '~' }) < 0 {
		return s
	}
	return strconv.Quote(s)
}
