package stripetest

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// The platform-fee parts of Stripe: customers, Checkout Sessions in setup
// mode with their SetupIntents, and off-session PaymentIntents, with the
// test cards' outcomes (4242… succeeds; 4000 0027 6000 3184 needs
// authentication, which an off-session payment cannot get; 4000 0000 0000
// 9995 is declined for insufficient funds).

// Test cards the setup page offers.
const (
	CardSucceeds       = "4242424242424242"
	CardAuthentication = "4000002760003184"
	CardDeclined       = "4000000000009995"
)

// Customer is a customer of the platform.
type Customer struct {
	ID       string            `json:"id"`
	Object   string            `json:"object"`
	Email    string            `json:"email"`
	Metadata map[string]string `json:"metadata"`
	Created  int64             `json:"created"`
}

// SetupIntent saves a payment method for later off-session use.
type SetupIntent struct {
	ID            string            `json:"id"`
	Object        string            `json:"object"`
	Status        string            `json:"status"` // requires_payment_method, succeeded
	Customer      string            `json:"customer"`
	PaymentMethod *string           `json:"payment_method"`
	Usage         string            `json:"usage"`
	Metadata      map[string]string `json:"metadata"`
	Created       int64             `json:"created"`
}

// PaymentIntent is one charge.
type PaymentIntent struct {
	ID            string            `json:"id"`
	Object        string            `json:"object"`
	Amount        int64             `json:"amount"`
	Currency      string            `json:"currency"`
	Customer      string            `json:"customer"`
	PaymentMethod string            `json:"payment_method"`
	Status        string            `json:"status"` // succeeded, requires_payment_method
	Description   string            `json:"description,omitempty"`
	Metadata      map[string]string `json:"metadata"`
	Created       int64             `json:"created"`
}

type feeState struct {
	customers map[string]*Customer
	setups    map[string]*SetupIntent
	intents   []*PaymentIntent
	cards     map[string]string // payment method → test card number
	drop      atomic.Int32      // responses still to drop
}

func newFeeState() feeState {
	return feeState{customers: map[string]*Customer{}, setups: map[string]*SetupIntent{}, cards: map[string]string{}}
}

func (s *Server) feeRoutes(mux *http.ServeMux) {
	mux.HandleFunc("POST /v1/customers", s.api(s.createCustomer))
	mux.HandleFunc("GET /v1/setup_intents/{id}", s.api(s.getSetupIntent))
	mux.HandleFunc("POST /v1/payment_intents", s.api(s.createPaymentIntent))
}

// DropResponses makes the server handle the next n API requests fully and
// then cut the connection instead of answering: a charge made whose answer
// was lost, as when the caller crashes or the network fails after Stripe
// acted.
func (s *Server) DropResponses(n int) { s.fees.drop.Store(int32(n)) }

// dropping wraps the API with DropResponses.
func (s *Server) dropping(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.URL.Path, "/v1/") || s.fees.drop.Load() <= 0 {
			h.ServeHTTP(w, r)
			return
		}
		if s.fees.drop.Add(-1) < 0 {
			h.ServeHTTP(w, r)
			return
		}
		h.ServeHTTP(discard{}, r)
		if hj, ok := w.(http.Hijacker); ok {
			if c, _, err := hj.Hijack(); err == nil {
				c.Close()
			}
		}
	})
}

type discard struct{}

func (discard) Header() http.Header         { return http.Header{} }
func (discard) Write(b []byte) (int, error) { return len(b), nil }
func (discard) WriteHeader(int)             {}

// PaymentIntents returns a copy of every PaymentIntent created, oldest
// first (declined ones included).
func (s *Server) PaymentIntents() []PaymentIntent {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]PaymentIntent, len(s.fees.intents))
	for i, p := range s.fees.intents {
		out[i] = *p
	}
	return out
}

func (s *Server) createCustomer(r *http.Request) (any, *apiError) {
	c := &Customer{ID: "cus_" + randomID(14), Object: "customer", Email: r.PostForm.Get("email"), Metadata: formMap(r.PostForm, "metadata"), Created: time.Now().Unix()}
	s.mu.Lock()
	s.fees.customers[c.ID] = c
	s.mu.Unlock()
	return c, nil
}

func formMap(f url.Values, prefix string) map[string]string {
	m := map[string]string{}
	for k, v := range f {
		if strings.HasPrefix(k, prefix+"[") && strings.HasSuffix(k, "]") {
			m[k[len(prefix)+1:len(k)-1]] = v[0]
		}
	}
	return m
}

