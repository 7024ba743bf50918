package gdpr_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"jetfleet/internal/accounts"
	"jetfleet/internal/blob"
	"jetfleet/internal/gdpr"
	"jetfleet/internal/ids"
	"jetfleet/subjects"
	workergdpr "jetfleet/workers/gdpr"
)

// TestLinksMailedToAPersonStopWorkingWhenTheirDataIsDeleted mails pat (a
// host) and sam a participant CSV each, and pat a copy of their data: every
// link works until pat's data is deleted; then pat's answer 404 and their
// expiry schedules are gone, while sam's link still works.
func TestLinksMailedToAPersonStopWorkingWhenTheirDataIsDeleted(t *testing.T) {
	s := setUp(t, 0)
	ctx := context.Background()
	pat := s.user(t, "pat@example.com")
	sam := s.user(t, "sam@example.com")
	exp := s.request(t, subjects.GDPRKindExport, pat)
	patLinks := []string{s.link(t, workergdpr.ExportKey(pat.ID, exp.ID))}
	csvRuns := map[string]string{}
	for _, u := range []accounts.User{pat, sam} {
		rid := ids.New()
		csvRuns[u.ID] = rid
		k := gdpr.MailedCSVKey(u.ID, s.event.ID, rid)
		body := "name,email\npat,pat@example.com\nsam,sam@example.com\n"
		if err := s.blobs.Put(ctx, k, strings.NewReader(body), int64(len(body)), "text/csv; charset=utf-8"); err != nil {
			t.Fatal(err)
		}
		if err := gdpr.ScheduleExportExpiry(ctx, s.js, rid, k, time.Now().Add(workergdpr.LinkValidity)); err != nil {
			t.Fatal(err)
		}
		if u.ID == pat.ID {
			patLinks = append(patLinks, s.link(t, k))
		}
	}
	samLink := s.link(t, gdpr.MailedCSVKey(sam.ID, s.event.ID, csvRuns[sam.ID]))
	for _, l := range append(patLinks, samLink) {
		if code := s.download(t, l); code != http.StatusOK {
			t.Fatalf("before the deletion %s answers %d", l, code)
		}
	}

	s.request(t, subjects.GDPRKindDelete, pat)

	for _, l := range patLinks {
		if code := s.download(t, l); code != http.StatusNotFound {
			t.Errorf("after pat's deletion the link mailed to pat %s answers %d, want 404", l, code)
		}
	}
	if code := s.download(t, samLink); code != http.StatusOK {
		t.Errorf("sam's link answers %d after pat's deletion", code)
	}
	st, err := s.js.Stream(ctx, subjects.GDPRExportsStream)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.GetLastMsgForSubject(ctx, subjects.GDPRExportSchedule(csvRuns[pat.ID])); !errors.Is(err, jetstream.ErrMsgNotFound) {
		t.Errorf("the expiry of pat's deleted CSV is still scheduled: %v", err)
	}
	if _, err := st.GetLastMsgForSubject(ctx, subjects.GDPRExportSchedule(csvRuns[sam.ID])); err != nil {
		t.Errorf("the expiry of sam's CSV is gone: %v", err)
	}
}

// link is the link a mail carries to blob key, valid as long as mailed
// links are.
func (s *site) link(t *testing.T, key string) string {
	t.Helper()
	l, err := s.blobs.URL(context.Background(), key, workergdpr.LinkValidity)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// download follows link as a mail reader's browser does, through the
// edge's blob handler, and returns the status.
func (s *site) download(t *testing.T, link string) int {
	t.Helper()
	rec := httptest.NewRecorder()
	blob.Handler(s.blobs, s.signer).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, link, nil))
	return rec.Code
}
