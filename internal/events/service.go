package events

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/mail"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go/jetstream"

	"jetfleet/internal/ids"
	"jetfleet/subjects"
)

// Mailer queues a mail (mail.Enqueue in production).
type Mailer func(ctx context.Context, m subjects.Mail) error

// Config tunes a Service.
type Config struct {
	// BaseURL of the site, for links in confirmation mail.
	BaseURL string
	// Mail queues confirmation mail; nil sends none.
	Mail Mailer
	// Now is the clock; default time.Now.
	Now func() time.Time
	Log *slog.Logger
	// HoldTTL is how long a paid ticket's seat stays held for its checkout;
	// default DefaultHoldTTL.
	HoldTTL time.Duration
	// UnconfirmedTTL is how long a registration waits for its participant
	// to confirm before it is deleted; default DefaultUnconfirmedTTL.
	UnconfirmedTTL time.Duration
}

// DefaultHoldTTL is how long a seat is held for a payment: a little over
// Stripe's shortest Checkout Session lifetime (30 minutes), so the session
// can expire together with the hold.
const DefaultHoldTTL = 35 * time.Minute

// DefaultUnconfirmedTTL is how long an unconfirmed registration is kept:
// the magic link lasts 15 minutes, but a participant can sign in later and
// confirm from "my events".
const DefaultUnconfirmedTTL = 24 * time.Hour

// Service reads and changes the Events product's state.
type Service struct {
	js      jetstream.JetStream
	catalog jetstream.KeyValue
	regs    jetstream.KeyValue
	cfg     Config
}

// Open binds to the buckets and stream declared in subjects (see
// subjects.Provision).
func Open(ctx context.Context, js jetstream.JetStream, cfg Config) (*Service, error) {
	catalog, err := js.KeyValue(ctx, subjects.EventsCatalogBucket)
	if err != nil {
		return nil, fmt.Errorf("open events catalog bucket: %w", err)
	}
	regs, err := js.KeyValue(ctx, subjects.EventsRegistrationsBucket)
	if err != nil {
		return nil, fmt.Errorf("open events registrations bucket: %w", err)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Mail == nil {
		cfg.Mail = func(context.Context, subjects.Mail) error { return nil }
	}
	if cfg.HoldTTL <= 0 {
		cfg.HoldTTL = DefaultHoldTTL
	}
	if cfg.UnconfirmedTTL <= 0 {
		cfg.UnconfirmedTTL = DefaultUnconfirmedTTL
	}
	return &Service{js: js, catalog: catalog, regs: regs, cfg: cfg}, nil
}

func (s *Service) now() time.Time { return s.cfg.Now().UTC().Truncate(time.Second) }

// Keys. Ids are random URL-safe base64 without '-' or '_' problems for KV
// (both are valid key characters).
func eventKey(id string) string         { return "event." + id }
func orgIndexKey(uid, id string) string { return "org." + uid + "." + id }
func organiserKey(uid string) string    { return "organiser." + uid }
func seatsKey(id string) string         { return "seats." + id }
func regKey(eid, rid string) string     { return "reg." + eid + "." + rid }
func personKey(email, eid, rid string) string {
	return "person." + EmailHash(email) + "." + eid + "." + rid
}

// EmailHash is how a participant's address appears in keys: never in clear.
func EmailHash(email string) string {
	sum := sha256.Sum256([]byte(strings.ToLower(strings.TrimSpace(email))))
	return hex.EncodeToString(sum[:16])
}

func getJSON[T any](ctx context.Context, kv jetstream.KeyValue, key string) (T, uint64, error) {
	var v T
	e, err := kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
		return v, 0, ErrNotFound
	}
	if err != nil {
		return v, 0, fmt.Errorf("get %s: %w", key, err)
	}
	if err := json.Unmarshal(e.Value(), &v); err != nil {
		return v, 0, fmt.Errorf("decode %s: %w", key, err)
	}
	return v, e.Revision(), nil
}

