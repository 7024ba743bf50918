package counter_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"jetfleet/internal/apikeys"
	"jetfleet/internal/testenv"
	wcounter "jetfleet/web/counter"
)

func TestAKeyPastItsReadLimitGets429OnEveryEdge(t *testing.T) {
	srv, js, conn := provisioned(t)
	var edges []*httptest.Server
	for range 2 {
		hs, _ := startEdge(t, srv, conn)
		edges = append(edges, hs)
	}
	ctx := testenv.Context(t, time.Minute)
	keys, err := apikeys.OpenCounter(ctx, js)
	if err != nil {
		t.Fatal(err)
	}
	read := func(edge *httptest.Server, key string) *http.Response {
		req, _ := http.NewRequest(http.MethodGet, edge.URL+"/api/counter/v1/videos/v1/count", nil)
		req.Header.Set(wcounter.APIKeyHeader, key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	// 0.5 reads/s is 5 reads per 10 s window, shared by both edges. The
	// windows are aligned to the clock: an attempt that straddles a window
	// boundary is run again with a fresh key.
	for attempt := 1; ; attempt++ {
		window := time.Now().Truncate(10 * time.Second)
		key, _, err := keys.Issue(ctx, apikeys.NewKey{Tenant: "acme", Name: fmt.Sprint("reads ", attempt), ReadLimit: 0.5})
		if err != nil {
			t.Fatal(err)
		}
		allowed := 0
		for i := range 8 {
			resp := read(edges[i%2], key)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				allowed++
			}
		}
		var refusals []string
		for i, edge := range edges {
			resp := read(edge, key)
			var body struct{ Error string }
			json.NewDecoder(resp.Body).Decode(&body)
			resp.Body.Close()
			retry, _ := strconv.Atoi(resp.Header.Get("Retry-After"))
			if resp.StatusCode != http.StatusTooManyRequests || retry < 1 || retry > 10 || body.Error == "" {
				refusals = append(refusals, fmt.Sprintf("edge %d: %d, Retry-After %q, error %q", i, resp.StatusCode, resp.Header.Get("Retry-After"), body.Error))
			}
		}
		if !time.Now().Truncate(10*time.Second).Equal(window) && attempt < 3 {
			continue
		}
		if allowed != 5 || len(refusals) > 0 {
			t.Fatalf("8 reads over 2 edges with a limit of 5 per 10 s: %d allowed; then, want 429 with Retry-After and a JSON error on both edges: %v", allowed, refusals)
		}
		return
	}
}
