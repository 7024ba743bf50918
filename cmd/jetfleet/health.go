package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"
)

// runHealth is the healthcheck of distroless containers, which have no curl.
func runHealth(ctx context.Context, args []string) error {
	if len(args) != 1 {
		return errors.New("usage: jetfleet health URL")
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, args[0], nil)
	if err != nil {
		return fmt.Errorf("health %s: %w", args[0], err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("health %s: %w", args[0], err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("health %s: %s", args[0], resp.Status)
	}
	return nil
}
