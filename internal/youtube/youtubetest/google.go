package youtubetest

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"html"
	"image"
	_ "image/jpeg" // decode uploaded thumbnails
	_ "image/png"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// Google is the stand-in for the signed-in side of YouTube: Google's OAuth
// 2.0 endpoints (consent page, /token with the authorization_code grant and
// PKCE S256 verification, the refresh_token grant, /revoke) and the YouTube
// Data API v3 calls A/B tests make (channels.list mine=true, videos.list
// part=snippet,statistics, videos.update part=snippet, the thumbnails.set
// media upload), on the same world as the Server it wraps: a title or
// thumbnail set through the API is what the watch pages and thumbnail URLs
// serve next, so the tracker's change detection sees it.
//
// Answers follow Google's documented shapes, refusals included: token
// errors as {"error":"invalid_grant","error_description":…}, API errors as
// {"error":{"code":…,"message":…,"errors":[{"domain","reason","message"}]}}
// with 401 authError for a revoked or unknown token, 403 quotaExceeded once
// the day's units are spent, 403 forbidden for a video of another channel,
// 400 for a title over 100 characters or a snippet without categoryId.
type Google struct {
	yt  *Server
	cfg GoogleConfig

	mu       sync.Mutex
	codes    map[string]*authCode
	refresh  map[string]*grant // refresh token → grant
	access   map[string]*grant // access token → grant
	units    int               // quota spent today
	calls    map[string]int    // "videos.update" → count
	respond  bool
	baseRate map[string]float64
}

// GoogleConfig configures the stand-in.
type GoogleConfig struct {
	// ClientID and ClientSecret are the only client accepted.
	ClientID, ClientSecret string
	// Channel is the channel of the Google account that consents (it must
	// exist in the world).
	Channel string
	// QuotaPerDay is the project's daily units; default 10,000.
	QuotaPerDay int
	// AccessTTL is how long an access token lives; default 1h (Google
	// answers expires_in 3599).
	AccessTTL time.Duration
}

type authCode struct {
	clientID, redirect, challenge, scope string
	used                                 bool
}

type grant struct {
	channel string
	scope   string
	revoked bool
	expires time.Time // of the access token
}

// NewGoogle returns the Google stand-in over yt's world.
func NewGoogle(yt *Server, cfg GoogleConfig) *Google {
	if cfg.QuotaPerDay <= 0 {
		cfg.QuotaPerDay = 10000
	}
	if cfg.AccessTTL <= 0 {
		cfg.AccessTTL = time.Hour
	}
	return &Google{yt: yt, cfg: cfg, codes: map[string]*authCode{}, refresh: map[string]*grant{},
		access: map[string]*grant{}, calls: map[string]int{}, baseRate: map[string]float64{}}
}

// RespondToChanges makes views react to the thumbnail and title set
// through the API (each image and title has its own appeal, from its
// hash), so a demo A/B test has a winner to find.
func (g *Google) RespondToChanges(on bool) {
	g.mu.Lock()
	g.respond = on
	g.mu.Unlock()
}

// SetQuotaLeft sets how many units are left today (0: every call is
// refused with quotaExceeded).
func (g *Google) SetQuotaLeft(units int) {
	g.mu.Lock()
	g.units = g.cfg.QuotaPerDay - units
	g.mu.Unlock()
}

// RevokeAll revokes every grant, as a user does on
// myaccount.google.com/permissions: refreshes get invalid_grant and API
// calls 401.
func (g *Google) RevokeAll() {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, gr := range g.refresh {
		gr.revoked = true
	}
}

// ExpireAccessTokens makes every access token expire, so the next call
// needs a refresh.
func (g *Google) ExpireAccessTokens() {
	g.mu.Lock()
	defer g.mu.Unlock()
	for t := range g.access {
		delete(g.access, t)
	}
}

// Calls counts the API calls of method ("videos.update", "thumbnails.set",
// "videos.list", "channels.list", "token.refresh", "revoke").
func (g *Google) Calls(method string) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.calls[method]
}

// UnitsSpent is the quota spent today.
func (g *Google) UnitsSpent() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.units
}

