package consume

import (
	"errors"
	"fmt"
)

// permanentError marks a failure that retrying cannot fix: malformed input, a
// failed validation, a reference to something that does not exist.
type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// Permanent wraps err so the runtime dead-letters the message at once instead
// of retrying it. Handlers return Permanent for bad input and plain errors
// for everything that may succeed later (a server down, a timeout).
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanentError{err: err}
}

// Permanentf is Permanent(fmt.Errorf(format, args...)).
func Permanentf(format string, args ...any) error {
	return Permanent(fmt.Errorf(format, args...))
}

// IsPermanent reports whether err, or an error it wraps, was marked
// Permanent.
func IsPermanent(err error) bool {
	var p *permanentError
	return errors.As(err, &p)
}
