// Package web is the edge: the router, the middleware (sessions, CSRF,
// security headers, panic recovery), the site's own pages and navigation,
// and the health and metrics endpoints. Each product adds its handlers and
// templ components in its own sub-package; this package wires them. What
// every product shares (the layout, page and error answers, API keys) is in
// web/site.
package web

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"jetfleet/internal/abtest"
	"jetfleet/internal/accounts"
	"jetfleet/internal/blob"
	"jetfleet/internal/crm/hubspot"
	"jetfleet/internal/crm/salesforce"
	"jetfleet/internal/eventpost"
	"jetfleet/internal/events"
	"jetfleet/internal/payments"
	"jetfleet/internal/sealed"
	"jetfleet/internal/youtube"
	"jetfleet/subjects"
	"jetfleet/web/eventsdesk"
	"jetfleet/web/media"
	"jetfleet/web/session"
	"jetfleet/web/site"
)

//go:embed static
var static embed.FS

// Config is the edge's own configuration.
type Config struct {
	SessionSecret []byte // at least 32 bytes
	SecureCookies bool   // true when the site is served over https
	BaseURL       string // public URL of the site, for links in mail
	// Outbox serves /outbox, the mail a development install keeps instead
	// of sending. Never on a public site: it shows everyone's sign-in links.
	Outbox bool
	// ServeMetrics serves /metrics on the site itself. Only `jetfleet dev`
	// (bound to loopback) does; an edge serves them on its own listener
	// (METRICS_ADDR), out of the public site's reach.
	ServeMetrics bool
	// CounterRetention is how old a Counter API event's timestamp may be
	// (COUNTER_RETENTION, the VIEWS stream's MaxAge); 0 means
	// subjects.CounterDefaultRetention.
	CounterRetention time.Duration
	// CounterBodyTimeout bounds the reading of one Counter API request
	// body (a slow client is cut off with 408); 0 means 10s.
	CounterBodyTimeout time.Duration
	// TrackerHiResPerUser caps the videos one premium user has sampled
	// every 2 minutes at once (TRACKER_HIRES_PER_USER); 0 means
	// tracking.DefaultHiResPerUser.
	TrackerHiResPerUser int
	// MediaMaxUploadBytes bounds one video upload; 0 means 2 GiB.
	MediaMaxUploadBytes int64
	// BlobOrigin is the origin of presigned blob URLs ("https://s3.host")
	// when blobs are on S3: pages may fetch video segments from it. Empty
	// when the edge serves blobs itself.
	BlobOrigin string
	// EventsPostDelay is how long after an event's end its post-event
	// steps run (EVENTS_POST_DELAY); 0 means subjects.DefaultEventsPostDelay.
	EventsPostDelay time.Duration
	// EventsMemberRecheck is how often an open live desk socket confirms
	// its viewer is still allowed; 0 means events.MemberRecheck (tests
	// shorten it).
	EventsMemberRecheck time.Duration
	// EventsDashboardEvery is how often an admin's live dashboard gets
	// fresh figures and team activity; 0 means 10 s (tests shorten it).
	EventsDashboardEvery time.Duration
	// EventsFees is the platform fee's price table (EVENTS_FEE_*), shown
	// to organisers.
	EventsFees eventpost.Prices
	// Demo is `jetfleet dev --demo`: pages offer demo-only actions (the
	// Tracker's "send the digest now").
	Demo bool
}

// Deps are the outside parts the edge uses.
type Deps struct {
	NATS       *nats.Conn
	JS         jetstream.JetStream
	ClickHouse driver.Conn
	// Blobs serves /blobs/ when blobs live in the JetStream object store;
	// nil when they are on S3 and browsers fetch presigned URLs.
	Blobs    http.Handler
	Gatherer prometheus.Gatherer
	Log      *slog.Logger
	// BlobStore hands out URLs of stored blobs (tracker thumbnails); nil
	// shows pages without them.
	BlobStore blob.Store
	// YouTube checks what users track; nil uses youtube.com itself.
	YouTube *youtube.Client
	// Payments is Stripe for event tickets; nil sells free tickets only.
	Payments *payments.Client
	// Tokens encrypts OAuth and CRM tokens kept at rest (TOKEN_KEY).
	Tokens *sealed.Box
	// ABTests runs the Tracker's A/B tests; nil serves no A/B pages.
	ABTests *abtest.Service
	// Salesforce connects organisers' Salesforce for event exports; nil
	// (or without a client id) hides it.
	Salesforce *salesforce.Client
	// HubSpot checks organisers' private-app tokens when they save them;
	// nil asks HubSpot itself.
	HubSpot *hubspot.Client
}

