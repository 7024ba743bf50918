// Package counter is the Counter API's edge: the JSON ingest and read API
// under /api/counter/v1 (authenticated by API key, rate limited per key) and
// the /counter page.
//
// Read limits: each key may read its read_limit per second (default
// defaultReadRate) counted over readWindow on all edges together; the
// edges reserve the count in chunks (ratelimit.Chunked), so a read costs no
// NATS round trip except once per chunk. Past it: 429, Retry-After.
//
// Batch semantics (POST /api/counter/v1/batch): every item is validated on
// its own. Valid items are accepted and invalid ones are reported in
// "rejected" with their index and the reason; the answer is 202 when at least
// one item was accepted (check "rejected"), 400 when none was. A batch holds
// at most MaxBatch items and a body at most 8 MiB (413 beyond); a body that
// does not arrive within BodyTimeout is cut off with 408. 202 means
// JetStream has acknowledged every accepted item: they are durable and will
// be counted exactly once.
//
// Idempotency: an item's "idempotency_key" makes that event count once per
// tenant within subjects.CounterDedupeWindow (it is published as its own
// message whose Nats-Msg-Id is built from the tenant and the key); an
// Idempotency-Key request header does the same for the whole request (its
// rows are published per partition under ids derived from the key), which is
// how the Go client makes its retried batches safe without giving up the
// collapse of repeated events. Keys are scoped to the tenant: the message id
// carries the tenant's length before the tenant and the key, so no two
// (tenant, key) pairs share an id, whatever ":" they contain.
package counter

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/time/rate"

	"jetfleet/analytics/counterdb"
	"jetfleet/internal/apikeys"
	"jetfleet/subjects"
	"jetfleet/web/ratelimit"
	"jetfleet/web/site"
)

// statsPattern is the read route; a video id is accepted on write only when
// a request for it here gives the id back (see readableIDs).
const statsPattern = "GET /api/counter/v1/videos/{video}/stats"

// Limits of the API.
const (
	MaxBatch = 10_000
	maxBody  = 8 << 20
	// defaultBodyTimeout bounds the reading of one body: 8 MiB at 1 MB/s.
	defaultBodyTimeout = 10 * time.Second
	defaultRate        = 200_000 // events/s per key when its record sets none
	// defaultReadRate is the reads/s of a key whose record sets none.
	defaultReadRate = 100
	// readWindow is what read limits are counted over, shared by the edges
	// (ratelimit.Chunked): a key may spend its rate × 10 s in a burst.
	readWindow   = 10 * time.Second
	maxRange     = 5 * 366 * 24 * time.Hour
	APIKeyHeader = "X-API-Key"
	// IdempotencyKeyHeader makes a whole write request idempotent: a retry
	// with the same key within the dedupe window is counted once.
	IdempotencyKeyHeader = "Idempotency-Key"
	defaultReadSpan      = 24 * time.Hour
	// Read answers kept per edge (see readCache): a few MB at most.
	readCacheEntries = 10_000
	readCacheMaxAge  = 10 * time.Second
)

// API serves /api/counter/v1.
type API struct {
	// BodyTimeout bounds the reading of one request body; zero means
	// defaultBodyTimeout. Set it before Routes.
	BodyTimeout time.Duration

	ingest    *Ingest
	keys      *apikeys.Store
	ch        driver.Conn
	fresh     *Freshness
	retention time.Duration
	log       *slog.Logger
	now       func() time.Time
	cache     *readCache
	ids       readableIDs
	reads     *ratelimit.Chunked

	limiters *ratelimit.PerKey
}

