package blob_test

import (
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"jetfleet/internal/blob"
)

func TestValidateKeyAcceptsPathLikeKeys(t *testing.T) {
	for _, key := range []string{
		"a", "thumbs/abc123.jpg", "v/1/2/3", "with space.txt", "ünï/cødé", "a..b/c..", ".hidden/..x", strings.Repeat("k", blob.MaxKeyLen),
	} {
		if err := blob.ValidateKey(key); err != nil {
			t.Errorf("ValidateKey(%.30q) = %v, want nil", key, err)
		}
	}
}

func TestValidateKeyRejectsKeysThatCannotBeURLPaths(t *testing.T) {
	for _, c := range []struct{ key, why string }{
		{"", "empty"},
		{"/abs", "leading slash"},
		{"..", `".." path segment`},
		{"a/../b", `".." path segment`},
		{"a/.", `"." path segment`},
		{"a//b", "empty path segment"},
		{"dir/", "empty path segment"},
		{"tab\there", "control character"},
		{"bad\xffutf8", "not valid UTF-8"},
		{strings.Repeat("k", blob.MaxKeyLen+1), "longer than"},
	} {
		err := blob.ValidateKey(c.key)
		if !errors.Is(err, blob.ErrInvalidKey) {
			t.Errorf("ValidateKey(%.30q) = %v, want ErrInvalidKey", c.key, err)
			continue
		}
		if !strings.Contains(err.Error(), c.why) {
			t.Errorf("ValidateKey(%.30q) = %q, want it to say %q", c.key, err, c.why)
		}
	}
}

func TestNewURLSignerRejectsShortSecret(t *testing.T) {
	if _, err := blob.NewURLSigner([]byte("too short")); err == nil {
		t.Error("NewURLSigner accepted a 9-byte secret")
	}
}

func TestURLSignerVerifiesOnlyItsOwnSignatureOfTheSameKeyAndExpiry(t *testing.T) {
	signer := newSigner(t)
	other, err := blob.NewURLSigner([]byte("another secret of 32 bytes......"))
	if err != nil {
		t.Fatal(err)
	}
	exp := time.Unix(1_900_000_000, 0)
	sig := signer.Sign("a/b.jpg", exp)
	if !signer.Verify("a/b.jpg", exp, sig) {
		t.Fatal("Verify rejects the signer's own signature")
	}
	if !signer.Verify("a/b.jpg", exp.Add(999*time.Millisecond), sig) {
		t.Error("Verify depends on sub-second expiry, which URLs do not carry")
	}
	for _, c := range []struct {
		name string
		ok   bool
	}{
		{"other key", signer.Verify("a/c.jpg", exp, sig)},
		{"later expiry", signer.Verify("a/b.jpg", exp.Add(time.Second), sig)},
		{"other secret", other.Verify("a/b.jpg", exp, sig)},
		{"changed digit", signer.Verify("a/b.jpg", exp, flipLastHex(sig))},
		{"truncated", signer.Verify("a/b.jpg", exp, sig[:len(sig)-2])},
		{"not hex", signer.Verify("a/b.jpg", exp, "zz"+sig[2:])},
		{"empty", signer.Verify("a/b.jpg", exp, "")},
	} {
		if c.ok {
			t.Errorf("Verify accepts signature with %s", c.name)
		}
	}
}

func TestURLSignerURLCarriesEscapedKeyExpiryAndSignature(t *testing.T) {
	signer := newSigner(t)
	exp := time.Unix(1_900_000_000, 0)
	raw := signer.URL("https://edge.example/", "dir/a b?.jpg", exp)
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatalf("parse %s: %v", raw, err)
	}
	if u.Host != "edge.example" || u.Path != "/blobs/dir/a b?.jpg" || u.EscapedPath() != "/blobs/dir/a%20b%3F.jpg" {
		t.Errorf("URL %s: host %q path %q", raw, u.Host, u.EscapedPath())
	}
	q := u.Query()
	if q.Get("exp") != "1900000000" {
		t.Errorf("exp = %q, want 1900000000", q.Get("exp"))
	}
	if !signer.Verify("dir/a b?.jpg", exp, q.Get("sig")) {
		t.Errorf("sig %q does not verify", q.Get("sig"))
	}
}

func flipLastHex(s string) string {
	if strings.HasSuffix(s, "0") {
		return s[:len(s)-1] + "1"
	}
	return s[:len(s)-1] + "0"
}
