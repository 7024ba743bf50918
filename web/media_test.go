package web_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"jetfleet/internal/blob"
	domain "jetfleet/internal/media"
	"jetfleet/internal/testenv"
	"jetfleet/subjects"
	"jetfleet/web"
	"jetfleet/web/webtest"
)

type mediaEdge struct {
	*httptest.Server
	js    jetstream.JetStream
	items *domain.Service
	blobs blob.Store
}

// startMediaEdge runs the edge with blobs in the JetStream object store,
// served under /blobs/ as `jetfleet dev` does.
func startMediaEdge(t *testing.T) *mediaEdge {
	t.Helper()
	return startMediaEdgeWith(t, web.Config{})
}

func startMediaEdgeWith(t *testing.T, cfg web.Config) *mediaEdge {
	t.Helper()
	srv := testenv.StartNATS(t)
	nc, js := srv.Connect(t)
	ctx := testenv.Context(t, 10*time.Second)
	if err := subjects.Provision(ctx, js, subjects.Options{}); err != nil {
		t.Fatal(err)
	}
	signer, err := blob.NewURLSigner([]byte(strings.Repeat("b", 32)))
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewUnstartedServer(nil)
	base := "http://" + hs.Listener.Addr().String()
	store, err := blob.NewObjectStore(ctx, js, subjects.BlobStore, signer, base)
	if err != nil {
		t.Fatal(err)
	}
	cfg.SessionSecret, cfg.BaseURL = []byte(strings.Repeat("s", 32)), base
	h, err := web.New(ctx, cfg, web.Deps{
		NATS: nc, JS: js, Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		BlobStore: store, Blobs: blob.Handler(store, signer),
	})
	if err != nil {
		t.Fatal(err)
	}
	hs.Config.Handler = h
	hs.Start()
	t.Cleanup(hs.Close)
	items, err := domain.Open(ctx, js, store)
	if err != nil {
		t.Fatal(err)
	}
	return &mediaEdge{Server: hs, js: js, items: items, blobs: store}
}

var csrfToken = regexp.MustCompile(`name="csrf_token" value="([^"]+)"`)

// uploadFile posts body to the upload route as the page's script does.
func uploadFile(t *testing.T, b *webtest.Browser, name, body string) (int, string) {
	t.Helper()
	_, page := b.Get("/media")
	m := csrfToken.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no CSRF token on /media: %.300s", page)
	}
	req, _ := http.NewRequest(http.MethodPost, b.Base+"/media/upload", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/octet-stream")
	req.Header.Set("X-CSRF-Token", m[1])
	req.Header.Set("X-File-Name", name)
	resp, err := b.HTTP.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(out)
}

func TestMediaUploadTakesTheFileAsBodyAndTheSameFileTwiceIsOneVideo(t *testing.T) {
	e := startMediaEdge(t)
	pat := webtest.NewBrowser(t, e.URL)
	if code, _ := pat.Get("/media"); code != http.StatusSeeOther {
		t.Errorf("anonymous /media = %d, want a redirect to sign in", code)
	}
	pat.SignIn(e.js, "pat@example.com")
	if code, page := pat.Get("/media"); code != http.StatusOK || !strings.Contains(page, "Upload a video") || !strings.Contains(page, "hls.light.min.js") {
		t.Fatalf("/media = %d %.300s", code, page)
	}
	if code, msg := uploadFile(t, pat, "talk%20one.mp4", "pretend video bytes"); code != http.StatusCreated || !strings.Contains(msg, "talk one.mp4") {
		t.Errorf("first upload = %d %q, want 201 naming the file", code, msg)
	}
	if code, msg := uploadFile(t, pat, "again.mp4", "pretend video bytes"); code != http.StatusOK || !strings.Contains(msg, "uploaded this file before") {
		t.Errorf("second upload of the same bytes = %d %q, want 200 saying it is the same video", code, msg)
	}
	if code, msg := uploadFile(t, pat, "empty.mp4", ""); code != http.StatusBadRequest || !strings.Contains(msg, "empty") {
		t.Errorf("empty upload = %d %q, want 400 saying it is empty", code, msg)
	}
	_, list := pat.Get("/media/items")
	if strings.Count(list, `class="media-item"`) != 1 || !strings.Contains(list, "talk one.mp4") {
		t.Errorf("/media/items lists %d videos, want the one: %.500s", strings.Count(list, `class="media-item"`), list)
	}

	// A form post without the script, and a post without the token.
	resp, body := pat.Submit("/media", "/media/upload", nil)
	if resp.StatusCode != http.StatusUnsupportedMediaType || !strings.Contains(body, "JavaScript") {
		t.Errorf("plain form post = %d %q, want 415 asking for JavaScript", resp.StatusCode, body)
	}
	req, _ := http.NewRequest(http.MethodPost, e.URL+"/media/upload", strings.NewReader("x"))
	if resp, err := pat.HTTP.Do(req); err != nil || resp.StatusCode != http.StatusForbidden {
		t.Errorf("upload without CSRF token: %v %v, want 403", resp.StatusCode, err)
	}
}

