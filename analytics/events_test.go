package analytics_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"jetfleet/analytics"
	"jetfleet/internal/testenv"
	"jetfleet/subjects"
)

func TestAPersonsEngagementIsExportedOnceAndDeletedByAccount(t *testing.T) {
	ctx := testenv.Context(t, 60*time.Second)
	at := time.Date(2026, 12, 1, 18, 30, 15, 0, time.UTC)
	rows := []subjects.EventsEngagement{
		{Kind: subjects.EngagementHeartbeat, EventID: "ev1", ID: subjects.HeartbeatID("u1", at), UserID: "u1", At: at},
		{Kind: subjects.EngagementHeartbeat, EventID: "ev1", ID: subjects.HeartbeatID("u1", at), UserID: "u1", At: at.Add(20 * time.Second)}, // second tab
		{Kind: subjects.EngagementMessage, EventID: "ev1", ID: "7", UserID: "u1", Room: "main", At: at},
		{Kind: subjects.EngagementMessage, EventID: "ev1", ID: "8", UserID: "u2", Room: "main", At: at},
	}
	conn := engagementDB(t, ctx, rows...)
	got, err := analytics.EngagementOf(ctx, conn, "u1")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].EventID != "ev1" || !got[0].At.Equal(at) {
		t.Fatalf("export of u1: %+v, want one heartbeat and one message", got)
	}
	if err := analytics.ForgetEngagement(ctx, conn, "u1"); err != nil {
		t.Fatal(err)
	}
	testenv.EventuallyState(t, 30*time.Second, "u1's rows are deleted", func() (bool, any) {
		got, err := analytics.EngagementOf(context.Background(), conn, "u1")
		return err == nil && len(got) == 0, got
	})
	if other, err := analytics.EngagementOf(ctx, conn, "u2"); err != nil || len(other) != 1 {
		t.Fatalf("u2's rows after deleting u1's: %+v %v", other, err)
	}
}

func TestLiveFiguresCountParticipantsOfTheLastTwoMinutesAndMessagesPerMinute(t *testing.T) {
	ctx := testenv.Context(t, 60*time.Second)
	now := time.Date(2026, 12, 1, 18, 30, 40, 0, time.UTC)
	hb := func(uid string, at time.Time) subjects.EventsEngagement {
		return subjects.EventsEngagement{Kind: subjects.EngagementHeartbeat, EventID: "ev1", ID: subjects.HeartbeatID(uid, at), UserID: uid, At: at}
	}
	rows := []subjects.EventsEngagement{
		hb("u1", now.Add(-30*time.Second)), hb("u1", now.Add(-10*time.Second)), // two tabs: one participant
		hb("u2", now.Add(-90*time.Second)),
		hb("u3", now.Add(-5*time.Minute)), // left
		hb("u4", now.Add(-20*time.Second)),
		hb("admin:org1", now.Add(-20*time.Second)), // a host without a ticket is no participant
	}
	rows[4].EventID = "ev2" // another event's
	rows[5].UserID = "org1"
	for i := range 3 {
		rows = append(rows, subjects.EventsEngagement{Kind: subjects.EngagementMessage, EventID: "ev1", ID: fmt.Sprint(i), UserID: "u1", Room: "main", Ref: "reg1", At: now.Add(-90 * time.Second)})
	}
	rows = append(rows, subjects.EventsEngagement{Kind: subjects.EngagementMessage, EventID: "ev1", ID: "9", UserID: "u2", Room: "main", At: now.Add(-3 * time.Minute)})
	// The host chats most, but is no participant.
	for i := range 4 {
		rows = append(rows, subjects.EventsEngagement{Kind: subjects.EngagementMessage, EventID: "ev1", ID: fmt.Sprint(20 + i), UserID: "org1", Room: "main", Ref: "admin:org1", At: now.Add(-3 * time.Minute)})
	}
	conn := engagementDB(t, ctx, append(rows, rows...)...) // every row written twice
	f, err := analytics.EventLiveFigures(ctx, conn, "ev1", now, 5)
	if err != nil {
		t.Fatal(err)
	}
	if f.ConnectedNow != 2 {
		t.Errorf("connected now %d, want 2 (u1 in two tabs, u2; not the host)", f.ConnectedNow)
	}
	if n := len(f.MessagesPerMinute); n != 30 {
		t.Fatalf("%d minutes of messages, want 30", n)
	}
	if last := f.MessagesPerMinute[29]; !last.Minute.Equal(now.Truncate(time.Minute).Add(-time.Minute)) || last.Count != 3 {
		t.Errorf("last complete minute %+v, want 3 messages at 18:29", last)
	}
	// Minute 18:27 holds u2's message and the host's four.
	if m := f.MessagesPerMinute[27]; m.Count != 5 {
		t.Errorf("minute 18:27 %+v, want 5 messages", m)
	}
	want := []analytics.Contributor{{UserID: "u1", AuthorID: "reg1", Messages: 3}, {UserID: "u2", Messages: 1}}
	if !slices.Equal(f.Top, want) {
		t.Errorf("top contributors %+v, want %+v (not the host)", f.Top, want)
	}
}

