// Package httpsrc makes a file on an HTTP(S) mirror a download source:
// each piece the engine asks for is one GET with a Range header, and the
// answer is taken only when it is exactly that range of the file first
// described.
//
// # What a mirror is trusted with
//
// A mirror publishes no piece hashes, so the engine hashes the pieces
// itself; what this package guards is that the bytes handed over are the
// range asked for, of the file first seen. An answer is taken only when
// it is a 206 whose Content-Range names exactly the range and the size
// first described, whose length is exactly the range's, whose strong
// ETag (when it has one) is the one first seen, and which is not
// compressed. Anything else (an error page, the whole file, another
// range, a body too short or too long) is refused before a byte is
// written, or as soon as it shows.
//
// # A mirror that ignores ranges
//
// A mirror that answers a range with a 200 and the whole file cannot
// share a job with others, and Describe and Fetch fail with ErrNoRanges.
// When that answer can be taken as the file (its Content-Length given,
// in the clear, of the version first seen), the error's Whole method
// describes the file, and Stream sends all of it, in order, over the one
// connection, starting with the answer Describe kept rather than asking
// again. The engine streams so a job whose only source such a mirror is.
//
// # Permanent and transient failures
//
// Every error a Conn returns is an *Error whose Permanent method says
// whether the mirror can ever serve the job: a 404, a mirror that
// ignores ranges or breaks the protocol, a file that changed, a
// Metalink in place of the file (OtherFile says the mirror holds another
// file; a job that downloads the Metalink itself accepts a Metalink 4,
// Options.AcceptMetalink), a redirect from https to http, or an address
// beyond the source's reach are permanent; a reset, a stall, a 408, 429
// or 5xx are transient, and RetryAfter gives the wait a mirror asked
// for. A failure the caller caused (its context ended, or it closed the
// Conn) is not the mirror's fault: it comes back as the context's error
// or as a transient one, and an error of the writer given to Fetch comes
// back as it is.
//
// # Redirects and secrets
//
// A Source follows up to ten redirects and remembers where they led, so
// later ranges go there directly; when that address fails, it is
// forgotten and the next request starts from the original again, since
// signed links expire and the original hands out fresh ones. Addresses
// may carry secrets (a password, a signature in the query): errors and
// String show them redacted, never as given.
//
// # Where a mirror may send idmd
//
// idmd runs as a service, often beside other services and on internal
// networks, and some of the addresses it is sent to are a server's word:
// the target of a redirect, a mirror announced with rel=duplicate, the
// Metalink of rel=describedby, the mirrors of a Metalink fetched from a
// URL. A server may send idmd only to addresses no more internal than its
// own (Class: this machine, then internal networks, then public): a
// public server only to public addresses. Each hop narrows the reach of
// the next, along a redirect chain, for the address it led to that later
// ranges go straight to, and for the mirrors a server names
// (Options.OnDuplicates, Trip.Onward). A source the user gave, reach
// Machine, may go anywhere.
//
// The clients of NewClient and NewClientWith enforce it where the
// connection is made: a literal address or localhost beyond reach is
// refused before any dial, and the dialer checks the address a name
// resolved to, so a name that resolves, or comes to resolve, to an
// internal address is refused too. They keep one pool of connections per
// reach, so no request takes over a kept-alive connection dialled for a
// wider one. A proxy the user configured is always dialled, and resolves
// names itself: through one, only literal addresses and localhost are
// checked, and a server known only by its name counts as public. A
// refusal (ErrRefused) is permanent. A client a caller builds itself
// checks nothing.
package httpsrc
