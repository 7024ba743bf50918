// Package counterclient is the Go client of the Counter API: what the seed
// calls the PartitionerServiceClient. It buffers events and sends them in
// batches (every FlushEvery or when MaxBatch events wait), bounds every call
// with connect and request timeouts, retries failures with exponential
// backoff and full jitter (so clients do not retry in step), and stops
// calling an edge that keeps failing with a circuit breaker
// (github.com/sony/gobreaker/v2), letting a few trial requests through after
// a pause.
//
// Retried batches are safe: each batch carries an Idempotency-Key header that
// stays the same across its retries, and the edge counts a key once.
package counterclient

import (
	"bytes"
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/sony/gobreaker/v2"
)

// Config configures a Client. Zero values take the defaults.
type Config struct {
	BaseURL string // e.g. https://counter.example.com
	APIKey  string

	FlushEvery time.Duration // buffer at most this long; default 1s
	MaxBatch   int           // events per request; default 1000 (the edge takes up to 10,000)
	MaxBuffer  int           // Add blocks while this many events wait; default 100,000

	ConnectTimeout time.Duration // TCP connect; default 1s (the seed's 10 ms suits a LAN)
	RequestTimeout time.Duration // one attempt; default 5s
	MaxAttempts    int           // per request; default 5
	BackoffMin     time.Duration // default 100ms
	BackoffMax     time.Duration // default 5s

	// Breaker: opens when, within BreakerWindow, at least BreakerMinRequests
	// were made and at least half failed, or after 5 consecutive failures;
	// stays open BreakerCooldown, then lets BreakerProbes requests try.
	BreakerWindow      time.Duration // default 30s
	BreakerMinRequests uint32        // default 20
	BreakerCooldown    time.Duration // default 5s
	BreakerProbes      uint32        // default 3

	Log *slog.Logger
	// HTTP replaces the client's own HTTP client (timeouts then are its own).
	HTTP *http.Client
}

func (c *Config) setDefaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.FlushEvery, time.Second)
	def(&c.ConnectTimeout, time.Second)
	def(&c.RequestTimeout, 5*time.Second)
	def(&c.BackoffMin, 100*time.Millisecond)
	def(&c.BackoffMax, 5*time.Second)
	def(&c.BreakerWindow, 30*time.Second)
	def(&c.BreakerCooldown, 5*time.Second)
	if c.MaxBatch <= 0 {
		c.MaxBatch = 1000
	}
	if c.MaxBuffer <= 0 {
		c.MaxBuffer = 100_000
	}
	if c.MaxAttempts <= 0 {
		c.MaxAttempts = 5
	}
	if c.BreakerMinRequests == 0 {
		c.BreakerMinRequests = 20
	}
	if c.BreakerProbes == 0 {
		c.BreakerProbes = 3
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
}

// Event is one event to count. Type defaults to VIEW, Value to 1,
// Timestamp to the time Add was called.
type Event struct {
	VideoID        string     `json:"video_id"`
	Type           string     `json:"type,omitempty"`
	Value          *int64     `json:"value,omitempty"`
	Timestamp      *time.Time `json:"timestamp,omitempty"`
	IdempotencyKey string     `json:"idempotency_key,omitempty"`
}

// Rejected is an event the edge refused, with its reason.
type Rejected struct {
	Event Event
	Error string
}

// StatusError is an HTTP answer other than success.
type StatusError struct {
	Status  int
	Message string
}

func (e *StatusError) Error() string { return fmt.Sprintf("counter api: %d %s", e.Status, e.Message) }

// retryable: server trouble and rate limiting, not bad requests.
func (e *StatusError) retryable() bool {
	return e.Status >= 500 || e.Status == http.StatusTooManyRequests || e.Status == http.StatusRequestTimeout
}

// ErrClosed is returned by Add after Close.
var ErrClosed = errors.New("counter client closed")

