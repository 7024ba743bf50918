// Package youtube is jetfleet's one way to YouTube: it parses what people
// paste (channel and video links, @handles in any script, legacy /c/ and
// /user/ links, ids), resolves them to channel ids, reads channel RSS feeds,
// scrapes watch pages (views, likes, title, channel, publish time) and
// fetches thumbnails. It tells YouTube's refusals of us (transient) from
// the states of videos (shown as such) and never reads either as "does not
// exist". Every request goes through one rate
// limiter, retries transient failures with backoff and passes a circuit
// breaker, so a struggling YouTube is not hammered by the whole fleet.
//
// Base URLs are configuration: tests and `jetfleet dev --demo` point the
// client at youtubetest, a local server that speaks the same protocol.
package youtube

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/sony/gobreaker/v2"
	"golang.org/x/time/rate"
)

// Errors callers tell apart. YouTube fails in two classes: it refuses *us*
// (ErrRefused, ErrUnavailable, 5xx: transient, retried, counted by the
// circuit breaker) or it reports a state of the *thing* (ErrNotFound,
// ErrVideoState: permanent, shown as such). A refusal is never turned into
// "does not exist".
var (
	// ErrNotFound: YouTube says the channel, handle or video does not exist.
	ErrNotFound = errors.New("youtube: not found")
	// ErrUnparseable: the response did not have the shape the scraper knows;
	// retrying will not help, a scraper update might.
	ErrUnparseable = errors.New("youtube: response not understood")
	// ErrUnavailable: the circuit breaker is open after repeated failures;
	// try again later.
	ErrUnavailable = errors.New("youtube: unavailable (circuit open after repeated failures)")
	// ErrRefused: YouTube refused to serve us (bot check, consent wall, rate
	// limit). It says nothing about the thing asked for; see *RefusalError.
	ErrRefused = errors.New("youtube is refusing us")
	// ErrVideoState: the video exists but YouTube does not show it to
	// anyone signed out (private, removed, age-gated, members-only,
	// unavailable); see *StateError.
	ErrVideoState = errors.New("youtube: video not viewable")
)

// Refusal is why YouTube refused us.
type Refusal string

// Refusals.
const (
	RefusedBotCheck  Refusal = "bot_check"    // "Sign in to confirm you're not a bot"
	RefusedSignIn    Refusal = "sign_in"      // a sign-in wall without a reason about the video
	RefusedConsent   Refusal = "consent_wall" // EU cookie consent page instead of the content
	RefusedRateLimit Refusal = "rate_limit"   // HTTP 429 or the "unusual traffic" page
)

// RefusalError is a refusal of us by YouTube. errors.Is(err, ErrRefused)
// holds for it.
type RefusalError struct {
	Kind   Refusal
	Reason string // YouTube's words, when it gave some
}

func (e *RefusalError) Error() string {
	if e.Reason == "" {
		return fmt.Sprintf("youtube is refusing us (%s)", e.Kind)
	}
	return fmt.Sprintf("youtube is refusing us (%s): %s", e.Kind, e.Reason)
}

// Is makes errors.Is(err, ErrRefused) true.
func (e *RefusalError) Is(target error) bool { return target == ErrRefused }

// VideoState is a state of a video that keeps YouTube from showing it.
type VideoState string

// Video states.
const (
	StatePrivate       VideoState = "private"
	StateRemoved       VideoState = "removed"
	StateAgeRestricted VideoState = "age_restricted"
	StateMembersOnly   VideoState = "members_only"
	StateUnavailable   VideoState = "unavailable" // e.g. not in our country, a recording not kept
)

// StateError says a video is in a state that hides it. errors.Is(err,
// ErrVideoState) holds for it.
type StateError struct {
	State  VideoState
	Reason string // YouTube's words
}

func (e *StateError) Error() string {
	return fmt.Sprintf("youtube: video is %s: %s", e.State, e.Reason)
}

// Is makes errors.Is(err, ErrVideoState) true.
func (e *StateError) Is(target error) bool { return target == ErrVideoState }

