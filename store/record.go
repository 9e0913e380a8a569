package store

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// A Record is a job as persisted. The store keeps it as JSON and gives its
// fields no meaning beyond what is needed to keep a job's bitmap and hashes
// consistent with it; the daemon owns the rest.
//
// Size, SegmentSize, Algo, Root, OwnPieces and Content are the job's
// identity: they change only through [DB.SetIdentity], and [DB.Put] and
// [DB.Change] refuse a Record whose identity differs from the stored one.
type Record struct {
	// ID is the job's number, assigned by [DB.Create]. IDs start at 1 and
	// are never reused.
	ID uint64 `json:"id"`

	// Sources are the addresses the job downloads from, as given by the
	// user, such as "idm://127.0.0.1:9001". A Record has at least one.
	Sources []string `json:"sources"`

	// SourceReach holds, for each of Sources that a server named rather
	// than the user (a mirror a mirror announced, or one a Metalink
	// fetched from a URL listed), the most internal class of address it
	// may make the daemon connect to, in the daemon's words ("internal",
	// "public"). A source not in it is the user's, and may connect
	// anywhere; so are those of records written before it was.
	SourceReach map[string]string `json:"source_reach,omitempty"`

	// Dir is the directory the file is written to.
	Dir string `json:"dir"`

	// Name is the sanitised name of the file written in Dir.
	Name string `json:"name"`

	// Path is the final path of the file once the job is complete, and
	// empty before.
	Path string `json:"path,omitempty"`

	// Size is the file's length in bytes. It is 0 until the manifest is
	// known.
	Size int64 `json:"size"`

	// SegmentSize is the length in bytes of every segment but the last. It
	// is 0 until the manifest is known.
	SegmentSize int64 `json:"segment_size"`

	// Content is the BLAKE3 hash of the whole file, as the sources gave
	// it. It is all zero until the file is known or when no source gave
	// it, and is encoded in JSON as 64 lower-case hex digits (omitted
	// while zero).
	Content [32]byte `json:"content"`

	// Root is the file's root (identity.File.Root), its identity, once the
	// file is decided and its piece hashes published; zero before, and for
	// a file whose piece hashes are the daemon's own. In JSON, 64
	// lower-case hex digits (omitted while zero).
	Root [32]byte `json:"root"`

	// Algo names the hash algorithm of the piece hashes ("blake3",
	// "sha-256", "sha-1"); empty means BLAKE3.
	Algo string `json:"algo,omitempty"`

	// OwnPieces says the piece hashes are the daemon's own, taken as the
	// pieces were written because no source published any: they can be
	// trusted only for the pieces the bitmap holds.
	OwnPieces bool `json:"own_pieces,omitempty"`

	// State is the job's state, owned by the daemon's job queue
	// (package daemon/jobs says what the words mean). The store does not
	// interpret it.
	State string `json:"state"`

	// LastError is the last error that stopped or slowed the job, if any.
	LastError string `json:"last_error,omitempty"`

	// Limit is the job's speed limit in bytes per second; 0 means none.
	Limit int64 `json:"limit,omitempty"`

	// Created is when the job was created. Create sets it if it is zero.
	Created time.Time `json:"created"`

	// Updated is when the record was last written. Every write sets it.
	Updated time.Time `json:"updated"`

	// Finished is when the job completed, failed or was cancelled; zero
	// before.
	Finished time.Time `json:"finished"`

	// Fetched counts every byte received for the job, duplicates and
	// corrupt data included.
	Fetched int64 `json:"fetched"`

	// Verified counts the bytes of segments received and verified.
	Verified int64 `json:"verified"`

	// SourceStats holds what each source has delivered, one entry per
	// source.
	SourceStats []SourceStat `json:"source_stats,omitempty"`

	// Expect is the content hash the user pinned when adding the job: only
	// a file with this hash may become the job's. All zero for none; in
	// JSON, 64 lower-case hex digits (omitted while zero).
	Expect [32]byte `json:"expect"`

	// Headers, UserAgent, CA and Proxy are the job's HTTP options, as
	// api.CreateRequest has them. Headers may hold secrets.
	Headers   []string `json:"headers,omitempty"`
	UserAgent string   `json:"user_agent,omitempty"`
	CA        string   `json:"ca,omitempty"`
	Proxy     string   `json:"proxy,omitempty"`

	// NoDiscover keeps the mirrors a mirror announces out of the job.
	NoDiscover bool `json:"no_discover,omitempty"`

	// Conns is the number of connections to each source the user asked
	// for; 0 for the default.
	Conns int `json:"conns,omitempty"`

	// Checksum is the whole-file digest the user gave when adding the job,
	// "algo:hex" (identity.Digest.String): the file is published only if
	// it matches. Empty for none.
	Checksum string `json:"checksum,omitempty"`

	// Digests are the whole-file digests other than BLAKE3 (Content) that
	// the sources claimed for the job's file, "algo:hex", checked before
	// it is published.
	Digests []string `json:"digests,omitempty"`

	// DirID identifies Dir as it was when the job was created, so that a
	// directory replaced since (by a symlink, say) is refused rather than
	// written to.
	DirID FileID `json:"dir_id,omitzero"`

	// Part is the base name, in Dir, of the job's own partial file, chosen
	// by the daemon when the file's name becomes known. Empty before.
	Part string `json:"part,omitempty"`

	// PartStamp is the partial file as the daemon last left it. A file
	// that differs when the job goes on again was changed behind the
	// daemon's back, and is rechecked or refused.
	PartStamp FileStamp `json:"part_stamp,omitzero"`

	// Owner is the user who asked for the job, with the groups its process
	// had, as the kernel reported them. The daemon checks again at every
	// start that this user may create files in Dir. Nil when unknown: jobs
	// recorded before owners were, or made where the daemon cannot tell
	// who its callers are.
	Owner *Owner `json:"owner,omitempty"`

	// Follow says what becomes of the job's file once it completes, when
	// it is a Metalink: its files become jobs. Nil for a job that is
	// never followed.
	Follow *Follow `json:"follow,omitempty"`

	// FollowedBy are the jobs of the Metalink the job's file was, in the
	// Metalink's order, recorded in the transaction that made them
	// ([DB.CreateFrom]). Empty for a job that was not followed.
	FollowedBy []uint64 `json:"followed_by,omitempty"`

	// Following is the job whose file, a Metalink, made this one; 0 for
	// none.
	Following uint64 `json:"following,omitempty"`

	// Rank is the job's place in the line of jobs waiting to start: the
	// daemon starts the waiting job of least rank first. 0 means the
	// job's ID, the order of creation; the daemon writes a rank only when
	// a job is moved in the line, so that the line outlasts a restart.
	Rank int64 `json:"rank,omitempty"`

	// FollowError says why a job that was to be followed was not when it
	// completed: its file is no Metalink it could read, say. Empty
	// otherwise.
	FollowError string `json:"follow_error,omitempty"`
}

