// Package abtests holds the Tracker's A/B test roles (seed 000, "A/B
// testing"):
//
//   - Apply puts a timetable slot's variant live when its one-shot
//     schedule fires (thumbnails.set, videos.update), idempotently;
//   - WrapUp concludes a test when its end schedule fires (or it is
//     stopped early): the age-adjusted result (internal/abstats), one mail,
//     and the winner applied when the user asked for it.
package abtests

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"log/slog"
	"strings"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/nats-io/nats.go/jetstream"

	"jetfleet/analytics"
	"jetfleet/internal/abstats"
	"jetfleet/internal/abtest"
	"jetfleet/internal/accounts"
	"jetfleet/internal/youtube/dataapi"
	"jetfleet/subjects"
	"jetfleet/workers/consume"
)

// Apply handles TrackerABApply messages.
type Apply struct {
	svc *abtest.Service
	log *slog.Logger
}

// NewApply returns the apply handler.
func NewApply(svc *abtest.Service, log *slog.Logger) *Apply { return &Apply{svc: svc, log: log} }

// Handle applies one slot. A refusal that retrying cannot fix (video not
// ours, image refused) is permanent: the runtime dead-letters it with the
// reason. Quota exhaustion (403 quotaExceeded or dailyLimitExceeded) holds
// the slot until just after the next midnight Pacific time, when YouTube
// resets the quota: the test's page says so, and the message is handed
// back to come again then (retrying sooner only spends deliveries on a
// refusal that cannot change). Other errors retry with backoff.
func (a *Apply) Handle(ctx context.Context, msg jetstream.Msg) error {
	var m subjects.TrackerABApply
	if err := json.Unmarshal(msg.Data(), &m); err != nil || m.Test == "" {
		return consume.Permanentf("a/b apply %s: not a TrackerABApply: %v", msg.Subject(), err)
	}
	did, err := a.svc.ApplySlot(ctx, m.Test, m.Slot)
	switch {
	case errors.Is(err, abtest.ErrRevoked):
		a.log.Warn("a/b slot not applied: grant revoked, tests paused", "test", m.Test, "slot", m.Slot)
		return nil
	case errors.Is(err, dataapi.ErrForbidden), errors.Is(err, dataapi.ErrInvalid), errors.Is(err, dataapi.ErrNotFound), errors.Is(err, abtest.ErrThumbnailType):
		if ferr := a.svc.FailSlot(ctx, m.Test, m.Slot, err.Error()); ferr != nil {
			return ferr
		}
		return consume.Permanent(fmt.Errorf("a/b test %s slot %d: %w", m.Test, m.Slot, err))
	case errors.Is(err, dataapi.ErrQuota):
		until, herr := a.svc.HoldForQuota(ctx, m.Test)
		if herr != nil {
			return fmt.Errorf("a/b test %s slot %d: %w (and recording the wait: %v)", m.Test, m.Slot, err, herr)
		}
		if until.IsZero() {
			return nil // the test was deleted meanwhile
		}
		a.log.Warn("a/b slot held: YouTube quota spent for the day", "test", m.Test, "slot", m.Slot, "resumes", until)
		return consume.RetryAfter(until.Sub(a.svc.Now()), fmt.Errorf("a/b test %s slot %d: %w", m.Test, m.Slot, err))
	case err != nil:
		return fmt.Errorf("a/b test %s slot %d: %w", m.Test, m.Slot, err)
	}
	a.log.Info("a/b slot", "test", m.Test, "slot", m.Slot, "thumbnail", did.Thumbnail, "title", did.Title, "skipped", did.Skipped)
	return nil
}

// WrapUpDeps are what the wrap-up uses.
type WrapUpDeps struct {
	Service    *abtest.Service
	ClickHouse driver.Conn
	Users      *accounts.Store
	Mail       func(context.Context, subjects.Mail) error
	BaseURL    string
	Log        *slog.Logger
}

// WrapUp handles TrackerABWrapUpMsg messages.
type WrapUp struct{ d WrapUpDeps }

// NewWrapUp returns the wrap-up handler.
func NewWrapUp(d WrapUpDeps) *WrapUp { return &WrapUp{d: d} }

// Handle concludes one test: the result is computed once and kept, the
// mail is enqueued once (its id is the test's, and a mark in the test
// keeps a later replay from mailing again), the winner's apply is
// requested once.
func (w *WrapUp) Handle(ctx context.Context, msg jetstream.Msg) error {
	var m subjects.TrackerABWrapUpMsg
	if err := json.Unmarshal(msg.Data(), &m); err != nil || m.Test == "" {
		return consume.Permanentf("a/b wrap-up %s: not a TrackerABWrapUpMsg: %v", msg.Subject(), err)
	}
	t, err := w.d.Service.Conclude(ctx, m.Test, func(t subjects.TrackerABTest) (subjects.TrackerABResult, error) {
		return w.compute(ctx, t)
	})
	switch {
	case errors.Is(err, abtest.ErrNotFound):
		return nil // deleted
	case errors.Is(err, abtest.ErrState):
		return consume.Permanent(err)
	case err != nil:
		return err
	}
	if t.Mailed.IsZero() {
		u, err := w.d.Users.User(ctx, t.UserID)
		if errors.Is(err, accounts.ErrNotFound) {
			return nil // the account is gone
		}
		if err != nil {
			return err
		}
		if err := w.d.Mail(ctx, resultMail(t, u.Email, w.d.BaseURL)); err != nil {
			return err
		}
		if _, err := w.d.Service.MarkMailed(ctx, t.ID); err != nil {
			return err
		}
	}
	if t.AutoApply && t.Result != nil && t.Result.Winner >= 0 && t.WinnerApplied.IsZero() {
		if err := w.d.Service.RequestWinner(ctx, t); err != nil {
			return err
		}
	}
	w.d.Log.Info("a/b test wrapped up", "test", t.ID, "winner", t.Result.Winner, "confidence", t.Result.Confidence)
	return nil
}

