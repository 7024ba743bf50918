// Package youtubetest is a local stand-in for YouTube that speaks the same
// protocol as the parts jetfleet reads: watch pages shaped like the real ones
// (meta tags and the embedded ytInitialPlayerResponse JSON), channel Atom
// feeds (yt:videoId, yt:channelId, media:group), @handle channel pages and
// JPEG thumbnails at the real paths and sizes. Unknown ids get what YouTube
// gives them: 404 for feeds, handles and thumbnails, a "Video unavailable"
// watch page. The shapes follow the captured pages in
// internal/youtube/testdata.
//
// The world is programmable (channels, uploads, growing views and likes,
// title and thumbnail changes, latency, failures, broken pages), and so are
// YouTube's refusals and the states of videos: a bot check, a rate limit or
// a consent wall on demand (Refuse, RequireConsent), a private, removed,
// age-gated or members-only video (SetState), a feed outage (FailFeeds). So
// tests of the workers and pages, the tracker benchmark and `jetfleet dev
// --demo` all run against it.
package youtubetest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"html"
	"image"
	"image/color"
	"image/jpeg"
	"net/http"
	"net/http/httptest"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Server is the stand-in. Its zero value is not usable; call New. Every
// method is safe for concurrent use.
type Server struct {
	now func() time.Time

	mu       sync.RWMutex
	channels map[string]*channel
	handles  map[string]string // @handle (lower case) → channel id
	videos   map[string]*video
	legacy   map[string]string // "/c/name" or "/user/name" (lower case) → channel id
	latency  time.Duration
	failNext int
	failing  bool
	refuse   string
	consent  bool // serve the consent wall to requests without a consent cookie
	feedsOut bool

	requests sync.Map // "kind:id" → *atomic.Int64

	thumbMu    sync.Mutex
	thumbCache map[string][]byte // "palette:size" → JPEG

	httpServer *httptest.Server

	demo *demoWorld // set by PopulateDemo
}

type channel struct {
	id, handle, title string
	videos            []string // oldest first
}

type video struct {
	id, channelID, title string
	published            time.Time
	views                int64
	perSecond            float64 // views gained per second since grownAt
	grownAt              time.Time
	likes                int64
	thumb                int // thumbnail version; a change bumps it
	// custom is the image set through the Data API's thumbnails.set
	// (google.go), served resized at every size until the next change.
	custom      []byte
	categoryID  string
	description string
	broken      bool
	state       string
}

// Options tune a Server.
type Options struct {
	// Now is the server's clock (publish dates, view growth); default
	// time.Now.
	Now func() time.Time
}

// New returns a server with an empty world. Serve it with Start or mount
// Handler yourself.
func New(o Options) *Server {
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Server{
		now:        o.Now,
		channels:   map[string]*channel{},
		handles:    map[string]string{},
		legacy:     map[string]string{},
		videos:     map[string]*video{},
		thumbCache: map[string][]byte{},
	}
}

// Start serves the stand-in on a loopback port until Close.
func (s *Server) Start() string {
	s.httpServer = httptest.NewServer(s.Handler())
	return s.httpServer.URL
}

// URL is the base URL of a started server (watch pages, feeds, handles and
// thumbnails are all served from it).
func (s *Server) URL() string { return s.httpServer.URL }

// Close stops a started server.
func (s *Server) Close() {
	if s.httpServer != nil {
		s.httpServer.Close()
	}
}

// AddChannel adds a channel; handle may be empty.
func (s *Server) AddChannel(id, handle, title string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.channels[id] = &channel{id: id, handle: handle, title: title}
	if handle != "" {
		s.handles[strings.ToLower(handle)] = id
	}
}

// AddVideo publishes a video on a channel (which must exist) with views.
func (s *Server) AddVideo(channelID, id, title string, published time.Time, views int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ch, ok := s.channels[channelID]
	if !ok {
		panic("youtubetest: AddVideo on unknown channel " + channelID)
	}
	s.videos[id] = &video{id: id, channelID: channelID, title: title, published: published.UTC().Truncate(time.Second), views: views, grownAt: s.now()}
	ch.videos = append(ch.videos, id)
}