// NewAPI wires the API; js counts the read limits every edge shares.
func NewAPI(js jetstream.JetStream, ingest *Ingest, keys *apikeys.Store, ch driver.Conn, fresh *Freshness, retention time.Duration, log *slog.Logger) (*API, error) {
	if retention <= 0 {
		retention = subjects.CounterDefaultRetention
	}
	reads, err := ratelimit.NewChunked(js, "counter-reads", readWindow)
	if err != nil {
		return nil, err
	}
	return &API{ingest: ingest, keys: keys, ch: ch, fresh: fresh, retention: retention, log: log,
		now: time.Now, limiters: ratelimit.NewPerKey(defaultRate, MaxBatch), cache: newReadCache(readCacheEntries, readCacheMaxAge),
		ids: newReadableIDs(), reads: reads}, nil
}

// Routes registers the API on mux.
func (a *API) Routes(mux *http.ServeMux) {
	mux.HandleFunc("POST /api/counter/v1/events", a.auth(a.postEvent))
	mux.HandleFunc("POST /api/counter/v1/batch", a.auth(a.postBatch))
	mux.HandleFunc("GET /api/counter/v1/videos/{video}/views", a.auth(a.getViews))
	mux.HandleFunc("GET /api/counter/v1/videos/{video}/count", a.auth(a.getCount))
	mux.HandleFunc(statsPattern, a.auth(a.getStats))
}

// apiError is the answer to a refused request: the site's error body, and
// for a batch with no valid item the reason of each.
type apiError struct {
	site.ErrorBody
	Rejected []itemStatus `json:"rejected,omitempty"`
}

type caller struct {
	rec     apikeys.Record
	hash    string // of the API key
	limiter *rate.Limiter
}

// auth resolves the API key (X-API-Key or Authorization: Bearer) to its
// tenant. The key itself is never logged.
func (a *API) auth(next func(http.ResponseWriter, *http.Request, caller)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		key := site.APIKey(r)
		if key == "" {
			site.JSONError(w, site.CodeUnauthorized, "missing API key: send it in the %s header", APIKeyHeader)
			return
		}
		rec, err := a.keys.Lookup(r.Context(), key)
		if errors.Is(err, apikeys.ErrUnknownKey) {
			site.JSONError(w, site.CodeUnauthorized, "unknown or disabled API key")
			return
		}
		if err != nil {
			a.log.Error("api key lookup failed", "err", err)
			site.JSONError(w, site.CodeUnavailable, "cannot check API keys right now; retry shortly")
			return
		}
		hash := apikeys.Hash(key)
		next(w, r, caller{rec: rec, hash: hash, limiter: a.limiters.For(hash, rec.RateLimit)})
	}
}

// itemStatus reports one rejected or duplicate item of a batch.
type itemStatus struct {
	Index int    `json:"index"`
	Error string `json:"error,omitempty"`
}

// IngestResponse is the answer to an accepted write.
type IngestResponse struct {
	Accepted   int          `json:"accepted"`             // items durably accepted (duplicates included)
	Duplicates []int        `json:"duplicates,omitempty"` // indexes whose idempotency key was already counted
	Rejected   []itemStatus `json:"rejected,omitempty"`   // indexes and reasons of invalid items
	// RequestDuplicate: the request's Idempotency-Key was seen within the
	// dedupe window; its events were counted by the earlier request.
	RequestDuplicate bool `json:"request_duplicate,omitempty"`
}

func (a *API) postEvent(w http.ResponseWriter, r *http.Request, c caller) {
	var e subjects.CounterEvent
	if !a.decode(w, r, &e, "") {
		return
	}
	a.write(w, r, c, []subjects.CounterEvent{e}, false)
}

type batchRequest struct {
	Events []json.RawMessage `json:"events"`
}

func (a *API) postBatch(w http.ResponseWriter, r *http.Request, c caller) {
	var b batchRequest
	if !a.decode(w, r, &b, ` (expected {"events": [...]})`) {
		return
	}
	if len(b.Events) == 0 {
		site.JSONError(w, site.CodeBadRequest, "events: empty batch")
		return
	}
	if len(b.Events) > MaxBatch {
		site.JSONError(w, site.CodeTooLarge, "events: %d items, at most %d per batch", len(b.Events), MaxBatch)
		return
	}
	events := make([]subjects.CounterEvent, len(b.Events))
	var rejected []itemStatus
	bad := make([]bool, len(b.Events))
	for i, raw := range b.Events {
		if err := json.Unmarshal(raw, &events[i]); err != nil {
			rejected = append(rejected, itemStatus{Index: i, Error: "malformed item: " + err.Error()})
			bad[i] = true
		}
	}
	a.writeItems(w, r, c, events, bad, rejected, true)
}

