package enricher_test

import (
	"context"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
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
	c := consume.New(js, consume.Config{Role: "enricher-analytics", Stream: subjects.EnricherOutputStream, Consumer: subjects.EnricherAnalyticsConsumer, Concurrency: 64},
		sink.Handle, consume.NewMetrics(prometheus.NewRegistry()), slog.New(slog.DiscardHandler))
	done := make(chan struct{})
	go func() { defer close(done); _ = c.Run(runCtx) }()
	t.Cleanup(func() { cancel(); <-done })

	var got []analytics.LessonCount
	testenv.Eventually(t, 20*time.Second, "three lessons counted", func() bool {
		got, err = analytics.EnricherLessonCounts(ctx, conn, analytics.LessonScope{All: true}, time.Now().Add(-time.Hour), time.Now().Add(time.Hour), time.Hour, 100)
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
	c := consume.New(js, consume.Config{Role: "enricher-analytics", Stream: subjects.EnricherOutputStream, Consumer: subjects.EnricherAnalyticsConsumer},
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

// A lesson that came in with an API key of alice's is counted for alice:
// the Enricher passes the ingest's owner header on and the sink records it,
// so one account's dashboard never counts another's lessons.
func TestLessonsAreCountedForTheAccountWhoseKeySentThem(t *testing.T) {
	conn, _ := ch.Database(t)
	ctx := testenv.Context(t, 30*time.Second)
	if _, err := analytics.Migrate(ctx, conn, analytics.Schema(), slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	_, js := provision(t)
	send := func(user, owner string, lessons int) {
		for range lessons {
			m := nats.NewMsg(subjects.EnricherInput(subjects.EnricherKindLesson, user))
			m.Data = []byte(`{"user_uuid":"` + user + `","language":"en"}`)
			if owner != "" {
				m.Header.Set(subjects.EnricherOwnerHeader, owner)
			}
			if _, err := js.PublishMsg(ctx, m); err != nil {
				t.Fatal(err)
			}
		}
	}
	send("a1", "alice", 2)
	send("b1", "bob", 3)
	send("n1", "", 1)
	startEnricher(t, js, enricher.Config{})
	sink, err := enricher.NewLessonSink(conn, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(context.Background())
	c := consume.New(js, consume.Config{Role: "enricher-analytics", Stream: subjects.EnricherOutputStream, Consumer: subjects.EnricherAnalyticsConsumer},
		sink.Handle, consume.NewMetrics(prometheus.NewRegistry()), slog.New(slog.DiscardHandler))
	done := make(chan struct{})
	go func() { defer close(done); _ = c.Run(runCtx) }()
	t.Cleanup(func() { cancel(); <-done })

	count := func(scope analytics.LessonScope) uint64 {
		got, err := analytics.EnricherLessonCounts(ctx, conn, scope, time.Now().Add(-time.Hour), time.Now().Add(time.Hour), time.Hour, 100)
		if err != nil {
			t.Fatal(err)
		}
		var n uint64
		for _, g := range got {
			n += g.Lessons
		}
		return n
	}
	var seen uint64
	testenv.Eventually(t, 20*time.Second, "six lessons in ClickHouse", func() bool {
		n := count(analytics.LessonScope{All: true})
		if n != seen {
			t.Logf("ClickHouse counts %d lessons", n)
			seen = n
		}
		return n == 6
	})
	if a, b, x := count(analytics.LessonScope{Owner: "alice"}), count(analytics.LessonScope{Owner: "bob"}), count(analytics.LessonScope{Owner: "mallory"}); a != 2 || b != 3 || x != 0 {
		t.Errorf("alice counts %d, bob %d, mallory %d; want 2, 3, 0", a, b, x)
	}
	if _, err := analytics.EnricherLessonCounts(ctx, conn, analytics.LessonScope{}, time.Now().Add(-time.Hour), time.Now(), time.Hour, 100); err == nil {
		t.Error("a scope with no owner counted the lessons nobody owns")
	}
	owners := outputHeaders(t, js, subjects.EnricherOwnerHeader)
	slices.Sort(owners)
	if want := []string{"", "alice", "alice", "bob", "bob", "bob"}; !slices.Equal(owners, want) {
		t.Errorf("OUTPUT owner headers %q, want %q", owners, want)
	}
}

// outputHeaders returns header name of every OUTPUT message, in order.
func outputHeaders(t *testing.T, js jetstream.JetStream, name string) []string {
	t.Helper()
	ctx := testenv.Context(t, 10*time.Second)
	s, err := js.Stream(ctx, subjects.EnricherOutputStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if err != nil {
			t.Fatalf("get output %d: %v", seq, err)
		}
		out = append(out, m.Header.Get(name))
	}
	return out
}
