// Package stripetest is a local stand-in for the parts of Stripe that
// jetfleet uses, speaking Stripe's protocol: form-encoded POSTs with
// bracketed keys, Bearer secret keys, Idempotency-Key, JSON objects with
// "object" fields, Stripe's error envelope, and signed webhooks
// (Stripe-Signature: t=<unix>,v1=<hex HMAC-SHA256 of "t.body">).
//
// It serves the API (/v1/accounts, /v1/account_links, /v1/checkout/sessions,
// /v1/subscriptions, /v1/billing_portal/sessions) and the pages a person
// sees at Stripe: Express onboarding, hosted Checkout and the Customer
// Portal (cancel a subscription), each with one button, so browser tests and `jetfleet dev`
// without a Stripe key can go through the whole flow. Paying a session
// delivers checkout.session.completed to the configured webhook URL;
// Expire delivers checkout.session.expired. Sessions do not expire on their
// own (no clock runs here): tests call Expire.
package stripetest

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"html/template"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/stripe/stripe-go/v85"
)

// Config sets up a Server.
type Config struct {
	SecretKey     string // the only key accepted; default "sk_test_jetfleet"
	WebhookSecret string // default "whsec_jetfleet"
	WebhookURL    string // where events are delivered; empty delivers nothing
	Addr          string // listen address; default 127.0.0.1:0
}

// Account is a connected account.
type Account struct {
	ID               string `json:"id"`
	Object           string `json:"object"`
	Type             string `json:"type"`
	Email            string `json:"email"`
	ChargesEnabled   bool   `json:"charges_enabled"`
	PayoutsEnabled   bool   `json:"payouts_enabled"`
	DetailsSubmitted bool   `json:"details_submitted"`
	Created          int64  `json:"created"`
}

// Session is a Checkout Session, with what the stand-in checked about it.
type Session struct {
	ID                string            `json:"id"`
	Object            string            `json:"object"`
	Mode              string            `json:"mode"`
	Status            string            `json:"status"`
	PaymentStatus     string            `json:"payment_status"`
	AmountTotal       int64             `json:"amount_total"`
	AmountSubtotal    int64             `json:"amount_subtotal"`
	Currency          string            `json:"currency"`
	ClientReferenceID string            `json:"client_reference_id"`
	CustomerEmail     string            `json:"customer_email"`
	SuccessURL        string            `json:"success_url"`
	CancelURL         string            `json:"cancel_url"`
	URL               string            `json:"url"`
	Metadata          map[string]string `json:"metadata"`
	Livemode          bool              `json:"livemode"`
	Created           int64             `json:"created"`
	ExpiresAt         int64             `json:"expires_at"`
	Customer          string            `json:"customer,omitempty"`     // set when a subscription session completes, or given (setup mode)
	Subscription      string            `json:"subscription,omitempty"` // likewise
	SetupIntent       string            `json:"setup_intent,omitempty"` // setup mode: the SetupIntent the page confirms
	// Not part of Stripe's session object: the destination charge as
	// requested, so tests can check where the money goes.
	Destination          string `json:"-"`
	ApplicationFeeAmount int64  `json:"-"`
	ProductName          string `json:"-"`
	// subscription_data[metadata], given to the subscription on payment.
	SubscriptionMetadata map[string]string `json:"-"`
}

// Subscription is a subscription a completed subscription-mode session
// started.
type Subscription struct {
	ID       string            `json:"id"`
	Object   string            `json:"object"`
	Status   string            `json:"status"` // active, canceled
	Customer string            `json:"customer"`
	Metadata map[string]string `json:"metadata"`
	Livemode bool              `json:"livemode"`
	Created  int64             `json:"created"`
}

// PortalSession is a Billing (Customer) Portal session: a page where the
// customer manages their subscriptions, here cancelling one.
type PortalSession struct {
	ID        string `json:"id"`
	Object    string `json:"object"`
	Customer  string `json:"customer"`
	ReturnURL string `json:"return_url"`
	URL       string `json:"url"`
	Livemode  bool   `json:"livemode"`
	Created   int64  `json:"created"`
}

