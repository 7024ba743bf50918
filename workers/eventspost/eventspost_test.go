package eventspost_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"jetfleet/analytics"
	"jetfleet/internal/accounts"
	"jetfleet/internal/eventpost"
	"jetfleet/internal/events"
	"jetfleet/internal/payments"
	"jetfleet/internal/payments/stripetest"
	"jetfleet/internal/testenv"
	"jetfleet/subjects"
	"jetfleet/workers/consume"
	"jetfleet/workers/deadletter"
	"jetfleet/workers/eventsengagement"
	"jetfleet/workers/eventspost"
)

var ch *testenv.ClickHouse

func TestMain(m *testing.M) { testenv.ClickHouseMain(m, func(c *testenv.ClickHouse) { ch = c }) }

var quiet = slog.New(slog.DiscardHandler)

// prices: two participants free, then 1.00 EUR each.
var prices = eventpost.Prices{FreeParticipants: 2, PerParticipantMinor: 100, Currency: "eur"}

type env struct {
	t      *testing.T
	ctx    context.Context
	nats   *testenv.NATS
	js     jetstream.JetStream
	deps   consume.Deps
	svc    *events.Service
	users  *accounts.Store
	stripe *stripetest.Server
	pay    *payments.Client
	fake   time.Time // the events service's clock: three hours behind
}

func newEnv(t *testing.T) *env {
	t.Helper()
	ctx := testenv.Context(t, 90*time.Second)
	n := testenv.StartNATS(t)
	_, js := n.Connect(t)
	if err := subjects.Provision(ctx, js, subjects.Options{}); err != nil {
		t.Fatal(err)
	}
	conn, _ := ch.Database(t)
	if _, err := analytics.Migrate(ctx, conn, analytics.Schema(), quiet); err != nil {
		t.Fatal(err)
	}
	st, err := stripetest.Start(stripetest.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	pay, err := payments.New(payments.Config{SecretKey: st.SecretKey(), WebhookSecret: st.WebhookSecret(), APIBase: st.URL})
	if err != nil {
		t.Fatal(err)
	}
	fake := time.Now().UTC().Add(-3 * time.Hour)
	svc, err := events.Open(ctx, js, events.Config{BaseURL: "http://site", Now: func() time.Time { return fake }})
	if err != nil {
		t.Fatal(err)
	}
	users, err := accounts.Open(ctx, js, accounts.Config{})
	if err != nil {
		t.Fatal(err)
	}
	return &env{t: t, ctx: ctx, nats: n, js: js, svc: svc, users: users, stripe: st, pay: pay, fake: fake,
		deps: consume.Deps{JS: js, ClickHouse: conn, Log: quiet}}
}

// organiser signs up and saves card (a stripetest.Card…) for fees, as
// the setup page does.
func (e *env) organiser(email, card string) accounts.User {
	e.t.Helper()
	u, err := e.users.EnsureUser(e.ctx, email)
	if err != nil {
		e.t.Fatal(err)
	}
	cus, err := e.pay.CreateCustomer(e.ctx, email, u.ID, "customer-"+u.ID)
	if err != nil {
		e.t.Fatal(err)
	}
	co, err := e.pay.CreateSetupCheckout(e.ctx, payments.SetupRequest{Customer: cus, Currency: "eur", SuccessURL: "http://site/done?session={CHECKOUT_SESSION_ID}", CancelURL: "http://site/"})
	if err != nil {
		e.t.Fatal(err)
	}
	if _, err := e.stripe.CompleteSetup(e.ctx, co.ID, card); err != nil {
		e.t.Fatal(err)
	}
	res, err := e.pay.SetupOutcome(e.ctx, co.ID)
	if err != nil {
		e.t.Fatal(err)
	}
	if _, err := e.svc.SetFeePaymentMethod(e.ctx, u.ID, res.Customer, res.PaymentMethod); err != nil {
		e.t.Fatal(err)
	}
	return u
}

// endedEvent is a live event of u that (by the real clock) ended two
// hours ago, with n confirmed participants, one registration never
// confirmed and one cancelled.
func (e *env) endedEvent(u accounts.User, n int) (events.Event, []events.Registration) {
	e.t.Helper()
	in := events.EventInput{Title: "Hack night", BusinessType: "technology", TimeZone: "UTC", Capacity: "100",
		Start: e.fake.Add(30 * time.Minute).Format(events.FormTime), End: e.fake.Add(70 * time.Minute).Format(events.FormTime)}
	ev, err := e.svc.CreateEvent(e.ctx, u.ID, in)
	if err != nil {
		e.t.Fatal(err)
	}
	if ev, err = e.svc.AddTicketType(e.ctx, u.ID, ev.ID, events.TicketInput{Name: "General", Price: "0", Quantity: "100"}); err != nil {
		e.t.Fatal(err)
	}
	if ev, err = e.svc.Publish(e.ctx, u.ID, ev.ID); err != nil {
		e.t.Fatal(err)
	}
	var regs []events.Registration
	for i := range n + 2 {
		email := fmt.Sprintf("p%d@example.com", i)
		r, err := e.svc.Register(e.ctx, ev.ID, events.RegistrationInput{TicketTypeID: ev.Tickets[0].ID, Name: fmt.Sprintf("P%d", i), Email: email, Terms: true, DataSharing: true})
		if err != nil {
			e.t.Fatal(err)
		}
		if i == n { // never confirmed
			continue
		}
		if r, err = e.svc.Confirm(e.ctx, email, ev.ID, r.ID); err != nil {
			e.t.Fatal(err)
		}
		if i == n+1 {
			if _, err := e.svc.Cancel(e.ctx, email, ev.ID, r.ID); err != nil {
				e.t.Fatal(err)
			}
			continue
		}
		regs = append(regs, r)
	}
	return ev, regs
}

// run runs roles until the returned stop is called (or the test ends).
func (e *env) run(roles ...consume.Role) (stop func()) {
	ctx, cancel := context.WithCancel(e.ctx)
	done := make(chan error, 1)
	go func() {
		done <- consume.RunRoles(ctx, roles, e.deps, consume.NewMetrics(prometheus.NewRegistry()))
	}()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil && ctx.Err() == nil {
				e.t.Errorf("roles: %v", err)
			}
		})
	}
	e.t.Cleanup(stop)
	return stop
}

