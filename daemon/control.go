package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/idmproject/idm/daemon/api"
	"github.com/idmproject/idm/daemon/auth"
	"github.com/idmproject/idm/daemon/socket"
)

// Version is idmd's version, set at build time with -ldflags.
var Version = "dev"

// maxBody bounds a request body; every body the API takes is small.
const maxBody = 1 << 20

// DefaultEventWriteTimeout is how long an event stream's client may leave
// a written event unread, its socket's buffer full, before it is dropped.
// A client that stopped reading costs the daemon little while it waits,
// and one that was merely slow reconnects.
const DefaultEventWriteTimeout = 5 * time.Second

// Server serves the control API over a listener, normally the daemon's
// Unix socket.
type Server struct {
	// Daemon does the work. Required.
	Daemon *Daemon
	// Access says who may use the API.
	Access auth.Access
	// StateDir is reported by /v1/version.
	StateDir string
	// Logger receives a line per state-changing request. Nil means
	// slog.Default().
	Logger *slog.Logger
	// EventWriteTimeout is how long writing one event to a stream may
	// make no progress before the stream is dropped as stalled. Zero
	// means DefaultEventWriteTimeout.
	EventWriteTimeout time.Duration

	http   *http.Server
	cancel context.CancelFunc
}

// apiError is what handlers return: a status, a code and a message.
type apiError struct {
	status int
	body   api.ErrorBody
}

func (e *apiError) Error() string { return e.body.Error }

func badRequest(format string, args ...any) error {
	return &apiError{http.StatusBadRequest, api.ErrorBody{Code: api.CodeBadRequest, Error: fmt.Sprintf(format, args...)}}
}

// handler is a route's function; its error goes to writeError.
type handler func(w http.ResponseWriter, r *http.Request) error

// routes is the whole API on one screen.
func (s *Server) routes() *http.ServeMux {
	mux := http.NewServeMux()
	for path, h := range map[string]handler{
		"/v1/version":          s.serveVersion,
		"/v1/jobs":             s.serveJobs,
		"/v1/jobs/{id}":        s.serveJob,
		"/v1/jobs/{id}/pause":  s.serveAction((*Daemon).Pause),
		"/v1/jobs/{id}/resume": s.serveAction((*Daemon).Resume),
		"/v1/jobs/{id}/cancel": s.serveAction((*Daemon).Cancel),
		"/v1/jobs/{id}/limit":  s.serveJobLimit,
		"/v1/jobs/{id}/events": s.serveJobEvents,
		"/v1/events":           s.serveEvents,
		"/v1/limit":            s.serveLimit,
		"/":                    s.serveNotFound,
	} {
		mux.Handle(path, s.wrap(h))
	}
	return mux
}

// wrap checks the caller's permission, runs h, and writes any error as
// the API's one error shape.
func (s *Server) wrap(h handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		peer, ok := auth.PeerFrom(r.Context())
		if ok && !s.Access.Allows(peer) {
			s.logger().Warn("refused a caller", "uid", peer.UID, "pid", peer.PID, "path", r.URL.Path)
			writeError(w, &apiError{http.StatusForbidden, api.ErrorBody{Code: api.CodeForbidden,
				Error: fmt.Sprintf("uid %d may not use this idmd: it is not root, the daemon's user, or in its group", peer.UID)}})
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			s.logger().Info("request", "method", r.Method, "path", r.URL.Path, "uid", peer.UID, "pid", peer.PID)
		}
		if err := h(w, r); err != nil {
			writeError(w, err)
		}
	})
}

// writeError maps an error to its status and writes the error body.
func writeError(w http.ResponseWriter, err error) {
	var ae *apiError
	if !errors.As(err, &ae) {
		ae = &apiError{http.StatusInternalServerError, api.ErrorBody{Code: api.CodeInternal, Error: err.Error()}}
		switch {
		case errors.Is(err, ErrNotFound):
			ae.status, ae.body.Code = http.StatusNotFound, api.CodeNotFound
		case errors.Is(err, auth.ErrDenied):
			ae.status, ae.body.Code = http.StatusForbidden, api.CodePermissionDenied
		case errors.Is(err, ErrInvalid):
			ae.status, ae.body.Code = http.StatusBadRequest, api.CodeBadRequest
		case errors.Is(err, ErrExists):
			ae.status, ae.body.Code = http.StatusConflict, api.CodeExists
			ae.body.Job, _ = ExistingJob(err)
		case errors.Is(err, ErrConflict):
			ae.status, ae.body.Code = http.StatusConflict, api.CodeConflict
		case errors.Is(err, errShutdown):
			ae.status = http.StatusServiceUnavailable
		}
	}
	writeJSON(w, ae.status, ae.body)
}

func writeJSON(w http.ResponseWriter, status int, v any) error {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	return json.NewEncoder(w).Encode(v)
}

