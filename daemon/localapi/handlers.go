package localapi

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"

	"github.com/idmproject/idm/daemon/api"
	"github.com/idmproject/idm/daemon/auth"
	"github.com/idmproject/idm/daemon/jobs"
	"github.com/idmproject/idm/transport/metalink"
)

// maxBody bounds a request body; every body the API takes is small but
// a Metalink's, which has a bound of its own.
const maxBody = 1 << 20

// maxMetalinkBody bounds the body of POST /v1/metalinks: the largest
// Metalink document, escaped in a JSON string, and the request around it.
const maxMetalinkBody = 2*metalink.MaxSize + maxBody

func writeJSON(w http.ResponseWriter, status int, v any) error {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	return json.NewEncoder(w).Encode(v)
}

// readJSON decodes a small body strictly: unknown fields and trailing
// data are errors.
func readJSON(r *http.Request, v any) error { return readJSONMax(r, v, maxBody) }

// readJSONMax is readJSON for a body of at most max bytes.
func readJSONMax(r *http.Request, v any, max int64) error {
	dec := json.NewDecoder(io.LimitReader(r.Body, max))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return badRequest("malformed JSON body: %v", err)
	}
	// More would miss a stray '}' or ']'; only the end of the body may
	// follow the value.
	switch _, err := dec.Token(); {
	case err == nil:
		return badRequest("malformed JSON body: more than one value")
	case err != io.EOF:
		return badRequest("malformed JSON body: data after the value: %v", err)
	}
	return nil
}

func jobID(r *http.Request) (uint64, error) {
	id, err := strconv.ParseUint(r.PathValue("id"), 10, 64)
	if err != nil || id == 0 {
		return 0, &apiError{http.StatusNotFound, api.ErrorBody{Code: api.CodeNotFound, Error: fmt.Sprintf("no such job: %q", r.PathValue("id"))}}
	}
	return id, nil
}

func (s *Server) serveNotFound(w http.ResponseWriter, r *http.Request) error {
	return &apiError{http.StatusNotFound, api.ErrorBody{Code: api.CodeNotFound, Error: "no such route: " + r.URL.Path}}
}

// serveRPC tells where the aria2 RPC listens and its secret. Every caller
// the socket admits may read it: the RPC acts with the least rights of
// them all (see docs/api.md).
func (s *Server) serveRPC(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodGet {
		return methodNotAllowed(http.MethodGet)
	}
	if s.RPC == nil {
		return &apiError{http.StatusNotFound, api.ErrorBody{Code: api.CodeNotFound, Error: "the aria2 RPC listener is off: start idmd with --rpc-listen ADDR"}}
	}
	peer, _ := auth.PeerFrom(r.Context())
	s.logger().Info("RPC secret read", "uid", peer.UID, "pid", peer.PID)
	return writeJSON(w, http.StatusOK, s.RPC)
}

func (s *Server) serveVersion(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodGet {
		return methodNotAllowed(http.MethodGet)
	}
	return writeJSON(w, http.StatusOK, api.Version{Version: Version, API: api.APIVersion, PID: os.Getpid(), StateDir: s.StateDir})
}

func (s *Server) serveJobs(w http.ResponseWriter, r *http.Request) error {
	switch r.Method {
	case http.MethodGet:
		return s.listJobs(w, r)
	case http.MethodPost:
		var req api.CreateRequest
		if err := readJSON(r, &req); err != nil {
			return err
		}
		j, created, err := s.Queue.Create(r.Context(), req)
		if err != nil {
			return err
		}
		return writeJSON(w, createdStatus(created), j)
	}
	return methodNotAllowed(http.MethodGet, http.MethodPost)
}

// createdStatus is the status of a create request's answer: an existing
// job, resumed, is no new one.
func createdStatus(created bool) int {
	if created {
		return http.StatusCreated
	}
	return http.StatusOK
}

func (s *Server) serveSources(w http.ResponseWriter, r *http.Request) error {
	id, err := jobID(r)
	if err != nil {
		return err
	}
	if r.Method != http.MethodPost {
		return methodNotAllowed(http.MethodPost)
	}
	var req api.SourcesRequest
	if err := readJSON(r, &req); err != nil {
		return err
	}
	j, err := s.Queue.SetSources(r.Context(), id, req.Add, req.Remove)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, j)
}

func (s *Server) serveMetalinks(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodPost {
		return methodNotAllowed(http.MethodPost)
	}
	var req api.MetalinkRequest
	if err := readJSONMax(r, &req, maxMetalinkBody); err != nil {
		return err
	}
	js, created, err := s.Queue.CreateMetalink(r.Context(), req)
	if err != nil {
		return err
	}
	return writeJSON(w, createdStatus(created), js)
}

