package enricher

import (
	"slices"
	"time"

	"jetfleet/subjects"
	"jetfleet/workers/consume"
)

// holds is what a partition's owner holds back when holding is on
// (Config.Hold > 0), for producers that cannot keep the seed's per-user
// order. Held events are parked (NAKed with a delay, so other users'
// events go on) and come back until it is their turn.
//
// It lives in the owner's memory: after a takeover the new owner starts
// empty and sees the held events again in stream order (the runtime's
// takeover waits for parked messages and sorts), so order is kept; what a
// held lesson had frozen is then looked up again, from a state that may
// include its user's later events.
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

// holdBack decides whether the event seq of user, stored in INPUT at
// stored, comes out now. It returns consume.Park while an older event of the
// user is held, or while the lesson (en non-nil) misses a dimension and is
// younger than Config.Hold. waited reports an event that had been held
// back and now comes out.
func (e *Enricher) holdBack(p int, user string, seq uint64, stored time.Time, en *enrichment) (waited bool, err error) {
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
			if _, ok := h.frozen[seq]; !ok {
				h.frozen[seq] = *en // the state at its place in the stream
			}
		}
		return false, consume.Park(e.cfg.ParkRetry)
	}
	if en != nil && en.status() != subjects.EnrichmentComplete {
		if age := e.now().Sub(stored); age < e.cfg.Hold {
			if len(q) == 0 {
				h.waiting[user] = []uint64{seq}
			}
			h.frozen[seq] = *en
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