// Client talks to one Counter API edge (or a load balancer in front of
// several). It is safe for concurrent use.
type Client struct {
	cfg     Config
	base    *url.URL
	http    *http.Client
	breaker *gobreaker.CircuitBreaker[*http.Response]

	mu       sync.Mutex
	buf      []Event
	room     *sync.Cond
	closed   bool
	kick     chan struct{}
	flushReq chan chan error
	done     chan struct{}

	statsMu  sync.Mutex
	rejected []Rejected
	lastErr  error
}

// New starts a client; Close flushes and stops it.
func New(cfg Config) (*Client, error) {
	cfg.setDefaults()
	base, err := url.Parse(strings.TrimSuffix(cfg.BaseURL, "/"))
	if err != nil || base.Scheme == "" || base.Host == "" {
		return nil, fmt.Errorf("counterclient: BaseURL %q is not an absolute URL", cfg.BaseURL)
	}
	if cfg.APIKey == "" {
		return nil, errors.New("counterclient: APIKey is required")
	}
	hc := cfg.HTTP
	if hc == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.DialContext = (&net.Dialer{Timeout: cfg.ConnectTimeout, KeepAlive: 30 * time.Second}).DialContext
		tr.MaxIdleConnsPerHost = 64
		hc = &http.Client{Transport: tr}
	}
	c := &Client{cfg: cfg, base: base, http: hc, kick: make(chan struct{}, 1), flushReq: make(chan chan error), done: make(chan struct{})}
	c.room = sync.NewCond(&c.mu)
	c.breaker = gobreaker.NewCircuitBreaker[*http.Response](gobreaker.Settings{
		Name:        "counter-api",
		MaxRequests: cfg.BreakerProbes,
		Interval:    cfg.BreakerWindow,
		Timeout:     cfg.BreakerCooldown,
		ReadyToTrip: func(n gobreaker.Counts) bool {
			return n.ConsecutiveFailures >= 5 || (n.Requests >= cfg.BreakerMinRequests && n.TotalFailures*2 >= n.Requests)
		},
		OnStateChange: func(name string, from, to gobreaker.State) {
			cfg.Log.Warn("counter api circuit breaker", "from", from.String(), "to", to.String())
		},
		// Only server trouble counts against the edge; a 4xx is the
		// caller's problem.
		IsSuccessful: func(err error) bool {
			var se *StatusError
			return err == nil || (errors.As(err, &se) && !se.retryable())
		},
	})
	go c.loop()
	return c, nil
}

// Add buffers an event; it blocks while MaxBuffer events wait (backpressure).
func (c *Client) Add(e Event) error {
	if e.Timestamp == nil {
		now := time.Now().UTC()
		e.Timestamp = &now
	}
	c.mu.Lock()
	for len(c.buf) >= c.cfg.MaxBuffer && !c.closed {
		c.room.Wait()
	}
	if c.closed {
		c.mu.Unlock()
		return ErrClosed
	}
	c.buf = append(c.buf, e)
	full := len(c.buf) >= c.cfg.MaxBatch
	c.mu.Unlock()
	if full {
		select {
		case c.kick <- struct{}{}:
		default:
		}
	}
	return nil
}

// CountViewEvent buffers one VIEW of video.
func (c *Client) CountViewEvent(videoID string) error { return c.Add(Event{VideoID: videoID}) }

// CountView buffers one event of type (VIEW, LIKE, SHARE).
func (c *Client) CountView(videoID, typ string) error {
	return c.Add(Event{VideoID: videoID, Type: typ})
}

// ProcessEvent buffers an event with a value for SUM and AVG.
func (c *Client) ProcessEvent(videoID, typ string, value int64) error {
	return c.Add(Event{VideoID: videoID, Type: typ, Value: &value})
}

