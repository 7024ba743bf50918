// Package events is the domain of the Events product: organisers, events
// (draft → live) with their ticket types, and participants' registrations,
// kept in JetStream KV (subjects.EventsCatalogBucket and
// subjects.EventsRegistrationsBucket). Every state change is also published
// on subjects.EventsStream so analytics, fees and exports can follow.
//
// The edge (web/events) parses forms and renders; it calls this package for
// every rule: validation, who may see what, capacity, publishing.
package events

import (
	"errors"
	"fmt"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
	_ "time/tzdata" // time zones must resolve on hosts without tzdata
	"unicode"
	"unicode/utf8"
)

// Errors callers tell apart.
var (
	ErrNotFound        = errors.New("not found")
	ErrSoldOut         = errors.New("sold out")
	ErrNotOnSale       = errors.New("this ticket is not on sale now")
	ErrStripeRequired  = errors.New("this event has paid tickets: connect a Stripe account before publishing it")
	ErrNoTickets       = errors.New("add at least one ticket type before publishing")
	ErrAlreadyLive     = errors.New("this event is already live")
	ErrWrongState      = errors.New("the registration is not in a state that allows this")
	ErrTicketsSold     = errors.New("tickets of this type were already taken; it cannot be removed")
	ErrEventNotLive    = errors.New("this event is not open for registration")
	ErrEventOver       = errors.New("this event has already ended")
	ErrCapacityTooLow  = errors.New("capacity is below the seats already taken")
	ErrPaymentMismatch = errors.New("payment does not match the registration")
	ErrHoldNotDue      = errors.New("the seat hold has not expired yet")
)

// ValidationError lists problems with a form, by field name, so a page can
// show each message next to its field. Nothing is written when it is returned.
type ValidationError struct {
	Fields map[string]string
}

func (v *ValidationError) Error() string {
	keys := make([]string, 0, len(v.Fields))
	for k := range v.Fields {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, k+": "+v.Fields[k])
	}
	return "invalid input: " + strings.Join(parts, "; ")
}

func (v *ValidationError) add(field, msg string) {
	if v.Fields == nil {
		v.Fields = map[string]string{}
	}
	if _, ok := v.Fields[field]; !ok {
		v.Fields[field] = msg
	}
}

func (v *ValidationError) orNil() error {
	if len(v.Fields) == 0 {
		return nil
	}
	return v
}

// Status of an event.
type Status string

// Event statuses.
const (
	Draft Status = "draft"
	Live  Status = "live"
)

// RegStatus is where a registration is.
type RegStatus string

// Registration statuses: pending until the participant confirms by magic
// link (and, for a paid ticket, until Stripe reports the payment).
const (
	Pending   RegStatus = "pending"
	Confirmed RegStatus = "confirmed"
	Paid      RegStatus = "paid"
	Cancelled RegStatus = "cancelled"
	// Expired: a paid ticket's checkout was never completed in time; its
	// seat hold was released for someone else.
	Expired RegStatus = "expired"
	// RefundDue: the payment arrived after the hold was released and the
	// seat had gone meanwhile. The organiser refunds it (in Stripe); jetfleet
	// marks it on their registration list.
	RefundDue RegStatus = "refund_due"
)

// BusinessTypes are the kinds of organisers the browse page filters on.
var BusinessTypes = []string{"technology", "finance", "health", "education", "marketing", "community", "nonprofit", "other"}

// Currencies accepted for paid tickets (ISO 4217, lower case as Stripe
// wants them); all have two decimal places.
var Currencies = []string{"eur", "usd", "gbp", "chf", "cad", "aud"}

// ConsentVersion is the version of the terms and data-sharing text a
// participant agrees to; stored with every registration.
const ConsentVersion = "2026-11-01"

// Limits of the forms.
const (
	MaxTitle       = 140
	MaxDescription = 5000
	MaxName        = 120
	MaxCapacity    = 100_000
	MaxPriceMinor  = 10_000_00
	MaxTicketTypes = 20
)

