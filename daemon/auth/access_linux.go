package auth

// readsCredentials says that idmd reads the credentials of every caller
// here (package daemon/socket, SO_PEERCRED): a request without them comes
// from a caller whose credentials could not be read.
const readsCredentials = true
