package subjects_test

import (
	"errors"
	"fmt"
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
// is told to drain and delete it, not half-provisioned.
func TestProvisionRefusesNextToTheLegacyInputStream(t *testing.T) {
	_, js := testenv.JetStream(t)
	ctx := testenv.Context(t, 30*time.Second)
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "INPUT", Subjects: []string{"input.part.*.*"}}); err != nil {
		t.Fatal(err)
	}
	err := subjects.Provision(ctx, js, subjects.Options{})
	if err == nil || !strings.Contains(err.Error(), "nats stream rm INPUT") {
		t.Fatalf("provision next to INPUT: %v, want how to drain and delete it", err)
	}
}
