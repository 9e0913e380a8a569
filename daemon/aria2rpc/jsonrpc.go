package aria2rpc

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/netip"
	"strconv"
	"strings"

	"github.com/idmproject/idm/daemon/auth"
)

// JSON-RPC's error codes, and aria2's one code for every failure of a
// method.
const (
	codeParse          = -32700
	codeInvalidRequest = -32600
	codeInvalidParams  = -32602
	codeFailed         = 1
)

// rpcError is a JSON-RPC error object: every failure a caller sees is
// one, with aria2's code and, where aria2 has one, its message.
type rpcError struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
}

func (e *rpcError) Error() string { return e.Message }

// failf returns aria2's error for a method that failed: code 1.
func failf(format string, args ...any) *rpcError {
	return &rpcError{codeFailed, fmt.Sprintf(format, args...)}
}

var (
	errParse          = &rpcError{codeParse, "Parse error."}
	errInvalidRequest = &rpcError{codeInvalidRequest, "Invalid Request."}
	errInvalidParams  = &rpcError{codeInvalidParams, "Invalid params."}
	errUnauthorized   = failf("Unauthorized")
)

// response is one JSON-RPC response, or, without an ID, a notification;
// its fields in aria2's order.
type response struct {
	ID      json.RawMessage `json:"id"`
	JSONRPC string          `json:"jsonrpc"`
	// Result is marshalled already: an empty list is a result, which
	// omitempty would leave out of an any.
	Result json.RawMessage `json:"result,omitempty"`
	Error  *rpcError       `json:"error,omitempty"`
}

// exchange is one request as a whole: where it came from, and whether
// any of its calls carried a wrong secret.
type exchange struct {
	from         netip.Addr
	unauthorized bool
}

// status returns the HTTP status aria2 answers one call's response
// with.
func (r *response) status() int {
	if r.Error == nil {
		return http.StatusOK
	}
	switch r.Error.Code {
	case codeFailed, codeInvalidRequest:
		return http.StatusBadRequest
	case -32601:
		return http.StatusNotFound
	}
	return http.StatusInternalServerError
}

// answer runs the request in body, one call or a batch of them, and
// returns the answer's JSON and its HTTP status. Malformed JSON is a
// parse error; a batch of more than MaxBatch calls is answered with one
// error, none of its calls run.
func (s *Server) answer(ctx context.Context, ex *exchange, body []byte) ([]byte, int) {
	first, n, shallow := shape(body)
	if !shallow || !json.Valid(body) {
		return marshal(&response{Error: errParse}), http.StatusInternalServerError
	}
	switch first {
	case '{':
		r := s.call(ctx, ex, body)
		return marshal(r), r.status()
	case '[':
		if n > maxBatch {
			r := &response{Error: &rpcError{codeInvalidRequest, fmt.Sprintf("Invalid Request: a batch holds at most %d calls, not %d.", maxBatch, n)}}
			return marshal(r), r.status()
		}
		var calls []json.RawMessage
		if err := json.Unmarshal(body, &calls); err != nil {
			return marshal(&response{Error: errParse}), http.StatusInternalServerError
		}
		var b bytes.Buffer
		b.WriteByte('[')
		for i, c := range calls {
			if i > 0 {
				b.WriteByte(',')
			}
			b.Write(marshal(s.call(ctx, ex, c)))
		}
		b.WriteByte(']')
		return b.Bytes(), http.StatusOK
	}
	return marshal(&response{Error: errInvalidRequest}), http.StatusBadRequest
}

// shape returns the first byte of the JSON value in b, the number of
// elements of b when it is an array, and false if a value in b nests
// deeper than maxDepth. It does not check that b is JSON, and counts
// without decoding, so that a huge batch costs nothing to refuse.
func shape(b []byte) (first byte, n int, shallow bool) {
	depth, commas := 0, 0
	inString, escaped, filled := false, false, false
	for _, c := range b {
		if inString {
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
			continue
		}
		if c == ' ' || c == '\t' || c == '\n' || c == '\r' {
			continue
		}
		if first == 0 {
			first = c
		} else if first == '[' && depth >= 1 && !(depth == 1 && c == ']') {
			filled = true
		}
		switch c {
		case '"':
			inString = true
		case '[', '{':
			if depth++; depth > maxDepth {
				return first, 0, false
			}
		case ']', '}':
			depth--
		case ',':
			if depth == 1 {
				commas++
			}
		}
	}
	if first == '[' && filled {
		n = commas + 1
	}
	return first, n, true
}

// marshal returns r's JSON.
func marshal(r *response) []byte {
	r.JSONRPC = "2.0"
	b, err := json.Marshal(r)
	if err != nil {
		b, _ = json.Marshal(&response{ID: r.ID, JSONRPC: "2.0", Error: &rpcError{-32603, "Internal error."}})
	}
	return b
}

// call runs one call, raw, a JSON object, and returns its response.
func (s *Server) call(ctx context.Context, ex *exchange, raw json.RawMessage) *response {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil || obj == nil {
		return &response{Error: errInvalidRequest}
	}
	id, ok := obj["id"]
	if !ok {
		return &response{Error: errInvalidRequest}
	}
	r := &response{ID: id}
	var name string
	if err := json.Unmarshal(obj["method"], &name); err != nil {
		r.Error = errInvalidRequest
		return r
	}
	var p params
	if err := json.Unmarshal(obj["params"], &p); obj["params"] != nil && err != nil {
		r.Error = errInvalidParams
		return r
	}
	result, err := s.dispatch(ctx, ex, name, p)
	if err != nil {
		r.Error = asRPCError(err)
		return r
	}
	if r.Result, err = json.Marshal(result); err != nil {
		r.Error = &rpcError{-32603, "Internal error."}
	}
	return r
}