// createSetupSession is POST /v1/checkout/sessions with mode=setup.
func (s *Server) createSetupSession(f url.Values) (any, *apiError) {
	cus := f.Get("customer")
	if f.Get("currency") == "" && f.Get("payment_method_types[0]") == "" {
		return nil, invalid("currency", "currency is required in setup mode when payment_method_types is not passed.")
	}
	if f.Get("success_url") == "" {
		return nil, invalid("success_url", "Missing required param: success_url.")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.fees.customers[cus]; cus != "" && !ok {
		return nil, missing("customer", cus)
	}
	now := time.Now()
	si := &SetupIntent{ID: "seti_" + randomID(24), Object: "setup_intent", Status: "requires_payment_method", Customer: cus,
		Usage: "off_session", Metadata: formMap(f, "setup_intent_data[metadata]"), Created: now.Unix()}
	s.fees.setups[si.ID] = si
	cs := &Session{
		ID: "cs_test_" + randomID(24), Object: "checkout.session", Mode: "setup", Status: "open", PaymentStatus: "no_payment_required",
		Currency: f.Get("currency"), SuccessURL: f.Get("success_url"), CancelURL: f.Get("cancel_url"), Metadata: formMap(f, "metadata"),
		Created: now.Unix(), ExpiresAt: now.Add(24 * time.Hour).Unix(), Customer: cus, SetupIntent: si.ID, ProductName: "Save a card",
	}
	cs.URL = s.URL + "/pay/" + cs.ID
	s.sessions[cs.ID] = cs
	return cs, nil
}

// CompleteSetup saves card (one of the Card… numbers) through setup
// session id, as the organiser submitting Stripe's page, delivers
// checkout.session.completed and returns the success URL.
func (s *Server) CompleteSetup(ctx context.Context, id, card string) (string, error) {
	if card == "" {
		card = CardSucceeds
	}
	if card != CardSucceeds && card != CardAuthentication && card != CardDeclined {
		return "", fmt.Errorf("unknown test card %s", card)
	}
	s.mu.Lock()
	cs, ok := s.sessions[id]
	if !ok || cs.Mode != "setup" {
		s.mu.Unlock()
		return "", fmt.Errorf("no such setup session %s", id)
	}
	if cs.Status != "open" {
		s.mu.Unlock()
		return "", fmt.Errorf("checkout session %s is %s", id, cs.Status)
	}
	pm := "pm_" + randomID(24)
	s.fees.cards[pm] = card
	si := s.fees.setups[cs.SetupIntent]
	si.Status, si.PaymentMethod = "succeeded", &pm
	cs.Status = "complete"
	snapshot := *cs
	s.mu.Unlock()
	evID, err := s.emit(ctx, "checkout.session.completed", snapshot)
	if err != nil {
		return "", fmt.Errorf("deliver %s: %w", evID, err)
	}
	return strings.ReplaceAll(snapshot.SuccessURL, "{CHECKOUT_SESSION_ID}", id), nil
}

func (s *Server) getSetupIntent(r *http.Request) (any, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	si, ok := s.fees.setups[r.PathValue("id")]
	if !ok {
		return nil, missing("setup_intent", r.PathValue("id"))
	}
	return si, nil
}

// createPaymentIntent is POST /v1/payment_intents; with confirm=true and
// off_session=true it charges the saved card at once, as the fee does.
func (s *Server) createPaymentIntent(r *http.Request) (any, *apiError) {
	f := r.PostForm
	amount, err := strconv.ParseInt(f.Get("amount"), 10, 64)
	if err != nil || amount < 50 {
		return nil, invalid("amount", "Amount must be at least 50 cents")
	}
	cur := f.Get("currency")
	if !supported[cur] {
		return nil, invalid("currency", "Invalid currency: %s", cur)
	}
	if f.Get("off_session") == "true" && f.Get("confirm") != "true" {
		return nil, invalid("off_session", "off_session can only be used when confirm=true.")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	cus, pm := f.Get("customer"), f.Get("payment_method")
	if _, ok := s.fees.customers[cus]; !ok {
		return nil, missing("customer", cus)
	}
	card, ok := s.fees.cards[pm]
	if !ok {
		return nil, missing("payment_method", pm)
	}
	pi := &PaymentIntent{ID: "pi_" + randomID(24), Object: "payment_intent", Amount: amount, Currency: cur, Customer: cus,
		PaymentMethod: pm, Status: "requires_confirmation", Description: f.Get("description"), Metadata: formMap(f, "metadata"), Created: time.Now().Unix()}
	s.fees.intents = append(s.fees.intents, pi)
	if f.Get("confirm") != "true" {
		return pi, nil
	}
	switch card {
	case CardAuthentication:
		if f.Get("off_session") == "true" {
			pi.Status = "requires_payment_method"
			snap := *pi
			return nil, &apiError{status: http.StatusPaymentRequired, Type: "card_error", Code: "authentication_required", DeclineCode: "authentication_required",
				Msg: "Your card was declined. This transaction requires authentication.", PaymentIntent: &snap}
		}
		pi.Status = "requires_action"
	case CardDeclined:
		pi.Status = "requires_payment_method"
		snap := *pi
		return nil, &apiError{status: http.StatusPaymentRequired, Type: "card_error", Code: "card_declined", DeclineCode: "insufficient_funds",
			Msg: "Your card has insufficient funds.", PaymentIntent: &snap}
	default:
		pi.Status = "succeeded"
	}
	return pi, nil
}
