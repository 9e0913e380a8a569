/*
Package ctl is idmctl: the client of idmd's control API and the command
line built on it. It imports the API's types from daemon/api, never the
daemon itself.

# Client

A [Client] talks HTTP/1.1 with JSON to idmd over its Unix socket. Its
zero value finds the default socket (api.DefaultSocket, or the system
daemon's for a user with no daemon of their own). It has one
method per API call; event streams (newline-delimited JSON) are read with
a [Watcher]'s Next until io.EOF.

# Errors

An error answer of the daemon is an [*APIError] holding the status and
the API's error body; [IsNotFound], [IsExists] (with [ExistingJob]),
[IsConflict], [IsForbidden] and [IsUnavailable] sort them. When no daemon answers on the
socket (no socket file, or nobody listening on it), the error wraps
[ErrDaemonNotRunning]: see [IsDaemonNotRunning].

# Command line

[Main] runs idmctl: global flags (--socket, --json), then a subcommand,
each in its own file as a runXxx method over a flag.FlagSet. get is the
seed's client: it creates a job, follows its event stream and prints the
seed's report (api.WriteReport) at its own interval. get, wait and watch
ride out a daemon restart: when the stream breaks they reconnect every
500 ms for up to a minute. Ctrl-C only stops following; jobs go on in the
daemon. The exit statuses are the Exit* constants.
*/
package ctl
