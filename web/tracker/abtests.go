package tracker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"jetfleet/analytics"
	"jetfleet/internal/abtest"
	"jetfleet/internal/google/oauth"
	"jetfleet/internal/youtube"
	"jetfleet/internal/youtube/dataapi"
	"jetfleet/subjects"
	webchart "jetfleet/web/chart"
	"jetfleet/web/session"
)

// The A/B test pages: connect a YouTube channel (Google OAuth), create a
// test on one of its videos, upload each variant's thumbnail straight to
// blob storage (a presigned PUT from the browser, static/abtests.js),
// start it, follow it, and read the result on the curve coloured by
// variant.

func (h *Handler) abRoutes(mux *http.ServeMux, protect func(http.Handler) http.Handler) {
	mux.Handle("GET /tracker/abtests", h.signedIn(protect, h.abList))
	mux.Handle("POST /tracker/abtests", h.signedIn(protect, h.abCreate))
	mux.Handle("GET /tracker/abtests/{id}", h.signedIn(protect, h.abPage))
	mux.Handle("POST /tracker/abtests/{id}/{action}", h.signedIn(protect, h.abAction))
	mux.Handle("POST /tracker/youtube/connect", h.signedIn(protect, h.abConnect))
	mux.Handle("GET /tracker/youtube/callback", h.signedIn(protect, h.abCallback))
	mux.Handle("POST /tracker/youtube/disconnect", h.signedIn(protect, h.abDisconnect))
}

// abListData is the list page.
type abListData struct {
	Enabled  bool
	Grant    *subjects.TrackerABGrant
	Tests    []subjects.TrackerABTest
	Notice   string
	Problem  string
	Form     abForm
	Problems abtest.Problems
	Demo     bool
	Quota    subjects.TrackerABQuota
	QuotaMax int
	// Videos are the connected channel's videos the Tracker knows, offered
	// in the video field.
	Videos []subjects.TrackerVideo
}

// abForm is what the creation form sent, to show it again.
type abForm struct {
	Video     string
	Titles    [abtest.MaxVariants]string
	Variants  int
	Days      int
	Rotation  string
	AutoApply bool
}

func (h *Handler) abList(w http.ResponseWriter, r *http.Request, uid string) {
	h.showABList(w, r, uid, http.StatusOK, abForm{Variants: 2, Days: 7, Rotation: abtest.DefaultRotation.String()}, nil, "")
}

func (h *Handler) showABList(w http.ResponseWriter, r *http.Request, uid string, status int, f abForm, p abtest.Problems, problem string) {
	ctx := r.Context()
	svc := h.d.ABTests
	d := abListData{Enabled: svc.Enabled(), Form: f, Problems: p, Problem: problem, Demo: svc.Demo(), QuotaMax: svc.QuotaPerDay()}
	switch r.URL.Query().Get("ok") {
	case "connected":
		d.Notice = "Your YouTube channel is connected."
	case "disconnected":
		d.Notice = "Disconnected: we revoked our access at Google and deleted the tokens."
	case "deleted":
		d.Notice = "Test deleted, with its uploaded thumbnails."
	}
	g, err := svc.Grant(ctx, uid)
	switch {
	case err == nil:
		d.Grant = &g
		if d.Videos, err = h.d.Store.ChannelVideos(ctx, g.ChannelID); err != nil {
			h.pages.Fail(w, r, "channel videos", err)
			return
		}
	case !errors.Is(err, abtest.ErrNotConnected):
		h.pages.Fail(w, r, "youtube grant", err)
		return
	}
	if d.Tests, err = svc.List(ctx, uid); err != nil {
		h.pages.Fail(w, r, "a/b tests", err)
		return
	}
	if d.Quota, err = svc.Quota(ctx, svc.Day(time.Now())); err != nil {
		h.pages.Fail(w, r, "quota", err)
		return
	}
	h.pages.Render(w, r, status, "A/B tests", abListPage(d))
}

func (h *Handler) abConnect(w http.ResponseWriter, r *http.Request, uid string) {
	s := session.From(r.Context())
	if s == nil {
		http.Error(w, "no session", http.StatusBadRequest)
		return
	}
	if !h.abAllowed(w, r, uid, abForm{Variants: 2, Days: 7}) {
		return
	}
	u, err := h.d.ABTests.BeginConnect(r.Context(), uid, s.ID)
	if errors.Is(err, abtest.ErrDisabled) {
		h.showABList(w, r, uid, http.StatusServiceUnavailable, abForm{Variants: 2, Days: 7}, nil, err.Error())
		return
	}
	if err != nil {
		h.pages.Fail(w, r, "begin connect", err)
		return
	}
	http.Redirect(w, r, u, http.StatusSeeOther)
}

