package transport

import (
	"bytes"
	"encoding/base64"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/idmproject/idm/identity"
	"github.com/idmproject/idm/transport/metalink"
)

// Meta4Suffix ends the path of the Metalink a server gives of its file:
// /<name>.meta4.
const Meta4Suffix = ".meta4"

// maxMetalinkPieces is the most SHA-256 pieces a Metalink lists: about
// 84 bytes each, 11 MiB at most, under the 16 MiB that metalink.Parse
// reads. A file with more is described by its size and SHA-256 alone.
const maxMetalinkPieces = 1 << 17

// ErrNoSHA256 is returned by [Manifest.Metalink] for a manifest without
// SHA-256 hashes: one read from the network rather than built from the
// file.
var ErrNoSHA256 = errors.New("the manifest has no SHA-256 hashes")

// Metalink returns the file m describes as a Metalink file, to be fetched
// from urls: its name, size, SHA-256, and SHA-256 pieces of the segment
// size unless there are more than a Metalink can reasonably list. The
// mirrors are given no priority. It fails with [ErrNoSHA256] when m has
// no SHA-256 hashes.
func (m *Manifest) Metalink(urls []string) (metalink.File, error) {
	if m.SHA256 == nil {
		return metalink.File{}, ErrNoSHA256
	}
	f := metalink.File{Name: m.Name, Size: m.Size, Digests: m.SHA256.Digests}
	if m.SHA256.Count() <= maxMetalinkPieces {
		// The Metalink's pieces carry no digests: they are the file's.
		f.Pieces = &identity.File{Size: m.Size, PieceLen: m.SegmentSize, Algo: identity.SHA256, Pieces: m.SHA256.Pieces}
	}
	for _, u := range urls {
		f.Mirrors = append(f.Mirrors, metalink.Mirror{URL: u})
	}
	return f, nil
}

// canDescribe reports whether m can be written as a Metalink: it has
// SHA-256 hashes and a name a Metalink may give (not every file name
// is one: see metalink.File).
func (m *Manifest) canDescribe() bool {
	f, err := m.Metalink([]string{"http://127.0.0.1/"})
	return err == nil && metalink.Write(io.Discard, []metalink.File{f}) == nil
}

// ReprDigest returns the value of the Repr-Digest header (RFC 9530) of
// the file m describes, "sha-256=:BASE64:", or "" when m has no SHA-256.
func (m *Manifest) ReprDigest() string {
	if m.SHA256 == nil {
		return ""
	}
	sum, ok := m.SHA256.Digest(identity.SHA256)
	if !ok {
		return ""
	}
	return "sha-256=:" + base64.StdEncoding.EncodeToString(sum) + ":"
}

// describedBy returns the Link header (RFC 8288) that points from the
// file to its Metalink.
func describedBy(name string) string {
	return "</" + url.PathEscape(name) + Meta4Suffix + `>; rel=describedby; type="` + metalink.MediaType + `"`
}

// serveMeta4 answers GET and HEAD of /<name>.meta4: a Metalink of the
// file with this server's own URL, as the client reached it.
func (s *Server) serveMeta4(r *serving, w http.ResponseWriter, req *http.Request) {
	// The hashes are the manifest's: a file changed since the start has
	// other ones, and is not described at all, as it is not served.
	f, err := s.open()
	if err != nil {
		s.logger().Error("open served file", "addr", s.Addr, "err", err)
		http.Error(w, "cannot read the file", http.StatusInternalServerError)
		return
	}
	f.Close()
	host := req.Host
	if !validHost(host) {
		// No Host (HTTP/1.0) or one that is not an address: the address
		// the client connected to is one it can reach again.
		var local net.Addr = r.ln.Addr()
		if a, ok := req.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
			local = a
		}
		host = local.String()
	}
	ml, err := s.Manifest.Metalink([]string{"http://" + host + "/" + url.PathEscape(s.Manifest.Name)})
	var doc bytes.Buffer
	if err == nil {
		err = metalink.Write(&doc, []metalink.File{ml})
	}
	if err != nil {
		s.logger().Error("write the Metalink", "addr", s.Addr, "err", err)
		http.Error(w, "cannot describe the file", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", metalink.MediaType)
	http.ServeContent(w, req, "", s.Manifest.ModTime, bytes.NewReader(doc.Bytes()))
}

// validHost reports whether a Host header is host[:port] with a host
// that is an IP address (IPv6 in brackets) or a DNS name: nothing that
// would change the meaning of a URL it is put in.
func validHost(hp string) bool {
	host := hp
	if h, port, err := net.SplitHostPort(hp); err == nil {
		if !validPortText(port) {
			return false
		}
		host = h
		if strings.HasPrefix(hp, "[") {
			return strings.Contains(host, ":") && net.ParseIP(host) != nil
		}
	} else if strings.HasPrefix(hp, "[") && strings.HasSuffix(hp, "]") {
		host = hp[1 : len(hp)-1]
		return strings.Contains(host, ":") && net.ParseIP(host) != nil
	}
	if strings.Contains(host, ":") {
		// An IPv6 address without brackets, or a stray colon.
		return false
	}
	return net.ParseIP(host) != nil || isDNSName(host)
}

// validPortText reports whether p is a port number, 1..65535, in plain
// digits.
func validPortText(p string) bool {
	if p == "" || len(p) > 5 || strings.Trim(p, "0123456789") != "" {
		return false
	}
	n, _ := strconv.Atoi(p)
	return n >= 1 && n <= 65535
}

// isDNSName reports whether s is a DNS name: dot-separated labels of
// letters, digits, hyphens and underscores, 1..63 bytes each, 253 in all.
func isDNSName(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for _, label := range strings.Split(s, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i] | 0x20
			if !('a' <= c && c <= 'z') && !('0' <= label[i] && label[i] <= '9') && label[i] != '-' && label[i] != '_' {
				return false
			}
		}
	}
	return true
}
