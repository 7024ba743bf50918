// Package tracker is the Tracker's edge: the dashboard of tracked channels
// and videos, the forms that track and untrack them, a video page with its
// views curve (server-rendered SVG) and its thumbnail and title changes, and
// a channel page. Every page requires a signed-in user and shows only what
// that user tracks: channels they track, videos they track or that belong
// to their channels.
package tracker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/nats-io/nats.go/jetstream"

	"jetfleet/analytics"
	"jetfleet/internal/abtest"
	"jetfleet/internal/blob"
	"jetfleet/internal/sealed"
	"jetfleet/internal/tracking"
	"jetfleet/internal/youtube"
	"jetfleet/subjects"
	"jetfleet/web/ratelimit"
	"jetfleet/web/session"
	"jetfleet/web/site"
)

// Deps are what the pages use.
type Deps struct {
	// JS counts each user's track actions, shared by every edge.
	JS         jetstream.JetStream
	Store      *tracking.Store
	YouTube    *youtube.Client
	ClickHouse driver.Conn
	// Blobs hands out thumbnail URLs; nil shows no images.
	Blobs blob.Store
	// Premium tells whether a user's plan lifts the free limits.
	Premium func(ctx context.Context, userID string) (bool, error)
	// Plans sells the premium subscription; nil offers no upgrade.
	Plans *Plans
	// ABTests runs the A/B tests (abtests.go); nil serves no A/B pages.
	ABTests *abtest.Service
	// BaseURL is where Stripe sends the user back.
	BaseURL string
	// Tokens opens the digest's unsubscribe links (TOKEN_KEY); nil: every
	// link is refused.
	Tokens *sealed.Box
	// Demo offers "send the digest now" (jetfleet dev --demo only).
	Demo bool
	Log  *slog.Logger
}

// Handler serves the Tracker's pages.
type Handler struct {
	d       Deps
	pages   site.Pages
	limiter *ratelimit.Shared
}

// New returns the pages' handler.
func New(d Deps) (*Handler, error) {
	if d.Premium == nil {
		d.Premium = func(context.Context, string) (bool, error) { return false, nil }
	}
	if d.Log == nil {
		d.Log = slog.New(slog.DiscardHandler)
	}
	// Tracking asks YouTube; a user gets 10 actions per 30 seconds (one
	// every 3 s on average), counted across edges so that a load balancer
	// spreading their requests does not multiply the allowance.
	limiter, err := ratelimit.NewShared(d.JS, "tracker-actions", 10, 30*time.Second)
	if err != nil {
		return nil, err
	}
	return &Handler{d: d, pages: site.Pages{Log: d.Log}, limiter: limiter}, nil
}

// Routes registers the pages on mux, each behind protect, the site's
// sign-in gate.
func (h *Handler) Routes(mux *http.ServeMux, protect func(http.Handler) http.Handler) {
	mux.Handle("GET /tracker", h.signedIn(protect, h.dashboard))
	mux.Handle("POST /tracker/track", h.signedIn(protect, h.track))
	mux.Handle("POST /tracker/untrack", h.signedIn(protect, h.untrack))
	mux.Handle("GET /tracker/videos/{id}", h.signedIn(protect, h.video))
	mux.Handle("POST /tracker/videos/{id}/hires", h.signedIn(protect, h.setHiRes))
	mux.Handle("GET /tracker/channels/{id}", h.signedIn(protect, h.channel))
	mux.Handle("GET /tracker/outliers", h.signedIn(protect, h.outliers))
	mux.Handle("GET /tracker/digest", h.signedIn(protect, h.digest))
	mux.Handle("POST /tracker/digest", h.signedIn(protect, h.setDigest))
	if h.d.Demo {
		mux.Handle("POST /tracker/digest/now", h.signedIn(protect, h.digestNow))
	}
	// The digest's unsubscribe link works signed out: its token is the
	// authorization.
	mux.HandleFunc("GET /tracker/unsubscribe/{token}", h.unsubscribeConfirm)
	mux.HandleFunc("POST /tracker/unsubscribe/{token}", h.unsubscribeForm)
	mux.Handle("POST /tracker/premium", h.signedIn(protect, h.goPremium))
	mux.Handle("POST /tracker/premium/cancel", h.signedIn(protect, h.cancelPremium))
	mux.Handle("POST /tracker/premium/portal", h.signedIn(protect, h.portal))
	if h.d.ABTests != nil {
		h.abRoutes(mux, protect)
	}
}