func (h *Handler) abCallback(w http.ResponseWriter, r *http.Request, uid string) {
	q := r.URL.Query()
	form := abForm{Variants: 2, Days: 7}
	if e := q.Get("error"); e != "" {
		h.showABList(w, r, uid, http.StatusBadRequest, form, nil, fmt.Sprintf("Google did not connect the channel (%s). Nothing was stored; try again when you are ready.", youtubeWords(e)))
		return
	}
	s := session.From(r.Context())
	sid := ""
	if s != nil {
		sid = s.ID
	}
	_, err := h.d.ABTests.FinishConnect(r.Context(), uid, sid, q.Get("state"), q.Get("code"))
	switch {
	case errors.Is(err, abtest.ErrOAuthState):
		h.showABList(w, r, uid, http.StatusBadRequest, form, nil, "This connection link "+strings.TrimPrefix(err.Error(), "this connection attempt ")+".")
		return
	case errors.Is(err, dataapi.ErrNotFound):
		h.showABList(w, r, uid, http.StatusUnprocessableEntity, form, nil, "That Google account has no YouTube channel. Connect the account that owns your channel.")
		return
	case err != nil:
		h.d.Log.Warn("finish connect", "user", uid, "err", err)
		h.showABList(w, r, uid, http.StatusBadGateway, form, nil, "Google did not complete the connection; try again. ("+err.Error()+")")
		return
	}
	http.Redirect(w, r, "/tracker/abtests?ok=connected", http.StatusSeeOther)
}

// youtubeWords keeps Google's error code to a short token for the page.
func youtubeWords(code string) string {
	if len(code) > 40 || strings.ContainsAny(code, "<>\"'") {
		return "error"
	}
	return code
}

func (h *Handler) abDisconnect(w http.ResponseWriter, r *http.Request, uid string) {
	if err := h.d.ABTests.Disconnect(r.Context(), uid); err != nil {
		h.pages.Fail(w, r, "disconnect", err)
		return
	}
	http.Redirect(w, r, "/tracker/abtests?ok=disconnected", http.StatusSeeOther)
}

// abAllowed counts an action that calls Google against the user's share
// of the Tracker's action limit (shared by every edge); false has answered.
func (h *Handler) abAllowed(w http.ResponseWriter, r *http.Request, uid string, f abForm) bool {
	ok, err := h.limiter.Allow(r.Context(), uid)
	if err != nil {
		h.d.Log.Warn("count a/b action", "err", err)
		h.showABList(w, r, uid, http.StatusServiceUnavailable, f, nil, "A/B tests are unavailable for a moment. Try again shortly.")
		return false
	}
	if !ok {
		h.showABList(w, r, uid, http.StatusTooManyRequests, f, nil, "You are going very quickly. Wait a few seconds, then try again.")
		return false
	}
	return true
}

func (h *Handler) abCreate(w http.ResponseWriter, r *http.Request, uid string) {
	f := abForm{Video: r.PostFormValue("video"), Rotation: r.PostFormValue("rotation"), AutoApply: r.PostFormValue("auto_apply") == "on"}
	f.Variants, _ = strconv.Atoi(r.PostFormValue("variants"))
	f.Days, _ = strconv.Atoi(r.PostFormValue("days"))
	f.Variants = min(max(f.Variants, abtest.MinVariants), abtest.MaxVariants)
	d := abtest.Draft{Days: f.Days, AutoApply: f.AutoApply}
	for i := range f.Variants {
		f.Titles[i] = r.PostFormValue(fmt.Sprintf("title%d", i))
		d.Titles = append(d.Titles, f.Titles[i])
	}
	d.VideoID = f.Video
	if ref, err := youtube.Parse(f.Video); err == nil && ref.Kind == youtube.KindVideo {
		d.VideoID = ref.ID
	}
	rot, err := time.ParseDuration(f.Rotation)
	if err != nil {
		rot = -1
	}
	d.Rotation = rot
	if !h.abAllowed(w, r, uid, f) {
		return
	}
	t, err := h.d.ABTests.Create(r.Context(), uid, d)
	var p abtest.Problems
	switch {
	case errors.As(err, &p):
		h.showABList(w, r, uid, http.StatusUnprocessableEntity, f, p, "")
		return
	case err != nil:
		status, msg := abExplain(err)
		if status >= 500 {
			h.d.Log.Warn("create a/b test", "user", uid, "err", err)
		}
		h.showABList(w, r, uid, status, f, nil, msg)
		return
	}
	http.Redirect(w, r, "/tracker/abtests/"+t.ID, http.StatusSeeOther)
}

