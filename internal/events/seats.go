package events

import (
	"context"
	"encoding/json"
	"fmt"

	"jetfleet/internal/kvjson"
)

// seats is the per-event counter of seats taken, changed only by
// compare-and-set so that concurrent registrations never oversell.
type seats struct {
	Total    int            `json:"total"`
	ByTicket map[string]int `json:"by_ticket"`
}

func (s *Service) seats(ctx context.Context, eid string) (seats, error) {
	st, _, err := getJSON[seats](ctx, s.catalog, seatsKey(eid))
	if st.ByTicket == nil {
		st.ByTicket = map[string]int{}
	}
	return st, err
}

// Availability is how many seats are left per ticket type.
type Availability map[string]int

// Available returns the seats left of each ticket type of e.
func (s *Service) Available(ctx context.Context, e Event) (Availability, error) {
	st, err := s.seats(ctx, e.ID)
	if err != nil {
		return nil, err
	}
	out := Availability{}
	for _, t := range e.Tickets {
		left := min(t.Quantity-st.ByTicket[t.ID], e.Capacity-st.Total)
		out[t.ID] = max(left, 0)
	}
	return out, nil
}

// adjustSeats adds delta seats of ticket tid under compare-and-set. Taking a
// seat fails with ErrSoldOut when the ticket type or the event is full.
func (s *Service) adjustSeats(ctx context.Context, e Event, tid string, delta int) error {
	t, ok := e.Ticket(tid)
	if !ok {
		return ErrNotFound
	}
	for {
		kve, err := s.catalog.Get(ctx, seatsKey(e.ID))
		if err != nil {
			return fmt.Errorf("read seats of %s: %w", e.ID, err)
		}
		var st seats
		if err := json.Unmarshal(kve.Value(), &st); err != nil {
			return fmt.Errorf("decode seats of %s: %w", e.ID, err)
		}
		if st.ByTicket == nil {
			st.ByTicket = map[string]int{}
		}
		if delta > 0 && (st.Total+delta > e.Capacity || st.ByTicket[tid]+delta > t.Quantity) {
			return ErrSoldOut
		}
		st.Total += delta
		st.ByTicket[tid] += delta
		if st.Total < 0 || st.ByTicket[tid] < 0 {
			return fmt.Errorf("seats of %s would go negative", e.ID)
		}
		_, err = s.catalog.Update(ctx, seatsKey(e.ID), mustJSON(st), kve.Revision())
		if kvjson.Conflict(err) {
			continue // another registration took or freed a seat: decide again
		}
		if err != nil {
			return fmt.Errorf("update seats of %s: %w", e.ID, err)
		}
		return nil
	}
}
