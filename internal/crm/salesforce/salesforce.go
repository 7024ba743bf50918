// Package salesforce is the client of Salesforce that the Events exports
// use: the OAuth 2.0 web-server flow with PKCE (/services/oauth2/authorize,
// /services/oauth2/token with authorization_code and refresh_token grants)
// through golang.org/x/oauth2, and contacts upserted on an external-id
// field holding the email with sObject Collections (PATCH
// /services/data/vXX.X/composite/sobjects/Contact/<field>, up to 200
// records, allOrNone false: per-record success, errors, created). An
// expired session (401 INVALID_SESSION_ID) is refreshed once and retried.
// The login URL is configuration, so tests and `jetfleet dev` talk to
// salesforcetest.
package salesforce

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"golang.org/x/oauth2"

	"jetfleet/internal/crm"
)

// MaxBatch is the most records one sObject Collections request takes.
const MaxBatch = 200

// Defaults.
const (
	DefaultLoginURL        = "https://login.salesforce.com"
	DefaultAPIVersion      = "v62.0"
	DefaultExternalIDField = "Jetfleet_Email__c"
)

// Config sets up a Client.
type Config struct {
	LoginURL     string // default DefaultLoginURL (a sandbox: https://test.salesforce.com)
	ClientID     string // the connected app's consumer key
	ClientSecret string
	RedirectURL  string // the site's /events/integrations/salesforce/callback
	APIVersion   string // default DefaultAPIVersion
	// ExternalIDField is the Contact field (External ID, unique) holding
	// the participant's email, which upserts match on.
	ExternalIDField string
	HTTP            *http.Client // default: 30 s timeout
}

// Client talks to Salesforce.
type Client struct {
	cfg   Config
	oauth *oauth2.Config
}

// New returns a client.
func New(cfg Config) *Client {
	if cfg.LoginURL == "" {
		cfg.LoginURL = DefaultLoginURL
	}
	cfg.LoginURL = strings.TrimRight(cfg.LoginURL, "/")
	if cfg.APIVersion == "" {
		cfg.APIVersion = DefaultAPIVersion
	}
	if cfg.ExternalIDField == "" {
		cfg.ExternalIDField = DefaultExternalIDField
	}
	if cfg.HTTP == nil {
		cfg.HTTP = &http.Client{Timeout: 30 * time.Second}
	}
	return &Client{cfg: cfg, oauth: &oauth2.Config{
		ClientID: cfg.ClientID, ClientSecret: cfg.ClientSecret, RedirectURL: cfg.RedirectURL,
		Scopes: []string{"api", "refresh_token"},
		Endpoint: oauth2.Endpoint{
			AuthURL: cfg.LoginURL + "/services/oauth2/authorize", TokenURL: cfg.LoginURL + "/services/oauth2/token",
			AuthStyle: oauth2.AuthStyleInParams,
		},
	}}
}

// Configured reports whether a connected app is set up (client id).
func (c *Client) Configured() bool { return c.cfg.ClientID != "" }

// ExternalIDField is the Contact field upserts match on.
func (c *Client) ExternalIDField() string { return c.cfg.ExternalIDField }

// AuthCodeURL is where the organiser is sent to allow access: state
// against cross-site forgery, and the PKCE challenge of verifier.
func (c *Client) AuthCodeURL(state, verifier string) string {
	return c.oauth.AuthCodeURL(state, oauth2.S256ChallengeOption(verifier))
}

// Connection is what is kept of an organiser's Salesforce connection.
type Connection struct {
	RefreshToken string `json:"refresh_token"`
	InstanceURL  string `json:"instance_url"`
	Identity     string `json:"id,omitempty"` // the identity URL of the user who allowed access
}

func (c *Client) ctx(ctx context.Context) context.Context {
	return context.WithValue(ctx, oauth2.HTTPClient, c.cfg.HTTP)
}

