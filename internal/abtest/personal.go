package abtest

import (
	"context"
	"errors"
	"fmt"
	"time"

	"jetfleet/subjects"
)

// PersonalData is a person's A/B test data for their export: the
// connected channel (never a token) and their tests.
type PersonalData struct {
	Channel *PersonalChannel         `json:"connected_channel,omitempty"`
	Tests   []subjects.TrackerABTest `json:"tests"`
}

// PersonalChannel is the connected channel without its tokens.
type PersonalChannel struct {
	ID        string    `json:"id"`
	Title     string    `json:"title"`
	Connected time.Time `json:"connected"`
}

// PersonalDataOf returns uid's A/B test data.
func (s *Service) PersonalDataOf(ctx context.Context, uid string) (PersonalData, error) {
	d := PersonalData{Tests: []subjects.TrackerABTest{}}
	g, err := s.Grant(ctx, uid)
	switch {
	case err == nil:
		d.Channel = &PersonalChannel{ID: g.ChannelID, Title: g.ChannelTitle, Connected: g.Connected}
	case !errors.Is(err, ErrNotConnected):
		return d, err
	}
	tests, err := s.List(ctx, uid)
	if err != nil {
		return d, err
	}
	d.Tests = append(d.Tests, tests...)
	return d, nil
}

// Forgotten is what ForgetUser could not do outside our own systems.
type Forgotten struct {
	// Unrevoked, when not nil, says why the user's grant could not be
	// revoked at Google (unreachable, refused, or OAuth not configured in
	// this process). Our copy of the tokens is deleted all the same, so
	// we can no longer use the grant; the user can remove it in their
	// Google account.
	Unrevoked error
}

// ForgetUser revokes uid's grant at Google, deletes their tokens and every
// test with its schedules and uploaded thumbnails. Running it again is
// harmless. A revocation that fails does not stop the rest: it is
// reported in Forgotten, and the tokens are deleted anyway.
func (s *Service) ForgetUser(ctx context.Context, uid string) (Forgotten, error) {
	unrevoked, err := s.disconnect(ctx, uid)
	if err != nil {
		return Forgotten{}, fmt.Errorf("forget a/b tests of %s: %w", uid, err)
	}
	tests, err := s.List(ctx, uid)
	if err != nil {
		return Forgotten{}, err
	}
	for _, t := range tests {
		if err := s.Delete(ctx, uid, t.ID); err != nil && !errors.Is(err, ErrNotFound) {
			return Forgotten{}, fmt.Errorf("forget a/b tests of %s: %w", uid, err)
		}
	}
	return Forgotten{Unrevoked: unrevoked}, nil
}
