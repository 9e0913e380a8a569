//go:build !unix

package daemon

func umask(int) int { return 0 }
