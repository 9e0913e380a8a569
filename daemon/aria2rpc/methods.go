package aria2rpc

import (
	"context"
	"encoding/base64"
	"errors"
	"net"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/idmproject/idm/daemon/api"
	"github.com/idmproject/idm/daemon/auth"
	"github.com/idmproject/idm/daemon/jobs"
	"github.com/idmproject/idm/transport/addr"
)

// aria2Version is the aria2 release whose RPC interface idmd answers,
// as getVersion reports it: front-ends compare it, not idmd's version.
const aria2Version = "1.37.0"

// method is one RPC method: its parameters, the secret taken off, and
// the context of an RPC caller (auth.RPCPeer).
type method func(s *Server, ctx context.Context, p params) (any, error)

// methods is every method but the three system ones that dispatch runs.
var methods = map[string]method{
	"aria2.addUri":               (*Server).addURI,
	"aria2.addTorrent":           (*Server).addTorrent,
	"aria2.addMetalink":          (*Server).addMetalink,
	"aria2.remove":               (*Server).remove,
	"aria2.forceRemove":          (*Server).remove,
	"aria2.pause":                (*Server).pause,
	"aria2.forcePause":           (*Server).pause,
	"aria2.pauseAll":             (*Server).pauseAll,
	"aria2.forcePauseAll":        (*Server).pauseAll,
	"aria2.unpause":              (*Server).unpause,
	"aria2.unpauseAll":           (*Server).unpauseAll,
	"aria2.changePosition":       (*Server).changePosition,
	"aria2.changeUri":            (*Server).changeURI,
	"aria2.tellStatus":           (*Server).tellStatus,
	"aria2.getUris":              (*Server).getURIs,
	"aria2.getFiles":             (*Server).getFiles,
	"aria2.getServers":           (*Server).getServers,
	"aria2.getPeers":             (*Server).getPeers,
	"aria2.tellActive":           (*Server).tellActive,
	"aria2.tellWaiting":          (*Server).tellWaiting,
	"aria2.tellStopped":          (*Server).tellStopped,
	"aria2.getOption":            (*Server).getOption,
	"aria2.changeOption":         (*Server).changeOption,
	"aria2.getGlobalOption":      (*Server).getGlobalOption,
	"aria2.changeGlobalOption":   (*Server).changeGlobalOption,
	"aria2.purgeDownloadResult":  (*Server).purgeDownloadResult,
	"aria2.removeDownloadResult": (*Server).removeDownloadResult,
	"aria2.getVersion":           (*Server).getVersion,
	"aria2.getSessionInfo":       (*Server).getSessionInfo,
	"aria2.shutdown":             (*Server).shutdown,
	"aria2.forceShutdown":        (*Server).shutdown,
	"aria2.getGlobalStat":        (*Server).getGlobalStat,
	"aria2.saveSession":          (*Server).saveSession,
}

// methodNames is what system.listMethods answers, in aria2's order.
var methodNames = []string{
	"aria2.addUri", "aria2.addTorrent", "aria2.getPeers", "aria2.addMetalink",
	"aria2.remove", "aria2.pause", "aria2.forcePause", "aria2.pauseAll",
	"aria2.forcePauseAll", "aria2.unpause", "aria2.unpauseAll", "aria2.forceRemove",
	"aria2.changePosition", "aria2.tellStatus", "aria2.getUris", "aria2.getFiles",
	"aria2.getServers", "aria2.tellActive", "aria2.tellWaiting", "aria2.tellStopped",
	"aria2.getOption", "aria2.changeUri", "aria2.changeOption", "aria2.getGlobalOption",
	"aria2.changeGlobalOption", "aria2.purgeDownloadResult", "aria2.removeDownloadResult",
	"aria2.getVersion", "aria2.getSessionInfo", "aria2.shutdown", "aria2.forceShutdown",
	"aria2.getGlobalStat", "aria2.saveSession",
	"system.multicall", "system.listMethods", "system.listNotifications",
}

