package transport

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
)

func TestErrorCode_String(t *testing.T) {
	tests := []struct {
		code ErrorCode
		want string
	}{
		{CodeBadRequest, "bad request"},
		{CodeOutOfRange, "range out of bounds"},
		{CodeUnsupportedVersion, "unsupported version"},
		{CodeShuttingDown, "shutting down"},
		{CodeBusy, "busy"},
		{CodeInternal, "internal error"},
		{0, "error 0"},
		{999, "error 999"},
	}
	for _, tt := range tests {
		if got := tt.code.String(); got != tt.want {
			t.Errorf("ErrorCode(%d).String() = %q, want %q", uint16(tt.code), got, tt.want)
		}
	}
}

func TestError_Is_MatchesCodeOnly(t *testing.T) {
	sentinels := map[ErrorCode]error{
		CodeBadRequest:         ErrBadRequest,
		CodeOutOfRange:         ErrOutOfRange,
		CodeUnsupportedVersion: ErrUnsupportedVersion,
		CodeShuttingDown:       ErrShuttingDown,
		CodeBusy:               ErrBusy,
		CodeInternal:           ErrInternal,
	}
	for code := range sentinels {
		err := fmt.Errorf("fetch: %w", &Error{Code: code, Message: "details"})
		for other, s := range sentinels {
			if got := errors.Is(err, s); got != (other == code) {
				t.Errorf("errors.Is(error %v, %v) = %v", code, other, got)
			}
		}
		if errors.Is(err, ErrProtocol) || errors.Is(err, ErrStalled) {
			t.Errorf("error %v matches a local error", code)
		}
		if !strings.Contains(err.Error(), code.String()) || !strings.Contains(err.Error(), "details") {
			t.Errorf("message %q lacks the code or the details", err)
		}
	}
	if got := (&Error{Code: CodeBusy}).Error(); got != "server: busy" {
		t.Errorf("message without details = %q", got)
	}
}

func TestEncodeError_DecodeError_RoundTrip(t *testing.T) {
	tests := []struct {
		name string
		in   Error
		want Error // after the trip
	}{
		{"bad request", Error{CodeBadRequest, "frame 0x07"}, Error{CodeBadRequest, "frame 0x07"}},
		{"empty message", Error{CodeShuttingDown, ""}, Error{CodeShuttingDown, ""}},
		{"unknown code", Error{ErrorCode(0xBEEF), "from the future"}, Error{ErrorCode(0xBEEF), "from the future"}},
		{"longest message", Error{CodeInternal, strings.Repeat("m", MaxErrorMessage)}, Error{CodeInternal, strings.Repeat("m", MaxErrorMessage)}},
		{"message cut at the limit", Error{CodeInternal, strings.Repeat("m", MaxErrorMessage+500)}, Error{CodeInternal, strings.Repeat("m", MaxErrorMessage)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := encodeError(&tt.in)
			typ, n, err := readHeader(bytes.NewReader(b), 4+MaxErrorMessage)
			if err != nil {
				t.Fatal(err)
			}
			if typ != frameError || n != len(b)-frameHeaderLen {
				t.Fatalf("header says type 0x%02x, %d bytes; frame has %d", typ, n, len(b)-frameHeaderLen)
			}
			got, err := decodeError(b[frameHeaderLen:])
			if err != nil {
				t.Fatal(err)
			}
			if *got != tt.want {
				t.Errorf("got %+v, want %+v", *got, tt.want)
			}
		})
	}
}

func TestDecodeError_Rejects(t *testing.T) {
	payload := func(code, n uint16, msg string) []byte {
		b := binary.BigEndian.AppendUint16(nil, code)
		return append(binary.BigEndian.AppendUint16(b, n), msg...)
	}
	tests := []struct {
		name string
		p    []byte
	}{
		{"empty", nil},
		{"three bytes", []byte{0, 1, 0}},
		{"message shorter than its length", payload(1, 5, "abcd")},
		{"message longer than its length", payload(1, 3, "abcd")},
		{"message over the limit", payload(1, MaxErrorMessage+1, strings.Repeat("x", MaxErrorMessage+1))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if e, err := decodeError(tt.p); !errors.Is(err, ErrProtocol) {
				t.Errorf("decodeError = %v, %v; want a protocol violation", e, err)
			}
		})
	}
}

func TestReadRequest(t *testing.T) {
	frame := func(typ byte, n uint32, payload ...byte) []byte {
		b := append([]byte{typ}, binary.BigEndian.AppendUint32(nil, n)...)
		return append(b, payload...)
	}
	tests := []struct {
		name    string
		in      []byte
		want    request
		wantErr error
	}{
		{"manifest request", frame(frameManifestReq, 0), request{typ: frameManifestReq}, nil},
		{"range request", encodeRangeRequest(nil, 100, 200), request{frameRangeReq, 100, 200}, nil},
		{"zero-length range", encodeRangeRequest(nil, 7, 0), request{frameRangeReq, 7, 0}, nil},
		{"largest offset and length", encodeRangeRequest(nil, 1<<62, 1<<62), request{frameRangeReq, 1 << 62, 1 << 62}, nil},
		{"offset past 2^62", encodeRangeRequest(nil, 1<<62+1, 0), request{}, ErrProtocol},
		{"length past 2^62", encodeRangeRequest(nil, 0, 1<<62+1), request{}, ErrProtocol},
		{"offset negative as int64", encodeRangeRequest(nil, -1, 10), request{}, ErrProtocol},
		{"unknown type", frame(0x07, 0), request{}, ErrProtocol},
		{"answer type from a client", frame(frameData, 0), request{}, ErrProtocol},
		{"manifest request with a payload", frame(frameManifestReq, 4, 1, 2, 3, 4), request{}, ErrProtocol},
		{"range request with 8 bytes", frame(frameRangeReq, 8, 0, 0, 0, 0, 0, 0, 0, 1), request{}, ErrProtocol},
		{"length one over the limit", frame(frameRangeReq, maxRequestPayload+1), request{}, ErrProtocol},
		{"length 2^32-1", frame(frameRangeReq, 0xFFFFFFFF), request{}, ErrProtocol},
		{"nothing", nil, request{}, io.EOF},
		{"half a header", []byte{frameRangeReq, 0, 0}, request{}, io.ErrUnexpectedEOF},
		{"half a payload", encodeRangeRequest(nil, 1, 2)[:12], request{}, io.ErrUnexpectedEOF},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := readRequest(bufReader(bytes.NewReader(tt.in)))
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
				t.Fatalf("readRequest = %+v, %v; want error %v", got, err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("readRequest = %+v, want %+v", got, tt.want)
			}
		})
	}
}

// TestReadRequest_Sequence reads pipelined requests back to back from one
// buffer, as the server does.
func TestReadRequest_Sequence(t *testing.T) {
	var in []byte
	var want []request
	for i := range int64(50) {
		if i%7 == 0 {
			in = appendHeader(in, frameManifestReq, 0)
			want = append(want, request{typ: frameManifestReq})
			continue
		}
		in = encodeRangeRequest(in, i*1000, i)
		want = append(want, request{frameRangeReq, i * 1000, i})
	}
	br := bufReader(bytes.NewReader(in))
	for i, w := range want {
		got, err := readRequest(br)
		if err != nil || got != w {
			t.Fatalf("request %d = %+v, %v; want %+v", i, got, err, w)
		}
	}
	if _, err := readRequest(br); err != io.EOF {
		t.Fatalf("after the last request: %v, want io.EOF", err)
	}
}
