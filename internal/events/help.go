package events

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"jetfleet/internal/ids"
	"jetfleet/internal/kvjson"
	"jetfleet/subjects"
)

// The help desk (seed 001, "Analytics and exports"): a team asks for help,
// every connected admin of the event sees the flag at once (edges watch the
// flags of the events they hold admin sockets for), an admin claims it and
// resolves it. How long a flag waited to be claimed and to be resolved is
// kept on the flag and published as engagement.

// Help flag states.
const (
	HelpOpen     = "open"
	HelpClaimed  = "claimed"
	HelpResolved = "resolved"
)

// ErrFlagResolved is returned for claiming a flag already resolved.
var ErrFlagResolved = errors.New("this help request is already resolved")

// HelpFlag is one team's request for help.
type HelpFlag struct {
	ID      string `json:"id"`
	EventID string `json:"event_id"`
	TeamID  string `json:"team_id"`
	// RaisedBy is the registration id of the participant who asked.
	RaisedBy string    `json:"raised_by"`
	Raised   time.Time `json:"raised"`
	State    string    `json:"state"`
	// ClaimedBy and ResolvedBy are admins' account ids.
	ClaimedBy  string    `json:"claimed_by,omitempty"`
	Claimed    time.Time `json:"claimed,omitzero"`
	ResolvedBy string    `json:"resolved_by,omitempty"`
	Resolved   time.Time `json:"resolved,omitzero"`
	// ToClaim and ToResolve are the waits from raising, in whole seconds.
	ToClaim   int64 `json:"to_claim_s,omitempty"`
	ToResolve int64 `json:"to_resolve_s,omitempty"`
}

func helpKey(eid, fid string) string     { return eid + "." + fid }
func helpOpenKey(eid, tid string) string { return "open." + eid + "." + tid }

// RaiseHelp raises a help flag for member m's team, or returns the team's
// flag already open (one open flag per team: asking twice is one request).
// After the event's end there is nobody to help: ErrEventOver.
func (s *Service) RaiseHelp(ctx context.Context, m Member) (HelpFlag, error) {
	if err := s.notOver(ctx, m.EventID); err != nil {
		return HelpFlag{}, err
	}
	t, err := s.TeamOf(ctx, m.EventID, m.RegistrationID)
	if err != nil {
		return HelpFlag{}, err
	}
	guard := helpOpenKey(m.EventID, t.ID)
	for {
		// The guard names the team's open flag; creating it is the one
		// atomic step, so two members pressing at once raise one flag.
		e, err := s.help.Get(ctx, guard)
		switch {
		case err == nil:
			fid := string(e.Value())
			f, _, err := getJSON[HelpFlag](ctx, s.help, helpKey(m.EventID, fid))
			if err == nil {
				return f, nil
			}
			if !errors.Is(err, ErrNotFound) {
				return HelpFlag{}, err
			}
			// The guard was created but its flag never saved (a request cut
			// short): save it now under the guard's id.
			return s.saveNewFlag(ctx, m, t, fid)
		case !errors.Is(err, jetstream.ErrKeyNotFound):
			return HelpFlag{}, fmt.Errorf("read open flag of team %s: %w", t.ID, err)
		}
		fid := ids.New()
		if _, err := s.help.Create(ctx, guard, []byte(fid)); errors.Is(err, jetstream.ErrKeyExists) {
			continue
		} else if err != nil {
			return HelpFlag{}, fmt.Errorf("open flag of team %s: %w", t.ID, err)
		}
		return s.saveNewFlag(ctx, m, t, fid)
	}
}

// notOver returns ErrEventOver once event eid has ended.
func (s *Service) notOver(ctx context.Context, eid string) error {
	e, err := s.PublicEvent(ctx, eid)
	if err != nil {
		return err
	}
	if e.Past(s.now()) {
		return ErrEventOver
	}
	return nil
}

