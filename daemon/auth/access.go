package auth

import "slices"

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