func (e *env) postRoles(reg *prometheus.Registry) []consume.Role {
	e.deps.Registerer = reg
	return eventspost.Roles(eventspost.Config{
		BaseURL: "http://site", Prices: prices, RetryMin: 50 * time.Millisecond, RetryMax: 200 * time.Millisecond,
		Payments: func() (*payments.Client, error) { return e.pay, nil },
	})
}

func publish(t *testing.T, js jetstream.JetStream, en subjects.EventsEngagement, withID bool) {
	t.Helper()
	b, _ := json.Marshal(en)
	var opts []jetstream.PublishOpt
	if withID {
		opts = append(opts, jetstream.WithMsgID(subjects.EventsEngagementMsgID(en)))
	}
	if _, err := js.Publish(context.Background(), subjects.EventsEngagementSubject(en.EventID, en.Kind), b, opts...); err != nil {
		t.Fatal(err)
	}
}

// fire publishes the post-event firing of ev, as the schedule (or an
// operator) does; nth makes each firing a distinct message.
func (e *env) fire(ev events.Event, nth int) {
	e.t.Helper()
	b, _ := json.Marshal(subjects.EventsPostFiring{EventID: ev.ID, End: ev.End, At: time.Now().UTC()})
	if _, err := e.js.Publish(e.ctx, subjects.EventsPostFire(ev.ID), b, jetstream.WithMsgID(fmt.Sprintf("test-fire-%s-%d", ev.ID, nth))); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) fee(ev events.Event, done func(eventpost.FeeRecord) bool) eventpost.FeeRecord {
	e.t.Helper()
	store, err := eventpost.Open(e.ctx, e.js)
	if err != nil {
		e.t.Fatal(err)
	}
	var rec eventpost.FeeRecord
	testenv.EventuallyState(e.t, 30*time.Second, "the fee ledger settles", func() (bool, any) {
		r, _, err := store.Fee(e.ctx, ev.ID)
		if err != nil {
			return false, err
		}
		rec = r
		return done(r), r
	})
	return rec
}

