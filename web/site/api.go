package site

import (
	"encoding/json"
	"fmt"
	"net/http"
)

// Code is the stable, machine-readable reason a /api/* request failed.
// Clients branch on it; the message beside it is for people and may change.
// Each code has one HTTP status (Status); a new kind of failure gets a new
// code rather than a new meaning for an old one.
type Code string

// The codes of the APIs, with their statuses.
const (
	CodeBadRequest   Code = "bad_request"  // 400: the request is malformed
	CodeUnauthorized Code = "unauthorized" // 401: missing, unknown or disabled API key
	CodeNotFound     Code = "not_found"    // 404: no such resource or route value
	CodeTimeout      Code = "timeout"      // 408: the body did not arrive in time
	CodeTooLarge     Code = "too_large"    // 413: body, line or batch over its limit
	CodeInvalid      Code = "invalid"      // 422: well formed, but nothing in it can be taken (every item rejected)
	CodeOutOfRange   Code = "out_of_range" // 422: the answer does not fit its type (a sum past 64 bits); ask for less
	CodeRateLimited  Code = "rate_limited" // 429: the key's rate limit; see Retry-After
	CodeInternal     Code = "internal"     // 500: a failure on our side
	CodeUnavailable  Code = "unavailable"  // 503: a dependency is down; retry later
)

// Status is the HTTP status the code is answered with.
func (c Code) Status() int {
	switch c {
	case CodeBadRequest:
		return http.StatusBadRequest
	case CodeUnauthorized:
		return http.StatusUnauthorized
	case CodeNotFound:
		return http.StatusNotFound
	case CodeTimeout:
		return http.StatusRequestTimeout
	case CodeTooLarge:
		return http.StatusRequestEntityTooLarge
	case CodeInvalid, CodeOutOfRange:
		return http.StatusUnprocessableEntity
	case CodeRateLimited:
		return http.StatusTooManyRequests
	case CodeUnavailable:
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// ErrorBody is the JSON of a failed /api/* request:
// {"code":"rate_limited","error":"…"}. "error" is the message the APIs
// have always sent (clients and tests read it); "code" is what a program
// should branch on. An API that sends more with an error (the rejected
// items of a batch) embeds it.
type ErrorBody struct {
	Code  Code   `json:"code"`
	Error string `json:"error"`
}

// Errorf builds the body of a failure with code.
func Errorf(code Code, format string, args ...any) ErrorBody {
	return ErrorBody{Code: code, Error: fmt.Sprintf(format, args...)}
}

// JSONError answers a /api/* request with code, its status and a message.
func JSONError(w http.ResponseWriter, code Code, format string, args ...any) {
	WriteJSON(w, code.Status(), Errorf(code, format, args...))
}

// WriteJSON answers with status and v as JSON.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	// The status is sent; an encoding error can only be the client gone.
	_ = json.NewEncoder(w).Encode(v)
}
