package engine

import (
	"context"
	"fmt"
	"time"

	"github.com/idmproject/idm/identity"
)

// identityWait is how long a new job waits, after the first source has
// described the file, for the others: the file most sources hold becomes
// the job's, not the one that happened to answer first.
const identityWait = time.Second

// mismatchError says why a source does not hold the job's file. It is
// permanent for the job.
type mismatchError struct{ reason string }

func (e *mismatchError) Error() string { return e.reason }

// A job's file is decided once, from what the sources say of it: each
// source votes for the file it describes, whose root stands for every
// piece hash, and the description most sources give wins; a source that
// knows only the size counts only where no source describes more. One
// whole piece list is then taken, from a source that voted for it, and
// checked against the winner's root. So a source that lies about a
// single piece hash is outvoted rather than believed, and the engine
// holds one piece list per job, not one per source.

// describe asks a source what it holds. The first source to answer a
// new job gives its whole piece list too, kept as the candidate: when it
// wins the vote, as it mostly does, no source is asked twice.
func (t *transfer) describe(ctx context.Context, c Conn) (*identity.Description, error) {
	pl, lists := lister(c)
	t.mu.Lock()
	keep := lists && t.file == nil && t.candidate == nil && !t.fetching
	t.fetching = t.fetching || keep
	t.mu.Unlock()
	if !keep {
		return c.Describe(ctx)
	}
	d, f, err := pl.File(ctx)
	t.mu.Lock()
	defer t.mu.Unlock()
	t.doneFetchingLocked()
	if err != nil {
		return nil, err
	}
	if t.file == nil && (t.winner == nil || d.SameFile(t.winner)) && d.Validate() == nil && t.pinned(&d.Summary) == nil {
		t.candidate = f
	}
	return d, nil
}

// doneFetchingLocked ends a fetch of a piece list, or the preparing of the
// file, and wakes those waiting for it.
func (t *transfer) doneFetchingLocked() {
	t.fetching = false
	close(t.fetchDone)
	t.fetchDone = make(chan struct{})
}

