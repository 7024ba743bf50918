// Package hubspot is the client of HubSpot's CRM v3 API that the Events
// exports use: contacts upserted by email in batches of up to 100
// (POST /crm/v3/objects/contacts/batch/upsert with idProperty "email"),
// authenticated with an organiser's private-app token. Its base URL is
// configuration, so tests and `jetfleet dev` talk to hubspottest.
package hubspot

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"jetfleet/internal/crm"
)

// MaxBatch is the most inputs HubSpot takes in one batch request.
const MaxBatch = 100

// DefaultBaseURL is HubSpot's API.
const DefaultBaseURL = "https://api.hubapi.com"

// UpsertPath is the batch upsert endpoint of contacts.
const UpsertPath = "/crm/v3/objects/contacts/batch/upsert"

// TokenInfoPath is HubSpot's documented introspection of a private-app
// token (POST {"tokenKey": …} → the app, account and scopes it grants).
// It needs no scope of its own, so it checks a token that may only write
// contacts without reading any.
const TokenInfoPath = "/oauth/v2/private-apps/get/access-token-info"

// Scope is the scope exports need.
const Scope = "crm.objects.contacts.write"

// Config sets up a Client.
type Config struct {
	BaseURL string       // default DefaultBaseURL
	HTTP    *http.Client // default: 30 s timeout
}

// Client calls HubSpot.
type Client struct {
	base string
	http *http.Client
}

// New returns a client.
func New(cfg Config) *Client {
	if cfg.BaseURL == "" {
		cfg.BaseURL = DefaultBaseURL
	}
	if cfg.HTTP == nil {
		cfg.HTTP = &http.Client{Timeout: 30 * time.Second}
	}
	return &Client{base: strings.TrimRight(cfg.BaseURL, "/"), http: cfg.HTTP}
}

// Wire types of the batch upsert (HubSpot's BatchInputSimplePublicObjectBatchInputUpsert,
// BatchResponseSimplePublicUpsertObject(WithErrors) and StandardError).
type (
	upsertInput struct {
		IDProperty string            `json:"idProperty"`
		ID         string            `json:"id"`
		Properties map[string]string `json:"properties"`
	}
	upsertRequest struct {
		Inputs []upsertInput `json:"inputs"`
	}
	// Result is one upserted object in a batch response.
	Result struct {
		ID         string            `json:"id"`
		Properties map[string]string `json:"properties"`
		CreatedAt  time.Time         `json:"createdAt"`
		UpdatedAt  time.Time         `json:"updatedAt"`
		Archived   bool              `json:"archived"`
		New        bool              `json:"new"`
	}
	// StandardError is HubSpot's error object, in batch responses and as
	// the body of refused requests.
	StandardError struct {
		Status        string              `json:"status"`
		Category      string              `json:"category"`
		Message       string              `json:"message"`
		Context       map[string][]string `json:"context,omitempty"`
		CorrelationID string              `json:"correlationId,omitempty"`
		ErrorType     string              `json:"errorType,omitempty"`  // rate limits: RATE_LIMIT
		PolicyName    string              `json:"policyName,omitempty"` // rate limits: SECONDLY, DAILY…
	}
	// BatchResponse is the body of a 200 or 207 answer.
	BatchResponse struct {
		Status      string          `json:"status"`
		Results     []Result        `json:"results"`
		NumErrors   int             `json:"numErrors,omitempty"`
		Errors      []StandardError `json:"errors,omitempty"`
		RequestedAt *time.Time      `json:"requestedAt,omitempty"`
		StartedAt   time.Time       `json:"startedAt"`
		CompletedAt time.Time       `json:"completedAt"`
	}
)

// TokenInfo is HubSpot's answer about a private-app token.
type TokenInfo struct {
	UserID int64    `json:"userId"`
	HubID  int64    `json:"hubId"`
	AppID  int64    `json:"appId"`
	Scopes []string `json:"scopes"`
}

// ErrMissingScope is a token HubSpot knows that does not grant Scope.
var ErrMissingScope = errors.New("the private app lacks the " + Scope + " scope")

// VerifyToken asks HubSpot about token before it is stored: a token HubSpot
// refuses (400, 401, 403 or 404, with its message) is crm.ErrUnauthorized,
// one without Scope is ErrMissingScope, and anything else (network, 429,
// 5xx) is a plain error: HubSpot could not be asked, nothing is known.
func (c *Client) VerifyToken(ctx context.Context, token string) (TokenInfo, error) {
	body, _ := json.Marshal(map[string]string{"tokenKey": token})
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+TokenInfoPath, bytes.NewReader(body))
	if err != nil {
		return TokenInfo{}, fmt.Errorf("hubspot token info: %w", err)
	}
	hr.Header.Set("Content-Type", "application/json")
	resp, err := c.http.Do(hr)
	if err != nil {
		return TokenInfo{}, fmt.Errorf("hubspot token info: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return TokenInfo{}, fmt.Errorf("hubspot token info: read answer: %w", err)
	}
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusBadRequest, http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound:
		return TokenInfo{}, fmt.Errorf("hubspot token info: %w (%s)", crm.ErrUnauthorized, message(b, resp.Status))
	default:
		return TokenInfo{}, fmt.Errorf("hubspot token info: %s: %s", resp.Status, message(b, resp.Status))
	}
	var info TokenInfo
	if err := json.Unmarshal(b, &info); err != nil {
		return TokenInfo{}, fmt.Errorf("hubspot token info: decode answer: %w", err)
	}
	if !slices.Contains(info.Scopes, Scope) {
		return info, fmt.Errorf("hubspot token info: %w (it grants %s)", ErrMissingScope, strings.Join(info.Scopes, ", "))
	}
	return info, nil
}