// Event is one virtual event.
type Event struct {
	ID           string    `json:"id"`
	OrganiserID  string    `json:"organiser_id"`
	Title        string    `json:"title"`
	Description  string    `json:"description"`
	BusinessType string    `json:"business_type"`
	Start        time.Time `json:"start"` // instant (UTC)
	End          time.Time `json:"end"`
	TimeZone     string    `json:"time_zone"` // IANA name the organiser chose
	Capacity     int       `json:"capacity"`  // seats over all ticket types
	StreamURL    string    `json:"stream_url,omitempty"`
	// Hosts are the addresses (normalised) the organiser invited to run
	// the live event with them: they are admins of its app.
	Hosts     []string     `json:"hosts,omitempty"`
	Status    Status       `json:"status"`
	Tickets   []TicketType `json:"tickets"`
	Created   time.Time    `json:"created"`
	Updated   time.Time    `json:"updated"`
	Published time.Time    `json:"published,omitzero"`
}

// Location is the event's time zone (UTC when unknown).
func (e Event) Location() *time.Location {
	if l, err := time.LoadLocation(e.TimeZone); err == nil {
		return l
	}
	return time.UTC
}

// HasPaidTickets reports whether any ticket type costs money.
func (e Event) HasPaidTickets() bool {
	for _, t := range e.Tickets {
		if t.Paid() {
			return true
		}
	}
	return false
}

// Ticket returns the ticket type with id.
func (e Event) Ticket(id string) (TicketType, bool) {
	for _, t := range e.Tickets {
		if t.ID == id {
			return t, true
		}
	}
	return TicketType{}, false
}

// Past reports whether the event has ended at now.
func (e Event) Past(now time.Time) bool { return !e.End.After(now) }

// TicketType is one kind of ticket of an event.
type TicketType struct {
	ID         string    `json:"id"`
	Name       string    `json:"name"`
	PriceMinor int64     `json:"price_minor"` // 0: free
	Currency   string    `json:"currency,omitempty"`
	Quantity   int       `json:"quantity"`            // seats of this type
	SaleStart  time.Time `json:"sale_start,omitzero"` // zero: on sale from publishing
	SaleEnd    time.Time `json:"sale_end,omitzero"`   // zero: until the event starts
}

// Paid reports whether the ticket costs money.
func (t TicketType) Paid() bool { return t.PriceMinor > 0 }

// OnSale reports whether the ticket can be bought at now for an event
// starting at start.
func (t TicketType) OnSale(now, start time.Time) bool {
	if !t.SaleStart.IsZero() && now.Before(t.SaleStart) {
		return false
	}
	end := t.SaleEnd
	if end.IsZero() {
		end = start
	}
	return now.Before(end)
}

// Price formats the price for people: "Free" or "12.50 EUR".
func (t TicketType) Price() string {
	if !t.Paid() {
		return "Free"
	}
	return FormatMinor(t.PriceMinor, t.Currency)
}

// FormatMinor formats an amount in minor units of a two-decimal currency.
func FormatMinor(minor int64, currency string) string {
	return fmt.Sprintf("%d.%02d %s", minor/100, minor%100, strings.ToUpper(currency))
}

// Consent is what a participant agreed to, when, and to which text. It is
// recorded when the participant confirms (by magic link, or signed in as
// the registered address), never when someone merely submits the form:
// anyone can type anyone's address.
type Consent struct {
	Terms       bool      `json:"terms"`
	DataSharing bool      `json:"data_sharing"` // share name and email with the organiser
	Version     string    `json:"version"`
	At          time.Time `json:"at"`
}

// Registration is one participant's ticket for an event.
type Registration struct {
	ID                string    `json:"id"`
	EventID           string    `json:"event_id"`
	TicketTypeID      string    `json:"ticket_type_id"`
	Name              string    `json:"name"`
	Email             string    `json:"email"` // normalised
	Consent           Consent   `json:"consent"`
	Status            RegStatus `json:"status"`
	SeatHeld          bool      `json:"seat_held"`
	AmountMinor       int64     `json:"amount_minor"`
	Currency          string    `json:"currency,omitempty"`
	CheckoutSessionID string    `json:"checkout_session_id,omitempty"`
	// CheckoutURL is where the participant pays that session; a second
	// click on "pay" goes back to it.
	CheckoutURL string `json:"checkout_url,omitempty"`
	// HoldUntil is when a paid ticket's held seat is released if no payment
	// arrived (see Service.ReleaseHold).
	HoldUntil time.Time `json:"hold_until,omitzero"`
	// Pseudonymised is set when the participant had their data deleted: Name
	// is a pseudonym, Email is empty, the ids and consent record stay.
	Pseudonymised bool      `json:"pseudonymised,omitempty"`
	Created       time.Time `json:"created"`
	Confirmed     time.Time `json:"confirmed,omitzero"`
	Paid          time.Time `json:"paid,omitzero"`
	Cancelled     time.Time `json:"cancelled,omitzero"`
}