func (s *Server) serveJob(w http.ResponseWriter, r *http.Request) error {
	id, err := jobID(r)
	if err != nil {
		return err
	}
	switch r.Method {
	case http.MethodGet:
		j, err := s.Queue.Job(id)
		if err != nil {
			return err
		}
		return writeJSON(w, http.StatusOK, j)
	case http.MethodDelete:
		if err := s.Queue.Remove(r.Context(), id); err != nil {
			return err
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	return methodNotAllowed(http.MethodGet, http.MethodDelete)
}

// serveAction serves POST /v1/jobs/{id}/<action>.
func (s *Server) serveAction(do func(*jobs.Queue, context.Context, uint64) (api.Job, error)) handler {
	return func(w http.ResponseWriter, r *http.Request) error {
		id, err := jobID(r)
		if err != nil {
			return err
		}
		if r.Method != http.MethodPost {
			return methodNotAllowed(http.MethodPost)
		}
		j, err := do(s.Queue, r.Context(), id)
		if err != nil {
			return err
		}
		return writeJSON(w, http.StatusOK, j)
	}
}

func (s *Server) serveJobLimit(w http.ResponseWriter, r *http.Request) error {
	id, err := jobID(r)
	if err != nil {
		return err
	}
	if r.Method != http.MethodPut {
		return methodNotAllowed(http.MethodPut)
	}
	var req api.LimitRequest
	if err := readJSON(r, &req); err != nil {
		return err
	}
	j, err := s.Queue.SetJobLimit(r.Context(), id, req.Limit)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, j)
}

// whence names the places a move counts from, as MoveRequest.From.
var whence = map[string]jobs.Whence{"": jobs.FromStart, "start": jobs.FromStart, "current": jobs.FromCurrent, "end": jobs.FromEnd}

func (s *Server) serveMove(w http.ResponseWriter, r *http.Request) error {
	id, err := jobID(r)
	if err != nil {
		return err
	}
	if r.Method != http.MethodPost {
		return methodNotAllowed(http.MethodPost)
	}
	var req api.MoveRequest
	if err := readJSON(r, &req); err != nil {
		return err
	}
	from, ok := whence[req.From]
	if !ok {
		return badRequest("from %q: want start, current or end", req.From)
	}
	pos, err := s.Queue.Move(r.Context(), id, req.Position, from)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, api.MoveResponse{Position: pos})
}

// serveLine answers the line of waiting jobs the caller may change, in
// the order they start, in brief.
func (s *Server) serveLine(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodGet {
		return methodNotAllowed(http.MethodGet)
	}
	line := s.Queue.Waiting(r.Context())
	out := make([]api.JobSummary, len(line))
	for i := range line {
		out[i] = line[i].Summary()
	}
	return writeJSON(w, http.StatusOK, out)
}

func (s *Server) serveLimit(w http.ResponseWriter, r *http.Request) error {
	switch r.Method {
	case http.MethodGet:
	case http.MethodPut:
		var req api.LimitRequest
		if err := readJSON(r, &req); err != nil {
			return err
		}
		if err := s.Queue.SetLimit(r.Context(), req.Limit); err != nil {
			return err
		}
	default:
		return methodNotAllowed(http.MethodGet, http.MethodPut)
	}
	return writeJSON(w, http.StatusOK, api.LimitResponse{Limit: s.Queue.Limit()})
}

// listPage is how many jobs listJobs renders at a time.
const listPage = 256

// listJobs writes every job, or every job's summary with view=summary,
// as one JSON array, a page at a time: a list of 10,000 jobs is never
// held whole, in rendered jobs or in JSON.
func (s *Server) listJobs(w http.ResponseWriter, r *http.Request) error {
	var brief bool
	switch v := r.URL.Query().Get("view"); v {
	case "", "full":
	case "summary":
		brief = true
	default:
		return badRequest("view %q: want full or summary", v)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	bw := bufio.NewWriterSize(w, 64<<10)
	bw.WriteByte('[')
	var after uint64
	for first := true; ; {
		page := s.Queue.List(after, listPage)
		if len(page) == 0 {
			break
		}
		for i := range page {
			var b []byte
			var err error
			if brief {
				b, err = json.Marshal(page[i].Summary())
			} else {
				b, err = json.Marshal(&page[i])
			}
			if err != nil {
				return err
			}
			if !first {
				bw.WriteByte(',')
			}
			first = false
			bw.Write(b)
		}
		after = page[len(page)-1].ID
	}
	bw.WriteString("]\n")
	return bw.Flush()
}