// publish records a domain event, retrying until the stream acknowledges
// it (a leader election takes a few seconds) or ctx ends. Its Nats-Msg-Id,
// derived from the state change, makes retries — and a repeated call of an
// idempotent operation, which publishes again — count once within the
// stream's duplicate window. Callers fail their request when it fails, and
// re-publish when the same request is repeated, so a saved state change
// whose event was not acknowledged gets it on the retry.
func (s *Service) publish(ctx context.Context, ev subjects.EventsDomainEvent, msgID string) error {
	ev.At = s.now()
	b, _ := json.Marshal(ev)
	if err := s.publishRetrying(ctx, subjects.EventSubject(ev.Kind, ev.EventID), b, jetstream.WithMsgID(msgID)); err != nil {
		s.cfg.Log.Error("publish domain event", "kind", ev.Kind, "event", ev.EventID, "msg_id", msgID, "err", err)
		return fmt.Errorf("publish %s event: %w", ev.Kind, err)
	}
	return nil
}

// publishRetrying publishes, retrying a failed publish with backoff (five
// tries over about 1.5 s) so a JetStream leader change does not fail the
// request. Callers pass a message id: a retried publish that did land is
// deduplicated.
func (s *Service) publishRetrying(ctx context.Context, subject string, data []byte, opts ...jetstream.PublishOpt) error {
	var err error
	for attempt, wait := 0, 100*time.Millisecond; attempt < 5; attempt, wait = attempt+1, wait*2 {
		if _, err = s.js.Publish(ctx, subject, data, opts...); err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(wait):
		}
	}
	return err
}

// ---- organisers ----

// Organiser returns the organiser profile of a user (empty, not an error,
// before they connect anything).
func (s *Service) Organiser(ctx context.Context, uid string) (Organiser, error) {
	o, _, err := getJSON[Organiser](ctx, s.catalog, organiserKey(uid))
	if errors.Is(err, ErrNotFound) {
		return Organiser{UserID: uid}, nil
	}
	return o, err
}

// SetStripeAccount records the organiser's connected account and whether
// it can take charges yet.
func (s *Service) SetStripeAccount(ctx context.Context, uid, email, account string, ready bool) (Organiser, error) {
	for {
		o, rev, err := getJSON[Organiser](ctx, s.catalog, organiserKey(uid))
		if err != nil && !errors.Is(err, ErrNotFound) {
			return Organiser{}, err
		}
		wasReady := o.StripeReady && o.StripeAccountID == account
		o = Organiser{UserID: uid, Email: email, StripeAccountID: account, StripeReady: ready, Updated: s.now()}
		b, _ := json.Marshal(o)
		if rev == 0 {
			_, err = s.catalog.Create(ctx, organiserKey(uid), b)
		} else {
			_, err = s.catalog.Update(ctx, organiserKey(uid), b, rev)
		}
		if errors.Is(err, jetstream.ErrKeyExists) {
			continue // changed meanwhile
		}
		if err != nil {
			return Organiser{}, fmt.Errorf("save organiser %s: %w", uid, err)
		}
		if ready {
			// Published again on every ready return from Stripe (deduplicated
			// by its id), so one that failed is made up for.
			if err := s.publish(ctx, subjects.EventsDomainEvent{Kind: subjects.EventStripeLinked, EventID: "-", OrganiserID: uid}, "stripelinked:"+uid+":"+account); err != nil && !wasReady {
				return o, err
			}
		}
		return o, nil
	}
}

// ---- events (organiser side) ----

// CreateEvent saves a new draft for organiser uid.
func (s *Service) CreateEvent(ctx context.Context, uid string, in EventInput) (Event, error) {
	now := s.now()
	e := Event{ID: ids.New(), OrganiserID: uid, Status: Draft, Created: now, Updated: now, Tickets: []TicketType{}}
	if err := in.apply(&e, now); err != nil {
		return Event{}, err
	}
	b, _ := json.Marshal(e)
	// The seat counter first, then the event, then the index: a crash in
	// between leaves at worst an unused counter, never a half event.
	if _, err := s.catalog.Create(ctx, seatsKey(e.ID), mustJSON(seats{ByTicket: map[string]int{}})); err != nil {
		return Event{}, fmt.Errorf("create seat counter: %w", err)
	}
	if _, err := s.catalog.Create(ctx, eventKey(e.ID), b); err != nil {
		return Event{}, fmt.Errorf("create event: %w", err)
	}
	if _, err := s.catalog.Put(ctx, orgIndexKey(uid, e.ID), nil); err != nil {
		return Event{}, fmt.Errorf("index event: %w", err)
	}
	if err := s.publish(ctx, subjects.EventsDomainEvent{Kind: subjects.EventCreated, EventID: e.ID, OrganiserID: uid}, "created:"+e.ID); err != nil {
		return Event{}, err
	}
	return e, nil
}