// adopt checks what a source holds against the job's file. For a new job
// it first casts the source's vote and waits for the decision; a source
// that agrees with it may be asked, through c, for the piece list. It
// returns a *mismatchError when the source holds another file.
func (t *transfer) adopt(ctx context.Context, idx int, d *identity.Description, c Conn) error {
	if d.PieceLen != 0 {
		if err := d.Validate(); err != nil {
			return &mismatchError{"describes the file impossibly: " + err.Error()}
		}
	} else if d.Size < 0 || d.Size > identity.MaxSize {
		return &mismatchError{fmt.Sprintf("describes the file impossibly: size %d", d.Size)}
	}
	t.mu.Lock()
	if t.file == nil && t.winner == nil {
		if err := t.pinned(&d.Summary); err != nil {
			t.mu.Unlock()
			return err
		}
		t.votes[idx] = d.Summary
		if t.names == nil {
			t.names = map[int]string{}
		}
		t.names[idx] = d.Name
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
			return err
		}
		ref := t.winner
		if t.file != nil {
			ref = &t.summary
		}
		if err := differs(&d.Summary, ref, t.votesFor(ref)); err != nil {
			t.mu.Unlock()
			return err
		}
		if t.file != nil {
			t.mu.Unlock()
			return nil
		}
		if !t.fetching {
			var (
				f   *identity.File
				own bool
			)
			switch pl, lists := lister(c); {
			case ref.PieceLen == 0:
				// No source publishes piece hashes: the engine cuts the
				// file itself and hashes each piece as it is written.
				f, own = &identity.File{Size: ref.Size, PieceLen: identity.OwnPieceLen(ref.Size), Algo: identity.BLAKE3, Digests: ref.Digests}, true
			case t.candidate != nil && sameFile(t.candidate, ref):
				f = t.candidate
			case lists && d.SameFile(ref):
				// Only a source that described the job's file gives its
				// list; one that cut it another way waits for them.
				t.fetching = true
				t.candidate = nil
				t.mu.Unlock()
				_, got, err := pl.File(ctx)
				if err == nil {
					if !sameFile(got, ref) {
						err = &mismatchError{"gave a piece list other than the one it described a moment before"}
					}
				}
				if err != nil {
					t.mu.Lock()
					t.doneFetchingLocked()
					t.mu.Unlock()
					return err
				}
				return t.identify(ctx, got, false)
			}
			if f != nil {
				t.fetching = true
				t.candidate = nil
				t.mu.Unlock()
				return t.identify(ctx, f, own)
			}
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

// identify makes f the job's file: it is recorded, then prepared on disk.
// Only one goroutine identifies, having set fetching; the others wait for
// fetchDone. A file that cannot be written (no room, say) fails the job:
// no source can cure that.
func (t *transfer) identify(ctx context.Context, f *identity.File, own bool) error {
	err := t.record(f, own)
	if err == nil {
		err = t.prepare(ctx, f, own, false)
	}
	t.mu.Lock()
	t.identityErr = err
	t.doneFetchingLocked()
	close(t.known)
	t.mu.Unlock()
	if err != nil {
		t.fail(err)
	}
	return err
}

// record hands the journal the job's file and name, once the file is
// known to fit on the disk: a manifest of 64 TiB would otherwise put
// 32 MiB of hashes in the journal for a job that cannot be.
func (t *transfer) record(f *identity.File, own bool) error {
	if err := t.openDir(); err != nil {
		return err
	}
	if err := t.dir.room(f.Size); err != nil {
		return err
	}
	t.mu.Lock()
	if t.name == "" {
		t.name = SanitizeName(t.winnerName())
	}
	name := t.name
	t.mu.Unlock()
	if err := t.journal.Identified(f, name, own); err != nil {
		return fmt.Errorf("record the file: %w", err)
	}
	t.log.Info("file identified", "name", name, "size", f.Size, "pieces", f.Count(), "root", f.Root().String(), "own_pieces", own)
	return nil
}

// winnerName is the name the first source that voted for the winner
// gives the file. Called with mu held.
func (t *transfer) winnerName() string {
	best := -1
	for idx, v := range t.votes {
		if (t.winner == nil || v.SameFile(t.winner)) && (best < 0 || idx < best) {
			best = idx
		}
	}
	return t.names[best]
}

// pinned refuses a source whose file is not the one the user asked for:
// its root is not the pinned hash, nor is the whole-file BLAKE3 it claims
// (an idm server of protocol version 1; the claim is checked once the file
// is whole). Called with mu held.
func (t *transfer) pinned(s *identity.Summary) error {
	want := t.job.Expect
	if want == (identity.Hash{}) || s.Root == want {
		return nil
	}
	if sum, ok := digestOf(s, identity.BLAKE3); ok && string(sum) == string(want[:]) {
		return nil
	}
	return &mismatchError{fmt.Sprintf("holds a different file: content %s, expected %s", s.Root, want)}
}

// digestOf returns a summary's whole-file digest of an algorithm.
func digestOf(s *identity.Summary, a identity.Algo) ([]byte, bool) {
	for _, d := range s.Digests {
		if d.Algo == a {
			return d.Sum, true
		}
	}
	return nil, false
}

// differs says how a source's summary s differs from the job's ref, held
// by agreeing sources: nil when it does not. A source that knows only the
// size agrees with any file of that size, and a file that no source
// describes with pieces with any source of its size.
func differs(s, ref *identity.Summary, agreeing int) error {
	if s.Size != ref.Size {
		return &mismatchError{fmt.Sprintf("holds a different file: %d bytes, the job's has %d", s.Size, ref.Size)}
	}
	if s.PieceLen == 0 || ref.PieceLen == 0 {
		return nil
	}
	a, _ := digestOf(s, identity.BLAKE3)
	b, _ := digestOf(ref, identity.BLAKE3)
	switch {
	case a != nil && b != nil && string(a) != string(b):
		return &mismatchError{fmt.Sprintf("holds a different file: whole-file BLAKE3 %x, the job's is %x", a, b)}
	case s.PieceLen != ref.PieceLen || s.Algo != ref.Algo:
		// Cut another way or hashed with another algorithm (an idm
		// server's BLAKE3 segments beside a Metalink's SHA-256 pieces),
		// the lists cannot be compared: the source is taken for its size,
		// as one that describes nothing more, and every piece it sends is
		// checked against the job's list. Only a whole-file digest both
		// give can tell the files apart.
		for _, d := range s.Digests {
			if e, ok := digestOf(ref, d.Algo); ok && string(e) != string(d.Sum) {
				return &mismatchError{fmt.Sprintf("holds a different file: whole-file %s %x, the job's is %x", d.Algo, d.Sum, e)}
			}
		}
		return nil
	case !s.SameFile(ref):
		who := "the job's file"
		if agreeing > 0 {
			who = fmt.Sprintf("the file %d other source(s) agree on", agreeing)
		}
		return &mismatchError{fmt.Sprintf("holds a different file: content %s, that of %s is %s (its segment hashes differ)", s.Root, who, ref.Root)}
	}
	return nil
}

// maybeDecideLocked decides the job's file once every source has voted
// or one description with piece hashes has the votes of more than half
// the sources; otherwise it makes sure the decision comes identityWait
// after the first vote. A majority of mirrors that know only the size
// decides nothing early: a source that publishes piece hashes may still
// answer, and its hashes are worth the wait.
func (t *transfer) maybeDecideLocked() {
	best, n := t.leaderLocked()
	switch {
	case len(t.votes) == len(t.sources), 2*n > len(t.sources) && best.PieceLen != 0:
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

// leaderLocked returns the description most votes went to (on a tie, the
// one of the source given first) and its number of votes. Descriptions
// with piece hashes come before those of the size alone.
func (t *transfer) leaderLocked() (*identity.Summary, int) {
	var best *identity.Summary
	bestN, bestFirst, bestPieces := 0, 0, false
	for idx, v := range t.votes {
		n, first := 0, idx
		for j, w := range t.votes {
			if sameVote(&v, &w) {
				n++
				first = min(first, j)
			}
		}
		pieces := v.PieceLen != 0
		better := (pieces && !bestPieces) ||
			(pieces == bestPieces && (n > bestN || (n == bestN && first < bestFirst)))
		if best == nil || better {
			best, bestN, bestFirst, bestPieces = &v, n, first, pieces
		}
	}
	return best, bestN
}

// sameVote reports whether two votes are for the same file.
func sameVote(a, b *identity.Summary) bool {
	if a.PieceLen == 0 || b.PieceLen == 0 {
		return a.PieceLen == b.PieceLen && a.Size == b.Size
	}
	return a.SameFile(b)
}

// decideLocked makes w the job's file. Its pieces are taken next, by the
// first agreeing source to get there.
func (t *transfer) decideLocked(w *identity.Summary) {
	if t.winner != nil || t.file != nil || t.stopped || w == nil {
		return
	}
	t.winner = w
	close(t.decided)
	t.log.Info("file decided", "name", t.winnerName(), "size", w.Size, "pieces", w.Count,
		"root", w.Root.String(), "sources_agreeing", t.votesFor(w), "sources_answered", len(t.votes))
}

// votesFor counts the votes for the file s describes. Called with mu
// held.
func (t *transfer) votesFor(s *identity.Summary) int {
	n := 0
	for _, v := range t.votes {
		if sameVote(&v, s) {
			n++
		}
	}
	return n
}

// sameFile reports whether f is the file s sums up.
func sameFile(f *identity.File, s *identity.Summary) bool {
	fs := f.Summary()
	return fs.SameFile(s)
}
