package ctl

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"syscall"

	"github.com/idmproject/idm/daemon/api"
)

// Version is idmctl's version, set at build time with -ldflags.
var Version = "dev"

// baseURL is the scheme and host of every request; the host is a label
// only, since every connection goes to the socket.
const baseURL = "http://idmd"

// maxErrorBody bounds how much of an error answer is read.
const maxErrorBody = 64 << 10

// Client talks to idmd's control API over its Unix socket. The zero value
// is ready to use and finds the default socket. A Client is safe for
// concurrent use and must not be copied after first use.
type Client struct {
	// Socket is the control socket's path. Empty means
	// api.DefaultSocket(): $IDMD_SOCKET, the system socket for root, or
	// the per-user one; a user with no daemon of their own gets the
	// system socket.
	Socket string

	once sync.Once
	hc   *http.Client
}

// SocketPath returns the path of the socket the client connects to.
func (c *Client) SocketPath() string {
	if c.Socket != "" {
		return c.Socket
	}
	return defaultSocket()
}

func (c *Client) httpClient() *http.Client {
	c.once.Do(func() {
		// No timeout here: event streams last as long as their context.
		c.hc = &http.Client{Transport: &http.Transport{
			DialContext:  c.dial,
			MaxIdleConns: 2,
		}}
	})
	return c.hc
}

// dial connects to the socket whatever address the transport asks for,
// and marks the failures that mean nobody is listening.
func (c *Client) dial(ctx context.Context, _, _ string) (net.Conn, error) {
	sock := c.SocketPath()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", sock)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ECONNREFUSED) {
			return nil, &notRunningError{socket: sock, err: err}
		}
		return nil, err
	}
	return conn, nil
}

// Version returns the daemon's version and API version.
func (c *Client) Version(ctx context.Context) (*api.Version, error) {
	var v api.Version
	if err := c.do(ctx, http.MethodGet, "/v1/version", nil, &v); err != nil {
		return nil, err
	}
	return &v, nil
}