// notificationNames is what system.listNotifications answers: aria2's,
// of which idmd never sends onBtDownloadComplete.
var notificationNames = []string{
	notifyStart, notifyPause, notifyStop, notifyComplete, notifyError, "aria2.onBtDownloadComplete",
}

// maxURIs bounds the sources of one download, each of which it may
// connect to at once.
const maxURIs = 64

// listPage is how many jobs a method reads from the queue at a time.
const listPage = 500

// visible returns every job the caller of ctx may see, in ID order.
func (s *Server) visible(ctx context.Context) []api.Job {
	var out []api.Job
	for after := uint64(0); ; {
		page := s.Queue.ListFor(ctx, after, listPage)
		out = append(out, page...)
		if len(page) < listPage {
			return out
		}
		after = page[len(page)-1].ID
	}
}

// job returns the job gid parameter i names, among those the caller of
// ctx may see.
func (s *Server) job(ctx context.Context, p params, i int) (api.Job, error) {
	raw, err := p.str(i)
	if err != nil {
		return api.Job{}, err
	}
	id, err := s.findGID(ctx, raw)
	if err != nil {
		return api.Job{}, err
	}
	j, err := s.Queue.Job(id)
	if errors.Is(err, jobs.ErrNotFound) {
		return api.Job{}, failf("GID %s is not found", raw)
	}
	return j, err
}

// position reads the optional position parameter i of the add methods.
func position(p params, i int) (int, bool, error) {
	pos, ok, err := p.integer(i, false)
	if err == nil && ok && pos < 0 {
		err = failf("Position must be greater than or equal to 0.")
	}
	return int(min(pos, 1<<30)), ok, err
}

// addURI is aria2.addUri(uris[, options[, position]]): the URIs, which
// aria2 takes as mirrors of one file, become the sources of one job.
func (s *Server) addURI(ctx context.Context, p params) (any, error) {
	raw, _, err := p.strings(0, true)
	if err != nil {
		return nil, err
	}
	opts, _, err := p.object(1, false)
	if err != nil {
		return nil, err
	}
	pos, at, err := position(p, 2)
	if err != nil {
		return nil, err
	}
	// aria2 takes the same URI twice for two connections to it; idmd has
	// its connections per source.
	var sources []string
	seen := map[string]bool{}
	for _, u := range raw {
		key := u
		if a, err := addr.Parse(u); err == nil {
			key = a.String()
		}
		if !seen[key] {
			seen[key] = true
			sources = append(sources, u)
		}
	}
	if len(sources) == 0 {
		return nil, failf("URI is not provided.")
	}
	if len(sources) > maxURIs {
		return nil, failf("%d URIs: one download takes at most %d", len(sources), maxURIs)
	}
	o, err := s.parseAddOptions(opts, sources)
	if err != nil {
		return nil, err
	}
	j, _, err := s.Queue.Create(ctx, o.request(sources))
	if err != nil {
		return nil, err
	}
	if err := s.placeNew(ctx, []uint64{j.ID}, pos, at, o.pause); err != nil {
		return nil, err
	}
	return gid(j.ID), nil
}

// placeNew pauses new jobs ids when asked to, and puts them at pos in
// the line, in order, when at.
func (s *Server) placeNew(ctx context.Context, ids []uint64, pos int, at, pause bool) error {
	for i, id := range ids {
		if pause {
			if _, err := s.Queue.Pause(ctx, id); err != nil && !errors.Is(err, jobs.ErrConflict) {
				return err
			}
		}
		if at {
			// A job that started at once is not in the line any more.
			if _, err := s.Queue.Move(ctx, id, pos+i, jobs.FromStart); err != nil && !errors.Is(err, jobs.ErrConflict) {
				return err
			}
		}
	}
	return nil
}

// addTorrent is aria2.addTorrent: idmd has no BitTorrent.
func (s *Server) addTorrent(context.Context, params) (any, error) {
	return nil, failf("BitTorrent is not supported: idmd downloads from HTTP(S) mirrors and idm servers; add the file's URIs with aria2.addUri, or its Metalink with aria2.addMetalink")
}