type link struct {
	account, refresh, ret string
	expires               time.Time
}

// Server is the running stand-in.
type Server struct {
	URL string // base of the API and of the hosted pages

	cfg      Config
	srv      *http.Server
	mu       sync.Mutex
	accounts map[string]*Account
	sessions map[string]*Session
	subs     map[string]*Subscription
	fees     feeState
	links    map[string]link
	portals  map[string]*PortalSession
	idem     map[string]idemEntry
	events   map[string][]byte // delivered event bodies by id
	client   *http.Client
}

// Start listens and serves until Close.
func Start(cfg Config) (*Server, error) {
	if cfg.SecretKey == "" {
		cfg.SecretKey = "sk_test_jetfleet"
	}
	if cfg.WebhookSecret == "" {
		cfg.WebhookSecret = "whsec_jetfleet"
	}
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("stripetest: listen: %w", err)
	}
	s := &Server{
		URL: "http://" + ln.Addr().String(), cfg: cfg,
		accounts: map[string]*Account{}, sessions: map[string]*Session{}, subs: map[string]*Subscription{}, links: map[string]link{}, portals: map[string]*PortalSession{},
		idem: map[string]idemEntry{}, events: map[string][]byte{},
		client: &http.Client{Timeout: 15 * time.Second},
	}
	s.fees = newFeeState()
	s.srv = &http.Server{Handler: s.dropping(s.routes()), ReadHeaderTimeout: 5 * time.Second}
	go s.srv.Serve(ln)
	return s, nil
}

// Close stops the server.
func (s *Server) Close() error { return s.srv.Close() }

// SecretKey is the API key the server accepts.
func (s *Server) SecretKey() string { return s.cfg.SecretKey }

// WebhookSecret signs the delivered webhooks.
func (s *Server) WebhookSecret() string { return s.cfg.WebhookSecret }

// SetWebhookURL changes where events go (e.g. once the edge listens).
func (s *Server) SetWebhookURL(u string) { s.mu.Lock(); s.cfg.WebhookURL = u; s.mu.Unlock() }

// Session returns a copy of a Checkout Session.
func (s *Server) Session(id string) (Session, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cs, ok := s.sessions[id]
	if !ok {
		return Session{}, false
	}
	return *cs, true
}

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/accounts", s.api(s.createAccount))
	mux.HandleFunc("GET /v1/accounts/{id}", s.api(s.getAccount))
	mux.HandleFunc("POST /v1/account_links", s.api(s.createLink))
	mux.HandleFunc("POST /v1/checkout/sessions", s.api(s.createSession))
	mux.HandleFunc("GET /v1/checkout/sessions/{id}", s.api(s.getSession))
	mux.HandleFunc("GET /v1/subscriptions/{id}", s.api(s.getSubscription))
	mux.HandleFunc("DELETE /v1/subscriptions/{id}", s.api(s.cancelSubscription))
	s.feeRoutes(mux)
	mux.HandleFunc("POST /v1/billing_portal/sessions", s.api(s.createPortalSession))
	mux.HandleFunc("GET /portal/{id}", s.portalPage)
	mux.HandleFunc("POST /portal/{id}/cancel/{sub}", s.portalCancel)
	mux.HandleFunc("GET /connect/onboarding/{link}", s.onboardingPage)
	mux.HandleFunc("POST /connect/onboarding/{link}", s.onboardingSubmit)
	mux.HandleFunc("GET /pay/{id}", s.payPage)
	mux.HandleFunc("POST /pay/{id}", s.paySubmit)
	return mux
}

