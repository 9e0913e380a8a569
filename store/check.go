package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"syscall"
	"time"

	"go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// ErrDamaged is wrapped by the *DamagedError that Open returns for a file
// that is not a sound state database.
var ErrDamaged = errors.New("state database is damaged")

// A DamagedError reports a state database file that Open refuses because
// it is damaged: empty or cut short, with bad meta pages, with pages that
// fail bbolt's consistency check, or without the buckets of a state
// database. Open neither writes to such a file nor removes it. It
// matches ErrDamaged with errors.Is.
type DamagedError struct {
	// Path is the file.
	Path string
	// Err is the first problem found.
	Err error
}

// Error names the file and what is wrong with it.
func (e *DamagedError) Error() string {
	return fmt.Sprintf("state database %s is damaged: %v", e.Path, e.Err)
}

// Is reports whether target is ErrDamaged.
func (e *DamagedError) Is(target error) bool { return target == ErrDamaged }

// Unwrap returns the problem.
func (e *DamagedError) Unwrap() error { return e.Err }

// ErrBadRecord is wrapped by the *RecordError that reports a job whose
// stored state cannot be read.
var ErrBadRecord = errors.New("job record cannot be read")

// A RecordError reports one job whose stored state cannot be read: a
// record that does not decode or has another job's ID, or a bitmap or
// segment hashes whose length does not match the record. The rest of the
// database is unaffected: List skips the job and reports it, the other
// reads of it fail with this error, and Delete removes it. It matches
// ErrBadRecord with errors.Is.
type RecordError struct {
	// ID is the job's ID.
	ID uint64
	// Err is what is wrong with it.
	Err error
}

// Error names the job and why its record cannot be read.
func (e *RecordError) Error() string {
	return fmt.Sprintf("job %d: record cannot be read: %v", e.ID, e.Err)
}

// Is reports whether target is ErrBadRecord.
func (e *RecordError) Is(target error) bool { return target == ErrBadRecord }

// Unwrap returns what is wrong with the job.
func (e *RecordError) Unwrap() error { return e.Err }

// A Report is what Check found in a state database.
type Report struct {
	// Path is the file checked.
	Path string

	// Damage is the first problem with the file itself, the one for
	// which Open refuses it, or nil if Open would accept it.
	Damage error

	// Problems lists every problem found, one each: the damage to the
	// file, then a *RecordError for each job that cannot be read, then
	// each bitmap or set of hashes that belongs to no job. It is empty
	// for a sound database. When the file is damaged, the records are
	// not read.
	Problems []error

	// Records are the jobs that can be read, in ID order.
	Records []*Record
}

// Sound reports whether Check found nothing wrong.
func (r *Report) Sound() bool { return len(r.Problems) == 0 }

// maxCheckProblems caps how many of bbolt's consistency errors a Report
// lists; a file that is badly damaged can have one for every page.
const maxCheckProblems = 20

// Check verifies the state database at path without writing to it: the
// structure of the file's pages, bbolt's consistency check, the buckets
// and schema version, and then that every job's record decodes and its
// bitmap and segment hashes have the length the record implies, and that
// no bitmap or hashes belong to no job. It waits for a shared lock on the
// file for opts.Timeout, so it can run beside another Check but not
// beside an open DB. A nil opts gives the defaults.
//
// What it finds wrong is in the Report; the error is for what kept it
// from checking: a missing file (fs.ErrNotExist), a file another process
// has open (ErrLocked), a database from a newer version of idm
// (ErrNewerSchema) or a file it cannot read.
func Check(path string, opts *Options) (*Report, error) {
	rep, err := inspect(path, timeout(opts), true)
	if err != nil {
		return nil, fmt.Errorf("check state database %s: %w", path, err)
	}
	return rep, nil
}

