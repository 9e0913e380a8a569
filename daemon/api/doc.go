// Package api holds what idmd and its clients share: the types they
// exchange over the control socket, the default paths of the socket and
// the state directory, and the renderings both sides use, such as the
// seed's client report. It depends on nothing else in idm, so idmctl
// does not carry the engine.
package api
