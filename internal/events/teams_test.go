package events_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"jetfleet/internal/blob"
	"jetfleet/internal/events"
	"jetfleet/internal/testenv"
	"jetfleet/subjects"
)

// clock is a test clock that tests move forward.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) { c.mu.Lock(); defer c.mu.Unlock(); c.t = c.t.Add(d) }

type desk struct {
	s     *events.Service
	js    jetstream.JetStream
	mail  *mailbox
	clock *clock
	blobs blob.Store
	e     events.Event
	org   events.Member
}

// openDesk opens a service with blob storage, a movable clock and a live
// event of organiser org1 with n confirmed participants p0…p(n-1).
func openDesk(t *testing.T, n int) (*desk, []events.Member) {
	t.Helper()
	_, js := testenv.JetStream(t)
	ctx := testenv.Context(t, 20*time.Second)
	if err := subjects.Provision(ctx, js, subjects.Options{}); err != nil {
		t.Fatal(err)
	}
	signer, _ := blob.NewURLSigner([]byte(strings.Repeat("k", 32)))
	store, err := blob.NewObjectStore(ctx, js, subjects.BlobStore, signer, "http://site")
	if err != nil {
		t.Fatal(err)
	}
	d := &desk{js: js, mail: &mailbox{}, clock: &clock{t: now}, blobs: store}
	d.s, err = events.Open(ctx, js, events.Config{BaseURL: "http://site", Mail: d.mail.send, Now: d.clock.now, Blobs: store, MaxSubmissionFile: 1000})
	if err != nil {
		t.Fatal(err)
	}
	d.e = liveEvent(t, d.s, "org1", 1000, free(1000))
	if d.org, _, err = d.s.Member(ctx, d.e.ID, "org1", "org@example.com"); err != nil {
		t.Fatal(err)
	}
	var ms []events.Member
	for i := range n {
		email := fmt.Sprintf("p%d@example.com", i)
		r, err := d.s.Register(ctx, d.e.ID, events.RegistrationInput{TicketTypeID: d.e.Tickets[0].ID, Name: fmt.Sprintf("P%d", i), Email: email, Terms: true, DataSharing: true})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := d.s.Confirm(ctx, email, d.e.ID, r.ID); err != nil {
			t.Fatal(err)
		}
		m, _, err := d.s.Member(ctx, d.e.ID, "u"+fmt.Sprint(i), email)
		if err != nil {
			t.Fatal(err)
		}
		ms = append(ms, m)
	}
	return d, ms
}

func TestBalancedSizes(t *testing.T) {
	for _, c := range []struct {
		n    int
		by   events.SplitBy
		want []int
	}{
		{10, events.SplitBy{Size: 4}, []int{4, 3, 3}},
		{12, events.SplitBy{Size: 4}, []int{4, 4, 4}},
		{13, events.SplitBy{Size: 4}, []int{4, 3, 3, 3}},
		{3, events.SplitBy{Size: 5}, []int{3}},
		{10, events.SplitBy{Count: 3}, []int{4, 3, 3}},
		{11, events.SplitBy{Count: 4}, []int{3, 3, 3, 2}},
		{2, events.SplitBy{Count: 5}, []int{1, 1}},
		{7, events.SplitBy{Size: 1}, []int{1, 1, 1, 1, 1, 1, 1}},
	} {
		got, err := events.BalancedSizes(c.n, c.by)
		if err != nil || !slices.Equal(got, c.want) {
			t.Errorf("%d participants by %+v = %v, %v; want %v", c.n, c.by, got, err, c.want)
		}
	}
	var v *events.ValidationError
	for _, by := range []events.SplitBy{{}, {Size: 2, Count: 2}, {Size: -1}} {
		if _, err := events.BalancedSizes(5, by); !errors.As(err, &v) {
			t.Errorf("by %+v: err = %v; want a validation error", by, err)
		}
	}
	if _, err := events.BalancedSizes(0, events.SplitBy{Size: 3}); !errors.Is(err, events.ErrNoParticipants) {
		t.Errorf("nobody to split: err = %v", err)
	}
}

