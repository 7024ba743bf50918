package counter_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"jetfleet/analytics"
	"jetfleet/internal/accounts"
	"jetfleet/internal/apikeys"
	"jetfleet/internal/ids"
	"jetfleet/internal/testenv"
	"jetfleet/subjects"
	"jetfleet/web"
	"jetfleet/web/webtest"
)

// startEdge runs a real edge on its own NATS connection to srv, so that what
// the edge reads from NATS can be measured on that connection alone.
func startEdge(t *testing.T, srv *testenv.NATS, conn driver.Conn) (*httptest.Server, *nats.Conn) {
	t.Helper()
	nc, js := srv.Connect(t)
	ctx := testenv.Context(t, time.Minute)
	edge, err := web.New(ctx, web.Config{SessionSecret: bytes.Repeat([]byte("s"), 32)},
		web.Deps{NATS: nc, JS: js, ClickHouse: conn, Gatherer: prometheus.NewRegistry(), Log: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(edge)
	t.Cleanup(hs.Close)
	return hs, nc
}

func provisioned(t *testing.T) (*testenv.NATS, jetstream.JetStream, driver.Conn) {
	t.Helper()
	srv := testenv.StartNATS(t)
	_, js := srv.Connect(t)
	ctx := testenv.Context(t, time.Minute)
	if err := subjects.Provision(ctx, js, subjects.Options{}); err != nil {
		t.Fatal(err)
	}
	conn, _ := ch.Database(t)
	if _, err := analytics.Migrate(ctx, conn, analytics.Schema(), nil); err != nil {
		t.Fatal(err)
	}
	return srv, js, conn
}

// readOfCounterPage is what one GET /counter makes the edge receive from
// NATS (messages, bytes), after a first render has warmed the edge up.
func readOfCounterPage(t *testing.T, b *webtest.Browser, nc *nats.Conn) (uint64, uint64, string) {
	t.Helper()
	if code, body := b.Get("/counter"); code != http.StatusOK {
		t.Fatalf("GET /counter: %d %s", code, body)
	}
	before := nc.Stats()
	code, body := b.Get("/counter")
	after := nc.Stats()
	if code != http.StatusOK {
		t.Fatalf("GET /counter: %d", code)
	}
	return after.InMsgs - before.InMsgs, after.InBytes - before.InBytes, body
}

func TestAnotherUsersManyLargeKeysDoNotChangeWhatMyCounterPageReads(t *testing.T) {
	srv, js, conn := provisioned(t)
	edge1, nc1 := startEdge(t, srv, conn)
	ada := webtest.NewBrowser(t, edge1.URL)
	ada.SignIn(js, "ada@example.com")
	if resp, body := ada.Submit("/counter", "/counter/keys", url.Values{"tenant": {"acme"}}); resp.StatusCode != http.StatusOK {
		t.Fatalf("create ada's key: %d %s", resp.StatusCode, body)
	}
	msgs0, bytes0, _ := readOfCounterPage(t, ada, nc1)

	// Another user with 40 keys of 100 KB each, written as the bucket
	// allowed before names were capped: records and index slots.
	ctx := testenv.Context(t, time.Minute)
	kv, err := js.KeyValue(ctx, subjects.CounterAPIKeysBucket)
	if err != nil {
		t.Fatal(err)
	}
	eve := ids.New()
	big := strings.Repeat("x", 100<<10)
	for i := range 40 {
		tenant := apikeys.TenantOf(eve, fmt.Sprintf("t%d", i))
		hash := apikeys.Hash(fmt.Sprintf("jfc_eve%d", i))
		rec, _ := json.Marshal(apikeys.Record{Tenant: tenant, Name: big, Prefix: "jfc_eve", Created: time.Now()})
		idx, _ := json.Marshal(map[string]any{"hash": hash, "tenant": tenant, "name": big})
		if _, err := kv.Put(ctx, hash, rec); err != nil {
			t.Fatal(err)
		}
		if _, err := kv.Put(ctx, subjects.CounterOwnerKey(eve, i), idx); err != nil {
			t.Fatal(err)
		}
	}

	// A second edge, started after them, renders ada's page and reads no
	// more than before: one of eve's records alone is 100 KB, so reading
	// any of them shows. (The message count is not compared: the edge's
	// background watches may deliver a heartbeat during the render.)
	edge2, nc2 := startEdge(t, srv, conn)
	ada.Base = edge2.URL
	msgs1, bytes1, body := readOfCounterPage(t, ada, nc2)
	if !strings.Contains(body, "acme") || strings.Contains(body, "t39") {
		t.Errorf("ada's page does not list exactly her tenant acme")
	}
	if bytes1 > bytes0+32<<10 {
		t.Fatalf("ada's /counter read %d messages, %d bytes with only her key; %d messages, %d bytes after another user's 40 large keys", msgs0, bytes0, msgs1, bytes1)
	}
}

func TestKeyNamesAreCappedWithAClearMessage(t *testing.T) {
	e := newEnv(t)
	ada := webtest.NewBrowser(t, e.srv.URL)
	ada.SignIn(e.js, "ada@example.com")
	for _, tc := range []struct {
		form url.Values
		want string
	}{
		{url.Values{"tenant": {strings.Repeat("a", 65)}}, "at most 64"},
		{url.Values{"tenant": {"acme"}, "name": {strings.Repeat("n", 65)}}, "at most 64"},
		{url.Values{"tenant": {"acme"}, "name": {"bell\x07"}}, "only printable characters"},
		{url.Values{"tenant": {"ac.me"}}, "without spaces or dots"},
	} {
		resp, body := ada.Submit("/counter", "/counter/keys", tc.form)
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, tc.want) {
			t.Errorf("tenant %.20q name %.20q: %d, want 400 saying %q", tc.form.Get("tenant"), tc.form.Get("name"), resp.StatusCode, tc.want)
		}
	}
	if owned, err := e.keys.Owned(context.Background(), userID(t, e.js, "ada@example.com")); err != nil || len(owned) != 0 {
		t.Fatalf("refused names left keys behind: %v %v", owned, err)
	}
}

func userID(t *testing.T, js jetstream.JetStream, email string) string {
	t.Helper()
	ctx := testenv.Context(t, 10*time.Second)
	users, err := accounts.Open(ctx, js, accounts.Config{})
	if err != nil {
		t.Fatal(err)
	}
	u, err := users.UserByEmail(ctx, email)
	if err != nil {
		t.Fatal(err)
	}
	return u.ID
}

func TestAUserHoldsAtMostTwentyKeys(t *testing.T) {
	e := newEnv(t)
	ada := webtest.NewBrowser(t, e.srv.URL)
	ada.SignIn(e.js, "ada@example.com")
	uid := userID(t, e.js, "ada@example.com")
	ctx := testenv.Context(t, 30*time.Second)
	for i := range apikeys.MaxKeysPerUser {
		if _, _, err := e.keys.Issue(ctx, apikeys.NewKey{Owner: uid, Tenant: apikeys.TenantOf(uid, fmt.Sprintf("t%d", i))}); err != nil {
			t.Fatalf("key %d: %v", i+1, err)
		}
	}
	resp, body := ada.Submit("/counter", "/counter/keys", url.Values{"tenant": {"one-more"}})
	if resp.StatusCode != http.StatusConflict || !strings.Contains(body, "already have 20 API keys") {
		t.Fatalf("21st key: %d, want 409 saying she already has 20", resp.StatusCode)
	}
	if owned, _ := e.keys.Owned(ctx, uid); len(owned) != apikeys.MaxKeysPerUser {
		t.Fatalf("%d keys listed, want %d", len(owned), apikeys.MaxKeysPerUser)
	}
}

func TestKeyCreationIsLimitedPerUserAcrossEdges(t *testing.T) {
	srv, js, conn := provisioned(t)
	edges := []*httptest.Server{}
	for range 2 {
		hs, _ := startEdge(t, srv, conn)
		edges = append(edges, hs)
	}
	ada := webtest.NewBrowser(t, edges[0].URL)
	ada.SignIn(js, "ada@example.com")
	for i := range 10 {
		ada.Base = edges[i%2].URL
		if resp, body := ada.Submit("/counter", "/counter/keys", url.Values{"tenant": {fmt.Sprintf("t%d", i)}}); resp.StatusCode != http.StatusOK {
			t.Fatalf("creation %d: %d %s", i+1, resp.StatusCode, body)
		}
	}
	for _, hs := range edges {
		ada.Base = hs.URL
		resp, body := ada.Submit("/counter", "/counter/keys", url.Values{"tenant": {"eleventh"}})
		if resp.StatusCode != http.StatusTooManyRequests || !strings.Contains(body, "created 10 keys within the hour") {
			t.Fatalf("11th creation on %s: %d, want 429 with the limit named", hs.URL, resp.StatusCode)
		}
	}
}