// addMetalink is aria2.addMetalink(metalink[, options[, position]]): the
// base64 .meta4 document's files become one job each.
func (s *Server) addMetalink(ctx context.Context, p params) (any, error) {
	doc, err := p.str(0)
	if err != nil {
		return nil, err
	}
	opts, _, err := p.object(1, false)
	if err != nil {
		return nil, err
	}
	pos, at, err := position(p, 2)
	if err != nil {
		return nil, err
	}
	b, err := base64.StdEncoding.DecodeString(doc)
	if err != nil {
		return nil, failf("the Metalink is not base64: %v", err)
	}
	o, err := s.parseAddOptions(opts, nil)
	if err != nil {
		return nil, err
	}
	// The queue checks every file before it makes any job: on an error,
	// none was made.
	created, _, err := s.Queue.CreateMetalink(ctx, o.metalinkRequest(string(b)))
	if err != nil {
		return nil, err
	}
	var ids []uint64
	gids := []string{}
	for _, j := range created {
		ids = append(ids, j.ID)
		gids = append(gids, gid(j.ID))
	}
	if err := s.placeNew(ctx, ids, pos, at, o.pause); err != nil {
		return nil, err
	}
	return gids, nil
}

// remove is aria2.remove and aria2.forceRemove(gid): a download that has
// not stopped is cancelled, its partial file deleted, and stays as a
// removed download until removeDownloadResult.
func (s *Server) remove(ctx context.Context, p params) (any, error) {
	j, err := s.job(ctx, p, 0)
	if err != nil {
		return nil, err
	}
	if stopped(statusOf(&j)) {
		return nil, failf("Active Download not found for GID#%s", gid(j.ID))
	}
	if _, err := s.Queue.Cancel(ctx, j.ID); err != nil {
		return nil, err
	}
	return gid(j.ID), nil
}

// pause is aria2.pause and aria2.forcePause(gid), for an active or a
// waiting download.
func (s *Server) pause(ctx context.Context, p params) (any, error) {
	j, err := s.job(ctx, p, 0)
	if err != nil {
		return nil, err
	}
	if st := statusOf(&j); st != statusActive && st != statusWaiting {
		return nil, failf("GID#%s cannot be paused now", gid(j.ID))
	}
	if _, err := s.Queue.Pause(ctx, j.ID); err != nil {
		return nil, failf("GID#%s cannot be paused now", gid(j.ID))
	}
	return gid(j.ID), nil
}

// pauseAll is aria2.pauseAll and aria2.forcePauseAll: every active and
// waiting download the caller may see.
func (s *Server) pauseAll(ctx context.Context, _ params) (any, error) {
	for _, j := range s.visible(ctx) {
		if st := statusOf(&j); st == statusActive || st == statusWaiting {
			s.Queue.Pause(ctx, j.ID) // one that ended meanwhile stays ended
		}
	}
	return "OK", nil
}

// unpause is aria2.unpause(gid), for a paused download.
func (s *Server) unpause(ctx context.Context, p params) (any, error) {
	j, err := s.job(ctx, p, 0)
	if err != nil {
		return nil, err
	}
	if statusOf(&j) != statusPaused {
		return nil, failf("GID#%s cannot be unpaused now", gid(j.ID))
	}
	if _, err := s.Queue.Resume(ctx, j.ID); err != nil {
		return nil, failf("GID#%s cannot be unpaused now", gid(j.ID))
	}
	return gid(j.ID), nil
}

// unpauseAll is aria2.unpauseAll: every paused download the caller may
// see.
func (s *Server) unpauseAll(ctx context.Context, _ params) (any, error) {
	for _, j := range s.visible(ctx) {
		if statusOf(&j) == statusPaused {
			s.Queue.Resume(ctx, j.ID)
		}
	}
	return "OK", nil
}

