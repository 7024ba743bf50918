package counter_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

// COUNTER_RETENTION reaches the edge: an event older than the configured
// retention is refused with a 400 that names the retention, one inside it
// is accepted.
func TestEventOlderThanConfiguredRetentionIsRefused(t *testing.T) {
	e := newEnvRetention(t, 2*time.Hour)
	key := e.key("acme", 0)
	now := time.Now().UTC()

	status, out := e.post(key, "/api/counter/v1/events", ev("v1", "VIEW", 1, now.Add(-3*time.Hour), ""))
	if status != http.StatusBadRequest || !strings.Contains(fmt.Sprint(out["error"]), "older than the raw-event retention (2h0m0s)") {
		t.Errorf("3 h old event with a 2 h retention: %d %v, want 400 naming the retention", status, out)
	}
	if status, out := e.post(key, "/api/counter/v1/events", ev("v1", "VIEW", 1, now.Add(-90*time.Minute), "")); status != http.StatusAccepted {
		t.Errorf("90 min old event with a 2 h retention: %d %v, want 202", status, out)
	}
	// In a batch the old item is rejected by index and the rest accepted.
	status, out = e.post(key, "/api/counter/v1/batch", map[string]any{"events": []any{
		ev("v1", "VIEW", 1, now, ""), ev("v1", "VIEW", 1, now.Add(-5*time.Hour), "")}})
	rejected, _ := out["rejected"].([]any)
	if status != http.StatusAccepted || num(out["accepted"]) != 1 || len(rejected) != 1 ||
		!strings.Contains(fmt.Sprint(rejected[0]), "retention") {
		t.Errorf("batch with one too old item: %d %v", status, out)
	}
}
