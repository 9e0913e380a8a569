package transport

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// Server defaults.
const (
	// DefaultMaxConns is the default cap on a server's open connections.
	DefaultMaxConns = 64
	// DefaultIdleTimeout is how long a connection may sit between requests.
	DefaultIdleTimeout = 2 * time.Minute
	// DefaultWriteTimeout is how long a write may make no progress.
	DefaultWriteTimeout = 30 * time.Second
	// helloTimeout bounds the wait for a client's opening bytes.
	helloTimeout = 10 * time.Second
	// sendChunk is how much one sendfile call moves when there is no rate
	// limit; each chunk renews the write deadline.
	sendChunk = 1 << 20
)

// ErrRunning is returned by [Server.Start] on a server that is already up.
var ErrRunning = errors.New("server already running")

// Server is one virtual server: it serves one file over the idm protocol
// and HTTP on one listener. The exported fields are read by Start; change
// them only while the server is stopped. A Server is safe for concurrent
// use by its methods.
type Server struct {
	// Addr is the host:port to listen on.
	Addr string
	// Path is the file served. Each connection opens it anew and checks
	// that its size and modification time still match the manifest.
	Path string
	// Manifest describes the file at Path (see BuildManifest).
	Manifest *Manifest
	// Rate caps the bytes per second this server sends, over all its
	// connections together. Zero means no limit.
	Rate int64
	// MaxConns caps concurrent connections; one more is told it is busy.
	// Zero means DefaultMaxConns.
	MaxConns int
	// IdleTimeout is how long a connection may wait between requests.
	// Zero means DefaultIdleTimeout.
	IdleTimeout time.Duration
	// WriteTimeout is how long sending may make no progress before the
	// connection is dropped. Zero means DefaultWriteTimeout.
	WriteTimeout time.Duration
	// Logger receives a line for each malformed connection. Nil means
	// slog.Default().
	Logger *slog.Logger

	mu   sync.Mutex
	cur  *serving // nil while stopped
	sent atomic.Int64
}

// BytesSent returns how many bytes of file data the server has sent over
// the idm protocol since it was created, across restarts: what its clients
// fetched, whether they kept it or not.
func (s *Server) BytesSent() int64 { return s.sent.Load() }

// serving is the state of one Start..Stop period.
type serving struct {
	ln       net.Listener
	httpLn   *connQueue
	http     *http.Server
	manifest [Version + 1][]byte // encoded once per version
	etag     string              // the file's root, quoted
	digest   string              // Repr-Digest of the file; "" without SHA-256
	link     string              // Link to the file's Metalink; "" without one
	limiter  *rate.Limiter
	chunk    int
	ctx      context.Context // cancelled by Stop, to wake rate waits
	cancel   context.CancelFunc
	wg       sync.WaitGroup

	mu       sync.Mutex
	conns    map[net.Conn]struct{}
	draining bool
}

// Start listens on Addr and serves until Stop or Shutdown.
func (s *Server) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cur != nil {
		return ErrRunning
	}
	if s.Manifest == nil {
		return errors.New("server has no manifest")
	}
	var enc [Version + 1][]byte
	for v := MinVersion; v <= Version; v++ {
		b, err := s.Manifest.encode(v)
		if err != nil {
			return err
		}
		enc[v] = b
	}
	ln, err := net.Listen("tcp", s.Addr)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &serving{
		ln:       ln,
		httpLn:   newConnQueue(ln.Addr()),
		manifest: enc,
		etag:     `"` + s.Manifest.Root().String() + `"`,
		digest:   s.Manifest.ReprDigest(),
		ctx:      ctx,
		cancel:   cancel,
		conns:    make(map[net.Conn]struct{}),
		chunk:    sendChunk,
	}
	if r.digest != "" && s.Manifest.canDescribe() {
		r.link = describedBy(s.Manifest.Name)
	}
	if s.Rate > 0 {
		// Small chunks pace the stream evenly; the burst is one chunk so a
		// new connection cannot start with a backlog of tokens.
		r.chunk = int(min(max(s.Rate/50, 4<<10), 64<<10))
		r.limiter = rate.NewLimiter(rate.Limit(s.Rate), r.chunk)
	}
	r.http = &http.Server{
		Handler:           http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) { s.serveHTTP(r, w, req) }),
		ReadHeaderTimeout: helloTimeout,
		IdleTimeout:       s.idleTimeout(),
		ErrorLog:          slog.NewLogLogger(s.logger().Handler(), slog.LevelDebug),
	}
	r.wg.Add(2)
	go func() { defer r.wg.Done(); r.http.Serve(r.httpLn) }()
	go func() { defer r.wg.Done(); s.accept(r) }()
	s.cur = r
	return nil
}

