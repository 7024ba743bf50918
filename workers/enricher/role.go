package enricher

import (
	"context"
	"time"

	"jetfleet/subjects"
	"jetfleet/workers/consume"
)

// Roles are the enricher's roles: the enricher itself (ordered partitions,
// pinned to one worker each) and the writer of enriched lessons to
// ClickHouse. cfg tunes the enricher (Hold from ENRICHER_HOLD).
func Roles(cfg Config) []consume.Role {
	return []consume.Role{{
		Name: "enricher",
		Run: func(ctx context.Context, d consume.Deps, m *consume.Metrics) error {
			e, err := New(ctx, d.JS, cfg, d.Registerer, d.Log.With("role", "enricher"))
			if err != nil {
				return err
			}
			defer e.Close()
			return consume.NewOrdered(d.JS, e.OrderedConfig("enricher"), e.Handle, m, d.Log).Run(ctx)
		},
	}, {
		Name: "enricher-analytics",
		Consumer: consume.Config{
			Role: "enricher-analytics", Stream: subjects.EnricherOutputStream, Consumer: subjects.EnricherAnalyticsConsumer,
			// Each handler waits for the flush that carries its row, so
			// the concurrency is the largest ClickHouse batch.
			Batch: 1000, Concurrency: 2000, FetchWait: 500 * time.Millisecond,
		},
		Build: func(ctx context.Context, d consume.Deps) (consume.Handler, error) {
			ch, err := d.RequireClickHouse("enricher-analytics")
			if err != nil {
				return nil, err
			}
			sink, err := NewLessonSink(ch, d.Log)
			if err != nil {
				return nil, err
			}
			return sink.Handle, nil
		},
	}}
}
