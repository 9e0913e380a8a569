package engine

import (
	"context"
	"fmt"
	"hash"

	"github.com/idmproject/idm/identity"
)

// frontier follows the verified prefix of the partial file as it grows:
// it asks the kernel to write that prefix to disk, so that the final sync
// has little left to do, and, when the job must check a whole-file
// digest, hashes it, so that once the last piece arrives the check costs
// little more than that piece. Pieces arrive roughly in order, so the
// prefix follows the download closely.
type frontier struct {
	started bool
	hash    hash.Hash // nil: no digest to check, only write-back
	next    int       // pieces passed so far
	buf     []byte
}

// start sets the frontier up for the job's file, once it is known.
func (fr *frontier) start(check *identity.Digest) {
	if fr.started {
		return
	}
	fr.started = true
	if check != nil {
		fr.hash, fr.buf = check.Algo.New(), make([]byte, 1<<20)
	}
}

// advance passes every verified piece from next on, stopping at the first
// one not yet verified or when ctx ends.
func (fr *frontier) advance(ctx context.Context, t *transfer) error {
	t.mu.Lock()
	sched, fh, f, check := t.sched, t.fh, t.file, t.checkAll
	t.mu.Unlock()
	fr.start(check)
	for fr.next < f.Count() && sched.isDone(fr.next) && ctx.Err() == nil {
		off, n := f.Piece(fr.next)
		for done := int64(0); fr.hash != nil && done < n; {
			k := min(int64(len(fr.buf)), n-done)
			if _, err := fh.ReadAt(fr.buf[:k], off+done); err != nil {
				return fmt.Errorf("read back piece %d: %w", fr.next, err)
			}
			fr.hash.Write(fr.buf[:k])
			done += k
		}
		writeBack(fh, off, n)
		fr.next++
	}
	return nil
}

// run follows the verified prefix until every piece is passed or ctx
// ends. A read error only stops it: finish reads the file again.
func (fr *frontier) run(ctx context.Context, t *transfer) {
	select {
	case <-t.known:
	case <-ctx.Done():
		return
	}
	t.mu.Lock()
	sched, f := t.sched, t.file
	t.mu.Unlock()
	if f == nil {
		return // the file could not be prepared; the job is failing
	}
	for fr.next < f.Count() {
		wait := sched.changes()
		if err := fr.advance(ctx, t); err != nil {
			t.log.Warn("read back the partial file", "err", err)
			return
		}
		if fr.next >= f.Count() {
			return
		}
		select {
		case <-wait:
		case <-ctx.Done():
			return
		}
	}
}

// sum returns the whole file's digest once every piece is passed.
func (fr *frontier) sum() []byte { return fr.hash.Sum(nil) }