// ListenAddr returns the address the server listens on, or nil while it
// is stopped. It tells the port chosen when Addr asked for port 0.
func (s *Server) ListenAddr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cur == nil {
		return nil
	}
	return s.cur.ln.Addr()
}

// Alive reports whether the server is running.
func (s *Server) Alive() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cur != nil
}

// Stop closes the listener and drops every open connection at once, as a
// crash would, and waits for the server's goroutines to end. Stopping a
// stopped server does nothing.
func (s *Server) Stop() {
	s.mu.Lock()
	r := s.cur
	s.cur = nil
	s.mu.Unlock()
	if r == nil {
		return
	}
	r.ln.Close()
	r.httpLn.Close()
	r.http.Close()
	r.cancel()
	r.mu.Lock()
	for c := range r.conns {
		c.Close()
	}
	r.mu.Unlock()
	r.wg.Wait()
}

// Shutdown stops accepting connections, lets every answer being sent
// finish, tells idle idm clients the server is shutting down, and returns
// when all connections are closed or ctx ends, whichever is first; then it
// stops the server as Stop does.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	r := s.cur
	s.mu.Unlock()
	if r == nil {
		return nil
	}
	r.ln.Close()
	r.mu.Lock()
	r.draining = true
	for c := range r.conns {
		// Wakes a connection waiting for its next request; one that is
		// sending is not reading and finishes first.
		c.SetReadDeadline(time.Now())
	}
	r.mu.Unlock()
	herr := r.http.Shutdown(ctx)
	done := make(chan struct{})
	go func() {
		for {
			r.mu.Lock()
			n := len(r.conns)
			r.mu.Unlock()
			if n == 0 || ctx.Err() != nil {
				close(done)
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	}()
	<-done
	s.Stop()
	if herr != nil {
		return herr
	}
	return ctx.Err()
}

func (s *Server) logger() *slog.Logger {
	if s.Logger != nil {
		return s.Logger
	}
	return slog.Default()
}

func (s *Server) idleTimeout() time.Duration {
	if s.IdleTimeout > 0 {
		return s.IdleTimeout
	}
	return DefaultIdleTimeout
}

func (s *Server) writeTimeout() time.Duration {
	if s.WriteTimeout > 0 {
		return s.WriteTimeout
	}
	return DefaultWriteTimeout
}

func (s *Server) maxConns() int {
	if s.MaxConns > 0 {
		return s.MaxConns
	}
	return DefaultMaxConns
}

func (s *Server) accept(r *serving) {
	var delay time.Duration
	for {
		c, err := r.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors and the like: wait a little, as
			// net/http does, rather than spin.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			s.logger().Warn("accept", "addr", s.Addr, "err", err)
			time.Sleep(delay)
			continue
		}
		delay = 0
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			s.handle(r, c)
		}()
	}
}

// track registers c as open and reports how many connections are, or
// false when the server is stopping.
func (r *serving) track(c net.Conn) (int, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ctx.Err() != nil {
		return 0, false
	}
	r.conns[c] = struct{}{}
	return len(r.conns), true
}

func (r *serving) untrack(c net.Conn) {
	r.mu.Lock()
	delete(r.conns, c)
	r.mu.Unlock()
}

func (r *serving) isDraining() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.draining
}

// handle decides from the first bytes whether c speaks idm or HTTP.
func (s *Server) handle(r *serving, c net.Conn) {
	n, ok := r.track(c)
	if !ok {
		c.Close()
		return
	}
	busy := n > s.maxConns()
	br := bufio.NewReaderSize(c, 4096)
	c.SetReadDeadline(time.Now().Add(helloTimeout))
	head, err := br.Peek(len(Magic))
	if err != nil {
		r.untrack(c)
		c.Close()
		return
	}
	if string(head) == Magic {
		defer r.untrack(c)
		defer c.Close()
		s.serveIDM(r, c, br, busy)
		return
	}
	pc := &peekedConn{Conn: c, r: br, done: func() { r.untrack(c) }}
	if busy {
		c.SetWriteDeadline(time.Now().Add(helloTimeout))
		io.WriteString(c, "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\nRetry-After: 1\r\n\r\n")
		pc.Close()
		return
	}
	c.SetReadDeadline(time.Time{})
	r.httpLn.push(pc)
}

