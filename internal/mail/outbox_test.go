package mail_test

import (
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"jetfleet/internal/mail"
	"jetfleet/internal/testenv"
	"jetfleet/subjects"
)

// provisioned starts a JetStream server with every subjects asset.
func provisioned(t *testing.T) jetstream.JetStream {
	t.Helper()
	_, js := testenv.JetStream(t)
	if err := subjects.Provision(ctx(t), js, subjects.Options{}); err != nil {
		t.Fatalf("provision: %v", err)
	}
	return js
}

func outbox(t *testing.T) *mail.Outbox {
	t.Helper()
	js := provisioned(t)
	kv, err := js.KeyValue(ctx(t), subjects.OutboxBucket)
	if err != nil {
		t.Fatalf("open %s: %v", subjects.OutboxBucket, err)
	}
	return mail.NewOutbox(kv)
}

func mailWithID(id string) subjects.Mail {
	m := signInMail()
	m.ID = id
	return m
}

func ids(entries []mail.Entry) []string {
	out := make([]string, len(entries))
	for i, e := range entries {
		out[i] = e.Mail.ID
	}
	return out
}

func TestOutboxListsNewestFirst(t *testing.T) {
	o := outbox(t)
	start := time.Now()
	for _, id := range []string{"first", "second", "third"} {
		if err := o.Send(ctx(t), mailWithID(id)); err != nil {
			t.Fatalf("Send %s: %v", id, err)
		}
	}

	all, err := o.List(ctx(t), 0)
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	if got := ids(all); len(got) != 3 || got[0] != "third" || got[1] != "second" || got[2] != "first" {
		t.Fatalf("List(0) = %q, want [third second first]", got)
	}
	for i, e := range all {
		if e.Stored.Before(start.Add(-time.Second)) || (i > 0 && e.Stored.After(all[i-1].Stored)) {
			t.Errorf("entry %d stored at %v, out of order or before the test", i, e.Stored)
		}
		if e.Mail != mailWithID(e.Mail.ID) {
			t.Errorf("entry %d = %+v, want the mail as sent", i, e.Mail)
		}
	}

	newest, err := o.List(ctx(t), 2)
	if err != nil {
		t.Fatalf("List(2): %v", err)
	}
	if got := ids(newest); len(got) != 2 || got[0] != "third" || got[1] != "second" {
		t.Fatalf("List(2) = %q, want [third second]", got)
	}
}

func TestOutboxListOfAnEmptyOutboxIsEmpty(t *testing.T) {
	entries, err := outbox(t).List(ctx(t), 10)
	if err != nil || len(entries) != 0 {
		t.Fatalf("List = %v, %v; want none", entries, err)
	}
}

func TestOutboxGetReturnsTheMailUnderAListedKey(t *testing.T) {
	o := outbox(t)
	// Characters KV keys do not allow are replaced in the key, not in the mail.
	m := mailWithID("magic-link:tok/1.2 ü")
	if err := o.Send(ctx(t), m); err != nil {
		t.Fatalf("Send: %v", err)
	}
	list, err := o.List(ctx(t), 1)
	if err != nil || len(list) != 1 {
		t.Fatalf("List = %v, %v", list, err)
	}
	got, err := o.Get(ctx(t), list[0].Key)
	if err != nil {
		t.Fatalf("Get(%q): %v", list[0].Key, err)
	}
	if got.Mail != m || got.Key != list[0].Key || !got.Stored.Equal(list[0].Stored) {
		t.Fatalf("Get = %+v, want %+v", got, list[0])
	}
}

func TestOutboxGetOfAnUnknownOrMalformedKeyIsErrNotFound(t *testing.T) {
	o := outbox(t)
	for _, key := range []string{
		"00000000000000000001.nothing-here",
		"not-a-key",
		"../../etc/passwd",
		"",
	} {
		if _, err := o.Get(ctx(t), key); !errors.Is(err, mail.ErrNotFound) {
			t.Errorf("Get(%q) = %v, want ErrNotFound", key, err)
		}
	}
}
