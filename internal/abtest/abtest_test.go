package abtest_test

import (
	"bytes"
	"context"
	"errors"
	"image"
	"image/color"
	"image/jpeg"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"jetfleet/internal/abtest"
	"jetfleet/internal/blob"
	"jetfleet/internal/google/oauth"
	"jetfleet/internal/sealed"
	"jetfleet/internal/testenv"
	"jetfleet/internal/youtube/youtubetest"
	"jetfleet/subjects"
)

type env struct {
	svc  *abtest.Service
	yt   *youtubetest.Server
	g    *youtubetest.Google
	vid  string
	ctx  context.Context
	uid  string
	sess string
	// store holds the uploads: a test can replace one behind the service.
	store *blob.ObjectStore
}

func setup(t *testing.T, quota int) *env {
	t.Helper()
	_, js := testenv.JetStream(t)
	ctx := testenv.Context(t, 30*time.Second)
	if err := subjects.Provision(ctx, js, subjects.Options{}); err != nil {
		t.Fatal(err)
	}
	yt := youtubetest.New(youtubetest.Options{})
	mine, other := youtubetest.ChannelID(1), youtubetest.ChannelID(2)
	yt.AddChannel(mine, "@mine", "Mine")
	yt.AddChannel(other, "@other", "Other")
	yt.AddVideo(mine, youtubetest.VideoID(1), "Original", time.Now().Add(-30*time.Hour), 5000)
	yt.AddVideo(other, youtubetest.VideoID(2), "Theirs", time.Now().Add(-30*time.Hour), 5000)
	g := youtubetest.NewGoogle(yt, youtubetest.GoogleConfig{ClientID: "cid", ClientSecret: "cs", Channel: mine})
	gsrv := httptest.NewServer(g.Handler())
	t.Cleanup(gsrv.Close)

	signer, _ := blob.NewURLSigner([]byte("0123456789abcdef0123456789abcdef"))
	mux := http.NewServeMux()
	bsrv := httptest.NewServer(mux)
	t.Cleanup(bsrv.Close)
	store, err := blob.NewObjectStore(ctx, js, subjects.BlobStore, signer, bsrv.URL)
	if err != nil {
		t.Fatal(err)
	}
	mux.Handle("/", blob.Handler(store, signer))

	box, _ := sealed.New([]byte("token-key-token-key-token-key-0123"))
	oc, err := oauth.New(oauth.Config{ClientID: "cid", ClientSecret: "cs", AuthBase: gsrv.URL, TokenBase: gsrv.URL, RedirectURL: "http://site/cb"})
	if err != nil {
		t.Fatal(err)
	}
	svc, err := abtest.Open(ctx, js, abtest.Config{OAuth: oc, APIBase: gsrv.URL, Tokens: box, Blobs: store, QuotaPerDay: quota, Demo: true})
	if err != nil {
		t.Fatal(err)
	}
	return &env{svc: svc, yt: yt, g: g, vid: youtubetest.VideoID(1), ctx: ctx, uid: "user1", sess: "session-1", store: store}
}

// connect runs the consent as a browser would and returns the callback's
// state and code.
func (e *env) consent(t *testing.T) (state, code string) {
	t.Helper()
	authURL, err := e.svc.BeginConnect(e.ctx, e.uid, e.sess)
	if err != nil {
		t.Fatal(err)
	}
	loc, err := e.g.Consent(authURL)
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(loc)
	return u.Query().Get("state"), u.Query().Get("code")
}

func (e *env) connect(t *testing.T) {
	t.Helper()
	state, code := e.consent(t)
	if _, err := e.svc.FinishConnect(e.ctx, e.uid, e.sess, state, code); err != nil {
		t.Fatal(err)
	}
}

func jpegOf(t *testing.T, w, h int, c color.Color, pad int) []byte {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			img.Set(x, y, c)
		}
	}
	var b bytes.Buffer
	if err := jpeg.Encode(&b, img, nil); err != nil {
		t.Fatal(err)
	}
	// JPEG readers stop at the end marker; padding makes a big file.
	b.Write(make([]byte, pad))
	return b.Bytes()
}

func (e *env) upload(t *testing.T, test subjects.TrackerABTest, i int, body []byte, ct string) {
	t.Helper()
	if s := e.send(t, test, i, body, ct); s != http.StatusOK {
		t.Fatalf("upload: HTTP %d", s)
	}
}