// readJSON decodes a small body strictly: unknown fields and trailing
// data are errors.
func readJSON(r *http.Request, v any) error {
	dec := json.NewDecoder(io.LimitReader(r.Body, maxBody))
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

func methodNotAllowed(allowed ...string) error {
	return &apiError{http.StatusMethodNotAllowed, api.ErrorBody{Code: api.CodeMethod,
		Error: fmt.Sprintf("method not allowed; use %v", allowed)}}
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

func (s *Server) serveVersion(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodGet {
		return methodNotAllowed(http.MethodGet)
	}
	return writeJSON(w, http.StatusOK, api.Version{Version: Version, API: api.APIVersion, PID: os.Getpid(), StateDir: s.StateDir})
}

func (s *Server) serveJobs(w http.ResponseWriter, r *http.Request) error {
	switch r.Method {
	case http.MethodGet:
		jobs, err := s.Daemon.Jobs()
		if err != nil {
			return err
		}
		return writeJSON(w, http.StatusOK, jobs)
	case http.MethodPost:
		var req api.CreateRequest
		if err := readJSON(r, &req); err != nil {
			return err
		}
		j, created, err := s.Daemon.Create(r.Context(), req)
		if err != nil {
			return err
		}
		status := http.StatusOK // an existing job, resumed
		if created {
			status = http.StatusCreated
		}
		return writeJSON(w, status, j)
	}
	return methodNotAllowed(http.MethodGet, http.MethodPost)
}

func (s *Server) serveJob(w http.ResponseWriter, r *http.Request) error {
	id, err := jobID(r)
	if err != nil {
		return err
	}
	switch r.Method {
	case http.MethodGet:
		j, err := s.Daemon.Job(id)
		if err != nil {
			return err
		}
		return writeJSON(w, http.StatusOK, j)
	case http.MethodDelete:
		if err := s.Daemon.Remove(r.Context(), id); err != nil {
			return err
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	return methodNotAllowed(http.MethodGet, http.MethodDelete)
}

// serveAction serves POST /v1/jobs/{id}/<action>.
func (s *Server) serveAction(do func(*Daemon, context.Context, uint64) (api.Job, error)) handler {
	return func(w http.ResponseWriter, r *http.Request) error {
		id, err := jobID(r)
		if err != nil {
			return err
		}
		if r.Method != http.MethodPost {
			return methodNotAllowed(http.MethodPost)
		}
		j, err := do(s.Daemon, r.Context(), id)
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
	j, err := s.Daemon.SetJobLimit(r.Context(), id, req.Limit)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, j)
}

func (s *Server) serveLimit(w http.ResponseWriter, r *http.Request) error {
	switch r.Method {
	case http.MethodGet:
	case http.MethodPut:
		var req api.LimitRequest
		if err := readJSON(r, &req); err != nil {
			return err
		}
		if err := s.Daemon.SetLimit(r.Context(), req.Limit); err != nil {
			return err
		}
	default:
		return methodNotAllowed(http.MethodGet, http.MethodPut)
	}
	return writeJSON(w, http.StatusOK, api.LimitResponse{Limit: s.Daemon.Limit()})
}

func (s *Server) serveJobEvents(w http.ResponseWriter, r *http.Request) error {
	id, err := jobID(r)
	if err != nil {
		return err
	}
	return s.stream(w, r, id)
}

func (s *Server) serveEvents(w http.ResponseWriter, r *http.Request) error {
	return s.stream(w, r, 0)
}

// stream writes events as newline-delimited JSON, flushing each, until
// the client leaves, the daemon stops, (for one job) the job ends, or the
// client stops reading: a write that makes no progress for
// EventWriteTimeout, or falling more than 256 jobs behind, drops it.
func (s *Server) stream(w http.ResponseWriter, r *http.Request, id uint64) error {
	if r.Method != http.MethodGet {
		return methodNotAllowed(http.MethodGet)
	}
	sub, err := s.Daemon.Subscribe(id)
	if err != nil {
		return err
	}
	defer sub.Close()
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	timeout := s.eventWriteTimeout()
	// net/http ends the response after we return: that write gets a
	// deadline of its own, not what is left of the last event's.
	defer rc.SetWriteDeadline(time.Now().Add(timeout))
	// A shutdown ends a write blocked on a client that does not read.
	stop := context.AfterFunc(r.Context(), func() { rc.SetWriteDeadline(time.Now()) })
	defer stop()
	enc := json.NewEncoder(w)
	for {
		e, err := sub.Next(r.Context())
		if err != nil {
			if errors.Is(err, errFellBehind) {
				s.logger().Info("event stream dropped", "reason", err, "job", id)
			} else if !errors.Is(err, errShutdown) && r.Context().Err() == nil {
				s.logger().Error("event stream", "err", err)
			}
			return nil
		}
		rc.SetWriteDeadline(time.Now().Add(timeout))
		err = enc.Encode(e)
		if err == nil {
			err = rc.Flush()
		}
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) && r.Context().Err() == nil {
				s.logger().Info("event stream dropped", "reason", fmt.Sprintf("a write made no progress for %v", timeout), "job", id)
			}
			return nil
		}
		if id != 0 && (e.Type == api.EventRemoved || e.Job.Done()) {
			return nil
		}
	}
}

func (s *Server) eventWriteTimeout() time.Duration {
	if s.EventWriteTimeout > 0 {
		return s.EventWriteTimeout
	}
	return DefaultEventWriteTimeout
}

func (s *Server) logger() *slog.Logger {
	if s.Logger != nil {
		return s.Logger
	}
	return slog.Default()
}

// Serve answers the API on ln until Shutdown.
func (s *Server) Serve(ln net.Listener) error {
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	s.http = &http.Server{
		Handler:           s.routes(),
		ReadHeaderTimeout: 10 * time.Second,
		// Event streams end when this context does, so Shutdown does
		// not wait for watchers to leave.
		BaseContext: func(net.Listener) context.Context { return ctx },
		ConnContext: socket.ConnContext,
		ErrorLog:    slog.NewLogLogger(s.logger().Handler(), slog.LevelDebug),
	}
	err := s.http.Serve(ln)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Shutdown stops accepting requests, ends the event streams and waits for
// the requests under way, or for ctx.
func (s *Server) Shutdown(ctx context.Context) error {
	if s.http == nil {
		return nil
	}
	s.cancel()
	return s.http.Shutdown(ctx)
}
