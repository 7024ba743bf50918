package subjects_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"jetfleet/internal/testenv"
	"jetfleet/subjects"
)

func TestProvisionTwiceChangesNothing(t *testing.T) {
	_, js := testenv.JetStream(t)
	ctx := testenv.Context(t, 30*time.Second)

	if err := subjects.Provision(ctx, js, subjects.Options{}); err != nil {
		t.Fatalf("first provision: %v", err)
	}
	before := snapshot(t, js)
	if err := subjects.Provision(ctx, js, subjects.Options{}); err != nil {
		t.Fatalf("second provision: %v", err)
	}
	after := snapshot(t, js)
	for name, b := range before {
		if a := after[name]; a != b {
			t.Errorf("stream %s changed on second provision: %+v → %+v", name, b, a)
		}
	}
	for _, cfg := range subjects.Streams(subjects.Options{}) {
		if _, ok := after[cfg.Name]; !ok {
			t.Errorf("stream %s not provisioned", cfg.Name)
		}
	}
	for _, kv := range subjects.KeyValues(subjects.Options{}) {
		if _, err := js.KeyValue(ctx, kv.Bucket); err != nil {
			t.Errorf("kv %s: %v", kv.Bucket, err)
		}
	}
	for _, ob := range subjects.ObjectStores(subjects.Options{}) {
		if _, err := js.ObjectStore(ctx, ob.Bucket); err != nil {
			t.Errorf("object store %s: %v", ob.Bucket, err)
		}
	}
	for stream, cs := range subjects.Consumers(subjects.Options{}) {
		for _, c := range cs {
			if _, err := js.Consumer(ctx, stream, c.Durable); err != nil {
				t.Errorf("consumer %s/%s: %v", stream, c.Durable, err)
			}
		}
	}
}

type streamState struct {
	created  time.Time
	lastSeq  uint64
	maxAge   time.Duration
	subjects int
}

func snapshot(t *testing.T, js jetstream.JetStream) map[string]streamState {
	t.Helper()
	ctx := testenv.Context(t, 10*time.Second)
	out := map[string]streamState{}
	lister := js.ListStreams(ctx)
	for info := range lister.Info() {
		out[info.Config.Name] = streamState{info.Created, info.State.LastSeq, info.Config.MaxAge, len(info.Config.Subjects)}
	}
	if err := lister.Err(); err != nil {
		t.Fatalf("list streams: %v", err)
	}
	return out
}

func TestProvisionRestoresChangedConfig(t *testing.T) {
	_, js := testenv.JetStream(t)
	ctx := testenv.Context(t, 30*time.Second)
	if err := subjects.Provision(ctx, js, subjects.Options{}); err != nil {
		t.Fatal(err)
	}
	stream, err := js.Stream(ctx, subjects.DLQStream)
	if err != nil {
		t.Fatal(err)
	}
	cfg := stream.CachedInfo().Config
	want := cfg.MaxAge
	cfg.MaxAge = time.Hour
	if _, err := js.UpdateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	if err := subjects.Provision(ctx, js, subjects.Options{}); err != nil {
		t.Fatal(err)
	}
	info, err := stream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.Config.MaxAge != want {
		t.Fatalf("MaxAge = %v after provision, want %v", info.Config.MaxAge, want)
	}
}

// The SCHEDULES stream must accept a definition and deliver its ticks to the
// tick subject; a cron that fires every second proves the wiring without
// waiting for the real hourly ones.
func TestScheduleFiresTickOnItsSubject(t *testing.T) {
	_, js := testenv.JetStream(t)
	ctx := testenv.Context(t, 30*time.Second)
	if err := subjects.Provision(ctx, js, subjects.Options{}); err != nil {
		t.Fatal(err)
	}
	payload, _ := json.Marshal(subjects.Tick{Schedule: "test"})
	if _, err := js.Publish(ctx, subjects.ScheduleDef("test"), payload,
		jetstream.WithScheduleCron("* * * * * *"),
		jetstream.WithScheduleTarget(subjects.ScheduleTick("test"))); err != nil {
		t.Fatalf("publish schedule: %v", err)
	}
	cons, err := js.CreateConsumer(ctx, subjects.SchedulesStream, jetstream.ConsumerConfig{
		FilterSubject: subjects.ScheduleTick("test"),
		AckPolicy:     jetstream.AckExplicitPolicy,
	})
	if err != nil {
		t.Fatal(err)
	}
	msg, err := cons.Next(jetstream.FetchMaxWait(5 * time.Second))
	if err != nil {
		t.Fatalf("no tick within 5s: %v", err)
	}
	var tick subjects.Tick
	if err := json.Unmarshal(msg.Data(), &tick); err != nil || tick.Schedule != "test" {
		t.Fatalf("tick payload %q: %v", msg.Data(), err)
	}
	if got := subjects.ScheduleName(msg.Subject()); got != "test" {
		t.Fatalf("ScheduleName(%q) = %q", msg.Subject(), got)
	}
	// The definition survives its own firing: it is still the last message on
	// its subject.
	stream, _ := js.Stream(ctx, subjects.SchedulesStream)
	def, err := stream.GetLastMsgForSubject(ctx, subjects.ScheduleDef("test"))
	if err != nil {
		t.Fatalf("definition gone after firing: %v", err)
	}
	if def.Header.Get(jetstream.ScheduleHeader) == "" {
		t.Fatal("definition lost its schedule header")
	}
}

// The Enricher's state shard count is recorded on the partition streams, where workers read
// it. It may change while the state is empty; once keys are stored, a
// change would make every key be looked up in the wrong bucket, so
// provisioning refuses and says what to do.
func TestEnricherStateShardsAreRecordedAndNotChangedUnderState(t *testing.T) {
	_, js := testenv.JetStream(t)
	ctx := testenv.Context(t, 30*time.Second)

	if err := subjects.Provision(ctx, js, subjects.Options{EnricherStateShards: 2}); err != nil {
		t.Fatal(err)
	}
	if n, err := subjects.EnricherShards(ctx, js); err != nil || n != 2 {
		t.Fatalf("recorded shards %d, %v; want 2", n, err)
	}
	// Empty state: the count may still change.
	if err := subjects.Provision(ctx, js, subjects.Options{EnricherStateShards: 3}); err != nil {
		t.Fatalf("change while the state is empty: %v", err)
	}
	if n, err := subjects.EnricherShards(ctx, js); err != nil || n != 3 {
		t.Fatalf("recorded shards %d, %v; want 3", n, err)
	}
	for s := range 3 {
		if _, err := js.KeyValue(ctx, subjects.EnricherSubsBucket(s)); err != nil {
			t.Errorf("bucket of shard %d: %v", s, err)
		}
	}
	kv, err := js.KeyValue(ctx, subjects.EnricherUsersBucket(subjects.EnricherShardOf("u1", 3)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(ctx, "u1", []byte(`{"uuid":"u1"}`)); err != nil {
		t.Fatal(err)
	}
	err = subjects.Provision(ctx, js, subjects.Options{EnricherStateShards: 8})
	if err == nil || !strings.Contains(err.Error(), "re-load the snapshot") {
		t.Fatalf("change with state stored: %v, want a refusal that says how to re-shard", err)
	}
	if n, _ := subjects.EnricherShards(ctx, js); n != 3 {
		t.Errorf("recorded shards %d after a refused change, want 3", n)
	}
	// The same count again is fine.
	if err := subjects.Provision(ctx, js, subjects.Options{EnricherStateShards: 3}); err != nil {
		t.Errorf("provision with the recorded count: %v", err)
	}
}
