package events

import (
	"context"
	"errors"
)

// TeamData is what the live event app keeps about one participant in one
// event, for a GDPR export: their team (members by registration id), the
// help flags they raised and their team's submission when they contributed
// to it. A deletion changes none of it: every record names the participant
// by registration id only, and the registration itself is pseudonymised.
type TeamData struct {
	EventID        string      `json:"event_id"`
	RegistrationID string      `json:"registration_id"`
	Team           *Team       `json:"team,omitempty"`
	HelpFlags      []HelpFlag  `json:"help_flags,omitempty"`
	Submission     *Submission `json:"submission,omitempty"`
}

// teamDataOf gathers the team data of each of the registrations regs.
func (s *Service) teamDataOf(ctx context.Context, regs []MyRegistration) ([]TeamData, error) {
	out := []TeamData{}
	for _, mr := range regs {
		r := mr.Registration
		d := TeamData{EventID: r.EventID, RegistrationID: r.ID}
		t, err := s.TeamOf(ctx, r.EventID, r.ID)
		switch {
		case errors.Is(err, ErrNoTeam):
		case err != nil:
			return nil, err
		default:
			d.Team = &t
			sub, err := s.SubmissionOf(ctx, r.EventID, t.ID)
			switch {
			case errors.Is(err, ErrNotFound):
			case err != nil:
				return nil, err
			default:
				for _, c := range sub.Contributors {
					if c == r.ID {
						d.Submission = &sub
					}
				}
			}
		}
		flags, err := s.HelpFlags(ctx, r.EventID)
		if err != nil {
			return nil, err
		}
		for _, f := range flags {
			if f.RaisedBy == r.ID {
				d.HelpFlags = append(d.HelpFlags, f)
			}
		}
		if d.Team != nil || len(d.HelpFlags) > 0 {
			out = append(out, d)
		}
	}
	return out, nil
}
