// Package sealed encrypts small secrets kept at rest (OAuth refresh tokens,
// CRM credentials) with AES-256-GCM under a key from configuration
// (TOKEN_KEY). A sealed value is bound to the record it belongs to (its
// context, e.g. "google-oauth:<user>"), so a value copied into another
// record does not open there.
package sealed

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
)

// version is the first byte of every sealed value, so the format or key
// derivation can change without guessing what old values are.
const version = 1

// minKeyLen is the shortest TOKEN_KEY accepted: 32 characters, as
// `openssl rand -hex 32` gives 64.
const minKeyLen = 32

// ErrOpen is returned for a value that was not sealed by this key for this
// context, or was altered.
var ErrOpen = errors.New("sealed value does not open with this key and context")

// Box seals and opens values. It is safe for concurrent use.
type Box struct {
	aead cipher.AEAD
}

// New derives the encryption key from secret (TOKEN_KEY) with HKDF-SHA256.
func New(secret []byte) (*Box, error) {
	if len(secret) < minKeyLen {
		return nil, fmt.Errorf("TOKEN_KEY: needs at least %d characters (openssl rand -hex 32)", minKeyLen)
	}
	key, err := hkdf.Key(sha256.New, secret, nil, "jetfleet sealed v1", 32)
	if err != nil {
		return nil, fmt.Errorf("derive sealing key: %w", err)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("sealing cipher: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("sealing cipher: %w", err)
	}
	return &Box{aead: aead}, nil
}

// Seal encrypts plaintext for context: version, random nonce, ciphertext.
func (b *Box) Seal(plaintext []byte, context string) []byte {
	out := make([]byte, 1+b.aead.NonceSize(), 1+b.aead.NonceSize()+len(plaintext)+b.aead.Overhead())
	out[0] = version
	rand.Read(out[1:])
	return b.aead.Seal(out, out[1:], plaintext, []byte(context))
}

// Open decrypts a value Seal made for the same context.
func (b *Box) Open(sealed []byte, context string) ([]byte, error) {
	n := b.aead.NonceSize()
	if len(sealed) < 1+n+b.aead.Overhead() || sealed[0] != version {
		return nil, ErrOpen
	}
	p, err := b.aead.Open(nil, sealed[1:1+n], sealed[1+n:], []byte(context))
	if err != nil {
		return nil, ErrOpen
	}
	return p, nil
}