// AddLegacyURL makes path ("/c/NAME" or "/user/NAME") a channel's page too,
// as YouTube keeps serving old custom URLs and usernames.
func (s *Server) AddLegacyURL(channelID, path string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.legacy[strings.ToLower(path)] = channelID
}

// SetLikes sets a video's like count (by default a fortieth of its views).
func (s *Server) SetLikes(id string, likes int64) {
	s.with(id, func(v *video) { v.likes = likes })
}

// Refusals YouTube makes of us, for Refuse.
const (
	RefuseNone      = ""
	RefuseBotCheck  = "bot_check"    // watch pages: 200 with "Sign in to confirm you're not a bot"
	RefuseRateLimit = "rate_limit"   // every request: 429
	RefuseConsent   = "consent_wall" // every page: the consent form in its place
)

// Refuse makes the server refuse every request in the way kind says, until
// Refuse(RefuseNone).
func (s *Server) Refuse(kind string) {
	s.mu.Lock()
	s.refuse = kind
	s.mu.Unlock()
}

// RequireConsent makes the server behave as it does for EU visitors: pages
// are replaced by the consent wall unless the request carries a consent
// cookie (SOCS, or CONSENT=YES…).
func (s *Server) RequireConsent(on bool) {
	s.mu.Lock()
	s.consent = on
	s.mu.Unlock()
}

// FailFeeds makes every channel feed answer 404, as YouTube's feeds do for
// live channels during outages; channel pages keep working.
func (s *Server) FailFeeds(out bool) {
	s.mu.Lock()
	s.feedsOut = out
	s.mu.Unlock()
}

// Video states, for SetState.
const (
	StatePublic        = ""
	StatePrivate       = "private"
	StateRemoved       = "removed"
	StateAgeRestricted = "age_restricted"
	StateMembersOnly   = "members_only"
)

// SetState puts a video in a state that hides it from signed-out visitors;
// its watch page then carries the player response YouTube sends for it.
func (s *Server) SetState(id, state string) { s.with(id, func(v *video) { v.state = state }) }

// SetViews sets a video's view count.
func (s *Server) SetViews(id string, views int64) {
	s.with(id, func(v *video) { v.views, v.grownAt = views, s.now() })
}

// AddViews adds n views to a video.
func (s *Server) AddViews(id string, n int64) {
	s.with(id, func(v *video) { v.views = v.currentViews(s.now()) + n; v.grownAt = s.now() })
}

// SetGrowth makes a video gain perSecond views every second of the
// server's clock from now on.
func (s *Server) SetGrowth(id string, perSecond float64) {
	s.with(id, func(v *video) { v.views, v.grownAt, v.perSecond = v.currentViews(s.now()), s.now(), perSecond })
}

// SetTitle changes a video's title.
func (s *Server) SetTitle(id, title string) { s.with(id, func(v *video) { v.title = title }) }

// ChangeThumbnail replaces a video's thumbnail with a visibly different one.
func (s *Server) ChangeThumbnail(id string) {
	s.with(id, func(v *video) { v.thumb++; v.custom = nil })
}

// BreakWatchPage makes the video's watch page one the scraper cannot read
// (its player response cut short, as a format change would), which is
// neither a refusal nor a state of the video.
func (s *Server) BreakWatchPage(id string, broken bool) {
	s.with(id, func(v *video) { v.broken = broken })
}

// Views returns a video's current view count.
func (s *Server) Views(id string) int64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if v, ok := s.videos[id]; ok {
		return v.currentViews(s.now())
	}
	return 0
}

// SetLatency delays every response by d (the benchmark uses 100 ms).
func (s *Server) SetLatency(d time.Duration) {
	s.mu.Lock()
	s.latency = d
	s.mu.Unlock()
}

// FailNext answers the next n requests with 503.
func (s *Server) FailNext(n int) {
	s.mu.Lock()
	s.failNext = n
	s.mu.Unlock()
}

// SetFailing answers every request with 503 until set back to false.
func (s *Server) SetFailing(failing bool) {
	s.mu.Lock()
	s.failing = failing
	s.mu.Unlock()
}