// signedIn hands a page the user the gate let through.
func (h *Handler) signedIn(protect func(http.Handler) http.Handler, next func(w http.ResponseWriter, r *http.Request, uid string)) http.Handler {
	return protect(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, _ := session.UserFrom(r.Context())
		next(w, r, u.ID)
	}))
}

func (h *Handler) dashboard(w http.ResponseWriter, r *http.Request, uid string) {
	h.showDashboard(w, r, uid, http.StatusOK, "", notice(r), "")
}

func (h *Handler) showDashboard(w http.ResponseWriter, r *http.Request, uid string, status int, problem, notice, input string) {
	ctx := r.Context()
	premium, err := h.d.Premium(ctx, uid)
	if err != nil {
		h.pages.Fail(w, r, "plan", err)
		return
	}
	if notice == noticePremium {
		// Stripe's webhook, not the return from Checkout, turns premium on.
		notice = "Payment received: premium is processing and turns on as soon as Stripe confirms it. Reload in a moment."
		if premium {
			notice = "Premium is active: the free plan's limits are lifted."
		}
	}
	data := dashboardData{Problem: problem, Notice: notice, Input: input, Refusal: h.refusal(ctx), CanUpgrade: h.d.Plans != nil}
	if premium {
		if data.Subscription, err = h.subscription(ctx, uid); err != nil {
			h.pages.Fail(w, r, "plan", err)
			return
		}
	}
	if data.Limits, err = h.d.Store.Limits(ctx, uid, premium); err != nil {
		h.pages.Fail(w, r, "limits", err)
		return
	}
	if data.Channels, err = h.d.Store.UserChannels(ctx, uid); err != nil {
		h.pages.Fail(w, r, "channels", err)
		return
	}
	if data.Videos, err = h.d.Store.UserVideos(ctx, uid); err != nil {
		h.pages.Fail(w, r, "videos", err)
		return
	}
	for _, c := range data.Channels {
		vs, err := h.d.Store.ChannelVideos(ctx, c.ID)
		if err != nil {
			h.pages.Fail(w, r, "channel videos", err)
			return
		}
		data.ChannelVideos = append(data.ChannelVideos, vs...)
	}
	h.pages.Render(w, r, status, "Tracker", dashboardPage(data))
}

// track starts tracking what the user typed: a channel (URL, @handle, id)
// or a video (URL, id), after checking with YouTube that it exists.
func (h *Handler) track(w http.ResponseWriter, r *http.Request, uid string) {
	ctx := r.Context()
	input := r.PostFormValue("ref")
	allowed, err := h.limiter.Allow(ctx, uid)
	if err != nil {
		h.d.Log.Warn("count track action", "err", err)
		h.showDashboard(w, r, uid, http.StatusServiceUnavailable, "Tracking is unavailable for a moment. Try again shortly.", "", input)
		return
	}
	if !allowed {
		h.showDashboard(w, r, uid, http.StatusTooManyRequests, "You are tracking things very quickly. Wait a few seconds, then try again.", "", input)
		return
	}
	ref, err := youtube.Parse(input)
	if err != nil {
		h.showDashboard(w, r, uid, http.StatusUnprocessableEntity,
			fmt.Sprintf("%q is not a YouTube channel or video. Paste a channel link, an @handle, a channel id (UC…), a video link or an 11-character video id.", input), "", input)
		return
	}
	premium, err := h.d.Premium(ctx, uid)
	if err != nil {
		h.pages.Fail(w, r, "plan", err)
		return
	}
	var done, page string
	switch ref.Kind {
	case youtube.KindChannel:
		var ch youtube.Channel
		ch, err = h.d.YouTube.Resolve(ctx, ref)
		if err == nil {
			err = h.d.Store.TrackChannel(ctx, uid, premium, subjects.TrackerChannel{ID: ch.ID, Title: ch.Title, Handle: ch.Handle})
		}
		done, page = noticeChannel, "/tracker/channels/"+ch.ID
	case youtube.KindVideo:
		var v youtube.Video
		v, err = h.d.YouTube.Video(ctx, ref.ID)
		var credit bool
		if err == nil {
			credit, err = h.d.Store.TrackVideo(ctx, uid, premium, subjects.TrackerVideo{ID: v.ID, ChannelID: v.ChannelID, Title: v.Title, PublishedAt: v.PublishedAt, Views: v.Views})
		}
		done, page = noticeVideo, "/tracker/videos/"+v.ID
		if credit {
			done = noticeVideoCredit
		}
	}
	if err != nil {
		status, msg := explain(err, input)
		if status >= 500 {
			h.d.Log.Warn("track", "input", input, "err", err)
		}
		h.showDashboard(w, r, uid, status, msg, "", input)
		return
	}
	http.Redirect(w, r, page+"?ok="+done, http.StatusSeeOther)
}