// RPC returns where idmd answers aria2's JSON-RPC and its secret; an
// error for which IsNotFound is true when the RPC listener is off.
func (c *Client) RPC(ctx context.Context) (*api.RPC, error) {
	var r api.RPC
	if err := c.do(ctx, http.MethodGet, "/v1/rpc", nil, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// Jobs returns every job, in ID order.
func (c *Client) Jobs(ctx context.Context) ([]api.Job, error) {
	var jobs []api.Job
	if err := c.do(ctx, http.MethodGet, "/v1/jobs", nil, &jobs); err != nil {
		return nil, err
	}
	return jobs, nil
}

// Summaries returns every job in brief, in ID order: less for the daemon
// to write and for the client to read than Jobs.
func (c *Client) Summaries(ctx context.Context) ([]api.JobSummary, error) {
	var jobs []api.JobSummary
	if err := c.do(ctx, http.MethodGet, "/v1/jobs?view=summary", nil, &jobs); err != nil {
		return nil, err
	}
	return jobs, nil
}

// Job returns one job.
func (c *Client) Job(ctx context.Context, id uint64) (*api.Job, error) {
	return c.doJob(ctx, http.MethodGet, jobPath(id, ""), nil)
}

// Create adds a job. When an unfinished job for the same sources and
// directory exists, it fails with an error for which IsExists is true,
// unless req.Resume is set: then that job is resumed and returned.
func (c *Client) Create(ctx context.Context, req api.CreateRequest) (*api.Job, error) {
	return c.doJob(ctx, http.MethodPost, "/v1/jobs", req)
}

// SetSources adds sources to a job and removes others.
func (c *Client) SetSources(ctx context.Context, id uint64, req api.SourcesRequest) (*api.Job, error) {
	return c.doJob(ctx, http.MethodPost, jobPath(id, "/sources"), req)
}

// CreateMetalink adds one job per file of a Metalink document, or per
// file req.Select names, and returns them.
func (c *Client) CreateMetalink(ctx context.Context, req api.MetalinkRequest) ([]api.Job, error) {
	var js []api.Job
	if err := c.do(ctx, http.MethodPost, "/v1/metalinks", req, &js); err != nil {
		return nil, err
	}
	return js, nil
}

// Pause pauses a job.
func (c *Client) Pause(ctx context.Context, id uint64) (*api.Job, error) {
	return c.doJob(ctx, http.MethodPost, jobPath(id, "/pause"), nil)
}

// Resume resumes a paused, waiting or failed job.
func (c *Client) Resume(ctx context.Context, id uint64) (*api.Job, error) {
	return c.doJob(ctx, http.MethodPost, jobPath(id, "/resume"), nil)
}

// Cancel stops a job for good and deletes its partial file.
func (c *Client) Cancel(ctx context.Context, id uint64) (*api.Job, error) {
	return c.doJob(ctx, http.MethodPost, jobPath(id, "/cancel"), nil)
}

// Remove deletes a job, cancelling it first if it runs. A finished file
// is kept; a partial one is deleted.
func (c *Client) Remove(ctx context.Context, id uint64) error {
	return c.do(ctx, http.MethodDelete, jobPath(id, ""), nil, nil)
}

// Limit returns the global rate cap in bytes per second; 0 is none.
func (c *Client) Limit(ctx context.Context) (int64, error) {
	var res api.LimitResponse
	if err := c.do(ctx, http.MethodGet, "/v1/limit", nil, &res); err != nil {
		return 0, err
	}
	return res.Limit, nil
}

// SetLimit sets the global rate cap in bytes per second (0 removes it)
// and returns the cap now in force.
func (c *Client) SetLimit(ctx context.Context, limit int64) (int64, error) {
	var res api.LimitResponse
	if err := c.do(ctx, http.MethodPut, "/v1/limit", api.LimitRequest{Limit: limit}, &res); err != nil {
		return 0, err
	}
	return res.Limit, nil
}

// SetJobLimit sets one job's rate cap in bytes per second; 0 removes it.
func (c *Client) SetJobLimit(ctx context.Context, id uint64, limit int64) (*api.Job, error) {
	return c.doJob(ctx, http.MethodPut, jobPath(id, "/limit"), api.LimitRequest{Limit: limit})
}

// WatchJob opens the event stream of one job. The stream starts with a
// state event holding the job's snapshot and ends, with io.EOF from
// Next, once the job has ended and that event was delivered. Cancelling
// ctx or calling Close ends it early.
func (c *Client) WatchJob(ctx context.Context, id uint64) (*Watcher, error) {
	return c.watch(ctx, jobPath(id, "/events"))
}

// WatchAll opens the event stream of every job. It starts with a state
// event per job and lasts until ctx is done, Close is called or the
// daemon stops.
func (c *Client) WatchAll(ctx context.Context) (*Watcher, error) {
	return c.watch(ctx, "/v1/events")
}

func jobPath(id uint64, suffix string) string {
	return "/v1/jobs/" + strconv.FormatUint(id, 10) + suffix
}

func (c *Client) doJob(ctx context.Context, method, path string, in any) (*api.Job, error) {
	var j api.Job
	if err := c.do(ctx, method, path, in, &j); err != nil {
		return nil, err
	}
	return &j, nil
}

// do sends a request with in (if not nil) as its JSON body and decodes
// a successful answer into out (if not nil).
func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	res, err := c.send(ctx, method, path, in)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	if out == nil {
		_, err = io.Copy(io.Discard, res.Body)
		return err
	}
	if err := json.NewDecoder(res.Body).Decode(out); err != nil {
		return fmt.Errorf("%s %s: decode answer: %w", method, path, err)
	}
	return nil
}

// send sends a request and returns a 2xx response with its body unread;
// any other status becomes an *APIError.
func (c *Client) send(ctx context.Context, method, path string, in any) (*http.Response, error) {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, fmt.Errorf("%s %s: %w", method, path, err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, baseURL+path, body)
	if err != nil {
		return nil, err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("User-Agent", "idmctl/"+Version)
	res, err := c.httpClient().Do(req)
	if err != nil {
		// Drop *url.Error's quoting of our made-up URL.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	if res.StatusCode/100 != 2 {
		defer res.Body.Close()
		return nil, readAPIError(res)
	}
	return res, nil
}

// readAPIError turns an error answer into an *APIError, whether or not
// its body is the API's error shape.
func readAPIError(res *http.Response) error {
	b, _ := io.ReadAll(io.LimitReader(res.Body, maxErrorBody))
	e := &APIError{Status: res.StatusCode}
	if err := json.Unmarshal(b, &e.Body); err != nil || e.Body.Error == "" {
		// Not the API's shape: keep the text, guess the code below.
		e.Body = api.ErrorBody{Error: string(bytes.TrimSpace(b))}
	}
	if e.Body.Code == "" {
		e.Body.Code = codeFor(res.StatusCode)
	}
	return e
}

// codeFor guesses the code of an error answer that carried none.
func codeFor(status int) string {
	switch status {
	case http.StatusBadRequest:
		return api.CodeBadRequest
	case http.StatusForbidden:
		return api.CodeForbidden
	case http.StatusNotFound:
		return api.CodeNotFound
	case http.StatusMethodNotAllowed:
		return api.CodeMethod
	case http.StatusConflict:
		return api.CodeConflict
	case http.StatusServiceUnavailable:
		return api.CodeUnavailable
	}
	return api.CodeInternal
}
