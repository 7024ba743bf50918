package oauth_test

import (
	"context"
	"errors"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"jetfleet/internal/google/oauth"
	"jetfleet/internal/youtube/youtubetest"
)

func setup(t *testing.T) (*youtubetest.Google, *oauth.Client) {
	t.Helper()
	yt := youtubetest.New(youtubetest.Options{})
	yt.AddChannel(youtubetest.ChannelID(1), "@mine", "Mine")
	g := youtubetest.NewGoogle(yt, youtubetest.GoogleConfig{ClientID: "cid", ClientSecret: "secret", Channel: youtubetest.ChannelID(1)})
	srv := httptest.NewServer(g.Handler())
	t.Cleanup(srv.Close)
	c, err := oauth.New(oauth.Config{ClientID: "cid", ClientSecret: "secret", AuthBase: srv.URL, TokenBase: srv.URL, RedirectURL: "http://app.test/callback"})
	if err != nil {
		t.Fatal(err)
	}
	return g, c
}

func codeFrom(t *testing.T, g *youtubetest.Google, c *oauth.Client, state, verifier string) string {
	t.Helper()
	loc, err := g.Consent(c.AuthCodeURL(state, verifier))
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(loc)
	if u.Query().Get("state") != state {
		t.Fatalf("callback state = %q, want %q", u.Query().Get("state"), state)
	}
	return u.Query().Get("code")
}

func TestAuthURLAsksOfflineConsentWithS256Challenge(t *testing.T) {
	_, c := setup(t)
	u, _ := url.Parse(c.AuthCodeURL("st", oauth.NewVerifier()))
	q := u.Query()
	for k, want := range map[string]string{"access_type": "offline", "prompt": "consent", "code_challenge_method": "S256",
		"scope": oauth.Scope, "state": "st", "response_type": "code"} {
		if q.Get(k) != want {
			t.Errorf("%s = %q, want %q", k, q.Get(k), want)
		}
	}
	if q.Get("code_challenge") == "" {
		t.Error("no code_challenge")
	}
}

func TestExchangeWithTheWrongVerifierIsRefusedAndSpendsTheCode(t *testing.T) {
	g, c := setup(t)
	ctx := context.Background()
	v := oauth.NewVerifier()
	code := codeFrom(t, g, c, "st", v)
	if _, err := c.Exchange(ctx, code, oauth.NewVerifier()); err == nil {
		t.Fatal("exchange with another verifier succeeded")
	}
	if _, err := c.Exchange(ctx, code, v); err == nil {
		t.Fatal("a code was accepted a second time")
	}
	tok, err := c.Exchange(ctx, codeFrom(t, g, c, "st2", v), v)
	if err != nil {
		t.Fatal(err)
	}
	if tok.RefreshToken == "" || tok.AccessToken == "" {
		t.Fatalf("token %+v lacks refresh or access token", tok)
	}
}

func TestRefreshAfterRevocationIsErrRevoked(t *testing.T) {
	g, c := setup(t)
	ctx := context.Background()
	v := oauth.NewVerifier()
	tok, err := c.Exchange(ctx, codeFrom(t, g, c, "s", v), v)
	if err != nil {
		t.Fatal(err)
	}
	expired := *tok
	expired.Expiry = time.Now().Add(-time.Minute)
	fresh, err := c.TokenSource(ctx, tok.RefreshToken, &expired).Token()
	if err != nil {
		t.Fatalf("refresh: %v", err)
	}
	if fresh.AccessToken == tok.AccessToken || g.Calls("token.refresh") != 1 {
		t.Fatalf("no refresh happened (calls %d)", g.Calls("token.refresh"))
	}
	if err := c.Revoke(ctx, tok.RefreshToken); err != nil {
		t.Fatal(err)
	}
	if err := c.Revoke(ctx, tok.RefreshToken); err != nil {
		t.Fatalf("revoking a revoked token again: %v", err)
	}
	_, err = c.TokenSource(ctx, tok.RefreshToken, nil).Token()
	if !errors.Is(err, oauth.ErrRevoked) {
		t.Fatalf("refresh of a revoked grant: %v, want ErrRevoked", err)
	}
}
