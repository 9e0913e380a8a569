package api

import "time"

// APIVersion is the version of the control API served under /v1/.
const APIVersion = 1

// Job is a job as the control API shows it.
type Job struct {
	// ID identifies the job; IDs are never reused.
	ID uint64 `json:"id"`
	// Sources are the servers' addresses, in the order given.
	Sources []string `json:"sources"`
	// Dir is the output directory, with every symbolic link resolved
	// when the job was created.
	Dir string `json:"dir"`
	// Name is the file name, once a source has told it.
	Name string `json:"name,omitempty"`
	// Path is where the finished file is, once it is.
	Path string `json:"path,omitempty"`
	// Size is the file's size, once known.
	Size int64 `json:"size"`
	// PieceLength is the length of every piece of the file but the last,
	// and Pieces their number, once the file is known: idmd verifies the
	// file piece by piece, and keeps which pieces are done.
	PieceLength int64 `json:"piece_length,omitempty"`
	Pieces      int   `json:"pieces,omitempty"`
	// Content is the file's content hash in hex, its identity, once known:
	// the root of its segment hashes (docs/protocol.md).
	Content string `json:"content,omitempty"`
	// Headers, UserAgent and Proxy are the job's HTTP options, secrets
	// hidden: a header's value and a proxy's password show as xxxxx.
	Headers   []string `json:"headers,omitempty"`
	UserAgent string   `json:"user_agent,omitempty"`
	Proxy     string   `json:"proxy,omitempty"`
	// Checksum is the whole-file digest the job was asked to match,
	// "algo:hex", if any.
	Checksum string `json:"checksum,omitempty"`
	// OwnHashes says no source published hashes of the file's pieces
	// (plain HTTP mirrors do not): idmd hashed each piece as it wrote it,
	// which finds what a crash damaged but proves nothing of what the
	// mirrors sent. Users are told so.
	OwnHashes bool `json:"own_hashes,omitempty"`
	// Expect is the BLAKE3 hash the job was pinned to when it was
	// created, if any: only a file with that hash may become the job's.
	Expect string `json:"expect,omitempty"`
	// State is one of the State* constants.
	State string `json:"state"`
	// LastError says why the job failed or what last went wrong.
	LastError string `json:"last_error,omitempty"`
	// Limit is the job's own rate cap in bytes per second; 0 is none.
	Limit int64 `json:"limit"`
	// Created, Updated and Finished are the job's timestamps.
	Created  time.Time `json:"created"`
	Updated  time.Time `json:"updated"`
	Finished time.Time `json:"finished,omitzero"`
	// Progress is the transfer's state; for a job that is not running it
	// holds the stored counters.
	Progress Progress `json:"progress"`
	// FollowMetalink says the job was made with CreateRequest's
	// FollowMetalink: once it completes, its file, if it is a Metalink 4,
	// becomes the Metalink's jobs.
	FollowMetalink bool `json:"follow_metalink,omitempty"`
	// FollowedBy are the jobs the job's file, a Metalink, became when it
	// completed, in the Metalink's order (aria2's followedBy). They are
	// made, and named here, with the job's completion: the event that
	// says it completed names them.
	FollowedBy []uint64 `json:"followed_by,omitempty"`
	// Following is the job whose file, a Metalink, made this one
	// (aria2's following).
	Following uint64 `json:"following,omitempty"`
	// FollowError says why a job with FollowMetalink was completed
	// without being followed: its file is no Metalink 4 idmd could read,
	// say, or select and locations were given for a file that is none.
	FollowError string `json:"follow_error,omitempty"`
}

// JobSummary is a job in brief, as GET /v1/jobs?view=summary lists it:
// what idmctl ls shows, in a quarter of a Job's bytes.
type JobSummary struct {
	// ID identifies the job.
	ID uint64 `json:"id"`
	// State is one of the State* constants.
	State string `json:"state"`
	// Name is the file name, once a source has told it.
	Name string `json:"name,omitempty"`
	// Source is the first source's address, which names a job whose file
	// has no name yet.
	Source string `json:"source"`
	// Size is the file's size, once known.
	Size int64 `json:"size,omitempty"`
	// Verified counts the bytes verified and written.
	Verified int64 `json:"verified,omitempty"`
	// Speed is the verified bytes per second over a moving window, while
	// the job downloads.
	Speed float64 `json:"speed,omitempty"`
}

// Summary returns j in brief.
func (j *Job) Summary() JobSummary {
	s := JobSummary{ID: j.ID, State: j.State, Name: j.Name, Size: j.Size, Verified: j.Progress.Verified, Speed: j.Progress.Speed}
	if len(j.Sources) > 0 {
		s.Source = j.Sources[0]
	}
	return s
}

// Done reports whether the job has ended for good.
func (j *Job) Done() bool {
	return j.State == StateCompleted || j.State == StateFailed || j.State == StateCancelled
}

