package tracking

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"jetfleet/subjects"
)

// PersonalData is what the Tracker keeps about one user, for a GDPR export:
// the channels and videos they track and the free-plan credits they spent.
// Records of channels and videos are shared by everyone tracking them and
// are about YouTube, not the person; only their ids and titles are shown.
type PersonalData struct {
	Channels []Tracked `json:"channels"`
	Videos   []Tracked `json:"videos"`
	Credits  []Credit  `json:"credits"`
	// HiRes are the videos the user chose 2-minute sampling for, while
	// that lasts.
	HiRes []HiResChoice `json:"high_resolution"`
}

// HiResChoice is one video sampled at high resolution for the user.
type HiResChoice struct {
	VideoID string    `json:"video_id"`
	Since   time.Time `json:"since"`
	Until   time.Time `json:"until"`
}

// Tracked is one channel or video a user tracks, since when.
type Tracked struct {
	ID    string    `json:"id"`
	Title string    `json:"title,omitempty"`
	Since time.Time `json:"since"`
}

// Credit is one free-plan credit spent: a video tracked outside the user's
// channels in a month (yyyymm).
type Credit struct {
	Month   string    `json:"month"`
	VideoID string    `json:"video_id"`
	Spent   time.Time `json:"spent"`
}

// PersonalDataOf gathers the Tracker's data of user uid.
func (s *Store) PersonalDataOf(ctx context.Context, uid string) (PersonalData, error) {
	d := PersonalData{Channels: []Tracked{}, Videos: []Tracked{}, Credits: []Credit{}, HiRes: []HiResChoice{}}
	if err := checkID("user", uid); err != nil {
		return d, err
	}
	var err error
	if d.Channels, err = s.tracked(ctx, subjects.TrackerUserChannels(uid), func(ctx context.Context, id string) (string, error) {
		c, err := s.Channel(ctx, id)
		return c.Title, err
	}); err != nil {
		return d, err
	}
	if d.Videos, err = s.tracked(ctx, subjects.TrackerUserVideos(uid), func(ctx context.Context, id string) (string, error) {
		v, err := s.Video(ctx, id)
		return v.Title, err
	}); err != nil {
		return d, err
	}
	keys, err := s.fullKeys(ctx, subjects.TrackerUserAllCredits(uid))
	if err != nil {
		return d, err
	}
	for _, k := range keys {
		parts := strings.Split(k, ".") // user.<uid>.credit.<month>.<vid>
		var l subjects.TrackerLink
		if _, err := s.get(ctx, k, &l); errors.Is(err, ErrNotFound) {
			continue
		} else if err != nil {
			return d, err
		}
		d.Credits = append(d.Credits, Credit{Month: parts[3], VideoID: parts[4], Spent: l.Since})
	}
	hires, err := s.UserHiRes(ctx, uid)
	if err != nil {
		return d, err
	}
	for _, vid := range hires {
		if rec, ok, err := s.HiRes(ctx, uid, vid); err != nil {
			return d, err
		} else if ok {
			d.HiRes = append(d.HiRes, HiResChoice{VideoID: vid, Since: rec.Since, Until: rec.Until})
		}
	}
	return d, nil
}

// tracked lists the user mappings matching filter with when each began
// and the title of what they point at.
func (s *Store) tracked(ctx context.Context, filter string, title func(context.Context, string) (string, error)) ([]Tracked, error) {
	keys, err := s.fullKeys(ctx, filter)
	if err != nil {
		return nil, err
	}
	out := []Tracked{}
	for _, k := range keys {
		var l subjects.TrackerLink
		if _, err := s.get(ctx, k, &l); errors.Is(err, ErrNotFound) {
			continue
		} else if err != nil {
			return nil, err
		}
		t := Tracked{ID: subjects.LastToken(k), Since: l.Since}
		if t.Title, err = title(ctx, t.ID); err != nil && !errors.Is(err, ErrNotFound) {
			return nil, err
		}
		out = append(out, t)
	}
	return out, nil
}

// ForgetUser removes every Tracker mapping of user uid for a GDPR deletion:
// each channel and video is untracked as if the user did it (so what nobody
// tracks any more stops being sampled), and their credits and plan counts
// go. Running it again finds nothing left.
func (s *Store) ForgetUser(ctx context.Context, uid string) error {
	if err := checkID("user", uid); err != nil {
		return err
	}
	chans, err := s.keys(ctx, subjects.TrackerUserChannels(uid))
	if err != nil {
		return err
	}
	for _, cid := range chans {
		if err := s.UntrackChannel(ctx, uid, cid); err != nil {
			return err
		}
	}
	vids, err := s.keys(ctx, subjects.TrackerUserVideos(uid))
	if err != nil {
		return err
	}
	for _, vid := range vids {
		if err := s.UntrackVideo(ctx, uid, vid); err != nil {
			return err
		}
	}
	credits, err := s.fullKeys(ctx, subjects.TrackerUserAllCredits(uid))
	if err != nil {
		return err
	}
	for _, k := range credits {
		if err := s.kv.Delete(ctx, k); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
			return fmt.Errorf("forget credit %s: %w", k, err)
		}
	}
	hires, err := s.fullKeys(ctx, subjects.TrackerUserHiRes(uid))
	if err != nil {
		return err
	}
	digest, err := s.fullKeys(ctx, subjects.TrackerUserDigest(uid))
	if err != nil {
		return err
	}
	for _, k := range append(hires, digest...) {
		if err := s.kv.Delete(ctx, k); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
			return fmt.Errorf("forget %s: %w", k, err)
		}
	}
	// The plan's counts last: what they count is gone by now.
	claims, err := s.fullKeys(ctx, subjects.TrackerUserAllClaims(uid))
	if err != nil {
		return err
	}
	for _, k := range claims {
		if err := s.kv.Delete(ctx, k); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
			return fmt.Errorf("forget plan counts %s: %w", k, err)
		}
	}
	return nil
}

// fullKeys lists every live key matching filter.
func (s *Store) fullKeys(ctx context.Context, filter string) ([]string, error) {
	l, err := s.kv.ListKeysFiltered(ctx, filter)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", filter, err)
	}
	var out []string
	for k := range l.Keys() {
		out = append(out, k)
	}
	return out, nil
}
