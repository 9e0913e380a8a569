//go:build unix

package socket

import "syscall"

func umask(m int) int { return syscall.Umask(m) }