// Every confirmed participant lands in exactly one team, sizes differ by
// at most one, and a re-run makes a new split until publishing freezes it.
func TestSplitCoversEveryParticipantOnceAndReRunsUntilPublished(t *testing.T) {
	d, ms := openDesk(t, 11)
	ctx := context.Background()
	register(t, d.s, d.e, "unconfirmed@example.com") // never confirmed: in no team
	var want []string
	for _, m := range ms {
		want = append(want, m.RegistrationID)
	}
	sort.Strings(want)
	first, err := d.s.SplitTeams(ctx, d.org, events.SplitBy{Count: 3})
	if err != nil {
		t.Fatal(err)
	}
	second, err := d.s.SplitTeams(ctx, d.org, events.SplitBy{Size: 2})
	if err != nil {
		t.Fatal(err)
	}
	for _, sp := range []events.Split{first, second} {
		var got []string
		lo, hi := 1<<30, 0
		for _, tm := range sp.Teams {
			got = append(got, tm.Members...)
			lo, hi = min(lo, len(tm.Members)), max(hi, len(tm.Members))
		}
		sort.Strings(got)
		if !slices.Equal(got, want) || hi-lo > 1 {
			t.Errorf("split v%d: members %v (sizes %d–%d), want each of %v once, balanced", sp.Version, got, lo, hi, want)
		}
	}
	if len(first.Teams) != 3 || len(second.Teams) != 6 || second.Version != first.Version+1 {
		t.Errorf("teams %d then %d (versions %d, %d); want 3 then 6, versions counting up", len(first.Teams), len(second.Teams), first.Version, second.Version)
	}
	if _, err := d.s.TeamOf(ctx, d.e.ID, ms[0].RegistrationID); !errors.Is(err, events.ErrNoTeam) {
		t.Errorf("participant sees an unpublished team: %v", err)
	}
	pub, err := d.s.PublishTeams(ctx, d.org, d.e)
	if err != nil || !pub.IsPublished() || !pub.Mailed {
		t.Fatalf("publish: %+v, %v", pub, err)
	}
	if _, err := d.s.SplitTeams(ctx, d.org, events.SplitBy{Count: 2}); !errors.Is(err, events.ErrTeamsPublished) {
		t.Errorf("split after publishing: err = %v; want ErrTeamsPublished", err)
	}
	got, _ := d.s.Teams(ctx, d.e.ID)
	if got.Version != second.Version || len(got.Teams) != 6 {
		t.Errorf("published teams changed: %+v", got)
	}
	tm, err := d.s.TeamOf(ctx, d.e.ID, ms[0].RegistrationID)
	if err != nil || !tm.Has(ms[0].RegistrationID) {
		t.Errorf("TeamOf after publishing = %+v, %v", tm, err)
	}
}

// Publishing mails every member once, however often it is repeated.
func TestPublishMailsEachMemberTheirTeamLinkOnce(t *testing.T) {
	d, ms := openDesk(t, 5)
	ctx := context.Background()
	if _, err := d.s.SplitTeams(ctx, d.org, events.SplitBy{Size: 2}); err != nil {
		t.Fatal(err)
	}
	before := d.mail.count()
	for range 3 {
		if _, err := d.s.PublishTeams(ctx, d.org, d.e); err != nil {
			t.Fatal(err)
		}
	}
	d.mail.mu.Lock()
	sent := slices.Clone(d.mail.sent[before:])
	d.mail.mu.Unlock()
	if len(sent) != len(ms) {
		t.Fatalf("%d team mails for %d members: %+v", len(sent), len(ms), sent)
	}
	to := map[string]bool{}
	for _, m := range sent {
		to[m.To] = true
		if !strings.Contains(m.Text, "http://site/events/"+d.e.ID+"/live/team") || !strings.Contains(m.Subject, "Team ") {
			t.Errorf("team mail without its link or team: %+v", m)
		}
	}
	if len(to) != len(ms) {
		t.Errorf("mails went to %v; want each of %d members", to, len(ms))
	}
}

