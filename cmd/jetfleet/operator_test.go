package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"jetfleet/internal/accounts"
	"jetfleet/internal/testenv"
	"jetfleet/subjects"
	"jetfleet/workers/consume"
)

func runCmd(t *testing.T, vars map[string]string, args ...string) string {
	t.Helper()
	var out bytes.Buffer
	if err := run(testenv.Context(t, 60*time.Second), args, env(vars), &out); err != nil {
		t.Fatalf("jetfleet %s: %v\n%s", strings.Join(args, " "), err, out.String())
	}
	return out.String()
}

func TestMigrateIsIdempotent(t *testing.T) {
	srv := testenv.StartNATS(t)
	ch, err := testenv.StartClickHouse("")
	if err != nil {
		t.Fatal(err)
	}
	defer ch.Stop()
	vars := map[string]string{"NATS_URL": srv.URL, "CLICKHOUSE_URL": ch.DSN("jetfleet"), "LOG_LEVEL": "warn"}
	first := runCmd(t, vars, "migrate")
	if !strings.Contains(first, "streams") || !strings.Contains(first, "clickhouse: schema up to date") {
		t.Fatalf("migrate output:\n%s", first)
	}
	if second := runCmd(t, vars, "migrate"); second != first {
		t.Fatalf("second migrate differs:\n%s\nvs\n%s", second, first)
	}
}

// The operator's DLQ recipe through the CLI: ls shows the reason, show the
// payload, replay sends it back to its subject.
func TestDLQCommandsListShowAndReplay(t *testing.T) {
	srv := testenv.StartNATS(t)
	_, js := srv.Connect(t)
	vars := map[string]string{"NATS_URL": srv.URL, "LOG_LEVEL": "warn"}
	ctx := testenv.Context(t, 30*time.Second)
	ch, err := testenv.StartClickHouse("")
	if err != nil {
		t.Fatal(err)
	}
	defer ch.Stop()
	vars["CLICKHOUSE_URL"] = ch.DSN("jetfleet")
	runCmd(t, vars, "migrate")

	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "JOBS", Subjects: []string{"jobs.>"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateConsumer(ctx, "JOBS", jetstream.ConsumerConfig{Durable: "w", AckPolicy: jetstream.AckExplicitPolicy, MaxDeliver: 2}); err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	c := consume.New(js, consume.Config{Role: "w", Stream: "JOBS", Consumer: "w", FetchWait: 100 * time.Millisecond},
		func(ctx context.Context, m jetstream.Msg) error {
			return consume.Permanentf("cannot parse %q", m.Data())
		},
		consume.NewMetrics(prometheus.NewRegistry()), slog.New(slog.NewTextHandler(io.Discard, nil)))
	stopped := make(chan struct{})
	go func() { c.Run(runCtx); close(stopped) }()
	if _, err := js.Publish(ctx, "jobs.resize", []byte("not-json")); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, "dlq ls shows the entry", func() bool {
		return strings.Contains(runCmd(t, vars, "dlq", "ls"), `cannot parse "not-json"`)
	})
	ls := runCmd(t, vars, "dlq", "ls", "--stream", "JOBS")
	if !strings.Contains(ls, "jobs.resize") || !strings.Contains(ls, "1 dead letter(s)") {
		t.Fatalf("dlq ls:\n%s", ls)
	}
	show := runCmd(t, vars, "dlq", "show", "1")
	for _, want := range []string{"origin:     jobs.resize (stream JOBS, sequence 1)", "not-json", "consumer:   w"} {
		if !strings.Contains(show, want) {
			t.Errorf("dlq show lacks %q:\n%s", want, show)
		}
	}
	stop() // so the replayed message stays in JOBS for us to see
	<-stopped
	if out := runCmd(t, vars, "dlq", "replay", "1"); !strings.Contains(out, "replayed dead letter 1") {
		t.Fatalf("replay: %s", out)
	}
	s, _ := js.Stream(ctx, "JOBS")
	m, err := s.GetLastMsgForSubject(ctx, "jobs.resize")
	if err != nil || string(m.Data) != "not-json" || m.Sequence != 2 {
		t.Fatalf("replayed message not back on its subject: %+v %v", m, err)
	}
	if ls := runCmd(t, vars, "dlq", "ls"); !strings.Contains(ls, "0 dead letter(s)") {
		t.Fatalf("after replay:\n%s", ls)
	}
}

func TestUsersPremiumAndOperatorVerbs(t *testing.T) {
	srv := testenv.StartNATS(t)
	_, js := srv.Connect(t)
	vars := map[string]string{"NATS_URL": srv.URL, "LOG_LEVEL": "warn"}
	ctx := testenv.Context(t, 20*time.Second)
	if err := subjects.Provision(ctx, js, subjects.Options{}); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := run(ctx, []string{"users", "premium", "ada@example.com"}, env(vars), &out); err == nil {
		t.Fatal("premium for an unknown user succeeded")
	}
	store, err := accounts.Open(ctx, js, accounts.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.EnsureUser(ctx, "ada@example.com"); err != nil {
		t.Fatal(err)
	}
	if got := runCmd(t, vars, "users", "premium", "Ada@Example.com"); !strings.Contains(got, "premium true") {
		t.Fatalf("premium: %s", got)
	}
	if got := runCmd(t, vars, "users", "premium", "--off", "ada@example.com"); !strings.Contains(got, "premium false") {
		t.Fatalf("premium --off: %s", got)
	}
	if got := runCmd(t, vars, "users", "operator", "ada@example.com"); !strings.Contains(got, "operator true") {
		t.Fatalf("operator: %s", got)
	}
	if u, err := store.UserByEmail(ctx, "ada@example.com"); err != nil || !u.Operator {
		t.Fatalf("operator not stored: %+v %v", u, err)
	}
	if got := runCmd(t, vars, "users", "operator", "--off", "ada@example.com"); !strings.Contains(got, "operator false") {
		t.Fatalf("operator --off: %s", got)
	}
}
