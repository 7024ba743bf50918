package enricher_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"jetfleet/internal/testenv"
	"jetfleet/subjects"
	"jetfleet/workers/consume"
	"jetfleet/workers/deadletter"
	"jetfleet/workers/enricher"
)

// instance is one running Enricher worker.
type instance struct {
	e    *enricher.Enricher
	reg  *prometheus.Registry // the runtime's metrics
	stop func()
}

// failures is how many handler attempts failed so far.
func (in *instance) failures() float64 {
	mfs, _ := in.reg.Gather()
	for _, mf := range mfs {
		if mf.GetName() == "jetfleet_worker_failed_total" {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	return 0
}

func startEnricher(t *testing.T, js jetstream.JetStream, cfg enricher.Config) *instance {
	t.Helper()
	return startWrapped(t, js, cfg, nil)
}

// startWrapped starts an Enricher whose handler is wrapped, e.g. to crash it.
func startWrapped(t *testing.T, js jetstream.JetStream, cfg enricher.Config, wrap func(consume.OrderedHandler) consume.OrderedHandler) *instance {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	log := slog.New(slog.DiscardHandler)
	e, err := enricher.New(ctx, js, cfg, prometheus.NewRegistry(), log)
	if err != nil {
		t.Fatalf("new enricher: %v", err)
	}
	oc := e.OrderedConfig("enricher")
	oc.Batch = 32
	oc.FetchWait = 200 * time.Millisecond
	oc.BackoffMin, oc.BackoffMax = 50*time.Millisecond, 300*time.Millisecond
	reg := prometheus.NewRegistry()
	h := consume.OrderedHandler(e.Handle)
	if wrap != nil {
		h = wrap(h)
	}
	run := consume.NewOrdered(js, oc, h, consume.NewMetrics(reg), log)
	done := make(chan struct{})
	go func() { defer close(done); _ = run.Run(ctx) }()
	var once sync.Once
	stop := func() { once.Do(func() { cancel(); <-done; _ = e.Close() }) }
	t.Cleanup(stop)
	return &instance{e: e, reg: reg, stop: stop}
}

func provision(t *testing.T) (*testenv.NATS, jetstream.JetStream) {
	t.Helper()
	n := testenv.StartNATS(t)
	_, js := n.Connect(t)
	if err := subjects.Provision(testenv.Context(t, 30*time.Second), js, subjects.Options{}); err != nil {
		t.Fatalf("provision: %v", err)
	}
	return n, js
}

// connect opens another connection, as another process would.
func connect(t *testing.T, n *testenv.NATS) jetstream.JetStream {
	t.Helper()
	_, js := n.Connect(t)
	return js
}

func publish(t *testing.T, js jetstream.JetStream, kind, userUUID, body string) uint64 {
	t.Helper()
	ack, err := js.Publish(testenv.Context(t, 5*time.Second), subjects.EnricherInput(kind, userUUID), []byte(body))
	if err != nil {
		t.Fatalf("publish %s: %v", body, err)
	}
	return ack.Sequence
}

// emitted is one OUTPUT message.
type emitted struct {
	Kind     string
	InputSeq string // partition.sequence
	Body     map[string]any
}

func readOutput(t *testing.T, js jetstream.JetStream) []emitted {
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
	var out []emitted
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if err != nil {
			t.Fatalf("get output %d: %v", seq, err)
		}
		var body map[string]any
		if err := json.Unmarshal(m.Data, &body); err != nil {
			t.Fatalf("output %d not JSON: %v", seq, err)
		}
		p, in, ok := enricher.InputOf(m.Header)
		if !ok {
			t.Fatalf("output %d headers %v, want a Nats-Msg-Id naming its input", seq, m.Header)
		}
		out = append(out, emitted{Kind: strings.TrimPrefix(m.Subject, "output."), InputSeq: subjects.EnricherInputPos(p, in), Body: body})
	}
	return out
}

func outputCount(t *testing.T, js jetstream.JetStream) uint64 {
	t.Helper()
	s, err := js.Stream(testenv.Context(t, 5*time.Second), subjects.EnricherOutputStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(testenv.Context(t, 5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}

func dlqEntries(t *testing.T, js jetstream.JetStream) map[string]string {
	t.Helper()
	ctx := testenv.Context(t, 10*time.Second)
	s, err := js.Stream(ctx, subjects.DLQStream)
	if err != nil {
		t.Fatal(err)
	}
	info, _ := s.Info(ctx)
	out := map[string]string{} // payload → reason
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		out[string(m.Data)] = m.Header.Get(subjects.HeaderDLQError)
	}
	return out
}

// otherPartitionUser returns a user uuid in another partition than uuid.
func otherPartitionUser(uuid string) string {
	for i := 0; ; i++ {
		c := fmt.Sprintf("other-%d", i)
		if subjects.EnricherPartitionOf(c) != subjects.EnricherPartitionOf(uuid) {
			return c
		}
	}
}

// str renders a field of an emitted body, "<null>" for null, "<absent>" when
// missing.
func str(b map[string]any, k string) string {
	v, ok := b[k]
	switch {
	case !ok:
		return "<absent>"
	case v == nil:
		return "<null>"
	}
	return fmt.Sprint(v)
}

func TestScriptedRunEmitsExactlyTheExpectedStreamDLQAndState(t *testing.T) {
	_, js := provision(t)

	// The script, in publish order. Comments say what each line tests.
	type step struct{ kind, user, body string }
	wrongSubject := otherPartitionUser("u1")
	script := []step{
		{"user", "u1", `{"operation":"create","uuid":"u1","name":"ada","firstname":"Ada","lastname":"L","country":"DE","active":true}`},
		{"subscription", "u1", `{"operation":"create","user_uuid":"u1","language":"es","name":"Spanish","subscription_status":"active","subscription_type":"premium","subscription_period":30}`},
		{"subscription", "u1", `{"operation":"create","user_uuid":"u1","language":"fr","subscription_status":"cancelled","subscription_type":"basic"}`},
		{"lesson", "u1", `{"user_uuid":"u1","language":"es","title":"L1","course_uuid":"c-es","completed_lessons_in_course":1,"n":1}`},
		{"lesson", "u1", `{"user_uuid":"u1","language":"fr","title":"L1","course_uuid":"c-fr","n":2}`},
		// An update changes only the fields it carries.
		{"user", "u1", `{"operation":"update","uuid":"u1","country":"FR"}`},
		{"lesson", "u1", `{"user_uuid":"u1","language":"es","title":"L2","n":3}`},
		{"subscription", "u1", `{"operation":"update","user_uuid":"u1","language":"es","subscription_status":"expired"}`},
		{"lesson", "u1", `{"user_uuid":"u1","language":"es","title":"L3","n":4}`},
		// The lesson precedes its user and subscription: as of its place
		// in the stream the user is unknown, and it says so at once.
		{"lesson", "u2", `{"user_uuid":"u2","language":"de","title":"early","n":1}`},
		{"user", "u2", `{"operation":"create","uuid":"u2","country":"AT","active":true}`},
		{"subscription", "u2", `{"operation":"create","user_uuid":"u2","language":"de","subscription_status":"trial","subscription_type":"free"}`},
		// Never-known user, and a known user without a subscription in
		// the lesson's language: emitted at once, in order, marked.
		{"lesson", "u3", `{"user_uuid":"u3","language":"es","n":1}`},
		{"lesson", "u1", `{"user_uuid":"u1","language":"it","n":5}`},
		// Invalid events: dead-lettered with reasons, never blocking.
		{"user", "u4", `{"operation":"create","name":"no uuid"}`},
		{"user", "u4", `{"operation":"delete","uuid":"u4"}`},
		{"lesson", "u4", `{"user_uuid":"u4","language":7}`},
		{"lesson", "u4", `not json`},
		{"lesson", wrongSubject, `{"user_uuid":"u1","language":"es","misrouted":true}`},
		// After the invalid ones, u1 still flows.
		{"lesson", "u1", `{"user_uuid":"u1","language":"fr","n":6}`},
	}
	seqs := make([]uint64, len(script))
	for i, s := range script {
		seqs[i] = publish(t, js, s.kind, s.user, s.body)
	}
	const invalid = 5
	inst := startEnricher(t, js, enricher.Config{})
	testenv.Eventually(t, 20*time.Second, "every valid event emitted", func() bool {
		return outputCount(t, js) == uint64(len(script)-invalid)
	})
	// Give a wrong duplicate the chance to show up before we count.
	testenv.EventuallyState(t, 5*time.Second, "DLQ holds every invalid event", func() (bool, any) { d := dlqEntries(t, js); return len(d) == invalid, d })

	out := readOutput(t, js)
	byUser := map[string][]emitted{}
	seen := map[string]bool{}
	for _, o := range out {
		if seen[o.InputSeq] {
			t.Errorf("input %s emitted twice", o.InputSeq)
		}
		seen[o.InputSeq] = true
		u, _ := o.Body["uuid"].(string)
		if o.Kind != "user" {
			u, _ = o.Body["user_uuid"].(string)
		}
		byUser[u] = append(byUser[u], o)
	}

	// u1: every event in input order, lessons enriched from the state at
	// their time, in their language.
	type want struct{ kind, n, status, typ, country, enrichment string }
	lesson := func(n, status, typ, country, enr string) want { return want{"lesson", n, status, typ, country, enr} }
	wantU1 := []want{
		{kind: "user"}, {kind: "subscription"}, {kind: "subscription"},
		lesson("1", "active", "premium", "DE", "complete"),
		lesson("2", "cancelled", "basic", "DE", "complete"),
		{kind: "user"},
		lesson("3", "active", "premium", "FR", "complete"),
		{kind: "subscription"},
		lesson("4", "expired", "premium", "FR", "complete"),
		lesson("5", "<null>", "<null>", "FR", "missing_subscription"),
		lesson("6", "cancelled", "basic", "FR", "complete"),
	}
	check := func(user string, wants []want) {
		t.Helper()
		got := byUser[user]
		if len(got) != len(wants) {
			t.Fatalf("user %s: %d events out, want %d: %+v", user, len(got), len(wants), got)
		}
		for i, w := range wants {
			g := got[i]
			if g.Kind != w.kind {
				t.Errorf("user %s event %d: kind %s, want %s", user, i, g.Kind, w.kind)
				continue
			}
			if w.kind != "lesson" {
				continue
			}
			have := lesson(str(g.Body, "n"), str(g.Body, "subscription_status"), str(g.Body, "subscription_type"), str(g.Body, "country"), str(g.Body, "enrichment"))
			if have != w {
				t.Errorf("user %s event %d: %+v, want %+v", user, i, have, w)
			}
		}
	}
	check("u1", wantU1)
	check("u2", []want{lesson("1", "<null>", "<null>", "<null>", "missing_user"), {kind: "user"}, {kind: "subscription"}})
	check("u3", []want{lesson("1", "<null>", "<null>", "<null>", "missing_user")})
	// Pass-through keeps the producer's bytes' meaning, extra fields too.
	if got := byUser["u1"][0].Body; str(got, "name") != "ada" || str(got, "operation") != "create" {
		t.Errorf("user event not passed through: %v", got)
	}
	if got := byUser["u1"][3].Body; str(got, "course_uuid") != "c-es" || str(got, "completed_lessons_in_course") != "1" || str(got, "title") != "L1" {
		t.Errorf("lesson fields not kept: %v", got)
	}

	// DLQ: one entry per invalid event, with the reason.
	dlq := dlqEntries(t, js)
	for body, reason := range map[string]string{
		`{"operation":"create","name":"no uuid"}`:             "uuid: required",
		`{"operation":"delete","uuid":"u4"}`:                  `operation: must be "create" or "update"`,
		`{"user_uuid":"u4","language":7}`:                     "language: must be a string, got the number 7",
		`not json`:                                            "body: must be one JSON object",
		`{"user_uuid":"u1","language":"es","misrouted":true}`: "published under another user's subject",
	} {
		if got, ok := dlq[body]; !ok || !strings.Contains(got, reason) {
			t.Errorf("DLQ entry for %s: %q, want it to mention %q", body, got, reason)
		}
	}

	// State: the latest value of every field, updates merged.
	ctx := testenv.Context(t, 5*time.Second)
	u, err := inst.e.Store().User(ctx, subjects.EnricherPartitionOf("u1"), "u1")
	if err != nil || u == nil {
		t.Fatalf("state of u1: %v %v", u, err)
	}
	if *u.Country != "FR" || *u.Name != "ada" || *u.Firstname != "Ada" || !*u.Active {
		t.Errorf("u1 state %+v", u)
	}
	sub, err := inst.e.Store().Subscription(ctx, subjects.EnricherPartitionOf("u1"), "u1", "es")
	if err != nil || sub == nil {
		t.Fatalf("state of u1/es: %v %v", sub, err)
	}
	if *sub.SubscriptionStatus != "expired" || *sub.SubscriptionType != "premium" || *sub.SubscriptionPeriod != 30 || *sub.Name != "Spanish" {
		t.Errorf("u1/es state %+v", sub)
	}
	// The same state is in KV, read without the cache.
	kv, err := js.KeyValue(ctx, subjects.EnricherSubsBucket(subjects.EnricherShardOf("u1", subjects.DefaultEnricherStateShards)))
	if err != nil {
		t.Fatal(err)
	}
	entry, err := kv.Get(ctx, subjects.EnricherSubKey("u1", "es"))
	if err != nil || !strings.Contains(string(entry.Value()), `"subscription_status":"expired"`) {
		t.Errorf("u1/es in KV: %v %v", entry, err)
	}

	st := inst.e.Stats()
	if st.Lessons["missing_subscription"] != 1 || st.Lessons["missing_user"] != 2 || st.Lessons["complete"] != 5 {
		t.Errorf("lesson counts %v", st.Lessons)
	}
	if st.Parked != 0 || st.Held != 0 {
		t.Errorf("%d lessons parked, %d events held back with holding off", st.Parked, st.Held)
	}
	_ = seqs
}

// TestRestartMidStreamEmitsEveryEventOnce stops one of two workers in the
// middle of a stream: the other takes its partitions over, and every input
// comes out once, in order per user.
func TestRestartMidStreamEmitsEveryEventOnce(t *testing.T) {
	srv, js := provision(t)
	const users, lessonsPerUser = 40, 40
	for u := range users {
		id := fmt.Sprintf("r%d", u)
		publish(t, js, "user", id, fmt.Sprintf(`{"operation":"create","uuid":"%s","country":"C%d"}`, id, u%5))
		publish(t, js, "subscription", id, fmt.Sprintf(`{"operation":"create","user_uuid":"%s","language":"en","subscription_type":"t%d","subscription_status":"active"}`, id, u%3))
	}
	total := users * (2 + lessonsPerUser)
	// Two workers, each with its own connection, as two processes would.
	a := startEnricher(t, connect(t, srv), enricher.Config{})
	b := startEnricher(t, connect(t, srv), enricher.Config{})
	async := connect(t, srv)
	for n := range lessonsPerUser {
		for u := range users {
			id := fmt.Sprintf("r%d", u)
			if _, err := async.PublishAsync(subjects.EnricherInput("lesson", id), []byte(fmt.Sprintf(`{"user_uuid":"%s","language":"en","n":%d}`, id, n))); err != nil {
				t.Fatal(err)
			}
		}
		if n == lessonsPerUser/3 {
			testenv.EventuallyState(t, 20*time.Second, "some output before the restart", func() (bool, any) { seen := outputCount(t, js); return seen > 200, seen })
			a.stop() // graceful: finishes its batch and unpins its partitions
		}
		if n == 2*lessonsPerUser/3 {
			a = startEnricher(t, connect(t, srv), enricher.Config{}) // comes back
			b.stop()
		}
	}
	<-async.PublishAsyncComplete()
	testenv.EventuallyState(t, 30*time.Second, "every event emitted", func() (bool, any) { seen := outputCount(t, js); return seen >= uint64(total), seen })

	out := readOutput(t, js)
	if len(out) != total {
		t.Fatalf("%d events out, want %d", len(out), total)
	}
	seen := map[string]bool{}
	last := map[string]float64{}
	for _, o := range out {
		if seen[o.InputSeq] {
			t.Fatalf("input %s emitted twice", o.InputSeq)
		}
		seen[o.InputSeq] = true
		if o.Kind != "lesson" {
			continue
		}
		u := o.Body["user_uuid"].(string)
		n := o.Body["n"].(float64)
		if prev, ok := last[u]; ok && n != prev+1 {
			t.Errorf("user %s: lesson %v after %v", u, n, prev)
		}
		last[u] = n
		if str(o.Body, "enrichment") != "complete" {
			t.Errorf("lesson of %s not enriched: %v", u, o.Body)
		}
	}
}

// TestStateWriteFailuresHoldEventsUntilKVRecovers makes the state buckets
// refuse writes: the partition stops at the user event (NAKed with backoff,
// nothing emitted past it, nothing lost) and resumes in order when the
// store accepts writes again.
func TestStateWriteFailuresHoldEventsUntilKVRecovers(t *testing.T) {
	_, js := provision(t)
	ctx := testenv.Context(t, 30*time.Second)
	setMaxMsgSize := func(n int32) {
		t.Helper()
		for s := range subjects.DefaultEnricherStateShards {
			for _, b := range []string{subjects.EnricherUsersBucket(s), subjects.EnricherSubsBucket(s)} {
				st, err := js.Stream(ctx, "KV_"+b)
				if err != nil {
					t.Fatal(err)
				}
				cfg := st.CachedInfo().Config
				cfg.MaxMsgSize = n
				if _, err := js.UpdateStream(ctx, cfg); err != nil {
					t.Fatalf("update %s: %v", b, err)
				}
			}
		}
	}
	setMaxMsgSize(8) // every state record is larger: writes fail
	publish(t, js, "user", "k1", `{"operation":"create","uuid":"k1","country":"NL"}`)
	publish(t, js, "subscription", "k1", `{"operation":"create","user_uuid":"k1","language":"en","subscription_type":"pro","subscription_status":"active"}`)
	publish(t, js, "lesson", "k1", `{"user_uuid":"k1","language":"en","n":1}`)

	inst := startEnricher(t, js, enricher.Config{})
	// The worker keeps retrying; nothing comes out while writes fail.
	testenv.EventuallyState(t, 10*time.Second, "several failed attempts to store the user", func() (bool, any) { seen := inst.failures(); return seen >= 3, seen })
	if n := outputCount(t, js); n != 0 {
		t.Fatalf("%d events emitted while the state store refused writes", n)
	}
	setMaxMsgSize(-1)
	testenv.EventuallyState(t, 15*time.Second, "all events emitted after recovery", func() (bool, any) { seen := outputCount(t, js); return seen == 3, seen })
	out := readOutput(t, js)
	if out[0].Kind != "user" || out[1].Kind != "subscription" || out[2].Kind != "lesson" {
		t.Fatalf("order after recovery: %s %s %s", out[0].Kind, out[1].Kind, out[2].Kind)
	}
	if l := out[2].Body; str(l, "country") != "NL" || str(l, "subscription_type") != "pro" || str(l, "enrichment") != "complete" {
		t.Errorf("lesson after recovery: %v", l)
	}
}

func TestLoadSeedsStateAndReportsBadLinesByNumber(t *testing.T) {
	_, js := provision(t)
	snapshot := strings.Join([]string{
		`{"uuid":"s1","country":"PT","active":true}`,
		`{"user_uuid":"s1","language":"en","subscription_type":"pro","subscription_status":"active"}`,
		`{"name":"nobody"}`,
		``,
		`{"uuid":"s2","active":"maybe"}`,
		`{"user_uuid":"s2","language":"de","subscription_type":"free"}`,
		// A line over the limit does not stop the load either.
		`{"uuid":"s3","name":"` + strings.Repeat("x", 2<<20) + `"}`,
		`{"uuid":"s4","country":"NO"}`,
	}, "\n")
	var calls int
	var last enricher.LoadStats
	st, err := enricher.Load(testenv.Context(t, 10*time.Second), js, strings.NewReader(snapshot), func(s enricher.LoadStats) { calls++; last = s })
	if err != nil {
		t.Fatal(err)
	}
	if st.Users != 2 || st.Subscriptions != 2 || st.RejectedTotal != 3 || st.Lines != 8 || st.Bytes != int64(len(snapshot)) {
		t.Fatalf("loaded %+v", st)
	}
	if st.Rejected[0].Line != 3 || st.Rejected[1].Line != 5 || !strings.Contains(st.Rejected[1].Reason, "active: must be a boolean") ||
		st.Rejected[2].Line != 7 || !strings.Contains(st.Rejected[2].Reason, "over 1048576 bytes") {
		t.Errorf("rejected lines %+v", st.Rejected)
	}
	if calls != 8 || last.Lines != 8 || last.Bytes != st.Bytes {
		t.Errorf("progress called %d times, last %+v", calls, last)
	}
	// A lesson for the loaded user is enriched from the snapshot.
	publish(t, js, "lesson", "s1", `{"user_uuid":"s1","language":"en"}`)
	startEnricher(t, js, enricher.Config{})
	testenv.EventuallyState(t, 10*time.Second, "lesson emitted", func() (bool, any) { seen := outputCount(t, js); return seen == 1, seen })
	l := readOutput(t, js)[0].Body
	if str(l, "country") != "PT" || str(l, "subscription_type") != "pro" || str(l, "enrichment") != "complete" {
		t.Errorf("lesson %v", l)
	}
}

func TestLessonCarryingEnrichmentFieldsGetsThemReplacedNotRepeated(t *testing.T) {
	_, js := provision(t)
	publish(t, js, "user", "w1", `{"operation":"create","uuid":"w1","country":"SE"}`)
	publish(t, js, "subscription", "w1", `{"operation":"create","user_uuid":"w1","language":"sv","subscription_type":"pro","subscription_status":"active"}`)
	publish(t, js, "lesson", "w1", `{"user_uuid":"w1","language":"sv","country":"forged","enrichment":"x"}`)
	startEnricher(t, js, enricher.Config{})
	testenv.EventuallyState(t, 10*time.Second, "three events out", func() (bool, any) { seen := outputCount(t, js); return seen == 3, seen })
	ctx := testenv.Context(t, 5*time.Second)
	s, _ := js.Stream(ctx, subjects.EnricherOutputStream)
	m, err := s.GetLastMsgForSubject(ctx, subjects.EnricherOutput(subjects.EnricherKindLesson))
	if err != nil {
		t.Fatal(err)
	}
	if got := string(m.Data); strings.Count(got, `"country"`) != 1 || !strings.Contains(got, `"country":"SE"`) || !strings.Contains(got, `"enrichment":"complete"`) {
		t.Errorf("lesson out: %s", got)
	}
}

// TestCrashBetweenPublishAndAckEmitsEachEventOnce kills a worker's
// connection after it published outputs but before it acknowledged their
// inputs: the inputs are redelivered to the next worker, whose publishes
// carry the same Nats-Msg-Id, so OUTPUT holds each event once.
func TestCrashBetweenPublishAndAckEmitsEachEventOnce(t *testing.T) {
	srv, js := provision(t)
	ctx := testenv.Context(t, 60*time.Second)
	// Quick redelivery and takeover, so the test does not wait 30s.
	for p := range subjects.EnricherPartitions {
		c, err := js.Consumer(ctx, subjects.EnricherPartitionStream(p), subjects.EnricherPartitionConsumer(p))
		if err != nil {
			t.Fatal(err)
		}
		cfg := c.CachedInfo().Config
		cfg.AckWait, cfg.PinnedTTL = time.Second, 2*time.Second // PinnedTTL > AckWait, as in production
		if _, err := js.UpdateConsumer(ctx, subjects.EnricherPartitionStream(p), cfg); err != nil {
			t.Fatal(err)
		}
	}
	publish(t, js, "user", "x1", `{"operation":"create","uuid":"x1","country":"IE"}`)
	publish(t, js, "subscription", "x1", `{"operation":"create","user_uuid":"x1","language":"ga","subscription_type":"pro","subscription_status":"active"}`)
	const lessons = 30
	for n := range lessons {
		publish(t, js, "lesson", "x1", fmt.Sprintf(`{"user_uuid":"x1","language":"ga","n":%d}`, n))
	}

	crashNC, crashJS := srv.Connect(t)
	var handled atomic.Int32
	startWrapped(t, crashJS, enricher.Config{}, func(h consume.OrderedHandler) consume.OrderedHandler {
		return func(ctx context.Context, p int, msg jetstream.Msg) ([]jetstream.PubAckFuture, error) {
			futures, err := h(ctx, p, msg)
			if handled.Add(1) == 10 {
				// The outputs so far are stored; then the process dies
				// before any ack of this batch leaves.
				for _, f := range futures {
					<-f.Ok()
				}
				crashJS.PublishAsyncComplete()
				crashNC.Close()
			}
			return futures, err
		}
	})
	testenv.Eventually(t, 10*time.Second, "the first worker crashed after publishing", func() bool {
		return handled.Load() >= 10 && outputCount(t, js) >= 1
	})
	before := outputCount(t, js)
	t.Logf("%d events emitted before the crash", before)
	startEnricher(t, connect(t, srv), enricher.Config{})
	testenv.EventuallyState(t, 20*time.Second, "every event emitted", func() (bool, any) { seen := outputCount(t, js); return seen >= 2+lessons, seen })

	out := readOutput(t, js)
	if len(out) != 2+lessons {
		t.Fatalf("%d events out (%d before the takeover), want %d", len(out), before, 2+lessons)
	}
	seen := map[string]bool{}
	next := 0.0
	for _, o := range out {
		if seen[o.InputSeq] {
			t.Errorf("input %s emitted twice", o.InputSeq)
		}
		seen[o.InputSeq] = true
		if o.Kind == "lesson" {
			if n := o.Body["n"].(float64); n != next {
				t.Errorf("lesson %v out after lesson %v: order lost in the takeover", n, next-1)
			}
			next++
		}
	}
}

func TestPrefetchLoadsStateOfABatchIntoTheCache(t *testing.T) {
	_, js := provision(t)
	ctx := testenv.Context(t, 10*time.Second)
	var lines []string
	for i := range 20 {
		lines = append(lines, fmt.Sprintf(`{"uuid":"p%d","country":"C%d"}`, i, i), fmt.Sprintf(`{"user_uuid":"p%d","language":"en","subscription_type":"t%d"}`, i, i))
	}
	if _, err := enricher.Load(ctx, js, strings.NewReader(strings.Join(lines, "\n")), nil); err != nil {
		t.Fatal(err)
	}
	// The cache is split over every partition and both kinds: room for
	// this test's 40 records in partition 0.
	store, err := enricher.OpenStore(ctx, js, 100*subjects.EnricherPartitions, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	var users []string
	var subs []enricher.SubKey
	for i := range 20 {
		users = append(users, fmt.Sprintf("p%d", i))
		subs = append(subs, enricher.SubKey{UserUUID: fmt.Sprintf("p%d", i), Language: "en"})
	}
	users = append(users, "nobody")
	store.Prefetch(ctx, 0, users, subs)
	// Remove the state behind the cache's back: what Prefetch loaded is
	// still served, from memory.
	for s := range subjects.DefaultEnricherStateShards {
		for _, b := range []string{subjects.EnricherUsersBucket(s), subjects.EnricherSubsBucket(s)} {
			st, _ := js.Stream(ctx, "KV_"+b)
			if err := st.Purge(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	for i := range 20 {
		u, err := store.User(ctx, 0, fmt.Sprintf("p%d", i))
		if err != nil || u == nil || *u.Country != fmt.Sprintf("C%d", i) {
			t.Fatalf("user p%d after prefetch: %+v %v", i, u, err)
		}
		s, err := store.Subscription(ctx, 0, fmt.Sprintf("p%d", i), "en")
		if err != nil || s == nil || *s.SubscriptionType != fmt.Sprintf("t%d", i) {
			t.Fatalf("subscription p%d/en after prefetch: %+v %v", i, s, err)
		}
	}
	if u, err := store.User(ctx, 0, "nobody"); u != nil || err != nil {
		t.Errorf("unknown user: %+v %v", u, err)
	}
	if hits, misses := store.CacheStats(); hits != 0 || misses != 41 {
		t.Errorf("hits %d misses %d: a prefetched record's first read counts as the miss it saved", hits, misses)
	}
}

// The loader and the store use the shard count the deployment was
// provisioned with: state loaded into 3 shards is spread over all of them
// and read back whole.
func TestStateUsesTheProvisionedShardCount(t *testing.T) {
	n := testenv.StartNATS(t)
	_, js := n.Connect(t)
	ctx := testenv.Context(t, 30*time.Second)
	const shards = 3
	if err := subjects.Provision(ctx, js, subjects.Options{EnricherStateShards: shards}); err != nil {
		t.Fatal(err)
	}
	const users = 30
	var lines []string
	for i := range users {
		lines = append(lines, fmt.Sprintf(`{"uuid":"s%d","country":"C%d"}`, i, i), fmt.Sprintf(`{"user_uuid":"s%d","language":"fr","subscription_type":"t%d"}`, i, i))
	}
	if _, err := enricher.Load(ctx, js, strings.NewReader(strings.Join(lines, "\n")), nil); err != nil {
		t.Fatal(err)
	}
	total := 0
	for s := range shards {
		kv, err := js.KeyValue(ctx, subjects.EnricherUsersBucket(s))
		if err != nil {
			t.Fatal(err)
		}
		st, err := kv.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if st.Values() == 0 {
			t.Errorf("shard %d holds no user of %d", s, users)
		}
		total += int(st.Values())
	}
	if total != users {
		t.Errorf("%d users stored over %d shards, want %d", total, shards, users)
	}
	store, err := enricher.OpenStore(ctx, js, 1000, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	for i := range users {
		id := fmt.Sprintf("s%d", i)
		p := subjects.EnricherPartitionOf(id)
		u, err := store.User(ctx, p, id)
		if err != nil || u == nil || *u.Country != fmt.Sprintf("C%d", i) {
			t.Fatalf("user %s: %+v %v", id, u, err)
		}
		s, err := store.Subscription(ctx, p, id, "fr")
		if err != nil || s == nil || *s.SubscriptionType != fmt.Sprintf("t%d", i) {
			t.Fatalf("subscription %s/fr: %+v %v", id, s, err)
		}
	}
}

// lessonView is what a test compares of an emitted lesson.
type lessonView struct{ n, status, typ, country, enrichment string }

func viewOf(o emitted) lessonView {
	return lessonView{str(o.Body, "n"), str(o.Body, "subscription_status"), str(o.Body, "subscription_type"), str(o.Body, "country"), str(o.Body, "enrichment")}
}

// kindsAndLessons renders a user's output as kinds in order, lessons with
// their enrichment, for one comparison.
func kindsAndLessons(out []emitted, user string) []string {
	var got []string
	for _, o := range out {
		u, _ := o.Body["user_uuid"].(string)
		if o.Kind == "user" {
			u, _ = o.Body["uuid"].(string)
		}
		if u != user {
			continue
		}
		if o.Kind != "lesson" {
			got = append(got, o.Kind)
			continue
		}
		got = append(got, fmt.Sprintf("lesson%+v", viewOf(o)))
	}
	return got
}

// The seed keeps each user's events in order, so a lesson is enriched with
// the state at its own place in the stream: a country changed and a
// subscription created after it never reach it, and it comes out at once,
// before them.
func TestLessonIsEnrichedAsOfItsPlaceNeverWithLaterEvents(t *testing.T) {
	_, js := provision(t)
	publish(t, js, "user", "a1", `{"operation":"create","uuid":"a1","country":"DE"}`)
	publish(t, js, "lesson", "a1", `{"user_uuid":"a1","language":"es","n":1}`)
	publish(t, js, "user", "a1", `{"operation":"update","uuid":"a1","country":"FR"}`)
	publish(t, js, "subscription", "a1", `{"operation":"create","user_uuid":"a1","language":"es","subscription_status":"active","subscription_type":"premium"}`)
	publish(t, js, "lesson", "a1", `{"user_uuid":"a1","language":"es","n":2}`)
	// A lesson of a user not created yet, with and without a subscription
	// (a snapshot may hold subscriptions of unknown users): missing_user.
	if _, err := enricher.Load(testenv.Context(t, 10*time.Second), js, strings.NewReader(
		`{"user_uuid":"b1","language":"es","subscription_status":"trial","subscription_type":"free"}`), nil); err != nil {
		t.Fatal(err)
	}
	publish(t, js, "lesson", "b1", `{"user_uuid":"b1","language":"es","n":1}`)
	publish(t, js, "lesson", "b1", `{"user_uuid":"b1","language":"it","n":2}`)
	publish(t, js, "user", "b1", `{"operation":"create","uuid":"b1","country":"IT"}`)

	inst := startEnricher(t, js, enricher.Config{})
	// No hold: everything is out well within a second on a quiet machine;
	// the deadline only guards a slow one.
	testenv.EventuallyState(t, 10*time.Second, "all 8 events emitted", func() (bool, any) { seen := outputCount(t, js); return seen == 8, seen })
	out := readOutput(t, js)
	want := map[string][]string{
		"a1": {"user",
			"lesson{n:1 status:<null> typ:<null> country:DE enrichment:missing_subscription}",
			"user", "subscription",
			"lesson{n:2 status:active typ:premium country:FR enrichment:complete}"},
		"b1": {
			"lesson{n:1 status:trial typ:free country:<null> enrichment:missing_user}",
			"lesson{n:2 status:<null> typ:<null> country:<null> enrichment:missing_user}",
			"user"},
	}
	for user, w := range want {
		if got := kindsAndLessons(out, user); !slices.Equal(got, w) {
			t.Errorf("user %s out:\n got  %q\n want %q", user, got, w)
		}
	}
	if st := inst.e.Stats(); st.Parked != 0 {
		t.Errorf("%d lessons parked with holding off", st.Parked)
	}
}

// With holding on (for producers that cannot keep the seed's order) a
// lesson missing its subscription waits for it; what was known at its first
// attempt (the country) stays, only the missing subscription is filled in,
// and the user's later events come out after it, in order. A lesson whose
// dimension never comes is emitted when the hold ends.
func TestHoldFreezesKnownValuesFillsOnlyTheMissingOneAndKeepsUserOrder(t *testing.T) {
	_, js := provision(t)
	publish(t, js, "user", "h1", `{"operation":"create","uuid":"h1","country":"DE"}`)
	publish(t, js, "subscription", "h1", `{"operation":"create","user_uuid":"h1","language":"fr","subscription_status":"active","subscription_type":"basic"}`)
	publish(t, js, "lesson", "h1", `{"user_uuid":"h1","language":"es","n":1}`)
	publish(t, js, "user", "h1", `{"operation":"update","uuid":"h1","country":"FR"}`)
	publish(t, js, "lesson", "h1", `{"user_uuid":"h1","language":"fr","n":2}`)
	publish(t, js, "subscription", "h1", `{"operation":"create","user_uuid":"h1","language":"es","subscription_status":"trial","subscription_type":"free"}`)
	// h2's lesson never gets its subscription: out after the hold.
	publish(t, js, "user", "h2", `{"operation":"create","uuid":"h2","country":"PL"}`)
	publish(t, js, "lesson", "h2", `{"user_uuid":"h2","language":"pl","n":1}`)
	publish(t, js, "user", "h2", `{"operation":"update","uuid":"h2","country":"CZ"}`)

	hold := 2 * time.Second
	inst := startEnricher(t, js, enricher.Config{Hold: hold, ParkRetry: 100 * time.Millisecond})
	testenv.EventuallyState(t, 20*time.Second, "all 9 events emitted", func() (bool, any) { seen := outputCount(t, js); return seen == 9, seen })
	out := readOutput(t, js)
	want := map[string][]string{
		"h1": {"user", "subscription",
			// country as of the lesson (DE), the late subscription filled in
			"lesson{n:1 status:trial typ:free country:DE enrichment:complete}",
			"user",
			"lesson{n:2 status:active typ:basic country:FR enrichment:complete}",
			"subscription"},
		"h2": {"user",
			"lesson{n:1 status:<null> typ:<null> country:PL enrichment:missing_subscription}",
			"user"},
	}
	for user, w := range want {
		if got := kindsAndLessons(out, user); !slices.Equal(got, w) {
			t.Errorf("user %s out:\n got  %q\n want %q", user, got, w)
		}
	}
	st := inst.e.Stats()
	// h1: lesson 1 and the three events behind it; h2: the lesson and the
	// update behind it.
	if st.Parked == 0 || st.Held != 6 {
		t.Errorf("parked %d, held back %d; want some parking and 6 held events measured", st.Parked, st.Held)
	}
}

// A dead letter of a partition stream records the stored subject
// input.part.<p>.<kind>; `jetfleet dlq replay` publishes it back there, the
// partition's stream takes it, and the
// Enricher handles it again in its partition (here: dead-letters it again,
// marked as a replay; the user's valid events are not disturbed).
func TestDeadLetteredInputEventReplaysIntoItsPartitionAndIsHandledAgain(t *testing.T) {
	_, js := provision(t)
	ctx := testenv.Context(t, 30*time.Second)
	publish(t, js, "user", "d1", `{"operation":"create","name":"no uuid"}`)
	startEnricher(t, js, enricher.Config{})
	var entries []deadletter.Entry
	testenv.Eventually(t, 10*time.Second, "the invalid event dead-lettered", func() bool {
		entries, _ = deadletter.List(ctx, js, subjects.EnricherInputStreams, 0)
		return len(entries) == 1
	})
	first := entries[0]
	if want := subjects.EnricherPartitionStream(subjects.EnricherPartitionOf("d1")); first.Stream != want {
		t.Errorf("dead letter of stream %q, want %q", first.Stream, want)
	}
	if want := "input.part." + strconv.Itoa(subjects.EnricherPartitionOf("d1")) + ".user"; first.Origin != want {
		t.Fatalf("dead letter origin %q, want %q", first.Origin, want)
	}
	if err := deadletter.Replay(ctx, js, first.Seq); err != nil {
		t.Fatalf("replay: %v", err)
	}
	testenv.Eventually(t, 10*time.Second, "the replayed event handled again", func() bool {
		entries, _ = deadletter.List(ctx, js, subjects.EnricherInputStreams, 0)
		return len(entries) == 1 && entries[0].Seq != first.Seq
	})
	again := entries[0]
	if again.Header.Get(subjects.HeaderDLQReplayed) != strconv.FormatUint(first.Seq, 10) || again.Origin != first.Origin ||
		!strings.Contains(again.Error, "uuid: required") {
		t.Errorf("dead letter after replay: %+v", again)
	}
}

// A worker taking a partition over in the middle of a hold keeps what the
// held lesson was frozen with (country DE), though the user's later update
// (FR) is in the state by then, fills in only the late subscription, and
// keeps the user's order.
func TestHoldSurvivesATakeoverWithItsFrozenValues(t *testing.T) {
	srv, js := provision(t)
	ctx := testenv.Context(t, 30*time.Second)
	publish(t, js, "user", "t1", `{"operation":"create","uuid":"t1","country":"DE"}`)
	publish(t, js, "lesson", "t1", `{"user_uuid":"t1","language":"es","n":1}`)
	publish(t, js, "user", "t1", `{"operation":"update","uuid":"t1","country":"FR"}`)
	cfg := enricher.Config{Hold: 20 * time.Second, ParkRetry: 200 * time.Millisecond}
	a := startEnricher(t, connect(t, srv), cfg)
	p := subjects.EnricherPartitionOf("t1")
	testenv.Eventually(t, 10*time.Second, "the lesson held and the update applied behind it", func() bool {
		u, err := a.e.Store().User(ctx, p, "t1")
		return err == nil && u != nil && u.Country != nil && *u.Country == "FR" && a.e.Stats().Parked > 0
	})
	if n := outputCount(t, js); n != 1 {
		t.Fatalf("%d events out while the lesson is held, want only the user create", n)
	}
	a.stop() // graceful: its partitions are unpinned, the parked events are outstanding
	publish(t, js, "subscription", "t1", `{"operation":"create","user_uuid":"t1","language":"es","subscription_status":"trial","subscription_type":"free"}`)
	startEnricher(t, connect(t, srv), cfg)
	testenv.EventuallyState(t, 20*time.Second, "all 4 events out", func() (bool, any) { seen := outputCount(t, js); return seen == 4, seen })
	want := []string{"user", "lesson{n:1 status:trial typ:free country:DE enrichment:complete}", "user", "subscription"}
	if got := kindsAndLessons(readOutput(t, js), "t1"); !slices.Equal(got, want) {
		t.Errorf("out:\n got  %q\n want %q", got, want)
	}
}