// Server is the edge's HTTP handler.
type Server struct {
	cfg      Config
	deps     Deps
	sessions *session.Manager
	handler  http.Handler
	// api holds JSON APIs authenticated by API key, mounted under /api/
	// outside the session and CSRF middleware.
	api *http.ServeMux
	// signedIn is the one sign-in gate every product's signed-in pages
	// pass through (session.Manager.Gate).
	signedIn func(http.Handler) http.Handler
	// submitGate authorizes a team submission before its body is read
	// (web/eventsdesk, when Events is mounted).
	submitGate func(ctx context.Context, path, uid, email string) (int, string)
	// identify is the same check for public pages that do more for a
	// signed-in person (session.Manager.Identify).
	identify func(http.Handler) http.Handler
	// pages renders the edge's own pages (home, sign-in).
	pages site.Pages
}

// New builds the edge. The SESSIONS bucket must exist (subjects.Provision).
func New(ctx context.Context, cfg Config, deps Deps) (*Server, error) {
	kv, err := deps.JS.KeyValue(ctx, subjects.SessionsBucket)
	if err != nil {
		return nil, fmt.Errorf("open sessions bucket: %w", err)
	}
	sessions, err := session.New(kv, session.Config{Secret: cfg.SessionSecret, Secure: cfg.SecureCookies}, deps.Log)
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, deps: deps, sessions: sessions, api: http.NewServeMux(), pages: site.Pages{Log: deps.Log}}
	store, err := accounts.Open(ctx, deps.JS, accounts.Config{})
	if err != nil {
		return nil, err
	}
	exists := func(ctx context.Context, id string) error {
		_, err := store.User(ctx, id)
		if errors.Is(err, accounts.ErrNotFound) {
			return session.ErrNoAccount
		}
		return err
	}
	s.signedIn = sessions.Gate(exists)
	s.identify = sessions.Identify(exists)

	pages := http.NewServeMux()
	pages.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		s.pages.Render(w, r, http.StatusOK, "Home", home())
	})
	auth, err := newAuthHandlers(s, store)
	if err != nil {
		return nil, err
	}
	auth.mount(pages)
	if err := s.mountProducts(ctx, pages); err != nil {
		return nil, err
	}

	root := http.NewServeMux()
	root.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok\n")) })
	root.HandleFunc("GET /readyz", s.ready)
	if cfg.ServeMetrics {
		root.Handle("GET /metrics", promhttp.HandlerFor(deps.Gatherer, promhttp.HandlerOpts{}))
	}
	root.Handle("GET /static/", http.FileServerFS(static))
	if deps.Blobs != nil {
		root.Handle("GET /blobs/", deps.Blobs)
		// Direct uploads to presigned URLs (A/B test thumbnails); the
		// signature, not a session, authorizes them.
		root.Handle("PUT /blobs/", deps.Blobs)
	}
	root.Handle("/api/", s.api)
	root.Handle("/", limitForms(s.maySubmit, sessions.Middleware(pages)))
	s.handler = s.recoverer(securityHeaders(site.WithNav(navigation())(root), cfg.BlobOrigin))
	return s, nil
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.handler.ServeHTTP(w, r) }

// ready reports whether the edge can reach what it depends on. Load
// balancers route only to ready edges.
func (s *Server) ready(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	checks := map[string]string{"nats": "ok", "clickhouse": "ok"}
	status := http.StatusOK
	if s.deps.NATS.Status() != nats.CONNECTED {
		checks["nats"] = "not connected: " + s.deps.NATS.Status().String()
		status = http.StatusServiceUnavailable
	} else if _, err := s.deps.JS.AccountInfo(ctx); err != nil {
		checks["nats"] = "jetstream: " + err.Error()
		status = http.StatusServiceUnavailable
	}
	if s.deps.ClickHouse == nil {
		checks["clickhouse"] = "not configured"
		status = http.StatusServiceUnavailable
	} else if err := s.deps.ClickHouse.Ping(ctx); err != nil {
		checks["clickhouse"] = err.Error()
		status = http.StatusServiceUnavailable
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(checks)
}

func securityHeaders(next http.Handler, blobOrigin string) http.Handler {
	// Video players fetch segments with XHR and play them from blob: URLs
	// (MediaSource); segments come from the edge or from S3.
	csp := "default-src 'self'; img-src 'self' data: https:; media-src 'self' blob:; frame-ancestors 'none'"
	if blobOrigin != "" {
		csp = "default-src 'self'; img-src 'self' data: https:; media-src 'self' blob: " + blobOrigin + "; connect-src 'self' " + blobOrigin + "; frame-ancestors 'none'"
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "same-origin")
		h.Set("X-Frame-Options", "DENY")
		if !strings.HasPrefix(r.URL.Path, "/blobs/") {
			h.Set("Content-Security-Policy", csp)
		}
		next.ServeHTTP(w, r)
	})
}

