package main

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"github.com/nats-io/nats.go/jetstream"

	"jetfleet/internal/abtest"
	"jetfleet/internal/blob"
	"jetfleet/internal/google/oauth"
	"jetfleet/internal/sealed"
	"jetfleet/workers/abtests"
	"jetfleet/workers/consume"
)

// newABTests builds the A/B test domain the edge and the roles share.
// Without GOOGLE_CLIENT_ID channels cannot be connected (the pages say
// so); everything else still works.
func newABTests(ctx context.Context, cfg *config, js jetstream.JetStream, tokens *sealed.Box, blobs blob.Store, log *slog.Logger) (*abtest.Service, error) {
	var oc *oauth.Client
	if cfg.GoogleClientID != "" {
		var err error
		oc, err = oauth.New(oauth.Config{
			ClientID: cfg.GoogleClientID, ClientSecret: cfg.GoogleClientSecret,
			AuthBase: cfg.GoogleOAuthURL, TokenBase: cfg.GoogleTokenURL,
			RedirectURL: strings.TrimSuffix(cfg.BaseURL, "/") + "/tracker/youtube/callback",
		})
		if err != nil {
			return nil, fmt.Errorf("GOOGLE_CLIENT_ID: %w", err)
		}
	}
	return abtest.Open(ctx, js, abtest.Config{
		OAuth: oc, APIBase: cfg.GoogleAPIURL, Tokens: tokens, Blobs: blobs,
		QuotaPerDay: cfg.YouTubeQuotaPerDay, Demo: cfg.ABTestDemo, Log: log,
	})
}

// abtestsConfig is the A/B test roles' configuration.
func abtestsConfig(cfg *config) abtests.Config {
	return abtests.Config{
		BaseURL: cfg.BaseURL,
		Service: func(ctx context.Context, d consume.Deps) (*abtest.Service, error) {
			return newABTests(ctx, cfg, d.JS, d.Tokens, d.Blobs, d.Log.With("product", "abtests"))
		},
	}
}
