package aria2rpc

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/idmproject/idm/daemon/jobs"
)

// Bounds on what callers send and hold.
const (
	// maxBody bounds a request: a POST's body, a GET's decoded params, a
	// WebSocket message. aria2's --rpc-max-request-size is 2M too.
	maxBody = 2 << 20
	// maxBatch bounds the calls of a batch and of a system.multicall.
	maxBatch = 1000
	// maxDepth bounds how deep a request's JSON nests, as aria2's.
	maxDepth = 100
	// maxConns bounds the connections open at once, of every kind.
	maxConns = 128
	// DefaultMaxWebSockets is how many WebSocket connections may be open
	// at once by default.
	DefaultMaxWebSockets = 64
	// unauthorizedDelay holds back an HTTP answer with a wrong secret in
	// it, as aria2 does: a client that polls with one polls slowly.
	unauthorizedDelay = time.Second
)

// Server answers aria2's JSON-RPC at /jsonrpc. Its zero value is not
// usable: Queue, Secret and Dirs are required.
type Server struct {
	// Queue does the work.
	Queue *jobs.Queue
	// Secret is what every call carries as "token:SECRET". Serve refuses
	// to start without one.
	Secret string
	// Dirs are the daemon's download directories: an RPC caller may
	// download only into them and the directories in them. Dirs[0] is
	// the default, until changeGlobalOption's dir changes it.
	Dirs []string
	// GlobalChanges lets RPC callers change what applies to every job:
	// max-overall-download-limit and max-concurrent-downloads. Set it only
	// where whoever may read the secret may change those: a daemon that
	// admits no user but its own and root. The danger: on a system
	// daemon, any member of its group could slow everyone's downloads.
	GlobalChanges bool
	// Version is idmd's version, which getVersion reports beside the
	// aria2 interface's.
	Version string
	// Logger receives refusals and failures. Nil means slog.Default().
	Logger *slog.Logger
	// MaxWebSockets bounds the WebSocket connections open at once (0:
	// DefaultMaxWebSockets); one more is answered 503.
	MaxWebSockets int

	// mu guards what follows; the HTTP server and the rest are made by
	// whichever of Serve and Shutdown comes first.
	mu        sync.Mutex
	http      *http.Server
	ctx       context.Context // ends the requests, the WebSockets and watch
	cancel    context.CancelFunc
	watching  bool
	wg        sync.WaitGroup // the WebSocket connections and watch
	addr      net.Addr
	loopback  bool
	dir       string // the default download directory
	sessionID string
	guard     *guard
	conns     map[*wsConn]struct{}
	wsSlots   chan struct{}
}

func (s *Server) logger() *slog.Logger { return cmp.Or(s.Logger, slog.Default()) }

// init makes the HTTP server and the rest on first use, and returns it.
func (s *Server) init() *http.Server {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.http != nil {
		return s.http
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.guard = newGuard(s.Secret)
	s.conns = map[*wsConn]struct{}{}
	s.wsSlots = make(chan struct{}, cmp.Or(s.MaxWebSockets, DefaultMaxWebSockets))
	if len(s.Dirs) > 0 {
		s.dir = s.Dirs[0]
	}
	id := make([]byte, 20)
	rand.Read(id)
	s.sessionID = hex.EncodeToString(id)
	mux := http.NewServeMux()
	mux.HandleFunc("/jsonrpc", s.serveRPC)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Access-Control-Allow-Origin", "*")
		http.Error(w, "404 page not found: aria2's JSON-RPC is at /jsonrpc", http.StatusNotFound)
	})
	s.http = &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		// A body is read within 30 s, as aria2 reads it; a WebSocket's
		// deadlines go when it is taken over.
		ReadTimeout:    30 * time.Second,
		WriteTimeout:   time.Minute,
		IdleTimeout:    2 * time.Minute,
		MaxHeaderBytes: 64 << 10,
		BaseContext:    func(net.Listener) context.Context { return s.ctx },
		ErrorLog:       slog.NewLogLogger(s.logger().Handler(), slog.LevelDebug),
	}
	return s.http
}