// Follow is how the file of a job, once complete, becomes the jobs of the
// Metalink it is.
type Follow struct {
	// Select names the Metalink's files to make jobs of; empty means
	// every one.
	Select []string `json:"select,omitempty"`
	// Locations are the countries whose mirrors come first, best first.
	Locations []string `json:"locations,omitempty"`
	// Logins are credentials by host for the Metalink's mirrors. They are
	// kept in the clear, as Sources keep theirs, and only until the job
	// completes or is cancelled: the daemon clears them then.
	Logins []Login `json:"logins,omitempty"`
}

// Login is one host's credentials.
type Login struct {
	// Host is the host name, in lower case, without a port.
	Host string `json:"host"`
	// Login is the user name; Password its password.
	Login    string `json:"login"`
	Password string `json:"password,omitempty"`
}

// An Owner is a user as the kernel reported it on the control socket: the
// effective user and group IDs and the supplementary groups of the process
// that asked for a job.
type Owner struct {
	// UID is the user ID.
	UID int `json:"uid"`
	// GID is the primary group ID.
	GID int `json:"gid"`
	// Groups are the supplementary group IDs.
	Groups []int `json:"groups,omitempty"`
}

// A FileID identifies a file or directory on one machine: its device and
// inode numbers. The zero FileID is unknown.
type FileID struct {
	// Dev is the device the file is on.
	Dev uint64 `json:"dev"`
	// Ino is the file's inode number on Dev.
	Ino uint64 `json:"ino"`
}

// A FileStamp is what a file looked like at one moment: its identity,
// size and times. Two stamps that differ mean the file changed between
// them.
type FileStamp struct {
	// ID is the file's device and inode.
	ID FileID `json:"id"`
	// Size is the file's length in bytes.
	Size int64 `json:"size"`
	// ModTime and ChangeTime are the file's modification and status change
	// times in Unix nanoseconds. Writing the file changes both; only the
	// kernel sets the change time, so resetting the modification time
	// afterwards still shows.
	ModTime    int64 `json:"mtime"`
	ChangeTime int64 `json:"ctime"`
}

