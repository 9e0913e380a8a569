package store

import (
	"encoding/json"
	"fmt"
	"time"

	"go.etcd.io/bbolt"

	"github.com/idmproject/idm/identity"
)

// The methods in this file are the download engine's writes. Each
// updates only the fields it is about, inside one transaction that reads
// the record first, so that what the daemon writes meanwhile (a new
// limit, a state) is never undone by the engine's next checkpoint.

// A Checkpoint is a running job's progress, as the engine reports it.
type Checkpoint struct {
	// Done has a bit per piece, set for the verified ones; nil leaves the
	// stored bitmap as it is.
	Done *Bitmap
	// Verified counts the bytes of verified pieces; Fetched every byte
	// received.
	Verified, Fetched int64
	// Sources has each source's statistics, in the job's order.
	Sources []SourceStat
	// PartStamp is the partial file as it is now.
	PartStamp FileStamp
	// Pieces, when not nil, replaces the stored piece hashes: those the
	// daemon took itself of a job with OwnPieces.
	Pieces []byte
}

// File returns the job's file as the record and its piece hashes (from
// Hashes, nil when not known) describe it, or nil before it is known.
func (r *Record) File(pieces []byte) (*identity.File, error) {
	if r.SegmentSize == 0 {
		return nil, nil
	}
	a, err := r.algo()
	if err != nil {
		return nil, err
	}
	f := &identity.File{Size: r.Size, PieceLen: r.SegmentSize, Algo: a, Pieces: pieces}
	if r.Content != ([32]byte{}) {
		f.Digests = []identity.Digest{{Algo: identity.BLAKE3, Sum: append([]byte(nil), r.Content[:]...)}}
	}
	for _, s := range r.Digests {
		d, err := identity.ParseDigest(s)
		if err != nil {
			return nil, fmt.Errorf("job %d: %w", r.ID, err)
		}
		f.Digests = append(f.Digests, d)
	}
	if err := f.Validate(); err != nil {
		return nil, fmt.Errorf("job %d: %w", r.ID, err)
	}
	return f, nil
}

// algo returns the algorithm of the record's piece hashes.
func (r *Record) algo() (identity.Algo, error) {
	if r.Algo == "" {
		return identity.BLAKE3, nil
	}
	return identity.ParseAlgo(r.Algo)
}

// SetIdentity records a job's file once it is decided: its size, piece
// length and algorithm, its piece hashes (nil when the daemon will take
// its own, with own set), its whole-file BLAKE3 when given, and the name
// it will be saved under. The job's bitmap is cleared to the file's piece
// count. A job's file is decided once: a different one is refused with an
// error wrapping ErrIdentity. It fails with an error wrapping ErrNotFound
// if there is no such job.
func (db *DB) SetIdentity(id uint64, f *identity.File, name string, own bool) error {
	if err := db.setIdentity(id, f, name, own); err != nil {
		return fmt.Errorf("set the file of job %d: %w", id, err)
	}
	return nil
}

// SetFile writes into r the identity of its file (size, piece length and
// algorithm, root, whole-file digests) and, when not empty, its name, as
// SetIdentity records them; a new record given to Create with the piece
// hashes starts with its file decided. f must be valid.
func (r *Record) SetFile(f *identity.File, name string, own bool) {
	r.Size, r.SegmentSize, r.OwnPieces = f.Size, f.PieceLen, own
	r.Content = [32]byte{}
	if d, ok := f.Digest(identity.BLAKE3); ok {
		copy(r.Content[:], d)
	}
	r.Root = [32]byte{}
	if !own {
		r.Root = f.Root()
	}
	r.Algo = ""
	if f.Algo != identity.BLAKE3 {
		r.Algo = f.Algo.String()
	}
	r.Digests = nil
	for _, d := range f.Digests {
		if d.Algo != identity.BLAKE3 {
			r.Digests = append(r.Digests, d.String())
		}
	}
	if name != "" {
		r.Name = name
	}
}

