/*
Package store persists the download daemon's state in one bbolt file.

# What is stored

For each job the database holds three things: its [Record], the job as the
daemon sees it, encoded as JSON; its completion [Bitmap], one bit per
segment (piece), set once the piece has been received and verified; and
its piece hashes, concatenated, as its sources published them or as the
engine took them itself. The store gives these no meaning beyond keeping
them consistent with each other: it knows nothing of the download engine,
the wire protocol or the command line. A job's size, piece length, hash
algorithm and root are its identity; they change only through
[DB.SetIdentity], and a bitmap is written only with a record of the same
piece count, so that saved progress can never be applied to a different
file.

Each field of a record has one writer. The daemon's job queue writes the
fields it owns with [DB.Create], [DB.Change], [DB.CreateFrom] (new jobs
and a change to the job they come from, together) and [DB.Delete]; a running
job's transfer reports through [DB.SetIdentity], [DB.SetPart],
[DB.Checkpoint] and [DB.Publish], which touch only the file's identity
and the progress. Each is one read-modify-write transaction, so neither
writer can overwrite the other's fields with a stale copy.

# Buckets and keys

The file has four buckets. "jobs", "bitmaps" and "hashes" are keyed by job
ID, encoded as 8 bytes big-endian so that keys sort in ID order; the
"jobs" bucket's sequence hands out the IDs, which start at 1 and are never
reused, even after a job is deleted. "jobs" holds the JSON records,
"bitmaps" the bitmaps in the layout of [Bitmap.MarshalBinary], and "hashes"
the segment hashes of the jobs that have them. "meta" holds the schema
version under "schema" (4 bytes, big-endian) and the clean-shutdown mark
under "clean" (one byte, 1 for clean).

# Clean shutdown

[Open] reads the clean-shutdown mark into [DB.WasClean] and, in the same
transaction, clears it. The daemon calls [DB.MarkClean] once it has flushed
every job, right before [DB.Close]. A process that dies, or forgets, leaves
the mark clear, and the next daemon knows that the records and bitmaps
may lag behind the downloaded files (segments written after the last save)
and can check them. Any write after MarkClean clears the mark again.

# Schema and migrations

[SchemaVersion] is the layout this package writes. Open refuses, with
[ErrNewerSchema], a database with a higher version, without writing to it.
It upgrades one with a lower version by running each migration step from
its version to SchemaVersion in order, all in the transaction that then
records the new version: a failed step leaves the database as it was.

# Damage

[Open] writes only to a file it has checked. A file that exists is first
opened read-only and its pages are checked: every page number and offset
that bbolt would follow is read from the file and checked against it
first (bbolt follows them through its memory map unchecked, and a damaged
one would crash the process), then bbolt's own consistency check runs,
then the buckets and schema version are checked. A file that fails, one
that is empty or cut short included, is refused with a [*DamagedError]
(errors.Is [ErrDamaged]) naming it and the first problem, and is neither
written to nor removed: only a missing file makes a new database, and it
is built under a temporary name and linked into place whole, so that a
crash can never leave an empty file behind.

A sound file can still hold a job that cannot be read: a record that does
not decode, or a bitmap or hashes that do not match it. That job alone is
set aside: [DB.List] returns the others and a [*RecordError] (errors.Is
[ErrBadRecord]) for it, the other reads of it fail with that error, and
[DB.Delete] removes it. [Check] runs all of these checks offline, and
every job's too, without writing, and reports everything it finds.

# Caveats

Only one DB may have the file open at a time: Open waits for the file lock
for [Options.Timeout], once for its read-only check and once more to open
the file for writing, and then fails with [ErrLocked]. Check takes a
shared lock, which an open DB holds off. Every write is a
transaction that is synced to disk before the method returns, so each write
costs an fsync; a running job checkpoints about once a second rather
than on every piece. A DB is safe for concurrent use, but
a [Bitmap] is not.
*/
package store
