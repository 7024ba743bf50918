package analytics

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"jetfleet/subjects"
)

// The Events product's engagement (table events_engagement, migration
// 0007) and accumulated summaries (events_summary). Every count here is of
// distinct occurrence ids, so rows written twice count once.

// EngagementTable is the table the events-engagement role writes.
const EngagementTable = "events_engagement"

// EngagementColumns are the columns EngagementRow fills, in order.
var EngagementColumns = []string{"event_id", "kind", "id", "user_id", "room", "ref", "at", "minute"}

// EngagementRow is e as a row of EngagementColumns.
func EngagementRow(e subjects.EventsEngagement) []any {
	at := e.At.UTC().Truncate(time.Second)
	return []any{e.EventID, e.Kind, e.ID, e.UserID, e.Room, e.Ref, at, at.Truncate(time.Minute)}
}

// Engagement is what an event's participants did, counted exactly.
type Engagement struct {
	// Attendees are participants with at least one minute connected (a
	// heartbeat). Admins without a ticket (heartbeat ids "admin:…", see
	// events.Member.EngagementID) are not participants and never counted.
	Attendees uint64
	// ConnectedMinutes sums every attendee's distinct connected minutes.
	ConnectedMinutes uint64
	// MinutesByUser is each attendee's connected minutes, for the
	// distribution.
	MinutesByUser   []uint64
	MessagesMain    uint64
	MessagesTeams   uint64
	Submissions     uint64 // distinct submissions (a resubmission counts once)
	HelpRequests    []HelpRequest
	AttendanceCurve []MinuteCount // distinct connected participants per minute
	MessagesCurve   []MinuteCount // messages per minute
}

// HelpRequest is one help flag with when it was raised, claimed and
// resolved (zero when it was not).
type HelpRequest struct {
	Ref                       string
	Raised, Claimed, Resolved time.Time
}

// MinuteCount is a figure of one minute (UTC).
type MinuteCount struct {
	Minute time.Time
	Count  uint64
}

// EventEngagement computes event eventID's engagement from its rows.
func EventEngagement(ctx context.Context, conn driver.Conn, eventID string) (Engagement, error) {
	var g Engagement
	rows, err := conn.Query(ctx, `
		SELECT user_id, uniqExact(id) AS minutes
		FROM events_engagement
		WHERE event_id = ? AND kind = ? AND user_id != '' AND id NOT LIKE 'admin:%'
		GROUP BY user_id
		ORDER BY minutes DESC, user_id`, eventID, subjects.EngagementHeartbeat)
	if err != nil {
		return g, fmt.Errorf("connected minutes of %s: %w", eventID, err)
	}
	for rows.Next() {
		var uid string
		var n uint64
		if err := rows.Scan(&uid, &n); err != nil {
			rows.Close()
			return g, fmt.Errorf("connected minutes of %s: scan: %w", eventID, err)
		}
		g.MinutesByUser = append(g.MinutesByUser, n)
		g.ConnectedMinutes += n
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return g, fmt.Errorf("connected minutes of %s: %w", eventID, err)
	}
	g.Attendees = uint64(len(g.MinutesByUser))

	if err := conn.QueryRow(ctx, `
		SELECT
			uniqExactIf(id, kind = ? AND room = 'main'),
			uniqExactIf(id, kind = ? AND room != 'main'),
			uniqExactIf(splitByChar('.', id)[1], kind = ?)
		FROM events_engagement
		WHERE event_id = ?`,
		subjects.EngagementMessage, subjects.EngagementMessage, subjects.EngagementSubmitted, eventID,
	).Scan(&g.MessagesMain, &g.MessagesTeams, &g.Submissions); err != nil {
		return g, fmt.Errorf("messages and submissions of %s: %w", eventID, err)
	}

	help, err := conn.Query(ctx, `
		SELECT ref,
			minIf(at, kind = ?), minIf(at, kind = ?), minIf(at, kind = ?),
			countIf(kind = ?), countIf(kind = ?)
		FROM events_engagement
		WHERE event_id = ? AND kind IN (?, ?, ?) AND ref != ''
		GROUP BY ref
		ORDER BY ref`,
		subjects.EngagementHelpRaised, subjects.EngagementHelpClaimed, subjects.EngagementHelpResolved,
		subjects.EngagementHelpClaimed, subjects.EngagementHelpResolved,
		eventID, subjects.EngagementHelpRaised, subjects.EngagementHelpClaimed, subjects.EngagementHelpResolved)
	if err != nil {
		return g, fmt.Errorf("help requests of %s: %w", eventID, err)
	}
	for help.Next() {
		var h HelpRequest
		var claims, resolves uint64
		if err := help.Scan(&h.Ref, &h.Raised, &h.Claimed, &h.Resolved, &claims, &resolves); err != nil {
			help.Close()
			return g, fmt.Errorf("help requests of %s: scan: %w", eventID, err)
		}
		// minIf over no rows is the zero DateTime (1970): not claimed.
		if claims == 0 {
			h.Claimed = time.Time{}
		}
		if resolves == 0 {
			h.Resolved = time.Time{}
		}
		g.HelpRequests = append(g.HelpRequests, h)
	}
	help.Close()
	if err := help.Err(); err != nil {
		return g, fmt.Errorf("help requests of %s: %w", eventID, err)
	}
	if g.AttendanceCurve, err = minuteCounts(ctx, conn, `
		SELECT minute, uniqExact(user_id) FROM events_engagement
		WHERE event_id = ? AND kind = ? AND id NOT LIKE 'admin:%' GROUP BY minute ORDER BY minute`, eventID, subjects.EngagementHeartbeat); err != nil {
		return g, fmt.Errorf("attendance curve of %s: %w", eventID, err)
	}
	if g.MessagesCurve, err = minuteCounts(ctx, conn, `
		SELECT minute, uniqExact(id) FROM events_engagement
		WHERE event_id = ? AND kind = ? GROUP BY minute ORDER BY minute`, eventID, subjects.EngagementMessage); err != nil {
		return g, fmt.Errorf("messages curve of %s: %w", eventID, err)
	}
	return g, nil
}