// mails returns the mails queued on MAIL with id.
func (e *env) mails(id string) []subjects.Mail {
	e.t.Helper()
	st, err := e.js.Stream(e.ctx, subjects.MailStream)
	if err != nil {
		e.t.Fatal(err)
	}
	info, err := st.Info(e.ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	var out []subjects.Mail
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := st.GetMsg(e.ctx, seq)
		if err != nil {
			continue
		}
		var x subjects.Mail
		if json.Unmarshal(m.Data, &x) == nil && x.ID == id {
			out = append(out, x)
		}
	}
	return out
}

func TestFiguresAndFeeAreExactUnderDuplicatesTwoEdgesARestartAndTwoFirings(t *testing.T) {
	e := newEnv(t)
	org := e.organiser("org@example.com", stripetest.CardSucceeds)
	const n = 7
	ev, regs := e.endedEvent(org, n)
	_, edgeA := e.nats.Connect(t)
	_, edgeB := e.nats.Connect(t)
	base := ev.Start.Add(5 * time.Minute)
	// Participant i (of the first m = 4) is connected minutes[i] minutes;
	// each minute's heartbeat comes from both edges (two tabs), edge B's
	// without a message id so the stream cannot drop it.
	minutes := []int{1, 3, 10, 45}
	engagement := func(from, to int) {
		for i, k := range minutes {
			uid := "user-" + regs[i].ID
			for j := from; j < min(to, k); j++ {
				at := base.Add(time.Duration(j) * time.Minute)
				hb := subjects.EventsEngagement{Kind: subjects.EngagementHeartbeat, EventID: ev.ID, ID: subjects.HeartbeatID(uid, at), UserID: uid, At: at.Add(7 * time.Second)}
				publish(t, edgeA, hb, true)
				hb.At = at.Add(31 * time.Second)
				publish(t, edgeB, hb, false)
			}
		}
	}
	engine := eventsengagement.Roles(eventsengagement.Config{FlushEvery: 50 * time.Millisecond})
	stop := e.run(engine...)
	engagement(0, 5)
	// Messages: 5 in main (one delivered twice), 3 in a team; 2
	// submissions (one updated); one help flag raised, claimed, resolved.
	for i := range 5 {
		m := subjects.EventsEngagement{Kind: subjects.EngagementMessage, EventID: ev.ID, ID: fmt.Sprint(100 + i), UserID: "user-" + regs[0].ID, Room: "main", At: base}
		publish(t, edgeA, m, true)
		if i == 0 {
			publish(t, edgeB, m, false)
		}
	}
	for i := range 3 {
		publish(t, edgeB, subjects.EventsEngagement{Kind: subjects.EngagementMessage, EventID: ev.ID, ID: fmt.Sprint(200 + i), UserID: "user-" + regs[1].ID, Room: "team1", At: base}, true)
	}
	for _, id := range []string{"sub1.1", "sub1.2", "sub2.1"} {
		publish(t, edgeA, subjects.EventsEngagement{Kind: subjects.EngagementSubmitted, EventID: ev.ID, ID: id, Ref: strings.Split(id, ".")[0], At: base}, true)
	}
	for i, k := range []string{subjects.EngagementHelpRaised, subjects.EngagementHelpClaimed, subjects.EngagementHelpResolved} {
		publish(t, edgeA, subjects.EventsEngagement{Kind: k, EventID: ev.ID, ID: "flag1", Ref: "flag1", At: base.Add(time.Duration(i) * 90 * time.Second)}, true)
	}
	// An invalid one goes to the DLQ with its reason, not into the figures.
	publish(t, edgeA, subjects.EventsEngagement{Kind: subjects.EngagementHeartbeat, EventID: ev.ID, ID: "x", At: base}, true)
	testenv.EventuallyState(t, 20*time.Second, "the invalid engagement is dead-lettered", func() (bool, any) {
		list, err := deadletter.List(e.ctx, e.js, subjects.EventsEngagementStream, 0)
		return err == nil && len(list) == 1 && strings.Contains(list[0].Error, "user_id"), list
	})
	// The role restarts; the rest arrives, and everything from edge A is
	// sent once more (a publisher's retry after the duplicate window).
	stop()
	e.run(engine...)
	engagement(5, 60)
	for i, k := range minutes {
		uid := "user-" + regs[i].ID
		for j := range min(k, 5) {
			at := base.Add(time.Duration(j) * time.Minute)
			publish(t, edgeA, subjects.EventsEngagement{Kind: subjects.EngagementHeartbeat, EventID: ev.ID, ID: subjects.HeartbeatID(uid, at), UserID: uid, At: at}, false)
		}
	}
	st, _ := e.js.Stream(e.ctx, subjects.EventsEngagementStream)
	testenv.EventuallyState(t, 30*time.Second, "every engagement is stored and acknowledged", func() (bool, any) {
		info, err := st.Info(e.ctx)
		return err == nil && info.State.Msgs == 0, info.State
	})

	e.run(e.postRoles(prometheus.NewRegistry())...)
	e.fire(ev, 1)
	e.fire(ev, 2)
	rec := e.fee(ev, func(r eventpost.FeeRecord) bool { return r.Mailed })
	e.fire(ev, 3) // after the charge: changes nothing

	store, _ := eventpost.Open(e.ctx, e.js)
	sum, err := store.Summary(e.ctx, ev.ID)
	if err != nil {
		t.Fatal(err)
	}
	total := 0
	for _, k := range minutes {
		total += k
	}
	got := fmt.Sprintf("registrations %d awaiting %d cancelled %d attendees %d minutes %d main %d teams %d submissions %d help %d/%d/%d claim %ds resolve %ds",
		sum.Registrations, sum.Awaiting, sum.Cancelled, sum.Attendees, sum.ConnectedMinutes, sum.MessagesMain, sum.MessagesTeams, sum.Submissions,
		sum.Help.Requests, sum.Help.Claimed, sum.Help.Resolved, sum.Help.ClaimMedianSec, sum.Help.ResolveMedianSec)
	want := fmt.Sprintf("registrations %d awaiting 1 cancelled 1 attendees %d minutes %d main 5 teams 3 submissions 2 help 1/1/1 claim 90s resolve 180s", n, len(minutes), total)
	if got != want {
		t.Fatalf("figures:\n got %s\nwant %s", got, want)
	}
	if d := sum.Distribution; d[0].Count != 2 || d[1].Count != 1 || d[3].Count != 1 {
		t.Errorf("distribution %+v, want 1–4 min: 2, 5–14: 1, 30–59: 1", d)
	}
	if len(sum.AttendanceCurve) != 45 || sum.AttendanceCurve[0].Count != 4 || sum.AttendanceCurve[44].Count != 1 {
		t.Errorf("attendance curve %d minutes, first %+v", len(sum.AttendanceCurve), sum.AttendanceCurve[:1])
	}
	if len(sum.ByTicket) != 1 || sum.ByTicket[0].Count != n {
		t.Errorf("by ticket %+v, want %d of General", sum.ByTicket, n)
	}

	wantFee := prices.Fee(n)
	if rec.State != eventpost.FeePaid || rec.AmountMinor != wantFee || rec.Participants != n {
		t.Fatalf("fee record %+v, want paid %d for %d", rec, wantFee, n)
	}
	testenv.EventuallyState(t, 10*time.Second, "the third firing is handled", func() (bool, any) {
		c, err := e.js.Consumer(e.ctx, subjects.EventsPostStream, subjects.EventsFeeConsumer)
		if err != nil {
			return false, err
		}
		info, err := c.Info(e.ctx)
		return err == nil && info.NumPending == 0 && info.NumAckPending == 0, info
	})
	if pis := e.stripe.PaymentIntents(); len(pis) != 1 || pis[0].Amount != wantFee || pis[0].Metadata["event_id"] != ev.ID {
		t.Fatalf("PaymentIntents %+v, want one of %d for event %s", pis, wantFee, ev.ID)
	}
	// The CRM exports are queued once, for the events-export role.
	exports, err := e.js.Stream(e.ctx, subjects.EventsExportsStream)
	if err != nil {
		t.Fatal(err)
	}
	subj := subjects.EventsExportSubject(ev.ID, subjects.EventsExportPost)
	if info, err := exports.Info(e.ctx, jetstream.WithSubjectFilter(subj)); err != nil || info.State.Subjects[subj] != 1 {
		t.Fatalf("post-event export jobs on %s: %+v %v, want 1", subj, info, err)
	}
	// ClickHouse keeps the same figures.
	rows, err := analytics.EventSummaryRows(e.ctx, e.deps.ClickHouse, ev.ID)
	if err != nil {
		t.Fatal(err)
	}
	var stored []string
	for _, r := range rows {
		if r.Key == "" {
			stored = append(stored, fmt.Sprintf("%s=%v", r.Metric, r.Value))
		}
	}
	if got := strings.Join(stored, " "); !strings.Contains(got, fmt.Sprintf("attendees=%d", len(minutes))) || !strings.Contains(got, fmt.Sprintf("registrations=%d", n)) {
		t.Fatalf("events_summary rows: %s", got)
	}
	mails := e.mails(eventpost.SummaryMailID(ev.ID))
	if len(mails) != 1 || mails[0].To != "org@example.com" || !strings.Contains(mails[0].Text, "Attendees (1 minute or more): 4") ||
		!strings.Contains(mails[0].Text, "Platform fee charged: 5.00 EUR for 7") || !strings.Contains(mails[0].HTML, "<table") {
		t.Fatalf("summary mails %+v", mails)
	}
}