// apiError is Stripe's error envelope.
type apiError struct {
	status int
	Type   string `json:"type"`
	Code   string `json:"code,omitempty"`
	Param  string `json:"param,omitempty"`
	Msg    string `json:"message"`
	// Card errors: the bank's reason and the PaymentIntent it left.
	DeclineCode   string         `json:"decline_code,omitempty"`
	PaymentIntent *PaymentIntent `json:"payment_intent,omitempty"`
}

func (e *apiError) Error() string { return e.Msg }

func invalid(param, format string, args ...any) *apiError {
	return &apiError{status: http.StatusBadRequest, Type: "invalid_request_error", Param: param, Msg: fmt.Sprintf(format, args...)}
}

func missing(what, id string) *apiError {
	return &apiError{status: http.StatusNotFound, Type: "invalid_request_error", Code: "resource_missing", Param: "id", Msg: fmt.Sprintf("No such %s: '%s'", what, id)}
}

// api checks the key, replays idempotent requests and writes the JSON.
func (s *Server) api(h func(r *http.Request) (any, *apiError)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Request-Id", "req_"+randomID(14))
		auth := r.Header.Get("Authorization")
		key := strings.TrimPrefix(auth, "Bearer ")
		if u, _, ok := r.BasicAuth(); ok {
			key = u
		}
		if key != s.cfg.SecretKey {
			writeErr(w, &apiError{status: http.StatusUnauthorized, Type: "invalid_request_error", Msg: "Invalid API Key provided"})
			return
		}
		if r.Method == http.MethodPost {
			if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/x-www-form-urlencoded") {
				writeErr(w, invalid("", "Content-Type must be application/x-www-form-urlencoded, got %q", ct))
				return
			}
			if err := r.ParseForm(); err != nil {
				writeErr(w, invalid("", "could not parse the request body: %v", err))
				return
			}
		}
		idemKey := r.Header.Get("Idempotency-Key")
		if idemKey != "" && r.Method == http.MethodPost {
			s.mu.Lock()
			prev, ok := s.idem[r.URL.Path+" "+idemKey]
			s.mu.Unlock()
			if ok && prev.params != r.PostForm.Encode() {
				// Stripe compares the parameters of a replayed request.
				writeErr(w, &apiError{status: http.StatusBadRequest, Type: "idempotency_error",
					Msg: "Keys for idempotent requests can only be used with the same parameters they were first used with."})
				return
			}
			if ok {
				w.Header().Set("Idempotent-Replayed", "true")
				if prev.status != 0 {
					w.WriteHeader(prev.status)
				}
				w.Write(prev.body)
				return
			}
		}
		v, aerr := h(r)
		if aerr != nil {
			if idemKey != "" && r.Method == http.MethodPost && aerr.Type == "card_error" {
				// Stripe saves a request's result, a decline included, for
				// its idempotency key.
				b, _ := json.Marshal(map[string]any{"error": aerr})
				s.mu.Lock()
				s.idem[r.URL.Path+" "+idemKey] = idemEntry{params: r.PostForm.Encode(), body: b, status: aerr.status}
				s.mu.Unlock()
			}
			writeErr(w, aerr)
			return
		}
		b, _ := json.Marshal(v)
		if idemKey != "" && r.Method == http.MethodPost {
			s.mu.Lock()
			s.idem[r.URL.Path+" "+idemKey] = idemEntry{params: r.PostForm.Encode(), body: b}
			s.mu.Unlock()
		}
		w.Write(b)
	}
}

// idemEntry is the first request made with an idempotency key.
type idemEntry struct {
	params string // the form, encoded in key order
	body   []byte
	status int // 0: 200
}

func writeErr(w http.ResponseWriter, e *apiError) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(e.status)
	json.NewEncoder(w).Encode(map[string]any{"error": e})
}

func randomID(n int) string {
	const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	b := make([]byte, n)
	rand.Read(b)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}

