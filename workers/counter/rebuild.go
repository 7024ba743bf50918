package counter

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/nats-io/nats.go/jetstream"

	"jetfleet/analytics/counterdb"
	"jetfleet/subjects"
)

// RebuildReport says what Rebuild did.
type RebuildReport struct {
	Since    time.Time
	Messages int    // raw batches read
	Rows     int    // rollup rows written
	Events   uint64 // events in them
	Took     time.Duration
}

// Rebuild phases, in order.
const (
	RebuildRead  = "read"  // raw batches read from VIEWS
	RebuildWrite = "write" // rollup rows written to ClickHouse
)

// RebuildProgress is where a rebuild stands in its current phase: Done of
// about Total items (raw batches when reading, rollup rows when writing).
// Total counts the stream's batches since the first minute rebuilt; batches
// past a partition's watermark are not read, so Done may end below it.
type RebuildProgress struct {
	Phase       string
	Done, Total int
	Elapsed     time.Duration // since the phase began
}

// Rate is items per second so far in the phase.
func (p RebuildProgress) Rate() float64 {
	if p.Elapsed <= 0 {
		return 0
	}
	return float64(p.Done) / p.Elapsed.Seconds()
}

// Left estimates the time the phase still needs at its rate so far (0 when
// unknown or done).
func (p RebuildProgress) Left() time.Duration {
	r := p.Rate()
	if r <= 0 || p.Done >= p.Total {
		return 0
	}
	return time.Duration(float64(p.Total-p.Done) / r * float64(time.Second))
}

// Rebuild recomputes the rollups of every minute at or after since from the
// raw batches kept in VIEWS: it deletes those rollups (minute, hour and
// tenant-minute tables) and writes them again from the stream, up to each
// partition's watermark (later batches are counted by the workers when they
// start). since is truncated to the hour; the stream must still hold every
// batch that can carry such a minute (those published from
// since-CounterMaxFutureGap on).
//
// The counter workers must be stopped: Rebuild refuses while any partition
// lease is held.
//
// progress, when not nil, is called as the rebuild advances (after every
// fetched batch of messages and every written chunk of rows).
func Rebuild(ctx context.Context, js jetstream.JetStream, ch driver.Conn, since time.Time, log *slog.Logger, progress func(RebuildProgress)) (RebuildReport, error) {
	began := time.Now()
	if progress == nil {
		progress = func(RebuildProgress) {}
	}
	since = since.UTC().Truncate(time.Hour)
	rep := RebuildReport{Since: since}
	owners, err := js.KeyValue(ctx, subjects.CounterOwnersBucket)
	if err != nil {
		return rep, fmt.Errorf("counter owners bucket: %w", err)
	}
	for p := range subjects.CounterPartitions {
		if e, err := owners.Get(ctx, subjects.CounterLeaseKey(p)); err == nil {
			return rep, fmt.Errorf("partition %d is owned by worker %s: stop the counter workers first (leases expire %v after they stop)", p, e.Value(), subjects.CounterLeaseTTL)
		}
	}
	stream, err := js.Stream(ctx, subjects.CounterStream)
	if err != nil {
		return rep, fmt.Errorf("stream %s: %w", subjects.CounterStream, err)
	}
	info, err := stream.Info(ctx)
	if err != nil {
		return rep, fmt.Errorf("stream %s: %w", subjects.CounterStream, err)
	}
	from := since.Add(-subjects.CounterMaxFutureGap)
	if info.State.Msgs > 0 && info.State.FirstTime.After(from) && info.State.FirstSeq > 1 {
		return rep, fmt.Errorf("the stream's oldest batch is from %s: minutes since %s may have lost raw events; choose --since after %s",
			info.State.FirstTime.UTC().Format(time.RFC3339), since.Format(time.RFC3339),
			info.State.FirstTime.Add(subjects.CounterMaxFutureGap).UTC().Truncate(time.Hour).Add(time.Hour).Format(time.RFC3339))
	}

	// Read first, so a failure leaves the rollups untouched.
	total, err := countSince(ctx, stream, from)
	if err != nil {
		return rep, err
	}
	readStart := time.Now()
	agg := map[aggKey]agg{}
	for p := range subjects.CounterPartitions {
		wm, err := counterdb.PartitionWatermark(ctx, ch, "", p)
		if err != nil {
			return rep, err
		}
		if wm == 0 {
			continue
		}
		n, err := readPartition(ctx, stream, p, from, wm, since, agg, func(n int) {
			progress(RebuildProgress{Phase: RebuildRead, Done: rep.Messages + n, Total: max(total, rep.Messages+n), Elapsed: time.Since(readStart)})
		})
		if err != nil {
			return rep, err
		}
		rep.Messages += n
	}
	progress(RebuildProgress{Phase: RebuildRead, Done: rep.Messages, Total: rep.Messages, Elapsed: time.Since(readStart)})

	for _, t := range []struct{ table, col string }{
		{"counter_minute", "minute"}, {"counter_hour", "hour"}, {"counter_tenant_minute", "minute"},
	} {
		if err := deleteSince(ctx, ch, t.table, t.col, since); err != nil {
			return rep, err
		}
	}
	rows := make([]counterdb.Row, 0, len(agg))
	for k, a := range agg {
		rows = append(rows, counterdb.Row{Tenant: k.tenant, VideoID: k.video, Type: k.typ, Minute: time.Unix(k.minute, 0).UTC(), Events: a.events, Total: a.total})
		rep.Events += a.events
	}
	writeStart := time.Now()
	for start := 0; start < len(rows); start += 200_000 {
		end := min(start+200_000, len(rows))
		if err := counterdb.Flush(ctx, ch, "", rows[start:end], nil); err != nil {
			return rep, fmt.Errorf("write rebuilt rollups (rows %d-%d of %d; run rebuild again): %w", start, end, len(rows), err)
		}
		progress(RebuildProgress{Phase: RebuildWrite, Done: end, Total: len(rows), Elapsed: time.Since(writeStart)})
	}
	rep.Rows = len(rows)
	rep.Took = time.Since(began)
	log.Info("counter rollups rebuilt", "since", since, "messages", rep.Messages, "rows", rep.Rows, "events", rep.Events, "took", rep.Took.Round(time.Millisecond))
	return rep, nil
}