// Requests counts the requests served for kind ("watch", "feed", "handle",
// "channel", "legacy", "thumb") and id (video id, channel id, handle or
// legacy name).
func (s *Server) Requests(kind, id string) int64 {
	if c, ok := s.requests.Load(kind + ":" + id); ok {
		return c.(*atomic.Int64).Load()
	}
	return 0
}

func (s *Server) count(kind, id string) {
	c, _ := s.requests.LoadOrStore(kind+":"+id, new(atomic.Int64))
	c.(*atomic.Int64).Add(1)
}

func (s *Server) with(id string, f func(*video)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.videos[id]
	if !ok {
		panic("youtubetest: unknown video " + id)
	}
	f(v)
}

func (v *video) currentViews(now time.Time) int64 {
	if v.perSecond == 0 || now.Before(v.grownAt) {
		return v.views
	}
	return v.views + int64(v.perSecond*now.Sub(v.grownAt).Seconds())
}

// Handler serves the stand-in's routes.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /watch", s.watch)
	mux.HandleFunc("GET /feeds/videos.xml", s.feed)
	mux.HandleFunc("GET /vi/{id}/{file}", s.thumbnail)
	mux.HandleFunc("GET /channel/{id}", s.channelPage)
	mux.HandleFunc("GET /c/{name}", s.legacyPage)
	mux.HandleFunc("GET /user/{name}", s.legacyPage)
	mux.HandleFunc("GET /{handle}", s.handlePage)
	return s.faults(mux)
}

