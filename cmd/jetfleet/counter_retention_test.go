package main

import (
	"flag"
	"io"
	"strings"
	"testing"
	"time"

	"jetfleet/internal/testenv"
	"jetfleet/subjects"
)

func TestCounterRetentionReadsDaysOrDurationsAndDefaultsToSevenDays(t *testing.T) {
	for in, want := range map[string]time.Duration{"": 7 * 24 * time.Hour, "2d": 48 * time.Hour, "36h": 36 * time.Hour, "90m": 90 * time.Minute} {
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		cfg, err := loadConfig(fs, nil, env(map[string]string{"COUNTER_RETENTION": in}))
		if err != nil {
			t.Fatalf("COUNTER_RETENTION=%q: %v", in, err)
		}
		if got := cfg.counterRetention(); got != want {
			t.Errorf("COUNTER_RETENTION=%q gives %v, want %v", in, got, want)
		}
	}
	for _, bad := range []string{"week", "7days", "-1d", "10m", "0d"} {
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		if _, err := loadConfig(fs, nil, env(map[string]string{"COUNTER_RETENTION": bad})); err == nil || !strings.Contains(err.Error(), "COUNTER_RETENTION") {
			t.Errorf("COUNTER_RETENTION=%q: error %v, want one naming the setting", bad, err)
		}
	}
}

// Provisioning with another COUNTER_RETENTION updates the existing VIEWS
// stream's MaxAge (what `jetfleet migrate` does after the setting changes).
func TestProvisioningWithAnotherRetentionUpdatesViewsMaxAge(t *testing.T) {
	_, js := testenv.JetStream(t)
	ctx := testenv.Context(t, 30*time.Second)
	for _, c := range []struct {
		setting string
		want    time.Duration
	}{{"", 7 * 24 * time.Hour}, {"2d", 48 * time.Hour}, {"12h", 12 * time.Hour}} {
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		cfg, err := loadConfig(fs, nil, env(map[string]string{"COUNTER_RETENTION": c.setting}))
		if err != nil {
			t.Fatal(err)
		}
		if err := subjects.Provision(ctx, js, provisionOptions(cfg)); err != nil {
			t.Fatalf("provision with COUNTER_RETENTION=%q: %v", c.setting, err)
		}
		s, err := js.Stream(ctx, subjects.CounterStream)
		if err != nil {
			t.Fatal(err)
		}
		if got := s.CachedInfo().Config.MaxAge; got != c.want {
			t.Errorf("COUNTER_RETENTION=%q: VIEWS MaxAge %v, want %v", c.setting, got, c.want)
		}
	}
}
