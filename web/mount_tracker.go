package web

import (
	"context"
	"errors"
	"net/http"

	"jetfleet/internal/accounts"
	"jetfleet/internal/tracking"
	"jetfleet/internal/youtube"
	"jetfleet/web/tracker"
)

// mountTracker serves the Tracker's pages under /tracker (signed in).
func mountTracker(ctx context.Context, s *Server, mux *http.ServeMux) error {
	store, err := tracking.Open(ctx, s.deps.JS, tracking.Options{HiResPerUser: s.cfg.TrackerHiResPerUser})
	if err != nil {
		return err
	}
	users, err := accounts.Open(ctx, s.deps.JS, accounts.Config{})
	if err != nil {
		return err
	}
	yt := s.deps.YouTube
	if yt == nil {
		if yt, err = youtube.New(youtube.Config{}); err != nil {
			return err
		}
	}
	log := s.deps.Log.With("product", "tracker")
	var plans *tracker.Plans
	if s.deps.Payments != nil {
		plans = &tracker.Plans{Accounts: users, Payments: s.deps.Payments, Log: log}
	}
	h, err := tracker.New(tracker.Deps{
		JS: s.deps.JS, Store: store, YouTube: yt, ClickHouse: s.deps.ClickHouse, Blobs: s.deps.BlobStore,
		Premium: func(ctx context.Context, uid string) (bool, error) {
			u, err := users.User(ctx, uid)
			if errors.Is(err, accounts.ErrNotFound) {
				return false, nil
			}
			return u.Premium, err
		},
		Plans: plans, BaseURL: s.cfg.BaseURL, Tokens: s.deps.Tokens, Demo: s.cfg.Demo, ABTests: s.deps.ABTests,
		Log: s.deps.Log.With("product", "tracker"),
	})
	if err != nil {
		return err
	}
	h.Routes(mux, s.signedIn)
	h.APIRoutes(s.api)
	return nil
}
