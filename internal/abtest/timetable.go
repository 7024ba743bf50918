package abtest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"image"
	_ "image/jpeg" // thumbnail headers
	_ "image/png"
	"io"
	"net/http"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"jetfleet/internal/blob"
	"jetfleet/internal/youtube/dataapi"
	"jetfleet/subjects"
)

// ThumbCheck is what an uploaded thumbnail is, or why it cannot be used.
type ThumbCheck struct {
	Uploaded      bool
	Type          string // image/jpeg or image/png
	Bytes         int64
	Width, Height int
	Problem       string
}

// CheckThumb reads the uploaded object's size and image header: JPEG or
// PNG, at most 2 MB (thumbnails.set's limit), at least 640 px wide
// (YouTube's minimum; 1280×720 recommended).
func (s *Service) CheckThumb(ctx context.Context, key string) ThumbCheck {
	info, err := s.cfg.Blobs.Stat(ctx, key)
	if errors.Is(err, blob.ErrNotFound) {
		return ThumbCheck{}
	}
	if err != nil {
		return ThumbCheck{Problem: "storage did not answer; try again"}
	}
	c := ThumbCheck{Uploaded: true, Bytes: info.Size}
	if info.Size > dataapi.MaxThumbnailBytes {
		c.Problem = fmt.Sprintf("%.1f MB: YouTube takes thumbnails up to 2 MB", float64(info.Size)/(1<<20))
		return c
	}
	r, _, err := s.cfg.Blobs.Get(ctx, key)
	if err != nil {
		c.Problem = "storage did not answer; try again"
		return c
	}
	defer r.Close()
	cfg, format, err := image.DecodeConfig(io.LimitReader(r, 1<<20))
	switch {
	case err != nil || (format != "jpeg" && format != "png"):
		c.Problem = "not a JPEG or PNG image (YouTube takes JPEG, PNG, GIF or BMP; we test with JPEG and PNG)"
	case cfg.Width < MinThumbWidth:
		c.Problem = fmt.Sprintf("%d×%d px: YouTube needs at least %d px wide (1280×720 recommended)", cfg.Width, cfg.Height, MinThumbWidth)
	}
	c.Type, c.Width, c.Height = "image/"+format, cfg.Width, cfg.Height
	return c
}

// spread is a test's offset within the first ten minutes.
func spread(tid string) time.Duration {
	h := fnv.New32a()
	h.Write([]byte(tid))
	return time.Duration(h.Sum32()%600) * time.Second
}

// Timetable lays out slots from start: one per rotation for the
// duration, the variant of slot i being (i + i/n) mod n, so each variant
// takes every position of a cycle in turn (with twice-a-day slots and two
// variants: AB BA AB …, never always A in the morning).
func Timetable(start time.Time, rotation, duration time.Duration, n int) []subjects.TrackerABSlot {
	count := int(duration / rotation)
	slots := make([]subjects.TrackerABSlot, count)
	for i := range slots {
		slots[i] = subjects.TrackerABSlot{At: start.Add(time.Duration(i) * rotation), Variant: (i + i/n) % n}
	}
	return slots
}

// duration is a test's length: days, or minutes with the demo's slots.
func duration(t subjects.TrackerABTest) time.Duration {
	if time.Duration(t.RotationSeconds)*time.Second == DemoRotation {
		return time.Duration(t.Days) * time.Minute
	}
	return time.Duration(t.Days) * 24 * time.Hour
}

// slotCost is the API units slot i will spend: thumbnails.set when its
// thumbnail differs from the one before, videos.list + videos.update when
// its title does.
func slotCost(t subjects.TrackerABTest, slots []subjects.TrackerABSlot, i int) int {
	prev := -1
	if i > 0 {
		prev = slots[i-1].Variant
	}
	v := slots[i].Variant
	if v == prev {
		return 0
	}
	cost := 0
	if t.Variants[v].ThumbKey != "" && t.Variants[v].ThumbBytes > 0 {
		cost += dataapi.CostThumbnailsSet
	}
	if t.Variants[v].Title != "" {
		cost += dataapi.CostVideosList + dataapi.CostVideosUpdate
	}
	return cost
}

