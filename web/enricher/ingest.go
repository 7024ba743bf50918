// Package enricher is the Enricher's part of the edge: the NDJSON ingest API
// (/api/enricher/v1/events/{kind}) and the /enricher page (lesson
// completions by language × subscription type × country over time: a
// user's own, sent with their keys; every producer's and the live
// input/output/DLQ rates for operators).
package enricher

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"jetfleet/internal/apikeys"
	"jetfleet/internal/enricherevents"
	"jetfleet/subjects"
	"jetfleet/web/ratelimit"
	"jetfleet/web/site"
)

// Ingest limits.
const (
	APIKeyHeader = site.APIKeyHeader
	// MaxLines is the most events one request may carry.
	MaxLines = 10000
	// MaxBody bounds a request body.
	MaxBody = 16 << 20
	// MaxLine bounds one event.
	MaxLine = 64 << 10
	// DefaultRate is the events per second a key may send when its record
	// sets none; a burst of MaxLines is allowed.
	DefaultRate = 2000
	// IdempotencyHeader, when set, makes a retried request safe: each line
	// is published with a Nats-Msg-Id built from the API key's owner, the
	// idempotency key, the kind and the line number (idempotencyMsgID), and
	// INPUT drops a repeat within its duplicate window (2 minutes).
	IdempotencyHeader = "Idempotency-Key"
)

// Ingest serves POST /api/enricher/v1/events/{kind}.
type Ingest struct {
	js   jetstream.JetStream
	keys *apikeys.Store
	log  *slog.Logger

	limiters *ratelimit.PerKey
}

// NewIngest wires the ingest API.
func NewIngest(js jetstream.JetStream, keys *apikeys.Store, log *slog.Logger) *Ingest {
	return &Ingest{js: js, keys: keys, log: log, limiters: ratelimit.NewPerKey(DefaultRate, MaxLines)}
}

// Routes registers the API on mux (outside the session middleware: callers
// authenticate with an API key, not a cookie).
func (in *Ingest) Routes(mux *http.ServeMux) {
	mux.HandleFunc("POST /api/enricher/v1/events/{kind}", in.post)
}

// LineError reports one rejected line.
type LineError struct {
	Line  int    `json:"line"`
	Error string `json:"error"`
}

// IngestResponse is the answer to an ingest request.
type IngestResponse struct {
	Accepted int         `json:"accepted"`
	Rejected []LineError `json:"rejected,omitempty"`
	// Code and Error are set when every line was rejected (422); a
	// request refused as a whole is answered with a site.ErrorBody.
	Code  site.Code `json:"code,omitempty"`
	Error string    `json:"error,omitempty"`
}

