package transport

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/idmproject/idm/internal/safetext"
)

// Magic opens every idm protocol connection; it is also how a server tells
// an idm client from an HTTP one on the same port.
const Magic = "IDMP"

// Version is the newest protocol version this package speaks, and the
// one its clients ask for first. In version 2 a manifest's content hash
// is the file's root (identity.File.Root), which its segment hashes must
// hash to; in version 1 it was the BLAKE3 hash of the whole file, which a
// client could check only by hashing the whole file again.
const Version uint16 = 2

// MinVersion is the oldest version this package still speaks, as a server
// and, when a server answers that it does not speak Version, as a client.
const MinVersion uint16 = 1

// helloLen is the client's opening: the magic and a big-endian version.
const helloLen = len(Magic) + 2

// Frame types. Requests have the high bit clear, answers have it set.
const (
	frameManifestReq byte = 0x01
	frameRangeReq    byte = 0x02
	frameHello       byte = 0x81
	frameManifest    byte = 0x82
	frameData        byte = 0x83
	frameError       byte = 0xEE
)

// frameHeaderLen is a frame's type byte and its big-endian u32 payload length.
const frameHeaderLen = 5

// Limits on frame payloads, checked before anything is read into memory.
const (
	// MaxRangeLen is the longest byte range one request may ask for.
	MaxRangeLen = 64 << 20
	// MaxErrorMessage is the longest message an error frame may carry.
	MaxErrorMessage = 1024
	// maxManifestPayload bounds a manifest frame.
	maxManifestPayload = manifestFixed + MaxNameLen + MaxSegments*HashSize
	// maxRequestPayload bounds anything a client may send.
	maxRequestPayload = 16
)

// ErrorCode says what kind of failure an error frame reports.
type ErrorCode uint16

// The error codes. A code the reader does not know is still an error.
const (
	// CodeBadRequest: the request was malformed; the server closes the
	// connection after sending it.
	CodeBadRequest ErrorCode = 1
	// CodeOutOfRange: the byte range lies outside the file; the
	// connection stays usable.
	CodeOutOfRange ErrorCode = 2
	// CodeUnsupportedVersion: the server does not speak the client's
	// protocol version.
	CodeUnsupportedVersion ErrorCode = 3
	// CodeShuttingDown: the server is stopping.
	CodeShuttingDown ErrorCode = 4
	// CodeBusy: the server has as many connections as it accepts.
	CodeBusy ErrorCode = 5
	// CodeInternal: the server could not read its own file.
	CodeInternal ErrorCode = 6
)

var codeNames = map[ErrorCode]string{
	CodeBadRequest:         "bad request",
	CodeOutOfRange:         "range out of bounds",
	CodeUnsupportedVersion: "unsupported version",
	CodeShuttingDown:       "shutting down",
	CodeBusy:               "busy",
	CodeInternal:           "internal error",
}

// String returns the code's meaning in words.
func (c ErrorCode) String() string {
	if s, ok := codeNames[c]; ok {
		return s
	}
	return fmt.Sprintf("error %d", uint16(c))
}

// Error is an error frame received from (or sent by) a server.
type Error struct {
	Code    ErrorCode
	Message string
}

// Error returns the code and the server's message, made safe to show: a
// message comes from the network and may hold anything.
func (e *Error) Error() string {
	if e.Message == "" {
		return "server: " + e.Code.String()
	}
	return "server: " + e.Code.String() + ": " + safetext.Line(e.Message, '?', MaxErrorMessage)
}

// Permanent reports whether the error means the server will never serve
// this client: it does not speak its version, does not hold the range
// asked for, or found its request malformed. Busy, shutting down or
// failing to read its own file may pass.
func (e *Error) Permanent() bool {
	switch e.Code {
	case CodeUnsupportedVersion, CodeOutOfRange, CodeBadRequest:
		return true
	}
	return false
}

// Is makes errors.Is(err, ErrBusy) and the like match on the code alone.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code
}

