package analytics_test

import (
	"context"
	"testing"
	"time"

	"jetfleet/analytics"
	"jetfleet/internal/testenv"
	"jetfleet/subjects"
)

func TestAPersonsEngagementIsExportedOnceAndDeletedByAccount(t *testing.T) {
	ctx := testenv.Context(t, 60*time.Second)
	conn, _ := ch.Database(t)
	if _, err := analytics.Migrate(ctx, conn, analytics.Schema(), nil); err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 12, 1, 18, 30, 15, 0, time.UTC)
	w, err := analytics.NewBatchWriter(conn, analytics.WriterConfig{Table: analytics.EngagementTable, Columns: analytics.EngagementColumns}, nil)
	if err != nil {
		t.Fatal(err)
	}
	rows := []subjects.EventsEngagement{
		{Kind: subjects.EngagementHeartbeat, EventID: "ev1", ID: subjects.HeartbeatID("u1", at), UserID: "u1", At: at},
		{Kind: subjects.EngagementHeartbeat, EventID: "ev1", ID: subjects.HeartbeatID("u1", at), UserID: "u1", At: at.Add(20 * time.Second)}, // second tab
		{Kind: subjects.EngagementMessage, EventID: "ev1", ID: "7", UserID: "u1", Room: "main", At: at},
		{Kind: subjects.EngagementMessage, EventID: "ev1", ID: "8", UserID: "u2", Room: "main", At: at},
	}
	for _, r := range rows {
		if err := w.Append(ctx, analytics.EngagementRow(r)...); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(ctx); err != nil {
		t.Fatal(err)
	}
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
