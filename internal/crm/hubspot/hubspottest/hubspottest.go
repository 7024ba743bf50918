// Package hubspottest is a local stand-in for the part of HubSpot's CRM v3
// API that jetfleet uses, speaking its protocol: Bearer private-app tokens,
// POST /crm/v3/objects/contacts/batch/upsert with idProperty "email" (at
// most 100 inputs, no duplicate ids), 200 with status COMPLETE, 207
// multi-status when some inputs fail (per-input StandardError with the
// input's id in its context), 401 for an unknown token, and 429 with
// Retry-After and HubSpot's rate-limit body when told to. Contacts are kept
// in memory, keyed by email, so an upsert repeated is an update. GET /
// shows them on a small page (and the token to paste), for `jetfleet dev`.
// The payload shapes follow the golden files in ../testdata (see its
// README for where they come from).
package hubspottest

import (
	"context"
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"net"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"jetfleet/internal/crm/hubspot"
)

// DefaultToken is the private-app token the stand-in accepts by default.
const DefaultToken = "pat-na1-00000000-jetf-leet-0000-standin00000"

// Config sets up a Server.
type Config struct {
	Token string // the only token accepted; default DefaultToken
	// Scopes the token grants (token-info answers); default the one
	// exports need, hubspot.Scope.
	Scopes []string
	Addr   string // listen address; default 127.0.0.1:0
}

// Contact is a stored contact.
type Contact struct {
	ID         string
	Properties map[string]string
	Created    time.Time
	Updated    time.Time
}

// Server is the stand-in.
type Server struct {
	URL    string
	token  string
	scopes []string
	srv    *http.Server

	mu       sync.Mutex
	contacts map[string]*Contact // by email
	nextID   int
	reject   map[string]string // email → validation message
	limited  []time.Duration   // Retry-After of the next answers to refuse
	refused  int               // 429s answered
	inputs   int               // inputs received in accepted batches
	batches  int
	after    func(batch int) // called after each accepted batch is answered
}

// Start listens and serves until Close.
func Start(cfg Config) (*Server, error) {
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("hubspot stand-in: %w", err)
	}
	s := New(cfg)
	s.URL = "http://" + ln.Addr().String()
	s.srv = &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
	go s.srv.Serve(ln)
	return s, nil
}

// New returns a stand-in to serve with any server (httptest); set URL.
func New(cfg Config) *Server {
	if cfg.Token == "" {
		cfg.Token = DefaultToken
	}
	if cfg.Scopes == nil {
		cfg.Scopes = []string{hubspot.Scope}
	}
	return &Server{token: cfg.Token, scopes: cfg.Scopes, contacts: map[string]*Contact{}, reject: map[string]string{}, nextID: 51}
}

// Close stops the server.
func (s *Server) Close() error {
	if s.srv == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	return s.srv.Shutdown(ctx)
}

// Token is the accepted private-app token.
func (s *Server) Token() string { return s.token }

// RateLimit makes the next n batch requests answer 429 with Retry-After
// (whole seconds) retryAfter.
func (s *Server) RateLimit(n int, retryAfter time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for range n {
		s.limited = append(s.limited, retryAfter)
	}
}

// RateLimited is how many requests were answered 429.
func (s *Server) RateLimited() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.refused
}

// Reject makes every upsert of email fail validation with message (in a
// 207 answer), as HubSpot refuses a malformed address.
func (s *Server) Reject(email, message string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reject[strings.ToLower(email)] = message
}

// AfterBatch sets f, called with the batch's number (from 1) after each
// accepted batch has been answered.
func (s *Server) AfterBatch(f func(batch int)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.after = f
}

// Contacts returns the stored contacts ordered by email.
func (s *Server) Contacts() []Contact {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Contact, 0, len(s.contacts))
	for _, c := range s.contacts {
		cp := *c
		cp.Properties = map[string]string{}
		for k, v := range c.Properties {
			cp.Properties[k] = v
		}
		out = append(out, cp)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Properties["email"] < out[j].Properties["email"] })
	return out
}

