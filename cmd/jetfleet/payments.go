package main

import (
	"log/slog"
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
		close = func() { srv.Close() }
	}
	client, err = payments.New(payments.Config{SecretKey: cfg.StripeSecretKey, WebhookSecret: cfg.StripeWebhookSecret, APIBase: cfg.StripeAPIBase})
	if err != nil {
		close()
		return nil, func() {}, err
	}
	return client, close, nil
}
