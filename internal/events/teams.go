package events

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"jetfleet/internal/ids"
	"jetfleet/internal/kvjson"
	"jetfleet/subjects"
)

// Breakout teams (seed 001, "Team Chat"): an admin splits the event's
// confirmed participants into balanced teams, reshuffles until satisfied,
// then publishes; publishing freezes the teams and mails every member the
// link to their team page. Members are registration ids, never names or
// addresses, so a GDPR deletion (which pseudonymises the registration)
// leaves the teams pseudonymous.

// Errors of the team and help desk operations.
var (
	ErrNotAdmin       = errors.New("only the event's organiser and hosts can do this")
	ErrTeamsPublished = errors.New("the teams are published and can no longer be changed")
	ErrNoTeams        = errors.New("the teams have not been split yet")
	ErrNoParticipants = errors.New("there are no confirmed participants to split into teams yet")
	ErrNoTeam         = errors.New("you are not in a team of this event (yet)")
)

// Team is one breakout team.
type Team struct {
	ID   string `json:"id"` // also its chat room's name
	Name string `json:"name"`
	// Members are registration ids.
	Members []string `json:"members"`
}

// Has reports whether registration rid is a member of t.
func (t Team) Has(rid string) bool {
	for _, m := range t.Members {
		if m == rid {
			return true
		}
	}
	return false
}

// Split is an event's teams: a draft the admins may re-run, or published.
type Split struct {
	EventID string `json:"event_id"`
	// Version counts the splits made; a reshuffle makes the next one.
	Version   int       `json:"version"`
	Teams     []Team    `json:"teams"`
	Published time.Time `json:"published,omitzero"`
	// Mailed is set once every member's team mail is queued.
	Mailed bool `json:"mailed,omitempty"`
	// Unmailed are latecomers added to published teams whose team mail
	// is not queued yet (AddLatecomers).
	Unmailed []string  `json:"unmailed,omitempty"`
	Updated  time.Time `json:"updated"`
}

// IsPublished reports whether the teams are frozen and visible to members.
func (sp Split) IsPublished() bool { return !sp.Published.IsZero() }

// Team returns the team with id.
func (sp Split) Team(id string) (Team, bool) {
	for _, t := range sp.Teams {
		if t.ID == id {
			return t, true
		}
	}
	return Team{}, false
}

// SplitBy is how an admin asks for teams: of at most Size members each, or
// Count teams. Exactly one is set.
type SplitBy struct {
	Size  int
	Count int
}

// maxSplitBytes bounds the split record below NATS's default 1 MB
// message size.
const maxSplitBytes = 900 << 10

func splitKey(eid string) string           { return "split." + eid }
func submissionKey(eid, tid string) string { return "submission." + eid + "." + tid }

// BalancedSizes returns the sizes of the teams n participants are split
// into: sizes differ by at most one, larger teams first. By size: as few
// teams as keep every team at most by.Size; by count: by.Count teams (at
// most n).
func BalancedSizes(n int, by SplitBy) ([]int, error) {
	if n <= 0 {
		return nil, ErrNoParticipants
	}
	teams := 0
	switch {
	case by.Size > 0 && by.Count == 0:
		teams = (n + by.Size - 1) / by.Size
	case by.Count > 0 && by.Size == 0:
		teams = min(by.Count, n)
	default:
		return nil, &ValidationError{Fields: map[string]string{"by": "Give either a team size or a number of teams, a whole number of at least 1."}}
	}
	sizes := make([]int, teams)
	for i := range sizes {
		sizes[i] = n / teams
		if i < n%teams {
			sizes[i]++
		}
	}
	return sizes, nil
}

