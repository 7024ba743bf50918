package sealed

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func TestSealOpensOnlyWithItsKeyAndContext(t *testing.T) {
	box, err := New([]byte(strings.Repeat("k", 64)))
	if err != nil {
		t.Fatal(err)
	}
	other, err := New([]byte(strings.Repeat("o", 64)))
	if err != nil {
		t.Fatal(err)
	}
	secret := []byte("1//refresh-token-of-user-a")
	s := box.Seal(secret, "google-oauth:a")
	if bytes.Contains(s, secret) {
		t.Fatal("sealed value holds the plaintext")
	}
	if again := box.Seal(secret, "google-oauth:a"); bytes.Equal(again, s) {
		t.Fatal("two seals of one value are equal: the nonce is not random")
	}
	got, err := box.Open(s, "google-oauth:a")
	if err != nil || !bytes.Equal(got, secret) {
		t.Fatalf("Open = %q, %v; want the plaintext", got, err)
	}
	tampered := bytes.Clone(s)
	tampered[len(tampered)-1] ^= 1
	for name, open := range map[string]func() ([]byte, error){
		"other context": func() ([]byte, error) { return box.Open(s, "google-oauth:b") },
		"other key":     func() ([]byte, error) { return other.Open(s, "google-oauth:a") },
		"tampered":      func() ([]byte, error) { return box.Open(tampered, "google-oauth:a") },
		"truncated":     func() ([]byte, error) { return box.Open(s[:10], "google-oauth:a") },
		"empty":         func() ([]byte, error) { return box.Open(nil, "google-oauth:a") },
	} {
		if p, err := open(); !errors.Is(err, ErrOpen) || p != nil {
			t.Errorf("%s: Open = %q, %v; want ErrOpen", name, p, err)
		}
	}
}

func TestNewRefusesShortKeys(t *testing.T) {
	if _, err := New([]byte("short")); err == nil || !strings.Contains(err.Error(), "TOKEN_KEY") {
		t.Fatalf("New(short) = %v; want an error naming TOKEN_KEY", err)
	}
}
