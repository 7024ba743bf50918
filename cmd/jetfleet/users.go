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
//	jetfleet users premium [--off] EMAIL
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
		u, err = store.SetPremium(ctx, fs.Arg(0), !*off)
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
