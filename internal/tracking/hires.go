package tracking

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"jetfleet/subjects"
)

// High-resolution tracking (seed 000's self-review: "down to 1–2
// minutes"): a premium user may have a video sampled every
// subjects.TrackerHiResEvery during its first subjects.TrackerHiResWindow.
// The choice is one KV key per video and user with a per-key TTL ending
// with that window, so it stops by itself; the tracker-hires role drops
// the keys of users who are no longer premium.

// Errors of SetHiRes.
var (
	ErrPremiumOnly = errors.New("high-resolution tracking is a premium feature")
	ErrHiResOver   = errors.New("the video is past its first 24 hours")
	// ErrHiResLimit: the user has Options.HiResPerUser videos sampled at
	// high resolution already.
	ErrHiResLimit = errors.New("too many videos sampled at high resolution at once")
)

// DefaultHiResPerUser is the default cap on the videos one premium user
// has sampled at high resolution at once. A video at high resolution costs
// one YouTube request a minute; 50 of them cost 0.8 requests/s, so the
// default YOUTUBE_RATE (200/s, about 12,000 such videos) serves some 240
// premium users at the cap and no single user can take a large share of it.
const DefaultHiResPerUser = 50

// HiResPerUser is the cap on the videos one user has sampled at high
// resolution at once.
func (s *Store) HiResPerUser() int { return s.o.HiResPerUser }

// hiResClaims counts the videos uid has at high resolution against the
// cap. It starts empty: seeding it from the choices would count those of
// racing requests (written before they are counted) as if they were
// settled; choices made before the cap existed end within their day.
func (s *Store) hiResClaims(uid string) claimSet {
	return claimSet{key: subjects.TrackerUserHiResClaimsKey(uid), list: func(context.Context) ([]string, error) {
		return nil, nil
	}}
}

// claimHiRes counts vid among uid's high-resolution videos, or returns
// ErrHiResLimit. Its choice is written before (so a race between two
// requests is settled here, by compare-and-set on the count): a video
// whose choice is gone (turned off, its window over, dropped by the tick)
// no longer counts and leaves the record.
func (s *Store) claimHiRes(ctx context.Context, uid, vid string) error {
	_, err := s.changeClaims(ctx, s.hiResClaims(uid), func(ids []string) ([]string, error) {
		live := make([]string, 0, len(ids)+1)
		for _, id := range ids {
			ok, err := s.exists(ctx, subjects.TrackerHiResKey(id, uid))
			if err != nil {
				return nil, err
			}
			if ok || id == vid {
				live = append(live, id)
			}
		}
		switch {
		case slices.Contains(live, vid):
		case len(live) >= s.o.HiResPerUser:
			return nil, fmt.Errorf("%w (%d)", ErrHiResLimit, s.o.HiResPerUser)
		default:
			live = append(live, vid)
		}
		if slices.Equal(live, ids) {
			return nil, nil
		}
		return live, nil
	})
	return err
}

// HiResUntil is when video v's high-resolution window ends: 24 hours after
// it was published (when it was first seen if YouTube gave no date).
func HiResUntil(v subjects.TrackerVideo) time.Time {
	anchor := v.PublishedAt
	if anchor.IsZero() {
		anchor = v.FirstSeen
	}
	return anchor.Add(subjects.TrackerHiResWindow).UTC()
}

