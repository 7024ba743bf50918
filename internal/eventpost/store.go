package eventpost

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"jetfleet/subjects"
)

// ErrNotFound is returned for an event with no stored summary or ledger
// record.
var ErrNotFound = errors.New("not found")

// Store keeps summaries and fee ledger records in subjects.EventsPostBucket.
type Store struct{ kv jetstream.KeyValue }

// Open binds to the bucket (see subjects.Provision).
func Open(ctx context.Context, js jetstream.JetStream) (*Store, error) {
	kv, err := js.KeyValue(ctx, subjects.EventsPostBucket)
	if err != nil {
		return nil, fmt.Errorf("open %s bucket: %w", subjects.EventsPostBucket, err)
	}
	return &Store{kv: kv}, nil
}

func summaryKey(eid string) string { return "summary." + eid }
func feeKey(eid string) string     { return "fee." + eid }

// Summary returns the accumulated summary of event eid, or ErrNotFound
// before it is accumulated.
func (s *Store) Summary(ctx context.Context, eid string) (Summary, error) {
	var sum Summary
	_, err := s.get(ctx, summaryKey(eid), &sum)
	return sum, err
}

// SaveSummary stores sum once: when a summary of the event is already
// stored (a second firing), that one stays and is returned, so the figures
// an organiser saw, and was charged on, never change.
func (s *Store) SaveSummary(ctx context.Context, sum Summary) (Summary, bool, error) {
	sum.Final = true
	b, _ := json.Marshal(sum)
	_, err := s.kv.Create(ctx, summaryKey(sum.EventID), b)
	if errors.Is(err, jetstream.ErrKeyExists) {
		prev, err := s.Summary(ctx, sum.EventID)
		return prev, false, err
	}
	if err != nil {
		return sum, false, fmt.Errorf("store summary of %s: %w", sum.EventID, err)
	}
	return sum, true, nil
}

func (s *Store) get(ctx context.Context, key string, v any) (uint64, error) {
	e, err := s.kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
		return 0, ErrNotFound
	}
	if err != nil {
		return 0, fmt.Errorf("get %s: %w", key, err)
	}
	if err := json.Unmarshal(e.Value(), v); err != nil {
		return 0, fmt.Errorf("decode %s: %w", key, err)
	}
	return e.Revision(), nil
}

// Fee states of a ledger record.
const (
	// FeeCharging: the charge is being made (the record written before the
	// call to Stripe). A worker that finds it after a crash charges again
	// with the same idempotency key, which returns the first charge.
	FeeCharging = "charging"
	// FeeRetrying: the last attempt was declined; the next one, with a new
	// idempotency key, comes after a backoff.
	FeeRetrying = "retrying"
	FeePaid     = "paid"
	// FeeWaived: nothing to charge (within the free allowance, or below
	// Stripe's minimum charge).
	FeeWaived = "waived"
	// FeeFlagged: the charge cannot be made off-session (the bank wants
	// the organiser to authenticate, the retries ran out, no card saved):
	// the organiser is told and operators see it.
	FeeFlagged = "flagged"
)

// FeeRecord is the fee ledger record of one event.
type FeeRecord struct {
	EventID      string `json:"event_id"`
	OrganiserID  string `json:"organiser_id"`
	Participants int    `json:"participants"`
	AmountMinor  int64  `json:"amount_minor"`
	Currency     string `json:"currency"`
	State        string `json:"state"`
	// Attempt numbers the charge attempts; the idempotency key of attempt
	// n is IdempotencyKey(event, n). It moves on only after a decline was
	// recorded, so a crash repeats the same attempt.
	Attempt         int       `json:"attempt"`
	PaymentIntentID string    `json:"payment_intent_id,omitempty"`
	Reason          string    `json:"reason,omitempty"` // why declined or flagged
	DeclineCode     string    `json:"decline_code,omitempty"`
	Mailed          bool      `json:"mailed"` // the summary mail was queued
	Created         time.Time `json:"created"`
	Updated         time.Time `json:"updated"`
}

