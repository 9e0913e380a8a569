package service

import (
	"fmt"
	"path/filepath"
	"strings"
)

// Documentation is the address the units name in Documentation=.
const Documentation = "https://github.com/idmproject/idm#install-as-a-service"

// Unit returns the systemd unit that runs idmd as c says: the system unit,
// or with c.User a user unit. c must be resolved (see New).
func Unit(c Config) string {
	if c.User {
		return userUnit(c)
	}
	return systemUnit(c)
}

func systemUnit(c Config) string {
	var b strings.Builder
	b.WriteString(`# idm's download daemon as a system service. "idmd install" writes this unit
# and the Debian package ships the same one.
#
# Settings: ` + EnvironmentFile + `. idmd sees the file system read-only except
# for its state directory, its socket and the ReadWritePaths below. To let it
# download into more directories, make them writable by group ` + Account + ` and
# list them in IDMD_DOWNLOAD_DIRS in ` + EnvironmentFile + ` (Debian package),
# or add a drop-in with "systemctl edit idmd":
#   [Service]
#   ReadWritePaths=-/srv/downloads
[Unit]
Description=idm download daemon
Documentation=` + Documentation + `
Wants=network-online.target
After=network-online.target

[Service]
Type=exec
`)
	fmt.Fprintf(&b, "ExecStart=%s\n", execLine(c))
	fmt.Fprintf(&b, "EnvironmentFile=-%s\n", EnvironmentFile)
	b.WriteString(`User=` + Account + `
Group=` + Account + `
`)
	fmt.Fprintf(&b, "RuntimeDirectory=%s\n", strings.Join(managedDirs(filepath.Dir(c.Socket), runtimeRoot), " "))
	b.WriteString("RuntimeDirectoryMode=0755\n")
	fmt.Fprintf(&b, "StateDirectory=%s\n", strings.Join(managedDirs(c.StateDir, stateRoot), " "))
	b.WriteString(`StateDirectoryMode=0750
Restart=on-failure
RestartSec=2s
TimeoutStopSec=20s

# Hardening: idmd needs no privilege, writes only the paths below and talks
# to servers over TCP and to idmctl over a Unix socket.
NoNewPrivileges=yes
CapabilityBoundingSet=
ProtectSystem=strict
`)
	for _, p := range writablePaths(c) {
		fmt.Fprintf(&b, "ReadWritePaths=%s\n", p)
	}
	b.WriteString(`ProtectHome=read-only
PrivateTmp=yes
# A download into /tmp would land in the private one, where nobody finds
# it: refuse it instead.
ReadOnlyPaths=/tmp /var/tmp
PrivateDevices=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
ProtectProc=invisible
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6
RestrictNamespaces=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
LockPersonality=yes
MemoryDenyWriteExecute=yes
RemoveIPC=yes
SystemCallArchitectures=native
SystemCallFilter=@system-service
SystemCallErrorNumber=EPERM

[Install]
WantedBy=multi-user.target
`)
	return b.String()
}

// Where systemd keeps the directories of RuntimeDirectory= and
// StateDirectory= of a system unit.
const (
	runtimeRoot = "/run"
	stateRoot   = "/var/lib"
)

// managedDirs returns the value of RuntimeDirectory= or StateDirectory=:
// idmd's own directory under root and, when dir is elsewhere under root,
// dir too, so that systemd creates it at every start, owned by idm.
func managedDirs(dir, root string) []string {
	dirs := []string{Name}
	own := filepath.Join(root, Name)
	if rel, err := filepath.Rel(root, dir); err == nil && rel != "." && within(dir, root) && !within(dir, own) {
		dirs = append(dirs, unitPath(rel))
	}
	return dirs
}

// writablePaths returns the values of the system unit's ReadWritePaths=:
// the state directory, the socket's directory when it is neither under
// /run nor in the state directory, and the download directories, which may
// be missing ("-").
func writablePaths(c Config) []string {
	paths := []string{unitPath(c.StateDir)}
	if dir := filepath.Dir(c.Socket); !within(dir, runtimeRoot) && !within(dir, c.StateDir) {
		paths = append(paths, unitPath(dir))
	}
	for _, d := range c.DownloadDirs {
		paths = append(paths, unitPath("-"+d))
	}
	return paths
}

// within reports whether path is dir or below it; both are clean.
func within(path, dir string) bool {
	return path == dir || strings.HasPrefix(path, strings.TrimSuffix(dir, "/")+"/")
}

func userUnit(c Config) string {
	var b strings.Builder
	b.WriteString(`# idm's download daemon as a user service, written by "idmd install --user".
# It starts when its user logs in; "loginctl enable-linger" starts it at boot.
[Unit]
Description=idm download daemon (user service)
Documentation=` + Documentation + `

[Service]
Type=exec
`)
	fmt.Fprintf(&b, "ExecStart=%s\n", execLine(c))
	b.WriteString(`Restart=on-failure
RestartSec=2s
TimeoutStopSec=20s
NoNewPrivileges=yes
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6
RestrictRealtime=yes
RestrictSUIDSGID=yes
LockPersonality=yes
SystemCallArchitectures=native

[Install]
WantedBy=default.target
`)
	return b.String()
}

// execLine returns the value of ExecStart=.
func execLine(c Config) string {
	words := []string{execWord(c.Executable)}
	for _, a := range c.Arguments() {
		words = append(words, execWord(a))
	}
	return strings.Join(words, " ")
}

// execWord quotes one word of a command line for systemd, which expands
// specifiers (%) and, in Exec lines, environment variables ($).
func execWord(s string) string {
	s = strings.NewReplacer("%", "%%", "$", "$$").Replace(s)
	if s != "" && !strings.ContainsAny(s, " \t\"'\\;") {
		return s
	}
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

// unitPath quotes a path for a path-list setting such as ReadWritePaths=,
// which expands specifiers but not variables.
func unitPath(p string) string {
	p = strings.ReplaceAll(p, "%", "%%")
	if !strings.ContainsAny(p, " \t\"'\\") {
		return p
	}
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(p) + `"`
}
