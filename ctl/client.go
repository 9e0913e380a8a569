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
	"strconv"
	"syscall"

	"github.com/idmproject/idm/daemon/api"
)

// Version is idmctl's version, set at build time with -ldflags.
var Version = "dev"

// maxErrorBody bounds how much of an error answer is read.
const maxErrorBody = 64 << 10

// Client talks to idmd's control API over its Unix socket. The zero value
// is ready to use and finds the default socket. A Client is safe for
// concurrent use.
type Client struct {
	// Socket is the control socket's path. Empty means
	// api.DefaultSocket(): $IDMD_SOCKET, the system socket for root, or
	// the per-user one; a user with no daemon of their own gets the
	// system socket.
	Socket string
}

// SocketPath returns the path of the socket the client connects to.
func (c *Client) SocketPath() string {
	if c.Socket != "" {
		return c.Socket
	}
	return defaultSocket()
}

// dial connects to the socket, and marks the failures that mean nobody
// is listening.
func (c *Client) dial(ctx context.Context) (net.Conn, error) {
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
	if err := c.do(ctx, "GET", "/v1/version", nil, &v); err != nil {
		return nil, err
	}
	return &v, nil
}

// RPC returns where idmd answers aria2's JSON-RPC and its secret; an
// error for which IsNotFound is true when the RPC listener is off.
func (c *Client) RPC(ctx context.Context) (*api.RPC, error) {
	var r api.RPC
	if err := c.do(ctx, "GET", "/v1/rpc", nil, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// Jobs returns every job, in ID order.
func (c *Client) Jobs(ctx context.Context) ([]api.Job, error) {
	var jobs []api.Job
	if err := c.do(ctx, "GET", "/v1/jobs", nil, &jobs); err != nil {
		return nil, err
	}
	return jobs, nil
}

// Summaries returns every job in brief, in ID order: less for the daemon
// to write and for the client to read than Jobs.
func (c *Client) Summaries(ctx context.Context) ([]api.JobSummary, error) {
	var jobs []api.JobSummary
	if err := c.do(ctx, "GET", "/v1/jobs?view=summary", nil, &jobs); err != nil {
		return nil, err
	}
	return jobs, nil
}

// Line returns the waiting jobs the caller may change, in brief, in the
// order they start.
func (c *Client) Line(ctx context.Context) ([]api.JobSummary, error) {
	var line []api.JobSummary
	if err := c.do(ctx, "GET", "/v1/line", nil, &line); err != nil {
		return nil, err
	}
	return line, nil
}

// Move changes a waiting job's place in the line and returns its new
// one, 0 for the front.
func (c *Client) Move(ctx context.Context, id uint64, req api.MoveRequest) (int, error) {
	var res api.MoveResponse
	if err := c.do(ctx, "POST", jobPath(id, "/move"), req, &res); err != nil {
		return 0, err
	}
	return res.Position, nil
}

// Job returns one job.
func (c *Client) Job(ctx context.Context, id uint64) (*api.Job, error) {
	return c.doJob(ctx, "GET", jobPath(id, ""), nil)
}

// Create adds a job. When an unfinished job for the same sources and
// directory exists, it fails with an error for which IsExists is true,
// unless req.Resume is set: then that job is resumed and returned. With
// req.FollowMetalink, a lone URL that answers with a Metalink becomes the
// Metalink's jobs once its job completes (see api.Job's FollowedBy).
func (c *Client) Create(ctx context.Context, req api.CreateRequest) (*api.Job, error) {
	return c.doJob(ctx, "POST", "/v1/jobs", req)
}

// SetSources adds sources to a job and removes others.
func (c *Client) SetSources(ctx context.Context, id uint64, req api.SourcesRequest) (*api.Job, error) {
	return c.doJob(ctx, "POST", jobPath(id, "/sources"), req)
}

// CreateMetalink adds one job per file of a Metalink document, or per
// file req.Select names, and returns them. With req.Resume, a file's
// unfinished job is resumed instead of a new one; without it, such a job
// makes it fail with an error for which IsExists is true.
func (c *Client) CreateMetalink(ctx context.Context, req api.MetalinkRequest) ([]api.Job, error) {
	var js []api.Job
	if err := c.do(ctx, "POST", "/v1/metalinks", req, &js); err != nil {
		return nil, err
	}
	return js, nil
}

// Pause pauses a job.
func (c *Client) Pause(ctx context.Context, id uint64) (*api.Job, error) {
	return c.doJob(ctx, "POST", jobPath(id, "/pause"), nil)
}

// Resume resumes a paused, waiting or failed job.
func (c *Client) Resume(ctx context.Context, id uint64) (*api.Job, error) {
	return c.doJob(ctx, "POST", jobPath(id, "/resume"), nil)
}

// Cancel stops a job for good and deletes its partial file.
func (c *Client) Cancel(ctx context.Context, id uint64) (*api.Job, error) {
	return c.doJob(ctx, "POST", jobPath(id, "/cancel"), nil)
}

// Remove deletes a job, cancelling it first if it runs. A finished file
// is kept; a partial one is deleted.
func (c *Client) Remove(ctx context.Context, id uint64) error {
	return c.do(ctx, "DELETE", jobPath(id, ""), nil, nil)
}

// Limit returns the global rate cap in bytes per second; 0 is none.
func (c *Client) Limit(ctx context.Context) (int64, error) {
	var res api.LimitResponse
	if err := c.do(ctx, "GET", "/v1/limit", nil, &res); err != nil {
		return 0, err
	}
	return res.Limit, nil
}

// SetLimit sets the global rate cap in bytes per second (0 removes it)
// and returns the cap now in force.
func (c *Client) SetLimit(ctx context.Context, limit int64) (int64, error) {
	var res api.LimitResponse
	if err := c.do(ctx, "PUT", "/v1/limit", api.LimitRequest{Limit: limit}, &res); err != nil {
		return 0, err
	}
	return res.Limit, nil
}

// SetJobLimit sets one job's rate cap in bytes per second; 0 removes it.
func (c *Client) SetJobLimit(ctx context.Context, id uint64, limit int64) (*api.Job, error) {
	return c.doJob(ctx, "PUT", jobPath(id, "/limit"), api.LimitRequest{Limit: limit})
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
	defer res.body.Close()
	if out == nil {
		_, err = io.Copy(io.Discard, res.body)
		return err
	}
	if err := json.NewDecoder(res.body).Decode(out); err != nil {
		return fmt.Errorf("%s %s: decode answer: %w", method, path, err)
	}
	// Read to the end, so that an answer cut short is an error even when
	// the part that came decodes.
	if _, err := io.Copy(io.Discard, res.body); err != nil {
		return fmt.Errorf("%s %s: read answer: %w", method, path, err)
	}
	return nil
}

// send sends a request and returns a 2xx answer with its body unread;
// any other status becomes an *APIError. No time-out here: event streams
// last as long as their context.
func (c *Client) send(ctx context.Context, method, path string, in any) (*response, error) {
	header := [][2]string{{"User-Agent", "idmctl/" + Version}}
	var body []byte
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, fmt.Errorf("%s %s: %w", method, path, err)
		}
		body = b
		header = append(header, [2]string{"Content-Type", "application/json"})
	}
	conn, err := c.dial(ctx)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	res, err := roundTrip(ctx, conn, method, path, header, body)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	if res.status/100 != 2 {
		defer res.body.Close()
		return nil, readAPIError(res)
	}
	return res, nil
}

// readAPIError turns an error answer into an *APIError, whether or not
// its body is the API's error shape.
func readAPIError(res *response) error {
	b, _ := io.ReadAll(io.LimitReader(res.body, maxErrorBody))
	e := &APIError{Status: res.status, text: res.text}
	if err := json.Unmarshal(b, &e.Body); err != nil || e.Body.Error == "" {
		// Not the API's shape: keep the text, guess the code below.
		e.Body = api.ErrorBody{Error: string(bytes.TrimSpace(b))}
	}
	if e.Body.Code == "" {
		e.Body.Code = codeFor(res.status)
	}
	return e
}

// codeFor guesses the code of an error answer that carried none.
func codeFor(status int) string {
	switch status {
	case 400:
		return api.CodeBadRequest
	case 403:
		return api.CodeForbidden
	case 404:
		return api.CodeNotFound
	case 405:
		return api.CodeMethod
	case 409:
		return api.CodeConflict
	case 503:
		return api.CodeUnavailable
	}
	return api.CodeInternal
}