// changePosition is aria2.changePosition(gid, pos, how), for a waiting or
// paused download. It answers the new position, a number.
func (s *Server) changePosition(ctx context.Context, p params) (any, error) {
	j, err := s.job(ctx, p, 0)
	if err != nil {
		return nil, err
	}
	pos, _, err := p.integer(1, true)
	if err != nil {
		return nil, err
	}
	how, err := p.str(2)
	if err != nil {
		return nil, err
	}
	from, ok := map[string]jobs.Whence{"POS_SET": jobs.FromStart, "POS_CUR": jobs.FromCurrent, "POS_END": jobs.FromEnd}[how]
	if !ok {
		return nil, failf("Illegal argument.")
	}
	dest, err := s.Queue.Move(ctx, j.ID, int(max(min(pos, 1<<30), -1<<30)), from)
	if errors.Is(err, jobs.ErrConflict) {
		return nil, failf("GID#%s not found in the waiting queue.", gid(j.ID))
	}
	if err != nil {
		return nil, err
	}
	return dest, nil
}

// changeURI is aria2.changeUri(gid, fileIndex, delUris, addUris[,
// position]): it removes the sources in delUris, each once, then adds
// those of addUris it has not got, and answers how many of each, two
// numbers. A source is named as the job was given it or as getUris shows
// it. idmd asks every source at once, so position changes nothing.
func (s *Server) changeURI(ctx context.Context, p params) (any, error) {
	j, err := s.job(ctx, p, 0)
	if err != nil {
		return nil, err
	}
	index, _, err := p.integer(1, true)
	if err != nil {
		return nil, err
	}
	if index < 1 {
		return nil, failf("The integer parameter at 1 has invalid value: the value must be greater than or equal to 1.")
	}
	del, _, err := p.strings(2, true)
	if err != nil {
		return nil, err
	}
	add, _, err := p.strings(3, true)
	if err != nil {
		return nil, err
	}
	if _, _, err := position(p, 4); err != nil {
		return nil, err
	}
	if stopped(statusOf(&j)) {
		return nil, failf("Cannot remove URIs from GID#%s", gid(j.ID))
	}
	if index > 1 {
		return nil, failf("fileIndex is out of range")
	}
	// As the job shows its sources: secrets hidden.
	have := slices.Clone(j.Sources)
	shown := func(u string) string {
		if a, err := addr.Parse(u); err == nil {
			return a.Redacted()
		}
		return u
	}
	var remove, fresh []string
	for _, u := range del {
		if i := slices.IndexFunc(have, func(h string) bool { return h == u || h == shown(u) }); i >= 0 {
			have = slices.Delete(have, i, i+1)
			remove = append(remove, u)
		}
	}
	for _, u := range add {
		if !slices.Contains(have, shown(u)) {
			have = append(have, shown(u))
			fresh = append(fresh, u)
		}
	}
	if len(have) > maxURIs {
		return nil, failf("%d URIs: one download takes at most %d", len(have), maxURIs)
	}
	if len(remove) > 0 || len(fresh) > 0 {
		if _, err := s.Queue.SetSources(ctx, j.ID, fresh, remove); err != nil {
			return nil, err
		}
	}
	return []int{len(remove), len(fresh)}, nil
}

// keys reads the optional list of keys at parameter i.
func keys(p params, i int) ([]string, error) {
	k, _, err := p.strings(i, false)
	return k, err
}

// tellStatus is aria2.tellStatus(gid[, keys]).
func (s *Server) tellStatus(ctx context.Context, p params) (any, error) {
	j, err := s.job(ctx, p, 0)
	if err != nil {
		return nil, err
	}
	k, err := keys(p, 1)
	if err != nil {
		return nil, err
	}
	return s.status(&j, k), nil
}

// getURIs is aria2.getUris(gid).
func (s *Server) getURIs(ctx context.Context, p params) (any, error) {
	j, err := s.job(ctx, p, 0)
	if err != nil {
		return nil, err
	}
	return uris(&j), nil
}