func TestAChargeWhoseAnswerWasLostIsNotMadeTwice(t *testing.T) {
	e := newEnv(t)
	org := e.organiser("org@example.com", stripetest.CardSucceeds)
	ev, _ := e.endedEvent(org, 5)
	store, _ := eventpost.Open(e.ctx, e.js)
	// A worker wrote its intent and charged, then died before recording
	// the result: the ledger says charging, Stripe has the payment.
	if _, err := store.CreateFee(e.ctx, eventpost.FeeRecord{EventID: ev.ID, OrganiserID: org.ID, Participants: 5, AmountMinor: prices.Fee(5), Currency: "eur", State: eventpost.FeeCharging, Attempt: 1}); err != nil {
		t.Fatal(err)
	}
	o, _ := e.svc.Organiser(e.ctx, org.ID)
	if _, err := e.pay.ChargeOffSession(e.ctx, payments.OffSessionCharge{
		Customer: o.FeeCustomerID, PaymentMethod: o.FeePaymentMethod, AmountMinor: prices.Fee(5), Currency: "eur",
		Description: fmt.Sprintf("jetfleet platform fee, event %s (%d participants)", ev.ID, 5),
		Metadata:    map[string]string{"event_id": ev.ID, "participants": "5"}, IdempotencyKey: eventpost.IdempotencyKey(ev.ID, 1),
	}); err != nil {
		t.Fatal(err)
	}
	// And the next answer is lost on the wire too.
	e.stripe.DropResponses(1)
	e.run(e.postRoles(prometheus.NewRegistry())...)
	e.fire(ev, 1)
	rec := e.fee(ev, func(r eventpost.FeeRecord) bool { return r.Mailed })
	if pis := e.stripe.PaymentIntents(); rec.State != eventpost.FeePaid || len(pis) != 1 || rec.PaymentIntentID != pis[0].ID {
		t.Fatalf("record %+v, PaymentIntents %+v: want the one charge", rec, pis)
	}
}

