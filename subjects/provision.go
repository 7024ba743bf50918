package subjects

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
)

// Provision creates or updates every stream, consumer, KV bucket, object
// store and schedule. It is idempotent: a second run with the same options
// changes nothing, and a run with changed declarations updates the assets in
// place.
func Provision(ctx context.Context, js jetstream.JetStream, o Options) error {
	if err := migrateLegacyEnricherInput(ctx, js, o); err != nil {
		return err
	}
	if err := CheckEnricherMapping(ctx, js.Conn()); err != nil {
		return err
	}
	if err := checkEnricherShards(ctx, js, o); err != nil {
		return err
	}
	for _, cfg := range Streams(o) {
		if _, err := js.CreateOrUpdateStream(ctx, cfg); err != nil {
			return fmt.Errorf("provision stream %s: %w", cfg.Name, err)
		}
	}
	for stream, consumers := range Consumers(o) {
		for _, cfg := range consumers {
			if _, err := js.CreateOrUpdateConsumer(ctx, stream, cfg); err != nil {
				return fmt.Errorf("provision consumer %s on %s: %w", cfg.Durable, stream, err)
			}
		}
	}
	for _, cfg := range KeyValues(o) {
		if _, err := js.CreateOrUpdateKeyValue(ctx, cfg); err != nil {
			return fmt.Errorf("provision kv bucket %s: %w", cfg.Bucket, err)
		}
	}
	for _, cfg := range ObjectStores(o) {
		if _, err := js.CreateOrUpdateObjectStore(ctx, cfg); err != nil {
			return fmt.Errorf("provision object store %s: %w", cfg.Bucket, err)
		}
	}
	for _, s := range Schedules() {
		if err := provisionSchedule(ctx, js, s); err != nil {
			return fmt.Errorf("provision schedule %s: %w", s.Name, err)
		}
	}
	return nil
}

// provisionSchedule publishes the schedule's definition unless the stream
// already holds the same one: republishing an unchanged definition would
// restart it for nothing.
func provisionSchedule(ctx context.Context, js jetstream.JetStream, s Schedule) error {
	stream, err := js.Stream(ctx, SchedulesStream)
	if err != nil {
		return fmt.Errorf("lookup stream: %w", err)
	}
	def := ScheduleDef(s.Name)
	target := ScheduleTick(s.Name)
	last, err := stream.GetLastMsgForSubject(ctx, def)
	switch {
	case errors.Is(err, jetstream.ErrMsgNotFound):
	case err != nil:
		return fmt.Errorf("read current definition: %w", err)
	case last.Header.Get(jetstream.ScheduleHeader) == s.Cron &&
		last.Header.Get(jetstream.ScheduleTargetHeader) == target &&
		last.Header.Get(jetstream.ScheduleTimeZoneHeader) == s.TimeZone:
		return nil
	}
	payload, err := json.Marshal(Tick{Schedule: s.Name})
	if err != nil {
		return err
	}
	opts := []jetstream.PublishOpt{
		jetstream.WithScheduleCron(s.Cron),
		jetstream.WithScheduleTarget(target),
	}
	if s.TimeZone != "" {
		opts = append(opts, jetstream.WithScheduleTimeZone(s.TimeZone))
	}
	if _, err := js.Publish(ctx, def, payload, opts...); err != nil {
		return fmt.Errorf("publish definition: %w", err)
	}
	return nil
}
