package main

import (
	"context"

	"jetfleet/workers/consume"
	"jetfleet/workers/counter"
)

// counterRoles are the worker roles of the counter product.
func counterRoles() []role {
	return []role{{
		name: "counter",
		run: func(ctx context.Context, d roleDeps, _ *consume.Metrics) error {
			ch, err := d.clickhouse("counter")
			if err != nil {
				return err
			}
			return counter.New(d.js, ch, counter.Config{}, d.log).Run(ctx)
		},
	}}
}
