//go:build unix

package aria2rpc

import (
	"io/fs"
	"os"
	"syscall"
)

// ownedByMe reports whether fi is owned by the process's effective user.
func ownedByMe(fi fs.FileInfo) bool {
	st, ok := fi.Sys().(*syscall.Stat_t)
	return ok && int(st.Uid) == os.Geteuid()
}
