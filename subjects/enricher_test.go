package subjects_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"jetfleet/internal/testenv"
	"jetfleet/subjects"
)

func TestServerMappingPartitionsByUserUUIDIntoOneStreamEach(t *testing.T) {
	_, js := testenv.JetStream(t)
	ctx := testenv.Context(t, 30*time.Second)
	if err := subjects.Provision(ctx, js, subjects.Options{}); err != nil {
		t.Fatalf("provision: %v", err)
	}
	seen := map[int]bool{}
	// Enough users that every partition gets some (hashing is not even).
	const users = 8 * subjects.EnricherPartitions
	for i := range users {
		uuid := fmt.Sprintf("user-%d", i)
		ack, err := js.Publish(ctx, subjects.EnricherInput(subjects.EnricherKindLesson, uuid), []byte(`{}`))
		if err != nil {
			t.Fatalf("publish: %v", err)
		}
		p := subjects.EnricherPartitionOf(uuid)
		seen[p] = true
		if ack.Stream != subjects.EnricherPartitionStream(p) {
			t.Fatalf("user %s stored in %s, want %s", uuid, ack.Stream, subjects.EnricherPartitionStream(p))
		}
		stream, err := js.Stream(ctx, ack.Stream)
		if err != nil {
			t.Fatal(err)
		}
		msg, err := stream.GetMsg(ctx, ack.Sequence)
		if err != nil {
			t.Fatal(err)
		}
		if want := subjects.EnricherPartitionSubject(p, subjects.EnricherKindLesson); msg.Subject != want {
			t.Errorf("user %s stored as %s, want %s", uuid, msg.Subject, want)
		}
		if kind := subjects.EnricherStoredKind(msg.Subject); kind != subjects.EnricherKindLesson {
			t.Errorf("kind of %s = %q", msg.Subject, kind)
		}
	}
	if len(seen) != subjects.EnricherPartitions {
		t.Errorf("%d users spread over %d partitions, want all %d", users, len(seen), subjects.EnricherPartitions)
	}
	// The stored form is taken as is (DLQ replays), an unknown kind not at all.
	if ack, err := js.Publish(ctx, subjects.EnricherPartitionSubject(3, subjects.EnricherKindUser), []byte(`{}`)); err != nil || ack.Stream != subjects.EnricherPartitionStream(3) {
		t.Errorf("publish to the stored form: %v %+v", err, ack)
	}
	if _, err := js.Publish(ctx, subjects.EnricherInput("lessons", "user-1"), []byte(`{}`)); !errors.Is(err, jetstream.ErrNoStreamResponse) {
		t.Errorf("publish of an unknown kind: err %v, want no responders", err)
	}
}

// The mapping's partition count is the streams'.
func TestServerMappingCountsThePartitions(t *testing.T) {
	if want := fmt.Sprintf("{{partition(%d,2)}}", subjects.EnricherPartitions); !strings.Contains(subjects.EnricherMappingDestination, want) {
		t.Fatalf("mapping destination %s lacks %s", subjects.EnricherMappingDestination, want)
	}
}

// A self-hosted server without the mapping is refused by Provision with the
// lines to add to its configuration.
func TestProvisionRefusesAServerWithoutTheMapping(t *testing.T) {
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoSigs: true, NoLog: true})
	if err != nil {
		t.Fatal(err)
	}
	ns.Start()
	t.Cleanup(ns.Shutdown)
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("server not ready")
	}
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	err = subjects.Provision(testenv.Context(t, 30*time.Second), js, subjects.Options{})
	if err == nil || !strings.Contains(err.Error(), subjects.EnricherServerMapping()) {
		t.Fatalf("provision without the mapping: %v, want the mapping to add", err)
	}
	if _, err := js.Stream(testenv.Context(t, 5*time.Second), subjects.EnricherPartitionStream(0)); !errors.Is(err, jetstream.ErrStreamNotFound) {
		t.Errorf("provision created streams before refusing: %v", err)
	}
}

