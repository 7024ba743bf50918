package enricher_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"jetfleet/analytics"
	"jetfleet/internal/testenv"
	"jetfleet/subjects"
	"jetfleet/workers/consume"
	"jetfleet/workers/enricher"
)

var ch *testenv.ClickHouse

func TestMain(m *testing.M) { testenv.ClickHouseMain(m, func(c *testenv.ClickHouse) { ch = c }) }

func TestEnrichedLessonsReachClickHouseByLanguageTypeAndCountry(t *testing.T) {
	conn, _ := ch.Database(t)
	ctx := testenv.Context(t, 30*time.Second)
	if _, err := analytics.Migrate(ctx, conn, analytics.Schema(), slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	_, js := provision(t)
	publish(t, js, "user", "a1", `{"operation":"create","uuid":"a1","country":"ES"}`)
	publish(t, js, "subscription", "a1", `{"operation":"create","user_uuid":"a1","language":"en","subscription_type":"pro","subscription_status":"active"}`)
	for range 3 {
		publish(t, js, "lesson", "a1", `{"user_uuid":"a1","language":"en","course_uuid":"c1"}`)
	}
	startEnricher(t, js, enricher.Config{})

	sink, err := enricher.NewLessonSink(conn, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(context.Background())
	c := consume.New(js, consume.Config{Role: "enricher-analytics", Stream: subjects.OutputStream, Consumer: subjects.EnricherAnalyticsConsumer, Concurrency: 64},
		sink.Handle, consume.NewMetrics(prometheus.NewRegistry()), slog.New(slog.DiscardHandler))
	done := make(chan struct{})
	go func() { defer close(done); _ = c.Run(runCtx) }()
	t.Cleanup(func() { cancel(); <-done })

	var got []analytics.LessonCount
	testenv.Eventually(t, 20*time.Second, "three lessons counted", func() bool {
		got, err = analytics.EnricherLessonCounts(ctx, conn, time.Now().Add(-time.Hour), time.Now().Add(time.Hour), time.Hour, 100)
		return err == nil && len(got) == 1 && got[0].Lessons == 3
	})
	if g := got[0]; g.Language != "en" || g.SubscriptionType != "pro" || g.Country != "ES" {
		t.Errorf("counted %+v", g)
	}
}
