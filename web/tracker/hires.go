package tracker

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"jetfleet/analytics"
	"jetfleet/internal/tracking"
	"jetfleet/subjects"
)

// High-resolution tracking on the video page: a premium user can have a
// video sampled every 2 minutes in its first 24 hours (the tracker-hires
// role does the sampling); the page draws those first 24 hours on their
// own chart so the finer curve is not squeezed into two months.

// hiResView is what the video page shows about high resolution.
type hiResView struct {
	On         bool
	Until      time.Time // end of the video's first 24 hours
	Open       bool      // the video is still inside them
	Premium    bool
	CanUpgrade bool
	Cap        int // videos one user may have sampled every 2 minutes at once
	Problem    string
	Chart      chart // the first 24 hours, when they hold finer samples than hourly
	Samples    int   // in Chart
	Spacing    string
}

// hiResView gathers the page's high-resolution section.
func (h *Handler) hiResView(ctx context.Context, uid string, v subjects.TrackerVideo, samples []analytics.VideoSample, changes []analytics.VideoChange, problem string) (hiResView, error) {
	premium, err := h.d.Premium(ctx, uid)
	if err != nil {
		return hiResView{}, err
	}
	hv := hiResView{Until: tracking.HiResUntil(v), Premium: premium, CanUpgrade: h.d.Plans != nil, Cap: h.d.Store.HiResPerUser(), Problem: problem}
	hv.Open = time.Now().Before(hv.Until)
	if _, hv.On, err = h.d.Store.HiRes(ctx, uid, v.ID); err != nil {
		return hiResView{}, err
	}
	// Premium ended: the tracker-hires role drops the choice at its next
	// tick, and samples no more meanwhile.
	hv.On = hv.On && premium
	// The first 24 hours get their own chart once they hold samples closer
	// than hourly and the whole curve spans well beyond them.
	var first []analytics.VideoSample
	for _, s := range samples {
		if s.At.Before(hv.Until) {
			first = append(first, s)
		}
	}
	spacing := medianSpacing(first)
	if len(first) > 2 && spacing > 0 && spacing < 30*time.Minute {
		hv.Spacing = "every " + duration(spacing)
		if len(samples) > 0 && samples[len(samples)-1].At.Sub(samples[0].At) > 2*subjects.TrackerHiResWindow {
			var ch []analytics.VideoChange
			for _, c := range changes {
				if c.At.Before(hv.Until) {
					ch = append(ch, c)
				}
			}
			hv.Chart, hv.Samples = layoutChart(first, ch, nil), len(first)
		}
	}
	return hv, nil
}

// medianSpacing is the median time between consecutive samples; 0 for
// fewer than two.
func medianSpacing(samples []analytics.VideoSample) time.Duration {
	if len(samples) < 2 {
		return 0
	}
	gaps := make([]time.Duration, 0, len(samples)-1)
	for i := 1; i < len(samples); i++ {
		gaps = append(gaps, samples[i].At.Sub(samples[i-1].At))
	}
	// Insertion sort: a few hundred gaps at most.
	for i := 1; i < len(gaps); i++ {
		for j := i; j > 0 && gaps[j] < gaps[j-1]; j-- {
			gaps[j], gaps[j-1] = gaps[j-1], gaps[j]
		}
	}
	return gaps[len(gaps)/2]
}

// duration writes d the way a person says it: "2 min", "45 s", "1 h".
func duration(d time.Duration) string {
	switch {
	case d >= time.Hour:
		return fmt.Sprintf("%.0f h", d.Hours())
	case d >= time.Minute:
		return fmt.Sprintf("%.0f min", d.Minutes())
	}
	return fmt.Sprintf("%.0f s", d.Seconds())
}

// setHiRes turns high-resolution sampling of a video on or off for the
// user. Only what the user may see, only premium, only in the video's
// first 24 hours; each refusal says why on the video page.
func (h *Handler) setHiRes(w http.ResponseWriter, r *http.Request, uid string) {
	ctx := r.Context()
	id := r.PathValue("id")
	var on bool
	switch r.PostFormValue("hires") {
	case "on":
		on = true
	case "off":
	default:
		http.Error(w, "Say whether you want high resolution: hires must be on or off.", http.StatusBadRequest)
		return
	}
	ok, err := h.d.Store.CanSeeVideo(ctx, uid, id)
	if err != nil {
		h.pages.Fail(w, r, "authorize video", err)
		return
	}
	if !ok {
		h.pages.Render(w, r, http.StatusForbidden, "Not tracked", notTrackedPage(id, false))
		return
	}
	premium, err := h.d.Premium(ctx, uid)
	if err != nil {
		h.pages.Fail(w, r, "plan", err)
		return
	}
	_, err = h.d.Store.SetHiRes(ctx, uid, id, premium, on)
	switch {
	case errors.Is(err, tracking.ErrPremiumOnly):
		h.showVideo(w, r, uid, http.StatusForbidden, "Sampling every 2 minutes is part of premium: the free plan samples hourly. Go premium on the Tracker page to turn it on.")
		return
	case errors.Is(err, tracking.ErrHiResLimit):
		h.showVideo(w, r, uid, http.StatusConflict, fmt.Sprintf("You have %d videos sampled every 2 minutes already, the most at once. Put one back to hourly on its page, or wait until one's first 24 hours end.", h.d.Store.HiResPerUser()))
		return
	case errors.Is(err, tracking.ErrHiResOver):
		h.showVideo(w, r, uid, http.StatusUnprocessableEntity, "This video is past its first 24 hours, the only time it can be sampled every 2 minutes; it stays sampled hourly, then daily.")
		return
	case err != nil:
		h.pages.Fail(w, r, "set high resolution", err)
		return
	}
	done := noticeHiResOff
	if on {
		done = noticeHiResOn
	}
	http.Redirect(w, r, "/tracker/videos/"+id+"?ok="+done, http.StatusSeeOther)
}

// samplesLine says how many samples the curve has, and how close together
// they came in the video's first 24 hours when that was finer than hourly.
func samplesLine(n int, spacing string) string {
	if spacing == "" {
		return fmt.Sprintf("%d samples.", n)
	}
	return fmt.Sprintf("%d samples (in its first 24 hours: %s).", n, spacing)
}