func TestAChargeNeedingAuthenticationIsFlaggedToTheOrganiser(t *testing.T) {
	e := newEnv(t)
	org := e.organiser("org@example.com", stripetest.CardAuthentication)
	ev, _ := e.endedEvent(org, 4)
	reg := prometheus.NewRegistry()
	e.run(e.postRoles(reg)...)
	e.fire(ev, 1)
	e.fire(ev, 2)
	rec := e.fee(ev, func(r eventpost.FeeRecord) bool { return r.Mailed })
	if rec.State != eventpost.FeeFlagged || rec.DeclineCode != "authentication_required" || rec.Attempt != 1 {
		t.Fatalf("record %+v, want flagged for authentication after one attempt", rec)
	}
	mails := e.mails(eventpost.SummaryMailID(ev.ID))
	if len(mails) != 1 || !strings.Contains(mails[0].Text, "could not charge the platform fee of 2.00 EUR") {
		t.Fatalf("mails %+v", mails)
	}
	if v := counter(t, reg, "flagged"); v != 1 {
		t.Fatalf("jetfleet_events_fee_charges_total{result=flagged} = %v, want 1", v)
	}
	// The organiser saves a card that works and asks for the charge again.
	e.organiser("org@example.com", stripetest.CardSucceeds)
	store, _ := eventpost.Open(e.ctx, e.js)
	reopened, err := store.ReopenFee(e.ctx, ev.ID, time.Now())
	if err != nil || reopened.Attempt != 2 {
		t.Fatalf("reopen: %+v %v", reopened, err)
	}
	b, _ := json.Marshal(subjects.EventsPostFiring{EventID: ev.ID, End: ev.End})
	if _, err := e.js.Publish(e.ctx, subjects.EventsPostAccumulated(ev.ID), b, jetstream.WithMsgID("retry-1")); err != nil {
		t.Fatal(err)
	}
	rec = e.fee(ev, func(r eventpost.FeeRecord) bool { return r.State == eventpost.FeePaid })
	pis := e.stripe.PaymentIntents()
	if len(pis) != 2 || pis[1].Status != "succeeded" || rec.PaymentIntentID != pis[1].ID {
		t.Fatalf("after the retry: record %+v, PaymentIntents %+v", rec, pis)
	}
	if _, err := store.ReopenFee(e.ctx, ev.ID, time.Now()); err != eventpost.ErrNotFlagged {
		t.Fatalf("reopening a paid fee: %v, want ErrNotFlagged", err)
	}
}