func (s *Service) saveNewFlag(ctx context.Context, m Member, t Team, fid string) (HelpFlag, error) {
	f := HelpFlag{ID: fid, EventID: m.EventID, TeamID: t.ID, RaisedBy: m.RegistrationID, Raised: s.now(), State: HelpOpen}
	if _, err := s.help.Create(ctx, helpKey(m.EventID, fid), mustJSON(f)); errors.Is(err, jetstream.ErrKeyExists) {
		// Saved by a concurrent repair: that one stands.
		f, _, err := getJSON[HelpFlag](ctx, s.help, helpKey(m.EventID, fid))
		return f, err
	} else if err != nil {
		return HelpFlag{}, fmt.Errorf("save help flag: %w", err)
	}
	if err := s.helpEngagement(ctx, f, subjects.EngagementHelpRaised, m.UserID, f.Raised); err != nil {
		return f, err
	}
	return f, nil
}

// ClaimHelp (admins only) marks flag fid as being handled by m. Claiming a
// claimed flag changes nothing (the first claim's time stands).
func (s *Service) ClaimHelp(ctx context.Context, m Member, fid string) (HelpFlag, error) {
	return s.changeFlag(ctx, m, fid, func(f *HelpFlag, now time.Time) (string, error) {
		switch f.State {
		case HelpResolved:
			return "", ErrFlagResolved
		case HelpClaimed:
			return "", nil
		}
		f.State, f.ClaimedBy, f.Claimed = HelpClaimed, m.UserID, now
		f.ToClaim = int64(now.Sub(f.Raised) / time.Second)
		return subjects.EngagementHelpClaimed, nil
	})
}

// ResolveHelp (admins only) closes flag fid; the team may ask again. A
// flag resolved without a claim counts as claimed when resolved.
func (s *Service) ResolveHelp(ctx context.Context, m Member, fid string) (HelpFlag, error) {
	f, err := s.changeFlag(ctx, m, fid, func(f *HelpFlag, now time.Time) (string, error) {
		if f.State == HelpResolved {
			return "", nil
		}
		if f.State == HelpOpen {
			f.ClaimedBy, f.Claimed = m.UserID, now
			f.ToClaim = int64(now.Sub(f.Raised) / time.Second)
		}
		f.State, f.ResolvedBy, f.Resolved = HelpResolved, m.UserID, now
		f.ToResolve = int64(now.Sub(f.Raised) / time.Second)
		return subjects.EngagementHelpResolved, nil
	})
	if err != nil {
		return f, err
	}
	// Free the team's guard, only if it still names this flag (deleting by
	// revision: a newer flag's guard is never removed).
	guard := helpOpenKey(f.EventID, f.TeamID)
	if e, err := s.help.Get(ctx, guard); err == nil && string(e.Value()) == f.ID {
		if err := s.help.Delete(ctx, guard, jetstream.LastRevision(e.Revision())); err != nil && !kvjson.Conflict(err) {
			return f, fmt.Errorf("close open flag of team %s: %w", f.TeamID, err)
		}
	} else if err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return f, fmt.Errorf("read open flag of team %s: %w", f.TeamID, err)
	}
	return f, nil
}

// changeFlag applies change to flag fid by compare-and-set and publishes
// the engagement kind it returns (none when it returns ""). A repeated
// call after the change was saved re-publishes it (deduplicated by its
// message id), so a request cut short between the two completes.
func (s *Service) changeFlag(ctx context.Context, m Member, fid string, change func(f *HelpFlag, now time.Time) (string, error)) (HelpFlag, error) {
	if !m.Admin {
		return HelpFlag{}, ErrNotAdmin
	}
	if !ids.Valid(fid) {
		return HelpFlag{}, ErrNotFound
	}
	for {
		f, rev, err := getJSON[HelpFlag](ctx, s.help, helpKey(m.EventID, fid))
		if err != nil {
			return HelpFlag{}, err
		}
		now := s.now()
		kind, err := change(&f, now)
		if err != nil {
			return f, err
		}
		if kind == "" {
			// Nothing new; make sure what was saved was also published.
			switch f.State {
			case HelpClaimed:
				return f, s.helpEngagement(ctx, f, subjects.EngagementHelpClaimed, f.ClaimedBy, f.Claimed)
			case HelpResolved:
				return f, s.helpEngagement(ctx, f, subjects.EngagementHelpResolved, f.ResolvedBy, f.Resolved)
			}
			return f, nil
		}
		if _, err := s.help.Update(ctx, helpKey(m.EventID, fid), mustJSON(f), rev); kvjson.Conflict(err) {
			continue
		} else if err != nil {
			return HelpFlag{}, fmt.Errorf("save help flag %s: %w", fid, err)
		}
		at := f.Claimed
		if kind == subjects.EngagementHelpResolved {
			at = f.Resolved
		}
		return f, s.helpEngagement(ctx, f, kind, m.UserID, at)
	}
}

