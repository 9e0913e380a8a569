package localapi

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/idmproject/idm/daemon/api"
	"github.com/idmproject/idm/daemon/auth"
	"github.com/idmproject/idm/daemon/jobs"
)

// apiError is what handlers return: a status, a code and a message.
type apiError struct {
	status int
	body   api.ErrorBody
}

func (e *apiError) Error() string { return e.body.Error }

func badRequest(format string, args ...any) error {
	return &apiError{http.StatusBadRequest, api.ErrorBody{Code: api.CodeBadRequest, Error: fmt.Sprintf(format, args...)}}
}

// writeError maps an error to its status and writes the error body.
func writeError(w http.ResponseWriter, err error) {
	var ae *apiError
	if !errors.As(err, &ae) {
		ae = &apiError{http.StatusInternalServerError, api.ErrorBody{Code: api.CodeInternal, Error: err.Error()}}
		switch {
		case errors.Is(err, jobs.ErrNotFound):
			ae.status, ae.body.Code = http.StatusNotFound, api.CodeNotFound
		case errors.Is(err, auth.ErrDenied):
			ae.status, ae.body.Code = http.StatusForbidden, api.CodePermissionDenied
		case errors.Is(err, jobs.ErrInvalid):
			ae.status, ae.body.Code = http.StatusBadRequest, api.CodeBadRequest
		case errors.Is(err, jobs.ErrExists):
			ae.status, ae.body.Code = http.StatusConflict, api.CodeExists
			ae.body.Job, _ = jobs.ExistingJob(err)
		case errors.Is(err, jobs.ErrConflict):
			ae.status, ae.body.Code = http.StatusConflict, api.CodeConflict
		case errors.Is(err, jobs.ErrShutdown):
			ae.status, ae.body.Code = http.StatusServiceUnavailable, api.CodeUnavailable
		}
	}
	writeJSON(w, ae.status, ae.body)
}

func methodNotAllowed(allowed ...string) error {
	return &apiError{http.StatusMethodNotAllowed, api.ErrorBody{Code: api.CodeMethod,
		Error: fmt.Sprintf("method not allowed; use %v", allowed)}}
}
