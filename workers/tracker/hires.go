package tracker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"

	"github.com/nats-io/nats.go/jetstream"

	"jetfleet/internal/accounts"
	"jetfleet/internal/tracking"
	"jetfleet/subjects"
	"jetfleet/workers/consume"
)

// HiRes handles the high-resolution tick (subjects.TrackerVideoHiResTick,
// every 2 minutes): one TRACK job per video that a premium user chose
// high-resolution sampling for, with the message id hires:id:slot, so a
// tick handled twice enqueues nothing twice and the video role writes one
// sample per slot. The samples go to video_samples beside the hourly ones.
//
// The choice stops by itself: its key expires with the video's first 24
// hours, and a user no longer premium has theirs dropped here, at the
// next tick after premium ends.
type HiRes struct {
	ticks *Ticks
	store *tracking.Store
	users *accounts.Store
	log   *slog.Logger
}

// NewHiRes returns the high-resolution tick handler; it enqueues through
// ticks.
func NewHiRes(ticks *Ticks, store *tracking.Store, users *accounts.Store, log *slog.Logger) *HiRes {
	return &HiRes{ticks: ticks, store: store, users: users, log: log}
}

// Handle enqueues the jobs of one high-resolution tick.
func (h *HiRes) Handle(ctx context.Context, msg jetstream.Msg) error {
	md, err := msg.Metadata()
	if err != nil {
		return consume.Permanent(fmt.Errorf("tick without metadata: %w", err))
	}
	if name := subjects.ScheduleName(msg.Subject()); name != subjects.TrackerVideoHiResTick {
		return consume.Permanentf("tick on %s: not the high-resolution schedule", msg.Subject())
	}
	slot := md.Timestamp.Truncate(h.ticks.slots.HiRes).UTC()
	live, err := h.store.LiveHiRes(ctx)
	if err != nil {
		return fmt.Errorf("list high-resolution videos: %w", err)
	}
	premium := map[string]bool{} // per user, once per tick
	var ids []string
	for vid, uids := range live {
		keep := false
		for _, uid := range uids {
			ok, seen := premium[uid]
			if !seen {
				if ok, err = h.isPremium(ctx, uid); err != nil {
					return err
				}
				premium[uid] = ok
			}
			if ok {
				keep = true
				continue
			}
			// Premium ended: the choice goes with it. Dropped, not
			// skipped, so the page stops saying it is on.
			if _, err := h.store.SetHiRes(ctx, uid, vid, false, false); err != nil {
				return err
			}
			h.log.Info("high resolution stopped: premium ended", "video", vid, "user", uid)
		}
		if keep {
			ids = append(ids, vid)
		}
	}
	slices.Sort(ids)
	if err := h.ticks.enqueue(ctx, msg, subjects.TrackerKindHiRes, ids, slot); err != nil {
		return err
	}
	h.log.Debug("high-resolution tick enqueued", "jobs", len(ids), "slot", slot)
	return nil
}

func (h *HiRes) isPremium(ctx context.Context, uid string) (bool, error) {
	u, err := h.users.User(ctx, uid)
	if errors.Is(err, accounts.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("plan of %s: %w", uid, err)
	}
	return u.Premium, nil
}