// winnerCost is what applying the winner may cost on the last day.
func winnerCost(t subjects.TrackerABTest) int {
	if !t.AutoApply {
		return 0
	}
	return dataapi.CostThumbnailsSet + dataapi.CostVideosList + dataapi.CostVideosUpdate
}

// Day is the Pacific-time day of at (YouTube's quota resets at midnight
// PT), as yyyymmdd.
func (s *Service) Day(at time.Time) string { return at.In(s.pt).Format("20060102") }

// plan is the units the timetable needs per Pacific-time day.
func (s *Service) plan(t subjects.TrackerABTest) map[string]int {
	need := map[string]int{}
	for i := range t.Slots {
		if c := slotCost(t, t.Slots, i); c > 0 {
			need[s.Day(t.Slots[i].At)] += c
		}
	}
	if c := winnerCost(t); c > 0 {
		need[s.Day(t.End)] += c
	}
	return need
}

// Quota returns a day's units.
func (s *Service) Quota(ctx context.Context, day string) (subjects.TrackerABQuota, error) {
	var q subjects.TrackerABQuota
	_, err := s.get(ctx, subjects.TrackerABQuotaKey(day), &q)
	if errors.Is(err, ErrNotFound) {
		return q, nil
	}
	return q, err
}

// changeQuota applies f to a day's record, creating it when missing.
func (s *Service) changeQuota(ctx context.Context, day string, f func(*subjects.TrackerABQuota) error) error {
	key := subjects.TrackerABQuotaKey(day)
	for {
		_, err := update(ctx, s, key, f)
		if !errors.Is(err, ErrNotFound) {
			return err
		}
		var q subjects.TrackerABQuota
		if err := f(&q); err != nil {
			return err
		}
		b, _ := json.Marshal(q)
		// Kept a week past its day, then gone.
		_, err = s.kv.Create(ctx, key, b, jetstream.KeyTTL(8*24*time.Hour))
		if err == nil || !errors.Is(err, jetstream.ErrKeyExists) {
			return err
		}
	}
}

// reserve books the plan's units day by day, all or nothing: a day that
// cannot take its share refuses the whole timetable, saying why.
func (s *Service) reserve(ctx context.Context, need map[string]int) error {
	done := map[string]int{}
	for day, units := range need {
		err := s.changeQuota(ctx, day, func(q *subjects.TrackerABQuota) error {
			if left := s.cfg.QuotaPerDay - max(q.Reserved, q.Spent); units > left {
				return fmt.Errorf("%w: this test needs %d YouTube API units on %s (Pacific time, when the daily quota resets) but only %d of the project's %d are left that day; try fewer variants, a slower rotation or another start",
					ErrQuota, units, day[:4]+"-"+day[4:6]+"-"+day[6:], max(left, 0), s.cfg.QuotaPerDay)
			}
			q.Reserved += units
			return nil
		})
		if err != nil {
			s.release(ctx, done)
			return err
		}
		done[day] = units
	}
	return nil
}

func (s *Service) release(ctx context.Context, units map[string]int) {
	for day, n := range units {
		if err := s.changeQuota(ctx, day, func(q *subjects.TrackerABQuota) error {
			q.Reserved = max(q.Reserved-n, 0)
			return nil
		}); err != nil {
			s.cfg.Log.Warn("release quota", "day", day, "err", err)
		}
	}
}

