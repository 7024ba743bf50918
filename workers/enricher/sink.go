package enricher

import (
	"context"
	"log/slog"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/nats-io/nats.go/jetstream"

	"jetfleet/analytics"
	"jetfleet/internal/enricherevents"
	"jetfleet/subjects"
	"jetfleet/workers/consume"
)

// LessonSink copies emitted lessons from OUTPUT into ClickHouse
// (analytics.EnricherLessonsTable), each with the account that sent it
// (subjects.EnricherOwnerHeader). A message is acknowledged only after the
// INSERT carrying its row succeeded, so a ClickHouse outage holds messages
// in OUTPUT instead of losing them; a redelivered message writes the same
// row again, which the table's ReplacingMergeTree collapses.
type LessonSink struct {
	w *analytics.BatchWriter
}

// NewLessonSink returns a sink writing through conn.
func NewLessonSink(conn driver.Conn, log *slog.Logger) (*LessonSink, error) {
	w, err := analytics.NewBatchWriter(conn, analytics.WriterConfig{
		Table:   analytics.EnricherLessonsTable,
		Columns: analytics.EnricherLessonsColumns,
		MaxRows: 10000, MaxBuffered: 100000,
	}, log)
	if err != nil {
		return nil, err
	}
	return &LessonSink{w: w}, nil
}

// Handle is the consume.Handler of the enricher-analytics role. Many run at
// once; each appends its row and waits for a flush that includes it, so
// concurrent handlers share one INSERT.
func (s *LessonSink) Handle(ctx context.Context, msg jetstream.Msg) error {
	md, err := msg.Metadata()
	if err != nil {
		return consume.Permanentf("not a JetStream message: %w", err)
	}
	// The parser the Enricher validated the lesson with: the row has the
	// fields the enrichment used, under the same names.
	l, err := enricherevents.ParseEnrichedLesson(msg.Data())
	if err != nil {
		return consume.Permanentf("emitted lesson: %w", err)
	}
	// The owner header was set by the ingest from the API key, never by
	// the body, so it says whose lesson this is.
	owner := msg.Headers().Get(subjects.EnricherOwnerHeader)
	if err := s.w.Append(ctx, md.Timestamp.UTC(), md.Sequence.Stream, l.UserUUID, l.Language, str(l.CourseUUID),
		str(l.SubscriptionType), str(l.SubscriptionStatus), str(l.Country), l.Enrichment, owner); err != nil {
		return err
	}
	return s.w.Flush(ctx)
}

func str(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}