// Participants returns event eid's confirmed (or paid) registrations,
// ordered by id.
func (s *Service) Participants(ctx context.Context, eid string) ([]Registration, error) {
	all, err := s.eventRegs(ctx, eid)
	if err != nil {
		return nil, err
	}
	var out []Registration
	for _, r := range all {
		if r.Status == Confirmed || r.Status == Paid {
			out = append(out, r)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// eventRegs reads every registration of event eid in one pass
// (watchAll): one round trip for thousands of participants instead of one
// get each.
func (s *Service) eventRegs(ctx context.Context, eid string) (map[string]Registration, error) {
	if !ids.Valid(eid) {
		return nil, ErrNotFound
	}
	all, err := watchAll[Registration](ctx, s.regs, "reg."+eid+".*")
	if err != nil {
		return nil, fmt.Errorf("read registrations of %s: %w", eid, err)
	}
	out := make(map[string]Registration, len(all))
	for _, r := range all {
		out[r.ID] = r
	}
	return out, nil
}

// SplitTeams (admins only) shuffles event eid's confirmed participants into
// balanced teams, replacing an earlier unpublished split. Published teams
// are frozen: ErrTeamsPublished.
func (s *Service) SplitTeams(ctx context.Context, m Member, by SplitBy) (Split, error) {
	if !m.Admin {
		return Split{}, ErrNotAdmin
	}
	parts, err := s.Participants(ctx, m.EventID)
	if err != nil {
		return Split{}, err
	}
	sizes, err := BalancedSizes(len(parts), by)
	if err != nil {
		return Split{}, err
	}
	for {
		old, rev, err := getJSON[Split](ctx, s.teams, splitKey(m.EventID))
		if err != nil && !errors.Is(err, ErrNotFound) {
			return Split{}, err
		}
		if old.IsPublished() {
			return old, ErrTeamsPublished
		}
		order := rand.Perm(len(parts))
		sp := Split{EventID: m.EventID, Version: old.Version + 1, Updated: s.now()}
		next := 0
		for i, size := range sizes {
			t := Team{ID: ids.New(), Name: "Team " + strconv.Itoa(i+1)}
			for range size {
				t.Members = append(t.Members, parts[order[next]].ID)
				next++
			}
			sort.Strings(t.Members)
			sp.Teams = append(sp.Teams, t)
		}
		val := mustJSON(sp)
		if len(val) > maxSplitBytes {
			// One record holds the whole split (one compare-and-set);
			// about 40,000 participants fit in it.
			return Split{}, fmt.Errorf("teams of %s: %d participants make a split record of %d bytes, more than the %d one record holds", m.EventID, len(parts), len(val), maxSplitBytes)
		}
		if rev == 0 {
			_, err = s.teams.Create(ctx, splitKey(m.EventID), val)
		} else {
			_, err = s.teams.Update(ctx, splitKey(m.EventID), val, rev)
		}
		if kvjson.Conflict(err) {
			continue // another admin split or published meanwhile: look again
		}
		if err != nil {
			return Split{}, fmt.Errorf("save teams of %s: %w", m.EventID, err)
		}
		return sp, nil
	}
}

// PublishTeams (admins only) freezes event eid's teams and mails each
// member the link to their team page, one mail per member. Publishing again
// (a retry, a second admin) sends nothing new: each mail's id is the
// member's and the split's, and once every mail is queued the split says so.
func (s *Service) PublishTeams(ctx context.Context, m Member, e Event) (Split, error) {
	if !m.Admin {
		return Split{}, ErrNotAdmin
	}
	var sp Split
	for {
		cur, rev, err := getJSON[Split](ctx, s.teams, splitKey(m.EventID))
		if errors.Is(err, ErrNotFound) {
			return Split{}, ErrNoTeams
		}
		if err != nil {
			return Split{}, err
		}
		if cur.IsPublished() {
			sp = cur
			break
		}
		cur.Published, cur.Updated = s.now(), s.now()
		if _, err := s.teams.Update(ctx, splitKey(m.EventID), mustJSON(cur), rev); kvjson.Conflict(err) {
			continue
		} else if err != nil {
			return Split{}, fmt.Errorf("publish teams of %s: %w", m.EventID, err)
		}
		sp = cur
		break
	}
	if sp.Mailed {
		return sp, nil
	}
	regs, err := s.eventRegs(ctx, m.EventID)
	if err != nil {
		return sp, err
	}
	for _, t := range sp.Teams {
		for _, rid := range t.Members {
			r, ok := regs[rid]
			if !ok {
				continue
			}
			if r.Email == "" {
				continue // pseudonymised: nobody to write to
			}
			id := "events-team:" + m.EventID + ":" + strconv.Itoa(sp.Version) + ":" + rid
			if err := s.cfg.Mail(ctx, s.teamMail(id, r, t, e)); err != nil {
				return sp, fmt.Errorf("queue team mail: %w", err)
			}
		}
	}
	for {
		cur, rev, err := getJSON[Split](ctx, s.teams, splitKey(m.EventID))
		if err != nil {
			return sp, err
		}
		if cur.Mailed {
			return cur, nil
		}
		cur.Mailed = true
		if _, err := s.teams.Update(ctx, splitKey(m.EventID), mustJSON(cur), rev); kvjson.Conflict(err) {
			continue
		} else if err != nil {
			return sp, fmt.Errorf("mark team mails of %s sent: %w", m.EventID, err)
		}
		return cur, nil
	}
}

// AddLatecomers (admins only) puts the confirmed participants of a
// published split who are in no team (they registered after the split)
// into the smallest teams, one by one, so sizes stay balanced, and mails
// each their team link. It returns the split and how many were added. A
// repeat adds nobody twice and mails nobody twice; a run cut short after
// saving mails the rest on the next.
func (s *Service) AddLatecomers(ctx context.Context, m Member, e Event) (Split, int, error) {
	if !m.Admin {
		return Split{}, 0, ErrNotAdmin
	}
	parts, err := s.Participants(ctx, m.EventID)
	if err != nil {
		return Split{}, 0, err
	}
	var sp Split
	added := 0
	for {
		cur, rev, err := getJSON[Split](ctx, s.teams, splitKey(m.EventID))
		if errors.Is(err, ErrNotFound) {
			return Split{}, 0, ErrNoTeams
		}
		if err != nil {
			return Split{}, 0, err
		}
		if !cur.IsPublished() {
			return cur, 0, ErrNoTeams
		}
		in := map[string]bool{}
		for _, t := range cur.Teams {
			for _, rid := range t.Members {
				in[rid] = true
			}
		}
		added = 0
		for _, p := range parts {
			if in[p.ID] || len(cur.Teams) == 0 {
				continue
			}
			smallest := 0
			for i, t := range cur.Teams {
				if len(t.Members) < len(cur.Teams[smallest].Members) {
					smallest = i
				}
			}
			t := &cur.Teams[smallest]
			t.Members = append(t.Members, p.ID)
			sort.Strings(t.Members)
			cur.Unmailed = append(cur.Unmailed, p.ID)
			added++
		}
		if added == 0 {
			sp = cur
			break
		}
		cur.Updated = s.now()
		if _, err := s.teams.Update(ctx, splitKey(m.EventID), mustJSON(cur), rev); kvjson.Conflict(err) {
			continue
		} else if err != nil {
			return Split{}, 0, fmt.Errorf("add latecomers to teams of %s: %w", m.EventID, err)
		}
		s.splits.drop(m.EventID)
		sp = cur
		break
	}
	if len(sp.Unmailed) == 0 {
		return sp, added, nil
	}
	for _, rid := range sp.Unmailed {
		r, _, err := getJSON[Registration](ctx, s.regs, regKey(m.EventID, rid))
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return sp, added, err
		}
		for _, t := range sp.Teams {
			if t.Has(rid) && r.Email != "" {
				id := "events-team:" + m.EventID + ":" + strconv.Itoa(sp.Version) + ":" + rid
				if err := s.cfg.Mail(ctx, s.teamMail(id, r, t, e)); err != nil {
					return sp, added, fmt.Errorf("queue team mail: %w", err)
				}
			}
		}
	}
	for {
		cur, rev, err := getJSON[Split](ctx, s.teams, splitKey(m.EventID))
		if err != nil {
			return sp, added, err
		}
		cur.Unmailed = slices.DeleteFunc(cur.Unmailed, func(rid string) bool { return slices.Contains(sp.Unmailed, rid) })
		if _, err := s.teams.Update(ctx, splitKey(m.EventID), mustJSON(cur), rev); kvjson.Conflict(err) {
			continue
		} else if err != nil {
			return sp, added, fmt.Errorf("mark latecomers' mails sent: %w", err)
		}
		return cur, added, nil
	}
}

// TeamPath is the path of the team page of event eid: one per event, since
// it shows the signed-in participant's own team.
func TeamPath(eid string) string { return LivePath(eid) + "/team" }

func (s *Service) teamMail(id string, r Registration, t Team, e Event) subjects.Mail {
	link := strings.TrimRight(s.cfg.BaseURL, "/") + TeamPath(e.ID)
	text := fmt.Sprintf("Hello %s,\n\nYou are in %s at %s.\n\nYour team page, with its chat, the help button and your team's submission:\n%s\n\nSign in with this address (%s) to open it.\n",
		r.Name, t.Name, e.Title, link, r.Email)
	return subjects.Mail{ID: id, To: r.Email, Subject: "Your team at " + OneLine(e.Title) + ": " + t.Name, Text: text}
}

// Teams returns event eid's split; ErrNoTeams before the first split.
// Participants see teams only once published (TeamOf); admins see drafts.
func (s *Service) Teams(ctx context.Context, eid string) (Split, error) {
	sp, _, err := getJSON[Split](ctx, s.teams, splitKey(eid))
	if errors.Is(err, ErrNotFound) {
		return Split{}, ErrNoTeams
	}
	return sp, err
}

// publishedSplits keeps published splits in memory for a few seconds:
// TeamOf runs for every team chat connection and team page, and a split
// of thousands of members is a large value. Published teams change only
// by latecomers joining, which this edge sees at once (its own writes
// drop the entry) and other edges within publishedSplitTTL.
type publishedSplits struct {
	mu sync.Mutex
	m  map[string]cachedSplit
}

type cachedSplit struct {
	sp Split
	at time.Time
}

const publishedSplitTTL = 5 * time.Second

func (c *publishedSplits) get(eid string) (Split, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[eid]
	if !ok || time.Since(e.at) > publishedSplitTTL {
		delete(c.m, eid)
		return Split{}, false
	}
	return e.sp, true
}

func (c *publishedSplits) put(sp Split) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[string]cachedSplit{}
	}
	c.m[sp.EventID] = cachedSplit{sp: sp, at: time.Now()}
}

