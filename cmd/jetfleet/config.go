package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"

	"jetfleet/subjects"
)

// config is everything jetfleet can be told, from flags or the environment.
// Flags win over the environment; both are described once, in settings().
type config struct {
	NATSURL      string
	NATSUser     string
	NATSPassword string
	NATSCreds    string
	NATSNKey     string
	NATSTLSCA    string
	NATSTLSCert  string
	NATSTLSKey   string
	Replicas     int
	// EnricherStateShards is how many KV buckets per kind the Enricher's
	// state is spread over; provisioning records it on INPUT for workers.
	EnricherStateShards int
	// EnricherHold, a Go duration, turns on holding lessons whose user or
	// subscription is not known yet (0, the default: off); see
	// enricher.Config.Hold.
	EnricherHold string

	ClickHouseURL string

	S3Endpoint  string
	S3AccessKey string
	S3SecretKey string
	S3Bucket    string
	S3Region    string
	S3UseSSL    bool

	HTTPAddr      string
	MetricsAddr   string
	BaseURL       string
	SessionSecret string
	// TokenKey encrypts secrets kept at rest (OAuth and CRM tokens); see
	// internal/sealed.
	TokenKey string

	SMTPHost     string
	SMTPPort     int
	SMTPUsername string
	SMTPPassword string
	SMTPFrom     string
	SMTPTLS      string

	DataDir  string
	LogLevel string
	Roles    string

	StripeSecretKey     string
	StripeWebhookSecret string
	StripeAPIBase       string

	// Organisers' CRMs for event exports (internal/crm).
	HubSpotAPIBase            string
	SalesforceLoginURL        string
	SalesforceClientID        string
	SalesforceClientSecret    string
	SalesforceExternalIDField string

	YouTubeURL         string
	YouTubeThumbURL    string
	YouTubeRate        int
	TrackerConcurrency int
	// TrackerHiResPerUser caps a premium user's videos at high resolution.
	TrackerHiResPerUser int
	// TrackerSlot, when set (jetfleet dev --demo), shrinks the tracker's
	// sampling slots so faster ticks each make a sample.
	TrackerSlot time.Duration

	// Google OAuth and the YouTube Data API, for Tracker A/B tests.
	GoogleClientID     string
	GoogleClientSecret string
	GoogleOAuthURL     string
	GoogleTokenURL     string
	GoogleAPIURL       string
	YouTubeQuotaPerDay int
	// ABTestDemo (jetfleet dev --demo) offers one-minute A/B test slots.
	ABTestDemo bool

	// CounterRetention is how long VIEWS keeps raw counter events (and so
	// how old an event's timestamp may be): a Go duration or whole days
	// ("7d"); see counterRetention.
	CounterRetention string

	// EventsPostDelay is how long after an event's end its post-event
	// steps run (a Go duration); the fee's price table follows.
	EventsPostDelay           string
	EventsFeeFreeParticipants int
	EventsFeePerParticipant   int
	EventsFeeCurrency         string
}

// setting describes one configuration value: its environment variable, its
// flag, its default and whether it is secret (masked by `jetfleet config`).
type setting struct {
	env, flag, def, usage string
	secret                bool
	str                   *string
	num                   *int
	boolean               *bool
}

