// Package oauth is jetfleet's client of Google's OAuth 2.0 endpoints: the
// authorization-code flow with PKCE that connects a user's YouTube channel,
// the refresh of access tokens, and revocation when the user disconnects.
// It wraps golang.org/x/oauth2; base URLs are configuration so tests and
// `jetfleet dev --demo` point it at the stand-in in youtubetest.
package oauth

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"golang.org/x/oauth2"
)

// Scope is the one scope we ask for. thumbnails.set and videos.update both
// require https://www.googleapis.com/auth/youtube (or youtube.force-ssl /
// youtubepartner); youtube.readonly cannot change a video and
// youtube.upload only inserts new ones, so the narrower scopes do not do.
const Scope = "https://www.googleapis.com/auth/youtube"

// ErrRevoked is returned when Google refuses a refresh token
// (invalid_grant): the user revoked our access, changed their password or
// the grant expired. Retrying cannot help; the user must connect again.
var ErrRevoked = errors.New("google: access was revoked (invalid_grant); connect the channel again")

// Config configures the client.
type Config struct {
	ClientID, ClientSecret string
	// AuthBase serves the consent page (/o/oauth2/v2/auth); default
	// https://accounts.google.com.
	AuthBase string
	// TokenBase serves /token and /revoke; default
	// https://oauth2.googleapis.com.
	TokenBase string
	// RedirectURL is our callback, registered with Google.
	RedirectURL string
	// HTTPClient sends token and revoke requests; default one with a 20 s
	// timeout.
	HTTPClient *http.Client
}

// Client runs the flow. It is safe for concurrent use.
type Client struct {
	cfg       oauth2.Config
	tokenBase string
	http      *http.Client
}

// New returns a client.
func New(c Config) (*Client, error) {
	if c.ClientID == "" {
		return nil, errors.New("GOOGLE_CLIENT_ID: required to connect YouTube channels")
	}
	if c.AuthBase == "" {
		c.AuthBase = "https://accounts.google.com"
	}
	if c.TokenBase == "" {
		c.TokenBase = "https://oauth2.googleapis.com"
	}
	if c.HTTPClient == nil {
		c.HTTPClient = &http.Client{Timeout: 20 * time.Second}
	}
	return &Client{
		cfg: oauth2.Config{
			ClientID: c.ClientID, ClientSecret: c.ClientSecret, RedirectURL: c.RedirectURL,
			Scopes: []string{Scope},
			Endpoint: oauth2.Endpoint{
				AuthURL:  strings.TrimSuffix(c.AuthBase, "/") + "/o/oauth2/v2/auth",
				TokenURL: strings.TrimSuffix(c.TokenBase, "/") + "/token",
				// Google takes the client secret in the body.
				AuthStyle: oauth2.AuthStyleInParams,
			},
		},
		tokenBase: strings.TrimSuffix(c.TokenBase, "/"),
		http:      c.HTTPClient,
	}, nil
}

// NewVerifier returns a fresh PKCE code verifier, kept by us until the
// callback and never sent to the browser.
func NewVerifier() string { return oauth2.GenerateVerifier() }

// AuthCodeURL is where the browser goes to consent: state ties the
// callback to the session that started it, the S256 challenge of verifier
// ties the code to us, and access_type=offline with prompt=consent makes
// Google return a refresh token every time (without prompt=consent a
// second connection gets none).
func (c *Client) AuthCodeURL(state, verifier string) string {
	return c.cfg.AuthCodeURL(state, oauth2.AccessTypeOffline, oauth2.S256ChallengeOption(verifier),
		oauth2.SetAuthURLParam("prompt", "consent"), oauth2.SetAuthURLParam("include_granted_scopes", "true"))
}

// Exchange trades the callback's code for tokens, proving the verifier.
func (c *Client) Exchange(ctx context.Context, code, verifier string) (*oauth2.Token, error) {
	tok, err := c.cfg.Exchange(c.ctx(ctx), code, oauth2.VerifierOption(verifier))
	if err != nil {
		return nil, fmt.Errorf("google token exchange: %w", classify(err))
	}
	if tok.RefreshToken == "" {
		return nil, errors.New("google token exchange: no refresh token in the answer")
	}
	return tok, nil
}

// TokenSource refreshes access tokens from refresh, starting from cached
// (may be nil). Its errors wrap ErrRevoked when Google refuses the grant.
func (c *Client) TokenSource(ctx context.Context, refresh string, cached *oauth2.Token) oauth2.TokenSource {
	t := &oauth2.Token{RefreshToken: refresh}
	if cached != nil {
		t = cached
		t.RefreshToken = refresh
	}
	return classifying{oauth2.ReuseTokenSource(t, c.cfg.TokenSource(c.ctx(ctx), t))}
}

// HTTPClient is an http.Client that sends ts's access token.
func (c *Client) HTTPClient(ctx context.Context, ts oauth2.TokenSource) *http.Client {
	return oauth2.NewClient(c.ctx(ctx), ts)
}

// Revoke revokes token (a refresh token revokes the whole grant). A token
// Google no longer knows is already revoked: not an error.
func (c *Client) Revoke(ctx context.Context, token string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.tokenBase+"/revoke",
		strings.NewReader(url.Values{"token": {token}}.Encode()))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("google revoke: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	switch {
	case resp.StatusCode == http.StatusOK:
		return nil
	case resp.StatusCode == http.StatusBadRequest && strings.Contains(string(body), "invalid_token"):
		return nil
	default:
		return fmt.Errorf("google revoke: HTTP %d: %s", resp.StatusCode, strings.TrimSpace(string(body)))
	}
}

func (c *Client) ctx(ctx context.Context) context.Context {
	return context.WithValue(ctx, oauth2.HTTPClient, c.http)
}

type classifying struct{ ts oauth2.TokenSource }

func (c classifying) Token() (*oauth2.Token, error) {
	t, err := c.ts.Token()
	if err != nil {
		return nil, classify(err)
	}
	return t, nil
}

// classify turns Google's invalid_grant into ErrRevoked.
func classify(err error) error {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) && re.ErrorCode == "invalid_grant" {
		return fmt.Errorf("%w: %s", ErrRevoked, re.ErrorDescription)
	}
	return err
}
