package daemon

import (
	"context"
	"fmt"
	"time"

	"github.com/idmproject/idm/transport"
)

// identityWait is how long a new job waits, after the first source has
// described the file, for the others: the file most sources hold becomes
// the job's, not the one that happened to answer first.
const identityWait = time.Second

// mismatchError says why a source does not hold the job's file.
type mismatchError struct{ reason string }

func (e *mismatchError) Error() string { return e.reason }

// A job's file is decided once, from the sources' summaries of their
// manifests: each source votes for the whole manifest it describes (size,
// segment size, content hash and the digest of its segment hashes), and
// the manifest most sources describe wins. Only then is one whole
// manifest fetched, from a source that voted for it, and checked against
// the winning summary. So a source that lies about a single segment hash
// is outvoted rather than believed, and the engine holds one manifest per
// job, not one per source.

// describe asks a source for the summary of its manifest. The first
// source to answer a new job keeps its whole manifest too, as the
// candidate: when it wins the vote, as it mostly does, no source is asked
// for the manifest twice.
func (t *transfer) describe(ctx context.Context, st transport.Stream) (*transport.Summary, error) {
	t.mu.Lock()
	keep := t.man == nil && t.candidate == nil && !t.fetching
	t.fetching = t.fetching || keep
	t.mu.Unlock()
	if !keep {
		return st.Summary(ctx)
	}
	m, err := st.Manifest(ctx)
	t.mu.Lock()
	defer t.mu.Unlock()
	t.fetching = false
	close(t.fetchDone)
	t.fetchDone = make(chan struct{})
	if err != nil {
		return nil, err
	}
	s := m.Summary()
	if t.man == nil && (t.winner == nil || s.SameFile(t.winner)) && s.Validate() == nil && t.pinned(&s) == nil {
		t.candidate = m
	}
	return &s, nil
}

// adopt checks a source's summary against the job's file. For a new job
// it first casts the source's vote and waits for the decision; a source
// that agrees with it may be asked, through st, for the whole manifest.
// It returns a *mismatchError when the source holds another file.
func (t *transfer) adopt(ctx context.Context, idx int, s *transport.Summary, st transport.Stream) error {
	if err := s.Validate(); err != nil {
		return &mismatchError{"invalid manifest: " + err.Error()}
	}
	t.mu.Lock()
	if t.man == nil && t.winner == nil {
		if err := t.pinned(s); err != nil {
			t.mu.Unlock()
			return err
		}
		t.votes[idx] = *s
		t.maybeDecideLocked()
		decided := t.decided
		t.mu.Unlock()
		select {
		case <-decided:
		case <-ctx.Done():
			return ctx.Err()
		}
		t.mu.Lock()
	}
	for {
		if err := t.identityErr; err != nil {
			t.mu.Unlock()
			// The file is known but cannot be written (no room, say): no
			// source can cure that.
			t.fail(err)
			return err
		}
		ref := t.winner
		if t.man != nil {
			ref = &t.manSummary
		}
		if err := differs(s, ref, t.votesFor(ref)); err != nil {
			t.mu.Unlock()
			return err
		}
		if t.man != nil {
			t.mu.Unlock()
			return nil
		}
		if c := t.candidate; c != nil {
			if cs := c.Summary(); cs.SameFile(ref) {
				t.identifyLocked(c)
			}
			t.candidate = nil
			continue
		}
		if !t.fetching {
			t.fetching = true
			t.mu.Unlock()
			return t.fetchManifest(ctx, st, ref)
		}
		wait := t.fetchDone
		t.mu.Unlock()
		select {
		case <-wait:
		case <-ctx.Done():
			return ctx.Err()
		}
		t.mu.Lock()
	}
}

// pinned refuses a source whose file is not the one the user asked for.
// Called with mu held.
func (t *transfer) pinned(s *transport.Summary) error {
	if t.rec.Expect != ([32]byte{}) && s.Content != transport.Hash(t.rec.Expect) {
		return &mismatchError{fmt.Sprintf("holds a different file: content %s, expected %s", s.Content, transport.Hash(t.rec.Expect))}
	}
	return nil
}

// differs says how a source's summary s differs from the job's ref, held
// by agreeing sources: nil when it does not.
func differs(s, ref *transport.Summary, agreeing int) error {
	switch {
	case s.Size != ref.Size:
		return &mismatchError{fmt.Sprintf("holds a different file: %d bytes, the job's has %d", s.Size, ref.Size)}
	case s.Content != ref.Content:
		return &mismatchError{fmt.Sprintf("holds a different file: content %s, the job's is %s", s.Content, ref.Content)}
	case s.SegmentSize != ref.SegmentSize:
		return &mismatchError{fmt.Sprintf("cuts the file into %d-byte segments, the job uses %d", s.SegmentSize, ref.SegmentSize)}
	case s.Segments != ref.Segments || s.Digest != ref.Digest:
		who := "the job's manifest"
		if agreeing > 0 {
			who = fmt.Sprintf("the manifest %d other source(s) agree on", agreeing)
		}
		return &mismatchError{fmt.Sprintf("lists segment hashes that differ from %s (same size and content hash): it describes the file falsely", who)}
	}
	return nil
}