// send uploads body as variant i's thumbnail as the page does and
// returns the HTTP status.
func (e *env) send(t *testing.T, test subjects.TrackerABTest, i int, body []byte, ct string) int {
	t.Helper()
	u, err := e.svc.ThumbUpload(e.ctx, test, i)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(u.Method, u.URL, bytes.NewReader(body))
	req.Header.Set("Content-Type", ct)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func TestOAuthStateIsBoundToTheSessionAndUsedOnce(t *testing.T) {
	e := setup(t, 0)
	state, code := e.consent(t)
	if _, err := e.svc.FinishConnect(e.ctx, e.uid, "another-session", state, code); !errors.Is(err, abtest.ErrOAuthState) {
		t.Fatalf("callback in another session: %v, want ErrOAuthState", err)
	}
	// The attempt spent the state: even the right session cannot use it.
	if _, err := e.svc.FinishConnect(e.ctx, e.uid, e.sess, state, code); !errors.Is(err, abtest.ErrOAuthState) {
		t.Fatalf("state used twice: %v, want ErrOAuthState", err)
	}
	if _, err := e.svc.FinishConnect(e.ctx, e.uid, e.sess, "made-up", code); !errors.Is(err, abtest.ErrOAuthState) {
		t.Fatalf("unknown state: %v, want ErrOAuthState", err)
	}
	state, code = e.consent(t)
	g, err := e.svc.FinishConnect(e.ctx, e.uid, e.sess, state, code)
	if err != nil {
		t.Fatal(err)
	}
	if g.ChannelID != youtubetest.ChannelID(1) || bytes.Contains(g.Refresh, []byte("1//")) {
		t.Fatalf("grant %+v: wrong channel or refresh token in the clear", g)
	}
}

func TestCreateRefusesAVideoOfAnotherChannelAndLongTitles(t *testing.T) {
	e := setup(t, 0)
	if _, err := e.svc.Create(e.ctx, e.uid, abtest.Draft{VideoID: e.vid, Titles: []string{"a", "b"}, Days: 1}); !errors.Is(err, abtest.ErrNotConnected) {
		t.Fatalf("before connecting: %v", err)
	}
	e.connect(t)
	var p abtest.Problems
	_, err := e.svc.Create(e.ctx, e.uid, abtest.Draft{VideoID: youtubetest.VideoID(2), Titles: []string{"a", "b"}, Days: 1})
	if !errors.As(err, &p) || !strings.Contains(p["video"], "not on your connected channel") {
		t.Fatalf("another channel's video: %v", err)
	}
	_, err = e.svc.Create(e.ctx, e.uid, abtest.Draft{VideoID: e.vid, Titles: []string{strings.Repeat("x", 101), "b"}, Days: 15})
	if !errors.As(err, &p) || !strings.Contains(p["title0"], "100 characters") || p["days"] == "" {
		t.Fatalf("101-character title, 15 days: %v", err)
	}
}

func TestWrongTypeOrSizeOfThumbnailIsRefusedBeforeStart(t *testing.T) {
	e := setup(t, 0)
	e.connect(t)
	test, err := e.svc.Create(e.ctx, e.uid, abtest.Draft{VideoID: e.vid, Titles: []string{"", ""}, Days: 1})
	if err != nil {
		t.Fatal(err)
	}
	e.upload(t, test, 0, []byte("GIF89a\x01\x00\x01\x00not really"), "image/gif")
	// Over YouTube's 2 MB: the store refuses the upload itself.
	if s := e.send(t, test, 1, jpegOf(t, 1280, 720, color.White, 3<<20), "image/jpeg"); s != http.StatusRequestEntityTooLarge {
		t.Fatalf("3 MB jpeg upload: HTTP %d, want 413", s)
	}
	_, err = e.svc.Start(e.ctx, e.uid, test.ID, nil)
	var p abtest.Problems
	if !errors.As(err, &p) || !strings.Contains(p["thumb0"], "not a JPEG or PNG") {
		t.Fatalf("gif: %v", err)
	}
	e.upload(t, test, 1, jpegOf(t, 320, 180, color.White, 0), "image/jpeg")
	if _, err = e.svc.Start(e.ctx, e.uid, test.ID, nil); !errors.As(err, &p) || !strings.Contains(p["thumb1"], "640") {
		t.Fatalf("320 px wide: %v", err)
	}
}

func (e *env) started(t *testing.T, days int, rotation time.Duration) subjects.TrackerABTest {
	t.Helper()
	test, err := e.svc.Create(e.ctx, e.uid, abtest.Draft{VideoID: e.vid, Titles: []string{"Title A", "Title B"}, Days: days, Rotation: rotation})
	if err != nil {
		t.Fatal(err)
	}
	e.upload(t, test, 0, jpegOf(t, 1280, 720, color.RGBA{200, 0, 0, 255}, 0), "image/jpeg")
	e.upload(t, test, 1, jpegOf(t, 1280, 720, color.RGBA{0, 0, 200, 255}, 0), "image/jpeg")
	test, err = e.svc.Start(e.ctx, e.uid, test.ID, nil)
	if err != nil {
		t.Fatal(err)
	}
	return test
}

func TestTimetableIsWrittenWholeAtStart(t *testing.T) {
	e := setup(t, 0)
	e.connect(t)
	test := e.started(t, 2, 12*time.Hour)
	if len(test.Slots) != 4 || test.Status != subjects.TrackerABRunning {
		t.Fatalf("slots %d status %s, want 4 running", len(test.Slots), test.Status)
	}
	var order []int
	for i, s := range test.Slots {
		order = append(order, s.Variant)
		if i > 0 && s.At.Sub(test.Slots[i-1].At) != 12*time.Hour {
			t.Fatalf("slot %d at %v", i, s.At)
		}
	}
	if want := []int{0, 1, 1, 0}; !equal(order, want) {
		t.Fatalf("variant order %v, want %v (each variant in each half-day)", order, want)
	}
	if !test.End.Equal(test.Start.Add(48 * time.Hour)) {
		t.Fatalf("end %v for start %v", test.End, test.Start)
	}
}

func equal(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestASlotAppliedTwiceCallsYouTubeOnce(t *testing.T) {
	e := setup(t, 0)
	e.connect(t)
	test := e.started(t, 2, 12*time.Hour)
	before, _ := e.yt.ThumbnailJPEG(e.vid, "default.jpg")
	for range 2 {
		if _, err := e.svc.ApplySlot(e.ctx, test.ID, 0); err != nil {
			t.Fatal(err)
		}
	}
	after, _ := e.yt.ThumbnailJPEG(e.vid, "default.jpg")
	if e.g.Calls("thumbnails.set") != 1 || e.g.Calls("videos.update") != 1 {
		t.Fatalf("thumbnails.set %d, videos.update %d, want 1 each", e.g.Calls("thumbnails.set"), e.g.Calls("videos.update"))
	}
	if e.yt.Title(e.vid) != "Title A" || bytes.Equal(before, after) {
		t.Fatalf("watch page title %q, thumbnail changed %v", e.yt.Title(e.vid), !bytes.Equal(before, after))
	}
	got, _ := e.svc.Test(e.ctx, e.uid, test.ID)
	if got.Slots[0].Live.IsZero() {
		t.Fatal("the time the variant went live was not recorded")
	}
	q, _ := e.svc.Quota(e.ctx, e.svc.Day(time.Now()))
	if q.Spent < 101 || q.Reserved == 0 {
		t.Fatalf("quota %+v: spending or reservation not counted", q)
	}
}

func TestQuotaExhaustionRefusesToStartSayingWhy(t *testing.T) {
	// Two titles, 6-hour slots for a day: A B B A, three changes of 51
	// units. Wherever the start falls in the Pacific day, some day books
	// at least two of them (102 units), over a budget of 100.
	e := setup(t, 100)
	e.connect(t)
	test, err := e.svc.Create(e.ctx, e.uid, abtest.Draft{VideoID: e.vid, Titles: []string{"Title A", "Title B"}, Days: 1, Rotation: 6 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.svc.Start(e.ctx, e.uid, test.ID, nil)
	if !errors.Is(err, abtest.ErrQuota) || !strings.Contains(err.Error(), "Pacific time") {
		t.Fatalf("start over quota: %v", err)
	}
	got, _ := e.svc.Test(e.ctx, e.uid, test.ID)
	if got.Status != subjects.TrackerABDraft {
		t.Fatalf("status %s after refusal, want draft", got.Status)
	}
}

func TestRevokedGrantPausesTestsAndIsNotRetried(t *testing.T) {
	e := setup(t, 0)
	e.connect(t)
	test := e.started(t, 2, 12*time.Hour)
	e.g.RevokeAll()
	_, err := e.svc.ApplySlot(e.ctx, test.ID, 0)
	if !errors.Is(err, abtest.ErrRevoked) {
		t.Fatalf("apply after revocation: %v, want ErrRevoked", err)
	}
	got, _ := e.svc.Test(e.ctx, e.uid, test.ID)
	g, _ := e.svc.Grant(e.ctx, e.uid)
	if got.Status != subjects.TrackerABPaused || g.Revoked.IsZero() || !strings.Contains(got.StatusReason, "revoked") {
		t.Fatalf("test %s (%s), grant revoked %v", got.Status, got.StatusReason, g.Revoked)
	}
	refreshes := e.g.Calls("token.refresh")
	if did, err := e.svc.ApplySlot(e.ctx, test.ID, 1); err != nil || did.Skipped == "" {
		t.Fatalf("next slot: %+v %v, want skipped", did, err)
	}
	if e.g.Calls("token.refresh") != refreshes {
		t.Fatal("a revoked grant was tried again")
	}
}

func TestDisconnectRevokesAtGoogleAndDeletesTokens(t *testing.T) {
	e := setup(t, 0)
	e.connect(t)
	if err := e.svc.Disconnect(e.ctx, e.uid); err != nil {
		t.Fatal(err)
	}
	if e.g.Calls("revoke") != 1 {
		t.Fatalf("revoke calls %d", e.g.Calls("revoke"))
	}
	if _, err := e.svc.Grant(e.ctx, e.uid); !errors.Is(err, abtest.ErrNotConnected) {
		t.Fatalf("grant after disconnect: %v", err)
	}
}

func TestDeleteRemovesUploadedThumbnails(t *testing.T) {
	e := setup(t, 0)
	e.connect(t)
	test := e.started(t, 1, 12*time.Hour)
	if err := e.svc.Delete(e.ctx, e.uid, test.ID); err != nil {
		t.Fatal(err)
	}
	for i := range test.Variants {
		if c := e.svc.CheckThumb(e.ctx, test.Variants[i].ThumbKey); c.Uploaded {
			t.Fatalf("variant %d's thumbnail still stored", i)
		}
	}
	if _, err := e.svc.Test(e.ctx, e.uid, test.ID); !errors.Is(err, abtest.ErrNotFound) {
		t.Fatalf("test after delete: %v", err)
	}
}

func TestDeletingARunningTestGivesItsQuotaBack(t *testing.T) {
	e := setup(t, 0)
	e.connect(t)
	test := e.started(t, 1, 12*time.Hour)
	day := e.svc.Day(test.Slots[0].At)
	booked, _ := e.svc.Quota(e.ctx, day)
	if booked.Reserved == 0 {
		t.Fatal("starting booked nothing")
	}
	if err := e.svc.Delete(e.ctx, e.uid, test.ID); err != nil {
		t.Fatal(err)
	}
	after, _ := e.svc.Quota(e.ctx, day)
	if after.Reserved != 0 {
		t.Fatalf("reserved %d after delete (was %d), want 0", after.Reserved, booked.Reserved)
	}
}

// What is sent to YouTube is what the bytes are, whatever type was
// stored or recorded at start: an upload replaced after the start by a
// page is refused with the reason and never sent.
func TestThumbnailThatIsNoLongerAnImageIsRefusedNotSent(t *testing.T) {
	e := setup(t, 0)
	e.connect(t)
	test := e.started(t, 2, 12*time.Hour)
	page := []byte("<!DOCTYPE html><html><script>alert(1)</script></html>")
	if err := e.store.Put(e.ctx, test.Variants[0].ThumbKey, bytes.NewReader(page), int64(len(page)), "image/jpeg"); err != nil {
		t.Fatal(err)
	}
	_, err := e.svc.ApplySlot(e.ctx, test.ID, 0)
	if !errors.Is(err, abtest.ErrThumbnailType) || !strings.Contains(err.Error(), "text/html") {
		t.Fatalf("apply with a page as thumbnail: %v; want ErrThumbnailType naming what it is", err)
	}
	if n := e.g.Calls("thumbnails.set"); n != 0 {
		t.Fatalf("thumbnails.set called %d times with a page", n)
	}
}
