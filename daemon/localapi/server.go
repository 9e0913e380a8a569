package localapi

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/idmproject/idm/daemon/api"
	"github.com/idmproject/idm/daemon/auth"
	"github.com/idmproject/idm/daemon/jobs"
	"github.com/idmproject/idm/daemon/socket"
)

// Version is idmd's version, set at build time with -ldflags.
var Version = "dev"

// Server serves the control API over a listener, normally the daemon's
// Unix socket.
type Server struct {
	// Queue does the work. Required.
	Queue *jobs.Queue
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
	// RPC is the aria2 RPC listener's address and secret, which GET
	// /v1/rpc tells every caller the socket admits; nil when it is off.
	RPC *api.RPC

	// mu guards the HTTP server, made by whichever of Serve and Shutdown
	// comes first, so that a Shutdown before Serve stops it too.
	mu     sync.Mutex
	http   *http.Server
	cancel context.CancelFunc // ends the requests' base context
}

// handler is a route's function; its error goes to writeError.
type handler func(w http.ResponseWriter, r *http.Request) error

// routes is the whole API on one screen.
func (s *Server) routes() *http.ServeMux {
	mux := http.NewServeMux()
	for path, h := range map[string]handler{
		"/v1/version":           s.serveVersion,
		"/v1/jobs":              s.serveJobs,
		"/v1/jobs/{id}":         s.serveJob,
		"/v1/metalinks":         s.serveMetalinks,
		"/v1/jobs/{id}/pause":   s.serveAction((*jobs.Queue).Pause),
		"/v1/jobs/{id}/resume":  s.serveAction((*jobs.Queue).Resume),
		"/v1/jobs/{id}/cancel":  s.serveAction((*jobs.Queue).Cancel),
		"/v1/jobs/{id}/limit":   s.serveJobLimit,
		"/v1/jobs/{id}/move":    s.serveMove,
		"/v1/line":              s.serveLine,
		"/v1/jobs/{id}/sources": s.serveSources,
		"/v1/jobs/{id}/events":  s.serveJobEvents,
		"/v1/events":            s.serveEvents,
		"/v1/limit":             s.serveLimit,
		"/v1/rpc":               s.serveRPC,
		"/":                     s.serveNotFound,
	} {
		mux.Handle(path, s.wrap(h))
	}
	return mux
}

// wrap checks the caller's permission, runs h, and writes any error as
// the API's one error shape.
func (s *Server) wrap(h handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		peer, known := auth.PeerFrom(r.Context())
		if err := s.Access.Check(r.Context()); err != nil {
			if known {
				s.logger().Warn("refused a caller", "uid", peer.UID, "pid", peer.PID, "path", r.URL.Path)
			} else {
				s.logger().Warn("refused a caller it could not identify", "path", r.URL.Path)
			}
			writeError(w, &apiError{http.StatusForbidden, api.ErrorBody{Code: api.CodeForbidden, Error: err.Error()}})
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

func (s *Server) logger() *slog.Logger {
	if s.Logger != nil {
		return s.Logger
	}
	return slog.Default()
}

// Serve answers the API on ln until Shutdown. After Shutdown, even one
// that came first, it closes ln and returns nil at once.
func (s *Server) Serve(ln net.Listener) error {
	hs, _ := s.server()
	err := hs.Serve(ln)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Shutdown stops accepting requests for good, ends the event streams and
// waits for the requests under way, or for ctx. It may come before
// Serve, or while Serve starts: Serve then serves nothing.
func (s *Server) Shutdown(ctx context.Context) error {
	hs, cancel := s.server()
	cancel()
	return hs.Shutdown(ctx)
}

// server returns the HTTP server and the function that ends its
// requests' base context, making them on first use.
func (s *Server) server() (*http.Server, context.CancelFunc) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.http == nil {
		ctx, cancel := context.WithCancel(context.Background())
		s.cancel = cancel
		s.http = &http.Server{
			Handler:           s.routes(),
			ReadHeaderTimeout: 10 * time.Second,
			// Event streams end when this context does, so Shutdown
			// does not wait for watchers to leave.
			BaseContext: func(net.Listener) context.Context { return ctx },
			ConnContext: socket.ConnContext,
			ErrorLog:    slog.NewLogLogger(s.logger().Handler(), slog.LevelDebug),
		}
	}
	return s.http, s.cancel
}
