package auth

import (
	"context"
	"os"
	"strings"
	"testing"
)

// Who may use the daemon: root, its user and its group's members, by
// primary or supplementary group; no one else, and, since idmd reads
// every caller's credentials here, no caller whose credentials could not
// be read. The refusal is one line that says why.
func TestAccess_Check(t *testing.T) {
	const daemonUID, group = 64300, 64200
	for _, tc := range []struct {
		name   string
		access Access
		peer   *Peer // nil: no credentials
		says   string
	}{
		{"no credentials", Access{UID: daemonUID, Group: group}, nil, "the caller could not be identified: idmd could not read its credentials from the control socket"},
		{"no credentials, no group", Access{UID: os.Geteuid(), Group: -1}, nil, "the caller could not be identified"},
		{"root", Access{UID: daemonUID, Group: -1}, &Peer{UID: 0, GID: 0}, ""},
		{"the daemon's user", Access{UID: daemonUID, Group: -1}, &Peer{UID: daemonUID, GID: daemonUID}, ""},
		{"member by primary group", Access{UID: daemonUID, Group: group}, &Peer{UID: 64101, GID: group}, ""},
		{"member by supplementary group", Access{UID: daemonUID, Group: group}, &Peer{UID: 64101, GID: 64101, Groups: []int{1, group}}, ""},
		{"stranger", Access{UID: daemonUID, Group: group}, &Peer{UID: 64103, GID: 64103, Groups: []int{1}}, "uid 64103 may not use this idmd: it is not root, the daemon's user, or in its group"},
		{"member, but no group is let in", Access{UID: daemonUID, Group: -1}, &Peer{UID: 64101, GID: group}, "uid 64101 may not use this idmd"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			if tc.peer != nil {
				ctx = WithPeer(ctx, *tc.peer)
			}
			err := tc.access.Check(ctx)
			switch {
			case tc.says == "" && err != nil:
				t.Errorf("refused: %v", err)
			case tc.says != "" && (err == nil || !strings.HasPrefix(err.Error(), tc.says) || strings.Contains(err.Error(), "\n")):
				t.Errorf("Check = %v, want a refusal saying %q", err, tc.says)
			}
		})
	}
}
