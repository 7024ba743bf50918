package dataapi_test

import (
	"bytes"
	"context"
	"errors"
	"image"
	"image/color"
	"image/png"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"jetfleet/internal/google/oauth"
	"jetfleet/internal/youtube/dataapi"
	"jetfleet/internal/youtube/youtubetest"
)

type world struct {
	yt  *youtubetest.Server
	g   *youtubetest.Google
	api *dataapi.Client
}

func connect(t *testing.T) world {
	t.Helper()
	yt := youtubetest.New(youtubetest.Options{})
	mine, other := youtubetest.ChannelID(1), youtubetest.ChannelID(2)
	yt.AddChannel(mine, "@mine", "Mine")
	yt.AddChannel(other, "@other", "Other")
	yt.AddVideo(mine, youtubetest.VideoID(1), "Original title", time.Now().Add(-48*time.Hour), 1000)
	yt.AddVideo(other, youtubetest.VideoID(2), "Not yours", time.Now().Add(-48*time.Hour), 1000)
	g := youtubetest.NewGoogle(yt, youtubetest.GoogleConfig{ClientID: "cid", ClientSecret: "secret", Channel: mine})
	srv := httptest.NewServer(g.Handler())
	t.Cleanup(srv.Close)
	c, _ := oauth.New(oauth.Config{ClientID: "cid", ClientSecret: "secret", AuthBase: srv.URL, TokenBase: srv.URL, RedirectURL: "http://app.test/cb"})
	v := oauth.NewVerifier()
	loc, err := g.Consent(c.AuthCodeURL("s", v))
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(loc)
	ctx := context.Background()
	tok, err := c.Exchange(ctx, u.Query().Get("code"), v)
	if err != nil {
		t.Fatal(err)
	}
	hc := c.HTTPClient(ctx, c.TokenSource(ctx, tok.RefreshToken, tok))
	return world{yt: yt, g: g, api: dataapi.New(dataapi.Config{BaseURL: srv.URL}, hc)}
}

func pngImage(t *testing.T, w, h int, c color.Color) []byte {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			img.Set(x, y, c)
		}
	}
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestMyChannelAndVideoSnippet(t *testing.T) {
	w := connect(t)
	ctx := context.Background()
	ch, err := w.api.MyChannel(ctx)
	if err != nil || ch.ID != youtubetest.ChannelID(1) || ch.Title != "Mine" {
		t.Fatalf("MyChannel = %+v, %v", ch, err)
	}
	v, err := w.api.Video(ctx, youtubetest.VideoID(1))
	if err != nil || v.ChannelID != ch.ID || v.Title != "Original title" || v.CategoryID == "" || v.Views < 1000 {
		t.Fatalf("Video = %+v, %v", v, err)
	}
	if _, err := w.api.Video(ctx, "nosuchvideo"); !errors.Is(err, dataapi.ErrNotFound) {
		t.Fatalf("unknown video: %v", err)
	}
}

func TestTitleAndThumbnailChangeWhatWatchPagesServe(t *testing.T) {
	w := connect(t)
	ctx := context.Background()
	id := youtubetest.VideoID(1)
	before, _ := w.yt.ThumbnailJPEG(id, "default.jpg")
	v, _ := w.api.Video(ctx, id)
	if err := w.api.SetTitle(ctx, v, "Variant B"); err != nil {
		t.Fatal(err)
	}
	if err := w.api.SetThumbnail(ctx, id, pngImage(t, 1280, 720, color.RGBA{200, 10, 10, 255}), "image/png"); err != nil {
		t.Fatal(err)
	}
	after, _ := w.yt.ThumbnailJPEG(id, "default.jpg")
	if w.yt.Title(id) != "Variant B" || bytes.Equal(before, after) {
		t.Fatalf("title %q, thumbnail changed %v", w.yt.Title(id), !bytes.Equal(before, after))
	}
	if got := w.g.UnitsSpent(); got != 1+50+50 {
		t.Fatalf("units spent = %d, want 101", got)
	}
}

func TestRefusalsAreClassified(t *testing.T) {
	w := connect(t)
	ctx := context.Background()
	other, _ := w.api.Video(ctx, youtubetest.VideoID(2))
	if err := w.api.SetTitle(ctx, other, "mine now"); !errors.Is(err, dataapi.ErrForbidden) {
		t.Fatalf("title of another channel's video: %v, want ErrForbidden", err)
	}
	v, _ := w.api.Video(ctx, youtubetest.VideoID(1))
	if err := w.api.SetTitle(ctx, v, strings.Repeat("x", 101)); !errors.Is(err, dataapi.ErrInvalid) {
		t.Fatalf("101-character title: %v, want ErrInvalid", err)
	}
	if err := w.api.SetThumbnail(ctx, v.ID, []byte("GIF89a not an image"), "image/gif"); !errors.Is(err, dataapi.ErrInvalid) {
		t.Fatalf("gif thumbnail: %v, want ErrInvalid", err)
	}
	w.g.SetQuotaLeft(10)
	err := w.api.SetTitle(ctx, v, "costs 50")
	var apiErr *dataapi.APIError
	if !errors.Is(err, dataapi.ErrQuota) || !errors.As(err, &apiErr) || apiErr.Reason != "quotaExceeded" {
		t.Fatalf("over quota: %v, want ErrQuota with reason quotaExceeded", err)
	}
	// Revoked while the client still holds an access token: the call
	// itself gets 401 authError.
	w.g.RevokeAll()
	if _, err := w.api.Video(ctx, v.ID); !errors.Is(err, dataapi.ErrUnauthorized) {
		t.Fatalf("after revocation: %v, want ErrUnauthorized", err)
	}
}

// Google's documented error bodies (youtubetest/testdata/google) are told
// apart by status and reason.
func TestDocumentedErrorBodiesAreClassified(t *testing.T) {
	for _, c := range []struct {
		file   string
		status int
		want   error
	}{
		{"error-quotaExceeded.json", 403, dataapi.ErrQuota},
		{"error-authError.json", 401, dataapi.ErrUnauthorized},
		{"error-forbidden.json", 403, dataapi.ErrForbidden},
	} {
		body, err := os.ReadFile(filepath.Join("..", "youtubetest", "testdata", "google", c.file))
		if err != nil {
			t.Fatal(err)
		}
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(c.status)
			w.Write(body)
		}))
		_, err = dataapi.New(dataapi.Config{BaseURL: srv.URL}, srv.Client()).MyChannel(context.Background())
		srv.Close()
		var apiErr *dataapi.APIError
		if !errors.Is(err, c.want) || !errors.As(err, &apiErr) || apiErr.Message == "" {
			t.Errorf("%s: %v, want %v with Google's message", c.file, err, c.want)
		}
		if c.want == dataapi.ErrQuota && errors.Is(err, dataapi.ErrForbidden) {
			t.Errorf("%s: quota exhaustion also reads as forbidden", c.file)
		}
	}
}
