package abtest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"jetfleet/internal/abstats"
	"jetfleet/internal/youtube/dataapi"
	"jetfleet/subjects"
)

// Applied says what ApplySlot did.
type Applied struct {
	Thumbnail, Title bool   // API calls that changed the video
	Skipped          string // why nothing was done, if so
}

// ApplySlot puts slot i of test tid live: thumbnails.set when the slot's
// thumbnail is not the one live, videos.update when YouTube's title is not
// the slot's (read with videos.list first). Slot len(Slots) is the
// winner, after the wrap-up. It is idempotent: a slot already live (or
// skipped) is left alone, and what went live is recorded with
// compare-and-set after each call, so a retry repeats at most the one call
// whose record was lost. A refused grant pauses the user's tests
// (ErrRevoked); other API refusals come back as dataapi errors.
func (s *Service) ApplySlot(ctx context.Context, tid string, i int) (Applied, error) {
	t, err := s.load(ctx, tid)
	if errors.Is(err, ErrNotFound) {
		return Applied{Skipped: "test deleted"}, nil
	}
	if err != nil {
		return Applied{}, err
	}
	winner := i == len(t.Slots)
	switch {
	case i < 0 || i > len(t.Slots):
		return Applied{}, fmt.Errorf("test %s has no slot %d", tid, i)
	case winner && (t.Result == nil || t.Result.Winner < 0 || !t.WinnerApplied.IsZero()):
		return Applied{Skipped: "no winner to apply, or applied already"}, nil
	case !winner && (!t.Slots[i].Live.IsZero() || t.Slots[i].Skipped != ""):
		return Applied{Skipped: "slot done already"}, nil
	case !winner && t.Status != subjects.TrackerABRunning:
		reason := t.Status
		if t.StatusReason != "" {
			reason = t.StatusReason
		}
		if err := s.markSlot(ctx, tid, i, func(sl *subjects.TrackerABSlot) { sl.Skipped = reason }); err != nil {
			return Applied{}, err
		}
		s.unbook(ctx, t, i, false)
		return Applied{Skipped: reason}, nil
	case !winner && superseded(t, i, s.cfg.Now()):
		// Held back (YouTube's quota, retries) past the next slot's time:
		// that slot shows its own variant now, and putting this one live
		// after it would show the wrong variant in its window.
		const reason = "superseded: applied too late, the next slot's time had come"
		if err := s.markSlot(ctx, tid, i, func(sl *subjects.TrackerABSlot) { sl.Skipped = reason }); err != nil {
			return Applied{}, err
		}
		s.unbook(ctx, t, i, false)
		return Applied{Skipped: reason}, nil
	}
	variant := 0
	if winner {
		variant = t.Result.Winner
	} else {
		variant = t.Slots[i].Variant
	}
	v := t.Variants[variant]
	api, _, err := s.API(ctx, t.UserID)
	if errors.Is(err, ErrRevoked) || errors.Is(err, ErrNotConnected) {
		// Paused already (or the channel was disconnected): nothing to
		// retry until the user connects again.
		return Applied{Skipped: err.Error()}, s.pauseAll(ctx, t.UserID, err.Error())
	}
	if err != nil {
		return Applied{}, err
	}
	var did Applied
	if v.ThumbKey != "" && t.LiveThumb != variant {
		img, ct, err := s.readThumb(ctx, v.ThumbKey)
		if err != nil {
			return did, fmt.Errorf("read thumbnail of variant %s: %w", v.Label, err)
		}
		err = api.SetThumbnail(ctx, t.VideoID, img, ct)
		s.Spend(ctx, dataapi.CostThumbnailsSet)
		if err != nil {
			return did, s.checkGrant(ctx, t.UserID, err)
		}
		did.Thumbnail = true
		if _, err := update(ctx, s, subjects.TrackerABTestKey(tid), func(t *subjects.TrackerABTest) error {
			t.LiveThumb = variant
			return nil
		}); err != nil {
			return did, err
		}
	}
	if v.Title != "" && t.LiveTitle != variant {
		cur, err := api.Video(ctx, t.VideoID)
		s.Spend(ctx, dataapi.CostVideosList)
		if err != nil {
			return did, s.checkGrant(ctx, t.UserID, err)
		}
		if cur.Title != v.Title {
			err = api.SetTitle(ctx, cur, v.Title)
			s.Spend(ctx, dataapi.CostVideosUpdate)
			if err != nil {
				return did, s.checkGrant(ctx, t.UserID, err)
			}
			did.Title = true
		}
	}
	now := s.cfg.Now().UTC()
	_, err = update(ctx, s, subjects.TrackerABTestKey(tid), func(t *subjects.TrackerABTest) error {
		t.QuotaResumes = time.Time{} // YouTube answered: not waiting any more
		if v.Title != "" {
			t.LiveTitle = variant
		}
		if winner {
			t.WinnerApplied = now
		} else if t.Slots[i].Live.IsZero() {
			t.Slots[i].Live = now
		}
		return nil
	})
	return did, err
}

// superseded reports whether a later slot of t than i is due by now (and
// not skipped): slot i's time is over.
func superseded(t subjects.TrackerABTest, i int, now time.Time) bool {
	for _, next := range t.Slots[i+1:] {
		if !next.At.After(now) && (next.Skipped == "" || !next.Live.IsZero()) {
			return true
		}
	}
	return false
}