// Config configures a Client. Zero values take the documented defaults.
type Config struct {
	// BaseURL serves watch pages, channel feeds and @handle pages; default
	// https://www.youtube.com.
	BaseURL string
	// ThumbnailURL serves /vi/<id>/<size>.jpg; default https://i.ytimg.com.
	ThumbnailURL string
	// RatePerSecond caps requests per second from this client; default 200.
	RatePerSecond float64
	// Burst is the limiter's burst; default RatePerSecond/4, at least 1.
	Burst int
	// Attempts is how many times one request is tried; default 3.
	Attempts int
	// RetryMin is the first retry delay, doubled per attempt; default 200ms.
	RetryMin time.Duration
	// Timeout bounds one attempt; default 15s.
	Timeout time.Duration
	// BreakerFailures is how many consecutive failed attempts open the
	// circuit; default 20.
	BreakerFailures uint32
	// BreakerOpen is how long the circuit stays open before probing;
	// default 30s.
	BreakerOpen time.Duration
	// HTTPClient sends the requests; default a client with keep-alive
	// sized for many concurrent requests.
	HTTPClient *http.Client
	// UserAgent is sent with every request.
	UserAgent string
	// Metrics counts refusals and circuit openings; default unexported.
	Metrics *Metrics
}

// Client talks to YouTube. It is safe for concurrent use.
type Client struct {
	base, thumbs *url.URL
	cfg          Config
	http         *http.Client
	limiter      *rate.Limiter
	breaker      *gobreaker.CircuitBreaker[*response]
}

type response struct {
	status int
	body   []byte
}

// New validates cfg and returns a client.
func New(cfg Config) (*Client, error) {
	if cfg.BaseURL == "" {
		cfg.BaseURL = "https://www.youtube.com"
	}
	if cfg.ThumbnailURL == "" {
		cfg.ThumbnailURL = "https://i.ytimg.com"
	}
	base, err := url.Parse(cfg.BaseURL)
	if err != nil || base.Host == "" {
		return nil, fmt.Errorf("youtube config: BaseURL %q is not an absolute URL", cfg.BaseURL)
	}
	thumbs, err := url.Parse(cfg.ThumbnailURL)
	if err != nil || thumbs.Host == "" {
		return nil, fmt.Errorf("youtube config: ThumbnailURL %q is not an absolute URL", cfg.ThumbnailURL)
	}
	if cfg.RatePerSecond <= 0 {
		cfg.RatePerSecond = 200
	}
	if cfg.Burst <= 0 {
		cfg.Burst = max(1, int(cfg.RatePerSecond/4))
	}
	if cfg.Attempts <= 0 {
		cfg.Attempts = 3
	}
	if cfg.RetryMin <= 0 {
		cfg.RetryMin = 200 * time.Millisecond
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 15 * time.Second
	}
	if cfg.BreakerFailures == 0 {
		cfg.BreakerFailures = 20
	}
	if cfg.BreakerOpen <= 0 {
		cfg.BreakerOpen = 30 * time.Second
	}
	if cfg.Metrics == nil {
		cfg.Metrics = NewMetrics(nil)
	}
	if cfg.UserAgent == "" {
		cfg.UserAgent = "Mozilla/5.0 (compatible; jetfleet-tracker/1.0)"
	}
	hc := cfg.HTTPClient
	if hc == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		// Many jobs wait on the same two hosts at once.
		tr.MaxIdleConnsPerHost = 512
		tr.MaxIdleConns = 1024
		hc = &http.Client{Transport: tr}
	}
	c := &Client{base: base, thumbs: thumbs, cfg: cfg, http: hc,
		limiter: rate.NewLimiter(rate.Limit(cfg.RatePerSecond), cfg.Burst)}
	c.breaker = gobreaker.NewCircuitBreaker[*response](gobreaker.Settings{
		Name:        "youtube",
		MaxRequests: 5,
		Timeout:     cfg.BreakerOpen,
		ReadyToTrip: func(n gobreaker.Counts) bool { return n.ConsecutiveFailures >= cfg.BreakerFailures },
		OnStateChange: func(_ string, _, to gobreaker.State) {
			if to == gobreaker.StateOpen {
				cfg.Metrics.opens.Inc()
			}
			cfg.Metrics.state.Set(float64(to))
		},
		// A cancelled request says nothing about YouTube's health.
		IsExcluded: func(err error) bool {
			return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) && !isAttemptTimeout(err)
		},
	})
	return c, nil
}