func (c *config) settings() []setting {
	return []setting{
		{env: "NATS_URL", flag: "nats-url", def: "nats://127.0.0.1:4222", usage: "NATS server URL(s), comma-separated", str: &c.NATSURL},
		{env: "NATS_USER", flag: "nats-user", usage: "NATS user name (with NATS_PASSWORD; jetfleet dev generates its own)", str: &c.NATSUser},
		{env: "NATS_PASSWORD", flag: "nats-password", usage: "NATS password of NATS_USER", str: &c.NATSPassword, secret: true},
		{env: "NATS_CREDS", flag: "nats-creds", usage: "NATS credentials file (JWT + NKey)", str: &c.NATSCreds},
		{env: "NATS_NKEY", flag: "nats-nkey", usage: "NATS NKey seed file", str: &c.NATSNKey},
		{env: "NATS_TLS_CA", flag: "nats-tls-ca", usage: "CA certificate to verify the NATS server", str: &c.NATSTLSCA},
		{env: "NATS_TLS_CERT", flag: "nats-tls-cert", usage: "client certificate for NATS mutual TLS", str: &c.NATSTLSCert},
		{env: "NATS_TLS_KEY", flag: "nats-tls-key", usage: "client key for NATS mutual TLS", str: &c.NATSTLSKey},
		{env: "JETSTREAM_REPLICAS", flag: "replicas", def: "1", usage: "replicas of every stream and bucket (1, or 3 on a cluster)", num: &c.Replicas},
		{env: "ENRICHER_STATE_SHARDS", flag: "enricher-state-shards", def: "4", usage: "KV buckets per kind of Enricher state (8 for 500M rows); fixed once state is loaded", num: &c.EnricherStateShards},
		{env: "ENRICHER_HOLD", flag: "enricher-hold", def: "0s", usage: "hold a lesson whose user or subscription is unknown for up to this long (and its user's later events behind it), for producers that cannot keep per-user order; 0s: off, lessons are enriched at once as of their place in the stream", str: &c.EnricherHold},
		{env: "CLICKHOUSE_URL", flag: "clickhouse-url", usage: "ClickHouse native DSN clickhouse://user:pass@host:9000/db (dev: empty starts a local server)", str: &c.ClickHouseURL, secret: true},
		{env: "S3_ENDPOINT", flag: "s3-endpoint", usage: "S3-compatible endpoint host:port (empty: blobs in the JetStream object store)", str: &c.S3Endpoint},
		{env: "S3_ACCESS_KEY", flag: "s3-access-key", usage: "S3 access key", str: &c.S3AccessKey},
		{env: "S3_SECRET_KEY", flag: "s3-secret-key", usage: "S3 secret key", str: &c.S3SecretKey, secret: true},
		{env: "S3_BUCKET", flag: "s3-bucket", def: "jetfleet", usage: "S3 bucket", str: &c.S3Bucket},
		{env: "S3_REGION", flag: "s3-region", usage: "S3 region", str: &c.S3Region},
		{env: "S3_USE_SSL", flag: "s3-use-ssl", def: "false", usage: "use https for S3", boolean: &c.S3UseSSL},
		{env: "HTTP_ADDR", flag: "http-addr", def: ":8080", usage: "edge listen address", str: &c.HTTPAddr},
		{env: "METRICS_ADDR", flag: "metrics-addr", def: ":9090", usage: "edge and worker /metrics and /healthz listen address (never the public site)", str: &c.MetricsAddr},
		{env: "BASE_URL", flag: "base-url", def: "http://localhost:8080", usage: "public URL of the site (links in mail, cookie security)", str: &c.BaseURL},
		{env: "SESSION_SECRET", flag: "session-secret", usage: "32+ byte secret for sessions, CSRF and signed URLs (dev: generated under DATA_DIR)", str: &c.SessionSecret, secret: true},
		{env: "TOKEN_KEY", flag: "token-key", usage: "32+ byte secret that encrypts OAuth and CRM tokens at rest (AES-GCM), the same on every edge and worker; changing it makes stored tokens unreadable (dev: generated under DATA_DIR)", str: &c.TokenKey, secret: true},
		{env: "SMTP_HOST", flag: "smtp-host", usage: "SMTP server for outgoing mail (empty: mail kept in the development outbox)", str: &c.SMTPHost},
		{env: "SMTP_PORT", flag: "smtp-port", def: "0", usage: "SMTP port (0: the usual port of SMTP_TLS)", num: &c.SMTPPort},
		{env: "SMTP_USERNAME", flag: "smtp-username", usage: "SMTP user (AUTH PLAIN)", str: &c.SMTPUsername},
		{env: "SMTP_PASSWORD", flag: "smtp-password", usage: "SMTP password", str: &c.SMTPPassword, secret: true},
		{env: "SMTP_FROM", flag: "smtp-from", def: "jetfleet <no-reply@localhost>", usage: "From address of outgoing mail", str: &c.SMTPFrom},
		{env: "SMTP_TLS", flag: "smtp-tls", def: "starttls", usage: "starttls, tls (implicit) or none", str: &c.SMTPTLS},
		{env: "STRIPE_SECRET_KEY", flag: "stripe-secret-key", usage: "Stripe secret key for event tickets (empty: edge sells free tickets only; dev runs a local Stripe stand-in)", str: &c.StripeSecretKey, secret: true},
		{env: "STRIPE_WEBHOOK_SECRET", flag: "stripe-webhook-secret", usage: "Stripe webhook signing secret (whsec_…) of /api/events/stripe/webhook", str: &c.StripeWebhookSecret, secret: true},
		{env: "STRIPE_API_BASE", flag: "stripe-api-base", def: "https://api.stripe.com", usage: "Stripe API base URL (tests: a local stand-in)", str: &c.StripeAPIBase},
		{env: "HUBSPOT_API_BASE", flag: "hubspot-api-base", usage: "HubSpot API base URL for event exports (empty: https://api.hubapi.com; dev: a local HubSpot stand-in)", str: &c.HubSpotAPIBase},
		{env: "SALESFORCE_LOGIN_URL", flag: "salesforce-login-url", def: "https://login.salesforce.com", usage: "Salesforce OAuth login URL (a sandbox: https://test.salesforce.com)", str: &c.SalesforceLoginURL},
		{env: "SALESFORCE_CLIENT_ID", flag: "salesforce-client-id", usage: "consumer key of the Salesforce connected app for event exports (empty: Salesforce off; dev: a local Salesforce stand-in)", str: &c.SalesforceClientID},
		{env: "SALESFORCE_CLIENT_SECRET", flag: "salesforce-client-secret", usage: "consumer secret of that connected app", str: &c.SalesforceClientSecret, secret: true},
		{env: "SALESFORCE_EXTERNAL_ID_FIELD", flag: "salesforce-external-id-field", def: "Jetfleet_Email__c", usage: "Contact field (External ID, unique) holding the email that upserts match on", str: &c.SalesforceExternalIDField},
		{env: "DATA_DIR", flag: "data-dir", def: "./data", usage: "where jetfleet dev keeps NATS and ClickHouse data", str: &c.DataDir},
		{env: "LOG_LEVEL", flag: "log-level", def: "info", usage: "debug, info, warn or error", str: &c.LogLevel},
		{env: "WORKER_ROLES", flag: "roles", def: "all", usage: "worker roles to run, comma-separated, or all", str: &c.Roles},
		{env: "YOUTUBE_URL", flag: "youtube-url", def: "https://www.youtube.com", usage: "YouTube watch pages, feeds and @handles (tracker)", str: &c.YouTubeURL},
		{env: "YOUTUBE_THUMB_URL", flag: "youtube-thumb-url", def: "https://i.ytimg.com", usage: "YouTube thumbnails (tracker)", str: &c.YouTubeThumbURL},
		{env: "YOUTUBE_RATE", flag: "youtube-rate", def: "200", usage: "requests per second to YouTube, per process (tracker)", num: &c.YouTubeRate},
		{env: "TRACKER_CONCURRENCY", flag: "tracker-concurrency", def: "256", usage: "video jobs in flight per tracker-videos worker", num: &c.TrackerConcurrency},
		{env: "TRACKER_HIRES_PER_USER", flag: "tracker-hires-per-user", def: "50", usage: "videos one premium user may have sampled every 2 minutes at once", num: &c.TrackerHiResPerUser},
		{env: "GOOGLE_CLIENT_ID", flag: "google-client-id", usage: "Google OAuth client id for connecting YouTube channels (Tracker A/B tests; empty: connecting is off; dev --demo uses a local stand-in)", str: &c.GoogleClientID},
		{env: "GOOGLE_CLIENT_SECRET", flag: "google-client-secret", usage: "Google OAuth client secret of GOOGLE_CLIENT_ID", str: &c.GoogleClientSecret, secret: true},
		{env: "GOOGLE_OAUTH_URL", flag: "google-oauth-url", def: "https://accounts.google.com", usage: "Google's OAuth consent page base (/o/oauth2/v2/auth)", str: &c.GoogleOAuthURL},
		{env: "GOOGLE_TOKEN_URL", flag: "google-token-url", def: "https://oauth2.googleapis.com", usage: "Google's OAuth token and revoke base (/token, /revoke)", str: &c.GoogleTokenURL},
		{env: "GOOGLE_API_URL", flag: "google-api-url", def: "https://www.googleapis.com", usage: "YouTube Data API v3 base (/youtube/v3, /upload/youtube/v3)", str: &c.GoogleAPIURL},
		{env: "YOUTUBE_QUOTA_PER_DAY", flag: "youtube-quota-per-day", def: "10000", usage: "YouTube Data API units the Google project may spend per Pacific-time day; A/B tests that would exceed it are refused", num: &c.YouTubeQuotaPerDay},
		{env: "COUNTER_RETENTION", flag: "counter-retention", def: "7d", usage: "how long the VIEWS stream keeps raw Counter API events for rebuilds; older event timestamps are refused (days like 7d, or a Go duration like 36h)", str: &c.CounterRetention},
		{env: "EVENTS_POST_DELAY", flag: "events-post-delay", def: "2h", usage: "how long after an event's end its figures are accumulated, its fee charged and its summary mailed (a Go duration)", str: &c.EventsPostDelay},
		{env: "EVENTS_FEE_FREE_PARTICIPANTS", flag: "events-fee-free-participants", def: "50", usage: "registered participants per event the platform fee does not charge for", num: &c.EventsFeeFreeParticipants},
		{env: "EVENTS_FEE_PER_PARTICIPANT_MINOR", flag: "events-fee-per-participant-minor", def: "50", usage: "platform fee per registered participant beyond the free ones, in minor units of EVENTS_FEE_CURRENCY (50 = 0.50)", num: &c.EventsFeePerParticipant},
		{env: "EVENTS_FEE_CURRENCY", flag: "events-fee-currency", def: "eur", usage: "currency of the platform fee (ISO code: eur, usd, gbp, chf, cad, aud)", str: &c.EventsFeeCurrency},
	}
}