// EventFor returns an event of organiser uid; another organiser's event is
// ErrNotFound, so its existence does not leak.
func (s *Service) EventFor(ctx context.Context, uid, eid string) (Event, error) {
	e, _, err := s.ownEvent(ctx, uid, eid)
	return e, err
}

func (s *Service) ownEvent(ctx context.Context, uid, eid string) (Event, uint64, error) {
	if !ids.Valid(eid) {
		return Event{}, 0, ErrNotFound
	}
	e, rev, err := getJSON[Event](ctx, s.catalog, eventKey(eid))
	if err != nil {
		return Event{}, 0, err
	}
	if e.OrganiserID != uid {
		return Event{}, 0, ErrNotFound
	}
	return e, rev, nil
}

// change applies f to organiser uid's event under compare-and-set, retrying
// when someone else changed it meanwhile.
func (s *Service) change(ctx context.Context, uid, eid string, f func(e *Event) error) (Event, error) {
	for {
		e, rev, err := s.ownEvent(ctx, uid, eid)
		if err != nil {
			return Event{}, err
		}
		if err := f(&e); err != nil {
			return Event{}, err
		}
		e.Updated = s.now()
		if _, err := s.catalog.Update(ctx, eventKey(eid), mustJSON(e), rev); err != nil {
			if errors.Is(err, jetstream.ErrKeyExists) {
				continue
			}
			return Event{}, fmt.Errorf("save event %s: %w", eid, err)
		}
		return e, nil
	}
}

// UpdateEvent changes an event's details.
func (s *Service) UpdateEvent(ctx context.Context, uid, eid string, in EventInput) (Event, error) {
	if !ids.Valid(eid) {
		return Event{}, ErrNotFound
	}
	st, err := s.seats(ctx, eid)
	if err != nil {
		return Event{}, err
	}
	e, err := s.change(ctx, uid, eid, func(e *Event) error {
		if err := in.apply(e, s.now()); err != nil {
			return err
		}
		if e.Capacity < st.Total {
			return &ValidationError{Fields: map[string]string{"capacity": fmt.Sprintf("%d seats are already taken; capacity cannot be lower.", st.Total)}}
		}
		return nil
	})
	if err == nil {
		err = s.publish(ctx, subjects.EventsDomainEvent{Kind: subjects.EventUpdated, EventID: eid, OrganiserID: uid}, "updated:"+eid+":"+e.Updated.Format(time.RFC3339Nano))
	}
	return e, err
}

// AddTicketType adds a ticket type to an event.
func (s *Service) AddTicketType(ctx context.Context, uid, eid string, in TicketInput) (Event, error) {
	return s.change(ctx, uid, eid, func(e *Event) error {
		t, err := in.parse(*e)
		if err != nil {
			return err
		}
		if len(e.Tickets) >= MaxTicketTypes {
			return &ValidationError{Fields: map[string]string{"ticket_name": fmt.Sprintf("An event can have at most %d ticket types.", MaxTicketTypes)}}
		}
		if t.Paid() && e.Status == Live {
			o, err := s.Organiser(ctx, uid)
			if err != nil {
				return err
			}
			if !o.StripeReady {
				return &ValidationError{Fields: map[string]string{"price": ErrStripeRequired.Error()}}
			}
		}
		t.ID = ids.New()
		e.Tickets = append(e.Tickets, t)
		return nil
	})
}

