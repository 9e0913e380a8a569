package store

import (
	"cmp"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"sync"
	"time"

	"go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// Errors returned by DB methods, wrapped with context; compare with
// errors.Is.
var (
	// ErrNotFound is returned for a job ID that is not in the database.
	ErrNotFound = errors.New("job not found")

	// ErrLocked is returned by Open when another process, or another DB in
	// this one, holds the database file for longer than Options.Timeout.
	ErrLocked = errors.New("state database is in use by another process")

	// ErrNewerSchema is returned by Open for a database written by a newer
	// version of idm, with a schema version higher than SchemaVersion.
	ErrNewerSchema = errors.New("state database is from a newer version of idm")

	// ErrIdentity is returned when a write would apply a job's state to a
	// different file: a manifest whose content hash or size differs from
	// the job's, a bitmap whose length is not the job's segment count, or a
	// record whose size, segment size or content hash differs from the
	// stored one.
	ErrIdentity = errors.New("job identity mismatch")
)

// Bucket and key names; see the package documentation for the layout.
var (
	metaBucket    = []byte("meta")
	jobsBucket    = []byte("jobs")
	bitmapsBucket = []byte("bitmaps")
	hashesBucket  = []byte("hashes")

	schemaKey = []byte("schema")
	cleanKey  = []byte("clean")
)

// Values of the clean-shutdown mark.
var (
	markClean = []byte{1}
	markDirty = []byte{0}
)

// defaultTimeout is Options.Timeout's default.
const defaultTimeout = time.Second

// Options configures Open. The zero value, like a nil *Options, gives the
// defaults.
type Options struct {
	// Timeout is how long Open waits for the lock on the database file
	// before failing with ErrLocked. Zero means the default, one second; a
	// negative Timeout tries once and does not wait.
	Timeout time.Duration
}

// A DB is the daemon's state database: one bbolt file holding job records,
// their completion bitmaps and their segment hashes. Its methods are safe
// for concurrent use; every write is one transaction, committed and synced
// to disk before the method returns.
type DB struct {
	bolt     *bbolt.DB
	wasClean bool

	// markedClean is true while the file holds the clean mark. It is read
	// and written only inside write transactions, which bbolt serialises.
	markedClean bool

	closeMu sync.Mutex
	closed  bool
}

// Open opens the state database at path, creating it with mode 0600 if
// there is no file there, and waits up to opts.Timeout for the file lock,
// failing with an error wrapping ErrLocked if it is still held. A nil opts
// gives the defaults.
//
// An existing file is first opened read-only and checked, as Check does
// but without reading the jobs. A damaged file, one that is empty or cut
// short included, is refused with a *DamagedError, and neither written to
// nor removed. A database with a newer schema than SchemaVersion is
// refused with an error wrapping ErrNewerSchema and left untouched; one
// with an older schema is migrated. Open then records whether the
// previous process closed the database cleanly, for WasClean, and marks
// it dirty until MarkClean.
//
// Jobs that cannot be read do not stop Open: List reports them.
func Open(path string, opts *Options) (*DB, error) {
	wait := timeout(opts)
	switch _, err := os.Stat(path); {
	case errors.Is(err, fs.ErrNotExist):
		if err := create(path); err != nil {
			return nil, fmt.Errorf("create state database %s: %w", path, err)
		}
	case err != nil:
		return nil, fmt.Errorf("open state database %s: %w", path, err)
	}
	rep, err := inspect(path, wait, false)
	if err != nil {
		return nil, fmt.Errorf("open state database %s: %w", path, err)
	}
	if rep.Damage != nil {
		return nil, &DamagedError{Path: path, Err: rep.Damage}
	}
	bo := *bbolt.DefaultOptions
	bo.Timeout = wait
	// The file was there a moment ago; if it is gone now, Open fails
	// rather than start a new database in its place.
	bo.OpenFile = func(name string, flag int, perm os.FileMode) (*os.File, error) {
		return os.OpenFile(name, flag&^os.O_CREATE, perm)
	}
	b, err := bbolt.Open(path, 0o600, &bo)
	if errors.Is(err, berrors.ErrTimeout) {
		return nil, fmt.Errorf("open state database %s: %w", path, ErrLocked)
	}
	if err != nil {
		return nil, fmt.Errorf("open state database %s: %w", path, err)
	}
	db := &DB{bolt: b}
	if err := b.Update(db.prepare); err != nil {
		b.Close()
		return nil, fmt.Errorf("open state database %s: %w", path, err)
	}
	return db, nil
}

// create makes a new database at path, marked clean. It builds it under a
// temporary name in the same directory and links it into place, so that
// path never names a file that is less than a whole database: a process
// killed half-way leaves a stray temporary file, not an empty file that
// the next Open would have to refuse as damaged.
func create(path string) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".new-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	f.Close()
	defer os.Remove(tmp)
	b, err := bbolt.Open(tmp, 0o600, &bbolt.Options{Timeout: defaultTimeout})
	if err != nil {
		return err
	}
	err = b.Update(func(tx *bbolt.Tx) error {
		if err := createBuckets(tx); err != nil {
			return err
		}
		return tx.Bucket(metaBucket).Put(cleanKey, markClean)
	})
	if cerr := b.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if err := os.Link(tmp, path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return nil // another process created it first: Open opens theirs
		}
		// A file system without hard links: rename, which would replace a
		// database another process created meanwhile, is all there is.
		if err := os.Rename(tmp, path); err != nil {
			return err
		}
	}
	return syncDir(dir)
}