// HTTPOptions are a job's options for its HTTP mirrors, as CreateRequest
// and MetalinkRequest take them.
type HTTPOptions struct {
	// Headers are extra "Name: value" request headers (cookies, tokens),
	// at most 32. Host, Range and the other headers idmd sets itself are
	// refused. The job's view shows each value as xxxxx.
	Headers []string `json:"headers,omitempty"`
	// UserAgent names the client in place of idmd's own.
	UserAgent string `json:"user_agent,omitempty"`
	// CA holds PEM certificates to trust, beside the system's roots, for
	// https mirrors. Verification cannot be turned off.
	CA string `json:"ca,omitempty"`
	// Proxy is the proxy (http://, https:// or socks5://) in place of
	// those of the daemon's environment.
	Proxy string `json:"proxy,omitempty"`
	// NoDiscover keeps the mirrors a mirror announces (Link:
	// rel=duplicate, RFC 6249) out of the job; by default they join it.
	NoDiscover bool `json:"no_discover,omitempty"`
}

// SourcesRequest is the body of POST /v1/jobs/{id}/sources: sources to
// add to a job and to remove from it.
type SourcesRequest struct {
	// Add are new sources, as CreateRequest's.
	Add []string `json:"add,omitempty"`
	// Remove are sources to take away, as given or as the job shows them.
	Remove []string `json:"remove,omitempty"`
}

// MetalinkRequest is the body of POST /v1/metalinks: a Metalink 4
// document (RFC 5854) whose files become jobs, one per file.
type MetalinkRequest struct {
	// Document is the Metalink's XML text, at most 16 MiB.
	Document string `json:"document,omitempty"`
	// URL, in place of Document, is where idmd fetches the Metalink: an
	// http:// or https:// URL.
	URL string `json:"url,omitempty"`
	// Dir and Limit are as in CreateRequest, for every job.
	Dir   string `json:"dir"`
	Limit int64  `json:"limit,omitempty"`
	// Connections and HTTPOptions are as in CreateRequest, for every job.
	Connections int `json:"connections,omitempty"`
	HTTPOptions
	// Resume is as in CreateRequest, for each file: its unfinished job
	// with the same mirrors and directory is resumed instead of a new
	// one. Without it, such a job makes the request fail with CodeExists,
	// and no job is made.
	Resume bool `json:"resume,omitempty"`
	// MetalinkOptions say which files become jobs, and how their
	// mirrors are ordered.
	MetalinkOptions
}

// MetalinkOptions are how the files of a Metalink become jobs, as
// MetalinkRequest takes them and CreateRequest with FollowMetalink.
type MetalinkOptions struct {
	// Select names the files to download; empty means every one.
	Select []string `json:"select,omitempty"`
	// Locations are the ISO 3166 codes of the countries whose mirrors
	// come first among those of equal priority, best first.
	Locations []string `json:"locations,omitempty"`
	// Logins are credentials by host for the mirrors the Metalink lists,
	// as the machine entries of a ~/.netrc give them (idmctl's --netrc
	// sends the caller's): a mirror on a Login's host that carries no
	// credentials of its own is given them in its address, shown with
	// the password hidden as any source's is. Each applies to its own
	// host only, whatever the scheme or port, as curl applies a netrc's;
	// there is no default for other hosts, since the Metalink's author,
	// not the caller, chose them. At most 256; kept for no other use,
	// and with FollowMetalink only until the job completes or is
	// cancelled.
	Logins []Login `json:"logins,omitempty"`
}

// Login is one host's credentials.
type Login struct {
	// Host is the host name, as a URL gives it, without a port; its case
	// does not matter.
	Host string `json:"host"`
	// Login is the user name; Password its password.
	Login    string `json:"login"`
	Password string `json:"password,omitempty"`
}

// CreateRequest is the body of POST /v1/jobs.
type CreateRequest struct {
	// Sources are idm://host:port addresses of idm servers and http:// or
	// https:// URLs of mirrors, at least one, no two the same in their
	// normal form (transport/addr). A job's view shows them with their
	// secrets (passwords, query values) hidden.
	Sources []string `json:"sources"`
	// Dir is the absolute path of an existing directory in which both
	// the caller and the daemon may create files.
	Dir string `json:"dir"`
	// Limit is the job's rate cap in bytes per second; 0 is none.
	Limit int64 `json:"limit,omitempty"`
	// Name, when set, is the name of the file in Dir, in place of the
	// one its sources give: a name, not a path. Characters no file name
	// should hold are replaced as in the sources' names.
	Name string `json:"name,omitempty"`
	// Content, when set, pins the file: its content hash in hex, as
	// idm-server and the Job's Content show it (the file's root, see
	// docs/protocol.md). Sources holding any other file are rejected.
	Content string `json:"content,omitempty"`
	// HTTPOptions are for the job's HTTP mirrors; its fields are the
	// request's own in JSON.
	HTTPOptions
	// Connections is the number of connections to each source, 1 to 16;
	// 0 means 4 for a lone HTTP mirror, 1 otherwise.
	Connections int `json:"connections,omitempty"`
	// Checksum, when set, is the whole file's digest, "ALGO=HEX" with
	// ALGO one of sha-256, sha-512, sha-1 or blake3: the file is published
	// only if it matches, and the job fails, naming both digests, if not.
	Checksum string `json:"checksum,omitempty"`
	// Resume asks for the existing unfinished job with the same sources
	// and directory, resumed whatever its state, instead of a new one.
	// Without it, such a job makes the request fail with CodeExists.
	Resume bool `json:"resume,omitempty"`
	// FollowMetalink, for a lone http(s) source, lets its answer be a
	// Metalink 4 (Content-Type application/metalink4+xml): the job
	// downloads it as its file, and once it completes, a file that is a
	// Metalink 4 (by that Content-Type, or a URL ending in .meta4 or
	// .metalink) becomes the Metalink's jobs, one per file, as
	// MetalinkRequest makes them, with the request's directory, limit,
	// connections, HTTP options and MetalinkOptions (aria2's
	// --follow-metalink). The job stays completed, its file kept, and
	// names them in FollowedBy. Nothing is asked of the source before the
	// answer: the request makes the one job at once. Without it, or
	// beside other sources, a source that answers with a Metalink holds
	// another file, and is rejected.
	FollowMetalink bool `json:"follow_metalink,omitempty"`
	// MetalinkOptions are for the Metalink the source may answer with:
	// only with FollowMetalink, and Select and Locations only for a lone
	// http(s) source. Logins are kept in the job's record, as its
	// sources' credentials are, until the job completes or is cancelled.
	MetalinkOptions
}