// dispatch runs method name with params p, once its secret is right:
// every method but system.listMethods and system.listNotifications, as
// aria2, and system.multicall, whose calls carry their own.
func (s *Server) dispatch(ctx context.Context, ex *exchange, name string, p params) (any, error) {
	switch name {
	case "system.listMethods":
		return methodNames, nil
	case "system.listNotifications":
		return notificationNames, nil
	case "system.multicall":
		return s.multicall(ctx, ex, p)
	}
	token, p := p.token()
	if ok, counted := s.guard.allow(ex.from, token); !ok {
		ex.unauthorized = true
		if counted {
			s.logger().Warn("refused an RPC call: wrong secret", "from", ex.from, "method", name)
		}
		return nil, errUnauthorized
	}
	m, ok := methods[name]
	if !ok {
		return nil, failf("No such method: %s", name)
	}
	ctx = auth.WithPeer(ctx, auth.RPCPeer(s.Dirs...))
	return m(s, ctx, p)
}

// multicall runs the calls of a system.multicall, each with its own
// secret. A call's answer is a list of its result, or its error.
func (s *Server) multicall(ctx context.Context, ex *exchange, p params) (any, error) {
	// Some clients put a secret here too: the calls carry theirs.
	_, p = p.token()
	specs, _, err := p.list(0, true)
	if err != nil {
		return nil, err
	}
	if len(specs) > maxBatch {
		return nil, failf("system.multicall holds at most %d calls, not %d.", maxBatch, len(specs))
	}
	out := make([]any, 0, len(specs))
	for _, raw := range specs {
		var spec map[string]json.RawMessage
		if err := json.Unmarshal(raw, &spec); err != nil || spec == nil {
			out = append(out, failf("system.multicall expected struct."))
			continue
		}
		var name string
		if err := json.Unmarshal(spec["methodName"], &name); err != nil {
			out = append(out, failf("Missing methodName."))
			continue
		}
		if name == "system.multicall" {
			out = append(out, failf("Recursive system.multicall forbidden."))
			continue
		}
		var cp params
		json.Unmarshal(spec["params"], &cp) // not a list: no params, as aria2
		result, err := s.dispatch(ctx, ex, name, cp)
		if err != nil {
			out = append(out, asRPCError(err))
			continue
		}
		out = append(out, []any{result})
	}
	return out, nil
}

// asRPCError returns err as the error a caller sees: aria2's code 1 and
// err's one line, unless err is a JSON-RPC error already.
func asRPCError(err error) *rpcError {
	if e, ok := err.(*rpcError); ok {
		return e
	}
	return failf("%s", strings.ReplaceAll(err.Error(), "\n", " "))
}

// params are a call's parameters, its secret taken off.
type params []json.RawMessage

// token takes the secret off p: its first parameter, when that is a
// string that begins with "token:", as aria2 does for every method.
func (p params) token() (string, params) {
	if len(p) > 0 {
		var s string
		if json.Unmarshal(p[0], &s) == nil && strings.HasPrefix(s, "token:") {
			return strings.TrimPrefix(s, "token:"), p[1:]
		}
	}
	return "", p
}

func wrongType(i int) error { return failf("The parameter at %d has wrong type.", i) }

// given reports whether parameter i is there; a null counts as missing.
func (p params) given(i int) bool {
	return i < len(p) && !bytes.Equal(bytes.TrimSpace(p[i]), []byte("null"))
}

// need returns the error for a missing parameter i when it is required.
func need(i int, required bool) error {
	if required {
		return failf("The parameter at %d is required but missing.", i)
	}
	return nil
}

// str returns parameter i, a string.
func (p params) str(i int) (string, error) {
	if !p.given(i) {
		return "", need(i, true)
	}
	var v string
	if json.Unmarshal(p[i], &v) != nil {
		return "", wrongType(i)
	}
	return v, nil
}

// integer returns parameter i, a whole number; a string of digits is
// taken too, as some clients send one. ok is false when it is not given.
func (p params) integer(i int, required bool) (v int64, ok bool, err error) {
	if !p.given(i) {
		return 0, false, need(i, required)
	}
	raw := string(bytes.TrimSpace(p[i]))
	var s string
	if json.Unmarshal(p[i], &s) == nil {
		raw = s
	}
	v, err = strconv.ParseInt(raw, 10, 64)
	if err != nil {
		return 0, false, wrongType(i)
	}
	return v, true, nil
}

// list returns parameter i, a list.
func (p params) list(i int, required bool) ([]json.RawMessage, bool, error) {
	if !p.given(i) {
		return nil, false, need(i, required)
	}
	var v []json.RawMessage
	if json.Unmarshal(p[i], &v) != nil {
		return nil, false, wrongType(i)
	}
	return v, true, nil
}

// object returns parameter i, a struct.
func (p params) object(i int, required bool) (map[string]json.RawMessage, bool, error) {
	if !p.given(i) {
		return nil, false, need(i, required)
	}
	var v map[string]json.RawMessage
	if json.Unmarshal(p[i], &v) != nil || v == nil {
		return nil, false, wrongType(i)
	}
	return v, true, nil
}

// strings returns parameter i, a list, as strings: what is not a string
// is left out, as aria2 leaves it out.
func (p params) strings(i int, required bool) ([]string, bool, error) {
	l, ok, err := p.list(i, required)
	var out []string
	for _, raw := range l {
		var s string
		if json.Unmarshal(raw, &s) == nil {
			out = append(out, s)
		}
	}
	return out, ok, err
}
