//go:build !linux

package auth

// readsCredentials says that idmd does not read callers' credentials
// here (darwin, windows): no request carries a caller, and Check lets
// every one through, as idmd always has on these systems. The socket's
// mode and group, which the kernel checks when a process connects, are
// the only guard; no directory is checked for a caller and no job has an
// owner.
const readsCredentials = false