// helpEngagement publishes a help step; who is the account id of the
// participant or admin who took it (as every engagement's user_id, by
// which a GDPR deletion finds its rows).
func (s *Service) helpEngagement(ctx context.Context, f HelpFlag, kind, who string, at time.Time) error {
	return s.deskEngagement(ctx, subjects.EventsEngagement{Kind: kind, EventID: f.EventID, ID: f.ID, Ref: f.ID, UserID: who, Room: f.TeamID, At: at})
}

// deskEngagement publishes one engagement of the help desk or the teams,
// under its occurrence's message id.
func (s *Service) deskEngagement(ctx context.Context, e subjects.EventsEngagement) error {
	b, _ := json.Marshal(e)
	if err := s.publishRetrying(ctx, subjects.EventsEngagementSubject(e.EventID, e.Kind), b, jetstream.WithMsgID(subjects.EventsEngagementMsgID(e))); err != nil {
		return fmt.Errorf("publish %s engagement: %w", e.Kind, err)
	}
	return nil
}

// HelpFlags returns event eid's help flags: waiting ones first (oldest
// first), then the resolved, latest first.
func (s *Service) HelpFlags(ctx context.Context, eid string) ([]HelpFlag, error) {
	keys, err := listKeys(ctx, s.help, subjects.EventsHelpWatch(eid))
	if err != nil {
		return nil, err
	}
	var out []HelpFlag
	for _, k := range keys {
		f, _, err := getJSON[HelpFlag](ctx, s.help, k)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, f)
	}
	SortHelpFlags(out)
	return out, nil
}

// SortHelpFlags orders flags as dashboards show them: waiting (open, then
// claimed) oldest first, then resolved, latest first.
func SortHelpFlags(fs []HelpFlag) {
	rank := map[string]int{HelpOpen: 0, HelpClaimed: 1, HelpResolved: 2}
	sort.SliceStable(fs, func(i, j int) bool {
		a, b := fs[i], fs[j]
		if rank[a.State] != rank[b.State] {
			return rank[a.State] < rank[b.State]
		}
		if a.State == HelpResolved {
			return a.Resolved.After(b.Resolved)
		}
		return a.Raised.Before(b.Raised)
	})
}

// OpenHelpOf returns the open (or claimed) flag of team tid, if any.
func (s *Service) OpenHelpOf(ctx context.Context, eid, tid string) (HelpFlag, bool, error) {
	e, err := s.help.Get(ctx, helpOpenKey(eid, tid))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return HelpFlag{}, false, nil
	}
	if err != nil {
		return HelpFlag{}, false, fmt.Errorf("read open flag of team %s: %w", tid, err)
	}
	f, _, err := getJSON[HelpFlag](ctx, s.help, helpKey(eid, string(e.Value())))
	if errors.Is(err, ErrNotFound) {
		return HelpFlag{}, false, nil
	}
	return f, err == nil && f.State != HelpResolved, err
}

// WatchHelp watches event eid's help flags: the current ones, a nil entry,
// then every change as it happens. Edges holding admin sockets of the
// event use it to push flags to them.
func (s *Service) WatchHelp(ctx context.Context, eid string) (jetstream.KeyWatcher, error) {
	if !ids.Valid(eid) {
		return nil, ErrNotFound
	}
	w, err := s.help.Watch(ctx, subjects.EventsHelpWatch(eid))
	if err != nil {
		return nil, fmt.Errorf("watch help flags of %s: %w", eid, err)
	}
	return w, nil
}

// DecodeHelpFlag reads a flag from a watched entry.
func DecodeHelpFlag(e jetstream.KeyValueEntry) (HelpFlag, error) {
	var f HelpFlag
	if err := json.Unmarshal(e.Value(), &f); err != nil {
		return f, fmt.Errorf("decode help flag %s: %w", e.Key(), err)
	}
	if !strings.HasPrefix(e.Key(), f.EventID+".") {
		return f, fmt.Errorf("help flag %s names event %s", e.Key(), f.EventID)
	}
	return f, nil
}
