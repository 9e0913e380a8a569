package daemon

import (
	"context"
	"fmt"

	"github.com/zeebo/blake3"

	"github.com/idmproject/idm/transport"
)

// frontier hashes the partial file from its start as the verified prefix
// grows, and asks the kernel to write that prefix to disk, so that once
// the last segment arrives, checking the whole-file hash and syncing the
// file cost little more than those last segments. Segments arrive
// roughly in order, so the prefix follows the download closely.
type frontier struct {
	hash *blake3.Hasher
	next int // segments hashed so far
	buf  []byte
}

func newFrontier() *frontier {
	return &frontier{hash: blake3.New(), buf: make([]byte, 1<<20)}
}

// advance hashes every verified segment from next on, stopping at the
// first one not yet verified or when ctx ends.
func (fr *frontier) advance(ctx context.Context, t *transfer) error {
	t.mu.Lock()
	sched, f, m := t.sched, t.file, t.man
	t.mu.Unlock()
	for fr.next < len(m.Segments) && sched.isDone(fr.next) && ctx.Err() == nil {
		off, n := m.Segment(fr.next)
		for done := int64(0); done < n; {
			k := min(int64(len(fr.buf)), n-done)
			if _, err := f.ReadAt(fr.buf[:k], off+done); err != nil {
				return fmt.Errorf("read back segment %d: %w", fr.next, err)
			}
			fr.hash.Write(fr.buf[:k])
			done += k
		}
		writeBack(f, off, n)
		fr.next++
	}
	return nil
}

// run follows the verified prefix until every segment is hashed or ctx
// ends. A read error only stops it: finish reads the file again.
func (fr *frontier) run(ctx context.Context, t *transfer) {
	select {
	case <-t.known:
	case <-ctx.Done():
		return
	}
	t.mu.Lock()
	sched, m := t.sched, t.man
	t.mu.Unlock()
	if m == nil {
		return // the file could not be prepared; the job is failing
	}
	total := len(m.Segments)
	for fr.next < total {
		wait := sched.changes()
		if err := fr.advance(ctx, t); err != nil {
			t.log.Warn("hash partial file", "err", err)
			return
		}
		if fr.next >= total {
			return
		}
		select {
		case <-wait:
		case <-ctx.Done():
			return
		}
	}
}

// sum returns the whole file's hash once every segment is hashed.
func (fr *frontier) sum() transport.Hash {
	var h transport.Hash
	fr.hash.Sum(h[:0])
	return h
}