// Codes of the notices a redirect asks the next page to show (?ok=CODE).
const (
	noticeChannel          = "channel"
	noticeVideo            = "video"
	noticeVideoCredit      = "video-credit"
	noticeUntracked        = "untracked"
	noticePremium          = "premium" // back from the premium Checkout
	noticePremiumCancelled = "premium-cancelled"
	noticeHiResOn          = "hires-on"
	noticeHiResOff         = "hires-off"
	noticeDigestSent       = "digest-sent"
)

// notice returns the message named by the request's ?ok= code, "" for no
// code or one we do not know. Only codes travel in the link: a message
// read from it would let anyone who sends a user a link put their own
// words on our page.
func notice(r *http.Request) string {
	switch r.URL.Query().Get("ok") {
	case noticeChannel:
		return "Now tracking this channel. New uploads are picked up at ten to every hour."
	case noticeVideo:
		return "Now tracking this video. It is sampled every hour for 7 days, then daily for 60 days."
	case noticeVideoCredit:
		return "Now tracking this video. It is sampled every hour for 7 days, then daily for 60 days. This used one of your monthly video credits."
	case noticeUntracked:
		return "Stopped tracking it."
	case noticePremium:
		return noticePremium // worded by showDashboard, which knows the plan
	case noticePremiumCancelled:
		return "Premium is cancelled: the free plan's limits apply again. Everything you track stays tracked."
	case noticeHiResOn:
		return "High resolution is on: this video is sampled every 2 minutes until the end of its first 24 hours."
	case noticeHiResOff:
		return "High resolution is off: this video is sampled hourly again."
	case noticeDigestSent:
		return "The weekly run started: last week's outliers are computed and the digest goes to the outbox in a few seconds. It is sent once a week, so pressing again sends nothing new."
	}
	return ""
}

// explain turns a tracking failure into a status and words for a person.
// A refusal of us or a YouTube that did not answer is never "does not
// exist"; a video YouTube hides is named for its state.
func explain(err error, input string) (int, string) {
	var state *youtube.StateError
	switch {
	case errors.Is(err, youtube.ErrRefused):
		return http.StatusServiceUnavailable, fmt.Sprintf("YouTube is refusing us right now (%s), so we could not check %q. This is about us, not about your link: try again in a few minutes.", refusalWords(err), input)
	case errors.As(err, &state):
		return http.StatusUnprocessableEntity, fmt.Sprintf("YouTube says this video is %s (%s). Only videos YouTube shows to everyone can be tracked.", stateWords(string(state.State)), state.Reason)
	case errors.Is(err, youtube.ErrNoAnswer):
		return http.StatusServiceUnavailable, fmt.Sprintf("YouTube did not answer for %q (neither its feed nor its page), so we cannot tell whether it exists. Try again in a few minutes.", input)
	case errors.Is(err, youtube.ErrNotFound):
		return http.StatusUnprocessableEntity, fmt.Sprintf("YouTube has no channel or video %q. Check the link and try again.", input)
	case errors.Is(err, tracking.ErrLimitReached):
		return http.StatusForbidden, fmt.Sprintf("%s. Untrack something first, or upgrade to premium to lift the limits.", capitalize(err.Error()))
	case errors.Is(err, youtube.ErrUnparseable):
		return http.StatusBadGateway, "YouTube answered with a page we could not read. Try again later; if it persists, tell us."
	default:
		return http.StatusServiceUnavailable, "We could not reach YouTube just now. Try again in a minute."
	}
}

// refusalWords says in a few words how YouTube refuses us.
func refusalWords(err error) string {
	var r *youtube.RefusalError
	if !errors.As(err, &r) {
		return "it refuses our requests"
	}
	return refusalKindWords(string(r.Kind))
}