func (c *publishedSplits) drop(eid string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.m, eid)
}

// TeamOf returns the published team of registration rid in event eid, or
// ErrNoTeam.
func (s *Service) TeamOf(ctx context.Context, eid, rid string) (Team, error) {
	if rid == "" {
		return Team{}, ErrNoTeam
	}
	sp, ok := s.splits.get(eid)
	var err error
	if !ok {
		sp, err = s.Teams(ctx, eid)
		if err == nil && sp.IsPublished() {
			s.splits.put(sp)
		}
	}
	if errors.Is(err, ErrNoTeams) || err == nil && !sp.IsPublished() {
		return Team{}, ErrNoTeam
	}
	if err != nil {
		return Team{}, err
	}
	for _, t := range sp.Teams {
		if t.Has(rid) {
			return t, nil
		}
	}
	return Team{}, ErrNoTeam
}

// ResendTeamLink mails the team page link again to address email when it
// has a confirmed registration in a published team of event eid, and
// reports whether it did. Callers answer the same either way, so the page
// never tells whether an address is registered. Repeats within a minute
// send one mail.
func (s *Service) ResendTeamLink(ctx context.Context, e Event, email string) (bool, error) {
	email, err := normaliseEmail(email)
	if err != nil {
		return false, nil
	}
	refs, err := s.personRegs(ctx, email)
	if err != nil {
		return false, err
	}
	for _, ref := range refs {
		if ref.eid != e.ID {
			continue
		}
		r, _, err := getJSON[Registration](ctx, s.regs, regKey(ref.eid, ref.rid))
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return false, err
		}
		if r.Status != Confirmed && r.Status != Paid || !strings.EqualFold(r.Email, email) {
			continue
		}
		t, err := s.TeamOf(ctx, e.ID, r.ID)
		if errors.Is(err, ErrNoTeam) {
			continue
		}
		if err != nil {
			return false, err
		}
		id := "events-team-resend:" + e.ID + ":" + r.ID + ":" + strconv.FormatInt(s.now().Unix()/60, 10)
		if err := s.cfg.Mail(ctx, s.teamMail(id, r, t, e)); err != nil {
			return false, fmt.Errorf("queue team link: %w", err)
		}
		return true, nil
	}
	return false, nil
}

// Names returns the names of registrations rids of event eid (pseudonyms
// for deleted participants), for showing team members and contributors.
func (s *Service) Names(ctx context.Context, eid string, rids []string) (map[string]string, error) {
	out := make(map[string]string, len(rids))
	if len(rids) == 0 {
		return out, nil
	}
	all, err := s.eventRegs(ctx, eid)
	if err != nil {
		return nil, err
	}
	for _, rid := range rids {
		if r, ok := all[rid]; ok {
			out[rid] = r.Name
		} else {
			out[rid] = Pseudonym(rid)
		}
	}
	return out, nil
}