// serveIDM runs the idm protocol on c until the client leaves, breaks
// the protocol, or the server stops.
func (s *Server) serveIDM(r *serving, c net.Conn, br *bufio.Reader, busy bool) {
	log := s.logger().With("addr", s.Addr, "peer", c.RemoteAddr().String())
	var hello [helloLen]byte
	if _, err := io.ReadFull(br, hello[:]); err != nil {
		return
	}
	fail := func(code ErrorCode, msg string) {
		c.SetWriteDeadline(time.Now().Add(s.writeTimeout()))
		c.Write(encodeError(&Error{Code: code, Message: msg}))
	}
	version := binary.BigEndian.Uint16(hello[len(Magic):])
	if version < MinVersion || version > Version {
		fail(CodeUnsupportedVersion, fmt.Sprintf("client speaks version %d, server speaks %d to %d", version, MinVersion, Version))
		return
	}
	if busy {
		fail(CodeBusy, fmt.Sprintf("%d connections open", s.maxConns()))
		return
	}
	reply := appendHeader(nil, frameHello, 2)
	reply = binary.BigEndian.AppendUint16(reply, version)
	c.SetWriteDeadline(time.Now().Add(s.writeTimeout()))
	if _, err := c.Write(reply); err != nil {
		return
	}
	var f *os.File
	defer func() {
		if f != nil {
			f.Close()
		}
	}()
	for {
		// The deadline is set before draining is checked: a Shutdown that
		// comes after the check then sets its own deadline after this one.
		c.SetReadDeadline(time.Now().Add(s.idleTimeout()))
		if r.isDraining() {
			fail(CodeShuttingDown, "")
			return
		}
		req, err := readRequest(br)
		if err != nil {
			var ne net.Error
			switch {
			case errors.Is(err, ErrProtocol):
				log.Warn("malformed request, closing connection", "err", err)
				fail(CodeBadRequest, err.Error())
			case errors.As(err, &ne) && ne.Timeout() && r.isDraining():
				fail(CodeShuttingDown, "")
			}
			return
		}
		c.SetWriteDeadline(time.Now().Add(s.writeTimeout()))
		switch req.typ {
		case frameManifestReq:
			// Header and manifest in one writev, without copying a
			// manifest that may be 32 MiB for every client that asks.
			enc := r.manifest[version]
			bufs := net.Buffers{appendHeader(nil, frameManifest, len(enc)), enc}
			if _, err := bufs.WriteTo(c); err != nil {
				return
			}
		case frameRangeReq:
			if req.n > MaxRangeLen || req.off+req.n > s.Manifest.Size {
				msg := fmt.Sprintf("range %d+%d, file has %d bytes, at most %d per request", req.off, req.n, s.Manifest.Size, MaxRangeLen)
				if _, err := c.Write(encodeError(&Error{Code: CodeOutOfRange, Message: msg})); err != nil {
					return
				}
				continue
			}
			if f == nil {
				if f, err = s.open(); err != nil {
					log.Error("open served file", "err", err)
					fail(CodeInternal, err.Error())
					return
				}
			}
			if err := s.sendRange(r, c, f, req.off, req.n); err != nil {
				if !errors.Is(err, net.ErrClosed) && r.ctx.Err() == nil {
					log.Debug("send range", "off", req.off, "len", req.n, "err", err)
				}
				return
			}
		}
	}
}

// sendRange writes a data frame with the file's bytes [off, off+n). The
// bytes go from the file to the socket with sendfile: io.Copy of a
// LimitReader over an *os.File into a *net.TCPConn takes that path.
func (s *Server) sendRange(r *serving, c net.Conn, f *os.File, off, n int64) error {
	if _, err := c.Write(appendHeader(nil, frameData, int(n))); err != nil {
		return err
	}
	if _, err := f.Seek(off, io.SeekStart); err != nil {
		return err
	}
	for n > 0 {
		k := min(n, int64(r.chunk))
		if r.limiter != nil {
			if err := r.limiter.WaitN(r.ctx, int(k)); err != nil {
				return err
			}
		}
		c.SetWriteDeadline(time.Now().Add(s.writeTimeout()))
		w, err := io.Copy(c, io.LimitReader(f, k))
		s.sent.Add(w)
		if err != nil {
			return err
		}
		if w != k {
			return fmt.Errorf("file ended at %d: %w", off+w, io.ErrUnexpectedEOF)
		}
		off += k
		n -= k
	}
	return nil
}

