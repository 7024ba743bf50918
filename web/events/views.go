package events

import (
	"fmt"
	"time"

	"jetfleet/internal/events"
)

type browseData struct {
	Type, From, To string
	Types          []string
	Problem        string
	Events         []events.Event
}

type registerForm struct {
	Ticket, Name, Email string
	Terms, DataSharing  bool
	Problems            map[string]string
}

type eventData struct {
	Event          events.Event
	Avail          events.Availability
	Now            time.Time
	Form           registerForm
	ConsentVersion string
}

type regData struct {
	Reg             events.Registration
	Event           events.Event
	Notice, Problem string
	Returned        bool // back from Checkout
}

type mineData struct {
	Upcoming, Past []events.MyRegistration
	Hosting        []events.Event // events whose organiser invited this address as a host
}

type dashboardData struct {
	Organiser       events.Organiser
	StripeAvailable bool
	Notice          string
	Current, Past   []events.Event
}

type manageData struct {
	Event           events.Event
	Input           events.EventInput
	EventProblems   map[string]string
	Ticket          events.TicketInput
	TicketProblems  map[string]string
	Avail           events.Availability
	Roster          events.Roster
	Organiser       events.Organiser
	StripeAvailable bool
	Notice, Problem string
	HostEmail       string // the host form as typed
	HostProblems    map[string]string
}

// canJoin reports whether a registration lets its participant into the
// event's live app (events.Service.Member decides; this only shows the link).
func canJoin(r events.Registration) bool {
	return r.Status == events.Confirmed || r.Status == events.Paid
}

var notices = map[string]string{
	"created":          "Draft saved. Add ticket types, then publish when you are ready.",
	"saved":            "Changes saved.",
	"ticket-added":     "Ticket type added.",
	"ticket-removed":   "Ticket type removed.",
	"published":        "Your event is live and listed on the events page.",
	"stripe-connected": "Stripe is connected: ticket revenue goes to your Stripe account.",
	"stripe-pending":   "Stripe onboarding is not finished yet. Connect again to continue.",
	"confirmed":        "Your registration is confirmed.",
	"cancelled":        "Your registration is cancelled.",
	"host-added":       "Host invited: we mailed them the live app's link. They sign in with that address.",
	"host-removed":     "Host removed.",
}

func notice(key string) string { return notices[key] }

// zones offered in the time zone field (any IANA name is accepted).
var zones = []string{"UTC", "Europe/London", "Europe/Berlin", "Europe/Paris", "Europe/Madrid", "Europe/Warsaw", "America/New_York",
	"America/Chicago", "America/Denver", "America/Los_Angeles", "America/Sao_Paulo", "Asia/Kolkata", "Asia/Singapore", "Asia/Tokyo", "Australia/Sydney"}

func when(e events.Event) string {
	loc := e.Location()
	s, en := e.Start.In(loc), e.End.In(loc)
	if s.Format(time.DateOnly) == en.Format(time.DateOnly) {
		return fmt.Sprintf("%s, %s – %s (%s)", s.Format("Mon 2 Jan 2006"), s.Format("15:04"), en.Format("15:04"), e.TimeZone)
	}
	return fmt.Sprintf("%s – %s (%s)", s.Format("Mon 2 Jan 2006 15:04"), en.Format("Mon 2 Jan 2006 15:04"), e.TimeZone)
}

func statusLabel(r events.Registration) string {
	switch {
	case r.Status == events.Pending && !r.SeatHeld:
		return "waiting for your confirmation"
	case r.Status == events.Pending && r.SeatHeld:
		return "seat held, waiting for payment"
	case r.Status == events.Confirmed:
		return "confirmed"
	case r.Status == events.Paid:
		return "paid"
	case r.Status == events.Expired:
		return "not paid in time; seat released"
	case r.Status == events.RefundDue:
		return "paid after the seat was released: refund due"
	default:
		return string(r.Status)
	}
}

func ticketName(e events.Event, id string) string {
	t, ok := e.Ticket(id)
	if !ok {
		return "(removed ticket)"
	}
	return t.Name + " · " + t.Price()
}

func itoa(n int) string { return fmt.Sprint(n) }

func saleWindow(t events.TicketType, e events.Event) string {
	loc := e.Location()
	switch {
	case t.SaleStart.IsZero() && t.SaleEnd.IsZero():
		return "on sale until the event starts"
	case t.SaleStart.IsZero():
		return "on sale until " + t.SaleEnd.In(loc).Format("2 Jan 15:04")
	case t.SaleEnd.IsZero():
		return "on sale from " + t.SaleStart.In(loc).Format("2 Jan 15:04")
	default:
		return "on sale " + t.SaleStart.In(loc).Format("2 Jan 15:04") + " – " + t.SaleEnd.In(loc).Format("2 Jan 15:04")
	}
}