func TestMediaPlaylistsAreServedToTheirOwnerWithSignedSegmentURLs(t *testing.T) {
	e := startMediaEdge(t)
	pat := webtest.NewBrowser(t, e.URL)
	pat.SignIn(e.js, "pat@example.com")
	uploadFile(t, pat, "clip.mp4", "pretend video")
	ctx := context.Background()
	_, page := pat.Get("/media/items")
	id := regexp.MustCompile(`id="item-([0-9a-f]+)"`).FindStringSubmatch(page)
	if id == nil {
		t.Fatalf("no item on the page: %.300s", page)
	}
	// Finish the item as the roles would: a rendition, its playlist and
	// segment, the master playlist.
	var owner string
	for _, k := range mustKeys(t, e) {
		if strings.HasSuffix(k, "."+id[1]) {
			owner = strings.Split(k, ".")[1]
		}
	}
	if code, _ := pat.Get("/media/" + id[1] + "/master.m3u8"); code != http.StatusConflict {
		t.Errorf("master playlist of an unfinished video = %d, want 409", code)
	}
	prefix := domain.RenditionPrefix(owner, id[1], "480p")
	put := func(key, body string) {
		if err := e.blobs.Put(ctx, key, strings.NewReader(body), int64(len(body)), ""); err != nil {
			t.Fatal(err)
		}
	}
	put(prefix+"seg_0000.ts", "SEGMENT")
	put(prefix+domain.PlaylistName, "#EXTM3U\n#EXTINF:2.0,\nseg_0000.ts\n#EXT-X-ENDLIST\n")
	put(domain.MasterKey(owner, id[1]), "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1,RESOLUTION=640x480\n480p/index.m3u8\n")
	if _, err := e.items.Update(ctx, owner, id[1], func(it *domain.Item) error {
		it.State = domain.StateReady
		it.Renditions = []domain.RenditionState{{Name: "480p", Height: 480, State: domain.StateDone, Percent: 100}}
		return nil
	}); err != nil {
		t.Fatal(err)
	}

	code, master := pat.Get("/media/" + id[1] + "/master.m3u8")
	if code != http.StatusOK || !strings.Contains(master, "\n/media/"+id[1]+"/480p/index.m3u8\n") {
		t.Fatalf("master = %d %q, want the variant behind the edge", code, master)
	}
	code, variant := pat.Get("/media/" + id[1] + "/480p/index.m3u8")
	seg := regexp.MustCompile(`(?m)^(http\S+/blobs/\S+seg_0000\.ts\?\S*sig=\S+)$`).FindStringSubmatch(variant)
	if code != http.StatusOK || seg == nil {
		t.Fatalf("variant = %d %q, want the segment as a signed blob URL", code, variant)
	}
	resp, err := http.Get(seg[1])
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || string(got) != "SEGMENT" {
		t.Errorf("signed segment URL = %d %q", resp.StatusCode, got)
	}
	if resp, _ := http.Get(strings.Replace(seg[1], "sig=", "sig=00", 1)); resp.StatusCode != http.StatusForbidden {
		t.Errorf("tampered segment URL = %d, want 403", resp.StatusCode)
	}

	sam := webtest.NewBrowser(t, e.URL)
	sam.SignIn(e.js, "sam@example.com")
	if code, _ := sam.Get("/media/" + id[1] + "/master.m3u8"); code != http.StatusNotFound {
		t.Errorf("another user's master playlist = %d, want 404", code)
	}
}

func mustKeys(t *testing.T, e *mediaEdge) []string {
	t.Helper()
	kv, err := e.js.KeyValue(context.Background(), subjects.MediaBucket)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := kv.Keys(context.Background())
	if errors.Is(err, jetstream.ErrNoKeysFound) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return keys
}