// Flush sends everything buffered and returns the first error of the
// batches it sent.
func (c *Client) Flush(ctx context.Context) error {
	reply := make(chan error, 1)
	select {
	case c.flushReq <- reply:
	case <-c.done:
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-reply:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close flushes and stops the client.
func (c *Client) Close(ctx context.Context) error {
	err := c.Flush(ctx)
	c.mu.Lock()
	c.closed = true
	c.room.Broadcast()
	c.mu.Unlock()
	select {
	case <-c.done:
	default:
		close(c.flushReq)
		<-c.done
	}
	return err
}

// Rejected returns (and forgets) the events the edge refused as invalid.
func (c *Client) Rejected() []Rejected {
	c.statsMu.Lock()
	defer c.statsMu.Unlock()
	r := c.rejected
	c.rejected = nil
	return r
}

func (c *Client) loop() {
	defer close(c.done)
	t := time.NewTicker(c.cfg.FlushEvery)
	defer t.Stop()
	for {
		var reply chan error
		select {
		case <-t.C:
		case <-c.kick:
		case r, ok := <-c.flushReq:
			if !ok {
				return
			}
			reply = r
		}
		err := c.sendBuffered()
		if reply != nil {
			reply <- err
		}
	}
}

// sendBuffered sends the buffer in batches of MaxBatch.
func (c *Client) sendBuffered() error {
	var first error
	for {
		c.mu.Lock()
		n := min(len(c.buf), c.cfg.MaxBatch)
		batch := append([]Event(nil), c.buf[:n]...)
		c.buf = c.buf[n:]
		c.room.Broadcast()
		c.mu.Unlock()
		if n == 0 {
			return first
		}
		ctx := context.Background()
		if _, err := c.Send(ctx, batch); err != nil {
			c.cfg.Log.Warn("counter batch lost after retries", "events", len(batch), "err", err)
			c.statsMu.Lock()
			c.lastErr = err
			c.statsMu.Unlock()
			if first == nil {
				first = err
			}
		}
	}
}

// IngestResult is the edge's answer to a batch.
type IngestResult struct {
	Accepted         int   `json:"accepted"`
	Duplicates       []int `json:"duplicates"`
	RequestDuplicate bool  `json:"request_duplicate"`
	Rejected         []struct {
		Index int    `json:"index"`
		Error string `json:"error"`
	} `json:"rejected"`
}

// Send posts events as one batch now (no buffering), with retries under one
// Idempotency-Key so a retry after a lost answer does not count twice.
func (c *Client) Send(ctx context.Context, events []Event) (IngestResult, error) {
	var res IngestResult
	body, err := json.Marshal(map[string]any{"events": events})
	if err != nil {
		return res, err
	}
	key := newKey()
	err = c.do(ctx, http.MethodPost, "/api/counter/v1/batch", body, key, &res)
	var se *StatusError
	if errors.As(err, &se) && se.Status == http.StatusBadRequest {
		// Every item invalid: report them as rejected.
		var bad struct {
			Rejected []struct {
				Index int    `json:"index"`
				Error string `json:"error"`
			} `json:"rejected"`
		}
		json.Unmarshal([]byte(se.Message), &bad)
		res.Rejected = bad.Rejected
	}
	if len(res.Rejected) > 0 {
		c.statsMu.Lock()
		for _, r := range res.Rejected {
			if r.Index >= 0 && r.Index < len(events) {
				c.rejected = append(c.rejected, Rejected{Event: events[r.Index], Error: r.Error})
			}
		}
		c.statsMu.Unlock()
	}
	return res, err
}

// Stats is a read answer. Value is a float64 for convenience; Sum is the
// exact sum (Value loses digits past 2^53). With SumOverflow the sum left
// the int64 range and Sum and Avg are 0.
type Stats struct {
	VideoID     string     `json:"video_id"`
	Type        string     `json:"type"`
	Function    string     `json:"function"`
	Start       time.Time  `json:"start"`
	End         time.Time  `json:"end"`
	Value       float64    `json:"value"`
	Count       uint64     `json:"count"`
	Sum         int64      `json:"sum"`
	Avg         float64    `json:"avg"`
	SumOverflow bool       `json:"sum_overflow"`
	Series      []Point    `json:"series"`
	FreshUntil  *time.Time `json:"fresh_until"`
}

// Point is one step of a series.
type Point struct {
	Start time.Time `json:"start"`
	Value float64   `json:"value"`
}

// GetViewCount returns the views of video in [start, end).
func (c *Client) GetViewCount(ctx context.Context, videoID string, start, end time.Time) (Stats, error) {
	return c.GetStats(ctx, videoID, "VIEW", "COUNT", start, end, "")
}

// GetCount returns the events of type on video in [start, end).
func (c *Client) GetCount(ctx context.Context, videoID, typ string, start, end time.Time) (Stats, error) {
	return c.GetStats(ctx, videoID, typ, "COUNT", start, end, "")
}

// GetStats returns COUNT, SUM or AVG of type on video in [start, end), with a
// series when step is minute, hour or day.
func (c *Client) GetStats(ctx context.Context, videoID, typ, function string, start, end time.Time, step string) (Stats, error) {
	q := url.Values{"type": {typ}, "function": {function}, "start": {start.UTC().Format(time.RFC3339)}, "end": {end.UTC().Format(time.RFC3339)}}
	if step != "" {
		q.Set("step", step)
	}
	var s Stats
	err := c.do(ctx, http.MethodGet, "/api/counter/v1/videos/"+url.PathEscape(videoID)+"/stats?"+q.Encode(), nil, "", &s)
	return s, err
}

// do runs one call with retries, backoff with full jitter and the breaker.
func (c *Client) do(ctx context.Context, method, path string, body []byte, idemKey string, out any) error {
	var lastErr error
	for attempt := 1; attempt <= c.cfg.MaxAttempts; attempt++ {
		if attempt > 1 {
			if err := sleep(ctx, c.backoff(attempt-1)); err != nil {
				return fmt.Errorf("%w (last error: %v)", err, lastErr)
			}
		}
		resp, err := c.breaker.Execute(func() (*http.Response, error) {
			return c.attempt(ctx, method, path, body, idemKey)
		})
		if err == nil {
			defer resp.Body.Close()
			if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
				return fmt.Errorf("counter api: decode answer: %w", err)
			}
			return nil
		}
		lastErr = err
		var se *StatusError
		if errors.As(err, &se) && !se.retryable() {
			return err
		}
		if ctx.Err() != nil {
			return err
		}
	}
	return fmt.Errorf("counter api: %d attempts failed: %w", c.cfg.MaxAttempts, lastErr)
}

func (c *Client) attempt(ctx context.Context, method, path string, body []byte, idemKey string) (*http.Response, error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.RequestTimeout)
	req, err := http.NewRequestWithContext(ctx, method, c.base.String()+path, bytes.NewReader(body))
	if err != nil {
		cancel()
		return nil, err
	}
	req.Header.Set("X-API-Key", c.cfg.APIKey)
	req.Header.Set("Content-Type", "application/json")
	if idemKey != "" {
		req.Header.Set("Idempotency-Key", idemKey)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		cancel()
		return nil, err
	}
	if resp.StatusCode >= 300 {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		cancel()
		return nil, &StatusError{Status: resp.StatusCode, Message: strings.TrimSpace(string(msg))}
	}
	// The body is read by the caller; release the timeout with it.
	resp.Body = cancelOnClose{resp.Body, cancel}
	return resp, nil
}

type cancelOnClose struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (c cancelOnClose) Close() error { err := c.ReadCloser.Close(); c.cancel(); return err }

// backoff is "full jitter": uniform in [0, min(max, min*2^n)].
func (c *Client) backoff(n int) time.Duration {
	d := c.cfg.BackoffMin
	for i := 1; i < n && d < c.cfg.BackoffMax; i++ {
		d *= 2
	}
	d = min(d, c.cfg.BackoffMax)
	return rand.N(d + 1)
}

// State is the breaker's state: closed, half-open or open.
func (c *Client) State() string { return c.breaker.State().String() }

func newKey() string {
	b := make([]byte, 16)
	crand.Read(b)
	return "cli-" + hex.EncodeToString(b)
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
