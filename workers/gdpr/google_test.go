package gdpr_test

import (
	"context"
	"errors"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"jetfleet/internal/abtest"
	"jetfleet/internal/blob"
	"jetfleet/internal/google/oauth"
	"jetfleet/internal/sealed"
	"jetfleet/internal/youtube/youtubetest"
	"jetfleet/subjects"
)

// TestDeletionRevokesTheGoogleGrantAndDeletesTheTokens connects pat's
// YouTube channel for A/B tests through the Google stand-in and deletes
// pat: the grant is revoked at Google and our tokens are gone. With Google
// unreachable the deletion still completes, our tokens are gone all the
// same, and the request and the mail say the grant could not be revoked.
func TestDeletionRevokesTheGoogleGrantAndDeletesTheTokens(t *testing.T) {
	for _, tc := range []struct {
		name      string
		reachable bool
	}{{"google reachable", true}, {"google unreachable", false}} {
		t.Run(tc.name, func(t *testing.T) {
			yt := youtubetest.New(youtubetest.Options{})
			mine := youtubetest.ChannelID(1)
			yt.AddChannel(mine, "@pat", "Pat's channel")
			g := youtubetest.NewGoogle(yt, youtubetest.GoogleConfig{ClientID: "cid", ClientSecret: "cs", Channel: mine})
			gsrv := httptest.NewServer(g.Handler())
			t.Cleanup(gsrv.Close)
			box, err := sealed.New([]byte("token-key-token-key-token-key-0123"))
			if err != nil {
				t.Fatal(err)
			}
			oc, err := oauth.New(oauth.Config{ClientID: "cid", ClientSecret: "cs", AuthBase: gsrv.URL, TokenBase: gsrv.URL, RedirectURL: "http://site/cb"})
			if err != nil {
				t.Fatal(err)
			}
			var ab *abtest.Service
			s := setUpWith(t, 0, func(ctx context.Context, js jetstream.JetStream, blobs blob.Store) *abtest.Service {
				if ab, err = abtest.Open(ctx, js, abtest.Config{OAuth: oc, APIBase: gsrv.URL, Tokens: box, Blobs: blobs}); err != nil {
					t.Fatal(err)
				}
				return ab
			})
			ctx := context.Background()
			pat := s.user(t, "pat@example.com")

			authURL, err := ab.BeginConnect(ctx, pat.ID, "pat-session")
			if err != nil {
				t.Fatal(err)
			}
			loc, err := g.Consent(authURL)
			if err != nil {
				t.Fatal(err)
			}
			cb, _ := url.Parse(loc)
			grant, err := ab.FinishConnect(ctx, pat.ID, "pat-session", cb.Query().Get("state"), cb.Query().Get("code"))
			if err != nil {
				t.Fatal(err)
			}
			refresh, err := box.Open(grant.Refresh, "google-oauth:"+pat.ID)
			if err != nil {
				t.Fatal(err)
			}
			if !tc.reachable {
				gsrv.Close()
			}

			req := s.request(t, subjects.GDPRKindDelete, pat)

			if _, err := ab.Grant(ctx, pat.ID); !errors.Is(err, abtest.ErrNotConnected) {
				t.Errorf("grant after deletion: %v, want it gone", err)
			}
			kv, err := s.js.KeyValue(ctx, subjects.TrackerABTestsBucket)
			if err != nil {
				t.Fatal(err)
			}
			if hist, err := kv.History(ctx, subjects.TrackerABGrantKey(pat.ID)); !errors.Is(err, jetstream.ErrKeyNotFound) {
				for _, h := range hist {
					if h.Operation() == jetstream.KeyValuePut {
						t.Errorf("a sealed token is still kept at revision %d", h.Revision())
					}
				}
			}
			notes := s.notes(t, req.ID)
			m, ok := s.mail.find("gdpr-delete:" + req.ID)
			if !ok {
				t.Fatal("no confirmation mail")
			}
			told := strings.Contains(m.Text, "myaccount.google.com/permissions")
			if tc.reachable {
				if n := g.Calls("revoke"); n != 1 {
					t.Errorf("revoke reached google %d times, want 1", n)
				}
				_, err := oc.TokenSource(ctx, string(refresh), nil).Token()
				if !errors.Is(err, oauth.ErrRevoked) {
					t.Errorf("refresh after deletion: %v, want the grant revoked", err)
				}
				if len(notes) != 0 || told {
					t.Errorf("notes %q, mail tells of a failed revocation: %v", notes, told)
				}
				return
			}
			if len(notes) != 1 || !strings.Contains(notes[0], "Google") || strings.Contains(notes[0], string(refresh)) {
				t.Errorf("notes %q, want one saying Google was not told (and never the token)", notes)
			}
			if !told {
				t.Errorf("mail does not tell pat to remove the grant themselves:\n%s", m.Text)
			}
		})
	}
}

// notes reads the notes of request id as operators do.
func (s *site) notes(t *testing.T, id string) []string {
	t.Helper()
	n, err := s.reqs.Notes(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return n
}