// loadConfig fills a config from the environment, then from args parsed by
// fs (which gets one flag per setting), and validates it.
func loadConfig(fs *flag.FlagSet, args []string, getenv func(string) string) (*config, error) {
	c := &config{}
	for _, s := range c.settings() {
		v := getenv(s.env)
		if v == "" {
			v = s.def
		}
		if err := s.set(v); err != nil {
			return nil, fmt.Errorf("%s: %w", s.env, err)
		}
		switch {
		case s.str != nil:
			fs.StringVar(s.str, s.flag, *s.str, s.usage+" ("+s.env+")")
		case s.num != nil:
			fs.IntVar(s.num, s.flag, *s.num, s.usage+" ("+s.env+")")
		case s.boolean != nil:
			fs.BoolVar(s.boolean, s.flag, *s.boolean, s.usage+" ("+s.env+")")
		}
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	return c, c.validate()
}

func (s setting) set(v string) error {
	switch {
	case s.str != nil:
		*s.str = v
	case s.num != nil:
		n, err := strconv.Atoi(v)
		if err != nil {
			return fmt.Errorf("%q is not a whole number", v)
		}
		*s.num = n
	case s.boolean != nil:
		b, err := strconv.ParseBool(v)
		if err != nil {
			return fmt.Errorf("%q is not true or false", v)
		}
		*s.boolean = b
	}
	return nil
}

func (c *config) validate() error {
	var errs []error
	bad := func(env, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", env, fmt.Sprintf(format, args...)))
	}
	for _, u := range strings.Split(c.NATSURL, ",") {
		p, err := url.Parse(strings.TrimSpace(u))
		if err != nil || p.Host == "" || !oneOf(p.Scheme, "nats", "tls", "ws", "wss") {
			bad("NATS_URL", "%q is not a nats://host:port URL", u)
		}
	}
	if (c.NATSTLSCert == "") != (c.NATSTLSKey == "") {
		bad("NATS_TLS_CERT", "NATS_TLS_CERT and NATS_TLS_KEY go together")
	}
	if c.NATSCreds != "" && c.NATSNKey != "" {
		bad("NATS_CREDS", "set NATS_CREDS or NATS_NKEY, not both")
	}
	if (c.NATSUser == "") != (c.NATSPassword == "") {
		bad("NATS_USER", "NATS_USER and NATS_PASSWORD go together")
	}
	if c.NATSUser != "" && (c.NATSCreds != "" || c.NATSNKey != "") {
		bad("NATS_USER", "set NATS_USER/NATS_PASSWORD or NATS_CREDS or NATS_NKEY, one of them")
	}
	if c.Replicas != 1 && c.Replicas != 3 && c.Replicas != 5 {
		bad("JETSTREAM_REPLICAS", "%d: use 1, 3 or 5", c.Replicas)
	}
	if c.EnricherStateShards < 1 || c.EnricherStateShards > subjects.MaxEnricherStateShards {
		bad("ENRICHER_STATE_SHARDS", "%d: use 1 to %d", c.EnricherStateShards, subjects.MaxEnricherStateShards)
	}
	if d, err := time.ParseDuration(c.EnricherHold); err != nil || d < 0 || d >= subjects.EnricherMaxHold {
		bad("ENRICHER_HOLD", "%q: use a Go duration from 0s (off) to under %v", c.EnricherHold, subjects.EnricherMaxHold)
	}
	if c.ClickHouseURL != "" {
		if _, err := clickhouse.ParseDSN(c.ClickHouseURL); err != nil {
			bad("CLICKHOUSE_URL", "not a clickhouse:// DSN: %v", err)
		}
	}
	if c.S3Endpoint != "" {
		if strings.Contains(c.S3Endpoint, "://") {
			bad("S3_ENDPOINT", "give host:port without a scheme (use S3_USE_SSL for https)")
		}
		if c.S3AccessKey == "" || c.S3SecretKey == "" {
			bad("S3_ACCESS_KEY", "S3_ACCESS_KEY and S3_SECRET_KEY are required with S3_ENDPOINT")
		}
		if c.S3Bucket == "" {
			bad("S3_BUCKET", "required with S3_ENDPOINT")
		}
	}
	for env, addr := range map[string]string{"HTTP_ADDR": c.HTTPAddr, "METRICS_ADDR": c.MetricsAddr} {
		if _, _, err := net.SplitHostPort(addr); err != nil {
			bad(env, "%q is not host:port or :port", addr)
		}
	}
	if u, err := url.Parse(c.BaseURL); err != nil || !oneOf(u.Scheme, "http", "https") || u.Host == "" {
		bad("BASE_URL", "%q is not an http(s) URL", c.BaseURL)
	}
	if c.SessionSecret != "" && len(c.SessionSecret) < 32 {
		bad("SESSION_SECRET", "must be at least 32 characters")
	}
	if c.StripeSecretKey != "" && c.StripeWebhookSecret == "" {
		bad("STRIPE_WEBHOOK_SECRET", "required with STRIPE_SECRET_KEY (Stripe shows it where the webhook endpoint is set up)")
	}
	if u, err := url.Parse(c.StripeAPIBase); err != nil || !oneOf(u.Scheme, "http", "https") || u.Host == "" {
		bad("STRIPE_API_BASE", "%q is not an http(s) URL", c.StripeAPIBase)
	}
	if c.HubSpotAPIBase != "" {
		if u, err := url.Parse(c.HubSpotAPIBase); err != nil || !oneOf(u.Scheme, "http", "https") || u.Host == "" {
			bad("HUBSPOT_API_BASE", "%q is not an http(s) URL", c.HubSpotAPIBase)
		}
	}
	if u, err := url.Parse(c.SalesforceLoginURL); err != nil || !oneOf(u.Scheme, "http", "https") || u.Host == "" {
		bad("SALESFORCE_LOGIN_URL", "%q is not an http(s) URL", c.SalesforceLoginURL)
	}
	if c.SalesforceClientID != "" && c.SalesforceClientSecret == "" {
		bad("SALESFORCE_CLIENT_SECRET", "required with SALESFORCE_CLIENT_ID (the connected app's consumer secret)")
	}
	if !validFieldName(c.SalesforceExternalIDField) {
		bad("SALESFORCE_EXTERNAL_ID_FIELD", "%q is not a Salesforce field API name (letters, digits, underscores, e.g. Jetfleet_Email__c)", c.SalesforceExternalIDField)
	}
	if _, err := parseLevel(c.LogLevel); err != nil {
		bad("LOG_LEVEL", "%v", err)
	}
	if c.DataDir == "" {
		bad("DATA_DIR", "must not be empty")
	}
	if _, err := parseRetention(c.CounterRetention); err != nil {
		bad("COUNTER_RETENTION", "%v", err)
	}
	if d, err := time.ParseDuration(c.EventsPostDelay); err != nil || d < time.Second {
		bad("EVENTS_POST_DELAY", "%q is not a duration of at least 1s (e.g. 2h)", c.EventsPostDelay)
	}
	if c.TrackerHiResPerUser < 1 {
		bad("TRACKER_HIRES_PER_USER", "must be at least 1")
	}
	if c.EventsFeeFreeParticipants < 0 {
		bad("EVENTS_FEE_FREE_PARTICIPANTS", "must not be negative")
	}
	if c.EventsFeePerParticipant < 0 {
		bad("EVENTS_FEE_PER_PARTICIPANT_MINOR", "must not be negative")
	}
	if !oneOf(c.EventsFeeCurrency, "eur", "usd", "gbp", "chf", "cad", "aud") {
		bad("EVENTS_FEE_CURRENCY", "%q is not one of eur, usd, gbp, chf, cad, aud", c.EventsFeeCurrency)
	}
	return errors.Join(errs...)
}

// publishedSecrets are values that once shipped in this repository's files
// (compose fallbacks, examples). Anyone can read them, so a process that
// serves a real install refuses to start with them.
var publishedSecrets = []string{
	"6465762d6f6e6c792d6e6f742d7365637265742d6368616e67652d6d652d2121",
	"dev-only-not-secret-change-me-!!",
	"jetfleet-dev-password",
}

// refusePublishedDefaults fails when a secret is one of publishedSecrets.
// `jetfleet dev` generates its own secrets and does not call it.
func (c *config) refusePublishedDefaults() error {
	var errs []error
	published := func(env, v string) {
		if v != "" && oneOf(v, publishedSecrets...) {
			errs = append(errs, fmt.Errorf("%s: this value is published in jetfleet's repository and protects nothing; generate one (openssl rand -hex 32)", env))
		}
	}
	published("SESSION_SECRET", c.SessionSecret)
	published("TOKEN_KEY", c.TokenKey)
	published("S3_SECRET_KEY", c.S3SecretKey)
	published("NATS_PASSWORD", c.NATSPassword)
	if c.ClickHouseURL != "" {
		if o, err := clickhouse.ParseDSN(c.ClickHouseURL); err == nil {
			published("CLICKHOUSE_URL", o.Auth.Password)
		}
	}
	return errors.Join(errs...)
}

func oneOf(s string, options ...string) bool {
	for _, o := range options {
		if s == o {
			return true
		}
	}
	return false
}

func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, fmt.Errorf("%q: use debug, info, warn or error", s)
	}
	return l, nil
}

