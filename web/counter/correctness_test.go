package counter_test

import (
	"bytes"
	"net/http"
	"testing"
	"time"

	wcounter "jetfleet/web/counter"
)

// Tenant "a" with key "x:k1" and tenant "a:x" with key "k1" are different
// (tenant, key) pairs: neither may be taken for a repeat of the other, for
// an event's idempotency_key as for a request's Idempotency-Key header.
func TestIdempotencyKeysOfTenantsWithTheSeparatorDoNotCollide(t *testing.T) {
	e := newEnv(t)
	first, second := e.key("a", 0), e.key("a:x", 0)
	now := time.Now().UTC()
	for i, c := range []struct{ apiKey, idem string }{{first, "x:k1"}, {second, "k1"}} {
		status, out := e.post(c.apiKey, "/api/counter/v1/events", ev("v1", "LIKE", 1, now, c.idem))
		if status != http.StatusAccepted || out["duplicates"] != nil {
			t.Errorf("event %d (key %q): %d %v, want 202 without duplicates", i, c.idem, status, out)
		}
	}
	for i, c := range []struct{ apiKey, idem string }{{first, "x:r1"}, {second, "r1"}} {
		req, _ := http.NewRequest(http.MethodPost, e.srv.URL+"/api/counter/v1/batch",
			bytes.NewReader([]byte(`{"events":[{"video_id":"v1"}]}`)))
		req.Header.Set(wcounter.APIKeyHeader, c.apiKey)
		req.Header.Set(wcounter.IdempotencyKeyHeader, c.idem)
		status, out := e.do(req)
		if status != http.StatusAccepted || out["request_duplicate"] != nil {
			t.Errorf("request %d (Idempotency-Key %q): %d %v, want 202, not a duplicate", i, c.idem, status, out)
		}
	}
}
