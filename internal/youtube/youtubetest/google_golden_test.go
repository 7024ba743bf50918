package youtubetest_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"jetfleet/internal/jsonshape"
	"jetfleet/internal/youtube/youtubetest"
)

func golden(t *testing.T, name string) []byte {
	b, err := os.ReadFile(filepath.Join("testdata", "google", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// missing lists the golden document's keys the stand-in's answer lacks.
func missing(t *testing.T, goldenName string, got []byte, optional ...string) []string {
	have := map[string]bool{}
	for _, k := range jsonshape.Of(t, got) {
		have[k] = true
	}
	var out []string
	for _, k := range jsonshape.Of(t, golden(t, goldenName)) {
		skip := false
		for _, o := range optional {
			skip = skip || strings.HasPrefix(k, o)
		}
		if !have[k] && !skip {
			out = append(out, k)
		}
	}
	return out
}

type googleWorld struct {
	yt  *youtubetest.Server
	g   *youtubetest.Google
	url string
}

func newGoogleWorld(t *testing.T) googleWorld {
	yt := youtubetest.New(youtubetest.Options{})
	yt.AddChannel(youtubetest.ChannelID(1), "@mine", "Mine")
	yt.AddChannel(youtubetest.ChannelID(2), "@other", "Other")
	yt.AddVideo(youtubetest.ChannelID(1), youtubetest.VideoID(1), "Mine", time.Now().Add(-time.Hour), 10)
	yt.AddVideo(youtubetest.ChannelID(2), youtubetest.VideoID(2), "Other", time.Now().Add(-time.Hour), 10)
	g := youtubetest.NewGoogle(yt, youtubetest.GoogleConfig{ClientID: "cid", ClientSecret: "cs", Channel: youtubetest.ChannelID(1)})
	srv := httptest.NewServer(g.Handler())
	t.Cleanup(srv.Close)
	return googleWorld{yt: yt, g: g, url: srv.URL}
}

func post(t *testing.T, u string, form url.Values) (int, []byte) {
	resp, err := http.PostForm(u, form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func (w googleWorld) tokens(t *testing.T) map[string]any {
	verifier := strings.Repeat("v", 43)
	sum := sha256.Sum256([]byte(verifier))
	q := url.Values{"client_id": {"cid"}, "redirect_uri": {"http://app/cb"}, "response_type": {"code"}, "state": {"s"},
		"scope": {"https://www.googleapis.com/auth/youtube"}, "code_challenge": {base64.RawURLEncoding.EncodeToString(sum[:])}, "code_challenge_method": {"S256"}}
	loc, err := w.g.Consent(w.url + "/o/oauth2/v2/auth?" + q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	cb, _ := url.Parse(loc)
	status, body := post(t, w.url+"/token", url.Values{"grant_type": {"authorization_code"}, "code": {cb.Query().Get("code")},
		"client_id": {"cid"}, "client_secret": {"cs"}, "redirect_uri": {"http://app/cb"}, "code_verifier": {verifier}})
	if status != 200 {
		t.Fatalf("token: %d %s", status, body)
	}
	if m := missing(t, "token-authorization_code.json", body); len(m) > 0 {
		t.Errorf("token answer lacks %v", m)
	}
	var tok map[string]any
	json.Unmarshal(body, &tok)
	return tok
}

func (w googleWorld) call(t *testing.T, method, path, token string, body []byte) (int, []byte) {
	req, _ := http.NewRequest(method, w.url+path, bytes.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func TestStandInAnswersHaveGooglesDocumentedShapes(t *testing.T) {
	w := newGoogleWorld(t)
	tok := w.tokens(t)
	access := tok["access_token"].(string)

	status, body := w.call(t, "GET", "/youtube/v3/videos?part=snippet,statistics&id="+youtubetest.VideoID(1), access, nil)
	if status != 200 {
		t.Fatalf("videos.list: %d %s", status, body)
	}
	if m := missing(t, "videos-list.json", body); len(m) > 0 {
		t.Errorf("videos.list lacks %v", m)
	}

	update, _ := json.Marshal(map[string]any{"id": youtubetest.VideoID(2), "snippet": map[string]any{"title": "x", "categoryId": "22"}})
	status, body = w.call(t, "PUT", "/youtube/v3/videos?part=snippet", access, update)
	if status != 403 {
		t.Fatalf("update of another channel's video: %d", status)
	}
	if m := missing(t, "error-forbidden.json", body); len(m) > 0 {
		t.Errorf("forbidden lacks %v", m)
	}

	w.g.SetQuotaLeft(0)
	status, body = w.call(t, "GET", "/youtube/v3/channels?part=snippet&mine=true", access, nil)
	if status != 403 || !strings.Contains(string(body), `"quotaExceeded"`) {
		t.Fatalf("over quota: %d %s", status, body)
	}
	if m := missing(t, "error-quotaExceeded.json", body); len(m) > 0 {
		t.Errorf("quotaExceeded lacks %v", m)
	}

	status, body = w.call(t, "GET", "/youtube/v3/channels?part=snippet&mine=true", "ya29.not-a-token", nil)
	if status != 401 {
		t.Fatalf("bad token: %d", status)
	}
	// location/locationType are optional details of the real answer.
	if m := missing(t, "error-authError.json", body, ".error.errors[].location"); len(m) > 0 {
		t.Errorf("authError lacks %v", m)
	}

	w.g.RevokeAll()
	status, body = post(t, w.url+"/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok["refresh_token"].(string)},
		"client_id": {"cid"}, "client_secret": {"cs"}})
	if status != 400 {
		t.Fatalf("refresh of a revoked grant: %d %s", status, body)
	}
	if m := missing(t, "token-invalid_grant.json", body); len(m) > 0 || !strings.Contains(string(body), "invalid_grant") {
		t.Errorf("invalid_grant answer %s lacks %v", body, m)
	}
}

func TestThumbnailsSetRefusesOverTwoMegabytesAndNonImages(t *testing.T) {
	w := newGoogleWorld(t)
	access := w.tokens(t)["access_token"].(string)
	path := "/upload/youtube/v3/thumbnails/set?videoId=" + youtubetest.VideoID(1)
	if status, body := w.call(t, "POST", path, access, bytes.Repeat([]byte{0xff}, 2*1024*1024+1)); status != 413 {
		t.Fatalf("2 MB + 1 byte: %d %s", status, body)
	}
	if status, body := w.call(t, "POST", path, access, []byte("%PDF-1.4 not an image")); status != 400 || !strings.Contains(string(body), "invalidImage") {
		t.Fatalf("a PDF: %d %s", status, body)
	}
}
