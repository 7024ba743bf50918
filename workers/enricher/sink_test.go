package enricher_test

import (
	"context"
	"log/slog"
	"slices"
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

// A field accepted by validation under one spelling is what ClickHouse
// gets: a lesson also carrying USER_UUID, Language and COURSE_UUID (allowed
// extra properties) is counted for the user, language and course the
// Enricher used, not for the look-alikes.
func TestSinkReadsTheFieldsValidationAccepted(t *testing.T) {
	conn, _ := ch.Database(t)
	ctx := testenv.Context(t, 30*time.Second)
	if _, err := analytics.Migrate(ctx, conn, analytics.Schema(), slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	_, js := provision(t)
	publish(t, js, "user", "a1", `{"operation":"create","uuid":"a1","country":"ES"}`)
	publish(t, js, "subscription", "a1", `{"operation":"create","user_uuid":"a1","language":"en","subscription_type":"pro","subscription_status":"active"}`)
	publish(t, js, "lesson", "a1", `{"user_uuid":"a1","language":"en","course_uuid":"c1","USER_UUID":"zz","Language":"de","COURSE_UUID":"forged"}`)
	startEnricher(t, js, enricher.Config{})

	sink, err := enricher.NewLessonSink(conn, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(context.Background())
	c := consume.New(js, consume.Config{Role: "enricher-analytics", Stream: subjects.OutputStream, Consumer: subjects.EnricherAnalyticsConsumer},
		sink.Handle, consume.NewMetrics(prometheus.NewRegistry()), slog.New(slog.DiscardHandler))
	done := make(chan struct{})
	go func() { defer close(done); _ = c.Run(runCtx) }()
	t.Cleanup(func() { cancel(); <-done })

	var row []string
	testenv.Eventually(t, 20*time.Second, "the lesson's row in ClickHouse", func() bool {
		rows, err := conn.Query(ctx, "SELECT user_uuid, language, course_uuid, country, enrichment FROM "+analytics.EnricherLessonsTable)
		if err != nil {
			return false
		}
		defer rows.Close()
		for rows.Next() {
			var u, l, c, co, e string
			if rows.Scan(&u, &l, &c, &co, &e) == nil {
				row = []string{u, l, c, co, e}
			}
		}
		return row != nil
	})
	if want := []string{"a1", "en", "c1", "ES", "complete"}; !slices.Equal(row, want) {
		t.Errorf("row %q, want %q", row, want)
	}
}