// Settled reports whether the record needs no more charging.
func (f FeeRecord) Settled() bool {
	return f.State == FeePaid || f.State == FeeWaived || f.State == FeeFlagged
}

// IdempotencyKey is the Stripe idempotency key of an event's fee attempt.
func IdempotencyKey(eid string, attempt int) string {
	return fmt.Sprintf("jetfleet-fee-%s-%d", eid, attempt)
}

// Fee returns event eid's ledger record and its revision.
func (s *Store) Fee(ctx context.Context, eid string) (FeeRecord, uint64, error) {
	var f FeeRecord
	rev, err := s.get(ctx, feeKey(eid), &f)
	return f, rev, err
}

// CreateFee writes a new ledger record; ErrKeyExists-wrapped error when one
// exists.
func (s *Store) CreateFee(ctx context.Context, f FeeRecord) (uint64, error) {
	b, _ := json.Marshal(f)
	rev, err := s.kv.Create(ctx, feeKey(f.EventID), b)
	if err != nil {
		return 0, fmt.Errorf("create fee record of %s: %w", f.EventID, err)
	}
	return rev, nil
}

// UpdateFee replaces the ledger record at revision rev (compare-and-set).
func (s *Store) UpdateFee(ctx context.Context, f FeeRecord, rev uint64) (uint64, error) {
	b, _ := json.Marshal(f)
	rev, err := s.kv.Update(ctx, feeKey(f.EventID), b, rev)
	if err != nil {
		return 0, fmt.Errorf("update fee record of %s: %w", f.EventID, err)
	}
	return rev, nil
}

// Fees lists every ledger record, for operators.
func (s *Store) Fees(ctx context.Context) ([]FeeRecord, error) {
	lister, err := s.kv.ListKeysFiltered(ctx, "fee.*")
	if err != nil {
		return nil, fmt.Errorf("list fee records: %w", err)
	}
	var out []FeeRecord
	for k := range lister.Keys() {
		var f FeeRecord
		if _, err := s.get(ctx, k, &f); err == nil {
			out = append(out, f)
		}
	}
	return out, nil
}

// Prices is the platform fee's price table (configuration).
type Prices struct {
	// FreeParticipants registered participants cost nothing.
	FreeParticipants int
	// PerParticipantMinor is the price of each participant beyond them, in
	// minor units of Currency.
	PerParticipantMinor int64
	Currency            string
}

// DefaultPrices: 50 participants free, then 0.50 EUR each.
var DefaultPrices = Prices{FreeParticipants: 50, PerParticipantMinor: 50, Currency: "eur"}

// MinChargeMinor is Stripe's smallest charge (0.50 in two-decimal
// currencies); a smaller fee is waived.
const MinChargeMinor = 50

// Fee is the fee for participants registered participants.
func (p Prices) Fee(participants int) int64 {
	if participants <= p.FreeParticipants {
		return 0
	}
	return int64(participants-p.FreeParticipants) * p.PerParticipantMinor
}

// ErrNotFlagged is returned when a fee is retried that is not flagged.
var ErrNotFlagged = errors.New("the fee does not need a new attempt")

// ReopenFee makes a flagged fee chargeable again (the organiser saved a
// new card): the next attempt, with its own idempotency key. The caller
// then publishes subjects.EventsPostAccumulated for events-fee.
func (s *Store) ReopenFee(ctx context.Context, eid string, now time.Time) (FeeRecord, error) {
	for {
		f, rev, err := s.Fee(ctx, eid)
		if err != nil {
			return f, err
		}
		if f.State != FeeFlagged {
			return f, ErrNotFlagged
		}
		f.State, f.Attempt, f.Reason, f.DeclineCode, f.Updated = FeeRetrying, f.Attempt+1, "", "", now.UTC()
		if _, err := s.UpdateFee(ctx, f, rev); errors.Is(err, jetstream.ErrKeyExists) {
			continue
		} else if err != nil {
			return f, err
		}
		return f, nil
	}
}