// unbook releases the units booked for the slots of t that will not run
// (pending ones when pending, or the one slot only), and the winner's
// when it will not be applied.
func (s *Service) unbook(ctx context.Context, t subjects.TrackerABTest, only int, winner bool) {
	units := map[string]int{}
	for i, sl := range t.Slots {
		if (only >= 0 && i != only) || (only < 0 && (!sl.Live.IsZero() || sl.Skipped != "")) {
			continue
		}
		if c := slotCost(t, t.Slots, i); c > 0 {
			units[s.Day(sl.At)] += c
		}
	}
	if c := winnerCost(t); winner && c > 0 && t.WinnerApplied.IsZero() {
		units[s.Day(t.End)] += c
	}
	s.release(ctx, units)
}

// Spend records units spent now (calls made), whatever was reserved.
func (s *Service) Spend(ctx context.Context, units int) {
	if err := s.changeQuota(ctx, s.Day(s.cfg.Now()), func(q *subjects.TrackerABQuota) error {
		q.Spent += units
		return nil
	}); err != nil {
		s.cfg.Log.Warn("count quota spent", "units", units, "err", err)
	}
}

// Start checks a draft's uploads, books the quota its timetable needs and
// writes the whole timetable as one-shot schedules. hold keeps the video
// sampled hourly until the test ends (the tracker's scheduling).
func (s *Service) Start(ctx context.Context, uid, tid string, hold func(ctx context.Context, vid string, until time.Time) error) (subjects.TrackerABTest, error) {
	t, err := s.Test(ctx, uid, tid)
	if err != nil {
		return t, err
	}
	if t.Status != subjects.TrackerABDraft {
		return t, fmt.Errorf("start: %w", ErrState)
	}
	if _, _, err := s.API(ctx, uid); err != nil {
		return t, err
	}
	p := Problems{}
	thumbs := 0
	for i, v := range t.Variants {
		c := s.CheckThumb(ctx, v.ThumbKey)
		if !c.Uploaded {
			continue
		}
		thumbs++
		if c.Problem != "" {
			p[fmt.Sprintf("thumb%d", i)] = c.Problem
			continue
		}
		t.Variants[i].ThumbType, t.Variants[i].ThumbBytes, t.Variants[i].ThumbWidth, t.Variants[i].ThumbHeight = c.Type, c.Bytes, c.Width, c.Height
	}
	switch {
	case thumbs > 0 && thumbs < len(t.Variants):
		p["thumbs"] = "upload a thumbnail for every variant, or for none (a title-only test)"
	case thumbs == 0 && t.Variants[0].Title == "":
		p["thumbs"] = "a variant is a thumbnail and/or a title: upload thumbnails or go back and give titles"
	}
	if len(p) > 0 {
		return t, p
	}
	if thumbs == 0 {
		for i := range t.Variants {
			t.Variants[i].ThumbKey = ""
		}
	}
	rotation := time.Duration(t.RotationSeconds) * time.Second
	now := s.cfg.Now().UTC()
	// Spread the changes: each test's slots are offset by up to ten
	// minutes (from its id), so tests started in the same minute do not
	// all call YouTube at the same moment of every rotation. The demo's
	// one-minute slots start at once.
	t.Start = now.Truncate(time.Second).Add(5 * time.Second)
	if rotation != DemoRotation {
		t.Start = t.Start.Add(spread(t.ID))
	}
	t.End = t.Start.Add(duration(t))
	t.Slots = Timetable(t.Start, rotation, duration(t), len(t.Variants))
	need := s.plan(t)
	if err := s.reserve(ctx, need); err != nil {
		return t, err
	}
	if hold != nil {
		if err := hold(ctx, t.VideoID, t.End.Add(2*time.Hour)); err != nil {
			s.release(ctx, need)
			return t, err
		}
	}
	t, err = update(ctx, s, subjects.TrackerABTestKey(tid), func(cur *subjects.TrackerABTest) error {
		if cur.Status != subjects.TrackerABDraft {
			return fmt.Errorf("start: %w", ErrState)
		}
		cur.Variants, cur.Start, cur.End, cur.Slots = t.Variants, t.Start, t.End, t.Slots
		cur.Status, cur.StatusReason = subjects.TrackerABRunning, ""
		return nil
	})
	if err != nil {
		s.release(ctx, need)
		return t, err
	}
	// The record says running before the schedules exist; a crash here
	// leaves a test that Resume schedules again (same message ids).
	return t, s.schedule(ctx, t)
}