// Exchange trades the code of the callback (with the PKCE verifier) for
// the connection's refresh token and instance URL.
func (c *Client) Exchange(ctx context.Context, code, verifier string) (Connection, error) {
	tok, err := c.oauth.Exchange(c.ctx(ctx), code, oauth2.VerifierOption(verifier))
	if err != nil {
		return Connection{}, fmt.Errorf("salesforce token exchange: %w", err)
	}
	conn := Connection{RefreshToken: tok.RefreshToken, InstanceURL: extra(tok, "instance_url"), Identity: extra(tok, "id")}
	if conn.RefreshToken == "" || conn.InstanceURL == "" {
		return Connection{}, errors.New("salesforce token exchange: no refresh token or instance URL (does the connected app have the refresh_token scope?)")
	}
	return conn, nil
}

func extra(tok *oauth2.Token, k string) string {
	s, _ := tok.Extra(k).(string)
	return s
}

// Session is a connection in use: it holds the access token and gets a
// new one from the refresh token when Salesforce says the session expired.
type Session struct {
	c    *Client
	conn Connection
	ts   oauth2.TokenSource
}

// Session starts using conn.
func (c *Client) Session(conn Connection) *Session {
	s := &Session{c: c, conn: conn}
	s.reset()
	return s
}

func (s *Session) reset() {
	s.ts = oauth2.ReuseTokenSource(nil, s.c.oauth.TokenSource(s.c.ctx(context.Background()), &oauth2.Token{RefreshToken: s.conn.RefreshToken}))
}

func (s *Session) token() (*oauth2.Token, error) {
	tok, err := s.ts.Token()
	if err != nil {
		var re *oauth2.RetrieveError
		if errors.As(err, &re) && (re.ErrorCode == "invalid_grant" || re.ErrorCode == "invalid_client" || re.ErrorCode == "invalid_client_id") {
			return nil, fmt.Errorf("salesforce refresh: %w (%s)", crm.ErrUnauthorized, re.ErrorDescription)
		}
		return nil, fmt.Errorf("salesforce refresh: %w", err)
	}
	return tok, nil
}

// Wire types of sObject Collections upsert.
type (
	// APIError is one element of Salesforce's error array.
	APIError struct {
		Message   string `json:"message"`
		ErrorCode string `json:"errorCode,omitempty"`
		// StatusCode is the per-record form of ErrorCode.
		StatusCode string   `json:"statusCode,omitempty"`
		Fields     []string `json:"fields,omitempty"`
	}
	// UpsertResult is one record's outcome.
	UpsertResult struct {
		ID      string     `json:"id,omitempty"`
		Success bool       `json:"success"`
		Errors  []APIError `json:"errors"`
		Created bool       `json:"created"`
	}
)

// UpsertContacts creates or updates up to MaxBatch contacts on the
// external-id field. Records Salesforce refuses one by one are in Failed;
// a refused request is crm.ErrUnauthorized, *crm.RateLimitError
// (REQUEST_LIMIT_EXCEEDED) or another error.
func (s *Session) UpsertContacts(ctx context.Context, contacts []crm.Contact) (crm.BatchResult, error) {
	if len(contacts) == 0 {
		return crm.BatchResult{Upserted: map[string]string{}}, nil
	}
	if len(contacts) > MaxBatch {
		return crm.BatchResult{}, fmt.Errorf("salesforce upsert: %d contacts, at most %d per request", len(contacts), MaxBatch)
	}
	field := s.c.cfg.ExternalIDField
	records := make([]map[string]any, 0, len(contacts))
	var filled []string
	for _, ct := range contacts {
		last := strings.TrimSpace(ct.LastName)
		if last == "" {
			// Salesforce refuses a Contact without LastName
			// (REQUIRED_FIELD_MISSING): send the documented stand-in
			// rather than lose the participant, and report it.
			last = FallbackLastName(ct.Email)
			filled = append(filled, strings.ToLower(ct.Email))
		}
		r := map[string]any{"attributes": map[string]string{"type": "Contact"}, field: ct.Email, "Email": ct.Email, "LastName": last}
		if ct.FirstName != "" {
			r["FirstName"] = ct.FirstName
		}
		records = append(records, r)
	}
	body, _ := json.Marshal(map[string]any{"allOrNone": false, "records": records})
	for attempt := 0; ; attempt++ {
		results, status, apiErrs, err := s.patch(ctx, body)
		if err != nil {
			return crm.BatchResult{}, err
		}
		if status == http.StatusOK {
			res, err := batchResult(contacts, results)
			res.NameFilled = filled
			return res, err
		}
		code, msg := "", http.StatusText(status)
		if len(apiErrs) > 0 {
			code, msg = apiErrs[0].ErrorCode, apiErrs[0].Message
		}
		switch {
		case status == http.StatusUnauthorized && code == "INVALID_SESSION_ID" && attempt == 0:
			// The access token expired (or was revoked): get a new one
			// from the refresh token and try once more.
			s.reset()
			continue
		case status == http.StatusUnauthorized:
			return crm.BatchResult{}, fmt.Errorf("salesforce upsert: %w (%s: %s)", crm.ErrUnauthorized, code, msg)
		case code == "REQUEST_LIMIT_EXCEEDED" || status == http.StatusTooManyRequests:
			return crm.BatchResult{}, &crm.RateLimitError{Message: code + ": " + msg}
		default:
			return crm.BatchResult{}, fmt.Errorf("salesforce upsert: %d %s: %s", status, code, msg)
		}
	}
}