// RemoveTicketType removes a ticket type nobody holds yet.
func (s *Service) RemoveTicketType(ctx context.Context, uid, eid, tid string) (Event, error) {
	if !ids.Valid(eid) || !ids.Valid(tid) {
		return Event{}, ErrNotFound
	}
	st, err := s.seats(ctx, eid)
	if err != nil {
		return Event{}, err
	}
	return s.change(ctx, uid, eid, func(e *Event) error {
		if st.ByTicket[tid] > 0 {
			return ErrTicketsSold
		}
		for i, t := range e.Tickets {
			if t.ID == tid {
				e.Tickets = append(e.Tickets[:i:i], e.Tickets[i+1:]...)
				return nil
			}
		}
		return ErrNotFound
	})
}

// Publish makes a draft live. It is refused while the event has no ticket
// types, or has paid ones and the organiser's Stripe account cannot take
// charges.
func (s *Service) Publish(ctx context.Context, uid, eid string) (Event, error) {
	o, err := s.Organiser(ctx, uid)
	if err != nil {
		return Event{}, err
	}
	e, err := s.change(ctx, uid, eid, func(e *Event) error {
		switch {
		case e.Status == Live:
			// Publishing again re-publishes the domain event (deduplicated),
			// in case the first one was not acknowledged.
			if err := s.publish(ctx, subjects.EventsDomainEvent{Kind: subjects.EventPublished, EventID: eid, OrganiserID: uid}, "published:"+eid); err != nil {
				return err
			}
			return ErrAlreadyLive
		case len(e.Tickets) == 0:
			return ErrNoTickets
		case e.HasPaidTickets() && !o.StripeReady:
			return ErrStripeRequired
		case e.Past(s.now()):
			return ErrEventOver
		}
		e.Status = Live
		e.Published = s.now()
		return nil
	})
	if err != nil {
		return Event{}, err
	}
	if err := s.publish(ctx, subjects.EventsDomainEvent{Kind: subjects.EventPublished, EventID: eid, OrganiserID: uid}, "published:"+eid); err != nil {
		return Event{}, err
	}
	return e, nil
}

// OrganiserEvents lists organiser uid's events, soonest first.
func (s *Service) OrganiserEvents(ctx context.Context, uid string) ([]Event, error) {
	keys, err := listKeys(ctx, s.catalog, "org."+uid+".*")
	if err != nil {
		return nil, err
	}
	var out []Event
	for _, k := range keys {
		eid := k[strings.LastIndexByte(k, '.')+1:]
		e, _, err := getJSON[Event](ctx, s.catalog, eventKey(eid))
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if e.OrganiserID == uid {
			out = append(out, e)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Start.Before(out[j].Start) })
	return out, nil
}

// Roster is what an organiser sees of their event's registrations.
type Roster struct {
	// Registrations their participants confirmed, oldest first.
	Registrations []Registration
	// Awaiting counts registrations still waiting for their participant
	// to confirm: who they are is not shown, since anyone can type anyone's
	// name and address into the form.
	Awaiting int
}

// EventRegistrations returns the roster of organiser uid's event.
func (s *Service) EventRegistrations(ctx context.Context, uid, eid string) (Roster, error) {
	if _, err := s.EventFor(ctx, uid, eid); err != nil {
		return Roster{}, err
	}
	keys, err := listKeys(ctx, s.regs, "reg."+eid+".*")
	if err != nil {
		return Roster{}, err
	}
	var out Roster
	for _, k := range keys {
		r, _, err := getJSON[Registration](ctx, s.regs, k)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return Roster{}, err
		}
		switch {
		case !r.Confirmed.IsZero():
			out.Registrations = append(out.Registrations, r)
		case r.Status == Pending:
			out.Awaiting++
		}
		// Cancelled before confirming: nobody agreed to anything; not shown.
	}
	sort.Slice(out.Registrations, func(i, j int) bool { return out.Registrations[i].Created.Before(out.Registrations[j].Created) })
	return out, nil
}

func listKeys(ctx context.Context, kv jetstream.KeyValue, filter string) ([]string, error) {
	lister, err := kv.ListKeysFiltered(ctx, filter)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", filter, err)
	}
	var keys []string
	for k := range lister.Keys() {
		keys = append(keys, k)
	}
	return keys, nil
}

// ---- public side ----