// fetchManifest fetches the whole manifest from st, a source whose
// summary matched ref, and makes it the job's.
func (t *transfer) fetchManifest(ctx context.Context, st transport.Stream, ref *transport.Summary) error {
	m, err := st.Manifest(ctx)
	var s transport.Summary
	if err == nil {
		if s = m.Summary(); !s.SameFile(ref) {
			err = &mismatchError{"sent a manifest that differs from the summary it gave a moment before"}
		}
	}
	t.mu.Lock()
	t.fetching = false
	close(t.fetchDone)
	t.fetchDone = make(chan struct{})
	if err != nil {
		t.mu.Unlock()
		return err
	}
	t.identifyLocked(m)
	ierr := t.identityErr
	t.mu.Unlock()
	if ierr != nil {
		t.fail(ierr)
	}
	return ierr
}

// identifyLocked makes m, the winner's whole manifest, the job's file,
// or sets identityErr when it cannot be.
func (t *transfer) identifyLocked(m *transport.Manifest) {
	if t.man != nil || t.identityErr != nil {
		return
	}
	t.identityErr = t.setIdentityLocked(m)
	close(t.known)
}

// maybeDecideLocked decides the job's file once every source has voted
// or one manifest has the votes of more than half the sources; otherwise
// it makes sure the decision comes identityWait after the first vote.
func (t *transfer) maybeDecideLocked() {
	best, n := t.leaderLocked()
	switch {
	case len(t.votes) == len(t.sources), 2*n > len(t.sources):
		t.decideLocked(best)
	case t.voteTimer == nil:
		t.voteTimer = time.AfterFunc(identityWait, func() {
			t.mu.Lock()
			defer t.mu.Unlock()
			best, _ := t.leaderLocked()
			t.decideLocked(best)
		})
	}
}

// leaderLocked returns the manifest most votes went to (on a tie, the one
// of the source given first) and its number of votes.
func (t *transfer) leaderLocked() (*transport.Summary, int) {
	var best *transport.Summary
	bestN, bestFirst := 0, 0
	for idx, v := range t.votes {
		n, first := 0, idx
		for j, w := range t.votes {
			if w.SameFile(&v) {
				n++
				first = min(first, j)
			}
		}
		if n > bestN || (n == bestN && first < bestFirst) {
			best, bestN, bestFirst = &v, n, first
		}
	}
	return best, bestN
}

// decideLocked makes w the job's file. The whole manifest is fetched
// next, by the first agreeing source to get there.
func (t *transfer) decideLocked(w *transport.Summary) {
	if t.winner != nil || t.man != nil || t.stopped || w == nil {
		return
	}
	t.winner = w
	close(t.decided)
	t.log.Info("file decided", "name", w.Name, "size", w.Size, "segments", w.Segments,
		"blake3", w.Content.String(), "sources_agreeing", t.votesFor(w), "sources_answered", len(t.votes))
}

// votesFor counts the votes for the manifest s describes. Called with mu
// held.
func (t *transfer) votesFor(s *transport.Summary) int {
	n := 0
	for _, v := range t.votes {
		if v.SameFile(s) {
			n++
		}
	}
	return n
}

// setIdentityLocked makes m the job's file: in the store, then on disk.
func (t *transfer) setIdentityLocked(m *transport.Manifest) error {
	// A file larger than the room on the disk is refused before anything
	// is recorded: a manifest of 64 TiB would otherwise put 32 MiB of
	// hashes in the store for a job that cannot be.
	if err := t.openDirLocked(); err != nil {
		return err
	}
	if err := t.dir.room(m.Size); err != nil {
		return err
	}
	hashes := make([]byte, 0, len(m.Segments)*transport.HashSize)
	for _, h := range m.Segments {
		hashes = append(hashes, h[:]...)
	}
	if err := t.db.SetManifest(t.rec.ID, m.Size, m.SegmentSize, m.Content, hashes); err != nil {
		return fmt.Errorf("record manifest: %w", err)
	}
	t.rec.Size, t.rec.SegmentSize, t.rec.Content = m.Size, m.SegmentSize, m.Content
	if t.rec.Name == "" {
		t.rec.Name = SanitizeName(m.Name)
	}
	return t.prepareLocked(m, false)
}