// schedule publishes the one-shot schedules of every slot still ahead and
// of the wrap-up. Message ids make a repeat harmless.
func (s *Service) schedule(ctx context.Context, t subjects.TrackerABTest) error {
	now := s.cfg.Now()
	for i, sl := range t.Slots {
		if !sl.Live.IsZero() || sl.Skipped != "" {
			continue
		}
		at := sl.At
		if at.Before(now.Add(time.Second)) {
			at = now.Add(time.Second)
		}
		b, _ := json.Marshal(subjects.TrackerABApply{Test: t.ID, Slot: i})
		if _, err := s.js.Publish(ctx, subjects.TrackerABSchedule(t.ID, fmt.Sprint(i)), b,
			jetstream.WithScheduleAt(at), jetstream.WithScheduleTarget(subjects.TrackerABApplySubject(t.ID, i)),
			jetstream.WithMsgID(fmt.Sprintf("abtest-slot:%s:%d:%d", t.ID, i, at.Unix()))); err != nil {
			return fmt.Errorf("schedule slot %d of test %s: %w", i, t.ID, err)
		}
	}
	end := t.End
	if end.Before(now.Add(time.Second)) {
		end = now.Add(time.Second)
	}
	b, _ := json.Marshal(subjects.TrackerABWrapUpMsg{Test: t.ID})
	if _, err := s.js.Publish(ctx, subjects.TrackerABSchedule(t.ID, "end"), b,
		jetstream.WithScheduleAt(end), jetstream.WithScheduleTarget(subjects.TrackerABWrapUpSubject(t.ID)),
		jetstream.WithMsgID(fmt.Sprintf("abtest-end:%s:%d", t.ID, end.Unix()))); err != nil {
		return fmt.Errorf("schedule wrap-up of test %s: %w", t.ID, err)
	}
	return nil
}

// cancelSchedules removes what has not fired yet.
func (s *Service) cancelSchedules(ctx context.Context, tid string) error {
	st, err := s.js.Stream(ctx, subjects.TrackerABTestsStream)
	if err != nil {
		return err
	}
	if err := st.Purge(ctx, jetstream.WithPurgeSubject(subjects.TrackerABScheduleAll(tid))); err != nil {
		return fmt.Errorf("cancel schedules of test %s: %w", tid, err)
	}
	return nil
}

// Pause stops a running test from changing the video; slots that fire
// while paused are skipped.
func (s *Service) Pause(ctx context.Context, uid, tid string) error {
	_, err := s.change(ctx, uid, tid, func(t *subjects.TrackerABTest) error {
		if t.Status != subjects.TrackerABRunning {
			return ErrState
		}
		t.Status, t.StatusReason = subjects.TrackerABPaused, "paused by you"
		return nil
	})
	return err
}

// Resume restarts a paused test: the slots still ahead run as planned
// (those that fired meanwhile stay skipped).
func (s *Service) Resume(ctx context.Context, uid, tid string) error {
	if _, _, err := s.API(ctx, uid); err != nil {
		return err
	}
	t, err := s.change(ctx, uid, tid, func(t *subjects.TrackerABTest) error {
		if t.Status != subjects.TrackerABPaused {
			return ErrState
		}
		if !t.End.After(s.cfg.Now()) {
			return fmt.Errorf("%w: the test's time is over; stop it to see the result", ErrState)
		}
		t.Status, t.StatusReason = subjects.TrackerABRunning, ""
		return nil
	})
	if err != nil {
		return err
	}
	return s.schedule(ctx, t)
}