// getFiles is aria2.getFiles(gid): a job's one file.
func (s *Server) getFiles(ctx context.Context, p params) (any, error) {
	j, err := s.job(ctx, p, 0)
	if err != nil {
		return nil, err
	}
	return files(&j), nil
}

// getServers is aria2.getServers(gid), for an active download: the
// sources it downloads from now.
func (s *Server) getServers(ctx context.Context, p params) (any, error) {
	j, err := s.job(ctx, p, 0)
	if err != nil {
		return nil, err
	}
	if statusOf(&j) != statusActive {
		return nil, failf("No active download for GID#%s", gid(j.ID))
	}
	list := []map[string]string{}
	for _, src := range servers(&j) {
		list = append(list, map[string]string{"uri": src.Source, "currentUri": src.Source, "downloadSpeed": itoa(int64(src.Speed))})
	}
	return []map[string]any{{"index": "1", "servers": list}}, nil
}

// getPeers is aria2.getPeers(gid): BitTorrent's peers, of which an idmd
// download has none.
func (s *Server) getPeers(ctx context.Context, p params) (any, error) {
	if _, err := s.job(ctx, p, 0); err != nil {
		return nil, err
	}
	return []any{}, nil
}

// tellActive is aria2.tellActive([keys]).
func (s *Server) tellActive(ctx context.Context, p params) (any, error) {
	k, err := keys(p, 0)
	if err != nil {
		return nil, err
	}
	out := []map[string]any{}
	for _, j := range s.visible(ctx) {
		if statusOf(&j) == statusActive {
			out = append(out, s.status(&j, k))
		}
	}
	return out, nil
}

// tellWaiting is aria2.tellWaiting(offset, num[, keys]): the line of
// waiting and paused downloads.
func (s *Server) tellWaiting(ctx context.Context, p params) (any, error) {
	return s.page(p, s.Queue.Waiting(ctx))
}

// tellStopped is aria2.tellStopped(offset, num[, keys]): the stopped
// downloads, the least recently stopped first.
func (s *Server) tellStopped(ctx context.Context, p params) (any, error) {
	var list []api.Job
	for _, j := range s.visible(ctx) {
		if stopped(statusOf(&j)) {
			list = append(list, j)
		}
	}
	slices.SortFunc(list, byStop)
	return s.page(p, list)
}

// page answers tellWaiting and tellStopped: the part of list that offset
// and num say, as aria2 cuts it. A negative offset counts from the end,
// -1 the last, and the answer is then in reverse order.
func (s *Server) page(p params, list []api.Job) (any, error) {
	offset, _, err := p.integer(0, true)
	if err != nil {
		return nil, err
	}
	num, _, err := p.integer(1, true)
	if err != nil {
		return nil, err
	}
	if num < 0 {
		return nil, failf("The integer parameter at 1 has invalid value: the value must be greater than or equal to 0.")
	}
	k, err := keys(p, 2)
	if err != nil {
		return nil, err
	}
	from, to := paginate(offset, num, int64(len(list)))
	out := []map[string]any{}
	for i := from; i < to; i++ {
		out = append(out, s.status(&list[i], k))
	}
	if offset < 0 {
		slices.Reverse(out)
	}
	return out, nil
}

// paginate returns the range [from, to) of a list of size items that
// offset and num select, as aria2's getPaginationRange does.
func paginate(offset, num, size int64) (from, to int64) {
	if num <= 0 {
		return 0, 0
	}
	num = min(num, size+1) // no sum below overflows
	offset = max(offset, -size-1)
	if offset < 0 {
		last := offset + size
		if last < 0 {
			return 0, 0
		}
		offset = last - (num - 1)
		if offset < 0 {
			offset, num = 0, last+1
		}
	} else if size <= offset {
		return 0, 0
	}
	return offset, min(size, offset+num)
}

// getOption is aria2.getOption(gid).
func (s *Server) getOption(ctx context.Context, p params) (any, error) {
	j, err := s.job(ctx, p, 0)
	if err != nil {
		return nil, err
	}
	return options(&j), nil
}