// Inputs is how many inputs accepted batches carried, and how many batches.
func (s *Server) Inputs() (inputs, batches int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.inputs, s.batches
}

// ServeHTTP routes.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.Method == http.MethodPost && r.URL.Path == hubspot.UpsertPath:
		s.upsert(w, r)
	case r.Method == http.MethodPost && r.URL.Path == hubspot.TokenInfoPath:
		s.tokenInfo(w, r)
	case r.Method == http.MethodGet && r.URL.Path == "/":
		s.page(w)
	default:
		writeErr(w, http.StatusNotFound, hubspot.StandardError{Status: "error", Category: "OBJECT_NOT_FOUND", Message: "Resource not found"})
	}
}

func correlation() string {
	return fmt.Sprintf("%08x-%04x-4000-8000-%012x", time.Now().UnixNano()&0xffffffff, time.Now().Nanosecond()&0xffff, time.Now().UnixNano())
}

func writeErr(w http.ResponseWriter, status int, e hubspot.StandardError) {
	e.CorrelationID = correlation()
	w.Header().Set("Content-Type", "application/json;charset=utf-8")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(e)
}

// tokenInfo answers the private-app token introspection: the app's ids
// and scopes for the known token, HubSpot's 401 error otherwise.
func (s *Server) tokenInfo(w http.ResponseWriter, r *http.Request) {
	var req struct {
		TokenKey string `json:"tokenKey"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<16)).Decode(&req); err != nil || req.TokenKey == "" {
		writeErr(w, http.StatusBadRequest, hubspot.StandardError{Status: "error", Category: "VALIDATION_ERROR", Message: "tokenKey is required"})
		return
	}
	if req.TokenKey != s.token {
		writeErr(w, http.StatusUnauthorized, hubspot.StandardError{
			Status: "error", Category: "INVALID_AUTHENTICATION",
			Message: "The access token provided is invalid or has been revoked.",
		})
		return
	}
	w.Header().Set("Content-Type", "application/json;charset=utf-8")
	json.NewEncoder(w).Encode(hubspot.TokenInfo{UserID: 9000001, HubID: 4000001, AppID: 1000001, Scopes: s.scopes})
}

func (s *Server) upsert(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Authorization") != "Bearer "+s.token {
		writeErr(w, http.StatusUnauthorized, hubspot.StandardError{
			Status: "error", Category: "INVALID_AUTHENTICATION",
			Message: "Authentication credentials not found. This API supports OAuth 2.0 authentication and you can find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview",
		})
		return
	}
	s.mu.Lock()
	if len(s.limited) > 0 {
		ra := s.limited[0]
		s.limited = s.limited[1:]
		s.refused++
		s.mu.Unlock()
		w.Header().Set("Retry-After", strconv.Itoa(int(ra.Round(time.Second)/time.Second)))
		writeErr(w, http.StatusTooManyRequests, hubspot.StandardError{
			Status: "error", Category: "RATE_LIMITS", ErrorType: "RATE_LIMIT", PolicyName: "SECONDLY",
			Message: "You have reached your secondly limit.",
		})
		return
	}
	s.mu.Unlock()
	var req struct {
		Inputs []struct {
			IDProperty string            `json:"idProperty"`
			ID         string            `json:"id"`
			Properties map[string]string `json:"properties"`
		} `json:"inputs"`
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 4<<20))
	if err == nil {
		err = json.Unmarshal(body, &req)
	}
	if err != nil {
		writeErr(w, http.StatusBadRequest, hubspot.StandardError{Status: "error", Category: "VALIDATION_ERROR", Message: "Invalid input JSON on line 1: " + err.Error()})
		return
	}
	if len(req.Inputs) == 0 || len(req.Inputs) > hubspot.MaxBatch {
		writeErr(w, http.StatusBadRequest, hubspot.StandardError{Status: "error", Category: "VALIDATION_ERROR",
			Message: fmt.Sprintf("inputs: size must be between 1 and %d", hubspot.MaxBatch)})
		return
	}
	seen := map[string]bool{}
	for _, in := range req.Inputs {
		if in.IDProperty != "email" || in.ID == "" {
			writeErr(w, http.StatusBadRequest, hubspot.StandardError{Status: "error", Category: "VALIDATION_ERROR",
				Message: "idProperty must be a unique property of contacts (email) and id must be set"})
			return
		}
		id := strings.ToLower(in.ID)
		if seen[id] {
			writeErr(w, http.StatusBadRequest, hubspot.StandardError{Status: "error", Category: "VALIDATION_ERROR",
				Message: "Duplicate IDs found in batch input: [" + id + "]. IDs must be unique", Context: map[string][]string{"ids": {id}}})
			return
		}
		seen[id] = true
	}
	now := time.Now().UTC()
	resp := hubspot.BatchResponse{Status: "COMPLETE", StartedAt: now, Results: []hubspot.Result{}}
	s.mu.Lock()
	for _, in := range req.Inputs {
		id := strings.ToLower(in.ID)
		if msg, bad := s.reject[id]; bad || !strings.Contains(id, "@") {
			if !bad {
				msg = "Email address " + id + " is invalid"
			}
			resp.Errors = append(resp.Errors, hubspot.StandardError{Status: "error", Category: "VALIDATION_ERROR",
				Message: "Property values were not valid: " + msg, Context: map[string][]string{"ids": {id}}})
			continue
		}
		c, ok := s.contacts[id]
		if !ok {
			c = &Contact{ID: strconv.Itoa(s.nextID), Properties: map[string]string{}, Created: now}
			s.nextID++
			s.contacts[id] = c
		}
		for k, v := range in.Properties {
			c.Properties[k] = v
		}
		c.Properties["email"] = id
		c.Updated = now
		props := map[string]string{}
		for k, v := range c.Properties {
			props[k] = v
		}
		props["hs_object_id"] = c.ID
		resp.Results = append(resp.Results, hubspot.Result{ID: c.ID, Properties: props, CreatedAt: c.Created, UpdatedAt: now, New: !ok})
	}
	s.inputs += len(req.Inputs)
	s.batches++
	batch, after := s.batches, s.after
	s.mu.Unlock()
	resp.NumErrors = len(resp.Errors)
	resp.CompletedAt = time.Now().UTC()
	status := http.StatusOK
	if resp.NumErrors > 0 {
		status = http.StatusMultiStatus
	}
	w.Header().Set("Content-Type", "application/json;charset=utf-8")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(resp)
	if f, ok := w.(http.Flusher); ok {
		f.Flush()
	}
	if after != nil {
		after(batch)
	}
}

var pageTmpl = template.Must(template.New("p").Parse(`<!doctype html><html lang="en"><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>HubSpot stand-in</title>
<style>body{font:15px system-ui,sans-serif;margin:1rem;max-width:60rem}table{border-collapse:collapse;width:100%}td,th{border-bottom:1px solid #ddd;padding:.3rem;text-align:left;word-break:break-all}code{word-break:break-all}</style>
<h1>HubSpot stand-in</h1>
<p>Private-app token to paste into jetfleet's integration settings: <code id="token">{{.Token}}</code></p>
<h2>Contacts ({{len .Contacts}})</h2>
<table id="contacts"><tr><th>id</th><th>email</th><th>first name</th><th>last name</th><th>updated</th></tr>
{{range .Contacts}}<tr><td>{{.ID}}</td><td>{{index .Properties "email"}}</td><td>{{index .Properties "firstname"}}</td><td>{{index .Properties "lastname"}}</td><td>{{.Updated.Format "2006-01-02 15:04:05"}}</td></tr>
{{end}}</table></html>`))

func (s *Server) page(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	pageTmpl.Execute(w, struct {
		Token    string
		Contacts []Contact
	}{s.token, s.Contacts()})
}
