package chat_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"jetfleet/internal/chat"
	"jetfleet/internal/testenv"
	"jetfleet/subjects"
)

func open(t *testing.T) (*chat.Store, jetstream.JetStream) {
	t.Helper()
	_, js := testenv.JetStream(t)
	ctx := testenv.Context(t, 10*time.Second)
	if err := subjects.Provision(ctx, js, subjects.Options{}); err != nil {
		t.Fatal(err)
	}
	s, err := chat.Open(ctx, js)
	if err != nil {
		t.Fatal(err)
	}
	return s, js
}

func post(t *testing.T, s *chat.Store, event, room, uid, text, cid string) chat.Message {
	t.Helper()
	m, _, err := s.Post(context.Background(), chat.Message{EventID: event, Room: room, UserID: uid, AuthorID: "reg-" + uid, Name: uid, Text: text}, cid)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestEveryMessageIsStoredWithA25DayTTLAndItsEngagement(t *testing.T) {
	s, js := open(t)
	ctx := context.Background()
	m := post(t, s, "ev", "main", "u1", "hi", "c1")
	st, _ := js.Stream(ctx, subjects.EventsChatStream)
	raw, err := st.GetMsg(ctx, m.ID)
	if err != nil {
		t.Fatal(err)
	}
	ttl, err := time.ParseDuration(raw.Header.Get("Nats-TTL"))
	if err != nil || ttl != 25*24*time.Hour {
		t.Errorf("Nats-TTL %q, want 25 days", raw.Header.Get("Nats-TTL"))
	}
	if raw.Subject != "eventschat.ev.main.u1" {
		t.Errorf("subject %s", raw.Subject)
	}
	eng, err := js.Stream(ctx, subjects.EventsEngagementStream)
	if err != nil {
		t.Fatal(err)
	}
	last, err := eng.GetLastMsgForSubject(ctx, subjects.EventsEngagementSubject("ev", subjects.EngagementMessage))
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf(`"id":"%d"`, m.ID); !strings.Contains(string(last.Data), want) || !strings.Contains(string(last.Data), `"user_id":"u1"`) || !strings.Contains(string(last.Data), `"ref":"reg-u1"`) {
		t.Errorf("engagement %s, want %s, the account and the author's engagement id", last.Data, want)
	}
}

func TestARetriedPostIsStoredOnce(t *testing.T) {
	s, _ := open(t)
	a := post(t, s, "ev", "main", "u1", "hi", "c1")
	b, dup, err := s.Post(context.Background(), chat.Message{EventID: "ev", Room: "main", UserID: "u1", Text: "hi"}, "c1")
	if err != nil || !dup || b.ID != a.ID {
		t.Fatalf("retry: seq %d dup %v err %v, first seq %d", b.ID, dup, err, a.ID)
	}
	// The same client id from another author is another message.
	if c := post(t, s, "ev", "main", "u2", "hi", "c1"); c.ID == a.ID {
		t.Error("two authors' posts collapsed")
	}
}

func TestHistoryReadsOneRoomBackwardsAndForwardsAmongOthers(t *testing.T) {
	s, _ := open(t)
	ctx := context.Background()
	var team []uint64
	// A sparse team room among a busy main room: backward reads widen
	// their window until they find the team's messages.
	for i := range 3000 {
		m := post(t, s, "ev", "main", "u1", fmt.Sprint(i), fmt.Sprint("m", i))
		if i%300 == 0 {
			team = append(team, post(t, s, "ev", "team1", "u2", fmt.Sprint(i), fmt.Sprint("t", i)).ID)
		}
		_ = m
	}
	got, more, err := s.Before(ctx, "ev", "team1", 0, 4)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(ids(got)) != fmt.Sprint(team[6:]) || !more {
		t.Errorf("last 4 of the team %v more=%v, want %v more=true", ids(got), more, team[6:])
	}
	got, more, _ = s.Before(ctx, "ev", "team1", team[6], 20)
	if fmt.Sprint(ids(got)) != fmt.Sprint(team[:6]) || more {
		t.Errorf("earlier %v more=%v, want %v more=false", ids(got), more, team[:6])
	}
	got, err = s.After(ctx, "ev", "team1", team[2], team[5], 100)
	if err != nil || fmt.Sprint(ids(got)) != fmt.Sprint(team[3:6]) {
		t.Errorf("after %d up to %d: %v %v", team[2], team[5], ids(got), err)
	}
	if got, more, _ := s.Before(ctx, "ev", "nobody", 0, 20); len(got) != 0 || more {
		t.Errorf("an empty room has %v", ids(got))
	}
}

func TestAPersonsMessagesAreExportedAndDeletedAcrossEventsAndRooms(t *testing.T) {
	s, js := open(t)
	ctx := context.Background()
	post(t, s, "ev1", "main", "u1", "mine 1", "a")
	post(t, s, "ev2", "team9", "u1", "mine 2", "b")
	other := post(t, s, "ev1", "main", "u2", "theirs", "c")
	msgs, err := s.OfUser(ctx, "u1")
	if err != nil || len(msgs) != 2 || msgs[0].Text != "mine 1" || msgs[1].Text != "mine 2" {
		t.Fatalf("export %+v %v", msgs, err)
	}
	for range 2 { // a second run (a retried request) deletes nothing more
		if _, err := s.ForgetUser(ctx, "u1"); err != nil {
			t.Fatal(err)
		}
	}
	if msgs, _ := s.OfUser(ctx, "u1"); len(msgs) != 0 {
		t.Errorf("left after deletion: %+v", msgs)
	}
	st, _ := js.Stream(ctx, subjects.EventsChatStream)
	if _, err := st.GetMsg(ctx, other.ID); err != nil {
		t.Errorf("someone else's message went too: %v", err)
	}
	if h, _, _ := s.Before(ctx, "ev1", "main", 0, 20); len(h) != 1 || h[0].ID != other.ID {
		t.Errorf("room history after deletion: %+v", h)
	}
}

func TestPostsAreCleanedAndBounded(t *testing.T) {
	for in, want := range map[string]error{
		"  hi  ":                             nil,
		"   ":                                chat.ErrEmpty,
		strings.Repeat("あ", chat.MaxRunes):   nil,
		strings.Repeat("あ", chat.MaxRunes+1): chat.ErrTooLong,
		"bell\a":                             chat.ErrInvalid,
		"line\nbreak":                        nil,
		"\xff":                               chat.ErrInvalid,
	} {
		if _, err := chat.CleanText(in); !errors.Is(err, want) {
			t.Errorf("%q: %v, want %v", in, err, want)
		}
	}
}

func ids(ms []chat.Message) []uint64 {
	out := make([]uint64, len(ms))
	for i, m := range ms {
		out[i] = m.ID
	}
	return out
}