func (s *Server) createAccount(r *http.Request) (any, *apiError) {
	typ := r.PostForm.Get("type")
	if typ != "express" && typ != "standard" && typ != "custom" && typ != "" {
		return nil, invalid("type", "Invalid type: must be one of custom, express, or standard")
	}
	if typ == "" {
		typ = "standard"
	}
	a := &Account{ID: "acct_" + randomID(16), Object: "account", Type: typ, Email: r.PostForm.Get("email"), Created: time.Now().Unix()}
	s.mu.Lock()
	s.accounts[a.ID] = a
	s.mu.Unlock()
	return a, nil
}

func (s *Server) getAccount(r *http.Request) (any, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.accounts[r.PathValue("id")]
	if !ok {
		return nil, missing("account", r.PathValue("id"))
	}
	return a, nil
}

func (s *Server) createLink(r *http.Request) (any, *apiError) {
	f := r.PostForm
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.accounts[f.Get("account")]; !ok {
		return nil, missing("account", f.Get("account"))
	}
	if f.Get("type") != "account_onboarding" && f.Get("type") != "account_update" {
		return nil, invalid("type", "Invalid type: must be one of account_onboarding or account_update")
	}
	for _, p := range []string{"refresh_url", "return_url"} {
		if u, err := url.Parse(f.Get(p)); err != nil || u.Scheme == "" || u.Host == "" {
			return nil, invalid(p, "Not a valid URL")
		}
	}
	id := randomID(24)
	exp := time.Now().Add(5 * time.Minute)
	s.links[id] = link{account: f.Get("account"), refresh: f.Get("refresh_url"), ret: f.Get("return_url"), expires: exp}
	return map[string]any{"object": "account_link", "created": time.Now().Unix(), "expires_at": exp.Unix(), "url": s.URL + "/connect/onboarding/" + id}, nil
}

var supported = map[string]bool{"eur": true, "usd": true, "gbp": true, "chf": true, "cad": true, "aud": true}

