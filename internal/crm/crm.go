// Package crm is what the Events exports share about organisers' CRMs
// (seed 001, "Exports"): the contact a CRM client upserts, how CRM refusals
// are told apart (a rate limit with its Retry-After, credentials that no
// longer work), the organisers' credentials kept sealed at rest
// (Credentials), and the progress record of each export run (Runs). The
// clients of the outside systems are its subpackages hubspot and
// salesforce, each with a protocol-faithful stand-in for tests and dev.
package crm

import (
	"errors"
	"fmt"
	"time"
)

// Contact is one participant sent to a CRM, keyed by email.
type Contact struct {
	Email     string
	FirstName string
	LastName  string
}

// Failure is a contact a CRM refused, with its reason as the CRM gave it.
type Failure struct {
	Email   string `json:"email"`
	Message string `json:"message"`
}

// BatchResult is what a CRM did with one batch: the contacts it upserted
// (by email: the CRM's record id) and the ones it refused. The batch
// request itself succeeded; Failed are per-contact refusals (HubSpot's
// 207 multi-status, Salesforce's success=false), not worth retrying as is.
type BatchResult struct {
	Upserted map[string]string
	Created  int // of Upserted, how many were new records
	Failed   []Failure
	// NameFilled are the emails sent with a stand-in last name because
	// the participant's was blank and the CRM requires one (Salesforce's
	// Contact.LastName); the run says how many, so nothing is hidden.
	NameFilled []string
}

// ErrUnauthorized is a CRM refusing the stored credentials (revoked token,
// disconnected app): retrying cannot help until the organiser reconnects.
var ErrUnauthorized = errors.New("the CRM refused the credentials: reconnect the integration")

// ErrNotConnected is an export into a CRM the organiser has not connected.
var ErrNotConnected = errors.New("this CRM is not connected")

// RateLimitError is a CRM asking us to slow down (HubSpot 429,
// Salesforce REQUEST_LIMIT_EXCEEDED). RetryAfter is how long it asked us
// to wait (Retry-After), zero when it did not say.
type RateLimitError struct {
	RetryAfter time.Duration
	Message    string
}

func (e *RateLimitError) Error() string {
	if e.RetryAfter > 0 {
		return fmt.Sprintf("rate limited (retry after %s): %s", e.RetryAfter, e.Message)
	}
	return "rate limited: " + e.Message
}