// MaxLastName is the length of Salesforce's Contact.LastName field.
const MaxLastName = 80

// FallbackLastName is the LastName sent for a participant whose name is
// blank: the local part of their email (what a person reading the CRM
// can recognise), or "Unknown" if that is empty too, cut to MaxLastName
// characters.
func FallbackLastName(email string) string {
	local, _, _ := strings.Cut(email, "@")
	local = strings.TrimSpace(local)
	if local == "" {
		return "Unknown"
	}
	if r := []rune(local); len(r) > MaxLastName {
		local = string(r[:MaxLastName])
	}
	return local
}

func (s *Session) patch(ctx context.Context, body []byte) ([]UpsertResult, int, []APIError, error) {
	tok, err := s.token()
	if err != nil {
		return nil, 0, nil, err
	}
	instance := extra(tok, "instance_url")
	if instance == "" {
		instance = s.conn.InstanceURL
	}
	u := strings.TrimRight(instance, "/") + "/services/data/" + s.c.cfg.APIVersion + "/composite/sobjects/Contact/" + s.c.cfg.ExternalIDField
	req, err := http.NewRequestWithContext(ctx, http.MethodPatch, u, bytes.NewReader(body))
	if err != nil {
		return nil, 0, nil, fmt.Errorf("salesforce upsert: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	tok.SetAuthHeader(req)
	resp, err := s.c.cfg.HTTP.Do(req)
	if err != nil {
		return nil, 0, nil, fmt.Errorf("salesforce upsert: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return nil, 0, nil, fmt.Errorf("salesforce upsert: read answer: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		var errs []APIError
		_ = json.Unmarshal(b, &errs)
		return nil, resp.StatusCode, errs, nil
	}
	var results []UpsertResult
	if err := json.Unmarshal(b, &results); err != nil {
		return nil, 0, nil, fmt.Errorf("salesforce upsert: decode answer: %w", err)
	}
	return results, http.StatusOK, nil, nil
}

// batchResult pairs results with the contacts sent: Salesforce answers in
// the order of the request.
func batchResult(sent []crm.Contact, results []UpsertResult) (crm.BatchResult, error) {
	if len(results) != len(sent) {
		return crm.BatchResult{}, fmt.Errorf("salesforce upsert: %d results for %d records", len(results), len(sent))
	}
	out := crm.BatchResult{Upserted: map[string]string{}}
	for i, r := range results {
		email := strings.ToLower(sent[i].Email)
		if r.Success {
			out.Upserted[email] = r.ID
			if r.Created {
				out.Created++
			}
			continue
		}
		var msgs []string
		for _, e := range r.Errors {
			code := e.StatusCode
			if code == "" {
				code = e.ErrorCode
			}
			msgs = append(msgs, code+": "+e.Message)
		}
		if len(msgs) == 0 {
			msgs = []string{"refused without a reason"}
		}
		out.Failed = append(out.Failed, crm.Failure{Email: email, Message: strings.Join(msgs, "; ")})
	}
	return out, nil
}