// Stop ends a running or paused test now: the wrap-up runs on what ran.
func (s *Service) Stop(ctx context.Context, uid, tid string) error {
	before, err := s.Test(ctx, uid, tid)
	if err != nil {
		return err
	}
	t, err := s.change(ctx, uid, tid, func(t *subjects.TrackerABTest) error {
		if t.Status != subjects.TrackerABRunning && t.Status != subjects.TrackerABPaused {
			return ErrState
		}
		now := s.cfg.Now().UTC()
		t.Status, t.StatusReason = subjects.TrackerABWrapUp, "stopped early by you"
		if t.End.After(now) {
			t.End = now
		}
		for i := range t.Slots {
			if t.Slots[i].Live.IsZero() && t.Slots[i].Skipped == "" && t.Slots[i].At.After(now) {
				t.Slots[i].Skipped = "stopped early"
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	if err := s.cancelSchedules(ctx, tid); err != nil {
		return err
	}
	// The slots that will not run give their units back.
	for i, sl := range t.Slots {
		if sl.Skipped == "stopped early" && before.Slots[i].Skipped == "" {
			s.unbook(ctx, before, i, false)
		}
	}
	b, _ := json.Marshal(subjects.TrackerABWrapUpMsg{Test: t.ID})
	_, err = s.js.Publish(ctx, subjects.TrackerABWrapUpSubject(t.ID), b, jetstream.WithMsgID("abtest-stop:"+t.ID))
	return err
}

// Delete removes a test, its schedules and its uploaded thumbnails.
func (s *Service) Delete(ctx context.Context, uid, tid string) error {
	t, err := s.Test(ctx, uid, tid)
	if err != nil {
		return err
	}
	if err := s.cancelSchedules(ctx, tid); err != nil {
		return err
	}
	if t.Status == subjects.TrackerABRunning || t.Status == subjects.TrackerABPaused {
		s.unbook(ctx, t, -1, true)
	}
	for _, v := range t.Variants {
		if v.ThumbKey == "" {
			continue
		}
		if err := s.cfg.Blobs.Delete(ctx, v.ThumbKey); err != nil {
			return fmt.Errorf("delete thumbnail of test %s: %w", tid, err)
		}
	}
	if err := s.kv.Purge(ctx, subjects.TrackerABTestKey(tid)); err != nil {
		return fmt.Errorf("delete test %s: %w", tid, err)
	}
	return s.kv.Purge(ctx, subjects.TrackerABUserTestKey(uid, tid))
}

func (s *Service) change(ctx context.Context, uid, tid string, f func(*subjects.TrackerABTest) error) (subjects.TrackerABTest, error) {
	if _, err := s.Test(ctx, uid, tid); err != nil {
		return subjects.TrackerABTest{}, err
	}
	return update(ctx, s, subjects.TrackerABTestKey(tid), f)
}

// ErrThumbnailType: an uploaded thumbnail's bytes are not a JPEG or PNG
// (whatever type it was stored with); it is not sent to YouTube.
var ErrThumbnailType = errors.New("thumbnail is not a JPEG or PNG image")

// readThumb reads variant v's uploaded thumbnail and its type, sniffed
// from the bytes: the stored type is whatever the uploader sent, and the
// object may have been replaced since the start checked it.
func (s *Service) readThumb(ctx context.Context, key string) ([]byte, string, error) {
	r, _, err := s.cfg.Blobs.Get(ctx, key)
	if err != nil {
		return nil, "", err
	}
	defer r.Close()
	var b bytes.Buffer
	if _, err := io.Copy(&b, io.LimitReader(r, dataapi.MaxThumbnailBytes+1)); err != nil {
		return nil, "", err
	}
	ct := http.DetectContentType(b.Bytes())
	if ct != "image/jpeg" && ct != "image/png" {
		return nil, "", fmt.Errorf("%w: %s is %s", ErrThumbnailType, key, ct)
	}
	return b.Bytes(), ct, nil
}