// PublicEvent returns a live event.
func (s *Service) PublicEvent(ctx context.Context, eid string) (Event, error) {
	if !ids.Valid(eid) {
		return Event{}, ErrNotFound
	}
	e, _, err := getJSON[Event](ctx, s.catalog, eventKey(eid))
	if err != nil {
		return Event{}, err
	}
	if e.Status != Live {
		return Event{}, ErrNotFound
	}
	return e, nil
}

// seats is the per-event counter of seats taken, changed only by
// compare-and-set so that concurrent registrations never oversell.
type seats struct {
	Total    int            `json:"total"`
	ByTicket map[string]int `json:"by_ticket"`
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // only our own plain structs are marshalled
	}
	return b
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
		if errors.Is(err, jetstream.ErrKeyExists) {
			continue // another registration took or freed a seat: decide again
		}
		if err != nil {
			return fmt.Errorf("update seats of %s: %w", e.ID, err)
		}
		return nil
	}
}

// Register records a pending registration. The participant confirms it
// through a magic link mailed by the caller.
func (s *Service) Register(ctx context.Context, eid string, in RegistrationInput) (Registration, error) {
	e, err := s.PublicEvent(ctx, eid)
	if err != nil {
		return Registration{}, err
	}
	now := s.now()
	var v ValidationError
	t, ok := e.Ticket(in.TicketTypeID)
	if !ok {
		v.add("ticket", "Choose a ticket.")
	} else if !t.OnSale(now, e.Start) {
		v.add("ticket", ErrNotOnSale.Error())
	}
	name := strings.TrimSpace(in.Name)
	if n := utf8.RuneCountInString(name); n == 0 || n > MaxName {
		v.add("name", "Give your name (up to 120 characters).")
	} else if !oneLine(name) {
		v.add("name", "Give your name on one line, without line breaks or tabs.")
	}
	email, err := normaliseEmail(in.Email)
	if err != nil {
		v.add("email", "That does not look like an email address.")
	}
	if !in.Terms {
		v.add("terms", "You need to accept the terms to register.")
	}
	if !in.DataSharing {
		v.add("data_sharing", "Registration shares your name and email with the organiser; agree to it to register.")
	}
	if e.Past(now) {
		v.add("ticket", ErrEventOver.Error())
	}
	if err := v.orNil(); err != nil {
		return Registration{}, err
	}
	if av, err := s.Available(ctx, e); err == nil && av[t.ID] == 0 {
		return Registration{}, &ValidationError{Fields: map[string]string{"ticket": "This ticket is sold out."}}
	}
	// No consent yet: whoever submitted the form may not be the person
	// whose address it is. Confirm records it.
	r := Registration{
		ID: ids.New(), EventID: eid, TicketTypeID: t.ID, Name: name, Email: email,
		Status: Pending, AmountMinor: t.PriceMinor, Currency: t.Currency, Created: now,
	}
	// The expiry is scheduled before the registration is saved, so no saved
	// registration lacks one; a schedule whose registration was never saved
	// finds nothing to expire.
	if err := s.scheduleUnconfirmedExpiry(ctx, r); err != nil {
		return Registration{}, err
	}
	if _, err := s.regs.Create(ctx, regKey(eid, r.ID), mustJSON(r)); err != nil {
		return Registration{}, fmt.Errorf("save registration: %w", err)
	}
	if _, err := s.regs.Put(ctx, personKey(email, eid, r.ID), nil); err != nil {
		return Registration{}, fmt.Errorf("index registration: %w", err)
	}
	// Failing here fails the request: the pending registration stays
	// unconfirmed, holds no seat, is not shown to the organiser and expires;
	// the participant registers again.
	if err := s.publish(ctx, subjects.EventsDomainEvent{Kind: subjects.EventRegistered, EventID: eid, OrganiserID: e.OrganiserID, RegistrationID: r.ID, TicketTypeID: t.ID}, "registered:"+r.ID); err != nil {
		return Registration{}, err
	}
	return r, nil
}

func normaliseEmail(s string) (string, error) {
	a, err := mail.ParseAddress(strings.TrimSpace(s))
	if err != nil || !strings.Contains(a.Address, ".") {
		return "", fmt.Errorf("%q is not an email address", s)
	}
	return strings.ToLower(a.Address), nil
}

