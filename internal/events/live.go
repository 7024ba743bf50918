package events

import (
	"context"
	"errors"
	"strings"
)

// ErrNotMember is returned to someone who is neither a confirmed
// participant of an event nor one of its admins: the live app, its chat
// and its sockets refuse them.
var ErrNotMember = errors.New("the live event is for its confirmed participants and hosts; sign in with the address you registered")

// Member is who a signed-in person is in an event's live app.
type Member struct {
	EventID string
	UserID  string // the signed-in account
	Email   string
	// Name is shown in chat: the registration's name, or the admin's
	// address when they hold no ticket.
	Name string
	// Admin: the organiser or one of the hosts they invited.
	Admin bool
	// RegistrationID is the person's confirmed (or paid) registration;
	// empty for an admin without one. Teams, heartbeats and submissions
	// refer to participants by it, so a GDPR deletion (which keeps the id
	// and pseudonymises the name) leaves them pseudonymous.
	RegistrationID string
}

// Member tells who the user (uid, email) is in event eid's live app:
// an admin, a participant with a confirmed or paid registration, or
// ErrNotMember. An event that does not exist is ErrNotFound.
func (s *Service) Member(ctx context.Context, eid, uid, email string) (Member, Event, error) {
	e, err := s.PublicEvent(ctx, eid)
	if err != nil {
		return Member{}, Event{}, err
	}
	email, _ = normaliseEmail(email)
	m := Member{EventID: eid, UserID: uid, Email: email, Name: email}
	m.Admin = e.IsAdmin(uid, email)
	if email != "" {
		refs, err := s.personRegs(ctx, email)
		if err != nil {
			return Member{}, Event{}, err
		}
		for _, ref := range refs {
			if ref.eid != eid {
				continue
			}
			r, _, err := getJSON[Registration](ctx, s.regs, regKey(ref.eid, ref.rid))
			if errors.Is(err, ErrNotFound) {
				continue
			}
			if err != nil {
				return Member{}, Event{}, err
			}
			if (r.Status == Confirmed || r.Status == Paid) && strings.EqualFold(r.Email, email) {
				m.RegistrationID, m.Name = r.ID, r.Name
				break
			}
		}
	}
	if !m.Admin && m.RegistrationID == "" {
		return Member{}, e, ErrNotMember
	}
	return m, e, nil
}

// MainRoom is the event-wide chat room; every other room is a team's,
// named by the team's id.
const MainRoom = "main"

// CanJoinRoom tells whether member m may read and write chat room room of
// their event: everyone the main room, admins every room, participants
// their own team's.
func (s *Service) CanJoinRoom(ctx context.Context, m Member, room string) (bool, error) {
	if room == MainRoom || m.Admin {
		return true, nil
	}
	// A team room is named by its team's id: only the members of the
	// published team get in (a draft split is not visible to anyone but
	// admins).
	t, err := s.TeamOf(ctx, m.EventID, m.RegistrationID)
	if errors.Is(err, ErrNoTeam) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return t.ID == room, nil
}
