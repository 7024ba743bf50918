// Package salesforcetest is a local stand-in for the parts of Salesforce
// that jetfleet uses, speaking its protocol: the OAuth 2.0 web-server flow
// (GET /services/oauth2/authorize shows an "Allow" page and redirects back
// with code and state; POST /services/oauth2/token with authorization_code
// — checking client secret, redirect URI and the PKCE S256 verifier — and
// refresh_token grants, answering Salesforce's token JSON with instance_url
// or its {"error","error_description"} body), and sObject Collections
// upsert (PATCH /services/data/vXX.X/composite/sobjects/Contact/<field>:
// Bearer access token, at most 200 records with attributes.type Contact,
// per-record {id, success, errors, created}; 401 INVALID_SESSION_ID for an
// expired token; 403 REQUEST_LIMIT_EXCEEDED when told to). The instance URL
// is the stand-in itself. GET / lists the contacts, for `jetfleet dev`.
// The payload shapes follow the golden files in ../testdata.
package salesforcetest

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"jetfleet/internal/crm/salesforce"
)

// Defaults of the connected app the stand-in knows.
const (
	DefaultClientID     = "3MVG9jetfleetStandInConsumerKey"
	DefaultClientSecret = "jetfleet-standin-consumer-secret"
)

// Config sets up a Server.
type Config struct {
	ClientID, ClientSecret string // defaults DefaultClientID, DefaultClientSecret
	Addr                   string // default 127.0.0.1:0
	ExternalIDField        string // default salesforce.DefaultExternalIDField
}

// Contact is a stored contact.
type Contact struct {
	ID     string
	Fields map[string]any
}

type grant struct {
	redirect, challenge string
}

// Server is the stand-in.
type Server struct {
	URL string
	cfg Config
	srv *http.Server

	mu        sync.Mutex
	codes     map[string]grant
	refresh   map[string]bool // refresh tokens issued and not revoked
	access    map[string]bool // live access tokens
	contacts  map[string]*Contact
	nextID    int
	limited   int
	reject    map[string]string
	refreshes int
	batches   int
	inputs    int
	after     func(batch int)
}

// Start listens and serves until Close.
func Start(cfg Config) (*Server, error) {
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("salesforce stand-in: %w", err)
	}
	s := New(cfg)
	s.URL = "http://" + ln.Addr().String()
	s.srv = &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
	go s.srv.Serve(ln)
	return s, nil
}

// New returns a stand-in to serve with any server (httptest); set URL.
func New(cfg Config) *Server {
	if cfg.ClientID == "" {
		cfg.ClientID = DefaultClientID
	}
	if cfg.ClientSecret == "" {
		cfg.ClientSecret = DefaultClientSecret
	}
	if cfg.ExternalIDField == "" {
		cfg.ExternalIDField = salesforce.DefaultExternalIDField
	}
	return &Server{cfg: cfg, codes: map[string]grant{}, refresh: map[string]bool{}, access: map[string]bool{},
		contacts: map[string]*Contact{}, reject: map[string]string{}, nextID: 1}
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

// ClientID and ClientSecret are the connected app's.
func (s *Server) ClientID() string     { return s.cfg.ClientID }
func (s *Server) ClientSecret() string { return s.cfg.ClientSecret }

// ExpireSessions invalidates every access token, as a session timeout does.
func (s *Server) ExpireSessions() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.access = map[string]bool{}
}

// RevokeAll revokes every refresh token (the app was disconnected).
func (s *Server) RevokeAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.refresh, s.access = map[string]bool{}, map[string]bool{}
}

// LimitNext makes the next n upserts answer REQUEST_LIMIT_EXCEEDED.
func (s *Server) LimitNext(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.limited += n
}

// Reject makes every upsert of email fail with message.
func (s *Server) Reject(email, message string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reject[strings.ToLower(email)] = message
}

// AfterBatch sets f, called with the batch's number after each accepted
// upsert has been answered.
func (s *Server) AfterBatch(f func(batch int)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.after = f
}

// Refreshes counts refresh_token grants served.
func (s *Server) Refreshes() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.refreshes
}

// Contacts returns the stored contacts ordered by external id.
func (s *Server) Contacts() []Contact {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Contact, 0, len(s.contacts))
	for _, c := range s.contacts {
		f := map[string]any{}
		for k, v := range c.Fields {
			f[k] = v
		}
		out = append(out, Contact{ID: c.ID, Fields: f})
	}
	sort.Slice(out, func(i, j int) bool {
		return fmt.Sprint(out[i].Fields[s.cfg.ExternalIDField]) < fmt.Sprint(out[j].Fields[s.cfg.ExternalIDField])
	})
	return out
}

var upsertPath = regexp.MustCompile(`^/services/data/v\d+\.\d/composite/sobjects/([A-Za-z_]+)/([A-Za-z0-9_]+)$`)