func TestMediaUploadOverTheLimitIsRefusedAndNothingIsStored(t *testing.T) {
	e := startMediaEdgeWith(t, web.Config{MediaMaxUploadBytes: 1 << 20})
	pat := webtest.NewBrowser(t, e.URL)
	pat.SignIn(e.js, "pat@example.com")
	big := strings.Repeat("v", 2<<20)
	if code, msg := uploadFile(t, pat, "big.mp4", big); code != http.StatusRequestEntityTooLarge || !strings.Contains(msg, "at most 1 MB") {
		t.Errorf("2 MB upload with a 1 MB limit = %d %q, want 413 naming the limit", code, msg)
	}
	// Without a declared length (chunked): cut off at the limit.
	_, page := pat.Get("/media")
	req, _ := http.NewRequest(http.MethodPost, e.URL+"/media/upload", io.MultiReader(strings.NewReader(big)))
	req.ContentLength = -1
	req.Header.Set("X-CSRF-Token", csrfToken.FindStringSubmatch(page)[1])
	resp, err := pat.HTTP.Do(req)
	if err == nil {
		msg, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestEntityTooLarge {
			t.Errorf("chunked 2 MB upload = %d %q, want 413", resp.StatusCode, msg)
		}
	}
	if keys := mustKeys(t, e); len(keys) != 0 {
		t.Errorf("items recorded for refused uploads: %v", keys)
	}
	if left, _ := e.blobs.List(context.Background(), "media/"); len(left) != 0 {
		t.Errorf("files stored for refused uploads: %v", left)
	}
}

func TestMediaPageShowsAFailedRenditionsReasonAndItsOwnerRetriesIt(t *testing.T) {
	e := startMediaEdge(t)
	pat := webtest.NewBrowser(t, e.URL)
	pat.SignIn(e.js, "pat@example.com")
	uploadFile(t, pat, "clip.mp4", "pretend video")
	keys := mustKeys(t, e)
	if len(keys) != 1 {
		t.Fatalf("items: %v", keys)
	}
	parts := strings.Split(keys[0], ".") // owner.<user>.<item>
	owner, id := parts[1], parts[2]
	if _, err := e.items.Update(context.Background(), owner, id, func(it *domain.Item) error {
		it.State, it.Reason = domain.StateFailed, "480p failed"
		it.Renditions = []domain.RenditionState{{Name: "480p", Height: 480, State: domain.StateFailed, Reason: "ffmpeg 480p: encoder crashed"}}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	_, page := pat.Get("/media")
	if !strings.Contains(page, "encoder crashed") || !strings.Contains(page, `action="/media/`+id+`/retry"`) {
		t.Fatalf("the page does not show the reason and a retry: %.2000s", page)
	}
	sam := webtest.NewBrowser(t, e.URL)
	sam.SignIn(e.js, "sam@example.com")
	if resp, _ := sam.Submit("/media", "/media/"+id+"/retry", url.Values{"rendition": {"480p"}}); resp.StatusCode != http.StatusNotFound {
		t.Errorf("another user's retry = %d, want 404", resp.StatusCode)
	}
	resp, _ := pat.Submit("/media", "/media/"+id+"/retry", url.Values{"rendition": {"480p"}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("retry = %d, want 303 back to /media", resp.StatusCode)
	}
	it, err := e.items.Get(context.Background(), owner, id)
	if r := it.Rendition("480p"); err != nil || r.State != domain.StateQueued || r.Attempt != 1 || it.State != domain.StateProcessing {
		t.Errorf("after retry: %+v (err %v); want 480p queued, attempt 1, item processing", it, err)
	}
	if resp, body := pat.Submit("/media", "/media/"+id+"/retry", url.Values{"rendition": {"480p"}}); resp.StatusCode != http.StatusConflict || !strings.Contains(body, "Only a failed rendition") {
		t.Errorf("retry of a queued rendition = %d %q, want 409", resp.StatusCode, body)
	}
	stream, _ := e.js.Stream(context.Background(), subjects.MediaStream)
	if m, err := stream.GetLastMsgForSubject(context.Background(), subjects.MediaJobs("480p")); err != nil || !strings.Contains(string(m.Data), `"attempt":1`) {
		t.Errorf("retry job on %s: %v %v", subjects.MediaJobs("480p"), m, err)
	}
}

func TestPagesMayFetchVideoFromTheS3OriginOnlyWhenBlobsAreOnS3(t *testing.T) {
	for _, c := range []struct{ origin, want, not string }{
		{"", "media-src 'self' blob:;", "connect-src"},
		{"https://s3.example.com", "connect-src 'self' https://s3.example.com", ""},
	} {
		e := startMediaEdgeWith(t, web.Config{BlobOrigin: c.origin})
		resp, err := http.Get(e.URL + "/")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		csp := resp.Header.Get("Content-Security-Policy")
		if !strings.Contains(csp, c.want) || (c.not != "" && strings.Contains(csp, c.not)) {
			t.Errorf("blob origin %q: CSP %q, want %q and not %q", c.origin, csp, c.want, c.not)
		}
	}
}