// faults applies the injected latency and failures before any route.
func (s *Server) faults(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		latency, fail, refuse, consent := s.latency, s.failing, s.refuse, s.consent
		if s.failNext > 0 {
			s.failNext--
			fail = true
		}
		s.mu.Unlock()
		if latency > 0 {
			t := time.NewTimer(latency)
			select {
			case <-t.C:
			case <-r.Context().Done():
				t.Stop()
				return
			}
		}
		if fail {
			http.Error(w, "<html><body>503. That’s an error.</body></html>", http.StatusServiceUnavailable)
			return
		}
		switch {
		case refuse == RefuseRateLimit:
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			w.WriteHeader(http.StatusTooManyRequests)
			fmt.Fprint(w, `<html><head><title>Sorry...</title></head><body><div>Our systems have detected unusual traffic from your computer network. Please try your request again later.</div></body></html>`)
			return
		case refuse == RefuseConsent, consent && !hasConsentCookie(r):
			writeConsentWall(w)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// hasConsentCookie reports whether r answers the consent wall: SOCS (today)
// or CONSENT=YES… (older).
func hasConsentCookie(r *http.Request) bool {
	if _, err := r.Cookie("SOCS"); err == nil {
		return true
	}
	c, err := r.Cookie("CONSENT")
	return err == nil && strings.HasPrefix(c.Value, "YES")
}

// writeConsentWall serves what EU visitors without a consent cookie get in
// place of any page (YouTube redirects them to consent.youtube.com).
func writeConsentWall(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	fmt.Fprint(w, `<!DOCTYPE html><html lang="en"><head><title>Before you continue to YouTube</title></head><body><h1>Before you continue to YouTube</h1><p>We use cookies and data to deliver and maintain Google services.</p><form action="https://consent.youtube.com/save" method="POST"><input type="hidden" name="set_eom" value="true"><button>Reject all</button></form><form action="https://consent.youtube.com/save" method="POST"><input type="hidden" name="set_eom" value="false"><button>Accept all</button></form></body></html>`)
}

func (s *Server) watch(w http.ResponseWriter, r *http.Request) {
	id := r.URL.Query().Get("v")
	s.count("watch", id)
	s.mu.RLock()
	v, ok := s.videos[id]
	var snap video
	var ch channel
	if ok {
		snap = *v
		snap.views = v.currentViews(s.now())
		if snap.likes == 0 {
			snap.likes = snap.views / 40
		}
		ch = *s.channels[v.channelID]
	}
	refuse := s.refuse
	s.mu.RUnlock()
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	switch {
	case refuse == RefuseBotCheck:
		// 200, an error player response, no videoDetails.
		writeErrorPage(w, map[string]any{"status": "LOGIN_REQUIRED", "reason": "Sign in to confirm you’re not a bot",
			"errorScreen": map[string]any{"playerErrorMessageRenderer": map[string]any{
				"reason":    map[string]any{"simpleText": "Sign in to confirm you’re not a bot"},
				"subreason": map[string]any{"runs": []any{map[string]any{"text": "This helps protect our community. "}, map[string]any{"text": "Learn more"}}}}}})
	case !ok:
		// YouTube answers 200 with an error player response.
		writeErrorPage(w, map[string]any{"status": "ERROR", "reason": "Video unavailable",
			"errorScreen": map[string]any{"playerErrorMessageRenderer": map[string]any{"reason": map[string]any{"simpleText": "Video unavailable"}}}})
	case snap.broken:
		fmt.Fprint(w, `<!DOCTYPE html><html lang="en"><head><title>YouTube</title></head><body><script nonce="nZq0">var ytInitialPlayerResponse = {"responseContext":{"serviceTrackingParams":[{"service":"GFEEDBACK"</script></body></html>`)
	case snap.state == StatePrivate:
		writeErrorPage(w, map[string]any{"status": "LOGIN_REQUIRED", "messages": []string{"This is a private video. Please sign in to verify that you may see it."},
			"errorScreen": map[string]any{"playerErrorMessageRenderer": map[string]any{"reason": map[string]any{"simpleText": "Private video"}}}})
	case snap.state == StateRemoved:
		writeErrorPage(w, map[string]any{"status": "ERROR", "reason": "This video has been removed by the uploader"})
	case snap.state == StateMembersOnly:
		writeErrorPage(w, map[string]any{"status": "UNPLAYABLE", "reason": "Join this channel to get access to members-only content like this video, and other exclusive perks."})
	default:
		writeWatchPage(w, id, &snap, &ch)
	}
}

// writeErrorPage serves a watch page whose player response has only the
// playability status (no videoDetails), as for unknown, private and removed
// videos and for bot checks.
func writeErrorPage(w http.ResponseWriter, status map[string]any) {
	pr := map[string]any{
		"responseContext":   map[string]any{"serviceTrackingParams": []any{map[string]any{"service": "GFEEDBACK"}}},
		"playabilityStatus": status,
	}
	b, _ := json.Marshal(pr)
	fmt.Fprintf(w, `<!DOCTYPE html><html lang="en"><head><title> - YouTube</title><meta name="title" content=""></head><body><script nonce="nZq0">var ytInitialPlayerResponse = %s;var meta = document.createElement('meta');</script></body></html>`, b)
}

func writeWatchPage(w http.ResponseWriter, id string, v *video, ch *channel) {
	type thumb struct {
		URL    string `json:"url"`
		Width  int    `json:"width"`
		Height int    `json:"height"`
	}
	pr := map[string]any{
		"responseContext": map[string]any{"serviceTrackingParams": []any{map[string]any{"service": "GFEEDBACK"}}},
	}
	views := strconv.FormatInt(v.views, 10)
	published := v.published.Format(time.RFC3339)
	thumbs := []thumb{
		{"https://i.ytimg.com/vi/" + id + "/default.jpg", 120, 90},
		{"https://i.ytimg.com/vi/" + id + "/mqdefault.jpg", 320, 180},
		{"https://i.ytimg.com/vi/" + id + "/hqdefault.jpg", 480, 360},
		{"https://i.ytimg.com/vi/" + id + "/sddefault.jpg", 640, 480},
		{"https://i.ytimg.com/vi/" + id + "/maxresdefault.jpg", 1280, 720},
	}
	pr["playabilityStatus"] = map[string]any{"status": "OK", "playableInEmbed": true, "contextParams": "Q0FFU0FnZ0I="}
	if v.state == StateAgeRestricted {
		// Age-gated pages still carry videoDetails and the counts.
		pr["playabilityStatus"] = map[string]any{"status": "LOGIN_REQUIRED", "reason": "Sign in to confirm your age",
			"errorScreen": map[string]any{"playerErrorMessageRenderer": map[string]any{"subreason": map[string]any{"runs": []any{map[string]any{"text": "This video may be inappropriate for some users."}}}}}}
	}
	pr["videoDetails"] = map[string]any{
		"videoId": id, "title": v.title, "lengthSeconds": "642", "keywords": []string{"jetfleet", "demo"},
		"channelId": ch.id, "isOwnerViewing": false, "shortDescription": "A video on " + ch.title + ".",
		"isCrawlable": true, "thumbnail": map[string]any{"thumbnails": thumbs}, "allowRatings": true,
		"viewCount": views, "author": ch.title, "isPrivate": false, "isUnpluggedCorpus": false, "isLiveContent": false,
	}
	pr["microformat"] = map[string]any{"playerMicroformatRenderer": map[string]any{
		"thumbnail":         map[string]any{"thumbnails": thumbs[4:]},
		"title":             map[string]any{"simpleText": v.title},
		"description":       map[string]any{"simpleText": "A video on " + ch.title + "."},
		"lengthSeconds":     "642",
		"ownerProfileUrl":   "http://www.youtube.com/" + ch.handle,
		"externalChannelId": ch.id, "isFamilySafe": true, "isUnlisted": false, "hasYpcMetadata": false,
		"viewCount": views, "likeCount": strconv.FormatInt(v.likes, 10), "category": "Science & Technology",
		"publishDate": published, "ownerChannelName": ch.title, "uploadDate": published,
	}}
	b, _ := json.Marshal(pr)
	t := html.EscapeString(v.title)
	fmt.Fprintf(w, `<!DOCTYPE html><html style="font-size: 10px;font-family: Roboto, Arial, sans-serif;" lang="en" darker-dark-theme system-icons typography typography-spacing><head><script data-id="_gd" nonce="nZq0">window.WIZ_global_data = {"HiPsbb":0};</script><meta http-equiv="origin-trial" content="AmhMBR6zCLzDDxpW"><script nonce="nZq0">var ytcfg={d:function(){return window.yt&&yt.config_||ytcfg.data_||(ytcfg.data_={})}};</script>
<title>%[1]s - YouTube</title><meta name="title" content="%[1]s"><meta name="description" content="A video on %[2]s."><meta name="keywords" content="jetfleet, demo"><link rel="shortlink" href="https://youtu.be/%[3]s"><link rel="canonical" href="https://www.youtube.com/watch?v=%[3]s"><meta property="og:site_name" content="YouTube"><meta property="og:url" content="https://www.youtube.com/watch?v=%[3]s"><meta property="og:title" content="%[1]s"><meta property="og:image" content="https://i.ytimg.com/vi/%[3]s/maxresdefault.jpg"><meta property="og:image:width" content="1280"><meta property="og:image:height" content="720"><meta property="og:type" content="video.other"><meta name="twitter:card" content="player"><meta name="twitter:title" content="%[1]s"></head>
<body dir="ltr" no-y-overflow><div id="watch7-content" class="watch-main-col" itemscope itemid="" itemtype="http://schema.org/VideoObject"><link itemprop="url" href="https://www.youtube.com/watch?v=%[3]s"><meta itemprop="name" content="%[1]s"><meta itemprop="description" content="A video on %[2]s."><meta itemprop="requiresSubscription" content="False"><meta itemprop="identifier" content="%[3]s"><meta itemprop="duration" content="PT10M42S"><span itemprop="author" itemscope itemtype="http://schema.org/Person"><link itemprop="url" href="http://www.youtube.com/%[4]s"><link itemprop="name" content="%[2]s"></span><link itemprop="thumbnailUrl" href="https://i.ytimg.com/vi/%[3]s/maxresdefault.jpg"><meta itemprop="isFamilyFriendly" content="true"><meta itemprop="datePublished" content="%[6]s"><meta itemprop="uploadDate" content="%[6]s"><meta itemprop="genre" content="Science &amp; Technology"></div>
<script nonce="nZq0">var ytInitialPlayerResponse = %[7]s;var meta = document.createElement('meta'); meta.name = 'referrer'; meta.content = 'origin-when-cross-origin'; document.getElementsByTagName('head')[0].appendChild(meta);</script><div id="player" class="skeleton flexy"></div><script nonce="nZq0">var ytInitialData = {"contents":{"twoColumnWatchNextResults":{"results":{"results":{"contents":[{"videoPrimaryInfoRenderer":{"viewCount":{"videoViewCountRenderer":{"viewCount":{"simpleText":"%[5]s views"},"originalViewCount":"%[8]s"}}}}]}}}}};</script></body></html>`,
		t, html.EscapeString(ch.title), id, html.EscapeString(ch.handle), groupDigits(v.views), published, b, views)
}

// groupDigits writes n as "1,234,567", as pages show counts.
func groupDigits(n int64) string {
	s := strconv.FormatInt(n, 10)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

func (s *Server) feed(w http.ResponseWriter, r *http.Request) {
	id := r.URL.Query().Get("channel_id")
	s.count("feed", id)
	s.mu.RLock()
	defer s.mu.RUnlock()
	ch, ok := s.channels[id]
	if !ok || s.feedsOut {
		writeGoogle404(w)
		return
	}
	var b strings.Builder
	e := html.EscapeString
	fmt.Fprintf(&b, `<?xml version="1.0" encoding="UTF-8"?>
<feed xmlns:yt="http://www.youtube.com/xml/schemas/2015" xmlns:media="http://search.yahoo.com/mrss/" xmlns="http://www.w3.org/2005/Atom">
 <link rel="self" href="http://www.youtube.com/feeds/videos.xml?channel_id=%[1]s"/>
 <id>yt:channel:%[1]s</id>
 <yt:channelId>%[1]s</yt:channelId>
 <title>%[2]s</title>
 <link rel="alternate" href="https://www.youtube.com/channel/%[1]s"/>
 <author>
  <name>%[2]s</name>
  <uri>https://www.youtube.com/channel/%[1]s</uri>
 </author>
 <published>2015-03-04T10:11:12+00:00</published>
`, ch.id, e(ch.title))
	// The real feed lists the 15 newest uploads, newest first.
	now := s.now()
	n := 0
	for i := len(ch.videos) - 1; i >= 0 && n < 15; i-- {
		v := s.videos[ch.videos[i]]
		if v.published.After(now) {
			continue
		}
		n++
		fmt.Fprintf(&b, ` <entry>
  <id>yt:video:%[1]s</id>
  <yt:videoId>%[1]s</yt:videoId>
  <yt:channelId>%[2]s</yt:channelId>
  <title>%[3]s</title>
  <link rel="alternate" href="https://www.youtube.com/watch?v=%[1]s"/>
  <author>
   <name>%[4]s</name>
   <uri>https://www.youtube.com/channel/%[2]s</uri>
  </author>
  <published>%[5]s</published>
  <updated>%[6]s</updated>
  <media:group>
   <media:title>%[3]s</media:title>
   <media:content url="https://www.youtube.com/v/%[1]s?version=3" type="application/x-shockwave-flash" width="640" height="390"/>
   <media:thumbnail url="https://i2.ytimg.com/vi/%[1]s/hqdefault.jpg" width="480" height="360"/>
   <media:description>A video on %[4]s.</media:description>
   <media:community>
    <media:starRating count="%[7]d" average="5.00" min="1" max="5"/>
    <media:statistics views="%[8]d"/>
   </media:community>
  </media:group>
 </entry>
`, v.id, ch.id, e(v.title), e(ch.title), v.published.Format("2006-01-02T15:04:05-07:00"), now.UTC().Format("2006-01-02T15:04:05-07:00"), v.currentViews(now)/50, v.currentViews(now))
	}
	b.WriteString("</feed>\n")
	w.Header().Set("Content-Type", "text/xml; charset=UTF-8")
	w.Write([]byte(b.String()))
}

func (s *Server) handlePage(w http.ResponseWriter, r *http.Request) {
	h := r.PathValue("handle")
	s.count("handle", h)
	s.mu.RLock()
	id, ok := s.handles[strings.ToLower(h)]
	var ch channel
	if ok {
		ch = *s.channels[id]
	}
	s.mu.RUnlock()
	if !strings.HasPrefix(h, "@") || !ok {
		http.NotFound(w, r)
		return
	}
	writeChannelPage(w, ch)
}

// writeGoogle404 answers as YouTube's feeds do for a channel they do not
// know (or, during outages, for one they do).
func writeGoogle404(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "text/html; charset=UTF-8")
	w.WriteHeader(http.StatusNotFound)
	fmt.Fprint(w, `<!DOCTYPE html><html lang=en><meta charset=utf-8><title>Error 404 (Not Found)!!1</title><a href=//www.google.com/><span id=logo aria-label=Google></span></a><p><b>404.</b> <ins>That’s an error.</ins><p>The requested URL was not found on this server.  <ins>That’s all we know.</ins>`)
}

func (s *Server) legacyPage(w http.ResponseWriter, r *http.Request) {
	path := strings.ToLower(r.URL.Path)
	s.count("legacy", r.PathValue("name"))
	s.mu.RLock()
	id, ok := s.legacy[path]
	var ch channel
	if ok {
		ch = *s.channels[id]
	}
	s.mu.RUnlock()
	if !ok {
		http.NotFound(w, r)
		return
	}
	writeChannelPage(w, ch)
}

func (s *Server) channelPage(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	s.count("channel", id)
	s.mu.RLock()
	c, ok := s.channels[id]
	var ch channel
	if ok {
		ch = *c
	}
	s.mu.RUnlock()
	if !ok {
		http.NotFound(w, r)
		return
	}
	writeChannelPage(w, ch)
}

func writeChannelPage(w http.ResponseWriter, ch channel) {
	t := html.EscapeString(ch.title)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	fmt.Fprintf(w, `<!DOCTYPE html><html lang="en"><head><title>%[1]s - YouTube</title><meta name="title" content="%[1]s"><link rel="canonical" href="https://www.youtube.com/channel/%[2]s"><meta property="og:title" content="%[1]s"><meta property="og:url" content="https://www.youtube.com/channel/%[2]s"><meta property="og:type" content="profile"><link rel="alternate" type="application/rss+xml" title="RSS" href="https://www.youtube.com/feeds/videos.xml?channel_id=%[2]s"></head><body><div itemscope itemtype="http://schema.org/Person"><meta itemprop="identifier" content="%[2]s"><link itemprop="url" href="http://www.youtube.com/%[3]s"></div><script nonce="nZq0">var ytInitialData = {"metadata":{"channelMetadataRenderer":{"title":%[4]q,"externalId":%[2]q,"vanityChannelUrl":"http://www.youtube.com/%[3]s"}}};</script></body></html>`,
		t, ch.id, html.EscapeString(ch.handle), ch.title)
}

// thumbSizes are YouTube's fixed thumbnail renditions.
var thumbSizes = map[string][2]int{
	"default.jpg":       {120, 90},
	"mqdefault.jpg":     {320, 180},
	"hqdefault.jpg":     {480, 360},
	"sddefault.jpg":     {640, 480},
	"maxresdefault.jpg": {1280, 720},
}

// palettes is how many distinct thumbnails the stand-in draws; a video's
// thumbnail is one of them, and a change moves it to the next.
const palettes = 64

func (s *Server) thumbnail(w http.ResponseWriter, r *http.Request) {
	id, file := r.PathValue("id"), r.PathValue("file")
	s.count("thumb", id)
	size, okSize := thumbSizes[file]
	s.mu.RLock()
	v, ok := s.videos[id]
	version := 0
	var custom []byte
	if ok {
		version, custom = v.thumb, v.custom
	}
	s.mu.RUnlock()
	if !ok || !okSize {
		http.NotFound(w, r)
		return
	}
	img, err := s.renderThumb(id, version, custom, size)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "image/jpeg")
	w.Header().Set("Content-Length", strconv.Itoa(len(img)))
	w.Write(img)
}

// jpeg draws (once, then caches) thumbnail palette p at size: a colour field
// with a contrasting band whose position also depends on p, so every
// palette hashes differently at every size.
func (s *Server) jpeg(p int, size [2]int) ([]byte, error) {
	key := fmt.Sprintf("%d:%dx%d", p, size[0], size[1])
	s.thumbMu.Lock()
	defer s.thumbMu.Unlock()
	if b, ok := s.thumbCache[key]; ok {
		return b, nil
	}
	w, h := size[0], size[1]
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	bg := color.RGBA{uint8(40 + p*53%200), uint8(40 + p*97%200), uint8(40 + p*31%200), 255}
	fg := color.RGBA{255 - bg.R, 255 - bg.G, 255 - bg.B, 255}
	band := (p % 8) * h / 8
	for y := range h {
		for x := range w {
			c := bg
			if y >= band && y < band+h/8 || (x/(w/16+1))%4 == p%4 && y%(h/9+1) < 2 {
				c = fg
			}
			img.SetRGBA(x, y, c)
		}
	}
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: 80}); err != nil {
		return nil, err
	}
	s.thumbCache[key] = buf.Bytes()
	return buf.Bytes(), nil
}