// syncDir makes a new name in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// createBuckets lays out a new database in tx: its buckets and schema
// version.
func createBuckets(tx *bbolt.Tx) error {
	for _, name := range [][]byte{metaBucket, jobsBucket, bitmapsBucket, hashesBucket} {
		if _, err := tx.CreateBucket(name); err != nil {
			return fmt.Errorf("create bucket %s: %w", name, err)
		}
	}
	return writeSchema(tx.Bucket(metaBucket), currentSchema)
}

// prepare completes a database that has no buckets yet, or migrates an
// existing one, then reads and clears the clean-shutdown mark. An error
// rolls it all back, so a refused database is not written to.
func (db *DB) prepare(tx *bbolt.Tx) error {
	meta := tx.Bucket(metaBucket)
	if meta == nil {
		// An earlier version created the file and then its buckets, in
		// two steps that a crash could separate.
		if err := tx.ForEach(func(name []byte, _ *bbolt.Bucket) error {
			return fmt.Errorf("not an idm state database: unexpected bucket %q", name)
		}); err != nil {
			return err
		}
		if err := createBuckets(tx); err != nil {
			return err
		}
		meta = tx.Bucket(metaBucket)
		db.wasClean = true
	} else {
		v, err := readSchema(meta)
		if err != nil {
			return err
		}
		if v > currentSchema {
			return fmt.Errorf("schema version %d is newer than this build's %d: %w", v, currentSchema, ErrNewerSchema)
		}
		if v < currentSchema {
			if err := migrate(tx, v); err != nil {
				return err
			}
		}
		for _, name := range [][]byte{jobsBucket, bitmapsBucket, hashesBucket} {
			if tx.Bucket(name) == nil {
				return fmt.Errorf("bucket %s is missing", name)
			}
		}
		db.wasClean = string(meta.Get(cleanKey)) == string(markClean)
	}
	return meta.Put(cleanKey, markDirty)
}

// Close closes the database. It does not mark it clean; see MarkClean.
// Calling Close again does nothing and returns nil.
func (db *DB) Close() error {
	db.closeMu.Lock()
	defer db.closeMu.Unlock()
	if db.closed {
		return nil
	}
	db.closed = true
	if err := db.bolt.Close(); err != nil {
		return fmt.Errorf("close state database: %w", err)
	}
	return nil
}

// WasClean reports whether the process that last had the database open
// called MarkClean after its last write, that is whether it shut down
// cleanly. It is true for a database Open created.
func (db *DB) WasClean() bool { return db.wasClean }

// MarkClean records that the database holds everything its owner meant to
// write, so that the next Open's WasClean reports true. The daemon calls it
// last, after flushing every job and right before Close; any later write
// marks the database dirty again.
func (db *DB) MarkClean() error {
	err := db.bolt.Update(func(tx *bbolt.Tx) error {
		if err := tx.Bucket(metaBucket).Put(cleanKey, markClean); err != nil {
			return err
		}
		db.markedClean = true
		return nil
	})
	if err != nil {
		return fmt.Errorf("mark state database clean: %w", err)
	}
	return nil
}

// update runs fn in a write transaction, first clearing the clean mark if
// MarkClean set it.
func (db *DB) update(fn func(tx *bbolt.Tx) error) error {
	return db.bolt.Update(func(tx *bbolt.Tx) error {
		if db.markedClean {
			if err := tx.Bucket(metaBucket).Put(cleanKey, markDirty); err != nil {
				return err
			}
			db.markedClean = false
		}
		return fn(tx)
	})
}