// abExplain turns a domain or API error into a status and a sentence.
func abExplain(err error) (int, string) {
	switch {
	case errors.Is(err, abtest.ErrNotConnected):
		return http.StatusConflict, "Connect your YouTube channel first."
	case errors.Is(err, abtest.ErrRevoked), errors.Is(err, oauth.ErrRevoked):
		return http.StatusConflict, "YouTube access was revoked. Connect your channel again, then resume your tests."
	case errors.Is(err, abtest.ErrQuota):
		return http.StatusConflict, strings.TrimPrefix(err.Error(), abtest.ErrQuota.Error()+": ")
	case errors.Is(err, abtest.ErrState):
		return http.StatusConflict, "Not possible now: " + err.Error() + "."
	case errors.Is(err, dataapi.ErrQuota):
		return http.StatusServiceUnavailable, "YouTube's daily API quota is used up; it resets at midnight Pacific time."
	case errors.Is(err, abtest.ErrDisabled):
		return http.StatusServiceUnavailable, err.Error()
	}
	return http.StatusBadGateway, "YouTube did not answer as expected; try again in a moment."
}

// abPageData is one test's page.
type abPageData struct {
	Test     subjects.TrackerABTest
	Thumbs   []abThumb
	Problem  string
	Problems abtest.Problems
	Chart    chart
	Segments []webchart.Segment
	Summary  string
	Now      time.Time
	Rotation time.Duration
	NextSlot int
}

// abThumb is a variant's thumbnail as the page shows it.
type abThumb struct {
	// Upload is how the page sends the file (blob.Upload as JSON: the
	// S3 form POST or the edge PUT); empty when no upload is offered.
	Upload  string
	ViewURL string
	Check   abtest.ThumbCheck
}

func (h *Handler) abPage(w http.ResponseWriter, r *http.Request, uid string) {
	h.showABPage(w, r, uid, http.StatusOK, nil, "")
}

func (h *Handler) showABPage(w http.ResponseWriter, r *http.Request, uid string, status int, p abtest.Problems, problem string) {
	ctx := r.Context()
	t, err := h.d.ABTests.Test(ctx, uid, r.PathValue("id"))
	if errors.Is(err, abtest.ErrNotFound) {
		h.pages.Render(w, r, http.StatusNotFound, "Not found", abNotFound())
		return
	}
	if err != nil {
		h.pages.Fail(w, r, "a/b test", err)
		return
	}
	d := abPageData{Test: t, Problems: p, Problem: problem, Now: time.Now(), Rotation: time.Duration(t.RotationSeconds) * time.Second, NextSlot: -1}
	for i := range t.Variants {
		var th abThumb
		if t.Variants[i].ThumbKey != "" {
			th.Check = h.d.ABTests.CheckThumb(ctx, t.Variants[i].ThumbKey)
			if th.Check.Uploaded {
				th.ViewURL = h.d.ABTests.ThumbURL(ctx, t, i)
			}
			if t.Status == subjects.TrackerABDraft {
				up, err := h.d.ABTests.ThumbUpload(ctx, t, i)
				if err != nil {
					h.pages.Fail(w, r, "thumbnail upload", err)
					return
				}
				b, _ := json.Marshal(up)
				th.Upload = string(b)
			}
		}
		d.Thumbs = append(d.Thumbs, th)
	}
	for i, s := range t.Slots {
		if s.Live.IsZero() && s.Skipped == "" {
			d.NextSlot = i
			break
		}
	}
	if t.Status != subjects.TrackerABDraft && h.d.ClickHouse != nil {
		samples, err := analytics.VideoSamples(ctx, h.d.ClickHouse, t.VideoID, t.Start.Add(-time.Hour), 5000)
		if err != nil {
			h.pages.Fail(w, r, "samples", err)
			return
		}
		changes, err := analytics.VideoChanges(ctx, h.d.ClickHouse, t.VideoID, 1000)
		if err != nil {
			h.pages.Fail(w, r, "changes", err)
			return
		}
		d.Chart, d.Segments = variantChart(samples, changes, t)
	}
	if t.Result != nil {
		d.Summary = abSummary(t)
	}
	h.pages.Render(w, r, status, "A/B test", abTestPage(d))
}

