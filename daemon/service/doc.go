// Package service installs idmd as an operating-system service and runs it
// under the service manager: systemd (a system unit or a per-user unit) on
// Linux, launchd (a daemon or a per-user agent) on macOS and the Service
// Control Manager on Windows, all through github.com/kardianos/service.
//
// # What is installed
//
// A Config says what the installed daemon runs with: its socket, its state
// directory and, when given, its download-slot count and rate cap. Install
// bakes them into the service definition as arguments of "idmd run", so the
// service does not depend on the environment of whoever installed it.
//
// # systemd units
//
// On systemd the unit file is ours, written by Unit, not the library's
// template (whose user units are wanted by multi-user.target, which a user
// manager never reaches). The system unit runs idmd as the user and group
// idm with the file system read-only except for the state directory, the
// socket's directory and the download directories it is given; members of
// group idm may use the control socket. Settings that an administrator may
// change without reinstalling are read from /etc/default/idmd. A Debian
// package ships the same unit (packaging/idmd.service; a test keeps the two
// equal).
//
// # Running under the service manager
//
// StopContext gives "idmd run" the context that ends when it must stop:
// SIGINT or SIGTERM in a terminal, or the service manager's stop request
// when it was started by one (on Windows the process must answer the
// Service Control Manager, which only the library does).
package service