// MoveRequest is the body of POST /v1/jobs/{id}/move: the job's new
// place in the line of waiting jobs, as aria2's changePosition takes it.
type MoveRequest struct {
	// Position counts from From: from "start", 0 is the first place;
	// from "current", -1 is one place ahead; from "end", 0 is the last.
	// A position past either end of the line is that end.
	Position int `json:"position"`
	// From is "start", "current" or "end"; empty means "start".
	From string `json:"from,omitempty"`
}

// MoveResponse answers POST /v1/jobs/{id}/move.
type MoveResponse struct {
	// Position is the job's new place in the line, 0 for the first.
	Position int `json:"position"`
}

// LimitRequest is the body of PUT /v1/limit and PUT /v1/jobs/{id}/limit.
type LimitRequest struct {
	// Limit is bytes per second; 0 removes the cap.
	Limit int64 `json:"limit"`
}

// LimitResponse answers the limit requests and GET /v1/limit.
type LimitResponse struct {
	// Limit is bytes per second; 0 is none.
	Limit int64 `json:"limit"`
}

// Version answers GET /v1/version.
type Version struct {
	// Version is idmd's version.
	Version string `json:"version"`
	// API is the control API version.
	API int `json:"api"`
	// PID is the daemon's process ID.
	PID int `json:"pid"`
	// StateDir is the daemon's state directory.
	StateDir string `json:"state_dir"`
}

// RPC answers GET /v1/rpc: where idmd answers aria2's JSON-RPC, and the
// secret every call must carry.
type RPC struct {
	// Listen is the address the aria2 RPC listener serves on.
	Listen string `json:"listen"`
	// URL is where an aria2 client points: http://LISTEN/jsonrpc (ws://
	// for a WebSocket).
	URL string `json:"url"`
	// Secret is what every call carries as its first parameter,
	// "token:SECRET"; front-ends call it the RPC secret or token.
	Secret string `json:"secret"`
}

// Event types.
const (
	// EventProgress is a periodic progress tick of a running job.
	EventProgress = "progress"
	// EventState reports a job's state change (created, paused, done...).
	EventState = "state"
	// EventRemoved reports a job removed from the store.
	EventRemoved = "removed"
)

// Event is one line of an event stream (newline-delimited JSON).
type Event struct {
	// Type is one of the Event* constants.
	Type string `json:"type"`
	// Job is the job's snapshot at the time of the event.
	Job Job `json:"job"`
}

// Error codes of the control API's error body.
const (
	// CodeBadRequest: malformed or invalid input (400).
	CodeBadRequest = "bad_request"
	// CodeNotFound: no such job or route (404).
	CodeNotFound = "not_found"
	// CodeExists: an unfinished job for the same sources and directory
	// exists (409); resume it instead.
	CodeExists = "exists"
	// CodeConflict: the job's state does not allow that (409).
	CodeConflict = "conflict"
	// CodeForbidden: the caller may not use the daemon (403).
	CodeForbidden = "forbidden"
	// CodePermissionDenied: the caller may not create files in the
	// directory it asked for (403).
	CodePermissionDenied = "permission_denied"
	// CodeMethod: the route does not take that method (405).
	CodeMethod = "method_not_allowed"
	// CodeInternal: the daemon failed (500).
	CodeInternal = "internal"
	// CodeUnavailable: the daemon is shutting down (503); try again once
	// it is back.
	CodeUnavailable = "unavailable"
)

// ErrorBody is the one JSON shape of every error answer.
type ErrorBody struct {
	// Error is one line for a person.
	Error string `json:"error"`
	// Code is one of the Code* constants, for programs.
	Code string `json:"code"`
	// Job is the ID of the job concerned, when there is one (for
	// CodeExists, the existing job).
	Job uint64 `json:"job,omitempty"`
}