// Organiser is a user who runs events, with their Stripe Connect account.
type Organiser struct {
	UserID          string `json:"user_id"`
	Email           string `json:"email"`
	StripeAccountID string `json:"stripe_account_id,omitempty"`
	StripeReady     bool   `json:"stripe_ready"` // onboarding done, charges enabled
	// The card saved for the platform fee: a customer of the platform's
	// own Stripe account and its payment method (SetupIntent).
	FeeCustomerID    string    `json:"fee_customer_id,omitempty"`
	FeePaymentMethod string    `json:"fee_payment_method,omitempty"`
	Updated          time.Time `json:"updated"`
}

// EventInput is the event form as typed.
type EventInput struct {
	Title, Description, BusinessType string
	Start, End                       string // "2006-01-02T15:04" in TimeZone (HTML datetime-local)
	TimeZone                         string
	Capacity                         string
	StreamURL                        string
}

// FormTime is the HTML datetime-local layout.
const FormTime = "2006-01-02T15:04"

// InputOf returns the form values of an existing event, for editing.
func InputOf(e Event) EventInput {
	loc := e.Location()
	return EventInput{
		Title: e.Title, Description: e.Description, BusinessType: e.BusinessType,
		Start: e.Start.In(loc).Format(FormTime), End: e.End.In(loc).Format(FormTime),
		TimeZone: e.TimeZone, Capacity: strconv.Itoa(e.Capacity), StreamURL: e.StreamURL,
	}
}

// apply validates in and writes it into e; on error e is unchanged.
func (in EventInput) apply(e *Event, now time.Time) error {
	var v ValidationError
	out := *e
	out.Title = strings.TrimSpace(in.Title)
	switch n := utf8.RuneCountInString(out.Title); {
	case n == 0:
		v.add("title", "Give the event a title.")
	case n > MaxTitle:
		v.add("title", fmt.Sprintf("Keep the title under %d characters.", MaxTitle))
	case !oneLine(out.Title):
		v.add("title", "Keep the title on one line: remove line breaks, tabs and other control characters.")
	}
	out.Description = strings.TrimSpace(in.Description)
	if utf8.RuneCountInString(out.Description) > MaxDescription {
		v.add("description", fmt.Sprintf("Keep the description under %d characters.", MaxDescription))
	}
	out.BusinessType = strings.TrimSpace(in.BusinessType)
	if !contains(BusinessTypes, out.BusinessType) {
		v.add("business_type", "Choose a business type from the list.")
	}
	out.TimeZone = strings.TrimSpace(in.TimeZone)
	loc, err := time.LoadLocation(out.TimeZone)
	if out.TimeZone == "" || err != nil {
		v.add("time_zone", "Choose a time zone such as Europe/Berlin or America/New_York.")
		loc = time.UTC
	}
	start, err := time.ParseInLocation(FormTime, strings.TrimSpace(in.Start), loc)
	if err != nil {
		v.add("start", "Give the start as a date and time.")
	}
	end, err2 := time.ParseInLocation(FormTime, strings.TrimSpace(in.End), loc)
	if err2 != nil {
		v.add("end", "Give the end as a date and time.")
	}
	if err == nil && err2 == nil {
		if !end.After(start) {
			v.add("end", "The event must end after it starts.")
		} else if end.Sub(start) > 14*24*time.Hour {
			v.add("end", "An event can last at most 14 days.")
		}
		if e.Status == Draft && !start.After(now) {
			v.add("start", "The start must be in the future.")
		}
	}
	out.Start, out.End = start.UTC(), end.UTC()
	capacity, err := strconv.Atoi(strings.TrimSpace(in.Capacity))
	if err != nil || capacity < 1 || capacity > MaxCapacity {
		v.add("capacity", fmt.Sprintf("Give the number of seats, from 1 to %d.", MaxCapacity))
	}
	out.Capacity = capacity
	out.StreamURL = strings.TrimSpace(in.StreamURL)
	if out.StreamURL != "" {
		u, err := url.Parse(out.StreamURL)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			v.add("stream_url", "Give a full http(s):// address, or leave it empty.")
		}
	}
	if err := v.orNil(); err != nil {
		return err
	}
	*e = out
	return nil
}

