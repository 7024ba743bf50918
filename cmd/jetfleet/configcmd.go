package main

import (
	"flag"
	"io"
)

func runConfig(args []string, getenv func(string) string, stdout io.Writer) error {
	cfg, err := loadConfig(flag.NewFlagSet("config", flag.ContinueOnError), args, getenv)
	if err != nil {
		return err
	}
	cfg.print(stdout)
	return nil
}