// changeOption is aria2.changeOption(gid, options): of a download's
// options, idmd changes max-download-limit, at once; the others are
// ignored.
func (s *Server) changeOption(ctx context.Context, p params) (any, error) {
	j, err := s.job(ctx, p, 0)
	if err != nil {
		return nil, err
	}
	opts, _, err := p.object(1, true)
	if err != nil {
		return nil, err
	}
	if stopped(statusOf(&j)) {
		return nil, failf("Cannot change option for GID#%s", gid(j.ID))
	}
	if v, ok := option(opts, "max-download-limit"); ok {
		limit, err := parseSize("max-download-limit", v)
		if err != nil {
			return nil, err
		}
		if _, err := s.Queue.SetJobLimit(ctx, j.ID, limit); err != nil {
			return nil, err
		}
	}
	return "OK", nil
}

// getGlobalOption is aria2.getGlobalOption(): the options that apply to
// every download, as far as idmd has them. The secret is not one.
func (s *Server) getGlobalOption(ctx context.Context, _ params) (any, error) {
	port := ""
	if a, ok := s.listenAddr().(*net.TCPAddr); ok {
		port = strconv.Itoa(a.Port)
	}
	return map[string]string{
		"dir":                        s.defaultDir(),
		"max-concurrent-downloads":   strconv.Itoa(s.Queue.MaxActive()),
		"max-overall-download-limit": itoa(s.Queue.Limit()),
		"max-overall-upload-limit":   "0",
		"max-download-limit":         "0",
		"max-upload-limit":           "0",
		"continue":                   "true",
		"allow-overwrite":            "false",
		"auto-file-renaming":         "true",
		"enable-rpc":                 "true",
		"rpc-listen-port":            port,
		"rpc-listen-all":             strconv.FormatBool(!s.loopbackOnly()),
		"rpc-allow-origin-all":       "true",
		"rpc-max-request-size":       "2M",
		"user-agent":                 "idmd/" + s.Version,
	}, nil
}

// changeGlobalOption is aria2.changeGlobalOption(options): idmd changes
// dir (the default download directory, among the download directories),
// and, where s.GlobalChanges lets it, max-overall-download-limit and
// max-concurrent-downloads, until it stops. The options are checked
// before any changes. Others are ignored.
func (s *Server) changeGlobalOption(ctx context.Context, p params) (any, error) {
	opts, _, err := p.object(0, true)
	if err != nil {
		return nil, err
	}
	var changes []func() error
	if v, ok := option(opts, "dir"); ok {
		dir, err := s.downloadDir(v)
		if err != nil {
			return nil, err
		}
		changes = append(changes, func() error { s.setDefaultDir(dir); return nil })
	}
	// Not the caller's context: RPC callers have no privileges, and
	// GlobalChanges is where the daemon's owner grants this one.
	daemon := context.Background()
	if v, ok := option(opts, "max-overall-download-limit"); ok {
		limit, err := parseSize("max-overall-download-limit", v)
		if err == nil && !s.GlobalChanges {
			err = s.refuseGlobal("max-overall-download-limit", "idmctl limit RATE")
		}
		if err != nil {
			return nil, err
		}
		changes = append(changes, func() error { return s.Queue.SetLimit(daemon, limit) })
	}
	if v, ok := option(opts, "max-concurrent-downloads"); ok {
		n, err := wholeNumber("max-concurrent-downloads", v, 1, 1<<16)
		if err == nil && !s.GlobalChanges {
			err = s.refuseGlobal("max-concurrent-downloads", "idmd run --max-active N")
		}
		if err != nil {
			return nil, err
		}
		changes = append(changes, func() error { return s.Queue.SetMaxActive(daemon, int(n)) })
	}
	for _, c := range changes {
		if err := c(); err != nil {
			return nil, err
		}
	}
	return "OK", nil
}