func TestOnlyAdminsSplitAndPublishTeams(t *testing.T) {
	d, ms := openDesk(t, 3)
	ctx := context.Background()
	if _, err := d.s.SplitTeams(ctx, ms[0], events.SplitBy{Size: 2}); !errors.Is(err, events.ErrNotAdmin) {
		t.Errorf("participant splits: err = %v", err)
	}
	if _, err := d.s.PublishTeams(ctx, ms[0], d.e); !errors.Is(err, events.ErrNotAdmin) {
		t.Errorf("participant publishes: err = %v", err)
	}
	if _, err := d.s.PublishTeams(ctx, d.org, d.e); !errors.Is(err, events.ErrNoTeams) {
		t.Errorf("publish before any split: err = %v", err)
	}
}

// A team room is for its members and the admins; the main room for all.
func TestTeamRoomIsForItsMembersAndAdminsOnly(t *testing.T) {
	d, ms := openDesk(t, 4)
	ctx := context.Background()
	sp, err := d.s.SplitTeams(ctx, d.org, events.SplitBy{Count: 2})
	if err != nil {
		t.Fatal(err)
	}
	a, b := sp.Teams[0], sp.Teams[1]
	inA := ms[0]
	for _, m := range ms {
		if m.RegistrationID == a.Members[0] {
			inA = m
		}
	}
	// Before publishing, nobody but admins is in a team room.
	if ok, err := d.s.CanJoinRoom(ctx, inA, a.ID); ok || err != nil {
		t.Errorf("member joins a draft team's room: %v, %v", ok, err)
	}
	if _, err := d.s.PublishTeams(ctx, d.org, d.e); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		who  string
		m    events.Member
		room string
		want bool
	}{
		{"member, own team", inA, a.ID, true},
		{"member, other team", inA, b.ID, false},
		{"member, main room", inA, events.MainRoom, true},
		{"member, made-up room", inA, "nosuchroom", false},
		{"admin, any team", d.org, b.ID, true},
		{"admin, main room", d.org, events.MainRoom, true},
	} {
		if ok, err := d.s.CanJoinRoom(ctx, c.m, c.room); ok != c.want || err != nil {
			t.Errorf("%s: CanJoinRoom = %v, %v; want %v", c.who, ok, err, c.want)
		}
	}
}