func refusalKindWords(kind string) string {
	switch youtube.Refusal(kind) {
	case youtube.RefusedBotCheck:
		return "it asks us to prove we are not a bot"
	case youtube.RefusedConsent:
		return "it shows us its cookie consent page"
	case youtube.RefusedRateLimit:
		return "it says we ask too often"
	case youtube.RefusedSignIn:
		return "it asks us to sign in"
	}
	return "it refuses our requests"
}

// stateWords names a video state (subjects.TrackedVideo.State) for people.
func stateWords(state string) string {
	switch youtube.VideoState(state) {
	case youtube.StatePrivate:
		return "private"
	case youtube.StateRemoved:
		return "removed"
	case youtube.StateAgeRestricted:
		return "age-restricted"
	case youtube.StateMembersOnly:
		return "for channel members only"
	case youtube.StateUnavailable:
		return "unavailable"
	}
	return state
}

// refusalShownFor is how long after YouTube last refused a worker the pages
// say so.
const refusalShownFor = time.Hour

// refusal returns the banner text when YouTube refused our workers
// recently, "" otherwise.
func (h *Handler) refusal(ctx context.Context) string {
	st, err := h.d.Store.YouTubeStatus(ctx)
	if err != nil {
		h.d.Log.Warn("youtube status", "err", err)
		return ""
	}
	if st.RefusedAt.IsZero() || time.Since(st.RefusedAt) > refusalShownFor {
		return ""
	}
	return fmt.Sprintf("YouTube is refusing us: %s (last at %s). Samples and channel checks are retried with backoff; until then the numbers shown are those of the last successful sample.",
		refusalKindWords(st.Kind), st.RefusedAt.UTC().Format("15:04 UTC"))
}