// TicketInput is the ticket type form as typed.
type TicketInput struct {
	Name      string
	Price     string // in major units, "12.50"; empty or 0 for free
	Currency  string
	Quantity  string
	SaleStart string // FormTime in the event's time zone; optional
	SaleEnd   string
}

func (in TicketInput) parse(e Event) (TicketType, error) {
	var v ValidationError
	t := TicketType{Name: strings.TrimSpace(in.Name)}
	switch n := utf8.RuneCountInString(t.Name); {
	case n == 0:
		v.add("ticket_name", "Name the ticket type, e.g. General admission.")
	case n > MaxName:
		v.add("ticket_name", fmt.Sprintf("Keep the name under %d characters.", MaxName))
	case !oneLine(t.Name):
		v.add("ticket_name", "Keep the name on one line: remove line breaks, tabs and other control characters.")
	}
	price, ok := parseMinor(in.Price)
	if !ok || price < 0 || price > MaxPriceMinor {
		v.add("price", "Give the price as a number like 12.50, or 0 for a free ticket.")
	}
	t.PriceMinor = price
	if t.Paid() {
		t.Currency = strings.ToLower(strings.TrimSpace(in.Currency))
		if !contains(Currencies, t.Currency) {
			v.add("currency", "Choose a currency for the paid ticket.")
		} else if t.PriceMinor < 50 {
			v.add("price", "Stripe needs a price of at least 0.50.")
		}
	}
	q, err := strconv.Atoi(strings.TrimSpace(in.Quantity))
	if err != nil || q < 1 || q > MaxCapacity {
		v.add("quantity", "Give how many tickets of this type, at least 1.")
	}
	t.Quantity = q
	loc := e.Location()
	if s := strings.TrimSpace(in.SaleStart); s != "" {
		if t.SaleStart, err = time.ParseInLocation(FormTime, s, loc); err != nil {
			v.add("sale_start", "Give the start of sales as a date and time, or leave it empty.")
		}
	}
	if s := strings.TrimSpace(in.SaleEnd); s != "" {
		if t.SaleEnd, err = time.ParseInLocation(FormTime, s, loc); err != nil {
			v.add("sale_end", "Give the end of sales as a date and time, or leave it empty.")
		} else if t.SaleEnd.After(e.End) {
			v.add("sale_end", "Sales must end before the event ends.")
		}
	}
	if !t.SaleStart.IsZero() && !t.SaleEnd.IsZero() && !t.SaleEnd.After(t.SaleStart) {
		v.add("sale_end", "Sales must end after they start.")
	}
	if !t.SaleStart.IsZero() {
		t.SaleStart = t.SaleStart.UTC()
	}
	if !t.SaleEnd.IsZero() {
		t.SaleEnd = t.SaleEnd.UTC()
	}
	return t, v.orNil()
}

// parseMinor reads "12", "12.5" or "12.50" as 1250.
func parseMinor(s string) (int64, bool) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, true
	}
	whole, frac, _ := strings.Cut(s, ".")
	if len(frac) > 2 || whole == "" {
		return 0, false
	}
	for len(frac) < 2 {
		frac += "0"
	}
	w, err := strconv.ParseInt(whole, 10, 64)
	if err != nil || w < 0 || w > MaxPriceMinor {
		return 0, false
	}
	f, err := strconv.ParseInt(frac, 10, 64)
	if err != nil || f < 0 {
		return 0, false
	}
	return w*100 + f, true
}

// RegistrationInput is the registration form as typed.
type RegistrationInput struct {
	TicketTypeID string
	Name         string
	Email        string
	Terms        bool
	DataSharing  bool
}

// oneLine reports whether s is free of control characters. Titles, ticket
// names and participants' names end up in mail subjects and other headers
// (and in Stripe's product name), where a line break would end the header
// or make the whole mail invalid; they are refused on input.
func oneLine(s string) bool { return !strings.ContainsFunc(s, unicode.IsControl) }

// OneLine returns s with every control character replaced by a space, for
// a header built from stored data that may predate the rule above.
func OneLine(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
