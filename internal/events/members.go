package events

import (
	"slices"
	"time"
)

// IsAdmin reports whether the user (account uid, normalised address
// email) is an admin of e's live app: its organiser or an invited host.
func (e Event) IsAdmin(uid, email string) bool {
	return uid != "" && e.OrganiserID == uid || email != "" && slices.Contains(e.Hosts, email)
}

// EngagementID is who the member is in engagement figures (heartbeats,
// first connects): their registration id when they hold a ticket, so a
// GDPR deletion (which keeps the id) leaves the figures pseudonymous, and
// "admin:" with their account id for an admin without one.
func (m Member) EngagementID() string {
	if m.RegistrationID != "" {
		return m.RegistrationID
	}
	return "admin:" + m.UserID
}

// Phase is where an event's live app is at a moment.
type Phase string

// Phases of the live app: the lobby before the start, the stage while the
// event runs, the read-only history after its end.
const (
	PhaseLobby Phase = "lobby"
	PhaseLive  Phase = "live"
	PhaseEnded Phase = "ended"
)

// PhaseAt returns the phase of e's live app at now.
func (e Event) PhaseAt(now time.Time) Phase {
	switch {
	case now.Before(e.Start):
		return PhaseLobby
	case e.Past(now):
		return PhaseEnded
	}
	return PhaseLive
}