// attemptTimeout marks an attempt that exceeded Config.Timeout: a slow
// YouTube, which counts against the breaker.
type attemptTimeout struct{ err error }

func (e *attemptTimeout) Error() string { return e.err.Error() }
func (e *attemptTimeout) Unwrap() error { return e.err }

func isAttemptTimeout(err error) bool {
	var t *attemptTimeout
	return errors.As(err, &t)
}

// BreakerState is "closed", "half-open" or "open", for metrics and logs.
func (c *Client) BreakerState() string { return c.breaker.State().String() }

// get fetches u, reading at most limit bytes, retrying transient failures.
// It returns ErrNotFound for 404 and 410, and ErrUnavailable when the circuit
// is open. accept, when set, reads each response inside the breaker: a
// *RefusalError (a bot check on a page served with 200) or an *outageError
// it returns counts as a failure and is retried like a 503.
func (c *Client) get(ctx context.Context, u string, limit int64, accept func(status int, body []byte) error) ([]byte, error) {
	var last error
	for attempt := range c.cfg.Attempts {
		if attempt > 0 {
			d := c.cfg.RetryMin << (attempt - 1)
			d = d/2 + rand.N(d/2+1)
			t := time.NewTimer(d)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return nil, fmt.Errorf("get %s: %w (last error: %w)", u, ctx.Err(), last)
			}
		}
		if err := c.limiter.Wait(ctx); err != nil {
			return nil, fmt.Errorf("get %s: rate limit wait: %w", u, err)
		}
		resp, err := c.breaker.Execute(func() (*response, error) {
			resp, err := c.attempt(ctx, u, limit)
			if err == nil && accept != nil {
				var outage *outageError
				if aerr := accept(resp.status, resp.body); errors.Is(aerr, ErrRefused) || errors.As(aerr, &outage) {
					return nil, aerr
				}
			}
			return resp, err
		})
		var refusal *RefusalError
		switch {
		case errors.Is(err, gobreaker.ErrOpenState), errors.Is(err, gobreaker.ErrTooManyRequests):
			if last != nil {
				return nil, fmt.Errorf("get %s: %w (last error: %w)", u, ErrUnavailable, last)
			}
			return nil, fmt.Errorf("get %s: %w", u, ErrUnavailable)
		case errors.As(err, &refusal):
			c.cfg.Metrics.Refusals(refusal.Kind).Inc()
			last = err
			continue
		case err != nil:
			if ctx.Err() != nil {
				return nil, fmt.Errorf("get %s: %w", u, err)
			}
			last = err
			continue
		}
		switch {
		case resp.status == http.StatusOK:
			return resp.body, nil
		case resp.status == http.StatusNotFound || resp.status == http.StatusGone:
			return nil, fmt.Errorf("get %s: %w (HTTP %d)", u, ErrNotFound, resp.status)
		default:
			return nil, fmt.Errorf("get %s: unexpected HTTP %d", u, resp.status)
		}
	}
	return nil, fmt.Errorf("get %s: %d attempts failed: %w", u, c.cfg.Attempts, last)
}

// outageError marks an answer that, for the URL asked, is how YouTube fails
// rather than what it knows (a feed's 404): it counts against the breaker
// and is retried.
type outageError struct{ err error }

func (e *outageError) Error() string { return e.err.Error() }
func (e *outageError) Unwrap() error { return e.err }

// consentCookie answers YouTube's EU cookie consent in advance, as yt-dlp
// does (SOCS "CAI": essential cookies only; the older CONSENT form for
// servers that still read it), so the consent wall does not replace pages.
const consentCookie = "SOCS=CAI; CONSENT=YES+cb"