func minuteCounts(ctx context.Context, conn driver.Conn, q string, args ...any) ([]MinuteCount, error) {
	rows, err := conn.Query(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []MinuteCount
	for rows.Next() {
		var m MinuteCount
		if err := rows.Scan(&m.Minute, &m.Count); err != nil {
			return nil, err
		}
		m.Minute = m.Minute.UTC()
		out = append(out, m)
	}
	return out, rows.Err()
}

// LiveFigures are an event's figures of the last minutes, for the admins'
// live dashboard.
type LiveFigures struct {
	// ConnectedNow counts distinct participants with a heartbeat in the
	// last two minutes (heartbeats come every minute).
	ConnectedNow uint64
	// MessagesPerMinute over the last 30 minutes, oldest first, complete
	// minutes only.
	MessagesPerMinute []MinuteCount
	Top               []Contributor
}

// Contributor is a participant and the messages they posted.
type Contributor struct {
	UserID string // their account
	// AuthorID is who they are in the event (events.Member.EngagementID,
	// carried as the message rows' ref): their registration id, by which
	// the dashboard finds their name; empty for rows written without one.
	AuthorID string
	Messages uint64
}

// EventLiveFigures computes event eventID's live figures at now.
func EventLiveFigures(ctx context.Context, conn driver.Conn, eventID string, now time.Time, top int) (LiveFigures, error) {
	var f LiveFigures
	now = now.UTC().Truncate(time.Second)
	if err := conn.QueryRow(ctx, `
		SELECT uniqExact(user_id) FROM events_engagement
		WHERE event_id = ? AND kind = ? AND at >= ? AND user_id != '' AND id NOT LIKE 'admin:%'`,
		eventID, subjects.EngagementHeartbeat, now.Add(-2*time.Minute)).Scan(&f.ConnectedNow); err != nil {
		return f, fmt.Errorf("connected now in %s: %w", eventID, err)
	}
	cur := now.Truncate(time.Minute)
	counts, err := minuteCounts(ctx, conn, `
		SELECT minute, uniqExact(id) FROM events_engagement
		WHERE event_id = ? AND kind = ? AND minute >= ? AND minute < ?
		GROUP BY minute ORDER BY minute`, eventID, subjects.EngagementMessage, cur.Add(-30*time.Minute), cur)
	if err != nil {
		return f, fmt.Errorf("messages per minute in %s: %w", eventID, err)
	}
	f.MessagesPerMinute = FillMinutes(counts, cur.Add(-30*time.Minute), cur.Add(-time.Minute))
	// Grouped by account (every message row has one); the author id is
	// the ref of any of their rows that carries one. Admins without a
	// ticket (author "admin:…") chat too, but are no participants.
	rows, err := conn.Query(ctx, `
		SELECT user_id, anyIf(ref, ref != '') AS author, uniqExact(id) AS n FROM events_engagement
		WHERE event_id = ? AND kind = ? AND user_id != ''
		GROUP BY user_id HAVING author NOT LIKE 'admin:%'
		ORDER BY n DESC, user_id LIMIT ?`, eventID, subjects.EngagementMessage, top)
	if err != nil {
		return f, fmt.Errorf("top contributors of %s: %w", eventID, err)
	}
	defer rows.Close()
	for rows.Next() {
		var c Contributor
		if err := rows.Scan(&c.UserID, &c.AuthorID, &c.Messages); err != nil {
			return f, fmt.Errorf("top contributors of %s: scan: %w", eventID, err)
		}
		f.Top = append(f.Top, c)
	}
	return f, rows.Err()
}

// TeamActivity is what an event's participants did lately, by person and
// room, for the admins' teams table.
type TeamActivity struct {
	// Connected are the engagement ids (registration ids) of the
	// participants with a heartbeat in the last two minutes, sorted.
	Connected []string
	// Messages counts each room's messages since the window's start
	// (team rooms are named by their team's id; "main" is left out).
	Messages map[string]uint64
}

// EventTeamActivity computes event eventID's activity at now: who is
// connected (as EventLiveFigures counts them) and each team room's
// messages in the last window.
func EventTeamActivity(ctx context.Context, conn driver.Conn, eventID string, now time.Time, window time.Duration) (TeamActivity, error) {
	a := TeamActivity{Messages: map[string]uint64{}}
	now = now.UTC().Truncate(time.Second)
	// A heartbeat's id is "<engagement id>.<minute>".
	rows, err := conn.Query(ctx, `
		SELECT DISTINCT splitByChar('.', id)[1] AS who FROM events_engagement
		WHERE event_id = ? AND kind = ? AND at >= ? AND id NOT LIKE 'admin:%'
		ORDER BY who`, eventID, subjects.EngagementHeartbeat, now.Add(-2*time.Minute))
	if err != nil {
		return a, fmt.Errorf("connected participants of %s: %w", eventID, err)
	}
	for rows.Next() {
		var who string
		if err := rows.Scan(&who); err != nil {
			rows.Close()
			return a, fmt.Errorf("connected participants of %s: scan: %w", eventID, err)
		}
		a.Connected = append(a.Connected, who)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return a, fmt.Errorf("connected participants of %s: %w", eventID, err)
	}
	rooms, err := conn.Query(ctx, `
		SELECT room, uniqExact(id) FROM events_engagement
		WHERE event_id = ? AND kind = ? AND at >= ? AND room != 'main'
		GROUP BY room`, eventID, subjects.EngagementMessage, now.Add(-window))
	if err != nil {
		return a, fmt.Errorf("team messages of %s: %w", eventID, err)
	}
	defer rooms.Close()
	for rooms.Next() {
		var room string
		var n uint64
		if err := rooms.Scan(&room, &n); err != nil {
			return a, fmt.Errorf("team messages of %s: scan: %w", eventID, err)
		}
		a.Messages[room] = n
	}
	return a, rooms.Err()
}

// FillMinutes returns one MinuteCount per minute from first to last
// (inclusive), with zero for the minutes counts lacks.
func FillMinutes(counts []MinuteCount, first, last time.Time) []MinuteCount {
	have := make(map[int64]uint64, len(counts))
	for _, c := range counts {
		have[c.Minute.Unix()] = c.Count
	}
	var out []MinuteCount
	for m := first.UTC().Truncate(time.Minute); !m.After(last); m = m.Add(time.Minute) {
		out = append(out, MinuteCount{Minute: m, Count: have[m.Unix()]})
	}
	return out
}

// SummaryRow is one accumulated figure of an event (events_summary).
type SummaryRow struct {
	Metric, Key string
	Value       float64
}

// WriteEventSummary stores an event's accumulated figures. Rows of an
// earlier accumulation with the same metric and key are replaced.
func WriteEventSummary(ctx context.Context, conn driver.Conn, eventID string, computed time.Time, rows []SummaryRow) error {
	if len(rows) == 0 {
		return nil
	}
	b, err := conn.PrepareBatch(ctx, "INSERT INTO events_summary (event_id, metric, key, value, computed)")
	if err != nil {
		return fmt.Errorf("store summary of %s: %w", eventID, err)
	}
	for _, r := range rows {
		if err := b.Append(eventID, r.Metric, r.Key, r.Value, computed.UTC().Truncate(time.Second)); err != nil {
			_ = b.Abort()
			return fmt.Errorf("store summary of %s: %w", eventID, err)
		}
	}
	if err := b.Send(); err != nil {
		return fmt.Errorf("store summary of %s: %w", eventID, err)
	}
	return nil
}

// EventSummaryRows reads an event's stored figures, by metric then key.
func EventSummaryRows(ctx context.Context, conn driver.Conn, eventID string) ([]SummaryRow, error) {
	rows, err := conn.Query(ctx, `SELECT metric, key, value FROM events_summary FINAL WHERE event_id = ? ORDER BY metric, key`, eventID)
	if err != nil {
		return nil, fmt.Errorf("summary of %s: %w", eventID, err)
	}
	defer rows.Close()
	var out []SummaryRow
	for rows.Next() {
		var r SummaryRow
		if err := rows.Scan(&r.Metric, &r.Key, &r.Value); err != nil {
			return nil, fmt.Errorf("summary of %s: scan: %w", eventID, err)
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// EngagementRecord is one of a person's engagement rows, for their GDPR
// export.
type EngagementRecord struct {
	EventID string    `json:"event_id"`
	Kind    string    `json:"kind"`
	Room    string    `json:"room,omitempty"`
	Ref     string    `json:"ref,omitempty"`
	At      time.Time `json:"at"`
}

// EngagementOf returns every engagement row of account userID (once each).
func EngagementOf(ctx context.Context, conn driver.Conn, userID string) ([]EngagementRecord, error) {
	rows, err := conn.Query(ctx, `
		SELECT event_id, kind, any(room), any(ref), min(at) AS first
		FROM events_engagement WHERE user_id = ?
		GROUP BY event_id, kind, id ORDER BY first, event_id, kind`, userID)
	if err != nil {
		return nil, fmt.Errorf("engagement of user %s: %w", userID, err)
	}
	defer rows.Close()
	out := []EngagementRecord{}
	for rows.Next() {
		var r EngagementRecord
		if err := rows.Scan(&r.EventID, &r.Kind, &r.Room, &r.Ref, &r.At); err != nil {
			return nil, fmt.Errorf("engagement of user %s: scan: %w", userID, err)
		}
		r.At = r.At.UTC()
		out = append(out, r)
	}
	return out, rows.Err()
}

// ForgetEngagement deletes every engagement row of account userID. The
// deletion is a ClickHouse mutation, applied in the background; the rows
// are no longer returned once it is done (seconds on this scale).
func ForgetEngagement(ctx context.Context, conn driver.Conn, userID string) error {
	if strings.TrimSpace(userID) == "" {
		return fmt.Errorf("forget engagement: empty user id")
	}
	if err := conn.Exec(ctx, "ALTER TABLE events_engagement DELETE WHERE user_id = ?", userID); err != nil {
		return fmt.Errorf("forget engagement of user %s: %w", userID, err)
	}
	return nil
}

// Percentile returns the p-th percentile (0–100) of sorted durations by
// nearest rank; zero for none.
func Percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(float64(len(sorted))*p/100+0.5) - 1
	i = max(0, min(i, len(sorted)-1))
	return sorted[i]
}

// SortDurations sorts ds in place and returns it.
func SortDurations(ds []time.Duration) []time.Duration {
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	return ds
}