// UpsertContacts creates or updates up to MaxBatch contacts by email with
// token. Contacts HubSpot refuses one by one (a 207 answer) are in the
// result's Failed; a refused request is crm.ErrUnauthorized (401),
// *crm.RateLimitError (429, with Retry-After) or another error.
func (c *Client) UpsertContacts(ctx context.Context, token string, contacts []crm.Contact) (crm.BatchResult, error) {
	if len(contacts) == 0 {
		return crm.BatchResult{Upserted: map[string]string{}}, nil
	}
	if len(contacts) > MaxBatch {
		return crm.BatchResult{}, fmt.Errorf("hubspot upsert: %d contacts, at most %d per batch", len(contacts), MaxBatch)
	}
	req := upsertRequest{Inputs: make([]upsertInput, 0, len(contacts))}
	for _, ct := range contacts {
		props := map[string]string{"email": ct.Email, "lastname": ct.LastName}
		if ct.FirstName != "" {
			props["firstname"] = ct.FirstName
		}
		req.Inputs = append(req.Inputs, upsertInput{IDProperty: "email", ID: ct.Email, Properties: props})
	}
	body, _ := json.Marshal(req)
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+UpsertPath, bytes.NewReader(body))
	if err != nil {
		return crm.BatchResult{}, fmt.Errorf("hubspot upsert: %w", err)
	}
	hr.Header.Set("Authorization", "Bearer "+token)
	hr.Header.Set("Content-Type", "application/json")
	resp, err := c.http.Do(hr)
	if err != nil {
		return crm.BatchResult{}, fmt.Errorf("hubspot upsert: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return crm.BatchResult{}, fmt.Errorf("hubspot upsert: read answer: %w", err)
	}
	switch resp.StatusCode {
	case http.StatusOK, http.StatusMultiStatus:
	case http.StatusUnauthorized, http.StatusForbidden:
		return crm.BatchResult{}, fmt.Errorf("hubspot upsert: %w (%s)", crm.ErrUnauthorized, message(b, resp.Status))
	case http.StatusTooManyRequests:
		return crm.BatchResult{}, &crm.RateLimitError{RetryAfter: RetryAfter(resp.Header.Get("Retry-After")), Message: message(b, resp.Status)}
	default:
		return crm.BatchResult{}, fmt.Errorf("hubspot upsert: %s: %s", resp.Status, message(b, resp.Status))
	}
	var br BatchResponse
	if err := json.Unmarshal(b, &br); err != nil {
		return crm.BatchResult{}, fmt.Errorf("hubspot upsert: decode answer: %w", err)
	}
	return batchResult(contacts, br), nil
}

// batchResult matches HubSpot's answer to the contacts sent: results by
// their email property, errors by the ids in their context. A contact in
// neither is reported failed rather than silently taken as exported.
func batchResult(sent []crm.Contact, br BatchResponse) crm.BatchResult {
	out := crm.BatchResult{Upserted: map[string]string{}}
	for _, r := range br.Results {
		email := strings.ToLower(r.Properties["email"])
		out.Upserted[email] = r.ID
		if r.New {
			out.Created++
		}
	}
	failed := map[string]bool{}
	for _, e := range br.Errors {
		for _, ids := range e.Context {
			for _, id := range ids {
				id = strings.ToLower(id)
				if _, ok := out.Upserted[id]; ok || failed[id] {
					continue
				}
				failed[id] = true
				out.Failed = append(out.Failed, crm.Failure{Email: id, Message: e.Message})
			}
		}
	}
	for _, ct := range sent {
		email := strings.ToLower(ct.Email)
		if _, ok := out.Upserted[email]; !ok && !failed[email] {
			msg := "not in HubSpot's answer"
			if len(br.Errors) > 0 {
				msg = br.Errors[0].Message
			}
			out.Failed = append(out.Failed, crm.Failure{Email: email, Message: msg})
		}
	}
	return out
}

// RetryAfter reads a Retry-After header: seconds, or an HTTP date.
func RetryAfter(h string) time.Duration {
	h = strings.TrimSpace(h)
	if h == "" {
		return 0
	}
	if s, err := strconv.Atoi(h); err == nil && s >= 0 {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(h); err == nil {
		return max(0, time.Until(t))
	}
	return 0
}

func message(body []byte, status string) string {
	var e StandardError
	if json.Unmarshal(body, &e) == nil && e.Message != "" {
		if e.Category != "" {
			return e.Category + ": " + e.Message
		}
		return e.Message
	}
	return status
}