// DefaultQuotaResetMargin is how long after midnight Pacific time a slot
// held for YouTube's daily quota is tried again: clearly after the reset,
// whatever the clocks' skew.
const DefaultQuotaResetMargin = 5 * time.Minute

// QuotaResumes is when a call YouTube refused for the day's quota
// (dataapi.ErrQuota) may be tried again: QuotaResetMargin after the next
// midnight in America/Los_Angeles, when the Data API's daily quota resets
// (so 07:05 or 08:05 UTC, as daylight saving time has it).
func (s *Service) QuotaResumes(now time.Time) time.Time {
	p := now.In(s.pt)
	// Midnight always exists in Los Angeles (the clocks change at 2am).
	next := time.Date(p.Year(), p.Month(), p.Day()+1, 0, 0, 0, 0, s.pt)
	return next.Add(s.cfg.QuotaResetMargin).UTC()
}

// HoldForQuota records that test tid waits for YouTube's quota until
// QuotaResumes (its page says so) and returns that time. A deleted test
// holds nothing (zero time).
func (s *Service) HoldForQuota(ctx context.Context, tid string) (time.Time, error) {
	until := s.QuotaResumes(s.cfg.Now())
	_, err := update(ctx, s, subjects.TrackerABTestKey(tid), func(t *subjects.TrackerABTest) error {
		t.QuotaResumes = until
		return nil
	})
	if errors.Is(err, ErrNotFound) {
		return time.Time{}, nil
	}
	return until, err
}

// Now is the service's clock.
func (s *Service) Now() time.Time { return s.cfg.Now() }

func (s *Service) markSlot(ctx context.Context, tid string, i int, f func(*subjects.TrackerABSlot)) error {
	_, err := update(ctx, s, subjects.TrackerABTestKey(tid), func(t *subjects.TrackerABTest) error {
		f(&t.Slots[i])
		return nil
	})
	return err
}

// Windows are the spans each variant was live: from a slot's Live time to
// the next live slot's (or the test's end).
func Windows(t subjects.TrackerABTest) []abstats.Window {
	var out []abstats.Window
	for i, sl := range t.Slots {
		if sl.Live.IsZero() {
			continue
		}
		end := t.End
		for _, next := range t.Slots[i+1:] {
			if !next.Live.IsZero() {
				end = next.Live
				break
			}
		}
		if end.After(sl.Live) {
			out = append(out, abstats.Window{Variant: sl.Variant, Start: sl.Live, End: end})
		}
	}
	return out
}

// Conclude stores the wrap-up's result once: a test with a result keeps
// it (a replayed wrap-up computes nothing new).
func (s *Service) Conclude(ctx context.Context, tid string, compute func(t subjects.TrackerABTest) (subjects.TrackerABResult, error)) (subjects.TrackerABTest, error) {
	t, err := s.load(ctx, tid)
	if err != nil || t.Result != nil {
		return t, err
	}
	if t.Status == subjects.TrackerABDraft {
		return t, fmt.Errorf("%w: a draft has nothing to wrap up", ErrState)
	}
	r, err := compute(t)
	if err != nil {
		return t, err
	}
	now := s.cfg.Now().UTC()
	return update(ctx, s, subjects.TrackerABTestKey(tid), func(t *subjects.TrackerABTest) error {
		if t.Result == nil {
			t.Result = &r
		}
		t.Status = subjects.TrackerABDone
		if t.End.After(now) {
			t.End = now
		}
		return nil
	})
}

// MarkMailed records that the result mail was enqueued; false when it was
// already.
func (s *Service) MarkMailed(ctx context.Context, tid string) (bool, error) {
	first := false
	_, err := update(ctx, s, subjects.TrackerABTestKey(tid), func(t *subjects.TrackerABTest) error {
		first = t.Mailed.IsZero()
		if first {
			t.Mailed = s.cfg.Now().UTC()
		}
		return nil
	})
	return first, err
}

// RequestWinner enqueues the winner's apply (auto-apply), once.
func (s *Service) RequestWinner(ctx context.Context, t subjects.TrackerABTest) error {
	b, _ := json.Marshal(subjects.TrackerABApply{Test: t.ID, Slot: len(t.Slots)})
	_, err := s.js.Publish(ctx, subjects.TrackerABApplySubject(t.ID, len(t.Slots)), b, jetstream.WithMsgID("abtest-winner:"+t.ID))
	return err
}

// FailSlot records why slot i could not be applied (YouTube refused it
// for good), for the test's page; the slot's message goes to the DLQ.
func (s *Service) FailSlot(ctx context.Context, tid string, i int, reason string) error {
	t, err := s.load(ctx, tid)
	if errors.Is(err, ErrNotFound) || (err == nil && (i < 0 || i >= len(t.Slots))) {
		return nil
	}
	if err != nil {
		return err
	}
	return s.markSlot(ctx, tid, i, func(sl *subjects.TrackerABSlot) {
		if sl.Live.IsZero() && sl.Skipped == "" {
			sl.Skipped = "YouTube refused it: " + reason
		}
	})
}