func (s *Server) createSession(r *http.Request) (any, *apiError) {
	f := r.PostForm
	mode := f.Get("mode")
	switch mode {
	case "setup":
		return s.createSetupSession(f)
	case "payment":
	case "subscription":
		// Stripe's refusals for a subscription session.
		if f.Get("payment_intent_data[transfer_data][destination]") != "" {
			return nil, invalid("payment_intent_data", "You can not pass `payment_intent_data` in `subscription` mode.")
		}
		switch f.Get("line_items[0][price_data][recurring][interval]") {
		case "day", "week", "month", "year":
		default:
			return nil, invalid("line_items[0][price_data][recurring][interval]", "You must provide at least one recurring price in `subscription` mode when using prices.")
		}
	default:
		return nil, invalid("mode", "this stand-in supports mode=payment and mode=subscription only")
	}
	for _, p := range []string{"success_url", "cancel_url"} {
		if v := f.Get(p); v != "" {
			if u, err := url.Parse(v); err != nil || u.Scheme == "" || u.Host == "" {
				return nil, invalid(p, "Not a valid URL")
			}
		}
	}
	if f.Get("success_url") == "" {
		return nil, invalid("success_url", "Missing required param: success_url.")
	}
	cur := f.Get("line_items[0][price_data][currency]")
	if !supported[cur] {
		return nil, invalid("line_items[0][price_data][currency]", "Invalid currency: %s", cur)
	}
	amount, err := strconv.ParseInt(f.Get("line_items[0][price_data][unit_amount]"), 10, 64)
	if err != nil || amount < 50 {
		return nil, invalid("line_items[0][price_data][unit_amount]", "Amount must be at least 50 cents")
	}
	qty, err := strconv.ParseInt(f.Get("line_items[0][quantity]"), 10, 64)
	if err != nil || qty < 1 {
		return nil, invalid("line_items[0][quantity]", "Missing required param: line_items[0][quantity].")
	}
	name := f.Get("line_items[0][price_data][product_data][name]")
	if name == "" {
		return nil, invalid("line_items[0][price_data][product_data][name]", "Missing required param: line_items[0][price_data][product_data][name].")
	}
	dest := f.Get("payment_intent_data[transfer_data][destination]")
	fee, _ := strconv.ParseInt(f.Get("payment_intent_data[application_fee_amount]"), 10, 64)
	s.mu.Lock()
	defer s.mu.Unlock()
	if dest != "" {
		a, ok := s.accounts[dest]
		if !ok {
			return nil, missing("account", dest)
		}
		if !a.ChargesEnabled {
			return nil, invalid("payment_intent_data[transfer_data][destination]", "Your destination account needs to have at least one of the following capabilities enabled: transfers, crypto_transfers, legacy_payments")
		}
	}
	meta, subMeta := map[string]string{}, map[string]string{}
	for k, v := range f {
		if strings.HasPrefix(k, "metadata[") && strings.HasSuffix(k, "]") {
			meta[k[len("metadata["):len(k)-1]] = v[0]
		}
		if strings.HasPrefix(k, "subscription_data[metadata][") && strings.HasSuffix(k, "]") {
			subMeta[k[len("subscription_data[metadata]["):len(k)-1]] = v[0]
		}
	}
	now := time.Now()
	expires := now.Add(24 * time.Hour).Unix()
	if v := f.Get("expires_at"); v != "" {
		at, err := strconv.ParseInt(v, 10, 64)
		// Stripe's rule: 30 minutes to 24 hours after creation.
		if err != nil || at < now.Add(30*time.Minute).Unix() || at > now.Add(24*time.Hour).Unix() {
			return nil, invalid("expires_at", "The `expires_at` timestamp must be between 30 minutes and 24 hours from Checkout Session creation.")
		}
		expires = at
	}
	cs := &Session{
		ID: "cs_test_" + randomID(24), Object: "checkout.session", Mode: mode, Status: "open", PaymentStatus: "unpaid",
		AmountTotal: amount * qty, AmountSubtotal: amount * qty, Currency: cur,
		ClientReferenceID: f.Get("client_reference_id"), CustomerEmail: f.Get("customer_email"),
		SuccessURL: f.Get("success_url"), CancelURL: f.Get("cancel_url"), Metadata: meta,
		Created: now.Unix(), ExpiresAt: expires,
		Destination: dest, ApplicationFeeAmount: fee, ProductName: name, SubscriptionMetadata: subMeta,
	}
	cs.URL = s.URL + "/pay/" + cs.ID
	s.sessions[cs.ID] = cs
	return cs, nil
}

func (s *Server) getSession(r *http.Request) (any, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cs, ok := s.sessions[r.PathValue("id")]
	if !ok {
		return nil, missing("checkout.session", r.PathValue("id"))
	}
	return cs, nil
}

func (s *Server) getSubscription(r *http.Request) (any, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sub, ok := s.subs[r.PathValue("id")]
	if !ok {
		return nil, missing("subscription", r.PathValue("id"))
	}
	return sub, nil
}

// cancelSubscription is DELETE /v1/subscriptions/{id}: cancelled at once,
// then customer.subscription.deleted. As at Stripe, a failed webhook
// delivery does not fail the API call (Stripe retries it later).
func (s *Server) cancelSubscription(r *http.Request) (any, *apiError) {
	id := r.PathValue("id")
	s.mu.Lock()
	sub, ok := s.subs[id]
	status := ""
	if ok {
		status = sub.Status
	}
	s.mu.Unlock()
	if !ok {
		return nil, missing("subscription", id)
	}
	if status != "active" {
		return nil, invalid("id", "A canceled subscription can not be canceled again: %s is %s.", id, status)
	}
	_, _ = s.CancelSubscription(r.Context(), id)
	s.mu.Lock()
	defer s.mu.Unlock()
	snapshot := *s.subs[id]
	return snapshot, nil
}

