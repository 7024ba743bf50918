package consume

import (
	"errors"
	"fmt"
	"time"
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

// laterError asks for a redelivery after a delay the handler chose (a
// vendor's Retry-After) instead of the runtime's backoff.
type laterError struct {
	delay time.Duration
	err   error
}

func (e *laterError) Error() string { return e.err.Error() }
func (e *laterError) Unwrap() error { return e.err }

// RetryAfter wraps err so the runtime NAKs the message with delay instead of
// its own backoff: the handler returns at once (no consumer goroutine held
// for the wait) and the message comes back no earlier than the vendor asked.
// Each such redelivery still counts against MaxDeliver, and on the last
// delivery the message is dead-lettered with err as usual. A delay ≤ 0 is
// plain err.
func RetryAfter(delay time.Duration, err error) error {
	if err == nil || delay <= 0 {
		return err
	}
	return &laterError{delay: delay, err: err}
}

// RetryAfterOf is the delay err asked for with RetryAfter, if it did.
func RetryAfterOf(err error) (time.Duration, bool) {
	var l *laterError
	if errors.As(err, &l) {
		return l.delay, true
	}
	return 0, false
}
