package ctl

import (
	"errors"
	"fmt"
	"strings"

	"github.com/idmproject/idm/daemon/api"
)

// ErrDaemonNotRunning is wrapped by the error of any call made when no
// daemon answers on the socket: the socket file does not exist, or
// nothing listens on it.
var ErrDaemonNotRunning = errors.New("idmd is not running")

// notRunningError is a failed connection to a socket nobody serves.
type notRunningError struct {
	socket string
	err    error
}

func (e *notRunningError) Error() string {
	return fmt.Sprintf("idmd is not running (no answer on %s)", e.socket)
}

func (e *notRunningError) Unwrap() []error { return []error{ErrDaemonNotRunning, e.err} }

// IsDaemonNotRunning reports whether err says that no daemon answers on
// the socket.
func IsDaemonNotRunning(err error) bool { return errors.Is(err, ErrDaemonNotRunning) }

// APIError is an error answer of the daemon.
type APIError struct {
	// Status is the HTTP status code.
	Status int
	// Body is the decoded error body. For an answer that was not the
	// API's JSON shape, Error holds its text and Code is guessed from
	// Status.
	Body api.ErrorBody

	text string // the status line's reason phrase
}

// Error returns the daemon's message, meant for a person.
func (e *APIError) Error() string {
	if e.Body.Error != "" {
		return e.Body.Error
	}
	return strings.TrimSpace(fmt.Sprintf("idmd answered %d %s", e.Status, e.text))
}

func apiCode(err error) string {
	var e *APIError
	if errors.As(err, &e) {
		return e.Body.Code
	}
	return ""
}

// IsNotFound reports whether err is the daemon saying that there is no
// such job (or route).
func IsNotFound(err error) bool { return apiCode(err) == api.CodeNotFound }

// IsExists reports whether err is the daemon refusing to create a job
// because an unfinished one for the same sources and directory exists.
// ExistingJob tells which.
func IsExists(err error) bool { return apiCode(err) == api.CodeExists }

// ExistingJob returns the ID of the job that made a create request fail
// with IsExists, and whether err is such an error.
func ExistingJob(err error) (uint64, bool) {
	var e *APIError
	if errors.As(err, &e) && e.Body.Code == api.CodeExists {
		return e.Body.Job, true
	}
	return 0, false
}

// IsConflict reports whether err is the daemon saying that the job's
// state does not allow the request, such as resuming a completed job.
func IsConflict(err error) bool { return apiCode(err) == api.CodeConflict }

// IsForbidden reports whether err is the daemon refusing the caller.
func IsForbidden(err error) bool { return apiCode(err) == api.CodeForbidden }

// IsUnavailable reports whether err is the daemon saying that it is
// shutting down: the request may succeed once it is back.
func IsUnavailable(err error) bool { return apiCode(err) == api.CodeUnavailable }
