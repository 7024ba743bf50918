package enricher

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"jetfleet/subjects"
	"jetfleet/workers/consume"
)

// holds is what a partition's owner holds back when holding is on
// (Config.Hold > 0), for producers that cannot keep the seed's per-user
// order. Held events are parked (NAKed with a delay, so other users'
// events go on) and come back until it is their turn.
//
// It lives in the owner's memory, except what a lesson was frozen with,
// which is also written to subjects.EnricherHeldBucket: after a takeover the
// new owner starts empty, sees the held events again in stream order (the
// runtime's takeover waits for parked messages and sorts them), rebuilds
// the waiting lists as they come, and reads each redelivered lesson's
// frozen record instead of the state, which may by then include its user's
// later events.
type holds struct {
	// waiting are, by user, the INPUT sequences of the events not emitted
	// yet, in stream order: the first is the held lesson, the others wait
	// behind it.
	waiting map[string][]uint64
	// frozen is, by INPUT sequence, the enrichment of a lesson held or
	// waiting, as found at its first attempt (plus what was filled since).
	frozen map[uint64]enrichment
}

func newHolds() []*holds {
	h := make([]*holds, subjects.EnricherPartitions)
	for i := range h {
		h[i] = &holds{}
		h[i].reset()
	}
	return h
}

func (h *holds) reset() {
	h.waiting = map[string][]uint64{}
	h.frozen = map[uint64]enrichment{}
}

// holdBack decides whether the event seq of user, stored in partition p at
// stored, comes out now. It returns consume.Park while an older event of the
// user is held, or while the lesson (en non-nil) misses a dimension and is
// younger than Config.Hold. waited reports an event that had been held
// back and now comes out.
func (e *Enricher) holdBack(ctx context.Context, p int, user string, seq uint64, stored time.Time, en *enrichment) (waited bool, err error) {
	h := e.holds[p]
	q := h.waiting[user]
	if len(q) > 0 && q[0] != seq {
		// Not its turn: it comes out after the held events before it. Its
		// state change (if any) is applied already, which is what lets a
		// held lesson find its missing dimension.
		if i, found := slices.BinarySearch(q, seq); !found {
			h.waiting[user] = slices.Insert(q, i, seq)
		}
		if en != nil {
			if err := e.freeze(ctx, p, seq, en); err != nil { // the state at its place in the stream
				return false, err
			}
		}
		return false, consume.Park(e.cfg.ParkRetry)
	}
	if en != nil && en.status() != subjects.EnrichmentComplete {
		if age := e.now().Sub(stored); age < e.cfg.Hold {
			if err := e.freeze(ctx, p, seq, en); err != nil {
				return false, err
			}
			if len(q) == 0 {
				h.waiting[user] = []uint64{seq}
			}
			e.metrics.parked.Inc()
			return false, consume.Park(min(e.cfg.ParkRetry, e.cfg.Hold-age))
		}
	}
	delete(h.frozen, seq)
	if len(q) == 0 {
		return false, nil
	}
	if len(q) == 1 {
		delete(h.waiting, user)
	} else {
		h.waiting[user] = q[1:]
	}
	return true, nil
}

// freeze records the enrichment of lesson seq the first time it is held
// back: in memory, and in subjects.EnricherHeldBucket for a worker that
// takes the partition over. A failed write fails the attempt (retried in
// place): holding a lesson whose frozen values could be lost is what the
// record is there to prevent.
func (e *Enricher) freeze(ctx context.Context, p int, seq uint64, en *enrichment) error {
	h := e.holds[p]
	if _, ok := h.frozen[seq]; ok {
		h.frozen[seq] = *en // what was filled since, in memory only
		return nil
	}
	data, err := json.Marshal(en)
	if err != nil {
		return fmt.Errorf("encode frozen enrichment %d: %w", seq, err)
	}
	ctx, cancel := context.WithTimeout(ctx, e.cfg.KVTimeout)
	defer cancel()
	if _, err := e.held.Put(ctx, subjects.EnricherInputPos(p, seq), data); err != nil {
		return fmt.Errorf("freeze enrichment of input %d: %w", seq, err)
	}
	h.frozen[seq] = *en
	return nil
}

// loadFrozen reads the frozen enrichment of lesson seq, if it was held.
func (e *Enricher) loadFrozen(ctx context.Context, p int, seq uint64) (enrichment, bool, error) {
	ctx, cancel := context.WithTimeout(ctx, e.cfg.KVTimeout)
	defer cancel()
	got, err := e.held.Get(ctx, subjects.EnricherInputPos(p, seq))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return enrichment{}, false, nil
	}
	if err != nil {
		return enrichment{}, false, fmt.Errorf("read frozen enrichment of input %d: %w", seq, err)
	}
	var en enrichment
	if err := json.Unmarshal(got.Value(), &en); err != nil {
		return enrichment{}, false, nil // unreadable: enriched from the state, as if never held
	}
	return en, true, nil
}
