package aria2rpc

import (
	"cmp"
	"encoding/hex"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/idmproject/idm/daemon/api"
	"github.com/idmproject/idm/store"
)

// A download's status, in aria2's words.
const (
	statusActive   = "active"
	statusWaiting  = "waiting"
	statusPaused   = "paused"
	statusError    = "error"
	statusComplete = "complete"
	statusRemoved  = "removed"
)

// statusOf returns job j's status in aria2's words: a job whose transfer
// runs is active, whether it downloads or waits for a source (idmd's
// "waiting"); a queued one waits for a slot; a cancelled one was
// removed.
func statusOf(j *api.Job) string {
	switch j.State {
	case api.StateDownloading, api.StateWaiting:
		return statusActive
	case api.StateQueued:
		return statusWaiting
	case api.StatePaused:
		return statusPaused
	case api.StateCompleted:
		return statusComplete
	case api.StateCancelled:
		return statusRemoved
	}
	return statusError
}

// stopped reports whether a download of status st has ended: aria2 keeps
// its result until removeDownloadResult.
func stopped(st string) bool {
	return st == statusComplete || st == statusError || st == statusRemoved
}

// stoppedAt is when job j stopped, as tellStopped orders the stopped
// jobs: a failed job has no Finished, but nothing changes it after it
// fails.
func stoppedAt(j *api.Job) time.Time {
	if !j.Finished.IsZero() {
		return j.Finished
	}
	return j.Updated
}

// byStop orders stopped jobs from the least recently stopped, as aria2
// keeps its download results.
func byStop(a, b api.Job) int {
	return cmp.Or(stoppedAt(&a).Compare(stoppedAt(&b)), cmp.Compare(a.ID, b.ID))
}

// aria2's error codes of a stopped download that idmd can tell apart.
const (
	errorFinished   = "0"
	errorUnknown    = "1"
	errorNotFound   = "3"
	errorNoSpace    = "9"
	errorAuthFailed = "24"
	errorRemoved    = "31"
	errorChecksum   = "32"
)

