// Package e2e holds the end-to-end tests: they build the three real
// binaries, run idm-server, idmd and idmctl as separate processes on
// loopback, and check what a user would see. There is no code here, only
// tests.
package e2e