// attempt makes one request. Server errors, throttling, refusal pages and
// network failures are errors (they count against the breaker and are
// retried); any other status is a response for get to interpret.
func (c *Client) attempt(ctx context.Context, u string, limit int64) (*response, error) {
	actx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(actx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("User-Agent", c.cfg.UserAgent)
	req.Header.Set("Accept-Language", "en-US,en;q=0.9")
	req.Header.Set("Cookie", consentCookie)
	res, err := c.http.Do(req)
	if err != nil {
		if actx.Err() != nil && ctx.Err() == nil {
			return nil, &attemptTimeout{err: err}
		}
		return nil, err
	}
	defer res.Body.Close()
	if res.StatusCode == http.StatusTooManyRequests {
		io.Copy(io.Discard, io.LimitReader(res.Body, 64<<10))
		return nil, &RefusalError{Kind: RefusedRateLimit, Reason: "HTTP 429"}
	}
	if res.StatusCode >= 500 {
		io.Copy(io.Discard, io.LimitReader(res.Body, 64<<10))
		return nil, fmt.Errorf("HTTP %d", res.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(res.Body, limit+1))
	if err != nil {
		if actx.Err() != nil && ctx.Err() == nil {
			return nil, &attemptTimeout{err: err}
		}
		return nil, fmt.Errorf("read body: %w", err)
	}
	if int64(len(body)) > limit {
		return &response{status: res.StatusCode}, fmt.Errorf("body larger than %d bytes", limit)
	}
	if r := refusalPage(res.Request.URL, body); r != nil {
		return nil, r
	}
	return &response{status: res.StatusCode, body: body}, nil
}

// refusalPage recognises the pages YouTube serves instead of the one asked
// for: the EU consent wall (a redirect to consent.youtube.com, or its form
// served in place) and Google's "unusual traffic" page (a redirect to
// /sorry/). final is the URL after redirects.
func refusalPage(final *url.URL, body []byte) *RefusalError {
	host := strings.ToLower(final.Hostname())
	switch {
	case strings.HasPrefix(host, "consent."):
		return &RefusalError{Kind: RefusedConsent, Reason: "redirected to " + host}
	case strings.HasPrefix(final.Path, "/sorry/"):
		return &RefusalError{Kind: RefusedRateLimit, Reason: "unusual traffic page"}
	}
	// The consent form's action is an HTML attribute: inside the page's JSON
	// (a title, a description) its quotes would be escaped, so a video
	// cannot fake it.
	if bytes.Contains(body, []byte(`action="https://consent.youtube.com`)) || bytes.Contains(body, []byte(`action="https://consent.google.com`)) {
		return &RefusalError{Kind: RefusedConsent, Reason: "consent form instead of the page"}
	}
	return nil
}

func (c *Client) pageURL(path string, query url.Values) string {
	u := *c.base
	u.Path = strings.TrimSuffix(u.Path, "/") + path
	u.RawQuery = query.Encode()
	return u.String()
}

// ThumbnailSize names one of YouTube's fixed thumbnail renditions.
type ThumbnailSize string

// Thumbnail sizes.
const (
	// ThumbSmall is default.jpg, 120x90: the cheapest to fetch and hash.
	ThumbSmall ThumbnailSize = "default"
	// ThumbHigh is hqdefault.jpg, 480x360, present for every video.
	ThumbHigh ThumbnailSize = "hqdefault"
	// ThumbMax is maxresdefault.jpg, 1280x720, missing for some videos.
	ThumbMax ThumbnailSize = "maxresdefault"
)

// ThumbnailURL is where the thumbnail of video id in size lives.
func (c *Client) ThumbnailURL(id string, size ThumbnailSize) string {
	u := *c.thumbs
	u.Path = strings.TrimSuffix(u.Path, "/") + "/vi/" + id + "/" + string(size) + ".jpg"
	return u.String()
}

// Thumbnail fetches the JPEG thumbnail of video id in size.
func (c *Client) Thumbnail(ctx context.Context, id string, size ThumbnailSize) ([]byte, error) {
	if !ValidVideoID(id) {
		return nil, fmt.Errorf("thumbnail: %w: %q is not a video id", ErrNotYouTube, id)
	}
	b, err := c.get(ctx, c.ThumbnailURL(id, size), 4<<20, nil)
	if err != nil {
		return nil, fmt.Errorf("thumbnail %s/%s: %w", id, size, err)
	}
	return b, nil
}

// HighThumbnail fetches the largest thumbnail there is: maxresdefault, or
// hqdefault when the video has none.
func (c *Client) HighThumbnail(ctx context.Context, id string) ([]byte, error) {
	b, err := c.Thumbnail(ctx, id, ThumbMax)
	if errors.Is(err, ErrNotFound) {
		return c.Thumbnail(ctx, id, ThumbHigh)
	}
	return b, err
}