// countSince returns how many batches the stream holds from from on (all
// partitions), for the progress of the read phase.
func countSince(ctx context.Context, stream jetstream.Stream, from time.Time) (int, error) {
	cons, err := stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{subjects.CounterAll},
		DeliverPolicy:  jetstream.DeliverByStartTimePolicy,
		OptStartTime:   &from,
	})
	if err != nil {
		return 0, fmt.Errorf("count batches since %s: %w", from.Format(time.RFC3339), err)
	}
	batch, err := cons.FetchNoWait(1)
	if err != nil {
		return 0, fmt.Errorf("count batches since %s: %w", from.Format(time.RFC3339), err)
	}
	for msg := range batch.Messages() {
		if md, err := msg.Metadata(); err == nil {
			return int(md.NumPending) + 1, nil
		}
	}
	return 0, nil
}

// readPartition aggregates partition p's batches published from from up to
// sequence wm, keeping rows of minutes at or after since, and calls read with
// the number read so far after each fetched batch.
func readPartition(ctx context.Context, stream jetstream.Stream, p int, from time.Time, wm uint64, since time.Time, agg map[aggKey]agg, read func(n int)) (int, error) {
	cons, err := stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{subjects.CounterSubject(p)},
		DeliverPolicy:  jetstream.DeliverByStartTimePolicy,
		OptStartTime:   &from,
	})
	if err != nil {
		return 0, fmt.Errorf("read partition %d: %w", p, err)
	}
	n := 0
	for {
		batch, err := cons.Fetch(1000, jetstream.FetchMaxWait(time.Second))
		if err != nil {
			return n, fmt.Errorf("read partition %d: %w", p, err)
		}
		got := 0
		for msg := range batch.Messages() {
			got++
			md, err := msg.Metadata()
			if err != nil {
				continue
			}
			if md.Sequence.Stream > wm {
				return n, nil
			}
			n++
			var b subjects.CounterBatch
			if json.Unmarshal(msg.Data(), &b) != nil || b.Validate(p) != nil {
				continue // dead-lettered by the worker, never counted
			}
			for _, r := range b.Rows {
				if r.Minute < since.Unix() {
					continue
				}
				k := aggKey{r.Tenant, r.VideoID, r.Type, r.Minute}
				a := agg[k]
				a.events += r.Count
				a.total += r.Sum
				agg[k] = a
			}
			if md.Sequence.Stream == wm || md.NumPending == 0 {
				return n, nil
			}
		}
		read(n)
		if err := batch.Error(); err != nil && !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, jetstream.ErrNoMessages) {
			if got == 0 {
				return n, nil
			}
		}
		if got == 0 {
			return n, nil
		}
	}
}

// deleteSince deletes rows at or after since (never the watermark rows) and
// waits for the mutation: ClickHouse runs ALTER … DELETE in the background.
func deleteSince(ctx context.Context, ch driver.Conn, table, col string, since time.Time) error {
	if err := ch.Exec(ctx, "ALTER TABLE "+table+" DELETE WHERE tenant != '' AND "+col+" >= ?", since); err != nil {
		return fmt.Errorf("delete %s since %s: %w", table, since.Format(time.RFC3339), err)
	}
	for {
		var pending uint64
		if err := ch.QueryRow(ctx, "SELECT count() FROM system.mutations WHERE database = currentDatabase() AND table = ? AND is_done = 0", table).Scan(&pending); err != nil {
			return fmt.Errorf("wait for delete on %s: %w", table, err)
		}
		if pending == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}