func TestTeamActivityNamesWhoIsConnectedAndCountsEachTeamRoomsRecentMessages(t *testing.T) {
	ctx := testenv.Context(t, 60*time.Second)
	now := time.Date(2026, 12, 1, 18, 30, 40, 0, time.UTC)
	hb := func(who string, at time.Time) subjects.EventsEngagement {
		return subjects.EventsEngagement{Kind: subjects.EngagementHeartbeat, EventID: "ev1", ID: subjects.HeartbeatID(who, at), UserID: "acct-" + who, At: at}
	}
	msg := func(id, room string, at time.Time) subjects.EventsEngagement {
		return subjects.EventsEngagement{Kind: subjects.EngagementMessage, EventID: "ev1", ID: id, UserID: "acct", Room: room, Ref: "reg1", At: at}
	}
	rows := []subjects.EventsEngagement{
		hb("reg1", now.Add(-30*time.Second)), hb("reg1", now.Add(-70*time.Second)),
		hb("reg2", now.Add(-5*time.Minute)), // left
		hb("admin:org", now.Add(-10*time.Second)),
		msg("1", "teamA", now.Add(-time.Minute)), msg("2", "teamA", now.Add(-9*time.Minute)),
		msg("3", "teamA", now.Add(-11*time.Minute)), // before the window
		msg("4", "teamB", now.Add(-2*time.Minute)),
		msg("5", "main", now.Add(-time.Minute)),
	}
	other := hb("reg3", now.Add(-10*time.Second))
	other.EventID = "ev2"
	conn := engagementDB(t, ctx, append(append(rows, rows...), other)...)
	a, err := analytics.EventTeamActivity(ctx, conn, "ev1", now, 10*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(a.Connected, []string{"reg1"}) {
		t.Errorf("connected %q, want reg1 only", a.Connected)
	}
	if len(a.Messages) != 2 || a.Messages["teamA"] != 2 || a.Messages["teamB"] != 1 {
		t.Errorf("team messages %v, want teamA 2, teamB 1", a.Messages)
	}
}

// engagementDB is a new database with the schema and rows written, as
// the events-engagement role writes them.
func engagementDB(t *testing.T, ctx context.Context, rows ...subjects.EventsEngagement) driver.Conn {
	t.Helper()
	conn, _ := ch.Database(t)
	if _, err := analytics.Migrate(ctx, conn, analytics.Schema(), nil); err != nil {
		t.Fatal(err)
	}
	w, err := analytics.NewBatchWriter(conn, analytics.WriterConfig{Table: analytics.EngagementTable, Columns: analytics.EngagementColumns}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rows {
		if err := w.Append(ctx, analytics.EngagementRow(r)...); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	return conn
}
