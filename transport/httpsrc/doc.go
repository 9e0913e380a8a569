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
// # Permanent and transient failures
//
// Every error a Conn returns is an *Error whose Permanent method says
// whether the mirror can ever serve the job: a 404, a mirror that
// ignores ranges or breaks the protocol, a file that changed, a
// Metalink in place of the file (OtherFile says the mirror holds another
// file; a job that downloads the Metalink itself accepts a Metalink 4,
// Options.AcceptMetalink), or a redirect from https to http are permanent; a reset, a stall, a 408,
// 429 or 5xx are transient, and RetryAfter gives the wait a mirror asked
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
package httpsrc