func TestADeclinedChargeIsRetriedWithNewKeysThenFlagged(t *testing.T) {
	e := newEnv(t)
	org := e.organiser("org@example.com", stripetest.CardDeclined)
	ev, _ := e.endedEvent(org, 3)
	e.run(e.postRoles(prometheus.NewRegistry())...)
	e.fire(ev, 1)
	rec := e.fee(ev, func(r eventpost.FeeRecord) bool { return r.Mailed })
	if rec.State != eventpost.FeeFlagged || rec.Attempt != eventspost.MaxFeeAttempts || rec.DeclineCode != "insufficient_funds" {
		t.Fatalf("record %+v", rec)
	}
	if pis := e.stripe.PaymentIntents(); len(pis) != eventspost.MaxFeeAttempts {
		t.Fatalf("%d PaymentIntents, want one per attempt (%d)", len(pis), eventspost.MaxFeeAttempts)
	}
}

func TestAFiringForAnEarlierEndChangesNothing(t *testing.T) {
	e := newEnv(t)
	org := e.organiser("org@example.com", stripetest.CardSucceeds)
	ev, _ := e.endedEvent(org, 3)
	e.run(e.postRoles(prometheus.NewRegistry())...)
	stale := ev
	stale.End = ev.End.Add(-time.Hour)
	e.fire(stale, 1)
	c, _ := e.js.Consumer(e.ctx, subjects.EventsPostStream, subjects.EventsPostConsumer)
	testenv.EventuallyState(t, 10*time.Second, "the stale firing is handled", func() (bool, any) {
		info, err := c.Info(e.ctx)
		return err == nil && info.AckFloor.Stream > 0 && info.NumAckPending == 0, info
	})
	store, _ := eventpost.Open(e.ctx, e.js)
	if _, err := store.Summary(e.ctx, ev.ID); err != eventpost.ErrNotFound {
		t.Fatalf("summary after a stale firing: %v, want none", err)
	}
}

func counter(t *testing.T, reg *prometheus.Registry, result string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "jetfleet_events_fee_charges_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "result" && l.GetValue() == result {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}
