package httpsrc

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/idmproject/idm/identity"
	"github.com/idmproject/idm/transport/metalink"
)

// A mirror may say where its file's Metalink is (Link: <...>;
// rel=describedby; type="application/metalink4+xml", as MirrorBrain's
// mirrors and idm-server do). The Metalink's piece hashes then check
// every byte of the job, from every source, as an idm server's do.

// describedBy returns the address of the Metalink an answer points to,
// resolved against base, or nil.
func describedBy(h http.Header, base *url.URL) *url.URL {
	for _, v := range h.Values("Link") {
		for _, l := range parseLinks(v) {
			if !slices.Contains(strings.Fields(strings.ToLower(l.params["rel"])), "describedby") ||
				!strings.EqualFold(strings.TrimSpace(l.params["type"]), metalink.MediaType) {
				continue
			}
			ref, err := url.Parse(l.target)
			if err != nil {
				continue
			}
			u := base.ResolveReference(ref)
			if u.Scheme != "http" && u.Scheme != "https" {
				continue
			}
			return u
		}
	}
	return nil
}

// metaTimeout bounds the fetch of a mirror's Metalink.
const metaTimeout = 30 * time.Second

// loadPieces fetches, once for the source, the Metalink at u and keeps
// the piece list it gives for a file of size bytes. The source's other
// connections wait for it, so that none describes the file without the
// pieces while they are on their way. The Metalink's address is one the
// mirror named, and is fetched within the reach reach, the mirror's
// answer's onward one. Only a failure of ctx is returned.
func (s *Source) loadPieces(ctx context.Context, u *url.URL, size int64, reach Class) error {
	s.metaMu.Lock()
	defer s.metaMu.Unlock()
	s.mu.Lock()
	done := s.metaDone
	s.mu.Unlock()
	if done {
		return nil
	}
	f, err := s.pieces(ctx, u, size, reach)
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.file, s.metaDone = f, true
	s.mu.Unlock()
	return nil
}

// pieces fetches the Metalink at u and returns the piece list it gives
// for a file of size bytes, with its whole-file digests, or nil when it
// gives none that fits. A Metalink that cannot be had or read is no
// reason to refuse the mirror, whose bytes are then hashed by the engine
// as any mirror's: nil, nil. Nor is one beyond reach, never asked for.
// Only a failure of ctx is returned.
func (s *Source) pieces(ctx context.Context, u *url.URL, size int64, reach Class) (*identity.File, error) {
	ctx, cancel := context.WithTimeout(ctx, metaTimeout)
	defer cancel()
	rctx, _ := WithReach(ctx, reach)
	req, err := http.NewRequestWithContext(rctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, nil
	}
	for k, v := range s.header {
		req.Header[k] = v
	}
	req.Header.Set("Accept", metalink.MediaType)
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, context.Cause(ctx)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, nil
	}
	files, err := metalink.Parse(io.LimitReader(resp.Body, metalink.MaxSize+1))
	if err != nil {
		return nil, ctx.Err()
	}
	for _, f := range files {
		if f.Pieces != nil && f.Size == size {
			p := *f.Pieces
			p.Digests = f.Digests
			return &p, nil
		}
	}
	return nil, nil
}

// File returns the description of the file and its piece list, from the
// Metalink the mirror pointed to; it fails with identity.ErrNoPieces when
// the mirror pointed to none that fits (see ListsPieces). A Conn that
// holds the whole file a mirror sent in place of a range (see Describe)
// gives the description of that answer, keeping it for Stream, rather
// than ask again.
func (c *Conn) File(ctx context.Context) (*identity.Description, *identity.File, error) {
	c.mu.Lock()
	k := c.kept
	c.mu.Unlock()
	var (
		d   *identity.Description
		err error
	)
	if k != nil {
		d = k.d
	} else if d, err = c.Describe(ctx); err != nil {
		return nil, nil, err
	}
	c.src.mu.Lock()
	f := c.src.file
	c.src.mu.Unlock()
	if f == nil {
		return nil, nil, fmt.Errorf("%s: %w", c.src.shown, identity.ErrNoPieces)
	}
	return d, f, nil
}

// ListsPieces reports whether the mirror, when it last described the
// file, pointed to a Metalink with its piece hashes: whether File can
// give them.
func (c *Conn) ListsPieces() bool {
	c.src.mu.Lock()
	defer c.src.mu.Unlock()
	return c.src.file != nil
}