// post validates each line of an NDJSON body of events of one kind, publishes
// the valid ones to INPUT (confirmed before answering) and reports the
// others by line number. 200 when at least one line was accepted or the
// body was empty, 422 when every line was rejected.
func (in *Ingest) post(w http.ResponseWriter, r *http.Request) {
	kind := r.PathValue("kind")
	if kind != subjects.EnricherKindUser && kind != subjects.EnricherKindSubscription && kind != subjects.EnricherKindLesson {
		site.JSONError(w, site.CodeNotFound, "unknown event kind %q: use user, subscription or lesson", kind)
		return
	}
	key := site.APIKey(r)
	if key == "" {
		site.JSONError(w, site.CodeUnauthorized, "missing API key: send it in the %s header (issue one with `jetfleet enricher key NAME`)", APIKeyHeader)
		return
	}
	rec, err := in.keys.Lookup(r.Context(), key)
	if errors.Is(err, apikeys.ErrUnknownKey) {
		site.JSONError(w, site.CodeUnauthorized, "unknown or disabled API key")
		return
	}
	if err != nil {
		in.log.Error("api key lookup failed", "err", err)
		site.JSONError(w, site.CodeUnavailable, "cannot check API keys right now; retry shortly")
		return
	}
	idem := r.Header.Get(IdempotencyHeader)
	if len(idem) > 128 {
		site.JSONError(w, site.CodeBadRequest, "%s: at most 128 characters", IdempotencyHeader)
		return
	}

	sc := bufio.NewScanner(http.MaxBytesReader(w, r.Body, MaxBody))
	sc.Buffer(make([]byte, 64<<10), MaxLine)
	type valid struct {
		line int
		uuid string
		data []byte
	}
	var ok []valid
	var resp IngestResponse
	line := 0
	for sc.Scan() {
		line++
		if line > MaxLines {
			site.JSONError(w, site.CodeTooLarge, "more than %d lines: split the batch", MaxLines)
			return
		}
		raw := sc.Bytes()
		if len(strings.TrimSpace(string(raw))) == 0 {
			continue
		}
		ev, err := enricherevents.Parse(kind, raw)
		if err != nil {
			resp.Rejected = append(resp.Rejected, LineError{Line: line, Error: err.Error()})
			continue
		}
		ok = append(ok, valid{line: line, uuid: ev.UserUUID(), data: append([]byte(nil), raw...)})
	}
	if err := sc.Err(); err != nil {
		var tooBig *http.MaxBytesError
		switch {
		case errors.As(err, &tooBig):
			site.JSONError(w, site.CodeTooLarge, "body over %d bytes: split the batch", MaxBody)
		case errors.Is(err, bufio.ErrTooLong):
			site.JSONError(w, site.CodeTooLarge, "line %d is over %d bytes", line+1, MaxLine)
		default:
			site.JSONError(w, site.CodeBadRequest, "reading the body failed at line %d: %v", line+1, err)
		}
		return
	}
	if len(ok) > 0 && !in.limiters.For(apikeys.Hash(key), rec.RateLimit).AllowN(time.Now(), len(ok)) {
		w.Header().Set("Retry-After", "1")
		site.JSONError(w, site.CodeRateLimited, "rate limit of this key exceeded; retry after a second or send smaller batches")
		return
	}

	futures := make([]jetstream.PubAckFuture, 0, len(ok))
	for _, v := range ok {
		m := nats.NewMsg(subjects.EnricherInput(kind, v.uuid))
		m.Data = v.data
		if rec.UserID != "" {
			// Whose lessons these are, for their dashboard (set here
			// from the key, never from the request).
			m.Header.Set(subjects.EnricherOwnerHeader, rec.UserID)
		}
		if idem != "" {
			m.Header.Set(jetstream.MsgIDHeader, idempotencyMsgID(rec.Name, idem, kind, v.line))
		}
		f, err := in.js.PublishMsgAsync(m)
		for errors.Is(err, jetstream.ErrTooManyStalledMsgs) && r.Context().Err() == nil {
			// The connection's window of unacknowledged publishes is
			// full: wait for it to drain (back-pressure), then go on.
			select {
			case <-in.js.PublishAsyncComplete():
			case <-r.Context().Done():
			}
			f, err = in.js.PublishMsgAsync(m)
		}
		if err != nil {
			in.log.Error("publish ingest line", "err", err)
			site.JSONError(w, site.CodeUnavailable, "cannot accept events right now; retry the request (set %s to make retries safe)", IdempotencyHeader)
			return
		}
		futures = append(futures, f)
	}
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	for _, f := range futures {
		select {
		case <-f.Ok():
			resp.Accepted++
		case err := <-f.Err():
			in.log.Error("ingest publish not confirmed", "err", err)
			site.JSONError(w, site.CodeUnavailable, "events not stored (%d of %d confirmed); retry the request (set %s to make retries safe)", resp.Accepted, len(futures), IdempotencyHeader)
			return
		case <-ctx.Done():
			site.JSONError(w, site.CodeUnavailable, "events not confirmed in time (%d of %d); retry the request (set %s to make retries safe)", resp.Accepted, len(futures), IdempotencyHeader)
			return
		}
	}
	status := http.StatusOK
	if resp.Accepted == 0 && len(resp.Rejected) > 0 {
		resp.Code, resp.Error = site.CodeInvalid, "every line was rejected"
		status = resp.Code.Status()
	}
	site.WriteJSON(w, status, resp)
}

// idempotencyMsgID is the Nats-Msg-Id of one line of a request sent with an
// idempotency key. It is scoped to the API key's owner: the same idempotency
// key from another producer must not make INPUT drop that producer's event
// as a duplicate (while the API answers accepted). Owner and key are
// length-prefixed before hashing, so no two (owner, key) pairs build the
// same id ("a:b"+"c" and "a"+"b:c" differ).
func idempotencyMsgID(owner, idem, kind string, line int) string {
	h := sha256.New()
	fmt.Fprintf(h, "%d:%s%d:%s", len(owner), owner, len(idem), idem)
	return "http:" + hex.EncodeToString(h.Sum(nil)) + ":" + kind + ":" + strconv.Itoa(line)
}