func TestUpdateChangesOnlyTheFieldsItCarries(t *testing.T) {
	ptr := func(s string) *string { return &s }
	yes, no := true, false
	create := subjects.EnricherUserEvent{Operation: "create", UUID: "u1", Name: ptr("Ada"), Country: ptr("DE"), Active: &yes}
	update := subjects.EnricherUserEvent{Operation: "update", UUID: "u1", Country: ptr("FR"), Active: &no}
	var u subjects.EnricherUserState
	u.Apply(&create, 1)
	u.Apply(&update, 2)
	if *u.Name != "Ada" || *u.Country != "FR" || *u.Active != false || u.Seq != 2 {
		t.Fatalf("state after update: name=%v country=%v active=%v seq=%d", *u.Name, *u.Country, *u.Active, u.Seq)
	}
}

func TestSubscriptionKeySplitsBackIntoUserAndLanguage(t *testing.T) {
	for _, c := range []struct{ user, lang string }{{"u1", "es"}, {"user-0000042", "pt-BR"}, {"a_b", "en"}} {
		u, l := subjects.EnricherSubKeyParts(subjects.EnricherSubKey(c.user, c.lang))
		if u != c.user || l != c.lang {
			t.Errorf("EnricherSubKey(%q, %q) splits into %q, %q", c.user, c.lang, u, l)
		}
	}
}

// A deployment that still has the single INPUT stream of earlier versions
// with events not handled is told to drain it, and nothing is provisioned.
func TestProvisionRefusesNextToAnUndrainedLegacyInputStream(t *testing.T) {
	_, js := testenv.JetStream(t)
	ctx := testenv.Context(t, 30*time.Second)
	legacy := createLegacyInput(ctx, t, js, 5)
	if _, err := legacy.CreateConsumer(ctx, jetstream.ConsumerConfig{Durable: "enricher-p0", AckPolicy: jetstream.AckExplicitPolicy}); err != nil {
		t.Fatal(err)
	}
	err := subjects.Provision(ctx, js, subjects.Options{})
	if err == nil || !strings.Contains(err.Error(), "drain it") || !strings.Contains(err.Error(), "5 events not handled") {
		t.Fatalf("provision next to an undrained INPUT: %v, want how to drain it", err)
	}
	if _, err := js.Stream(ctx, subjects.EnricherPartitionStream(0)); !errors.Is(err, jetstream.ErrStreamNotFound) {
		t.Fatalf("partition stream after the refusal: %v, want none", err)
	}
}

// A drained legacy INPUT is replaced by the partition streams, which number
// their events after the last sequence it used: the stored state's
// sequences came from it, and an event numbered below them would be taken
// for an old one and never applied.
func TestProvisionMovesADrainedLegacyInputToPartitionStreamsNumberedAfterIt(t *testing.T) {
	_, js := testenv.JetStream(t)
	ctx := testenv.Context(t, 30*time.Second)
	legacy := createLegacyInput(ctx, t, js, 7)
	c, err := legacy.CreateConsumer(ctx, jetstream.ConsumerConfig{Durable: "enricher-p0", AckPolicy: jetstream.AckExplicitPolicy})
	if err != nil {
		t.Fatal(err)
	}
	batch, err := c.Fetch(7, jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	for m := range batch.Messages() {
		if err := m.DoubleAck(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if err := subjects.Provision(ctx, js, subjects.Options{}); err != nil {
		t.Fatalf("provision next to a drained INPUT: %v", err)
	}
	if _, err := js.Stream(ctx, "INPUT"); !errors.Is(err, jetstream.ErrStreamNotFound) {
		t.Fatalf("legacy INPUT after migrating: %v, want deleted", err)
	}
	user := "user-after-upgrade"
	ack, err := js.Publish(ctx, subjects.EnricherInput(subjects.EnricherKindUser, user), []byte(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	if want := subjects.EnricherPartitionStream(subjects.EnricherPartitionOf(user)); ack.Stream != want || ack.Sequence <= 7 {
		t.Fatalf("first event after the upgrade stored in %s at %d, want %s after sequence 7", ack.Stream, ack.Sequence, want)
	}
	if err := subjects.Provision(ctx, js, subjects.Options{}); err != nil {
		t.Fatalf("provision again: %v", err)
	}
}

// createLegacyInput creates the single input stream of earlier versions
// holding n events.
func createLegacyInput(ctx context.Context, t *testing.T, js jetstream.JetStream, n int) jetstream.Stream {
	t.Helper()
	s, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "INPUT", Subjects: []string{"input.part.*.*"}})
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if _, err := js.Publish(ctx, fmt.Sprintf("input.part.0.%s", subjects.EnricherKindUser), []byte(strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
	}
	return s
}