// errorCode returns aria2's errorCode of a stopped job.
func errorCode(j *api.Job, st string) string {
	switch st {
	case statusComplete:
		return errorFinished
	case statusRemoved:
		return errorRemoved
	}
	// Only told apart for a front-end to show: the job failed for good
	// whatever the code.
	msg := strings.ToLower(j.LastError)
	switch {
	case strings.Contains(msg, "checksum") || strings.Contains(msg, "digest"):
		return errorChecksum
	case strings.Contains(msg, "no space") || strings.Contains(msg, "not enough room"):
		return errorNoSpace
	case strings.Contains(msg, ": 404 not found"):
		return errorNotFound
	case strings.Contains(msg, ": 401 unauthorized"):
		return errorAuthFailed
	}
	return errorUnknown
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// status renders job j as tellStatus answers it, with only the keys
// asked for (all with none). Keys that concern only BitTorrent are left
// out, as aria2 leaves out what does not apply; so are the piece length
// and count while the file is not known (aria2 would give the piece
// length it would use, which idmd cannot know before the file is
// decided), and the bitfield with them.
func (s *Server) status(j *api.Job, keys []string) map[string]any {
	st := statusOf(j)
	all := map[string]func() any{
		"gid":             func() any { return gid(j.ID) },
		"status":          func() any { return st },
		"totalLength":     func() any { return itoa(max(j.Size, j.Progress.Size)) },
		"completedLength": func() any { return itoa(j.Progress.Verified) },
		"downloadSpeed":   func() any { return itoa(speed(j)) },
		"uploadSpeed":     func() any { return "0" },
		"uploadLength":    func() any { return "0" },
		"connections":     func() any { return itoa(int64(len(servers(j)))) },
		"dir":             func() any { return j.Dir },
		"files":           func() any { return files(j) },
	}
	// A downloaded Metalink's jobs, and the job whose Metalink made one,
	// as aria2 names the downloads a Metalink it followed made.
	if len(j.FollowedBy) > 0 {
		all["followedBy"] = func() any {
			gids := make([]string, len(j.FollowedBy))
			for i, id := range j.FollowedBy {
				gids[i] = gid(id)
			}
			return gids
		}
	}
	if j.Following != 0 {
		all["following"] = func() any { return gid(j.Following) }
	}
	if stopped(st) {
		all["errorCode"] = func() any { return errorCode(j, st) }
		all["errorMessage"] = func() any { return j.LastError }
	}
	if j.PieceLength > 0 {
		all["pieceLength"] = func() any { return itoa(j.PieceLength) }
		all["numPieces"] = func() any { return itoa(int64(j.Pieces)) }
	}
	out := map[string]any{}
	for k, f := range all {
		if len(keys) == 0 || slices.Contains(keys, k) {
			out[k] = f()
		}
	}
	// Asked for only when wanted: it costs a copy of the job's bitmap,
	// or a read of the store for a job that is not running.
	if j.Pieces > 0 && (len(keys) == 0 || slices.Contains(keys, "bitfield")) {
		if b, ok := s.bitfield(j); ok {
			out["bitfield"] = b
		}
	}
	return out
}

// bitfield returns job j's verified pieces as aria2's bitfield, when it
// can tell them for j's pieces.
func (s *Server) bitfield(j *api.Job) (string, bool) {
	bm, err := s.Queue.Pieces(j.ID)
	if err != nil {
		s.logger().Warn("the verified pieces of a job cannot be read", "job", j.ID, "err", err)
		return "", false
	}
	// Read apart from the view: checked against it rather than trusted,
	// though a job's file is decided once.
	if bm == nil || bm.Len() != j.Pieces {
		return "", false
	}
	return hexBits(bm), true
}

// hexBits encodes bm as aria2 encodes a bitfield: in hex, two lowercase
// digits a byte, piece 0 the highest bit of the first byte, and the bits
// past the last piece zero.
func hexBits(bm *store.Bitmap) string {
	b := make([]byte, (bm.Len()+7)/8)
	for i := range bm.Len() {
		if bm.Has(i) {
			b[i/8] |= 0x80 >> (i % 8)
		}
	}
	return hex.EncodeToString(b)
}

// speed is job j's download speed in bytes per second.
func speed(j *api.Job) int64 {
	if statusOf(j) != statusActive {
		return 0
	}
	return int64(j.Progress.Speed)
}

// servers returns the sources job j downloads from now.
func servers(j *api.Job) []api.SourceProgress {
	if statusOf(j) != statusActive {
		return nil
	}
	var out []api.SourceProgress
	for _, s := range j.Progress.Sources {
		if s.State == api.SourceUp {
			out = append(out, s)
		}
	}
	return out
}

// path is where job j's file is, or will be once its name is known.
func path(j *api.Job) string {
	switch {
	case j.Path != "":
		return j.Path
	case j.Name != "":
		return filepath.Join(j.Dir, j.Name)
	}
	return ""
}

// uris returns job j's sources as getUris answers them, secrets hidden:
// all used while it runs or once it has, all waiting while it waits.
func uris(j *api.Job) []map[string]string {
	state := "used"
	if st := statusOf(j); st == statusWaiting || st == statusPaused {
		state = statusWaiting
	}
	out := []map[string]string{}
	for _, s := range j.Sources {
		out = append(out, map[string]string{"uri": s, "status": state})
	}
	return out
}

// files returns job j's one file as getFiles answers it.
func files(j *api.Job) []map[string]any {
	return []map[string]any{{
		"index":           "1",
		"path":            path(j),
		"length":          itoa(max(j.Size, j.Progress.Size)),
		"completedLength": itoa(j.Progress.Verified),
		"selected":        "true",
		"uris":            uris(j),
	}}
}

// options returns job j's options as getOption answers them: those that
// apply to it, secrets hidden.
func options(j *api.Job) map[string]string {
	out := map[string]string{
		"dir":                j.Dir,
		"max-download-limit": itoa(j.Limit),
		"max-upload-limit":   "0",
		"pause":              strconv.FormatBool(j.State == api.StatePaused),
	}
	if j.Name != "" {
		out["out"] = j.Name
	}
	if len(j.Headers) > 0 {
		out["header"] = strings.Join(j.Headers, "\n")
	}
	if j.UserAgent != "" {
		out["user-agent"] = j.UserAgent
	}
	if j.Proxy != "" {
		out["all-proxy"] = j.Proxy
	}
	if algo, hex, ok := strings.Cut(j.Checksum, ":"); ok {
		out["checksum"] = algo + "=" + hex
	}
	return out
}