// SetHiRes turns high-resolution sampling of vid on or off for uid. The
// caller has checked that uid may see vid. Turning it on needs premium and
// a video inside its first 24 hours; doing it twice changes nothing.
func (s *Store) SetHiRes(ctx context.Context, uid, vid string, premium, on bool) (subjects.TrackerHiRes, error) {
	if err := errors.Join(checkID("user", uid), checkID("video", vid)); err != nil {
		return subjects.TrackerHiRes{}, err
	}
	key := subjects.TrackerHiResKey(vid, uid)
	if !on {
		if err := s.kv.Delete(ctx, key); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
			return subjects.TrackerHiRes{}, fmt.Errorf("high resolution off for %s: %w", vid, err)
		}
		if err := s.release(ctx, s.hiResClaims(uid), vid); err != nil {
			return subjects.TrackerHiRes{}, fmt.Errorf("high resolution off for %s: %w", vid, err)
		}
		return subjects.TrackerHiRes{}, nil
	}
	if !premium {
		return subjects.TrackerHiRes{}, ErrPremiumOnly
	}
	v, err := s.Video(ctx, vid)
	if err != nil {
		return subjects.TrackerHiRes{}, err
	}
	now := s.o.Now().UTC()
	rec := subjects.TrackerHiRes{Since: now, Until: HiResUntil(v)}
	ttl := rec.Until.Sub(now).Truncate(time.Second)
	if ttl < time.Second {
		return subjects.TrackerHiRes{}, fmt.Errorf("%w (its window ended %s)", ErrHiResOver, rec.Until.Format("2006-01-02 15:04 UTC"))
	}
	err = s.create(ctx, key, rec, ttl)
	if errors.Is(err, jetstream.ErrKeyExists) {
		rec, _, err = s.HiRes(ctx, uid, vid)
		return rec, err
	}
	if err != nil {
		return subjects.TrackerHiRes{}, fmt.Errorf("high resolution on for %s: %w", vid, err)
	}
	// Counted after the choice is written, and taken back when over the
	// cap: at worst a refused video is sampled by one tick in between.
	if err := s.claimHiRes(ctx, uid, vid); err != nil {
		if derr := s.kv.Delete(ctx, key); derr != nil {
			return subjects.TrackerHiRes{}, errors.Join(err, fmt.Errorf("take back high resolution of %s: %w", vid, derr))
		}
		return subjects.TrackerHiRes{}, err
	}
	return rec, nil
}

// HiRes returns uid's high-resolution choice for vid; ok is false when
// there is none (never chosen, turned off, or its window is over).
func (s *Store) HiRes(ctx context.Context, uid, vid string) (rec subjects.TrackerHiRes, ok bool, err error) {
	if checkID("user", uid) != nil || checkID("video", vid) != nil {
		return rec, false, nil
	}
	_, err = s.get(ctx, subjects.TrackerHiResKey(vid, uid), &rec)
	if errors.Is(err, ErrNotFound) {
		return rec, false, nil
	}
	return rec, err == nil, err
}

// LiveHiRes lists the videos in a high-resolution window with the users
// who chose it for each.
func (s *Store) LiveHiRes(ctx context.Context) (map[string][]string, error) {
	keys, err := s.fullKeys(ctx, subjects.TrackerAllHiRes)
	if err != nil {
		return nil, err
	}
	out := map[string][]string{}
	for _, k := range keys {
		parts := strings.Split(k, ".") // hires.<vid>.<uid>
		if len(parts) == 3 {
			out[parts[1]] = append(out[parts[1]], parts[2])
		}
	}
	for _, uids := range out {
		slices.Sort(uids)
	}
	return out, nil
}

// UserHiRes lists the videos uid chose high resolution for.
func (s *Store) UserHiRes(ctx context.Context, uid string) ([]string, error) {
	if err := checkID("user", uid); err != nil {
		return nil, err
	}
	keys, err := s.fullKeys(ctx, subjects.TrackerUserHiRes(uid))
	if err != nil {
		return nil, err
	}
	var out []string
	for _, k := range keys {
		if parts := strings.Split(k, "."); len(parts) == 3 {
			out = append(out, parts[1])
		}
	}
	return out, nil
}

// dropHiRes removes every high-resolution choice of video vid (it is no
// longer tracked).
func (s *Store) dropHiRes(ctx context.Context, vid string) error {
	keys, err := s.fullKeys(ctx, subjects.TrackerVideoHiRes(vid))
	if err != nil {
		return err
	}
	for _, k := range keys {
		if err := s.kv.Delete(ctx, k); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
			return fmt.Errorf("drop %s: %w", k, err)
		}
	}
	return nil
}