func (db *DB) setIdentity(id uint64, f *identity.File, name string, own bool) error {
	if err := f.Validate(); err != nil {
		return err
	}
	var content [32]byte
	if d, ok := f.Digest(identity.BLAKE3); ok {
		copy(content[:], d)
	}
	return db.update(func(tx *bbolt.Tx) error {
		r, err := getRecord(tx, id)
		if err != nil {
			return err
		}
		if r.SegmentSize != 0 && (r.Size != f.Size || r.SegmentSize != f.PieceLen || r.Content != content) {
			return fmt.Errorf("the job's file is already decided: %w", ErrIdentity)
		}
		r.SetFile(f, name, own)
		k := key(id)
		bv, err := NewBitmap(r.SegmentCount()).MarshalBinary()
		if err != nil {
			return err
		}
		if err := tx.Bucket(bitmapsBucket).Put(k, bv); err != nil {
			return err
		}
		if len(f.Pieces) == 0 {
			if err := tx.Bucket(hashesBucket).Delete(k); err != nil {
				return err
			}
		} else if err := tx.Bucket(hashesBucket).Put(k, f.Pieces); err != nil {
			return err
		}
		return putRecord(tx, r)
	})
}

// SetPart records the name of a job's partial file, before it is
// created, and the identity of its directory.
func (db *DB) SetPart(id uint64, part string, dir FileID) error {
	err := db.update(func(tx *bbolt.Tx) error {
		r, err := getRecord(tx, id)
		if err != nil {
			return err
		}
		if r.Part != part {
			r.Part, r.PartStamp = part, FileStamp{}
		}
		r.DirID = dir
		return putRecord(tx, r)
	})
	if err != nil {
		return fmt.Errorf("record the partial file of job %d: %w", id, err)
	}
	return nil
}

// Checkpoint records a running job's progress.
func (db *DB) Checkpoint(id uint64, c *Checkpoint) error {
	if err := db.checkpoint(id, c, nil); err != nil {
		return fmt.Errorf("record the progress of job %d: %w", id, err)
	}
	return nil
}

// Publish records that a job's file is complete at path, with its last
// progress.
func (db *DB) Publish(id uint64, path string, finished time.Time, c *Checkpoint) error {
	err := db.checkpoint(id, c, func(r *Record) { r.Path, r.Finished, r.LastError = path, finished, "" })
	if err != nil {
		return fmt.Errorf("record the finished file of job %d: %w", id, err)
	}
	return nil
}

func (db *DB) checkpoint(id uint64, c *Checkpoint, also func(*Record)) error {
	var bv []byte
	if c.Done != nil {
		var err error
		if bv, err = c.Done.MarshalBinary(); err != nil {
			return err
		}
	}
	return db.update(func(tx *bbolt.Tx) error {
		r, err := getRecord(tx, id)
		if err != nil {
			return err
		}
		k := key(id)
		if c.Done != nil {
			if n := r.SegmentCount(); c.Done.Len() != n {
				return fmt.Errorf("bitmap of %d bits for %d pieces: %w", c.Done.Len(), n, ErrIdentity)
			}
			if err := tx.Bucket(bitmapsBucket).Put(k, bv); err != nil {
				return err
			}
		}
		if c.Pieces != nil {
			if err := checkHashes(r, c.Pieces); err != nil {
				return err
			}
			if err := tx.Bucket(hashesBucket).Put(k, c.Pieces); err != nil {
				return err
			}
		}
		r.Verified, r.Fetched, r.PartStamp = c.Verified, c.Fetched, c.PartStamp
		if c.Sources != nil {
			r.SourceStats = c.Sources
		}
		if also != nil {
			also(r)
		}
		return putRecord(tx, r)
	})
}

// putRecord writes r, with the time, inside tx.
func putRecord(tx *bbolt.Tx, r *Record) error {
	r.Updated = time.Now()
	v, err := json.Marshal(r)
	if err != nil {
		return err
	}
	return tx.Bucket(jobsBucket).Put(key(r.ID), v)
}
