package counter

import (
	"context"

	"jetfleet/workers/consume"
)

// Roles is the counter role: partition owners that pull in order and ack
// after their ClickHouse flush, so it runs its own loop.
func Roles() []consume.Role {
	return []consume.Role{{
		Name: "counter",
		Run: func(ctx context.Context, d consume.Deps, _ *consume.Metrics) error {
			ch, err := d.RequireClickHouse("counter")
			if err != nil {
				return err
			}
			return New(d.JS, ch, Config{}, d.Log).Run(ctx)
		},
	}}
}