// A SourceStat is what one source has delivered to one job.
type SourceStat struct {
	// Source is the source's address, as in Record.Sources.
	Source string `json:"source"`

	// Bytes counts the verified bytes the source delivered.
	Bytes int64 `json:"bytes"`

	// Fetched counts every byte received from the source, duplicates and
	// corrupt data included.
	Fetched int64 `json:"fetched"`

	// Errors counts the failed requests to the source.
	Errors int `json:"errors"`

	// Corrupt counts the segments from the source that failed
	// verification.
	Corrupt int `json:"corrupt"`

	// Quarantined reports whether the daemon has stopped using the source
	// for this job, because it sent too many corrupt segments.
	Quarantined bool `json:"quarantined"`

	// Rejected reports whether the daemon has stopped using the source
	// for this job, because it holds another file or describes the job's
	// falsely. LastError says which.
	Rejected bool `json:"rejected,omitempty"`

	// Failed reports whether the daemon has stopped using the source for
	// this job, because it answered with an error that cannot pass (an
	// unsupported protocol version, a range it does not have). LastError
	// says which.
	Failed bool `json:"failed,omitempty"`

	// LastError is the source's last error, if any.
	LastError string `json:"last_error,omitempty"`

	// ETag and LastModified name the version of the file an HTTP mirror
	// held when it first described it. A later run sends them back
	// (If-Range), so that a mirror whose file changed is refused rather
	// than mixed into the old version's pieces.
	ETag         string `json:"etag,omitempty"`
	LastModified string `json:"last_modified,omitempty"`

	// MediaType is the type an HTTP mirror gave its file (its
	// Content-Type, without parameters) when it first answered. It is
	// recorded beside the file's version, by the same checkpoints and by
	// the one that publishes the file, so that a job whose file is a
	// Metalink is known to be one after a restart too.
	MediaType string `json:"media_type,omitempty"`
}

// SegmentCount returns the number of segments in the job's file, which is
// the length of its bitmap: Size divided by SegmentSize, rounded up. It is 0
// while the manifest is not known (SegmentSize is 0) and for an empty file.
func (r *Record) SegmentCount() int {
	if r.SegmentSize <= 0 || r.Size <= 0 {
		return 0
	}
	n := r.Size / r.SegmentSize
	if r.Size%r.SegmentSize != 0 {
		n++
	}
	return int(n)
}

// recordFields has Record's fields and none of its methods, so that the
// JSON methods can encode them without recursing.
type recordFields Record

// recordJSON is Record's JSON form: its Content field shadows the embedded
// one, so that the hash is encoded as hex.
type recordJSON struct {
	*recordFields
	Content string `json:"content,omitempty"`
	Root    string `json:"root,omitempty"`
	Expect  string `json:"expect,omitempty"`
}

// MarshalJSON encodes r as a JSON object, with Content as hex.
func (r Record) MarshalJSON() ([]byte, error) {
	aux := recordJSON{recordFields: (*recordFields)(&r)}
	aux.Content, aux.Root, aux.Expect = hexHash(r.Content), hexHash(r.Root), hexHash(r.Expect)
	return json.Marshal(aux)
}

// UnmarshalJSON decodes a JSON object written by MarshalJSON into r.
func (r *Record) UnmarshalJSON(data []byte) error {
	aux := recordJSON{recordFields: (*recordFields)(r)}
	if err := json.Unmarshal(data, &aux); err != nil {
		return err
	}
	var err error
	if r.Content, err = parseHexHash(aux.Content); err != nil {
		return fmt.Errorf("record %d: content hash %q is not 64 hex digits", r.ID, aux.Content)
	}
	if r.Root, err = parseHexHash(aux.Root); err != nil {
		return fmt.Errorf("record %d: root %q is not 64 hex digits", r.ID, aux.Root)
	}
	if r.Expect, err = parseHexHash(aux.Expect); err != nil {
		return fmt.Errorf("record %d: expected content hash %q is not 64 hex digits", r.ID, aux.Expect)
	}
	return nil
}

// hexHash encodes a hash as hex, and the zero hash as "".
func hexHash(h [32]byte) string {
	if h == ([32]byte{}) {
		return ""
	}
	return hex.EncodeToString(h[:])
}

// parseHexHash decodes what hexHash encodes.
func parseHexHash(s string) ([32]byte, error) {
	var h [32]byte
	if s == "" {
		return h, nil
	}
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != len(h) {
		return h, errors.New("not 64 hex digits")
	}
	copy(h[:], b)
	return h, nil
}

// validate is the light check made on every write; deep validation is the
// daemon's job.
func (r *Record) validate() error {
	switch {
	case r == nil:
		return errors.New("nil record")
	case len(r.Sources) == 0:
		return fmt.Errorf("record %d has no sources", r.ID)
	case r.Size < 0 || r.SegmentSize < 0:
		return fmt.Errorf("record %d: negative size %d or segment size %d", r.ID, r.Size, r.SegmentSize)
	case r.Rank < 0:
		return fmt.Errorf("record %d: negative rank %d", r.ID, r.Rank)
	}
	return nil
}

// sameIdentity reports whether a and b describe the same file.
func sameIdentity(a, b *Record) bool {
	return a.Size == b.Size && a.SegmentSize == b.SegmentSize && a.Content == b.Content &&
		a.Root == b.Root && a.Algo == b.Algo && a.OwnPieces == b.OwnPieces
}