// Handler serves OAuth and the Data API. Mount it as the base of both
// GOOGLE_OAUTH_URL and GOOGLE_API_URL.
func (g *Google) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /o/oauth2/v2/auth", g.consentPage)
	mux.HandleFunc("POST /o/oauth2/v2/auth/approve", g.approve)
	mux.HandleFunc("POST /token", g.token)
	mux.HandleFunc("POST /revoke", g.revoke)
	mux.HandleFunc("GET /youtube/v3/channels", g.api("channels.list", 1, g.channels))
	mux.HandleFunc("GET /youtube/v3/videos", g.api("videos.list", 1, g.videosList))
	mux.HandleFunc("PUT /youtube/v3/videos", g.api("videos.update", 50, g.videosUpdate))
	mux.HandleFunc("POST /upload/youtube/v3/thumbnails/set", g.api("thumbnails.set", 50, g.thumbnailsSet))
	return mux
}

func randomToken(prefix string) string {
	b := make([]byte, 24)
	rand.Read(b)
	return prefix + base64.RawURLEncoding.EncodeToString(b)
}

// consentPage is Google's consent screen reduced to its button: it checks
// the request as Google does (known client, code response, S256
// challenge) and shows what is asked.
func (g *Google) consentPage(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	problem := ""
	switch {
	case q.Get("client_id") != g.cfg.ClientID:
		problem = "Error 401: invalid_client. The OAuth client was not found."
	case q.Get("response_type") != "code":
		problem = "Error 400: invalid_request. Invalid response_type."
	case q.Get("code_challenge_method") != "S256" || q.Get("code_challenge") == "":
		problem = "Error 400: invalid_request. code_challenge_method must be S256 with a code_challenge."
	case q.Get("redirect_uri") == "":
		problem = "Error 400: redirect_uri_mismatch."
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	if problem != "" {
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprintf(w, `<!DOCTYPE html><html lang="en"><head><title>Error</title></head><body><h1>Access blocked: authorization error</h1><p>%s</p></body></html>`, html.EscapeString(problem))
		return
	}
	g.yt.mu.RLock()
	title := g.cfg.Channel
	if ch, ok := g.yt.channels[g.cfg.Channel]; ok {
		title = ch.title
	}
	g.yt.mu.RUnlock()
	var hidden strings.Builder
	for _, k := range []string{"client_id", "redirect_uri", "state", "scope", "code_challenge"} {
		fmt.Fprintf(&hidden, `<input type="hidden" name="%s" value="%s">`, k, html.EscapeString(q.Get(k)))
	}
	fmt.Fprintf(w, `<!DOCTYPE html><html lang="en"><head><meta name="viewport" content="width=device-width"><title>Sign in - Google Accounts</title></head>
<body style="font-family:sans-serif;max-width:28rem;margin:2rem auto;padding:0 1rem"><h1>Google (stand-in)</h1>
<p>jetfleet wants to access your Google Account, channel <b>%s</b>:</p><ul><li>%s</li></ul>
<form method="POST" action="/o/oauth2/v2/auth/approve">%s<button id="approve" style="font-size:1.1rem;padding:.5rem 1.2rem">Allow</button></form></body></html>`,
		html.EscapeString(title), html.EscapeString(q.Get("scope")), hidden.String())
}

func (g *Google) approve(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	code := randomToken("4/0A")
	g.mu.Lock()
	g.codes[code] = &authCode{clientID: r.PostForm.Get("client_id"), redirect: r.PostForm.Get("redirect_uri"),
		challenge: r.PostForm.Get("code_challenge"), scope: r.PostForm.Get("scope")}
	g.mu.Unlock()
	u, err := url.Parse(r.PostForm.Get("redirect_uri"))
	if err != nil {
		http.Error(w, "bad redirect_uri", http.StatusBadRequest)
		return
	}
	v := u.Query()
	v.Set("code", code)
	v.Set("state", r.PostForm.Get("state"))
	v.Set("scope", r.PostForm.Get("scope"))
	u.RawQuery = v.Encode()
	http.Redirect(w, r, u.String(), http.StatusFound)
}

func tokenError(w http.ResponseWriter, status int, code, desc string) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]string{"error": code, "error_description": desc})
}