// Create stores a new job: r, its segment hashes (the concatenated 32-byte
// hashes, or nil when not known yet) and a bitmap of r.SegmentCount() clear
// bits, in one transaction. It assigns r.ID, overwriting any value there,
// and sets r.Created and r.Updated if they are zero.
func (db *DB) Create(r *Record, hashes []byte) error {
	n, err := prepareNew(NewJob{r, hashes})
	if err != nil {
		return fmt.Errorf("create job: %w", err)
	}
	if err := db.update(func(tx *bbolt.Tx) error { return n.put(tx) }); err != nil {
		return fmt.Errorf("create job: %w", err)
	}
	n.done()
	return nil
}

// NewJob is a job for [DB.CreateFrom] to store: its record and its
// segment hashes, as [DB.Create] takes them.
type NewJob struct {
	Record *Record
	Hashes []byte
}

// CreateFrom stores the jobs news, each as Create does, and applies fn to
// job id's record, as Change does, in one transaction: a crash leaves all
// of it written or none. fn is given the new jobs' IDs, in order. It is
// how the daemon makes the jobs of the Metalink a finished job's file is
// and records them in that job, so that they are made once. It returns
// the record of job id as stored; each new Record gets its ID and times.
// Nothing is written when fn fails; its error is returned as it is.
func (db *DB) CreateFrom(id uint64, news []NewJob, fn func(r *Record, ids []uint64) error) (*Record, error) {
	var ns []*newJob
	for _, nj := range news {
		n, err := prepareNew(nj)
		if err != nil {
			return nil, fmt.Errorf("create jobs from job %d: %w", id, err)
		}
		ns = append(ns, n)
	}
	var out *Record
	var fnErr error
	err := db.update(func(tx *bbolt.Tx) error {
		ids := make([]uint64, 0, len(ns))
		for _, n := range ns {
			if err := n.put(tx); err != nil {
				return err
			}
			ids = append(ids, n.rec.ID)
		}
		var err error
		out, fnErr, err = changeIn(tx, id, func(r *Record) error { return fn(r, ids) })
		return cmp.Or(fnErr, err)
	})
	switch {
	case fnErr != nil:
		return nil, fnErr
	case err != nil:
		return nil, fmt.Errorf("create jobs from job %d: %w", id, err)
	}
	for _, n := range ns {
		n.done()
	}
	return out, nil
}

// newJob is a job checked and encoded for a transaction to store.
type newJob struct {
	r      *Record // the caller's, told its ID and times once stored
	rec    Record  // the copy stored
	bm     []byte
	hashes []byte
}

// prepareNew checks a new job and encodes its bitmap, outside any
// transaction.
func prepareNew(nj NewJob) (*newJob, error) {
	r := nj.Record
	if err := r.validate(); err != nil {
		return nil, err
	}
	if err := checkHashes(r, nj.Hashes); err != nil {
		return nil, err
	}
	bm, err := NewBitmap(r.SegmentCount()).MarshalBinary()
	if err != nil {
		return nil, err
	}
	n := &newJob{r: r, rec: *r, bm: bm, hashes: nj.Hashes}
	now := time.Now()
	if n.rec.Created.IsZero() {
		n.rec.Created = now
	}
	if n.rec.Updated.IsZero() {
		n.rec.Updated = now
	}
	return n, nil
}

// put stores the new job in tx under the next ID.
func (n *newJob) put(tx *bbolt.Tx) error {
	jobs := tx.Bucket(jobsBucket)
	id, err := jobs.NextSequence()
	if err != nil {
		return err
	}
	n.rec.ID = id
	v, err := json.Marshal(&n.rec)
	if err != nil {
		return err
	}
	k := key(id)
	if err := jobs.Put(k, v); err != nil {
		return err
	}
	if err := tx.Bucket(bitmapsBucket).Put(k, n.bm); err != nil {
		return err
	}
	if len(n.hashes) > 0 {
		return tx.Bucket(hashesBucket).Put(k, n.hashes)
	}
	return nil
}

// done tells the caller's record what the store gave it, once the
// transaction is committed.
func (n *newJob) done() {
	n.r.ID, n.r.Created, n.r.Updated = n.rec.ID, n.rec.Created, n.rec.Updated
}