func (h *Handler) abAction(w http.ResponseWriter, r *http.Request, uid string) {
	ctx := r.Context()
	id, svc := r.PathValue("id"), h.d.ABTests
	var err error
	switch r.PathValue("action") {
	case "start":
		_, err = svc.Start(ctx, uid, id, func(ctx context.Context, vid string, until time.Time) error {
			t, err := svc.Test(ctx, uid, id)
			if err != nil {
				return err
			}
			return h.d.Store.KeepHourly(ctx, subjects.TrackerVideo{ID: vid, ChannelID: t.ChannelID, Title: t.VideoTitle, PublishedAt: t.Published}, until)
		})
	case "pause":
		err = svc.Pause(ctx, uid, id)
	case "resume":
		err = svc.Resume(ctx, uid, id)
	case "stop":
		err = svc.Stop(ctx, uid, id)
	case "delete":
		if err = svc.Delete(ctx, uid, id); err == nil {
			http.Redirect(w, r, "/tracker/abtests?ok=deleted", http.StatusSeeOther)
			return
		}
	default:
		http.NotFound(w, r)
		return
	}
	var p abtest.Problems
	switch {
	case errors.Is(err, abtest.ErrNotFound):
		h.pages.Render(w, r, http.StatusNotFound, "Not found", abNotFound())
		return
	case errors.As(err, &p):
		h.showABPage(w, r, uid, http.StatusUnprocessableEntity, p, "The test cannot start yet: fix what is marked below.")
		return
	case err != nil:
		status, msg := abExplain(err)
		if status >= 500 {
			h.d.Log.Warn("a/b action", "action", r.PathValue("action"), "err", err)
		}
		h.showABPage(w, r, uid, status, nil, msg)
		return
	}
	http.Redirect(w, r, "/tracker/abtests/"+id, http.StatusSeeOther)
}

// variantChart is the views curve with each sample interval coloured by
// the variant live during it (grey outside the test's windows), and the
// title and thumbnail changes the Tracker's scraper saw during the test
// marked as on a video's page: each rotation shows up there too.
func variantChart(samples []analytics.VideoSample, changes []analytics.VideoChange, t subjects.TrackerABTest) (chart, []webchart.Segment) {
	var during []analytics.VideoChange
	for _, ch := range changes {
		if len(samples) > 0 && !ch.At.Before(samples[0].At) && !ch.At.After(samples[len(samples)-1].At) {
			during = append(during, ch)
		}
	}
	c := layoutChart(samples, during, nil)
	windows := abtest.Windows(t)
	var segs []webchart.Segment
	for i := 1; i < len(c.Dots) && i < len(samples); i++ {
		v := -1
		for _, w := range windows {
			if !samples[i-1].At.Before(w.Start) && !samples[i].At.After(w.End) {
				v = w.Variant
				break
			}
		}
		label := "outside the test's windows"
		if v >= 0 {
			label = "variant " + t.Variants[v].Label
		}
		segs = append(segs, webchart.Segment{X1: c.Dots[i-1].X, Y1: c.Dots[i-1].Y, X2: c.Dots[i].X, Y2: c.Dots[i].Y, Color: webchart.SeriesColor(v), Label: label})
	}
	return c, segs
}

func abSummary(t subjects.TrackerABTest) string {
	r := t.Result
	if r.Winner < 0 {
		note := r.Note
		if note == "" {
			note = "no clear winner"
		}
		return fmt.Sprintf("No clear winner: %s (confidence %.0f%%).", note, r.Confidence*100)
	}
	return fmt.Sprintf("Variant %s won: %.0f%% more views per hour than the runner-up at the same age, with %.0f%% confidence.",
		t.Variants[r.Winner].Label, r.Lift*100, r.Confidence*100)
}

func statusWords(t subjects.TrackerABTest) string {
	switch t.Status {
	case subjects.TrackerABDraft:
		return "draft: upload thumbnails, then start"
	case subjects.TrackerABRunning:
		if !t.QuotaResumes.IsZero() {
			return "waiting for YouTube quota (resumes at " + quotaResumesWords(t.QuotaResumes) + ")"
		}
		return "running"
	case subjects.TrackerABPaused:
		return "paused"
	case subjects.TrackerABWrapUp:
		return "wrapping up"
	case subjects.TrackerABDone:
		return "done"
	}
	return t.Status
}

// quotaResumesWords says when a test held for YouTube's quota goes on, in
// UTC and in Pacific time (when YouTube resets it, so the user can check).
func quotaResumesWords(at time.Time) string {
	words := at.UTC().Format("2 Jan 15:04 UTC")
	if pt, err := time.LoadLocation("America/Los_Angeles"); err == nil {
		words += ", " + at.In(pt).Format("15:04 MST") + " Pacific"
	}
	return words
}

func rotationWords(d time.Duration) string {
	switch d {
	case abtest.DemoRotation:
		return "every minute (demo)"
	case 6 * time.Hour:
		return "4 times a day"
	case 12 * time.Hour:
		return "twice a day"
	case 24 * time.Hour:
		return "once a day"
	}
	return "every " + d.String()
}

func durationWords(t subjects.TrackerABTest) string {
	unit := "day"
	if time.Duration(t.RotationSeconds)*time.Second == abtest.DemoRotation {
		unit = "minute"
	}
	if t.Days != 1 {
		unit += "s"
	}
	return fmt.Sprintf("%d %s", t.Days, unit)
}

func sizeWords(n int64) string {
	if n >= 1<<20 {
		return fmt.Sprintf("%.1f MB", float64(n)/(1<<20))
	}
	return fmt.Sprintf("%d KB", (n+1023)/1024)
}