func (a *API) write(w http.ResponseWriter, r *http.Request, c caller, events []subjects.CounterEvent, batch bool) {
	a.writeItems(w, r, c, events, make([]bool, len(events)), nil, batch)
}

func (a *API) writeItems(w http.ResponseWriter, r *http.Request, c caller, events []subjects.CounterEvent, bad []bool, rejected []itemStatus, batch bool) {
	now := a.now()
	var rows []subjects.CounterRow
	var keyed []Keyed
	var keyedIdx []int
	accepted := 0
	for i := range events {
		if bad[i] {
			continue
		}
		e := &events[i]
		e.Normalize(now)
		err := e.Validate(now, a.retention)
		if err == nil {
			err = a.ids.check(e.VideoID)
		}
		if err != nil {
			rejected = append(rejected, itemStatus{Index: i, Error: strings.ReplaceAll(err.Error(), "\n", "; ")})
			continue
		}
		accepted++
		row := subjects.CounterRow{Tenant: c.rec.Tenant, VideoID: e.VideoID, Type: e.Type,
			Minute: e.Timestamp.Unix() / 60 * 60, Count: 1, Sum: *e.Value}
		if e.IdempotencyKey != "" {
			keyed = append(keyed, Keyed{Key: e.IdempotencyKey, Row: row})
			keyedIdx = append(keyedIdx, i)
			continue
		}
		rows = append(rows, row)
	}
	if accepted == 0 {
		if !batch && len(rejected) == 1 {
			site.JSONError(w, site.CodeBadRequest, "%s", rejected[0].Error)
			return
		}
		site.WriteJSON(w, http.StatusBadRequest, apiError{site.Errorf(site.CodeBadRequest, "no valid event in the batch"), rejected})
		return
	}
	if !c.limiter.AllowN(now, accepted) {
		w.Header().Set("Retry-After", "1")
		site.JSONError(w, site.CodeRateLimited, "rate limit of this API key exceeded (%.0f events/s); retry after a second", float64(c.limiter.Limit()))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	reqKey := r.Header.Get(IdempotencyKeyHeader)
	if reqKey != "" {
		if err := subjects.CounterValidVideoID(reqKey); err != nil {
			site.JSONError(w, site.CodeBadRequest, "%s header: must be 1-%d printable characters without spaces", IdempotencyKeyHeader, subjects.CounterMaxKey)
			return
		}
	}
	res, err := a.ingest.Publish(ctx, Collapse(rows), keyed, reqKey)
	if err != nil && r.Context().Err() != nil {
		return // the client went away; nothing to answer
	}
	if err != nil {
		a.log.Warn("counter publish failed", "tenant", c.rec.Tenant, "err", err)
		site.JSONError(w, site.CodeUnavailable, "events not accepted, the event stream did not acknowledge in time; retry (idempotency keys make retries safe)")
		return
	}
	out := IngestResponse{Accepted: accepted, Rejected: rejected, RequestDuplicate: res.RequestDuplicate}
	for _, d := range res.Duplicates {
		out.Duplicates = append(out.Duplicates, keyedIdx[d])
	}
	site.WriteJSON(w, http.StatusAccepted, out)
}

// decode reads the JSON body into v within the body size and time limits.
// On failure it answers (413 too large, 408 too slow, 400 malformed, with
// hint appended) and returns false.
func (a *API) decode(w http.ResponseWriter, r *http.Request, v any, hint string) bool {
	timeout := a.BodyTimeout
	if timeout <= 0 {
		timeout = defaultBodyTimeout
	}
	// A per-request read deadline: the server's own timeouts cover the
	// headers only, so without it a client trickling its body holds the
	// connection and this goroutine for as long as it likes.
	rc := http.NewResponseController(w)
	deadline := rc.SetReadDeadline(time.Now().Add(timeout)) == nil
	body := http.MaxBytesReader(w, r.Body, maxBody)
	dec := json.NewDecoder(body)
	err := dec.Decode(v)
	if err == nil {
		if _, terr := dec.Token(); terr != io.EOF {
			err = errors.New("trailing data after the JSON value")
		}
	}
	var tooLarge *http.MaxBytesError
	var netErr net.Error
	switch {
	case err == nil:
		if deadline {
			// Lift it for the next request on this connection. After a
			// failure it stays: the server drains the unread body before
			// answering, which must not wait for a stalled client.
			rc.SetReadDeadline(time.Time{})
		}
		return true
	case errors.As(err, &tooLarge):
		site.JSONError(w, site.CodeTooLarge, "request body larger than %d MiB; split the batch", maxBody>>20)
	case errors.As(err, &netErr) && netErr.Timeout():
		w.Header().Set("Connection", "close")
		site.JSONError(w, site.CodeTimeout, "request body not received within %v", timeout)
	default:
		site.JSONError(w, site.CodeBadRequest, "malformed JSON: %v%s", err, hint)
	}
	return false
}

// StatsResponse answers every read. Value is the requested function's
// result; Count, Sum and Avg are all given. COUNT and SUM values are exact
// JSON integers (a SUM can exceed 2^53, where float64 and JavaScript numbers
// lose digits: parse them as 64-bit integers); AVG is SUM/COUNT as a float64
// rounded to 6 decimals. When the sum leaves the int64 range, SumOverflow is
// set and Sum and Avg are null (a SUM or AVG read is refused with 422).
// FreshUntil is the time up to which every acknowledged event of this video
// is included (null when the video's partition has not reported yet).
type StatsResponse struct {
	VideoID     string                   `json:"video_id"`
	Type        subjects.CounterType     `json:"type"`
	Function    subjects.CounterFunction `json:"function"`
	Start       time.Time                `json:"start"`
	End         time.Time                `json:"end"`
	Value       json.Number              `json:"value"`
	Count       uint64                   `json:"count"`
	Sum         *int64                   `json:"sum"`
	Avg         *float64                 `json:"avg"`
	SumOverflow bool                     `json:"sum_overflow,omitempty"`
	Step        string                   `json:"step,omitempty"`
	Series      []SeriesPoint            `json:"series,omitempty"`
	FreshUntil  *time.Time               `json:"fresh_until"`
}

// SeriesPoint is one step of a series (only non-empty steps are listed).
type SeriesPoint struct {
	Start time.Time   `json:"start"`
	Value json.Number `json:"value"`
}

func (a *API) getViews(w http.ResponseWriter, r *http.Request, c caller) {
	a.read(w, r, c, subjects.CounterView, subjects.CounterCount)
}

func (a *API) getCount(w http.ResponseWriter, r *http.Request, c caller) {
	a.read(w, r, c, "", subjects.CounterCount)
}

func (a *API) getStats(w http.ResponseWriter, r *http.Request, c caller) {
	a.read(w, r, c, "", "")
}

// allowRead spends one read of the caller's key, shared by every edge; past
// the limit it answers 429 with Retry-After and returns false.
func (a *API) allowRead(w http.ResponseWriter, r *http.Request, c caller) bool {
	perSec := c.rec.ReadLimit
	if perSec <= 0 {
		perSec = defaultReadRate
	}
	limit := int(math.Ceil(perSec * readWindow.Seconds()))
	ok, retry, err := a.reads.Allow(r.Context(), c.hash, limit)
	if err != nil {
		a.log.Error("count counter read", "tenant", c.rec.Tenant, "err", err)
		site.JSONError(w, site.CodeUnavailable, "cannot check the read limit right now; retry shortly")
		return false
	}
	if !ok {
		secs := int(math.Ceil(retry.Seconds()))
		w.Header().Set("Retry-After", strconv.Itoa(max(secs, 1)))
		site.JSONError(w, site.CodeRateLimited, "read limit of this API key exceeded (%d reads per %v); retry after %d s", limit, readWindow, max(secs, 1))
		return false
	}
	return true
}

func (a *API) read(w http.ResponseWriter, r *http.Request, c caller, typ subjects.CounterType, fn subjects.CounterFunction) {
	if !a.allowRead(w, r, c) {
		return
	}
	q := r.URL.Query()
	video := r.PathValue("video")
	if err := subjects.CounterValidVideoID(video); err != nil {
		site.JSONError(w, site.CodeBadRequest, "%v", err)
		return
	}
	if typ == "" {
		typ = subjects.CounterType(strings.ToUpper(q.Get("type")))
		if typ == "" {
			typ = subjects.CounterView
		}
		if !typ.Valid() {
			site.JSONError(w, site.CodeBadRequest, "type: %q is not one of VIEW, LIKE, SHARE", q.Get("type"))
			return
		}
	}
	if fn == "" {
		fn = subjects.CounterFunction(strings.ToUpper(q.Get("function")))
		if fn == "" {
			fn = subjects.CounterCount
		}
		if fn == "AVERAGE" {
			fn = subjects.CounterAvg
		}
		if !fn.Valid() {
			site.JSONError(w, site.CodeBadRequest, "function: %q is not one of COUNT, SUM, AVG", q.Get("function"))
			return
		}
	}
	now := a.now()
	end, err := parseTime(q.Get("end"), now)
	if err != nil {
		site.JSONError(w, site.CodeBadRequest, "end: %v", err)
		return
	}
	start, err := parseTime(q.Get("start"), end.Add(-defaultReadSpan))
	if err != nil {
		site.JSONError(w, site.CodeBadRequest, "start: %v", err)
		return
	}
	if !end.After(start) {
		site.JSONError(w, site.CodeBadRequest, "end must be after start")
		return
	}
	if end.Sub(start) > maxRange {
		site.JSONError(w, site.CodeBadRequest, "range longer than %d days", int(maxRange.Hours()/24))
		return
	}
	step := counterdb.Step(strings.ToLower(q.Get("step")))
	// The freshness is read before the query: every event it covers is in
	// ClickHouse already, so the answer includes it (read after, a flush
	// landing in between would be claimed without being counted).
	fresh, known := a.fresh.Partition(subjects.CounterPartition(video))
	ck := readKey{tenant: c.rec.Tenant, video: video, typ: string(typ), step: string(step),
		start: start.Truncate(time.Minute).Unix(), end: end.Truncate(time.Minute).Unix()}
	hit, cached := readEntry{}, false
	if known {
		hit, cached = a.cache.get(ck, fresh, now)
	}
	tot, series := hit.totals, hit.series
	if !cached {
		var err error
		tot, series, err = counterdb.Stats(r.Context(), a.ch, counterdb.Query{
			Tenant: c.rec.Tenant, VideoID: video, Type: typ, Start: start, End: end, Step: step})
		if errors.Is(err, counterdb.ErrBadQuery) {
			site.JSONError(w, site.CodeBadRequest, "%v", strings.TrimPrefix(err.Error(), "bad query: "))
			return
		}
		if err != nil {
			a.log.Error("counter read failed", "tenant", c.rec.Tenant, "err", err)
			site.JSONError(w, site.CodeUnavailable, "counts are unavailable right now; retry shortly")
			return
		}
		if known {
			a.cache.put(ck, readEntry{fresh: fresh, stored: now, totals: tot, series: series})
		}
	}
	overflow := tot.SumOverflow
	for _, p := range series {
		overflow = overflow || p.SumOverflow
	}
	if overflow && fn != subjects.CounterCount {
		site.JSONError(w, site.CodeOutOfRange, "the sum of the values in this range leaves the 64-bit integer range (beyond ±9.2e18); read shorter ranges or steps")
		return
	}
	out := StatsResponse{VideoID: video, Type: typ, Function: fn, Start: start.UTC().Truncate(time.Minute), End: end.UTC().Truncate(time.Minute),
		Count: tot.Events, Value: value(fn, tot), Step: string(step), SumOverflow: tot.SumOverflow}
	if !tot.SumOverflow {
		sum, avg := tot.Total, round(tot.Avg())
		out.Sum, out.Avg = &sum, &avg
	}
	for _, p := range series {
		out.Series = append(out.Series, SeriesPoint{Start: p.Start, Value: value(fn, p.Totals)})
	}
	if known {
		out.FreshUntil = &fresh
	}
	site.WriteJSON(w, http.StatusOK, out)
}

// value is fn's result as an exact JSON number: integers for COUNT and SUM,
// the rounded float for AVG.
func value(fn subjects.CounterFunction, t counterdb.Totals) json.Number {
	switch fn {
	case subjects.CounterSum:
		return json.Number(strconv.FormatInt(t.Total, 10))
	case subjects.CounterAvg:
		return json.Number(strconv.FormatFloat(round(t.Avg()), 'f', -1, 64))
	}
	return json.Number(strconv.FormatUint(t.Events, 10))
}

func round(f float64) float64 { return math.Round(f*1e6) / 1e6 }

// parseTime accepts RFC 3339 or unix seconds; empty gives def.
func parseTime(s string, def time.Time) (time.Time, error) {
	if s == "" {
		return def, nil
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return time.Unix(n, 0).UTC(), nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is neither RFC 3339 (2026-01-02T15:04:05Z) nor unix seconds", s)
	}
	return t, nil
}

// readableIDs tells which video ids can be read back: a write is refused
// when GET /api/counter/v1/videos/<path-escaped id>/stats would not reach the
// read handler with the same id. Go's ServeMux redirects paths holding "."
// or ".." segments and does not match some ids made of escaped slashes
// ("/"), so the check asks a ServeMux with the read route itself instead of
// copying its rules.
type readableIDs struct{ mux *http.ServeMux }

func newReadableIDs() readableIDs {
	mux := http.NewServeMux()
	mux.HandleFunc(statsPattern, func(w http.ResponseWriter, r *http.Request) {
		w.(*idProbe).got = r.PathValue("video")
	})
	return readableIDs{mux: mux}
}

// check reports why id cannot be read back, or nil.
func (c readableIDs) check(id string) error {
	// An id without "/" is one path segment; only "." and ".." are
	// rewritten. This keeps the common case off the router.
	if !strings.Contains(id, "/") && id != "." && id != ".." {
		return nil
	}
	p := &idProbe{}
	u, err := url.Parse("/api/counter/v1/videos/" + url.PathEscape(id) + "/stats")
	if err == nil {
		c.mux.ServeHTTP(p, &http.Request{Method: http.MethodGet, URL: u, Header: http.Header{}})
	}
	if err != nil || p.got != id {
		return fmt.Errorf("video_id: %q could not be read back at /api/counter/v1/videos/{id}/stats (URL paths drop \".\" and \"..\" segments and a lone \"/\"); use another id", id)
	}
	return nil
}

// idProbe is the ResponseWriter of a check: it keeps the id the route saw.
type idProbe struct {
	got string
	h   http.Header
}

func (p *idProbe) Header() http.Header {
	if p.h == nil {
		p.h = http.Header{}
	}
	return p.h
}
func (p *idProbe) Write(b []byte) (int, error) { return len(b), nil }
func (p *idProbe) WriteHeader(int)             {}