// Page forms are small: text fields and a CSRF token. File uploads, when a
// product takes them, go through their own route with its own limit.
const (
	maxFormBytes   = 1 << 20
	formBodyWithin = 30 * time.Second
)

// limitForms bounds what an unsafe page request may send before anything
// reads it (the CSRF check parses the form): at most maxFormBytes within
// formBodyWithin, and no multipart bodies, which would otherwise be spooled
// to temporary files before the request is known to be legitimate. The
// one multipart route (a team's submission) is read only when maySubmit,
// which reads nothing of the body, lets its sender through: a signed-in
// member of one of the event's teams (an anonymous session's CSRF token
// is anyone's, and any account could otherwise fill the disk).
func limitForms(maySubmit func(*http.Request) (int, string), next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Method {
		case http.MethodGet, http.MethodHead, http.MethodOptions:
			next.ServeHTTP(w, r)
			return
		}
		if r.Method == http.MethodPost && r.URL.Path == media.UploadPath {
			// The video upload takes the file as its body, with its own
			// limit and deadline (web/media).
			next.ServeHTTP(w, r)
			return
		}
		if r.Method == http.MethodPost && eventsdesk.IsSubmitPath(r.URL.Path) {
			if status, msg := maySubmit(r); status != 0 {
				http.Error(w, msg, status)
				return
			}
			// A team's submission takes one file, multipart (web/eventsdesk
			// bounds it).
			eventsdesk.LimitUpload(events.DefaultMaxSubmissionFile, next).ServeHTTP(w, r)
			return
		}
		if ct := r.Header.Get("Content-Type"); strings.HasPrefix(strings.ToLower(strings.TrimSpace(ct)), "multipart/") {
			http.Error(w, "This form does not take file uploads.", http.StatusUnsupportedMediaType)
			return
		}
		if r.ContentLength > maxFormBytes {
			http.Error(w, fmt.Sprintf("This form sent %d bytes; forms take at most %d.", r.ContentLength, maxFormBytes), http.StatusRequestEntityTooLarge)
			return
		}
		// Not every ResponseWriter supports deadlines (tests' recorders): then
		// the server's own timeouts are what bound the read.
		_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(formBodyWithin))
		r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
		if err := r.ParseForm(); err != nil {
			var tooBig *http.MaxBytesError
			if errors.As(err, &tooBig) {
				http.Error(w, fmt.Sprintf("This form sent more than %d bytes, the most a form takes.", maxFormBytes), http.StatusRequestEntityTooLarge)
				return
			}
			http.Error(w, "The form could not be read: "+err.Error(), http.StatusBadRequest)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// maySubmit tells, reading nothing of r's body, whether its sender may
// post a team submission: 0 when so, else the status and message that
// refuse it unread.
func (s *Server) maySubmit(r *http.Request) (int, string) {
	u, ok, err := s.sessions.RequestUser(r)
	if err != nil {
		s.deps.Log.Error("session of a submission", "err", err)
		return http.StatusServiceUnavailable, "Sessions are unavailable right now; try again in a moment."
	}
	if !ok {
		return http.StatusForbidden, "Sign in with the address you registered to submit your team's project."
	}
	if s.submitGate == nil {
		return http.StatusNotFound, "There are no submissions on this site."
	}
	return s.submitGate(r.Context(), r.URL.Path, u.ID, u.Email)
}

// recoverer turns a handler panic into a 500 and a log line, so one bad
// request cannot take the edge down.
func (s *Server) recoverer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if err, ok := v.(error); ok && errors.Is(err, http.ErrAbortHandler) {
					panic(v)
				}
				s.deps.Log.Error("handler panicked", "path", r.URL.Path, "panic", v, "stack", string(debug.Stack()))
				http.Error(w, "Something went wrong on our side; it has been logged.", http.StatusInternalServerError)
			}
		}()
		next.ServeHTTP(w, r)
	})
}