// Sentinels for errors.Is, one per error code.
var (
	// ErrBadRequest matches an error frame with CodeBadRequest.
	ErrBadRequest = &Error{Code: CodeBadRequest}
	// ErrOutOfRange matches an error frame with CodeOutOfRange.
	ErrOutOfRange = &Error{Code: CodeOutOfRange}
	// ErrUnsupportedVersion matches an error frame with CodeUnsupportedVersion.
	ErrUnsupportedVersion = &Error{Code: CodeUnsupportedVersion}
	// ErrShuttingDown matches an error frame with CodeShuttingDown.
	ErrShuttingDown = &Error{Code: CodeShuttingDown}
	// ErrBusy matches an error frame with CodeBusy.
	ErrBusy = &Error{Code: CodeBusy}
	// ErrInternal matches an error frame with CodeInternal.
	ErrInternal = &Error{Code: CodeInternal}
)

// ErrProtocol reports a peer that broke the protocol: a bad magic, an
// unknown frame type, or a length over its limit.
var ErrProtocol = errors.New("protocol violation")

func protocolErr(format string, args ...any) error {
	return &protocolError{fmt.Sprintf(format, args...)}
}

// protocolError is a peer's violation of the protocol. It is permanent:
// a server that speaks something else will not start speaking idm.
type protocolError struct{ msg string }

func (e *protocolError) Error() string        { return ErrProtocol.Error() + ": " + e.msg }
func (e *protocolError) Is(target error) bool { return target == ErrProtocol }

// Permanent reports that retrying cannot help.
func (e *protocolError) Permanent() bool { return true }

// appendHeader appends a frame header.
func appendHeader(b []byte, typ byte, n int) []byte {
	b = append(b, typ)
	return binary.BigEndian.AppendUint32(b, uint32(n))
}

// readHeader reads a frame header and checks its length against max.
func readHeader(r io.Reader, max int) (typ byte, n int, err error) {
	var h [frameHeaderLen]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return 0, 0, err
	}
	n64 := binary.BigEndian.Uint32(h[1:])
	if int64(n64) > int64(max) {
		return 0, 0, protocolErr("frame 0x%02x of %d bytes, limit %d", h[0], n64, max)
	}
	return h[0], int(n64), nil
}

// encodeError builds an error frame.
func encodeError(e *Error) []byte {
	msg := e.Message
	if len(msg) > MaxErrorMessage {
		msg = msg[:MaxErrorMessage]
	}
	b := appendHeader(make([]byte, 0, frameHeaderLen+4+len(msg)), frameError, 4+len(msg))
	b = binary.BigEndian.AppendUint16(b, uint16(e.Code))
	b = binary.BigEndian.AppendUint16(b, uint16(len(msg)))
	return append(b, msg...)
}

// decodeError parses an error frame's payload.
func decodeError(p []byte) (*Error, error) {
	if len(p) < 4 {
		return nil, protocolErr("error frame of %d bytes", len(p))
	}
	n := int(binary.BigEndian.Uint16(p[2:]))
	if n > MaxErrorMessage || len(p) != 4+n {
		return nil, protocolErr("error message of %d bytes in a %d-byte frame", n, len(p))
	}
	return &Error{Code: ErrorCode(binary.BigEndian.Uint16(p)), Message: string(p[4:])}, nil
}

// request is one decoded client request.
type request struct {
	typ byte
	off int64
	n   int64
}

// readRequest reads one client request frame.
func readRequest(r *bufio.Reader) (request, error) {
	typ, n, err := readHeader(r, maxRequestPayload)
	if err != nil {
		return request{}, err
	}
	var p [maxRequestPayload]byte
	if _, err := io.ReadFull(r, p[:n]); err != nil {
		return request{}, err
	}
	switch {
	case typ == frameManifestReq && n == 0:
		return request{typ: typ}, nil
	case typ == frameRangeReq && n == 16:
		off, ln := binary.BigEndian.Uint64(p[:]), binary.BigEndian.Uint64(p[8:])
		if off > 1<<62 || ln > 1<<62 {
			return request{}, protocolErr("range %d+%d out of any file", off, ln)
		}
		return request{typ: typ, off: int64(off), n: int64(ln)}, nil
	}
	return request{}, protocolErr("request frame 0x%02x with %d bytes", typ, n)
}

// encodeRangeRequest builds a range request frame.
func encodeRangeRequest(b []byte, off, n int64) []byte {
	b = appendHeader(b, frameRangeReq, 16)
	b = binary.BigEndian.AppendUint64(b, uint64(off))
	return binary.BigEndian.AppendUint64(b, uint64(n))
}
