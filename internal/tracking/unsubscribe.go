package tracking

import (
	"encoding/base64"
	"errors"

	"jetfleet/internal/sealed"
)

// The weekly digest's one-click unsubscribe (RFC 8058) works without
// signing in: its URL carries the user's id sealed under TOKEN_KEY (the
// key every edge and worker share), so only this installation can make
// one, and one cannot be turned into another user's.

// unsubscribeContext binds the sealed value to its use: a value sealed for
// anything else (an OAuth token) does not open as an unsubscribe token.
const unsubscribeContext = "tracker-digest-unsubscribe"

// ErrBadUnsubscribe is returned for a token this installation did not make.
var ErrBadUnsubscribe = errors.New("not a valid unsubscribe link")

// UnsubscribeToken is the token of user uid's unsubscribe URL.
func UnsubscribeToken(box *sealed.Box, uid string) string {
	return base64.RawURLEncoding.EncodeToString(box.Seal([]byte(uid), unsubscribeContext))
}

// UnsubscribeUser returns the user a token stands for.
func UnsubscribeUser(box *sealed.Box, token string) (string, error) {
	if len(token) > 256 {
		return "", ErrBadUnsubscribe
	}
	b, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil {
		return "", ErrBadUnsubscribe
	}
	uid, err := box.Open(b, unsubscribeContext)
	if err != nil || checkID("user", string(uid)) != nil {
		return "", ErrBadUnsubscribe
	}
	return string(uid), nil
}