func (g *Google) token(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		tokenError(w, http.StatusBadRequest, "invalid_request", err.Error())
		return
	}
	f := r.PostForm
	if f.Get("client_id") != g.cfg.ClientID || f.Get("client_secret") != g.cfg.ClientSecret {
		tokenError(w, http.StatusUnauthorized, "invalid_client", "Unauthorized")
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	var gr *grant
	refresh := ""
	switch f.Get("grant_type") {
	case "authorization_code":
		c, ok := g.codes[f.Get("code")]
		if !ok || c.used {
			tokenError(w, http.StatusBadRequest, "invalid_grant", "Malformed auth code.")
			return
		}
		// A code is spent by its first exchange, even a failed one.
		c.used = true
		if c.redirect != f.Get("redirect_uri") {
			tokenError(w, http.StatusBadRequest, "redirect_uri_mismatch", "Bad Request")
			return
		}
		sum := sha256.Sum256([]byte(f.Get("code_verifier")))
		if f.Get("code_verifier") == "" || base64.RawURLEncoding.EncodeToString(sum[:]) != c.challenge {
			tokenError(w, http.StatusBadRequest, "invalid_grant", "Invalid code verifier.")
			return
		}
		gr = &grant{channel: g.cfg.Channel, scope: c.scope}
		refresh = randomToken("1//0g")
		g.refresh[refresh] = gr
	case "refresh_token":
		g.calls["token.refresh"]++
		var ok bool
		gr, ok = g.refresh[f.Get("refresh_token")]
		if !ok || gr.revoked {
			tokenError(w, http.StatusBadRequest, "invalid_grant", "Token has been expired or revoked.")
			return
		}
	default:
		tokenError(w, http.StatusBadRequest, "unsupported_grant_type", "Invalid grant_type: "+f.Get("grant_type"))
		return
	}
	access := randomToken("ya29.")
	g.access[access] = gr
	gr.expires = g.yt.now().Add(g.cfg.AccessTTL)
	out := map[string]any{"access_token": access, "expires_in": int(g.cfg.AccessTTL/time.Second) - 1,
		"scope": gr.scope, "token_type": "Bearer"}
	if refresh != "" {
		out["refresh_token"] = refresh
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache, no-store, max-age=0, must-revalidate")
	json.NewEncoder(w).Encode(out)
}

func (g *Google) revoke(w http.ResponseWriter, r *http.Request) {
	r.ParseForm()
	t := r.PostForm.Get("token")
	if t == "" {
		t = r.URL.Query().Get("token")
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.calls["revoke"]++
	gr, ok := g.refresh[t]
	if !ok {
		gr, ok = g.access[t]
	}
	if !ok || gr.revoked {
		tokenError(w, http.StatusBadRequest, "invalid_token", "Token expired or revoked")
		return
	}
	gr.revoked = true
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	fmt.Fprint(w, "{}")
}

// apiError writes Google's JSON error format.
func apiError(w http.ResponseWriter, status int, domain, reason, message string) {
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	w.WriteHeader(status)
	statusText := map[int]string{400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND", 413: "INVALID_ARGUMENT"}[status]
	json.NewEncoder(w).Encode(map[string]any{"error": map[string]any{
		"code": status, "message": message, "status": statusText,
		"errors": []map[string]string{{"message": message, "domain": domain, "reason": reason}},
	}})
}

// api authenticates a Data API call, charges its quota and runs h with
// the grant's channel.
func (g *Google) api(method string, cost int, h func(w http.ResponseWriter, r *http.Request, channel string)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		tok, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		g.mu.Lock()
		gr, ok := g.access[tok]
		valid := ok && !gr.revoked && g.yt.now().Before(gr.expires)
		quotaOut := valid && g.units+cost > g.cfg.QuotaPerDay
		if valid {
			g.calls[method]++
			if !quotaOut {
				g.units += cost
			} else {
				// Every request costs at least one unit, refused ones too.
				g.units = min(g.units+1, g.cfg.QuotaPerDay)
			}
		}
		g.mu.Unlock()
		switch {
		case !valid:
			w.Header().Set("WWW-Authenticate", `Bearer realm="https://accounts.google.com/", error="invalid_token"`)
			apiError(w, http.StatusUnauthorized, "global", "authError", "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential.")
		case quotaOut:
			apiError(w, http.StatusForbidden, "youtube.quota", "quotaExceeded", `The request cannot be completed because you have exceeded your <a href="/youtube/v3/getting-started#quota">quota</a>.`)
		default:
			h(w, r, gr.channel)
		}
	}
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	json.NewEncoder(w).Encode(v)
}

func (g *Google) channels(w http.ResponseWriter, r *http.Request, channel string) {
	if r.URL.Query().Get("mine") != "true" || r.URL.Query().Get("part") == "" {
		apiError(w, http.StatusBadRequest, "youtube.parameter", "missingRequiredParameter", "No filter selected. Expected one of: mine, id, forHandle, forUsername, managedByMe, categoryId")
		return
	}
	g.yt.mu.RLock()
	ch, ok := g.yt.channels[channel]
	g.yt.mu.RUnlock()
	items := []any{}
	if ok {
		items = append(items, map[string]any{"kind": "youtube#channel", "etag": etag(ch.id + ch.title), "id": ch.id,
			"snippet": map[string]any{"title": ch.title, "description": "", "customUrl": strings.ToLower(ch.handle)}})
	}
	writeJSON(w, map[string]any{"kind": "youtube#channelListResponse", "etag": etag(channel),
		"pageInfo": map[string]int{"totalResults": len(items), "resultsPerPage": 5}, "items": items})
}

func etag(s string) string {
	sum := sha256.Sum256([]byte(s))
	return base64.RawURLEncoding.EncodeToString(sum[:20])
}

func (g *Google) videosList(w http.ResponseWriter, r *http.Request, _ string) {
	q := r.URL.Query()
	items := []any{}
	now := g.yt.now()
	g.yt.mu.RLock()
	for id := range strings.SplitSeq(q.Get("id"), ",") {
		v, ok := g.yt.videos[id]
		if !ok || v.state == StateRemoved || v.state == StatePrivate {
			continue
		}
		ch := g.yt.channels[v.channelID]
		cat := v.categoryID
		if cat == "" {
			cat = "22"
		}
		items = append(items, map[string]any{"kind": "youtube#video", "etag": etag(v.id + v.title), "id": v.id,
			"snippet": map[string]any{
				"publishedAt": v.published.UTC().Format(time.RFC3339), "channelId": v.channelID, "title": v.title,
				"description": v.description, "channelTitle": ch.title, "categoryId": cat,
				"liveBroadcastContent": "none",
				"thumbnails":           map[string]any{"default": map[string]any{"url": "https://i.ytimg.com/vi/" + v.id + "/default.jpg", "width": 120, "height": 90}},
				"localized":            map[string]any{"title": v.title, "description": v.description},
			},
			"statistics": map[string]string{"viewCount": fmt.Sprint(v.currentViews(now)), "likeCount": fmt.Sprint(max(v.likes, v.currentViews(now)/40)), "favoriteCount": "0", "commentCount": "0"},
		})
	}
	g.yt.mu.RUnlock()
	writeJSON(w, map[string]any{"kind": "youtube#videoListResponse", "etag": etag(q.Get("id")),
		"items": items, "pageInfo": map[string]int{"totalResults": len(items), "resultsPerPage": len(items)}})
}

// owned finds video id and checks it belongs to channel, writing the
// refusal YouTube gives otherwise.
func (g *Google) owned(w http.ResponseWriter, id, channel string) bool {
	g.yt.mu.RLock()
	v, ok := g.yt.videos[id]
	owner := ""
	if ok {
		owner = v.channelID
	}
	g.yt.mu.RUnlock()
	switch {
	case !ok:
		apiError(w, http.StatusNotFound, "youtube.video", "videoNotFound", "The video that you are trying to update cannot be found. Check the value of the id field in the request body to ensure that it is correct.")
		return false
	case owner != channel:
		apiError(w, http.StatusForbidden, "youtube.video", "forbidden", "The video that you are trying to update cannot be updated: the authenticated user does not own it.")
		return false
	}
	return true
}

func (g *Google) videosUpdate(w http.ResponseWriter, r *http.Request, channel string) {
	if r.URL.Query().Get("part") != "snippet" {
		apiError(w, http.StatusBadRequest, "youtube.parameter", "missingRequiredParameter", "No value was given for the part parameter this request needs.")
		return
	}
	var body struct {
		ID      string `json:"id"`
		Snippet *struct {
			Title       *string `json:"title"`
			CategoryID  string  `json:"categoryId"`
			Description string  `json:"description"`
		} `json:"snippet"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&body); err != nil || body.Snippet == nil {
		apiError(w, http.StatusBadRequest, "global", "parseError", "Parse Error")
		return
	}
	if !g.owned(w, body.ID, channel) {
		return
	}
	sn := body.Snippet
	switch {
	case sn.Title == nil || strings.TrimSpace(*sn.Title) == "":
		apiError(w, http.StatusBadRequest, "youtube.video", "invalidTitle", "The request metadata specifies an invalid or empty video title.")
		return
	case len([]rune(*sn.Title)) > 100 || strings.ContainsAny(*sn.Title, "<>"):
		apiError(w, http.StatusBadRequest, "youtube.video", "invalidTitle", "The request metadata specifies an invalid video title.")
		return
	case sn.CategoryID == "":
		apiError(w, http.StatusBadRequest, "youtube.video", "invalidCategoryId", "The snippet.categoryId property specifies an invalid category ID. Use the videoCategories.list method to retrieve supported categories.")
		return
	}
	g.yt.with(body.ID, func(v *video) {
		v.title, v.categoryID, v.description = *sn.Title, sn.CategoryID, sn.Description
	})
	g.react(body.ID)
	g.videosList(w, withQuery(r, "id", body.ID), channel)
}

func withQuery(r *http.Request, k, v string) *http.Request {
	r2 := r.Clone(r.Context())
	r2.URL.RawQuery = url.Values{k: {v}}.Encode()
	return r2
}

func (g *Google) thumbnailsSet(w http.ResponseWriter, r *http.Request, channel string) {
	id := r.URL.Query().Get("videoId")
	if id == "" {
		apiError(w, http.StatusBadRequest, "youtube.parameter", "missingRequiredParameter", "No value was given for the videoId parameter.")
		return
	}
	if !g.owned(w, id, channel) {
		return
	}
	const limit = 2 * 1024 * 1024
	img, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
	switch {
	case err != nil || len(img) == 0:
		apiError(w, http.StatusBadRequest, "youtube.thumbnail", "mediaBodyRequired", "The request does not include the image content.")
		return
	case len(img) > limit:
		apiError(w, http.StatusRequestEntityTooLarge, "global", "uploadTooLarge", "Media larger than: 2097152")
		return
	}
	if _, format, err := image.DecodeConfig(strings.NewReader(string(img))); err != nil || (format != "jpeg" && format != "png") {
		apiError(w, http.StatusBadRequest, "youtube.thumbnail", "invalidImage", "The provided image content is invalid.")
		return
	}
	g.yt.with(id, func(v *video) { v.thumb++; v.custom = img })
	g.react(id)
	base := "https://i.ytimg.com/vi/" + id + "/"
	writeJSON(w, map[string]any{"kind": "youtube#thumbnailSetResponse", "etag": etag(string(img[:min(len(img), 64)])),
		"items": []any{map[string]any{
			"default": map[string]any{"url": base + "default.jpg", "width": 120, "height": 90},
			"medium":  map[string]any{"url": base + "mqdefault.jpg", "width": 320, "height": 180},
			"high":    map[string]any{"url": base + "hqdefault.jpg", "width": 480, "height": 360},
		}}})
}

// react rebases a video's growth on its new title and thumbnail when
// RespondToChanges is on: a factor between 0.6 and 1.5 from their hash.
func (g *Google) react(id string) {
	g.mu.Lock()
	respond := g.respond
	g.mu.Unlock()
	if !respond {
		return
	}
	now := g.yt.now()
	g.yt.with(id, func(v *video) {
		g.mu.Lock()
		base, ok := g.baseRate[id]
		if !ok {
			base = v.perSecond
			g.baseRate[id] = base
		}
		g.mu.Unlock()
		h := fnvSum(append([]byte(v.title), v.custom...))
		factor := 0.6 + float64(h%10)/10
		v.views = v.currentViews(now)
		v.grownAt = now
		v.perSecond = base * factor
	})
}

// Consent does what a browser does with authURL on the stand-in: opens
// the consent page and presses Allow. It returns the redirect to the
// client's callback (with code and state), for tests.
func (g *Google) Consent(authURL string) (string, error) {
	u, err := url.Parse(authURL)
	if err != nil {
		return "", err
	}
	rec := &recorder{header: http.Header{}}
	g.consentPage(rec, &http.Request{Method: http.MethodGet, URL: u})
	if rec.status != 0 && rec.status != http.StatusOK {
		return "", fmt.Errorf("consent page: HTTP %d: %s", rec.status, rec.body.String())
	}
	q := u.Query()
	form := url.Values{}
	for _, k := range []string{"client_id", "redirect_uri", "state", "scope", "code_challenge"} {
		form.Set(k, q.Get(k))
	}
	req, _ := http.NewRequest(http.MethodPost, "/o/oauth2/v2/auth/approve", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	rec = &recorder{header: http.Header{}}
	g.approve(rec, req)
	if rec.status != http.StatusFound {
		return "", fmt.Errorf("approve: HTTP %d: %s", rec.status, rec.body.String())
	}
	return rec.header.Get("Location"), nil
}

type recorder struct {
	header http.Header
	status int
	body   strings.Builder
}

func (r *recorder) Header() http.Header { return r.header }
func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.body.Write(b)
}
func (r *recorder) WriteHeader(s int) { r.status = s }