// RegistrationFor returns a registration and its event to the participant
// signed in with email; anyone else gets ErrNotFound.
func (s *Service) RegistrationFor(ctx context.Context, email, eid, rid string) (Registration, Event, error) {
	r, _, err := s.ownRegistration(ctx, email, eid, rid)
	if err != nil {
		return Registration{}, Event{}, err
	}
	e, _, err := getJSON[Event](ctx, s.catalog, eventKey(eid))
	return r, e, err
}

func (s *Service) ownRegistration(ctx context.Context, email, eid, rid string) (Registration, uint64, error) {
	if !ids.Valid(eid) || !ids.Valid(rid) {
		return Registration{}, 0, ErrNotFound
	}
	r, rev, err := getJSON[Registration](ctx, s.regs, regKey(eid, rid))
	if err != nil {
		return Registration{}, 0, err
	}
	if email == "" || !strings.EqualFold(r.Email, email) {
		return Registration{}, 0, ErrNotFound
	}
	return r, rev, nil
}

// changeReg applies f to a registration under compare-and-set. f returns
// false to leave it unchanged.
func (s *Service) changeReg(ctx context.Context, eid, rid string, f func(r *Registration) (bool, error)) (Registration, bool, error) {
	for {
		r, rev, err := getJSON[Registration](ctx, s.regs, regKey(eid, rid))
		if err != nil {
			return Registration{}, false, err
		}
		changed, err := f(&r)
		if err != nil || !changed {
			return r, false, err
		}
		if _, err := s.regs.Update(ctx, regKey(eid, rid), mustJSON(r), rev); err != nil {
			if errors.Is(err, jetstream.ErrKeyExists) {
				continue
			}
			return Registration{}, false, fmt.Errorf("save registration %s: %w", rid, err)
		}
		return r, true, nil
	}
}

// Confirm is the participant (signed in by the magic link as email)
// confirming their registration. It takes the seat. A free ticket is then
// confirmed; a paid one stays pending with its seat held until Stripe
// reports the payment (see AttachCheckout and MarkPaid). Confirming twice is
// harmless.
func (s *Service) Confirm(ctx context.Context, email, eid, rid string) (Registration, error) {
	r, _, err := s.ownRegistration(ctx, email, eid, rid)
	if err != nil {
		return Registration{}, err
	}
	if r.Status != Pending || r.SeatHeld {
		// Confirming again makes up for a domain event or hold schedule
		// that was not acknowledged the first time (both deduplicated).
		return r, s.afterConfirm(ctx, r, false)
	}
	e, _, err := getJSON[Event](ctx, s.catalog, eventKey(eid))
	if err != nil {
		return Registration{}, err
	}
	if e.Past(s.now()) {
		return Registration{}, ErrEventOver
	}
	tid := r.TicketTypeID
	if err := s.adjustSeats(ctx, e, tid, 1); err != nil {
		return Registration{}, err
	}
	now := s.now()
	r, changed, err := s.changeReg(ctx, eid, rid, func(r *Registration) (bool, error) {
		if r.Status != Pending || r.SeatHeld {
			return false, nil
		}
		r.SeatHeld = true
		r.Confirmed = now
		// The participant, signed in as the registered address, agrees
		// now: the form's ticks were required, this records them as theirs.
		r.Consent = Consent{Terms: true, DataSharing: true, Version: ConsentVersion, At: now}
		if r.AmountMinor == 0 {
			r.Status = Confirmed
		} else {
			r.HoldUntil = now.Add(s.cfg.HoldTTL)
		}
		return true, nil
	})
	if err != nil || !changed {
		// A concurrent confirm won (or saving failed): give our seat back.
		if rerr := s.adjustSeats(ctx, e, tid, -1); rerr != nil {
			return Registration{}, errors.Join(err, rerr)
		}
		return r, err
	}
	return r, s.afterConfirm(ctx, r, true)
}

