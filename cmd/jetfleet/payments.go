package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"jetfleet/internal/payments"
	"jetfleet/internal/payments/stripetest"
)

// openPayments builds the Stripe client of event tickets. Without
// STRIPE_SECRET_KEY an edge sells free tickets only (nil client), while
// `jetfleet dev` (standIn) starts the local Stripe stand-in in-process so
// Connect onboarding and Checkout work on a laptop; close stops it.
func openPayments(cfg *config, standIn bool, log *slog.Logger) (client *payments.Client, close func(), err error) {
	close = func() {}
	if cfg.StripeSecretKey == "" {
		if !standIn {
			log.Info("STRIPE_SECRET_KEY not set: paid event tickets are disabled")
			return nil, close, nil
		}
		// Webhooks are signed with a secret of this install, not a constant
		// anyone could use to forge a payment.
		whsec, err := dataDirSecret(cfg.DataDir, "stripe-webhook.secret")
		if err != nil {
			return nil, close, err
		}
		srv, err := stripetest.Start(stripetest.Config{
			WebhookURL:    strings.TrimRight(cfg.BaseURL, "/") + "/api/events/stripe/webhook",
			WebhookSecret: "whsec_" + whsec,
		})
		if err != nil {
			return nil, close, err
		}
		cfg.StripeSecretKey, cfg.StripeWebhookSecret, cfg.StripeAPIBase = srv.SecretKey(), srv.WebhookSecret(), srv.URL
		log.Info("no STRIPE_SECRET_KEY: local Stripe stand-in (test mode) running", "url", srv.URL)
		// Admin verbs on the same data dir (`jetfleet users premium --off`
		// cancels the subscription) find the stand-in through this file.
		standInFile := filepath.Join(cfg.DataDir, stripeStandInFile)
		b, _ := json.Marshal(stripeStandIn{APIBase: srv.URL, SecretKey: srv.SecretKey(), WebhookSecret: srv.WebhookSecret()})
		if err := os.WriteFile(standInFile, b, 0o600); err != nil {
			srv.Close()
			return nil, close, fmt.Errorf("keep the Stripe stand-in's address: %w", err)
		}
		close = func() {
			srv.Close()
			os.Remove(standInFile)
		}
	}
	client, err = payments.New(payments.Config{SecretKey: cfg.StripeSecretKey, WebhookSecret: cfg.StripeWebhookSecret, APIBase: cfg.StripeAPIBase})
	if err != nil {
		close()
		return nil, func() {}, err
	}
	return client, close, nil
}

// stripeStandInFile, in DATA_DIR, says where `jetfleet dev`'s Stripe
// stand-in listens while dev runs.
const stripeStandInFile = "stripe-standin.json"

type stripeStandIn struct {
	APIBase       string `json:"api_base"`
	SecretKey     string `json:"secret_key"`
	WebhookSecret string `json:"webhook_secret"`
}

// adminPayments is the Stripe client of the admin verbs: STRIPE_SECRET_KEY's,
// or the stand-in of a `jetfleet dev` running on DATA_DIR; nil when
// neither is there.
func adminPayments(cfg *config) (*payments.Client, error) {
	pc := payments.Config{SecretKey: cfg.StripeSecretKey, WebhookSecret: cfg.StripeWebhookSecret, APIBase: cfg.StripeAPIBase}
	if pc.SecretKey == "" {
		b, err := os.ReadFile(filepath.Join(cfg.DataDir, stripeStandInFile))
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("read dev's Stripe stand-in address: %w", err)
		}
		var s stripeStandIn
		if err := json.Unmarshal(b, &s); err != nil {
			return nil, fmt.Errorf("dev's Stripe stand-in address %s: %w", stripeStandInFile, err)
		}
		pc.SecretKey, pc.WebhookSecret, pc.APIBase = s.SecretKey, s.WebhookSecret, s.APIBase
	}
	return payments.New(pc)
}
