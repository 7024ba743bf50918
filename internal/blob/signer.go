package blob

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// MinSecretLen is the shortest URLSigner secret accepted, in bytes.
const MinSecretLen = 16

// URLSigner signs and verifies edge URLs for blobs: an HMAC-SHA256 over the
// key and the expiry (Unix seconds) with a secret shared by every edge, so
// any edge can serve a URL another one issued, until it expires.
type URLSigner struct {
	secret []byte
}

// NewURLSigner returns a signer using a copy of secret, which must be at
// least MinSecretLen bytes.
func NewURLSigner(secret []byte) (*URLSigner, error) {
	if len(secret) < MinSecretLen {
		return nil, fmt.Errorf("blob: URL signing secret is %d bytes, need at least %d", len(secret), MinSecretLen)
	}
	return &URLSigner{secret: append([]byte(nil), secret...)}, nil
}

// Sign returns the hex signature of key valid until exp (whole seconds).
func (s *URLSigner) Sign(key string, exp time.Time) string {
	return hex.EncodeToString(s.mac(key, exp.Unix()))
}

// Verify reports, in constant time, whether sig is the signature of key and
// exp. It does not look at the clock: the caller checks that exp is still
// in the future.
func (s *URLSigner) Verify(key string, exp time.Time, sig string) bool {
	got, err := hex.DecodeString(sig)
	if err != nil {
		return false
	}
	return hmac.Equal(s.mac(key, exp.Unix()), got)
}

// URL returns baseURL + "/blobs/" + key + "?exp=UNIX&sig=HEX", the path a
// Handler serves, with each key segment escaped.
func (s *URLSigner) URL(baseURL, key string, exp time.Time) string {
	segs := strings.Split(key, "/")
	for i, seg := range segs {
		segs[i] = url.PathEscape(seg)
	}
	q := url.Values{
		"exp": {strconv.FormatInt(exp.Unix(), 10)},
		"sig": {s.Sign(key, exp)},
	}
	return strings.TrimSuffix(baseURL, "/") + "/blobs/" + strings.Join(segs, "/") + "?" + q.Encode()
}

func (s *URLSigner) mac(key string, exp int64) []byte {
	h := hmac.New(sha256.New, s.secret)
	// The expiry goes first and ends at the newline, which it cannot
	// contain, so no other key and expiry produce the same message.
	h.Write([]byte(strconv.FormatInt(exp, 10)))
	h.Write([]byte{'\n'})
	h.Write([]byte(key))
	return h.Sum(nil)
}