func capitalize(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

func (h *Handler) untrack(w http.ResponseWriter, r *http.Request, uid string) {
	ctx := r.Context()
	id := r.PostFormValue("id")
	var err error
	switch r.PostFormValue("kind") {
	case "channel":
		err = h.d.Store.UntrackChannel(ctx, uid, id)
	case "video":
		err = h.d.Store.UntrackVideo(ctx, uid, id)
	default:
		http.Error(w, "Say what to untrack: kind must be channel or video.", http.StatusBadRequest)
		return
	}
	if errors.Is(err, tracking.ErrInvalidID) {
		http.Error(w, "That is not a channel or video id.", http.StatusBadRequest)
		return
	}
	if err != nil {
		h.pages.Fail(w, r, "untrack", err)
		return
	}
	http.Redirect(w, r, "/tracker?ok="+noticeUntracked, http.StatusSeeOther)
}

func (h *Handler) video(w http.ResponseWriter, r *http.Request, uid string) {
	h.showVideo(w, r, uid, http.StatusOK, "")
}

// showVideo renders a video's page with status, and problem (the answer
// to a form on it) beside its high-resolution form.
func (h *Handler) showVideo(w http.ResponseWriter, r *http.Request, uid string, status int, problem string) {
	ctx := r.Context()
	id := r.PathValue("id")
	ok, err := h.d.Store.CanSeeVideo(ctx, uid, id)
	if err != nil {
		h.pages.Fail(w, r, "authorize video", err)
		return
	}
	if !ok {
		// The seed: a video outside the user's channels costs a credit.
		h.pages.Render(w, r, http.StatusForbidden, "Not tracked", notTrackedPage(id, youtube.ValidVideoID(id)))
		return
	}
	v, err := h.d.Store.Video(ctx, id)
	if err != nil {
		h.pages.Fail(w, r, "video", err)
		return
	}
	samples, err := analytics.VideoSamples(ctx, h.d.ClickHouse, id, time.Now().Add(-subjects.TrackerDailyWindow-24*time.Hour), 5000)
	if err != nil {
		h.pages.Fail(w, r, "samples", err)
		return
	}
	changes, err := analytics.VideoChanges(ctx, h.d.ClickHouse, id, 500)
	if err != nil {
		h.pages.Fail(w, r, "changes", err)
		return
	}
	band, outliers := h.weekBand(ctx, v.ChannelID), h.weekOutliers(ctx, nil, map[string]bool{id: true})
	data := videoData{Video: v, Chart: layoutChart(samples, changes, band), Outliers: outliers, Notice: notice(r), Samples: len(samples), Refusal: h.refusal(ctx)}
	if data.HiRes, err = h.hiResView(ctx, uid, v, samples, changes, problem); err != nil {
		h.pages.Fail(w, r, "high resolution", err)
		return
	}
	data.Individually, _ = h.d.Store.TracksVideo(ctx, uid, id)
	if v.ThumbHash != "" {
		data.ThumbURL = h.thumbURL(ctx, id, v.ThumbHash, true)
	}
	for i := len(changes) - 1; i >= 0; i-- {
		c := changes[i]
		cv := changeView{At: c.At.UTC().Format("2006-01-02 15:04:05") + " UTC", Kind: c.Kind, Before: c.Before, After: c.After}
		if c.Kind == "thumbnail" {
			cv.BeforeURL, cv.AfterURL = h.thumbURL(ctx, id, c.Before, true), h.thumbURL(ctx, id, c.After, true)
		}
		data.Changes = append(data.Changes, cv)
	}
	if c, err := h.d.Store.Channel(ctx, v.ChannelID); err == nil {
		if ok, _ := h.d.Store.CanSeeChannel(ctx, uid, c.ID); ok {
			data.Channel = c
		}
	}
	h.pages.Render(w, r, status, v.Title, videoPage(data))
}

func (h *Handler) thumbURL(ctx context.Context, vid, hash string, high bool) string {
	if h.d.Blobs == nil || hash == "" {
		return ""
	}
	u, err := h.d.Blobs.URL(ctx, tracking.ThumbKey(vid, hash, high), time.Hour)
	if err != nil {
		h.d.Log.Warn("thumbnail url", "video", vid, "err", err)
		return ""
	}
	return u
}

func (h *Handler) channel(w http.ResponseWriter, r *http.Request, uid string) {
	ctx := r.Context()
	id := r.PathValue("id")
	ok, err := h.d.Store.CanSeeChannel(ctx, uid, id)
	if err != nil {
		h.pages.Fail(w, r, "authorize channel", err)
		return
	}
	if !ok {
		h.pages.Render(w, r, http.StatusNotFound, "Not tracked", notTrackedChannelPage())
		return
	}
	c, err := h.d.Store.Channel(ctx, id)
	if err != nil {
		h.pages.Fail(w, r, "channel", err)
		return
	}
	vs, err := h.d.Store.ChannelVideos(ctx, id)
	if err != nil {
		h.pages.Fail(w, r, "channel videos", err)
		return
	}
	h.pages.Render(w, r, http.StatusOK, c.Title, channelPage(channelData{Channel: c, Videos: vs, Notice: notice(r), Refusal: h.refusal(ctx),
		Band: layoutBand(h.weekBand(ctx, id)), Outliers: h.weekOutliers(ctx, map[string]bool{id: true}, nil)}))
}

type dashboardData struct {
	Problem, Notice, Input string
	Refusal                string // YouTube refuses our workers; "" when not
	Limits                 tracking.Limits
	CanUpgrade             bool   // premium can be bought here
	Subscription           string // the Stripe subscription paying for premium, which can be cancelled here
	Channels               []subjects.TrackerChannel
	Videos                 []subjects.TrackerVideo // tracked individually
	ChannelVideos          []subjects.TrackerVideo // of the tracked channels
}

type videoData struct {
	Video        subjects.TrackerVideo
	Channel      subjects.TrackerChannel // zero unless the user tracks it
	Chart        chart
	Samples      int
	ThumbURL     string
	Changes      []changeView // newest first
	Notice       string
	Refusal      string
	Individually bool
	Outliers     []analytics.Outlier // this video's, in the latest weekly snapshot
	HiRes        hiResView
}

type changeView struct {
	At, Kind, Before, After string
	BeforeURL, AfterURL     string
}

type channelData struct {
	Channel  subjects.TrackerChannel
	Videos   []subjects.TrackerVideo
	Notice   string
	Refusal  string
	Band     chart               // the expected band by age; Empty when no snapshot has one
	Outliers []analytics.Outlier // the channel's, in the latest weekly snapshot
}

func views(n int64) string { return groupDigits(n) }

func when(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return t.UTC().Format("2006-01-02 15:04") + " UTC"
}