// Serve answers on ln until Shutdown, and follows the job queue's events
// for the WebSocket clients' notifications meanwhile. After Shutdown,
// even one that came first, it closes ln and returns nil at once.
func (s *Server) Serve(ln net.Listener) error {
	if s.Secret == "" || s.Queue == nil || len(s.Dirs) == 0 {
		ln.Close()
		return errors.New("aria2 RPC: a secret, the job queue and a download directory are required")
	}
	hs := s.init()
	s.mu.Lock()
	s.addr = ln.Addr()
	s.loopback = isLoopback(ln.Addr())
	if !s.watching && s.ctx.Err() == nil {
		s.watching = true
		s.wg.Go(func() { s.watch(s.ctx) })
	}
	s.mu.Unlock()
	err := hs.Serve(limitListener(ln, maxConns))
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Shutdown stops accepting requests for good, closes the WebSocket
// connections and waits for the requests under way and for the end of
// the notifications, or for ctx.
func (s *Server) Shutdown(ctx context.Context) error {
	hs := s.init()
	s.mu.Lock()
	s.cancel() // under mu: no WebSocket is counted after this
	s.mu.Unlock()
	err := hs.Shutdown(ctx)
	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		err = cmp.Or(err, ctx.Err())
	}
	return err
}

func (s *Server) listenAddr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addr
}

func (s *Server) loopbackOnly() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.loopback
}

func (s *Server) defaultDir() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.dir
}

func (s *Server) setDefaultDir(dir string) {
	s.mu.Lock()
	s.dir = dir
	s.mu.Unlock()
	s.logger().Info("default download directory set over RPC", "dir", dir)
}

// isLoopback reports whether a is a loopback address.
func isLoopback(a net.Addr) bool {
	ap, err := netip.ParseAddrPort(a.String())
	return err == nil && ap.Addr().Unmap().IsLoopback()
}

// remoteAddr is the address a request came from.
func remoteAddr(r *http.Request) netip.Addr {
	ap, _ := netip.ParseAddrPort(r.RemoteAddr)
	return ap.Addr().Unmap()
}

// hostAllowed reports whether a request to host may be answered. On a
// loopback listener only a loopback name or address is: a page whose
// name an attacker pointed at 127.0.0.1 (DNS rebinding) is refused
// before its secret is even looked at.
func (s *Server) hostAllowed(host string) bool {
	if !s.loopbackOnly() {
		return true
	}
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if a, err := netip.ParseAddr(host); err == nil {
		return a.Unmap().IsLoopback()
	}
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	return host == "localhost" || strings.HasSuffix(host, ".localhost")
}

// serveRPC answers /jsonrpc: CORS preflights, POST, GET and WebSocket.
func (s *Server) serveRPC(w http.ResponseWriter, r *http.Request) {
	// Any origin may call: the secret gates every call, and a page on
	// another origin cannot read it (docs/aria2-rpc.md).
	w.Header().Set("Access-Control-Allow-Origin", "*")
	if !s.hostAllowed(r.Host) {
		s.logger().Warn("refused an RPC request for a host that is not loopback", "host", r.Host, "from", r.RemoteAddr)
		s.reply(w, marshal(&response{Error: failf("Host %q refused: idmd listens on loopback and answers only loopback names, against DNS rebinding", r.Host)}), http.StatusForbidden, "")
		return
	}
	switch r.Method {
	case http.MethodOptions:
		s.preflight(w, r)
	case http.MethodGet:
		if strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
			s.serveWebSocket(w, r)
			return
		}
		s.serveGet(w, r)
	case http.MethodPost:
		s.servePost(w, r)
	default:
		w.Header().Set("Allow", "GET, POST, OPTIONS")
		s.reply(w, marshal(&response{Error: errInvalidRequest}), http.StatusMethodNotAllowed, "")
	}
}

// headerList is what a preflight may ask for: header names.
var headerList = regexp.MustCompile(`^[A-Za-z0-9!#$%&'*+.^_|~-]+(\s*,\s*[A-Za-z0-9!#$%&'*+.^_|~-]+)*$`)

// preflight answers a CORS preflight as aria2 does: the methods, every
// header asked for, and a day's worth of caching.
func (s *Server) preflight(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	if r.Header.Get("Origin") != "" && r.Header.Get("Access-Control-Request-Method") != "" {
		h.Set("Access-Control-Allow-Methods", "POST, GET, OPTIONS")
		h.Set("Access-Control-Max-Age", "1728000")
		if asked := r.Header.Get("Access-Control-Request-Headers"); len(asked) <= 1024 && headerList.MatchString(asked) {
			h.Set("Access-Control-Allow-Headers", asked)
		}
	}
	h.Set("Content-Length", "0")
	w.WriteHeader(http.StatusOK)
}

