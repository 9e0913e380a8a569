package jobs

import (
	"errors"
	"fmt"

	"github.com/idmproject/idm/daemon/auth"
	"github.com/idmproject/idm/store"
)

// resolveDir is auth.ResolveDir, with a directory that cannot be used
// reported as the job operations report bad input: ErrInvalid, which the
// control API answers with 400.
func resolveDir(dir string, who *store.Owner) (string, store.FileID, error) {
	resolved, id, err := auth.ResolveDir(dir, who)
	if errors.Is(err, auth.ErrBadDir) {
		return "", store.FileID{}, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return resolved, id, err
}
