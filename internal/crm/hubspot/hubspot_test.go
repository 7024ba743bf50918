package hubspot_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"jetfleet/internal/crm"
	"jetfleet/internal/crm/crmtest"
	"jetfleet/internal/crm/hubspot"
	"jetfleet/internal/crm/hubspot/hubspottest"
	"jetfleet/internal/jsonshape"
)

// shape lists the JSON paths of a HubSpot payload; properties and error
// contexts are maps of values, not structure.
func shape(t *testing.T, b []byte) []string {
	return jsonshape.Of(t, b, ".properties", ".inputs[].properties", ".results[].properties", ".errors[].context")
}

func TestClientSendsTheDocumentedUpsertAndReadsA207PerContact(t *testing.T) {
	var got []byte
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != hubspot.UpsertPath || r.Header.Get("Authorization") != "Bearer pat-x" {
			t.Errorf("request %s %s auth %q", r.Method, r.URL.Path, r.Header.Get("Authorization"))
		}
		got, _ = io.ReadAll(r.Body)
		w.WriteHeader(http.StatusMultiStatus)
		w.Write(crmtest.Golden(t, "hubspot_upsert_207.json"))
	}))
	defer srv.Close()
	res, err := hubspot.New(hubspot.Config{BaseURL: srv.URL}).UpsertContacts(context.Background(), "pat-x", crmtest.Contacts())
	if err != nil {
		t.Fatal(err)
	}
	if want := shape(t, crmtest.Golden(t, "hubspot_upsert_request.json")); !slices.Equal(shape(t, got), want) {
		t.Fatalf("request shape %v, golden %v", shape(t, got), want)
	}
	var req struct {
		Inputs []struct{ IDProperty, ID string }
	}
	json.Unmarshal(got, &req)
	if req.Inputs[0].IDProperty != "email" || req.Inputs[0].ID != "ada@example.com" {
		t.Fatalf("inputs = %+v, want upsert by email", req.Inputs)
	}
	if res.Upserted["ada@example.com"] != "512" || len(res.Failed) != 1 || res.Failed[0].Email != "not-an-address" ||
		res.Failed[0].Message != "Property values were not valid: Email address not-an-address is invalid" {
		t.Fatalf("result = %+v", res)
	}
}

func TestClientTellsRefusalsApart(t *testing.T) {
	for _, tc := range []struct {
		name, file string
		status     int
		header     string
		check      func(error) bool
	}{
		{"401 is unauthorized", "hubspot_401.json", 401, "", func(err error) bool { return errors.Is(err, crm.ErrUnauthorized) }},
		{"429 carries Retry-After", "hubspot_429.json", 429, "3", func(err error) bool {
			var rl *crm.RateLimitError
			return errors.As(err, &rl) && rl.RetryAfter == 3*time.Second
		}},
		{"429 without Retry-After", "hubspot_429.json", 429, "", func(err error) bool {
			var rl *crm.RateLimitError
			return errors.As(err, &rl) && rl.RetryAfter == 0
		}},
		{"5xx is a plain (transient) error", "hubspot_401.json", 502, "", func(err error) bool {
			var rl *crm.RateLimitError
			return err != nil && !errors.Is(err, crm.ErrUnauthorized) && !errors.As(err, &rl)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if tc.header != "" {
					w.Header().Set("Retry-After", tc.header)
				}
				w.WriteHeader(tc.status)
				w.Write(crmtest.Golden(t, tc.file))
			}))
			defer srv.Close()
			_, err := hubspot.New(hubspot.Config{BaseURL: srv.URL}).UpsertContacts(context.Background(), "t", crmtest.Contacts())
			if !tc.check(err) {
				t.Fatalf("error %v", err)
			}
		})
	}
}

func TestStandInAnswersInHubSpotsShapes(t *testing.T) {
	s, err := hubspottest.Start(hubspottest.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	post := func(token string, body []byte) *http.Response {
		req, _ := http.NewRequest(http.MethodPost, s.URL+hubspot.UpsertPath, bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	check := func(resp *http.Response, status int, file string) {
		t.Helper()
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != status {
			t.Fatalf("status %d, want %d: %s", resp.StatusCode, status, b)
		}
		got, want := shape(t, b), shape(t, crmtest.Golden(t, file))
		for _, k := range want {
			if !slices.Contains(got, k) {
				t.Fatalf("stand-in answer lacks %s of %s: %s", k, file, b)
			}
		}
	}
	req := crmtest.Golden(t, "hubspot_upsert_request.json")
	check(post("wrong", req), 401, "hubspot_401.json")
	check(post(s.Token(), req), 207, "hubspot_upsert_207.json")
	s.RateLimit(1, 2*time.Second)
	resp := post(s.Token(), req)
	if resp.Header.Get("Retry-After") != "2" {
		t.Fatalf("Retry-After %q", resp.Header.Get("Retry-After"))
	}
	check(resp, 429, "hubspot_429.json")
	// Upserting again updates: still one contact per address.
	check(post(s.Token(), req), 207, "hubspot_upsert_207.json")
	if n := len(s.Contacts()); n != 1 {
		t.Fatalf("%d contacts after two upserts of one valid address", n)
	}
}

func TestRetryAfterReadsSecondsAndDates(t *testing.T) {
	for in, want := range map[string]time.Duration{"": 0, "5": 5 * time.Second, "0": 0, "soon": 0, "-3": 0} {
		if got := hubspot.RetryAfter(in); got != want {
			t.Errorf("RetryAfter(%q) = %v, want %v", in, got, want)
		}
	}
	if got := hubspot.RetryAfter(time.Now().Add(time.Hour).UTC().Format(http.TimeFormat)); got < 59*time.Minute || got > time.Hour {
		t.Errorf("RetryAfter(date in an hour) = %v", got)
	}
}
