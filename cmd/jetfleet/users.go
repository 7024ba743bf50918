package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"

	"jetfleet/internal/accounts"
)

// runUsers holds the admin verbs on accounts:
//
//	jetfleet users premium [--off] EMAIL (--off also cancels the Stripe subscription paying for it)
//	jetfleet users operator [--off] EMAIL
//	jetfleet users show EMAIL
func runUsers(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	if len(args) == 0 {
		return errors.New("usage: jetfleet users premium [--off] EMAIL | operator [--off] EMAIL | show EMAIL")
	}
	verb, rest := args[0], args[1:]
	fs := flag.NewFlagSet("users "+verb, flag.ContinueOnError)
	off := fs.Bool("off", false, "premium, operator: take it away instead")
	cfg, err := loadConfig(fs, rest, getenv)
	if err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return fmt.Errorf("usage: jetfleet users %s EMAIL", verb)
	}
	nc, js, err := connectNATS(cfg, "users", newLogger(cfg.LogLevel))
	if err != nil {
		return err
	}
	defer nc.Close()
	store, err := accounts.Open(ctx, js, accounts.Config{})
	if err != nil {
		return err
	}
	var u accounts.User
	switch verb {
	case "premium":
		if *off {
			u, err = premiumOff(ctx, cfg, store, fs.Arg(0), stdout)
		} else {
			u, err = store.SetPremium(ctx, fs.Arg(0), true)
		}
	case "operator":
		u, err = store.SetOperator(ctx, fs.Arg(0), !*off)
	case "show":
		var email string
		if email, err = accounts.NormaliseEmail(fs.Arg(0)); err == nil {
			u, err = store.UserByEmail(ctx, email)
		}
	default:
		return fmt.Errorf("unknown users verb %q: use premium, operator or show", verb)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "user %s  email %s  premium %t  operator %t  since %s\n", u.ID, u.Email, u.Premium, u.Operator, u.Created.Format("2006-01-02"))
	return nil
}

// premiumOff ends a user's premium. When a Stripe subscription pays for it,
// the subscription is cancelled first, so the user is not billed for a
// plan they no longer have; only then does the flag go (Stripe's
// customer.subscription.deleted, arriving after, changes nothing more).
// Run again after a failure, it finds the subscription cancelled and
// finishes.
func premiumOff(ctx context.Context, cfg *config, store *accounts.Store, email string, stdout io.Writer) (accounts.User, error) {
	email, err := accounts.NormaliseEmail(email)
	if err != nil {
		return accounts.User{}, err
	}
	u, err := store.UserByEmail(ctx, email)
	if err != nil {
		return accounts.User{}, err
	}
	if u.Subscription != "" {
		pay, err := adminPayments(cfg)
		if err != nil {
			return accounts.User{}, err
		}
		if pay == nil {
			return accounts.User{}, fmt.Errorf("premium of %s is paid by Stripe subscription %s: set STRIPE_SECRET_KEY (or run this beside `jetfleet dev` on its DATA_DIR) so it is cancelled too; nothing changed", email, u.Subscription)
		}
		active, err := pay.SubscriptionActive(ctx, u.Subscription)
		if err != nil {
			return accounts.User{}, fmt.Errorf("%w; nothing changed", err)
		}
		if active {
			if err := pay.CancelSubscription(ctx, u.Subscription); err != nil {
				return accounts.User{}, fmt.Errorf("%w; nothing changed", err)
			}
			fmt.Fprintf(stdout, "cancelled Stripe subscription %s\n", u.Subscription)
		}
		if u, err = store.SetSubscription(ctx, email, ""); err != nil {
			return accounts.User{}, err
		}
	}
	return store.SetPremium(ctx, email, false)
}