// ChannelVideos lists a channel's video ids, oldest first.
func (s *Server) ChannelVideos(channelID string) []string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if ch, ok := s.channels[channelID]; ok {
		return append([]string(nil), ch.videos...)
	}
	return nil
}

// ChannelIDs lists every channel id, sorted.
func (s *Server) ChannelIDs() []string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]string, 0, len(s.channels))
	for id := range s.channels {
		out = append(out, id)
	}
	sort.Strings(out)
	return out
}

// ChannelID makes a valid, deterministic channel id from n ("UC" + 22
// characters), for building worlds.
func ChannelID(n int) string { return fmt.Sprintf("UC%022d", n) }

// VideoID makes a valid, deterministic video id from n (11 characters).
func VideoID(n int) string { return fmt.Sprintf("v%010d", n) }

// ThumbnailJPEG returns what the server serves at /vi/<id>/<file> (e.g.
// "default.jpg"), without a request: for seeding state that a tracker
// would have had from an earlier sample.
func (s *Server) ThumbnailJPEG(id, file string) ([]byte, error) {
	size, ok := thumbSizes[file]
	s.mu.RLock()
	v, known := s.videos[id]
	version := 0
	var custom []byte
	if known {
		version, custom = v.thumb, v.custom
	}
	s.mu.RUnlock()
	if !ok || !known {
		return nil, fmt.Errorf("youtubetest: no thumbnail %s of %q", file, id)
	}
	return s.renderThumb(id, version, custom, size)
}

