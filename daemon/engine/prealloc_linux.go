package engine

import (
	"errors"
	"os"
	"syscall"
)

// preallocate reserves size bytes for f so a full disk shows at the start
// of a download, not in the middle. File systems without fallocate fall
// back to a sparse file.
func preallocate(f *os.File, size int64) error {
	if size == 0 {
		return nil
	}
	err := syscall.Fallocate(int(f.Fd()), 0, 0, size)
	if errors.Is(err, syscall.EOPNOTSUPP) || errors.Is(err, syscall.ENOSYS) {
		return nil
	}
	return err
}