// The lost-link mail goes only to an address with a confirmed registration
// in a published team.
func TestTeamLinkIsResentOnlyToTeamMembers(t *testing.T) {
	d, _ := openDesk(t, 2)
	ctx := context.Background()
	pending := register(t, d.s, d.e, "pending@example.com")
	_ = pending
	if sent, err := d.s.ResendTeamLink(ctx, d.e, "p0@example.com"); sent || err != nil {
		t.Errorf("resend before teams exist: %v, %v", sent, err)
	}
	if _, err := d.s.SplitTeams(ctx, d.org, events.SplitBy{Count: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := d.s.PublishTeams(ctx, d.org, d.e); err != nil {
		t.Fatal(err)
	}
	before := d.mail.count()
	for _, c := range []struct {
		addr string
		want bool
	}{{"P0 <P0@Example.com>", true}, {"pending@example.com", false}, {"stranger@example.com", false}, {"not an address", false}} {
		if sent, err := d.s.ResendTeamLink(ctx, d.e, c.addr); sent != c.want || err != nil {
			t.Errorf("resend to %q: %v, %v; want %v", c.addr, sent, err, c.want)
		}
	}
	if n := d.mail.count() - before; n != 1 {
		t.Errorf("%d mails sent; want 1", n)
	}
}

// engagements returns the engagement messages of kind in event eid.
func engagements(t *testing.T, js jetstream.JetStream, eid, kind string) []subjects.EventsEngagement {
	t.Helper()
	ctx := testenv.Context(t, 5*time.Second)
	st, err := js.Stream(ctx, subjects.EventsEngagementStream)
	if err != nil {
		t.Fatal(err)
	}
	// A work queue takes no second consumer: read the stored messages.
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []subjects.EventsEngagement
	for seq := info.State.FirstSeq; seq > 0 && seq <= info.State.LastSeq; seq++ {
		m, err := st.GetMsg(ctx, seq)
		if err != nil || m.Subject != subjects.EventsEngagementSubject(eid, kind) {
			continue
		}
		var e subjects.EventsEngagement
		json.Unmarshal(m.Data, &e)
		out = append(out, e)
	}
	return out
}

// One open flag per team; claiming and resolving record how long the team
// waited, and each step is published once as engagement.
func TestHelpFlagIsOnePerTeamAndRecordsTimeToClaimAndResolve(t *testing.T) {
	d, ms := openDesk(t, 2)
	ctx := context.Background()
	if _, err := d.s.RaiseHelp(ctx, ms[0]); !errors.Is(err, events.ErrNoTeam) {
		t.Errorf("help before teams: err = %v; want ErrNoTeam", err)
	}
	if _, err := d.s.SplitTeams(ctx, d.org, events.SplitBy{Count: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := d.s.PublishTeams(ctx, d.org, d.e); err != nil {
		t.Fatal(err)
	}
	f, err := d.s.RaiseHelp(ctx, ms[0])
	if err != nil || f.State != events.HelpOpen {
		t.Fatalf("raise: %+v, %v", f, err)
	}
	again, err := d.s.RaiseHelp(ctx, ms[1]) // a teammate presses too
	if err != nil || again.ID != f.ID {
		t.Fatalf("second press raised %+v, %v; want the open flag %s", again, err, f.ID)
	}
	if _, err := d.s.ClaimHelp(ctx, ms[0], f.ID); !errors.Is(err, events.ErrNotAdmin) {
		t.Errorf("participant claims: err = %v", err)
	}
	d.clock.add(42 * time.Second)
	c, err := d.s.ClaimHelp(ctx, d.org, f.ID)
	if err != nil || c.State != events.HelpClaimed || c.ToClaim != 42 || c.ClaimedBy != "org1" {
		t.Fatalf("claim: %+v, %v; want claimed after 42 s by org1", c, err)
	}
	d.clock.add(100 * time.Second)
	if c, _ := d.s.ClaimHelp(ctx, d.org, f.ID); c.ToClaim != 42 {
		t.Errorf("a second claim changed the time to claim to %d", c.ToClaim)
	}
	r, err := d.s.ResolveHelp(ctx, d.org, f.ID)
	if err != nil || r.State != events.HelpResolved || r.ToResolve != 142 {
		t.Fatalf("resolve: %+v, %v; want resolved after 142 s", r, err)
	}
	if _, err := d.s.ResolveHelp(ctx, d.org, f.ID); err != nil {
		t.Errorf("resolving twice: %v", err)
	}
	if _, err := d.s.ClaimHelp(ctx, d.org, f.ID); !errors.Is(err, events.ErrFlagResolved) {
		t.Errorf("claiming a resolved flag: err = %v", err)
	}
	next, err := d.s.RaiseHelp(ctx, ms[1])
	if err != nil || next.ID == f.ID {
		t.Fatalf("after resolving, the team asks again: %+v, %v; want a new flag", next, err)
	}
	flags, _ := d.s.HelpFlags(ctx, d.e.ID)
	if len(flags) != 2 || flags[0].ID != next.ID || flags[1].ID != f.ID {
		t.Errorf("flags = %+v; want the open one first, then the resolved", flags)
	}
	for kind, want := range map[string]int{subjects.EngagementHelpRaised: 2, subjects.EngagementHelpClaimed: 1, subjects.EngagementHelpResolved: 1} {
		got := engagements(t, d.js, d.e.ID, kind)
		if len(got) != want {
			t.Errorf("%d %s engagements, want %d: %+v", len(got), kind, want, got)
		}
		for _, e := range got {
			if e.Ref == "" || e.ID != e.Ref || e.Room == "" {
				t.Errorf("%s engagement without flag or team: %+v", kind, e)
			}
		}
	}
}

func TestSubmissionRefusesLargeOrUnknownFilesWithAMessageAndVersionsUpdates(t *testing.T) {
	d, ms := openDesk(t, 2) // files up to 1000 bytes
	ctx := context.Background()
	if _, err := d.s.SplitTeams(ctx, d.org, events.SplitBy{Count: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := d.s.PublishTeams(ctx, d.org, d.e); err != nil {
		t.Fatal(err)
	}
	big := bytes.Repeat([]byte("a"), 1001)
	html := []byte("<!DOCTYPE html><html><script>alert(1)</script></html>")
	var v *events.ValidationError
	for name, in := range map[string]events.SubmissionInput{
		"too large": {Title: "Bot", FileName: "big.txt", FileSize: int64(len(big)), FileBody: bytes.NewReader(big)},
		"html":      {Title: "Bot", FileName: "x.html", FileSize: int64(len(html)), FileBody: bytes.NewReader(html)},
	} {
		_, err := d.s.Submit(ctx, ms[0], in)
		if !errors.As(err, &v) || v.Fields["file"] == "" {
			t.Errorf("%s file: err = %v; want a message on the file field", name, err)
		}
	}
	if subs, err := d.s.Submissions(ctx, d.e.ID); len(subs) != 0 || err != nil {
		t.Errorf("refused submissions saved something: %+v, %v", subs, err)
	}
	pdf := []byte("%PDF-1.4 a tiny slide deck")
	s1, err := d.s.Submit(ctx, ms[0], events.SubmissionInput{Title: "Bot", Link: "https://example.com/repo", FileName: "../../deck.pdf", FileSize: int64(len(pdf)), FileBody: bytes.NewReader(pdf)})
	if err != nil || s1.Version != 1 || s1.File == nil || s1.File.Name != "deck.pdf" || s1.File.ContentType != "application/pdf" {
		t.Fatalf("submit: %+v, %v", s1, err)
	}
	s2, err := d.s.Submit(ctx, ms[1], events.SubmissionInput{Title: "Bot v2", Description: "now with tests"})
	if err != nil || s2.Version != 2 || s2.ID != s1.ID || s2.File == nil || s2.File.Key != s1.File.Key {
		t.Fatalf("update: %+v, %v; want version 2 keeping the file", s2, err)
	}
	if !slices.Equal(s2.Contributors, []string{ms[0].RegistrationID, ms[1].RegistrationID}) {
		t.Errorf("contributors %v; want both registration ids", s2.Contributors)
	}
	rc, _, err := d.blobs.Get(ctx, s2.File.Key)
	if err != nil {
		t.Fatal(err)
	}
	rc.Close()
	if n := len(engagements(t, d.js, d.e.ID, subjects.EngagementSubmitted)); n != 2 {
		t.Errorf("%d submitted engagements; want 2 (one per version)", n)
	}
	if _, err := d.s.Submit(ctx, d.org, events.SubmissionInput{Title: "Admin"}); !errors.Is(err, events.ErrNoTeam) {
		t.Errorf("an admin without a team submits: err = %v", err)
	}
}

// The export carries the person's team, flags and submission; deletion
// leaves the submission naming them by registration id, now shown under
// a pseudonym.
func TestTeamDataIsExportedAndDeletionLeavesSubmissionsPseudonymous(t *testing.T) {
	d, ms := openDesk(t, 2)
	ctx := context.Background()
	d.s.SplitTeams(ctx, d.org, events.SplitBy{Count: 1})
	if _, err := d.s.PublishTeams(ctx, d.org, d.e); err != nil {
		t.Fatal(err)
	}
	if _, err := d.s.RaiseHelp(ctx, ms[0]); err != nil {
		t.Fatal(err)
	}
	sub, err := d.s.Submit(ctx, ms[0], events.SubmissionInput{Title: "Bot"})
	if err != nil {
		t.Fatal(err)
	}
	data, err := d.s.PersonalDataOf(ctx, "u0", "p0@example.com")
	if err != nil {
		t.Fatal(err)
	}
	if len(data.Teams) != 1 || data.Teams[0].Team == nil || len(data.Teams[0].HelpFlags) != 1 || data.Teams[0].Submission == nil {
		t.Fatalf("export teams = %+v; want the team, one flag and the submission", data.Teams)
	}
	if _, err := d.s.ForgetPerson(ctx, "u0", "p0@example.com"); err != nil {
		t.Fatal(err)
	}
	after, _ := d.s.SubmissionOf(ctx, d.e.ID, sub.TeamID)
	if !slices.Contains(after.Contributors, ms[0].RegistrationID) {
		t.Fatalf("contributors after deletion = %v", after.Contributors)
	}
	names, _ := d.s.Names(ctx, d.e.ID, after.Contributors)
	if got := names[ms[0].RegistrationID]; got != events.Pseudonym(ms[0].RegistrationID) {
		t.Errorf("deleted contributor shown as %q; want the pseudonym", got)
	}
	b, _ := json.Marshal(after)
	if strings.Contains(string(b), "p0@example.com") || strings.Contains(string(b), "P0") {
		t.Errorf("submission still names the person: %s", b)
	}
}

// confirmed registers and confirms email for d's event.
func (d *desk) confirmed(t *testing.T, email string) events.Registration {
	t.Helper()
	r := register(t, d.s, d.e, email)
	r, err := d.s.Confirm(context.Background(), email, d.e.ID, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// Participants who register after publishing join the smallest teams,
// keeping sizes balanced, and get their team mail once.
func TestLatecomersJoinTheSmallestTeamsAndAreMailedOnce(t *testing.T) {
	d, _ := openDesk(t, 4)
	ctx := context.Background()
	if _, err := d.s.SplitTeams(ctx, d.org, events.SplitBy{Count: 2}); err != nil {
		t.Fatal(err)
	}
	if _, err := d.s.PublishTeams(ctx, d.org, d.e); err != nil {
		t.Fatal(err)
	}
	var late []events.Registration
	for i := range 3 {
		late = append(late, d.confirmed(t, fmt.Sprintf("late%d@example.com", i)))
	}
	before := d.mail.count()
	sp, added, err := d.s.AddLatecomers(ctx, d.org, d.e)
	if err != nil || added != 3 {
		t.Fatalf("add latecomers: %d, %v; want 3", added, err)
	}
	if a, b := len(sp.Teams[0].Members), len(sp.Teams[1].Members); a+b != 7 || a-b > 1 || b-a > 1 {
		t.Errorf("team sizes %d and %d; want 7 balanced", a, b)
	}
	for _, r := range late {
		if _, err := d.s.TeamOf(ctx, d.e.ID, r.ID); err != nil {
			t.Errorf("latecomer %s has no team: %v", r.Email, err)
		}
	}
	if _, added, err := d.s.AddLatecomers(ctx, d.org, d.e); added != 0 || err != nil {
		t.Errorf("second run added %d, %v", added, err)
	}
	if n := d.mail.count() - before; n != 3 {
		t.Errorf("%d mails for 3 latecomers", n)
	}
	if sp, _ := d.s.Teams(ctx, d.e.ID); len(sp.Unmailed) != 0 {
		t.Errorf("latecomers left unmailed: %v", sp.Unmailed)
	}
}

func TestSplittingAnEventWithoutParticipantsSaysSo(t *testing.T) {
	d, _ := openDesk(t, 0)
	if _, err := d.s.SplitTeams(context.Background(), d.org, events.SplitBy{Size: 3}); !errors.Is(err, events.ErrNoParticipants) {
		t.Fatalf("split without registrations: err = %v", err)
	}
	register(t, d.s, d.e, "pending@example.com") // not confirmed
	if _, err := d.s.SplitTeams(context.Background(), d.org, events.SplitBy{Size: 3}); !errors.Is(err, events.ErrNoParticipants) {
		t.Fatalf("split without confirmed participants: err = %v", err)
	}
}

func TestHelpAndSubmissionsCloseWhenTheEventEnds(t *testing.T) {
	d, ms := openDesk(t, 2)
	ctx := context.Background()
	d.s.SplitTeams(ctx, d.org, events.SplitBy{Count: 1})
	if _, err := d.s.PublishTeams(ctx, d.org, d.e); err != nil {
		t.Fatal(err)
	}
	d.clock.t = d.e.End.Add(time.Minute)
	if _, err := d.s.RaiseHelp(ctx, ms[0]); !errors.Is(err, events.ErrEventOver) {
		t.Errorf("help after the end: err = %v; want ErrEventOver", err)
	}
	if _, err := d.s.Submit(ctx, ms[0], events.SubmissionInput{Title: "Late"}); !errors.Is(err, events.ErrEventOver) {
		t.Errorf("submission after the end: err = %v; want ErrEventOver", err)
	}
}
