package subjects_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"jetfleet/internal/testenv"
	"jetfleet/subjects"
)

func TestInputTransformPartitionsByUserUUID(t *testing.T) {
	_, js := testenv.JetStream(t)
	ctx := testenv.Context(t, 30*time.Second)
	if err := subjects.Provision(ctx, js, subjects.Options{}); err != nil {
		t.Fatalf("provision: %v", err)
	}
	stream, err := js.Stream(ctx, subjects.EnricherInputStream)
	if err != nil {
		t.Fatal(err)
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
		msg, err := stream.GetMsg(ctx, ack.Sequence)
		if err != nil {
			t.Fatal(err)
		}
		p := subjects.EnricherPartitionOf(uuid)
		seen[p] = true
		want := strings.Replace(subjects.EnricherPartitionFilter(p), "*", subjects.EnricherKindLesson, 1)
		if msg.Subject != want {
			t.Errorf("user %s stored as %s, want %s", uuid, msg.Subject, want)
		}
		if kind := subjects.EnricherStoredKind(msg.Subject); kind != subjects.EnricherKindLesson {
			t.Errorf("kind of %s = %q", msg.Subject, kind)
		}
	}
	if len(seen) != subjects.EnricherPartitions {
		t.Errorf("%d users spread over %d partitions, want all %d", users, len(seen), subjects.EnricherPartitions)
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
