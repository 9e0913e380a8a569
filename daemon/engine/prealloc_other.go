//go:build !linux

package engine

import "os"

// preallocate does nothing where there is no portable fallocate; the
// partial file is extended sparsely instead.
func preallocate(*os.File, int64) error { return nil }
