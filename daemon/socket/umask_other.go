//go:build !unix

package socket

func umask(int) int { return 0 }