// print writes the effective configuration, secrets masked.
func (c *config) print(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SETTING\tVALUE")
	for _, s := range c.settings() {
		v := s.value()
		if s.secret && v != "" {
			v = mask(s.env, v)
		}
		fmt.Fprintf(tw, "%s\t%s\n", s.env, v)
	}
	tw.Flush()
}

func (s setting) value() string {
	switch {
	case s.str != nil:
		return *s.str
	case s.num != nil:
		return strconv.Itoa(*s.num)
	default:
		return strconv.FormatBool(*s.boolean)
	}
}

// mask hides a secret; for a DSN it keeps everything but the password so an
// operator can still see where it points.
func mask(env, v string) string {
	if env == "CLICKHOUSE_URL" {
		if u, err := url.Parse(v); err == nil {
			if _, has := u.User.Password(); has {
				u.User = url.UserPassword(u.User.Username(), "xxxxx")
			}
			return strings.Replace(u.String(), "xxxxx", "*****", 1)
		}
	}
	return "*****"
}

func newLogger(level string) *slog.Logger {
	l, _ := parseLevel(level)
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: l}))
}

// enricherHold is ENRICHER_HOLD as a duration (validate has checked it).
func (c *config) enricherHold() time.Duration {
	d, _ := time.ParseDuration(c.EnricherHold)
	return d
}

// eventsPostDelay is EVENTS_POST_DELAY as a duration (validate has
// checked it).
func (c *config) eventsPostDelay() time.Duration {
	d, _ := time.ParseDuration(c.EventsPostDelay)
	return d
}

// counterRetention is COUNTER_RETENTION as a duration (validate has
// checked it; the default when it is somehow unset).
func (c *config) counterRetention() time.Duration {
	d, err := parseRetention(c.CounterRetention)
	if err != nil {
		return subjects.CounterDefaultRetention
	}
	return d
}

// parseRetention reads whole days ("7d") or a Go duration ("36h"). Under
// an hour is refused: events arriving a little late would be turned away.
func parseRetention(s string) (time.Duration, error) {
	var d time.Duration
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil {
			return 0, fmt.Errorf("%q is neither whole days (7d) nor a Go duration (36h)", s)
		}
		d = time.Duration(n) * 24 * time.Hour
	} else {
		var err error
		if d, err = time.ParseDuration(s); err != nil {
			return 0, fmt.Errorf("%q is neither whole days (7d) nor a Go duration (36h)", s)
		}
	}
	if d < time.Hour {
		return 0, fmt.Errorf("%q: at least 1h", s)
	}
	return d, nil
}
