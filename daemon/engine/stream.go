package engine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash"
	"time"

	"github.com/idmproject/idm/identity"
)

// A source that sends only the whole file (an HTTP mirror that ignores
// ranges) serves a job alone as one stream over one connection: the
// stream is cut into the job's pieces as it goes by, each piece written
// in place, hashed and verified as a range would be, and the bitmap set
// as each is done. The stream cannot seek, so after a pause, a crash or a
// dropped connection it starts again from the first byte.
//
// The pieces verified before are then read again, but never written:
// their bytes on disk were verified already, and writing them again would
// only risk good bytes for nothing. They are hashed and compared with the
// recorded hash instead of skipped, although that costs a hash of bytes
// the job has: a mirror that ignores ranges often gives no validator
// either, and the pieces it sent before are the only way to tell that it
// still sends the same file, rather than mix the start of one version
// with the end of another. A piece that differs counts as corrupt, as
// any piece that fails its hash does, and stays verified.

// errStreamDone ends a stream once every piece is verified, before its
// end when the last pieces were verified already.
var errStreamDone = errors.New("every piece verified")

// errOverrun reports a stream longer than the file: its bytes past the
// size are never written.
var errOverrun = errors.New("stream longer than the file")

// What a stream does with the bytes of the piece it is in.
const (
	keepPiece  = iota // taken: written in place and hashed
	checkPiece        // verified before: hashed and compared, not written
	passPiece         // fetched by another connection: let by
)

// stream reads the whole file from st and keeps, piece by piece, what the
// job lacks. It reports whether it verified any piece; its error is
// errComplete once every piece is verified.
func (w *worker) stream(ctx context.Context, st Streamer, sched *scheduler, seg *segmentFile, f *identity.File) (delivered bool, err error) {
	t := w.t
	if sched.finished() {
		t.complete()
		return false, errComplete
	}
	sw := &streamWriter{w: w, sched: sched, seg: seg, f: f, cur: -1}
	err = st.Stream(ctx, t.paced(ctx, sw))
	if err == nil {
		err = sw.end()
	}
	sw.release()
	var de *diskError
	switch {
	case errors.Is(err, errStreamDone), err == nil && sched.finished():
		t.complete()
		return sw.delivered, errComplete
	case err == nil:
		// Pieces another connection had in flight as the stream went by
		// are still missing: the next stream takes them.
		_, left := sched.snapshot()
		return sw.delivered, fmt.Errorf("stream ended with %d pieces fetched elsewhere still to verify", left)
	case errors.As(err, &de):
		t.fail(de)
		return sw.delivered, de
	case errors.Is(err, errOut):
		return sw.delivered, err
	}
	return sw.delivered, w.failure(fmt.Errorf("stream at byte %d: %w", sw.off, err))
}

// streamWriter cuts a stream of the whole file into the job's pieces as
// it goes by.
type streamWriter struct {
	w     *worker
	sched *scheduler
	seg   *segmentFile
	f     *identity.File

	off   int64     // bytes of the stream received
	cur   int       // the piece the stream is in, -1 between pieces
	mode  int       // what is done with cur's bytes
	check hash.Hash // hashes a piece verified before, to compare
	// last is the hash of the file's last piece, taken and verified but
	// not yet committed: only the end of the stream, exactly there, shows
	// that the stream was the file.
	last      []byte
	delivered bool
}

// Write takes the next bytes of the stream.
func (sw *streamWriter) Write(p []byte) (int, error) {
	written := 0
	for len(p) > 0 {
		if sw.off >= sw.f.Size {
			return written, permanent{fmt.Errorf("%w, of %d bytes", errOverrun, sw.f.Size)}
		}
		if sw.cur < 0 {
			sw.begin(int(sw.off / sw.f.PieceLen))
		}
		off, n := sw.f.Piece(sw.cur)
		k := int(min(int64(len(p)), off+n-sw.off))
		switch sw.mode {
		case keepPiece:
			if _, err := sw.w.in.Write(p[:k]); err != nil {
				return written, err
			}
		case checkPiece:
			sw.check.Write(p[:k])
		}
		sw.off += int64(k)
		written += k
		p = p[k:]
		src := sw.w.src
		src.mu.Lock()
		src.stat.Fetched += int64(k)
		src.mu.Unlock()
		sw.w.t.fetched.Add(int64(k))
		if sw.off == off+n {
			if err := sw.pieceEnd(); err != nil {
				return written, err
			}
		}
	}
	return written, nil
}

// begin starts piece i: taken if nobody has it, checked if it is verified
// already, let by if another connection fetches it.
func (sw *streamWriter) begin(i int) {
	sw.cur = i
	switch {
	case sw.sched.isDone(i):
		sw.mode = checkPiece
		if sw.check == nil {
			sw.check = sw.f.Algo.New()
		}
		sw.check.Reset()
	case sw.sched.take(sw.w.id, i):
		sw.mode = keepPiece
		sw.w.in.reset(sw.seg, i)
	default:
		sw.mode = passPiece
	}
}

// pieceEnd deals with the piece whose last byte just arrived.
func (sw *streamWriter) pieceEnd() error {
	i := sw.cur
	sw.cur = -1
	switch sw.mode {
	case checkPiece:
		if !bytes.Equal(sw.check.Sum(nil), sw.f.PieceHash(i)) {
			return sw.w.corrupt(i)
		}
	case keepPiece:
		sum := sw.w.in.sum()
		if !sw.seg.verify(i, sum) {
			sw.sched.release(sw.w.id, i)
			return sw.w.corrupt(i)
		}
		if i == sw.f.Count()-1 {
			sw.last = sum
			return nil
		}
		return sw.commit(i, sum)
	}
	return nil
}

// end commits the last piece, held until the stream ended exactly at the
// file's size.
func (sw *streamWriter) end() error {
	if sw.off != sw.f.Size {
		return fmt.Errorf("stream ended after %d of %d bytes", sw.off, sw.f.Size)
	}
	if sw.last == nil {
		return nil
	}
	sum := sw.last
	sw.last = nil
	return sw.commit(sw.f.Count()-1, sum)
}

// commit makes verified piece i done, and returns errStreamDone once
// every piece is.
func (sw *streamWriter) commit(i int, sum []byte) error {
	w := sw.w
	won, err := sw.seg.commit(i, nil, sum)
	if err != nil {
		return err
	}
	if !won {
		return nil
	}
	sw.sched.complete(w.id, i)
	_, n := sw.f.Piece(i)
	w.credit(time.Now(), n)
	sw.delivered = true
	if sw.sched.finished() {
		return errStreamDone
	}
	return nil
}

// release gives back the piece the stream was in, and the last piece if
// it was held, when the stream ends short of them.
func (sw *streamWriter) release() {
	if sw.cur >= 0 && sw.mode == keepPiece {
		sw.sched.release(sw.w.id, sw.cur)
	}
	if sw.last != nil {
		sw.sched.release(sw.w.id, sw.f.Count()-1)
	}
}