// open opens the served file and checks it is still the one the manifest
// describes.
func (s *Server) open() (*os.File, error) {
	f, err := os.Open(s.Path)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err == nil && (fi.Size() != s.Manifest.Size || !fi.ModTime().Equal(s.Manifest.ModTime)) {
		err = fmt.Errorf("%s changed since the server started", s.Path)
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// serveHTTP answers GET and HEAD for / and /<name>, with single and
// multiple byte ranges, through http.ServeContent; and, when the manifest
// has SHA-256 hashes, for /<name>.meta4, the file's Metalink. The file's
// answers then say its SHA-256 in Repr-Digest (the whole file's, for a
// range too: RFC 9530) and link to the Metalink.
func (s *Server) serveHTTP(r *serving, w http.ResponseWriter, req *http.Request) {
	if req.Method != http.MethodGet && req.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	if req.URL.Path != "/" && req.URL.Path != "/"+s.Manifest.Name {
		// The file's own name comes first: a file called x.meta4 is
		// served at /x.meta4, and its Metalink at /x.meta4.meta4.
		if r.link != "" && req.URL.Path == "/"+s.Manifest.Name+Meta4Suffix {
			s.serveMeta4(r, w, req)
			return
		}
		http.NotFound(w, req)
		return
	}
	f, err := s.open()
	if err != nil {
		s.logger().Error("open served file", "addr", s.Addr, "err", err)
		http.Error(w, "cannot read the file", http.StatusInternalServerError)
		return
	}
	defer f.Close()
	h := w.Header()
	h.Set("ETag", r.etag)
	if r.digest != "" {
		h.Set("Repr-Digest", r.digest)
	}
	if r.link != "" {
		h.Set("Link", r.link)
	}
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": s.Manifest.Name}))
	var content io.ReadSeeker = f // sendfile when unthrottled
	if r.limiter != nil {
		content = &throttled{f: f, r: r}
	}
	http.ServeContent(w, req, s.Manifest.Name, s.Manifest.ModTime, content)
}

// throttled paces reads of f by the server's rate limiter.
type throttled struct {
	f *os.File
	r *serving
}

func (t *throttled) Read(p []byte) (int, error) {
	p = p[:min(len(p), t.r.chunk)]
	if err := t.r.limiter.WaitN(t.r.ctx, len(p)); err != nil {
		return 0, err
	}
	return t.f.Read(p)
}

func (t *throttled) Seek(off int64, whence int) (int64, error) { return t.f.Seek(off, whence) }

// peekedConn is a connection whose first bytes were read into r to decide
// its protocol; reads come from r. ReadFrom goes to the socket itself, so
// net/http still reaches sendfile.
type peekedConn struct {
	net.Conn
	r    *bufio.Reader
	once sync.Once
	done func()
}

func (c *peekedConn) Read(p []byte) (int, error) { return c.r.Read(p) }

func (c *peekedConn) ReadFrom(src io.Reader) (int64, error) {
	if rf, ok := c.Conn.(io.ReaderFrom); ok {
		return rf.ReadFrom(src)
	}
	return io.Copy(struct{ io.Writer }{c.Conn}, src)
}

func (c *peekedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.done)
	return err
}

// connQueue is a net.Listener fed with connections already accepted, so
// net/http serves the ones that turned out to speak HTTP.
type connQueue struct {
	addr   net.Addr
	ch     chan net.Conn
	closed chan struct{}
	once   sync.Once
}

func newConnQueue(addr net.Addr) *connQueue {
	return &connQueue{addr: addr, ch: make(chan net.Conn), closed: make(chan struct{})}
}

func (q *connQueue) push(c net.Conn) {
	select {
	case q.ch <- c:
	case <-q.closed:
		c.Close()
	}
}

func (q *connQueue) Accept() (net.Conn, error) {
	select {
	case c := <-q.ch:
		return c, nil
	case <-q.closed:
		return nil, net.ErrClosed
	}
}

func (q *connQueue) Close() error {
	q.once.Do(func() { close(q.closed) })
	return nil
}

func (q *connQueue) Addr() net.Addr { return q.addr }
