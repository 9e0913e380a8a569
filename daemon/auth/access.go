package auth

import (
	"context"
	"errors"
	"fmt"
	"slices"
)

// Access says who may use the control API: root, the daemon's own user,
// and members of Group when it is set. Membership is the caller's process
// having the group, as primary or supplementary group, which is what the
// kernel checked when that process opened the socket.
type Access struct {
	// UID is the daemon's user.
	UID int
	// Group is the group whose members may use the API; -1 for none.
	Group int
}

// Allows reports whether p may use the control API.
func (a Access) Allows(p Peer) bool {
	if p.UID == 0 || p.UID == a.UID {
		return true
	}
	if a.Group < 0 {
		return false
	}
	return p.GID == a.Group || slices.Contains(p.Groups, a.Group)
}

// errUnidentified refuses a caller whose credentials could not be read.
var errUnidentified = errors.New("the caller could not be identified: idmd could not read its credentials from the control socket")

// Check returns nil if the caller that ctx carries may use the control
// API, and otherwise the one line of the refusal. Where idmd reads its
// callers' credentials (Linux), a request that carries none is refused:
// its caller could be anyone, and access fails closed. Elsewhere no
// caller has credentials, and every caller the socket lets connect is
// served: the socket's mode and group are the guard there.
func (a Access) Check(ctx context.Context) error {
	p, ok := PeerFrom(ctx)
	if !ok {
		if readsCredentials {
			return errUnidentified
		}
		return nil
	}
	if a.Allows(p) {
		return nil
	}
	return fmt.Errorf("uid %d may not use this idmd: it is not root, the daemon's user, or in its group", p.UID)
}
