package gdpr_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"jetfleet/internal/accounts"
	"jetfleet/internal/testenv"
	"jetfleet/subjects"
	"jetfleet/web"
	"jetfleet/web/webtest"
)

var confirmLink = regexp.MustCompile(`/signin/verify\?token=(\S+)`)

// TestDataRequestsAreQueuedOnlyAfterTheMagicLinkConfirmsThem drives the
// pages as a person would: ask, open the mailed link, confirm.
func TestDataRequestsAreQueuedOnlyAfterTheMagicLinkConfirmsThem(t *testing.T) {
	srv := testenv.StartNATS(t)
	nc, js := srv.Connect(t)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	if err := subjects.Provision(ctx, js, subjects.Options{}); err != nil {
		t.Fatal(err)
	}
	h, err := web.New(ctx, web.Config{SessionSecret: []byte(strings.Repeat("s", 32)), BaseURL: "http://site"}, web.Deps{
		NATS: nc, JS: js, Gatherer: prometheus.NewRegistry(), Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(h)
	t.Cleanup(hs.Close)
	queued := func() uint64 {
		st, err := js.Stream(ctx, subjects.GDPRStream)
		if err != nil {
			t.Fatal(err)
		}
		i, err := st.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return i.State.Msgs
	}

	// Not signed in: sent to sign in first.
	anon := webtest.NewBrowser(t, hs.URL)
	if code, _ := anon.Get("/account/data"); code != http.StatusSeeOther {
		t.Fatalf("anonymous /account/data = %d", code)
	}

	b := webtest.NewBrowser(t, hs.URL)
	b.SignIn(js, "pat@example.com")
	if _, body := b.Get("/events/mine"); !strings.Contains(body, `href="/account/data"`) {
		t.Error("my events does not link to the data page")
	}
	// Deletion without ticking the box is refused with a message.
	resp, body := b.Submit("/account/data", "/account/data/request", url.Values{"kind": {subjects.GDPRKindDelete}})
	if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(body, "Tick the box") {
		t.Fatalf("unticked deletion = %d", resp.StatusCode)
	}
	resp, _ = b.Submit("/account/data", "/account/data/request", url.Values{"kind": {subjects.GDPRKindExport}})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("request export = %d", resp.StatusCode)
	}
	if n := queued(); n != 0 {
		t.Fatalf("queued before confirmation: %d", n)
	}

	// The mailed link signs in and lands on the confirmation page.
	st, _ := js.Stream(ctx, subjects.MailStream)
	raw, err := st.GetLastMsgForSubject(ctx, subjects.MailSend)
	if err != nil {
		t.Fatal(err)
	}
	var m subjects.Mail
	json.Unmarshal(raw.Data, &m)
	found := confirmLink.FindStringSubmatch(m.Text)
	if m.To != "pat@example.com" || found == nil {
		t.Fatalf("confirmation mail %+v", m)
	}
	token, _ := url.QueryUnescape(found[1])
	resp, _ = b.Submit("/signin/verify?token="+url.QueryEscape(token), "/signin/verify", url.Values{"token": {token}})
	landing := resp.Header.Get("Location")
	if !strings.HasPrefix(landing, "/account/data/confirm/") {
		t.Fatalf("link lands on %q", landing)
	}
	nonce := regexp.MustCompile(`[?&]n=([^&]+)`).FindStringSubmatch(landing)
	action := strings.SplitN(landing, "?", 2)[0]

	// Someone else signed in, with the URL but as another account, gets nothing.
	eve := webtest.NewBrowser(t, hs.URL)
	eve.SignIn(js, "eve@example.com")
	if code, _ := eve.Get(landing); code != http.StatusNotFound {
		t.Errorf("another user's confirmation page = %d", code)
	}
	// Pat without the link's nonce gets nothing either.
	if resp, _ := b.Submit(landing, action, url.Values{"n": {"wrong"}}); resp.StatusCode != http.StatusNotFound {
		t.Errorf("confirm with a wrong nonce = %d", resp.StatusCode)
	}

	for range 2 { // confirming twice queues it once
		n, _ := url.QueryUnescape(nonce[1])
		resp, body = b.Submit(landing, action, url.Values{"n": {n}})
		if resp.StatusCode != http.StatusOK || !strings.Contains(body, `id="request-status"`) {
			t.Fatalf("confirm = %d", resp.StatusCode)
		}
	}
	if n := queued(); n != 1 {
		t.Fatalf("queued %d requests, want 1", n)
	}
	msg, err := js.Stream(ctx, subjects.GDPRStream)
	if err != nil {
		t.Fatal(err)
	}
	last, err := msg.GetLastMsgForSubject(ctx, subjects.GDPRExport)
	if err != nil {
		t.Fatal(err)
	}
	var req subjects.GDPRRequest
	json.Unmarshal(last.Data, &req)
	users, _ := accounts.Open(ctx, js, accounts.Config{})
	pat, _ := users.UserByEmail(ctx, "pat@example.com")
	if req.UserID != pat.ID || req.Email != "pat@example.com" || req.Kind != subjects.GDPRKindExport {
		t.Errorf("queued %+v", req)
	}

	// Once the account is deleted, its session counts as signed out.
	if err := users.Delete(ctx, pat.ID); err != nil {
		t.Fatal(err)
	}
	if code, _ := b.Get("/events/mine"); code != http.StatusSeeOther {
		t.Errorf("deleted user's /events/mine = %d, want a redirect to sign in", code)
	}
}