// refuseGlobal refuses a change to what applies to every user's jobs.
func (s *Server) refuseGlobal(name, how string) error {
	return failf("%s is refused: it applies to every user's downloads, and on this idmd every member of its group may read the RPC secret; root or the daemon's user may change it (%s)", name, how)
}

// downloadDir checks that v, an absolute path or one in the default
// directory, is a download directory or in one, and returns it resolved.
func (s *Server) downloadDir(v string) (string, error) {
	if !filepath.IsAbs(v) {
		v = filepath.Join(s.defaultDir(), v)
	}
	dir, err := filepath.EvalSymlinks(filepath.Clean(v))
	if err != nil {
		return "", failf("dir %s cannot be used: %v", v, errors.Unwrap(err))
	}
	if !auth.WithinDirs(dir, s.Dirs) {
		return "", failf("dir %s is not one of idmd's download directories (%s): an RPC caller may download only into those and the directories in them", v, strings.Join(s.Dirs, ", "))
	}
	return dir, nil
}

// purgeDownloadResult is aria2.purgeDownloadResult: every stopped
// download the caller may see is forgotten; finished files are kept.
func (s *Server) purgeDownloadResult(ctx context.Context, _ params) (any, error) {
	for _, j := range s.visible(ctx) {
		if stopped(statusOf(&j)) {
			s.Queue.Remove(ctx, j.ID)
		}
	}
	return "OK", nil
}

// removeDownloadResult is aria2.removeDownloadResult(gid), for a stopped
// download: idmd forgets it; a finished file is kept.
func (s *Server) removeDownloadResult(ctx context.Context, p params) (any, error) {
	j, err := s.job(ctx, p, 0)
	if err != nil {
		return nil, err
	}
	if !stopped(statusOf(&j)) {
		return nil, failf("Could not remove download result of GID#%s", gid(j.ID))
	}
	if err := s.Queue.Remove(ctx, j.ID); err != nil {
		return nil, failf("Could not remove download result of GID#%s", gid(j.ID))
	}
	return "OK", nil
}

// getVersion is aria2.getVersion: the aria2 interface idmd answers, the
// features it has, and idmd's own version.
func (s *Server) getVersion(context.Context, params) (any, error) {
	return map[string]any{
		"version":         aria2Version,
		"enabledFeatures": []string{"HTTPS", "Message Digest", "Metalink"},
		"idmd":            s.Version,
	}, nil
}

// getSessionInfo is aria2.getSessionInfo: an ID made when the server
// started.
func (s *Server) getSessionInfo(context.Context, params) (any, error) {
	return map[string]string{"sessionId": s.sessionID}, nil
}

// shutdown is aria2.shutdown and aria2.forceShutdown, which idmd
// refuses: a service is stopped by its service manager, and a secret
// that every socket user may read must not stop everyone's downloads.
func (s *Server) shutdown(context.Context, params) (any, error) {
	return nil, failf("idmd does not stop over RPC: it is a service, stopped by its service manager (idmd stop, systemctl stop idmd) or SIGTERM")
}

// getGlobalStat is aria2.getGlobalStat: the caller's downloads counted,
// and their speed.
func (s *Server) getGlobalStat(ctx context.Context, _ params) (any, error) {
	var active, waiting, stoppedN, down int64
	for _, j := range s.visible(ctx) {
		switch st := statusOf(&j); {
		case st == statusActive:
			active++
			down += speed(&j)
		case stopped(st):
			stoppedN++
		default:
			waiting++
		}
	}
	return map[string]string{
		"downloadSpeed":   itoa(down),
		"uploadSpeed":     "0",
		"numActive":       itoa(active),
		"numWaiting":      itoa(waiting),
		"numStopped":      itoa(stoppedN),
		"numStoppedTotal": itoa(stoppedN),
	}, nil
}

// saveSession is aria2.saveSession: idmd writes every job as it changes,
// so there is nothing left to save.
func (s *Server) saveSession(context.Context, params) (any, error) { return "OK", nil }