// ServeHTTP routes.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.URL.Path == "/services/oauth2/authorize":
		s.authorize(w, r)
	case r.Method == http.MethodPost && r.URL.Path == "/services/oauth2/token":
		s.token(w, r)
	case r.Method == http.MethodPatch && upsertPath.MatchString(r.URL.Path):
		s.upsert(w, r)
	case r.Method == http.MethodGet && r.URL.Path == "/":
		s.page(w)
	default:
		apiErrors(w, http.StatusNotFound, "NOT_FOUND", "The requested resource does not exist")
	}
}

func random(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func apiErrors(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode([]salesforce.APIError{{Message: msg, ErrorCode: code}})
}

func oauthError(w http.ResponseWriter, status int, code, desc string) {
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]string{"error": code, "error_description": desc})
}

var allowPage = template.Must(template.New("a").Parse(`<!doctype html><html lang="en"><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>Allow access? · Salesforce stand-in</title>
<style>body{font:15px system-ui,sans-serif;margin:1rem;max-width:40rem}button{font-size:1rem;padding:.5rem 1rem}</style>
<h1>Allow access?</h1><p>jetfleet is asking to access your (stand-in) Salesforce org: manage data (api), perform requests at any time (refresh_token).</p>
<form method="post"><input type="hidden" name="q" value="{{.}}"><button type="submit" id="allow">Allow</button></form></html>`))

// authorize shows the consent page (GET) and, when allowed (POST),
// redirects to the redirect URI with a one-time code bound to the PKCE
// challenge.
func (s *Server) authorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if r.Method == http.MethodPost {
		r.ParseForm()
		var err error
		if q, err = url.ParseQuery(r.PostFormValue("q")); err != nil {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
	}
	redirect := q.Get("redirect_uri")
	switch {
	case q.Get("client_id") != s.cfg.ClientID:
		http.Error(w, "error=invalid_client_id&error_description=client identifier invalid", http.StatusBadRequest)
		return
	case q.Get("response_type") != "code":
		http.Error(w, "error=unsupported_response_type&error_description=response type not supported", http.StatusBadRequest)
		return
	case redirect == "":
		http.Error(w, "error=redirect_uri_mismatch&error_description=redirect_uri must match configuration", http.StatusBadRequest)
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		allowPage.Execute(w, q.Encode())
		return
	}
	back, _ := url.Parse(redirect)
	bq := back.Query()
	if q.Get("code_challenge") == "" || q.Get("code_challenge_method") != "S256" {
		bq.Set("error", "invalid_request")
		bq.Set("error_description", "missing required code challenge")
	} else {
		code := "aPrx" + random(16)
		s.mu.Lock()
		s.codes[code] = grant{redirect: redirect, challenge: q.Get("code_challenge")}
		s.mu.Unlock()
		bq.Set("code", code)
	}
	bq.Set("state", q.Get("state"))
	back.RawQuery = bq.Encode()
	http.Redirect(w, r, back.String(), http.StatusFound)
}

func (s *Server) token(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		oauthError(w, http.StatusBadRequest, "invalid_request", "bad form")
		return
	}
	f := r.PostForm
	if f.Get("client_id") != s.cfg.ClientID {
		oauthError(w, http.StatusBadRequest, "invalid_client_id", "client identifier invalid")
		return
	}
	if f.Get("client_secret") != s.cfg.ClientSecret {
		oauthError(w, http.StatusBadRequest, "invalid_client", "invalid client credentials")
		return
	}
	now := time.Now()
	resp := map[string]string{
		"instance_url": s.URL, "id": s.URL + "/id/00Dxx0000001gPLEAY/005xx000001SwiUAAS",
		"token_type": "Bearer", "issued_at": strconv.FormatInt(now.UnixMilli(), 10), "scope": "refresh_token api",
	}
	s.mu.Lock()
	switch f.Get("grant_type") {
	case "authorization_code":
		g, ok := s.codes[f.Get("code")]
		delete(s.codes, f.Get("code"))
		sum := sha256.Sum256([]byte(f.Get("code_verifier")))
		switch {
		case !ok:
			s.mu.Unlock()
			oauthError(w, http.StatusBadRequest, "invalid_grant", "invalid authorization code")
			return
		case g.redirect != f.Get("redirect_uri"):
			s.mu.Unlock()
			oauthError(w, http.StatusBadRequest, "redirect_uri_mismatch", "redirect_uri must match configuration")
			return
		case base64.RawURLEncoding.EncodeToString(sum[:]) != g.challenge:
			s.mu.Unlock()
			oauthError(w, http.StatusBadRequest, "invalid_grant", "invalid code verifier")
			return
		}
		rt := "5Aep861" + random(24)
		s.refresh[rt] = true
		resp["refresh_token"] = rt
	case "refresh_token":
		if !s.refresh[f.Get("refresh_token")] {
			s.mu.Unlock()
			oauthError(w, http.StatusBadRequest, "invalid_grant", "expired access/refresh token")
			return
		}
		s.refreshes++
	default:
		s.mu.Unlock()
		oauthError(w, http.StatusBadRequest, "unsupported_grant_type", "grant type not supported")
		return
	}
	at := "00Dxx0000001gPL!" + random(24)
	s.access[at] = true
	s.mu.Unlock()
	resp["access_token"] = at
	resp["signature"] = base64.StdEncoding.EncodeToString([]byte(random(16)))
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	json.NewEncoder(w).Encode(resp)
}