// Get returns the job with the given ID. It fails with an error wrapping
// ErrNotFound if there is no such job, and with one wrapping a
// *RecordError if it cannot be read.
func (db *DB) Get(id uint64) (*Record, error) {
	var r *Record
	err := db.bolt.View(func(tx *bbolt.Tx) error {
		var err error
		r, err = getRecord(tx, id)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("get job: %w", err)
	}
	return r, nil
}

// List returns every job that can be read, in ID order, and a
// *RecordError for each one that cannot: whose record does not decode or
// has another ID, or whose bitmap or segment hashes do not match its
// record. The daemon goes on with the others. The error is for a failed
// read of the database.
func (db *DB) List() ([]*Record, []*RecordError, error) {
	var rs []*Record
	var bad []*RecordError
	err := db.bolt.View(func(tx *bbolt.Tx) error {
		rs, bad = listJobs(tx)
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("list jobs: %w", err)
	}
	return rs, bad, nil
}

// Next returns the readable job with the smallest ID greater than after,
// or an error wrapping ErrNotFound if there is none. It lets a caller walk
// every job in ID order, one at a time, without holding them all; jobs
// that cannot be read are passed over, as List reports them apart.
func (db *DB) Next(after uint64) (*Record, error) {
	var r *Record
	err := db.bolt.View(func(tx *bbolt.Tx) error {
		if after == math.MaxUint64 {
			return ErrNotFound
		}
		c := tx.Bucket(jobsBucket).Cursor()
		for k, v := c.Seek(key(after + 1)); k != nil; k, v = c.Next() {
			var bad *RecordError
			r, bad = readJob(k, v, tx.Bucket(bitmapsBucket).Get(k), tx.Bucket(hashesBucket).Get(k))
			if bad == nil {
				return nil
			}
		}
		return ErrNotFound
	})
	if err != nil {
		return nil, fmt.Errorf("next job after %d: %w", after, err)
	}
	return r, nil
}

// Put replaces the stored record of job r.ID with r and sets r.Updated. It
// fails with an error wrapping ErrNotFound if there is no such job, and
// with one wrapping ErrIdentity if r's size, segment size or content hash
// differ from the stored record's; those change only through SetIdentity.
func (db *DB) Put(r *Record) error {
	if err := db.write(r, nil); err != nil {
		return fmt.Errorf("put job %d: %w", r.ID, err)
	}
	return nil
}

// Change applies fn to job id's stored record and stores the result, in
// one transaction, and returns the record as stored. It is how the daemon
// writes the fields it owns (the state, the limit) while the job's
// transfer checkpoints its progress beside it: neither overwrites the
// other's fields with a stale copy. Nothing is written when fn fails; its
// error is returned as it is. A change to the record's ID or identity (its
// size, piece length, algorithm or root) is refused with ErrIdentity. It
// fails with an error wrapping ErrNotFound if there is no such job.
func (db *DB) Change(id uint64, fn func(*Record) error) (*Record, error) {
	var out *Record
	var fnErr error
	err := db.update(func(tx *bbolt.Tx) error {
		var err error
		out, fnErr, err = changeIn(tx, id, fn)
		return cmp.Or(fnErr, err)
	})
	switch {
	case fnErr != nil:
		return nil, fnErr
	case err != nil:
		return nil, fmt.Errorf("change job %d: %w", id, err)
	}
	return out, nil
}

// ChangeAll is Change for each of the jobs ids, in one transaction: every
// record is changed or none is. It returns the records as stored, in the
// order of ids.
func (db *DB) ChangeAll(ids []uint64, fn func(*Record) error) ([]*Record, error) {
	out := make([]*Record, len(ids))
	var fnErr error
	err := db.update(func(tx *bbolt.Tx) error {
		for i, id := range ids {
			var err error
			if out[i], fnErr, err = changeIn(tx, id, fn); fnErr != nil || err != nil {
				return cmp.Or(fnErr, fmt.Errorf("job %d: %w", id, err))
			}
		}
		return nil
	})
	switch {
	case fnErr != nil:
		return nil, fnErr
	case err != nil:
		return nil, fmt.Errorf("change %d jobs: %w", len(ids), err)
	}
	return out, nil
}

// changeIn applies fn to job id's record in tx and stores the result, as
// Change says, and returns it; fnErr is fn's own error, apart from the
// others.
func changeIn(tx *bbolt.Tx, id uint64, fn func(*Record) error) (r *Record, fnErr, err error) {
	if r, err = getRecord(tx, id); err != nil {
		return nil, nil, err
	}
	old := *r
	if fnErr = fn(r); fnErr != nil {
		return nil, fnErr, nil
	}
	if r.ID != id || !sameIdentity(&old, r) {
		return nil, nil, fmt.Errorf("record changes ID, size, segment size or content hash: %w", ErrIdentity)
	}
	if err := r.validate(); err != nil {
		return nil, nil, err
	}
	return r, nil, putRecord(tx, r)
}

// write is Put, writing bm too when it is not nil.
func (db *DB) write(r *Record, bm *Bitmap) error {
	if err := r.validate(); err != nil {
		return err
	}
	if r.ID == 0 {
		return errors.New("record has no ID")
	}
	var bv []byte
	if bm != nil {
		if n := r.SegmentCount(); bm.Len() != n {
			return fmt.Errorf("bitmap of %d bits for %d segments: %w", bm.Len(), n, ErrIdentity)
		}
		var err error
		if bv, err = bm.MarshalBinary(); err != nil {
			return err
		}
	}
	c := *r
	c.Updated = time.Now()
	v, err := json.Marshal(&c)
	if err != nil {
		return err
	}
	err = db.update(func(tx *bbolt.Tx) error {
		old, err := getRecord(tx, r.ID)
		if err != nil {
			return err
		}
		if !sameIdentity(old, &c) {
			return fmt.Errorf("record changes size, segment size or content hash: %w", ErrIdentity)
		}
		k := key(r.ID)
		if err := tx.Bucket(jobsBucket).Put(k, v); err != nil {
			return err
		}
		if bv != nil {
			return tx.Bucket(bitmapsBucket).Put(k, bv)
		}
		return nil
	})
	if err != nil {
		return err
	}
	r.Updated = c.Updated
	return nil
}

// Delete removes a job's record, bitmap and hashes in one transaction,
// whether or not they can be read. It fails with an error wrapping
// ErrNotFound if there is no such job. The ID is not reused.
func (db *DB) Delete(id uint64) error {
	err := db.update(func(tx *bbolt.Tx) error {
		k := key(id)
		jobs := tx.Bucket(jobsBucket)
		if jobs.Get(k) == nil {
			return fmt.Errorf("job %d: %w", id, ErrNotFound)
		}
		for _, b := range []*bbolt.Bucket{jobs, tx.Bucket(bitmapsBucket), tx.Bucket(hashesBucket)} {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("delete job: %w", err)
	}
	return nil
}

// Hashes returns a job's segment hashes, concatenated, or nil if they are
// not known yet. It fails with an error wrapping ErrNotFound if there is no
// such job, and with one wrapping a *RecordError if it cannot be read.
func (db *DB) Hashes(id uint64) ([]byte, error) {
	var h []byte
	err := db.bolt.View(func(tx *bbolt.Tx) error {
		k := key(id)
		if _, err := getRecord(tx, id); err != nil {
			return err
		}
		if v := tx.Bucket(hashesBucket).Get(k); len(v) > 0 {
			h = append([]byte(nil), v...)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("get hashes: %w", err)
	}
	return h, nil
}

// Bitmap returns a job's completion bitmap, of SegmentCount() bits. It
// fails with an error wrapping ErrNotFound if there is no such job, and
// with one wrapping a *RecordError if it cannot be read.
func (db *DB) Bitmap(id uint64) (*Bitmap, error) {
	bm := new(Bitmap)
	err := db.bolt.View(func(tx *bbolt.Tx) error {
		if _, err := getRecord(tx, id); err != nil {
			return err
		}
		return bm.UnmarshalBinary(tx.Bucket(bitmapsBucket).Get(key(id)))
	})
	if err != nil {
		return nil, fmt.Errorf("get bitmap: %w", err)
	}
	return bm, nil
}

// checkHashes checks that hashes, if any, hold one hash per piece of r's
// file, of the length its algorithm gives.
func checkHashes(r *Record, hashes []byte) error {
	if len(hashes) == 0 {
		return nil
	}
	a, err := r.algo()
	if err != nil {
		return err
	}
	size := a.Size()
	if len(hashes)%size != 0 {
		return fmt.Errorf("piece hashes are %d bytes, not a multiple of %d", len(hashes), size)
	}
	if r.SegmentSize > 0 {
		if n := r.SegmentCount(); len(hashes) != n*size {
			return fmt.Errorf("%d piece hashes for %d pieces", len(hashes)/size, n)
		}
	}
	return nil
}

// getRecord reads job id's record inside tx, and checks it as List does.
func getRecord(tx *bbolt.Tx, id uint64) (*Record, error) {
	k := key(id)
	v := tx.Bucket(jobsBucket).Get(k)
	if v == nil {
		return nil, fmt.Errorf("job %d: %w", id, ErrNotFound)
	}
	r, bad := readJob(k, v, tx.Bucket(bitmapsBucket).Get(k), tx.Bucket(hashesBucket).Get(k))
	if bad != nil {
		return nil, bad
	}
	return r, nil
}

// key encodes a job ID as a bucket key: 8 bytes, big-endian, so that keys
// sort in ID order.
func key(id uint64) []byte {
	return binary.BigEndian.AppendUint64(make([]byte, 0, 8), id)
}
