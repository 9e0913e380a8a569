// Package reliability is idm's reliability suite: tests that try to break
// idm the way the world will, and check that it holds. They run the real
// binaries (see internal/proctest) or the real engine against real
// sockets on loopback and real files.
//
// Every test has a short form, run by make test, and a long form, run by
// make test-reliability (IDM_RELIABILITY=long): more data, more faults,
// more seeds. docs/reliability.md says what each one shows and the
// figures of the last long run.
//
// There is no code here, only tests.
package reliability
