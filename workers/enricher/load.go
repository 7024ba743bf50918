package enricher

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/nats-io/nats.go/jetstream"

	"jetfleet/internal/enricherevents"
	"jetfleet/subjects"
)

// LineError is one rejected line of an NDJSON input.
type LineError struct {
	Line   int
	Reason string
}

// LoadStats reports a bulk load, so far or in all.
type LoadStats struct {
	Users, Subscriptions int
	Lines                int         // lines read
	Bytes                int64       // bytes read
	Rejected             []LineError // at most maxReported, in line order
	RejectedTotal        int
}

const (
	maxReported = 100
	// maxSnapshotLine bounds one line of a snapshot; a longer one is
	// rejected (by its number) and skipped.
	maxSnapshotLine = 1 << 20
)

// Load writes an initial state snapshot straight into the state buckets: one
// JSON object per line, a user (it has "uuid") or a subscription (it has
// "user_uuid" and "language"), validated like input events ("operation"
// may be left out). Writes are asynchronous publishes to the buckets'
// subjects, confirmed before Load returns. Snapshot records carry sequence
// 0, so any event that went through INPUT wins over them.
//
// A bad line (not a valid record, or over 1 MiB) is counted and reported by
// its number, and the load goes on. progress, when not nil, is called after
// every line with the counts so far (callers decide how often to show them).
//
// Load is for seeding before the Enricher runs: a running Enricher may keep
// serving an older cached record for a user loaded under it.
func Load(ctx context.Context, js jetstream.JetStream, r io.Reader, progress func(LoadStats)) (LoadStats, error) {
	var st LoadStats
	shards, err := subjects.EnricherShards(ctx, js)
	if err != nil {
		return st, err
	}
	br := bufio.NewReaderSize(r, 64*1024)
	line := 0
	reject := func(reason string) {
		st.RejectedTotal++
		if len(st.Rejected) < maxReported {
			st.Rejected = append(st.Rejected, LineError{Line: line, Reason: reason})
		}
	}
	for {
		raw, n, tooLong, err := readLine(br, maxSnapshotLine)
		if n == 0 && err == io.EOF {
			break
		}
		if err != nil && err != io.EOF {
			return st, fmt.Errorf("read line %d: %w", line+1, err)
		}
		line++
		st.Lines, st.Bytes = line, st.Bytes+int64(n)
		if progress != nil {
			progress(st)
		}
		if tooLong {
			reject(fmt.Sprintf("over %d bytes", maxSnapshotLine))
			continue
		}
		if len(bytes.TrimSpace(raw)) == 0 {
			continue
		}
		kind, body, err := snapshotKind(raw)
		if err != nil {
			reject(err.Error())
			continue
		}
		ev, err := enricherevents.Parse(kind, body)
		if err != nil {
			reject(err.Error())
			continue
		}
		var subject string
		var v any
		switch kind {
		case subjects.EnricherKindUser:
			var u subjects.EnricherUserState
			u.Apply(ev.User, 0)
			subject, v = subjects.KVPutSubject(subjects.EnricherUsersBucket(subjects.EnricherShardOf(u.UUID, shards)), u.UUID), &u
			st.Users++
		default:
			var s subjects.EnricherSubscriptionState
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
	select {
	case <-js.PublishAsyncComplete():
	case <-ctx.Done():
		return st, fmt.Errorf("wait for state writes: %w", ctx.Err())
	}
	return st, nil
}

// readLine reads one line (without its newline) of at most max bytes; a
// longer one is consumed whole and reported tooLong. n is the bytes
// consumed, newline included.
func readLine(br *bufio.Reader, max int) (line []byte, n int, tooLong bool, err error) {
	var buf []byte
	for {
		chunk, err := br.ReadSlice('\n')
		n += len(chunk)
		if !tooLong {
			if len(buf)+len(chunk) > max+1 { // +1: the newline
				tooLong, buf = true, nil
			} else {
				buf = append(buf, chunk...)
			}
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		return bytes.TrimRight(buf, "\r\n"), n, tooLong, err
	}
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
		kind = subjects.EnricherKindUser
	case fields["user_uuid"] != nil:
		kind = subjects.EnricherKindSubscription
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
