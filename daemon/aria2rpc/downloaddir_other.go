//go:build !unix

package aria2rpc

import "io/fs"

// ownedByMe reports true: owners are not told apart by a uid here.
func ownedByMe(fs.FileInfo) bool { return true }
