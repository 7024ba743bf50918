package enricher

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/nats-io/nats.go/jetstream"

	"jetfleet/subjects"
)

// LineError is one rejected line of an NDJSON input.
type LineError struct {
	Line   int
	Reason string
}

// LoadStats reports a bulk load.
type LoadStats struct {
	Users, Subscriptions int
	Rejected             []LineError // at most maxReported, in line order
	RejectedTotal        int
}

const maxReported = 100

// Load writes an initial state snapshot straight into the state buckets: one
// JSON object per line, a user (it has "uuid") or a subscription (it has
// "user_uuid" and "language"), validated like input events ("operation"
// may be left out). Writes are asynchronous publishes to the buckets'
// subjects, confirmed before Load returns. Snapshot records carry sequence
// 0, so any event that went through INPUT wins over them.
//
// Load is for seeding before the Enricher runs: a running Enricher may keep
// serving an older cached record for a user loaded under it.
func Load(ctx context.Context, js jetstream.JetStream, r io.Reader) (LoadStats, error) {
	var st LoadStats
	shards, err := subjects.EnricherShards(ctx, js)
	if err != nil {
		return st, err
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	line := 0
	reject := func(reason string) {
		st.RejectedTotal++
		if len(st.Rejected) < maxReported {
			st.Rejected = append(st.Rejected, LineError{Line: line, Reason: reason})
		}
	}
	for sc.Scan() {
		line++
		raw := sc.Bytes()
		if len(raw) == 0 {
			continue
		}
		kind, body, err := snapshotKind(raw)
		if err != nil {
			reject(err.Error())
			continue
		}
		ev, err := subjects.ParseEvent(kind, body)
		if err != nil {
			reject(err.Error())
			continue
		}
		var subject string
		var v any
		switch kind {
		case subjects.KindUser:
			var u subjects.UserState
			u.Apply(ev.User, 0)
			subject, v = subjects.KVPutSubject(subjects.EnricherUsersBucket(subjects.EnricherShardOf(u.UUID, shards)), u.UUID), &u
			st.Users++
		default:
			var s subjects.SubscriptionState
			s.Apply(ev.Subscription, 0)
			key := subjects.EnricherSubKey(s.UserUUID, s.Language)
			subject, v = subjects.KVPutSubject(subjects.EnricherSubsBucket(subjects.EnricherShardOf(s.UserUUID, shards)), key), &s
			st.Subscriptions++
		}
		data, err := json.Marshal(v)
		if err != nil {
			return st, fmt.Errorf("line %d: encode: %w", line, err)
		}
		if err := publishAsync(ctx, js, subject, data); err != nil {
			return st, fmt.Errorf("line %d: write state: %w", line, err)
		}
	}
	if err := sc.Err(); err != nil {
		return st, fmt.Errorf("read line %d: %w", line+1, err)
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-ctx.Done():
		return st, fmt.Errorf("wait for state writes: %w", ctx.Err())
	}
	return st, nil
}

// snapshotKind tells a user line from a subscription line and fills in the
// operation snapshots may leave out.
func snapshotKind(raw []byte) (string, []byte, error) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil || fields == nil {
		return "", nil, fmt.Errorf("not one JSON object")
	}
	kind := ""
	switch {
	case fields["uuid"] != nil:
		kind = subjects.KindUser
	case fields["user_uuid"] != nil:
		kind = subjects.KindSubscription
	default:
		return "", nil, fmt.Errorf(`neither a user (no "uuid") nor a subscription (no "user_uuid")`)
	}
	if _, ok := fields["operation"]; !ok {
		fields["operation"] = json.RawMessage(`"create"`)
		var err error
		if raw, err = json.Marshal(fields); err != nil {
			return "", nil, err
		}
	}
	return kind, raw, nil
}

// publishAsync publishes without waiting for the ack; when too many acks are
// outstanding it waits for them (back-pressure from a busy server) instead
// of failing.
func publishAsync(ctx context.Context, js jetstream.JetStream, subject string, data []byte) error {
	for {
		_, err := js.PublishAsync(subject, data)
		if !errors.Is(err, jetstream.ErrTooManyStalledMsgs) {
			return err
		}
		select {
		case <-js.PublishAsyncComplete():
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