// Title returns a video's current title.
func (s *Server) Title(id string) string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if v, ok := s.videos[id]; ok {
		return v.title
	}
	return ""
}

func palette(id string, version int) int {
	h := fnv.New32a()
	h.Write([]byte(id))
	return (int(h.Sum32()%palettes) + version) % palettes
}

// renderThumb is a video's thumbnail at size: the uploaded custom image
// scaled (as YouTube derives every rendition from the upload), or the
// drawn palette.
func (s *Server) renderThumb(id string, version int, custom []byte, size [2]int) ([]byte, error) {
	if custom == nil {
		return s.jpeg(palette(id, version), size)
	}
	key := fmt.Sprintf("custom:%x:%dx%d", fnvSum(custom), size[0], size[1])
	s.thumbMu.Lock()
	defer s.thumbMu.Unlock()
	if b, ok := s.thumbCache[key]; ok {
		return b, nil
	}
	src, _, err := image.Decode(bytes.NewReader(custom))
	if err != nil {
		return nil, fmt.Errorf("decode custom thumbnail: %w", err)
	}
	w, h := size[0], size[1]
	dst := image.NewRGBA(image.Rect(0, 0, w, h))
	b := src.Bounds()
	// Nearest neighbour is enough: the point is a different image per
	// variant at every size.
	for y := range h {
		for x := range w {
			dst.Set(x, y, src.At(b.Min.X+x*b.Dx()/w, b.Min.Y+y*b.Dy()/h))
		}
	}
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, dst, &jpeg.Options{Quality: 80}); err != nil {
		return nil, err
	}
	s.thumbCache[key] = buf.Bytes()
	return buf.Bytes(), nil
}

func fnvSum(b []byte) uint64 {
	h := fnv.New64a()
	h.Write(b)
	return h.Sum64()
}