// afterConfirm publishes what a confirmation leads to: the confirmed event
// and the ticket mail for a free ticket; the seat-held event and the
// schedule that releases the hold for a paid one. It is called again when
// a confirmation is repeated (first false): publishes are deduplicated by
// id, and the ticket mail is not sent twice.
func (s *Service) afterConfirm(ctx context.Context, r Registration, first bool) error {
	if !r.SeatHeld || (r.Status != Confirmed && r.Status != Pending) {
		return nil
	}
	e, _, err := getJSON[Event](ctx, s.catalog, eventKey(r.EventID))
	if err != nil {
		return err
	}
	if r.Status == Confirmed {
		if first {
			s.mailTicket(ctx, r, e)
		}
		return s.publish(ctx, subjects.EventsDomainEvent{Kind: subjects.EventConfirmed, EventID: r.EventID, OrganiserID: e.OrganiserID, RegistrationID: r.ID, TicketTypeID: r.TicketTypeID}, "confirmed:"+r.ID)
	}
	if err := s.scheduleHoldRelease(ctx, r); err != nil {
		return err
	}
	return s.publish(ctx, subjects.EventsDomainEvent{Kind: subjects.EventSeatHeld, EventID: r.EventID, OrganiserID: e.OrganiserID, RegistrationID: r.ID, TicketTypeID: r.TicketTypeID, AmountMinor: r.AmountMinor, Currency: r.Currency}, "seatheld:"+r.ID)
}

// AttachCheckout records the Stripe Checkout Session that pays for a held
// seat, so the webhook can match it, and its URL, so a second click on
// "pay" goes back to it.
func (s *Service) AttachCheckout(ctx context.Context, email, eid, rid, sessionID, url string) error {
	if _, _, err := s.ownRegistration(ctx, email, eid, rid); err != nil {
		return err
	}
	_, _, err := s.changeReg(ctx, eid, rid, func(r *Registration) (bool, error) {
		if r.Status != Pending || !r.SeatHeld || r.AmountMinor == 0 {
			return false, ErrWrongState
		}
		r.CheckoutSessionID, r.CheckoutURL = sessionID, url
		return true, nil
	})
	return err
}

// Payment is what Stripe reported about a completed Checkout Session.
type Payment struct {
	SessionID   string
	EventID     string
	RegID       string
	AmountMinor int64
	Currency    string
}

// MarkPaid records a completed payment. It is idempotent: the first call
// for a registration marks it paid and mails the ticket; later calls (a
// webhook delivered again) change nothing and report false.
func (s *Service) MarkPaid(ctx context.Context, p Payment) (bool, error) {
	if !ids.Valid(p.EventID) || !ids.Valid(p.RegID) {
		return false, ErrNotFound
	}
	now := s.now()
	r, changed, err := s.changeReg(ctx, p.EventID, p.RegID, func(r *Registration) (bool, error) {
		if r.Status == Paid {
			return false, nil
		}
		if r.Status == Expired || r.Status == RefundDue {
			// Decided on the registration the update would replace: a hold
			// released just before is still a late payment, not a lost one.
			return false, errHoldReleased
		}
		if r.CheckoutSessionID != p.SessionID || r.AmountMinor != p.AmountMinor || !strings.EqualFold(r.Currency, p.Currency) {
			return false, ErrPaymentMismatch
		}
		if r.Status != Pending || !r.SeatHeld {
			return false, ErrWrongState
		}
		r.Status = Paid
		r.Paid = now
		return true, nil
	})
	if errors.Is(err, errHoldReleased) {
		return s.latePayment(ctx, p)
	}
	if err != nil {
		return false, err
	}
	e, _, err := getJSON[Event](ctx, s.catalog, eventKey(p.EventID))
	if err != nil {
		return changed, err
	}
	if !changed {
		// Delivered again: publish again (deduplicated) in case the first
		// delivery's event was not acknowledged; mail nothing.
		return false, s.publish(ctx, subjects.EventsDomainEvent{Kind: subjects.EventPaid, EventID: p.EventID, OrganiserID: e.OrganiserID, RegistrationID: p.RegID, TicketTypeID: r.TicketTypeID, AmountMinor: r.AmountMinor, Currency: r.Currency}, "paid:"+p.RegID)
	}
	// The ticket mail first: when the publish fails, Stripe delivers again
	// and the branch above publishes without mailing a second time.
	s.mailTicket(ctx, r, e)
	if err := s.publish(ctx, subjects.EventsDomainEvent{Kind: subjects.EventPaid, EventID: p.EventID, OrganiserID: e.OrganiserID, RegistrationID: p.RegID, TicketTypeID: r.TicketTypeID, AmountMinor: r.AmountMinor, Currency: r.Currency}, "paid:"+p.RegID); err != nil {
		return true, err
	}
	return true, nil
}

