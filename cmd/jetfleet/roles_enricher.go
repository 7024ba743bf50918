package main

import (
	"context"
	"time"

	"jetfleet/subjects"
	"jetfleet/workers/consume"
	"jetfleet/workers/enricher"
)

// enricherRoles are the worker roles of the enricher product: the enricher
// itself (ordered partitions, pinned to one worker each) and the writer of
// enriched lessons to ClickHouse.
func enricherRoles() []role {
	return []role{
		{
			name: "enricher",
			run: func(ctx context.Context, d roleDeps, m *consume.Metrics) error {
				e, err := enricher.New(ctx, d.js, enricher.Config{Hold: d.cfg.enricherHold()}, d.reg, d.log.With("role", "enricher"))
				if err != nil {
					return err
				}
				defer e.Close()
				return consume.NewOrdered(d.js, e.OrderedConfig("enricher"), e.Handle, m, d.log).Run(ctx)
			},
		},
		{
			name: "enricher-analytics",
			consumer: consume.Config{
				Role: "enricher-analytics", Stream: subjects.EnricherOutputStream, Consumer: subjects.EnricherAnalyticsConsumer,
				// Each handler waits for the flush that carries its row, so
				// the concurrency is the largest ClickHouse batch.
				Batch: 1000, Concurrency: 2000, FetchWait: 500 * time.Millisecond,
			},
			build: func(ctx context.Context, d roleDeps) (consume.Handler, error) {
				ch, err := d.clickhouse("enricher-analytics")
				if err != nil {
					return nil, err
				}
				sink, err := enricher.NewLessonSink(ch, d.log)
				if err != nil {
					return nil, err
				}
				return sink.Handle, nil
			},
		},
	}
}