// tooLarge is the answer to a request over maxBody.
func tooLarge() []byte {
	return marshal(&response{Error: &rpcError{codeInvalidRequest, fmt.Sprintf("Invalid Request: larger than %d bytes.", maxBody)}})
}

// servePost answers a POST: its body is the request.
func (s *Server) servePost(w http.ResponseWriter, r *http.Request) {
	if r.ContentLength > maxBody {
		// Not read: the connection closes after the answer.
		w.Header().Set("Connection", "close")
		s.reply(w, tooLarge(), http.StatusRequestEntityTooLarge, "")
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		s.reply(w, tooLarge(), http.StatusRequestEntityTooLarge, "")
		return
	case err != nil:
		s.logger().Debug("RPC request body not read", "from", r.RemoteAddr, "err", err)
		return
	}
	s.run(w, r, body, "")
}

// callbackName is what a JSONP callback may be called: a JavaScript name
// or a dotted path of them, nothing that could be code.
var callbackName = regexp.MustCompile(`^[A-Za-z_$][A-Za-z0-9_$]*(\.[A-Za-z_$][A-Za-z0-9_$]*)*$`)

// serveGet answers a GET as aria2 does: method, id and base64 params in
// the query make one call; params alone hold a whole request, a batch
// among them; jsoncallback asks for JSONP.
func (s *Server) serveGet(w http.ResponseWriter, r *http.Request) {
	if len(r.URL.RawQuery) > 3*maxBody {
		s.reply(w, tooLarge(), http.StatusRequestEntityTooLarge, "")
		return
	}
	q := queryValues(r.URL.RawQuery)
	callback := q["jsoncallback"]
	if callback != "" && (len(callback) > 128 || !callbackName.MatchString(callback)) {
		s.reply(w, marshal(&response{Error: &rpcError{codeInvalidRequest, "Invalid Request: jsoncallback must be a JavaScript name."}}), http.StatusBadRequest, "")
		return
	}
	params, err := decodeBase64(q["params"])
	if err != nil {
		s.reply(w, marshal(&response{Error: errParse}), http.StatusInternalServerError, callback)
		return
	}
	method, id := q["method"], q["id"]
	body := params
	if method != "" || id != "" {
		// method and id are strings, whatever they hold, as aria2 has it.
		call := map[string]any{"method": method, "id": id}
		if len(params) > 0 {
			call["params"] = json.RawMessage(params)
		}
		if body, err = json.Marshal(call); err != nil {
			s.reply(w, marshal(&response{Error: errParse}), http.StatusInternalServerError, callback)
			return
		}
	}
	s.run(w, r, body, callback)
}

// queryValues reads a GET's query as aria2 does: the last value of each
// name, percent-decoded, a '+' left a '+' (base64 has them, and clients
// leave them as they are).
func queryValues(raw string) map[string]string {
	out := map[string]string{}
	for part := range strings.SplitSeq(raw, "&") {
		name, value, _ := strings.Cut(part, "=")
		if v, err := url.PathUnescape(value); err == nil {
			value = v
		}
		out[name] = value
	}
	return out
}

// decodeBase64 decodes a GET's params, padded or not, in either of
// base64's alphabets.
func decodeBase64(v string) ([]byte, error) {
	var err error
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		var b []byte
		if b, err = enc.DecodeString(v); err == nil {
			return b, nil
		}
	}
	return nil, err
}

// run answers the request in body, after a second when it held a wrong
// secret, as aria2 answers then.
func (s *Server) run(w http.ResponseWriter, r *http.Request, body []byte, callback string) {
	ex := &exchange{from: remoteAddr(r)}
	out, status := s.answer(r.Context(), ex, body)
	if ex.unauthorized {
		select {
		case <-time.After(unauthorizedDelay):
		case <-r.Context().Done():
			return
		}
	}
	s.reply(w, out, status, callback)
}

// reply writes an answer, wrapped in callback's call for JSONP.
func (s *Server) reply(w http.ResponseWriter, out []byte, status int, callback string) {
	h := w.Header()
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	if callback != "" {
		h.Set("Content-Type", "text/javascript")
		w.WriteHeader(status)
		io.WriteString(w, callback+"(")
		w.Write(out)
		io.WriteString(w, ")")
		return
	}
	h.Set("Content-Type", "application/json-rpc")
	w.WriteHeader(status)
	w.Write(out)
}