// inspect opens the file at path read-only and checks it, and with
// records its jobs too. It never writes to the file, and it turns every
// panic bbolt raises on a damaged page into damage in the report.
func inspect(path string, timeout time.Duration, records bool) (*Report, error) {
	rep := &Report{Path: path}
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", path)
	}
	if fi.Size() == 0 {
		rep.damaged(errors.New("the file is empty"))
		return rep, nil
	}
	b, err := bbolt.Open(path, 0, &bbolt.Options{ReadOnly: true, Timeout: timeout})
	if err != nil {
		return openFailed(rep, fi.Size(), err)
	}
	defer b.Close()
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var stop error
	err = b.View(func(tx *bbolt.Tx) error {
		defer func() {
			if p := recover(); p != nil {
				rep.damaged(fmt.Errorf("bbolt: %v", p))
			}
		}()
		meta, err := currentMeta(f, b.Info().PageSize, uint64(tx.ID()))
		if err != nil {
			rep.damaged(err)
			return nil
		}
		if err := walkFile(f, fi.Size(), meta); err != nil {
			rep.damaged(err)
			return nil
		}
		checkConsistency(tx, rep)
		if rep.Damage != nil {
			return nil
		}
		if err := checkLayout(tx); err != nil {
			if errors.Is(err, ErrNewerSchema) {
				stop = err
			} else {
				rep.damaged(err)
			}
			return nil
		}
		if records && tx.Bucket(metaBucket) != nil {
			checkRecords(tx, rep)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if stop != nil {
		return nil, stop
	}
	return rep, nil
}

// timeout returns opts.Timeout or its default.
func timeout(opts *Options) time.Duration {
	if opts != nil && opts.Timeout != 0 {
		return opts.Timeout
	}
	return defaultTimeout
}

// damaged records a problem with the file itself.
func (r *Report) damaged(err error) {
	if r.Damage == nil {
		r.Damage = err
	}
	r.Problems = append(r.Problems, err)
}

// openFailed sorts out why bbolt could not open a file of the given size
// read-only: the lock is held, the system refused (an error number), or
// the file is damaged.
func openFailed(rep *Report, size int64, err error) (*Report, error) {
	var errno syscall.Errno
	var pathErr *fs.PathError
	switch {
	case errors.Is(err, berrors.ErrTimeout):
		return nil, ErrLocked
	case errors.As(err, &pathErr), errors.As(err, &errno):
		return nil, err
	case errors.Is(err, berrors.ErrInvalid), errors.Is(err, berrors.ErrChecksum), errors.Is(err, berrors.ErrVersionMismatch):
		rep.damaged(fmt.Errorf("neither of bbolt's meta pages is valid (%v)", err))
	default:
		rep.damaged(fmt.Errorf("bbolt cannot open the file of %d bytes: %v", size, err))
	}
	return rep, nil
}

// checkConsistency runs bbolt's consistency check. It must run after
// walkFile: the check follows page numbers without bounds.
func checkConsistency(tx *bbolt.Tx, rep *Report) {
	n := 0
	for err := range tx.Check() {
		// Drain the channel even past the cap, or the checking
		// goroutine never ends.
		if n++; n <= maxCheckProblems {
			rep.damaged(fmt.Errorf("bbolt: %w", err))
		}
	}
	if n > maxCheckProblems {
		rep.Problems = append(rep.Problems, fmt.Errorf("bbolt: %d more problems", n-maxCheckProblems))
	}
}

// checkLayout checks that the file holds a state database's buckets and a
// schema version this build can read. A file without any bucket is a
// database whose creation was cut short: Open completes it.
func checkLayout(tx *bbolt.Tx) error {
	meta := tx.Bucket(metaBucket)
	if meta == nil {
		return tx.ForEach(func(name []byte, _ *bbolt.Bucket) error {
			return fmt.Errorf("not an idm state database: unexpected bucket %q", name)
		})
	}
	v, err := readSchema(meta)
	if err != nil {
		return err
	}
	if v > currentSchema {
		return fmt.Errorf("schema version %d is newer than this build's %d: %w", v, currentSchema, ErrNewerSchema)
	}
	for _, name := range [][]byte{jobsBucket, bitmapsBucket, hashesBucket} {
		if tx.Bucket(name) == nil {
			return fmt.Errorf("bucket %s is missing", name)
		}
	}
	return nil
}

// checkRecords reads every job, and reports the ones that cannot be read
// and the bitmaps and hashes that belong to no job.
func checkRecords(tx *bbolt.Tx, rep *Report) {
	jobs := tx.Bucket(jobsBucket)
	var bad []*RecordError
	rep.Records, bad = listJobs(tx)
	for _, err := range bad {
		rep.Problems = append(rep.Problems, err)
	}
	for _, name := range [][]byte{bitmapsBucket, hashesBucket} {
		c := tx.Bucket(name).Cursor()
		for k, _ := c.First(); k != nil; k, _ = c.Next() {
			if len(k) != 8 {
				rep.Problems = append(rep.Problems, fmt.Errorf("bucket %s: key %x is not a job ID", name, k))
			} else if jobs.Get(k) == nil {
				rep.Problems = append(rep.Problems, fmt.Errorf("bucket %s: entry for job %d, which has no record", name, binary.BigEndian.Uint64(k)))
			}
		}
	}
}

// listJobs reads every job in tx, in ID order: the ones that can be read,
// and an error for each one that cannot.
func listJobs(tx *bbolt.Tx) ([]*Record, []*RecordError) {
	var rs []*Record
	var bad []*RecordError
	bitmaps, hashes := tx.Bucket(bitmapsBucket), tx.Bucket(hashesBucket)
	c := tx.Bucket(jobsBucket).Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		if len(k) != 8 {
			// No job has this key; not even Delete could reach it.
			bad = append(bad, &RecordError{Err: fmt.Errorf("key %x is not a job ID", k)})
			continue
		}
		r, err := readJob(k, v, bitmaps.Get(k), hashes.Get(k))
		if err != nil {
			bad = append(bad, err)
			continue
		}
		rs = append(rs, r)
	}
	return rs, bad
}

// readJob decodes the record v stored under key k, and checks that it
// has k's ID and that its bitmap bm and hashes h have the lengths it
// implies.
func readJob(k, v, bm, h []byte) (*Record, *RecordError) {
	id := binary.BigEndian.Uint64(k)
	fail := func(err error) (*Record, *RecordError) { return nil, &RecordError{ID: id, Err: err} }
	if v == nil {
		return fail(errors.New("it is a bucket, not a record"))
	}
	r := new(Record)
	// Calling UnmarshalJSON directly skips json.Unmarshal's first pass over
	// the record, which List would pay for on every job.
	if err := r.UnmarshalJSON(v); err != nil {
		return fail(err)
	}
	if r.ID != id {
		return fail(fmt.Errorf("the record has ID %d", r.ID))
	}
	if err := r.validate(); err != nil {
		return fail(err)
	}
	if bm == nil {
		return fail(errors.New("it has no bitmap"))
	}
	if err := checkBitmap(bm, r.SegmentCount()); err != nil {
		return fail(err)
	}
	if err := checkHashes(r, h); err != nil {
		return fail(fmt.Errorf("segment hashes: %w", err))
	}
	return r, nil
}

// checkBitmap checks, without decoding it, that data is a well-formed
// bitmap of n bits.
func checkBitmap(data []byte, n int) error {
	if len(data) < bitmapHeaderLen {
		return fmt.Errorf("bitmap of %d bytes, want at least %d", len(data), bitmapHeaderLen)
	}
	if got := binary.BigEndian.Uint32(data); uint64(got) != uint64(n) {
		return fmt.Errorf("bitmap of %d bits for %d segments", got, n)
	}
	body := data[bitmapHeaderLen:]
	if len(body) != (n+7)/8 {
		return fmt.Errorf("bitmap of %d bits in %d bytes, want %d", n, len(body), (n+7)/8)
	}
	if r := n % 8; r != 0 && body[len(body)-1]>>r != 0 {
		return fmt.Errorf("bitmap has bits set past its length %d", n)
	}
	return nil
}