func (s *Server) upsert(w http.ResponseWriter, r *http.Request) {
	m := upsertPath.FindStringSubmatch(r.URL.Path)
	s.mu.Lock()
	okToken := s.access[strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")]
	limited := s.limited > 0
	if okToken && limited {
		s.limited--
	}
	s.mu.Unlock()
	switch {
	case !okToken:
		apiErrors(w, http.StatusUnauthorized, "INVALID_SESSION_ID", "Session expired or invalid")
		return
	case limited:
		apiErrors(w, http.StatusForbidden, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.")
		return
	case m[1] != "Contact":
		apiErrors(w, http.StatusNotFound, "NOT_FOUND", "The requested resource does not exist")
		return
	case m[2] != s.cfg.ExternalIDField:
		apiErrors(w, http.StatusBadRequest, "INVALID_FIELD", "Field name provided, "+m[2]+" is not an External ID or indexed field for Contact")
		return
	}
	var req struct {
		AllOrNone bool             `json:"allOrNone"`
		Records   []map[string]any `json:"records"`
	}
	b, err := io.ReadAll(io.LimitReader(r.Body, 8<<20))
	if err == nil {
		err = json.Unmarshal(b, &req)
	}
	if err != nil {
		apiErrors(w, http.StatusBadRequest, "JSON_PARSER_ERROR", "Unexpected character: "+err.Error())
		return
	}
	if len(req.Records) == 0 || len(req.Records) > salesforce.MaxBatch {
		apiErrors(w, http.StatusBadRequest, "EXCEEDED_ID_LIMIT", fmt.Sprintf("Record limit reached. Cannot submit more than %d records into this call", salesforce.MaxBatch))
		return
	}
	results := make([]salesforce.UpsertResult, 0, len(req.Records))
	s.mu.Lock()
	for _, rec := range req.Records {
		attrs, _ := rec["attributes"].(map[string]any)
		ext, _ := rec[m[2]].(string)
		ext = strings.ToLower(ext)
		last, _ := rec["LastName"].(string)
		fail := func(code, msg string, fields ...string) {
			results = append(results, salesforce.UpsertResult{Success: false, Errors: []salesforce.APIError{{StatusCode: code, Message: msg, Fields: fields}}})
		}
		switch {
		case attrs == nil || attrs["type"] != "Contact":
			fail("INVALID_TYPE", "Must send a concrete entity type.")
			continue
		case ext == "":
			fail("MISSING_ARGUMENT", m[2]+" not specified", m[2])
			continue
		case strings.TrimSpace(last) == "":
			fail("REQUIRED_FIELD_MISSING", "Required fields are missing: [LastName]", "LastName")
			continue
		}
		if msg, bad := s.reject[ext]; bad || !strings.Contains(ext, "@") {
			if !bad {
				msg = "Email: invalid email address: " + ext
			}
			fail("INVALID_EMAIL_ADDRESS", msg, "Email")
			continue
		}
		c, ok := s.contacts[ext]
		if !ok {
			c = &Contact{ID: fmt.Sprintf("003xx%013d", s.nextID), Fields: map[string]any{}}
			s.nextID++
			s.contacts[ext] = c
		}
		for k, v := range rec {
			if k != "attributes" {
				c.Fields[k] = v
			}
		}
		c.Fields[m[2]] = ext
		results = append(results, salesforce.UpsertResult{ID: c.ID, Success: true, Errors: []salesforce.APIError{}, Created: !ok})
	}
	s.batches++
	s.inputs += len(req.Records)
	batch, after := s.batches, s.after
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	json.NewEncoder(w).Encode(results)
	if after != nil {
		after(batch)
	}
}

var pageTmpl = template.Must(template.New("p").Parse(`<!doctype html><html lang="en"><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>Salesforce stand-in</title>
<style>body{font:15px system-ui,sans-serif;margin:1rem;max-width:60rem}table{border-collapse:collapse;width:100%}td,th{border-bottom:1px solid #ddd;padding:.3rem;text-align:left;word-break:break-all}</style>
<h1>Salesforce stand-in</h1><h2>Contacts ({{len .}})</h2>
<table id="contacts"><tr><th>id</th><th>email</th><th>first name</th><th>last name</th></tr>
{{range .}}<tr><td>{{.ID}}</td><td>{{index .Fields "Email"}}</td><td>{{index .Fields "FirstName"}}</td><td>{{index .Fields "LastName"}}</td></tr>
{{end}}</table></html>`))

func (s *Server) page(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	pageTmpl.Execute(w, s.Contacts())
}
