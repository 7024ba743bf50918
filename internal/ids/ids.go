// Package ids makes and checks the random ids and tokens of records kept in
// KV buckets.
package ids

import (
	"crypto/rand"
	"encoding/base64"
)

// Token returns n random bytes in base64url: '-' and '_' may appear, both
// valid in KV keys and subjects; '.', '*' and '>' never do.
func Token(n int) string {
	b := make([]byte, n)
	rand.Read(b) // never fails (crypto/rand)
	return base64.RawURLEncoding.EncodeToString(b)
}

// New returns a record id: 12 random bytes, 16 characters.
func New() string { return Token(12) }

// Valid reports whether id could have been made by New. Ids from URLs are
// checked before they reach a KV key, where a '.' or '*' would change the
// key's meaning.
func Valid(id string) bool {
	if len(id) != 16 {
		return false
	}
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}