// compute reads the video's samples over the test (and a little before,
// so the curve is fitted on more of its own history) and analyses them.
func (w *WrapUp) compute(ctx context.Context, t subjects.TrackerABTest) (subjects.TrackerABResult, error) {
	rows, err := analytics.VideoSamples(ctx, w.d.ClickHouse, t.VideoID, t.Start, 100000)
	if err != nil {
		return subjects.TrackerABResult{}, err
	}
	samples := make([]abstats.Sample, 0, len(rows))
	for _, r := range rows {
		if r.At.After(t.End) {
			break
		}
		samples = append(samples, abstats.Sample{At: r.At, Views: float64(r.Views)})
	}
	res := abstats.Analyse(samples, abtest.Windows(t), t.Published, len(t.Variants))
	out := subjects.TrackerABResult{Computed: t.End, Winner: res.Winner, Confidence: res.Confidence, Lift: res.Lift,
		Note: res.Note, DecayExponent: res.Exponent}
	for _, v := range res.Variants {
		out.Variants = append(out.Variants, subjects.TrackerABVariantResult{Variant: v.Variant, Intervals: v.Intervals,
			ViewsPerHour: v.ViewsPerHour, Adjusted: v.Adjusted})
	}
	return out, nil
}

// Summary is the result in one sentence, for the mail and the page.
func Summary(t subjects.TrackerABTest) string {
	r := t.Result
	if r == nil {
		return "No result yet."
	}
	if r.Winner < 0 {
		note := r.Note
		if note == "" {
			note = "no clear winner"
		}
		return fmt.Sprintf("No clear winner (%s; best confidence %.0f%%).", note, r.Confidence*100)
	}
	return fmt.Sprintf("Variant %s won: %.0f%% more views per hour than the runner-up at the same age, with %.0f%% confidence.",
		t.Variants[r.Winner].Label, r.Lift*100, r.Confidence*100)
}

func describe(v subjects.TrackerABVariant) string {
	var parts []string
	if v.Title != "" {
		parts = append(parts, fmt.Sprintf("title %q", v.Title))
	}
	if v.ThumbKey != "" {
		parts = append(parts, fmt.Sprintf("thumbnail %d×%d", v.ThumbWidth, v.ThumbHeight))
	}
	return strings.Join(parts, ", ")
}

func resultMail(t subjects.TrackerABTest, to, baseURL string) subjects.Mail {
	link := strings.TrimSuffix(baseURL, "/") + "/tracker/abtests/" + t.ID
	summary := Summary(t)
	var text, rows strings.Builder
	fmt.Fprintf(&text, "Your A/B test on %q has ended.\n\n%s\n\n", t.VideoTitle, summary)
	for _, v := range t.Result.Variants {
		va := t.Variants[v.Variant]
		fmt.Fprintf(&text, "  %s (%s): %.1f views/hour, %.2f× the video's curve, %d sample intervals\n", va.Label, describe(va), v.ViewsPerHour, v.Adjusted, v.Intervals)
		fmt.Fprintf(&rows, "<tr><td>%s</td><td>%s</td><td>%.1f</td><td>%.2f×</td><td>%d</td></tr>", va.Label, html.EscapeString(describe(va)), v.ViewsPerHour, v.Adjusted, v.Intervals)
	}
	if t.AutoApply && t.Result.Winner >= 0 {
		fmt.Fprintf(&text, "\nAs you asked, variant %s is being applied to the video.\n", t.Variants[t.Result.Winner].Label)
	}
	fmt.Fprintf(&text, "\nThe curve coloured by variant: %s\n", link)
	htmlBody := fmt.Sprintf(`<p>Your A/B test on <b>%s</b> has ended.</p><p><b>%s</b></p><table border="1" cellpadding="4" cellspacing="0"><tr><th>Variant</th><th>What</th><th>Views/hour</th><th>vs. curve</th><th>Intervals</th></tr>%s</table><p><a href="%s">See the curve coloured by variant</a></p>`,
		html.EscapeString(t.VideoTitle), html.EscapeString(summary), rows.String(), html.EscapeString(link))
	subject := strings.NewReplacer("\r", " ", "\n", " ").Replace("A/B test result: " + t.VideoTitle)
	return subjects.Mail{ID: "abtest-result:" + t.ID, To: to, Subject: subject, Text: text.String(), HTML: htmlBody}
}