// Cancel is the participant giving up a registration; a held seat is freed.
func (s *Service) Cancel(ctx context.Context, email, eid, rid string) (Registration, error) {
	if _, _, err := s.ownRegistration(ctx, email, eid, rid); err != nil {
		return Registration{}, err
	}
	now := s.now()
	held := false
	r, changed, err := s.changeReg(ctx, eid, rid, func(r *Registration) (bool, error) {
		if r.Status == Cancelled || r.Status == Expired || r.Status == RefundDue {
			return false, nil
		}
		if r.Status == Paid {
			return false, fmt.Errorf("%w: paid tickets are refunded by the organiser", ErrWrongState)
		}
		held = r.SeatHeld
		r.Status, r.SeatHeld, r.Cancelled = Cancelled, false, now
		return true, nil
	})
	if err != nil || !changed {
		return r, err
	}
	e, _, err := getJSON[Event](ctx, s.catalog, eventKey(eid))
	if err != nil {
		return r, err
	}
	if held {
		if err := s.adjustSeats(ctx, e, r.TicketTypeID, -1); err != nil {
			return r, err
		}
	}
	if err := s.publish(ctx, subjects.EventsDomainEvent{Kind: subjects.EventCancelled, EventID: eid, OrganiserID: e.OrganiserID, RegistrationID: rid, TicketTypeID: r.TicketTypeID}, "cancelled:"+rid); err != nil {
		return r, err
	}
	return r, nil
}

// MyRegistration is a participant's registration with its event.
type MyRegistration struct {
	Registration Registration
	Event        Event
}

// MyRegistrations lists the registrations of the participant signed in as
// email, soonest event first.
func (s *Service) MyRegistrations(ctx context.Context, email string) ([]MyRegistration, error) {
	email, err := normaliseEmail(email)
	if err != nil {
		return nil, nil
	}
	refs, err := s.personRegs(ctx, email)
	if err != nil {
		return nil, err
	}
	var out []MyRegistration
	for _, ref := range refs {
		r, e, err := s.RegistrationFor(ctx, email, ref.eid, ref.rid)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, MyRegistration{Registration: r, Event: e})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Event.Start.Before(out[j].Event.Start) })
	return out, nil
}

func (s *Service) mailTicket(ctx context.Context, r Registration, e Event) {
	what := "Your registration is confirmed"
	switch r.Status {
	case Paid:
		what = "Payment received: your ticket is confirmed"
	case RefundDue:
		// The seat hold had expired and the last seat went to someone
		// else before the payment arrived.
		what = "Payment received too late: the seat was no longer free, the organiser will refund you"
	}
	t, _ := e.Ticket(r.TicketTypeID)
	loc := e.Location()
	text := fmt.Sprintf("Hello %s,\n\n%s.\n\n%s\n%s – %s (%s)\nTicket: %s (%s)\n\nSee your events: %s/events/mine\n",
		r.Name, what, e.Title, e.Start.In(loc).Format("Mon 2 Jan 2006 15:04"), e.End.In(loc).Format("Mon 2 Jan 2006 15:04"), e.TimeZone,
		t.Name, t.Price(), strings.TrimRight(s.cfg.BaseURL, "/"))
	err := s.cfg.Mail(ctx, subjects.Mail{
		ID: "events-" + string(r.Status) + ":" + r.ID, To: r.Email,
		Subject: what + ": " + OneLine(e.Title), Text: text,
	})
	if err != nil {
		// The registration stands; only the mail is missing, and "my
		// events" shows the ticket all the same.
		s.cfg.Log.Error("queue ticket mail", "registration", r.ID, "err", err)
	}
}