// createPortalSession is POST /v1/billing_portal/sessions: customer
// (required, known) and return_url.
func (s *Server) createPortalSession(r *http.Request) (any, *apiError) {
	cus := r.PostForm.Get("customer")
	if cus == "" {
		return nil, invalid("customer", "Missing required param: customer.")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	known := false
	for _, sub := range s.subs {
		known = known || sub.Customer == cus
	}
	if !known {
		return nil, missing("customer", cus)
	}
	id := "bps_" + randomID(24)
	ps := &PortalSession{ID: id, Object: "billing_portal.session", Customer: cus, ReturnURL: r.PostForm.Get("return_url"),
		URL: s.URL + "/portal/" + id, Created: time.Now().Unix()}
	s.portals[id] = ps
	return ps, nil
}

// portalPage lists the customer's subscriptions, each active one with a
// cancel button, as the Customer Portal does.
func (s *Server) portalPage(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	ps, ok := s.portals[r.PathValue("id")]
	var subs []Subscription
	if ok {
		for _, sub := range s.subs {
			if sub.Customer == ps.Customer {
				subs = append(subs, *sub)
			}
		}
	}
	s.mu.Unlock()
	if !ok {
		http.Error(w, "This portal session is invalid.", http.StatusNotFound)
		return
	}
	pages.ExecuteTemplate(w, "portal", map[string]any{"Session": ps, "Subs": subs})
}

// portalCancel cancels one of the session customer's subscriptions (and
// delivers customer.subscription.deleted), then returns to return_url.
func (s *Server) portalCancel(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	ps, ok := s.portals[r.PathValue("id")]
	sub, subOK := s.subs[r.PathValue("sub")]
	mine := ok && subOK && sub.Customer == ps.Customer
	s.mu.Unlock()
	if !mine {
		http.Error(w, "No such subscription in this portal session.", http.StatusNotFound)
		return
	}
	if _, err := s.CancelSubscription(r.Context(), sub.ID); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	http.Redirect(w, r, ps.ReturnURL, http.StatusSeeOther)
}

var pages = template.Must(template.New("").Parse(`
{{define "onboarding"}}<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>Stripe test onboarding</title></head>
<body style="font-family:sans-serif;max-width:32rem;margin:3rem auto">
<p><strong>Stripe (local test stand-in)</strong></p>
<h1>Set up payouts for {{.Email}}</h1>
<p>Test mode: no real details are needed.</p>
<form method="post"><button id="stripe-submit" type="submit">Submit test details</button></form>
</body></html>{{end}}
{{define "pay"}}<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>Pay · Stripe test checkout</title></head>
<body style="font-family:sans-serif;max-width:32rem;margin:3rem auto">
<p><strong>Stripe Checkout (local test stand-in)</strong></p>
<h1>{{.ProductName}}</h1>
<p id="amount">{{.Amount}}</p><p>{{.CustomerEmail}}</p>
{{if and (eq .Status "open") .Setup}}<form method="post"><p>Save a card for future charges.</p>
<label><input type="radio" name="card" value="4242424242424242" checked> 4242 4242 4242 4242 (succeeds)</label><br>
<label><input type="radio" name="card" value="4000002760003184"> 4000 0027 6000 3184 (bank asks for authentication off-session)</label><br>
<label><input type="radio" name="card" value="4000000000009995"> 4000 0000 0000 9995 (declined: insufficient funds)</label><br>
<button id="stripe-pay" type="submit">Save card</button></form>
{{else if eq .Status "open"}}<form method="post"><p>Card: 4242 4242 4242 4242 (test)</p><button id="stripe-pay" type="submit">Pay {{.Amount}}</button></form>
{{if .CancelURL}}<p><a href="{{.CancelURL}}">Cancel</a></p>{{end}}{{else}}<p>This checkout is {{.Status}}.</p>{{end}}
</body></html>{{end}}
{{define "portal"}}<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>Billing · Stripe test portal</title></head>
<body style="font-family:sans-serif;max-width:32rem;margin:3rem auto">
<p><strong>Stripe Customer Portal (local test stand-in)</strong></p>
<h1>Your subscriptions</h1>
{{range .Subs}}<p>{{.ID}}: {{.Status}}</p>{{if eq .Status "active"}}<form method="post" action="/portal/{{$.Session.ID}}/cancel/{{.ID}}"><button id="stripe-cancel-{{.ID}}" type="submit">Cancel plan</button></form>{{end}}{{end}}
{{if .Session.ReturnURL}}<p><a href="{{.Session.ReturnURL}}">Return</a></p>{{end}}
</body></html>{{end}}`))

func (s *Server) onboardingPage(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	l, ok := s.links[r.PathValue("link")]
	var email string
	if ok {
		email = s.accounts[l.account].Email
	}
	s.mu.Unlock()
	if !ok || time.Now().After(l.expires) {
		http.Error(w, "This onboarding link is invalid or expired.", http.StatusNotFound)
		return
	}
	pages.ExecuteTemplate(w, "onboarding", map[string]string{"Email": email})
}

func (s *Server) onboardingSubmit(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	l, ok := s.links[r.PathValue("link")]
	if ok {
		a := s.accounts[l.account]
		a.DetailsSubmitted, a.ChargesEnabled, a.PayoutsEnabled = true, true, true
		delete(s.links, r.PathValue("link")) // account links are single-use
	}
	s.mu.Unlock()
	if !ok {
		http.Error(w, "This onboarding link is invalid or expired.", http.StatusNotFound)
		return
	}
	http.Redirect(w, r, l.ret, http.StatusSeeOther)
}

func (s *Server) payPage(w http.ResponseWriter, r *http.Request) {
	cs, ok := s.Session(r.PathValue("id"))
	if !ok {
		http.Error(w, "No such checkout session.", http.StatusNotFound)
		return
	}
	pages.ExecuteTemplate(w, "pay", map[string]any{
		"ProductName": cs.ProductName, "CustomerEmail": cs.CustomerEmail, "Status": cs.Status, "CancelURL": cs.CancelURL,
		"Setup":  cs.Mode == "setup",
		"Amount": fmt.Sprintf("%d.%02d %s", cs.AmountTotal/100, cs.AmountTotal%100, strings.ToUpper(cs.Currency)),
	})
}

func (s *Server) paySubmit(w http.ResponseWriter, r *http.Request) {
	if cs, ok := s.Session(r.PathValue("id")); ok && cs.Mode == "setup" {
		success, err := s.CompleteSetup(r.Context(), cs.ID, r.PostFormValue("card"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		http.Redirect(w, r, success, http.StatusSeeOther)
		return
	}
	success, err := s.Complete(r.Context(), r.PathValue("id"))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	http.Redirect(w, r, success, http.StatusSeeOther)
}

// Complete pays an open session, as the customer pressing Pay, delivers
// checkout.session.completed, and returns the success URL with
// {CHECKOUT_SESSION_ID} filled in. The webhook is delivered before the
// customer is redirected, so the success page sees the payment.
func (s *Server) Complete(ctx context.Context, id string) (string, error) {
	s.mu.Lock()
	cs, ok := s.sessions[id]
	if !ok {
		s.mu.Unlock()
		return "", fmt.Errorf("no such checkout session %s", id)
	}
	if cs.Status != "open" {
		s.mu.Unlock()
		return "", fmt.Errorf("checkout session %s is %s", id, cs.Status)
	}
	cs.Status, cs.PaymentStatus = "complete", "paid"
	if cs.Mode == "subscription" {
		sub := &Subscription{ID: "sub_" + randomID(24), Object: "subscription", Status: "active",
			Customer: "cus_" + randomID(14), Metadata: cs.SubscriptionMetadata, Created: time.Now().Unix()}
		s.subs[sub.ID] = sub
		cs.Customer, cs.Subscription = sub.Customer, sub.ID
	}
	snapshot := *cs
	s.mu.Unlock()
	evID, err := s.emit(ctx, "checkout.session.completed", snapshot)
	if err != nil {
		return "", fmt.Errorf("deliver %s: %w", evID, err)
	}
	return strings.ReplaceAll(snapshot.SuccessURL, "{CHECKOUT_SESSION_ID}", id), nil
}

// Expire expires an open session, as Stripe does at its expires_at (or
// when the session is expired through the API), and delivers
// checkout.session.expired. Tests call it instead of waiting for the time.
func (s *Server) Expire(ctx context.Context, id string) (eventID string, err error) {
	s.mu.Lock()
	cs, ok := s.sessions[id]
	if !ok {
		s.mu.Unlock()
		return "", fmt.Errorf("no such checkout session %s", id)
	}
	if cs.Status != "open" {
		s.mu.Unlock()
		return "", fmt.Errorf("checkout session %s is %s", id, cs.Status)
	}
	cs.Status = "expired"
	snapshot := *cs
	s.mu.Unlock()
	evID, err := s.emit(ctx, "checkout.session.expired", snapshot)
	if err != nil {
		return evID, fmt.Errorf("deliver %s: %w", evID, err)
	}
	return evID, nil
}

// CancelSubscription cancels an active subscription, as the customer or
// Stripe (after failed renewals) does, and delivers
// customer.subscription.deleted.
func (s *Server) CancelSubscription(ctx context.Context, id string) (eventID string, err error) {
	s.mu.Lock()
	sub, ok := s.subs[id]
	if !ok {
		s.mu.Unlock()
		return "", fmt.Errorf("no such subscription %s", id)
	}
	if sub.Status != "active" {
		s.mu.Unlock()
		return "", fmt.Errorf("subscription %s is %s", id, sub.Status)
	}
	sub.Status = "canceled"
	snapshot := *sub
	s.mu.Unlock()
	return s.emit(ctx, "customer.subscription.deleted", snapshot)
}

// emit records an event and delivers it.
func (s *Server) emit(ctx context.Context, typ string, obj any) (string, error) {
	raw, _ := json.Marshal(obj)
	ev := map[string]any{
		"id": "evt_" + randomID(24), "object": "event", "api_version": stripe.APIVersion,
		"created": time.Now().Unix(), "type": typ, "livemode": false, "pending_webhooks": 1,
		"data": map[string]any{"object": json.RawMessage(raw)},
	}
	body, _ := json.Marshal(ev)
	id := ev["id"].(string)
	s.mu.Lock()
	s.events[id] = body
	s.mu.Unlock()
	return id, s.Deliver(ctx, id)
}

// Deliver sends a recorded event (again) to the webhook URL, signed like
// Stripe does. Stripe delivers at least once; tests call it twice to check
// that the receiver is idempotent.
func (s *Server) Deliver(ctx context.Context, eventID string) error {
	s.mu.Lock()
	body, ok := s.events[eventID]
	target := s.cfg.WebhookURL
	s.mu.Unlock()
	if !ok {
		return fmt.Errorf("no such event %s", eventID)
	}
	if target == "" {
		return nil
	}
	var last error
	for attempt := 0; attempt < 3; attempt++ {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json; charset=utf-8")
		req.Header.Set("Stripe-Signature", Sign(body, s.cfg.WebhookSecret, time.Now()))
		resp, err := s.client.Do(req)
		if err != nil {
			last = err
			continue
		}
		resp.Body.Close()
		if resp.StatusCode/100 == 2 {
			return nil
		}
		last = fmt.Errorf("webhook answered %s", resp.Status)
	}
	return last
}

// Events returns the ids of every event emitted so far.
func (s *Server) Events() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var ids []string
	for id := range s.events {
		ids = append(ids, id)
	}
	return ids
}

// Sign is Stripe's webhook signature header for body at t.
func Sign(body []byte, secret string, t time.Time) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(ts + "."))
	mac.Write(body)
	return "t=" + ts + ",v1=" + hex.EncodeToString(mac.Sum(nil))
}
