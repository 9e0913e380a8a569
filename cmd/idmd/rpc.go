package main

import (
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// rpcSecretName is the RPC secret's file in the state directory, unless
// --rpc-secret-file names another.
const rpcSecretName = "rpc-secret"

// checkRPCListen checks the address of --rpc-listen: HOST:PORT, and a
// loopback address unless any. Anything else could be reached from
// other machines, where anyone may try the secret: it takes
// --rpc-listen-any to mean it.
func checkRPCListen(addr string, any bool) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("--rpc-listen %q: want HOST:PORT, such as 127.0.0.1:6800", addr)
	}
	if !any && !loopbackHost(host) {
		return fmt.Errorf("--rpc-listen %s is not a loopback address: other machines could reach it and try the secret; add --rpc-listen-any to mean it", addr)
	}
	return nil
}

// loopbackHost reports whether host names this machine's loopback only:
// a loopback IP address, or localhost.
func loopbackHost(host string) bool {
	if a, err := netip.ParseAddr(host); err == nil {
		return a.Unmap().IsLoopback()
	}
	return strings.EqualFold(host, "localhost")
}

// defaultDownloadDir is where a download goes when an RPC caller names
// no directory: the downloads directory in the state directory of a
// system daemon, which the package and idmd install make for group idm,
// and the user's download directory for a per-user one. idmd makes it
// when it starts without it (aria2rpc.MakeDownloadDir).
func defaultDownloadDir(system bool, stateDir string) string {
	if system {
		return filepath.Join(stateDir, "downloads")
	}
	if d := os.Getenv("XDG_DOWNLOAD_DIR"); filepath.IsAbs(d) {
		return d
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return filepath.Join(stateDir, "downloads")
	}
	return filepath.Join(home, "Downloads")
}

// downloadDirMode returns the mode and the group (-1: none) idmd gives
// the default download directory when it makes it. With a group, that of
// a system daemon, as the package makes it: the group may write in it,
// what is made there is the group's (setgid), and the sticky bit keeps a
// member from deleting or renaming another's files, or putting a link in
// the place of one. Without, only the daemon's user may use it, as only
// that user may use the socket.
func downloadDirMode(gid int) (fs.FileMode, int) {
	if gid >= 0 {
		return 0o775 | fs.ModeSetgid | fs.ModeSticky, gid
	}
	return 0o700, -1
}

// octal writes m as chmod takes it, special bits first: 3775.
func octal(m fs.FileMode) string {
	n := uint32(m.Perm())
	for bit, v := range map[fs.FileMode]uint32{fs.ModeSetuid: 0o4000, fs.ModeSetgid: 0o2000, fs.ModeSticky: 0o1000} {
		if m&bit != 0 {
			n |= v
		}
	}
	return fmt.Sprintf("%04o", n)
}

// downloadDirs returns the daemon's download directories: the default
// one first, then those of --download-dir and of IDMD_DOWNLOAD_DIRS
// (separated by spaces, as the service's settings list them), each
// once. Both add: they are where the service may write.
func downloadDirs(def string, flags []string, env string) ([]string, error) {
	dirs := []string{filepath.Clean(def)}
	for _, d := range append(slices.Clone(flags), strings.Fields(env)...) {
		if !filepath.IsAbs(d) {
			return nil, fmt.Errorf("download directory %q is not an absolute path", d)
		}
		if d = filepath.Clean(d); !slices.Contains(dirs, d) {
			dirs = append(dirs, d)
		}
	}
	return dirs, nil
}
