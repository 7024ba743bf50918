package subjects

import (
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// The Tracker's A/B tests (seed 000, "A/B testing"): a user connects their
// YouTube channel with Google OAuth and rotates 2–4 thumbnail and/or title
// variants of one of its videos on a timetable written whole when the test
// starts, as the seed asks: no worker ever creates the next event.
//
// State lives in the TRACKER_ABTESTS KV bucket:
//
//	test.<tid>               TrackerABTest (variants, timetable, what went live, result)
//	user.<uid>.test.<tid>    TrackerLink (a user's tests)
//	grant.<uid>              TrackerABGrant (the connected channel; refresh token sealed with TOKEN_KEY)
//	oauth.<sha256(state)>    TrackerABOAuthState (a consent in progress; per-key TTL 10 min, used once)
//	quota.<yyyymmdd>         TrackerABQuota (YouTube Data API units of that Pacific-time day)
//
// The timetable is one-shot message schedules on TRACKER_ABTESTS stream:
// abtest.at.<tid>.<slot> fires TrackerABApply on abtest.apply.<tid>.<slot>
// at the slot's time, and abtest.at.<tid>.end fires TrackerABWrapUp on
// abtest.wrapup.<tid> when the test ends. Purging abtest.at.<tid>.> cancels
// what has not fired (pause, stop, delete).
const (
	TrackerABTestsBucket = "TRACKER_ABTESTS"
	TrackerABTestsStream = "TRACKER_ABTESTS"
	// TrackerABApplyConsumer sets the slot's thumbnail and title.
	TrackerABApplyConsumer = "tracker-abtest-apply"
	// TrackerABWrapUpConsumer computes the result and mails it.
	TrackerABWrapUpConsumer = "tracker-abtest-wrapup"
	// TrackerABOAuthStateTTL is how long a consent may take.
	TrackerABOAuthStateTTL = 10 * time.Minute

	abAt     = "abtest.at."
	abApply  = "abtest.apply."
	abWrapUp = "abtest.wrapup."
)

// Test states.
const (
	TrackerABDraft   = "draft"   // variants being uploaded
	TrackerABRunning = "running" // timetable scheduled
	TrackerABPaused  = "paused"  // slots that fire are skipped
	TrackerABWrapUp  = "wrapping_up"
	TrackerABDone    = "done"
)

// TrackerABSchedule is the subject of the one-shot schedule of a slot
// (slot "end" for the wrap-up).
func TrackerABSchedule(tid, slot string) string { return abAt + tid + "." + slot }

// TrackerABScheduleAll matches every schedule of test tid.
func TrackerABScheduleAll(tid string) string { return abAt + tid + ".>" }

// TrackerABApplySubject carries the TrackerABApply of a slot.
func TrackerABApplySubject(tid string, slot int) string {
	return abApply + tid + "." + strconv.Itoa(slot)
}

// TrackerABWrapUpSubject carries the TrackerABWrapUp of a test.
func TrackerABWrapUpSubject(tid string) string { return abWrapUp + tid }

// TrackerABApply asks the apply role to put a slot's variant live. Slot
// len(test.Slots) stands for applying the winner after the wrap-up.
type TrackerABApply struct {
	Test string `json:"test"`
	Slot int    `json:"slot"`
}

// TrackerABWrapUpMsg asks the wrap-up role to conclude a test.
type TrackerABWrapUpMsg struct {
	Test string `json:"test"`
}

// TrackerABVariant is one version of the video: a thumbnail (uploaded to
// blob storage under ThumbKey), a title, or both.
type TrackerABVariant struct {
	Label    string `json:"label"` // A, B, C, D
	Title    string `json:"title,omitempty"`
	ThumbKey string `json:"thumb_key,omitempty"`
	// Set by the checks before a test starts.
	ThumbType   string `json:"thumb_type,omitempty"`
	ThumbBytes  int64  `json:"thumb_bytes,omitempty"`
	ThumbWidth  int    `json:"thumb_width,omitempty"`
	ThumbHeight int    `json:"thumb_height,omitempty"`
}

// TrackerABSlot is one entry of the timetable: from At, Variant is live.
type TrackerABSlot struct {
	At      time.Time `json:"at"`
	Variant int       `json:"variant"`
	// Live is when the apply role saw YouTube accept the change (the exact
	// time the variant went live); zero until then.
	Live time.Time `json:"live,omitzero"`
	// Skipped says why the slot did not run (paused, stopped).
	Skipped string `json:"skipped,omitempty"`
}

// TrackerABTest is one A/B test.
type TrackerABTest struct {
	ID         string             `json:"id"`
	UserID     string             `json:"user_id"`
	VideoID    string             `json:"video_id"`
	ChannelID  string             `json:"channel_id"`
	VideoTitle string             `json:"video_title"` // the title before the test
	Published  time.Time          `json:"published"`
	Variants   []TrackerABVariant `json:"variants"`
	// RotationSeconds is the slot length; Days the duration asked for
	// (minutes with the demo's one-minute slots).
	RotationSeconds int64           `json:"rotation_s"`
	Days            int             `json:"days"`
	Start           time.Time       `json:"start,omitzero"`
	End             time.Time       `json:"end,omitzero"`
	Slots           []TrackerABSlot `json:"slots,omitempty"`
	Status          string          `json:"status"`
	StatusReason    string          `json:"status_reason,omitempty"`
	AutoApply       bool            `json:"auto_apply,omitempty"`
	Created         time.Time       `json:"created"`
	// LiveThumb and LiveTitle are the variants whose thumbnail and title
	// the apply role last put live (-1: the original), so a slot that
	// repeats them calls nothing.
	LiveThumb int              `json:"live_thumb"`
	LiveTitle int              `json:"live_title"`
	Result    *TrackerABResult `json:"result,omitempty"`
	// Mailed is when the result mail was enqueued (once per test).
	Mailed time.Time `json:"mailed,omitzero"`
	// WinnerApplied is when the winner was put live (auto-apply).
	WinnerApplied time.Time `json:"winner_applied,omitzero"`
	// QuotaResumes is set while the apply role holds the test's slots
	// because YouTube said the project's daily quota is spent: just after
	// the next midnight Pacific time, when it resets. Zero otherwise (a
	// slot applied since clears it).
	QuotaResumes time.Time `json:"quota_resumes,omitzero"`
}

// TrackerABResult is a wrap-up's conclusion.
type TrackerABResult struct {
	Computed time.Time `json:"computed"`
	// Winner is the index of the winning variant, -1 for no clear winner.
	Winner int `json:"winner"`
	// Confidence is 1 − p of the winner against the runner-up (Welch's t
	// test on age-adjusted rates).
	Confidence float64 `json:"confidence"`
	// Lift is the winner's views per hour over the runner-up's at the same
	// age (0.12 = 12% more).
	Lift     float64                  `json:"lift"`
	Variants []TrackerABVariantResult `json:"variants"`
	Note     string                   `json:"note,omitempty"`
	// DecayExponent is b in views/hour ∝ age^b, fitted on the video's own
	// samples.
	DecayExponent float64 `json:"decay_exponent"`
}

// TrackerABVariantResult is one variant's figures.
type TrackerABVariantResult struct {
	Variant      int     `json:"variant"`
	Intervals    int     `json:"intervals"`      // sample intervals inside its windows
	ViewsPerHour float64 `json:"views_per_hour"` // raw mean
	// Adjusted is the mean of exp(residual): 1.10 means 10% above the
	// video's decay curve at the same ages.
	Adjusted float64 `json:"adjusted"`
}

// TrackerABGrant is a user's connected channel.
type TrackerABGrant struct {
	ChannelID    string    `json:"channel_id"`
	ChannelTitle string    `json:"channel_title"`
	Refresh      []byte    `json:"refresh"` // sealed for "google-oauth:<uid>"
	Connected    time.Time `json:"connected"`
	// Revoked is when Google refused the grant (invalid_grant, 401); the
	// user must connect again.
	Revoked       time.Time `json:"revoked,omitzero"`
	RevokedReason string    `json:"revoked_reason,omitempty"`
}

// TrackerABOAuthState is a consent in progress, bound to the session that
// started it.
type TrackerABOAuthState struct {
	UserID   string `json:"user_id"`
	Session  string `json:"session"`  // SHA-256 of the session id
	Verifier []byte `json:"verifier"` // PKCE verifier, sealed for "google-pkce:<uid>"
}

// TrackerABQuota is one Pacific-time day of YouTube Data API units:
// Reserved by started tests' timetables, Spent by calls made.
type TrackerABQuota struct {
	Reserved int `json:"reserved"`
	Spent    int `json:"spent"`
}

// TrackerABTestsBucket keys.
func TrackerABTestKey(tid string) string          { return "test." + tid }
func TrackerABUserTestKey(uid, tid string) string { return "user." + uid + ".test." + tid }
func TrackerABUserTests(uid string) string        { return "user." + uid + ".test.*" }
func TrackerABGrantKey(uid string) string         { return "grant." + uid }
func TrackerABOAuthKey(stateHash string) string   { return "oauth." + stateHash }
func TrackerABQuotaKey(day string) string         { return "quota." + day }

func trackerABAssets(o Options) assetSet {
	r := o.replicas()
	return assetSet{
		Streams: []jetstream.StreamConfig{{
			Name:        TrackerABTestsStream,
			Description: "A/B test timetables: one-shot schedules (abtest.at.*) firing slot changes (abtest.apply.*) and wrap-ups (abtest.wrapup.*)",
			Subjects:    []string{abAt + "*.*", abApply + "*.*", abWrapUp + "*"},
			Retention:   jetstream.LimitsPolicy,
			// Longer than the longest test (14 days), so no schedule
			// expires before it fires.
			MaxAge:            30 * 24 * time.Hour,
			Storage:           jetstream.FileStorage,
			Replicas:          r,
			Duplicates:        time.Hour,
			AllowMsgSchedules: true,
			MaxMsgsPerSubject: 1,
		}},
		Consumers: map[string][]jetstream.ConsumerConfig{TrackerABTestsStream: {{
			Durable:       TrackerABApplyConsumer,
			Description:   "tracker-abtest-apply role: set a slot's thumbnail and title through the YouTube Data API",
			FilterSubject: abApply + "*.*",
			AckPolicy:     jetstream.AckExplicitPolicy,
			AckWait:       2 * time.Minute,
			MaxDeliver:    6,
			Replicas:      r,
		}, {
			Durable:       TrackerABWrapUpConsumer,
			Description:   "tracker-abtest-wrapup role: age-adjusted result, mail, auto-apply of the winner",
			FilterSubject: abWrapUp + "*",
			AckPolicy:     jetstream.AckExplicitPolicy,
			AckWait:       2 * time.Minute,
			MaxDeliver:    6,
			Replicas:      r,
		}}},
		KeyValues: []jetstream.KeyValueConfig{{
			Bucket:         TrackerABTestsBucket,
			Description:    "Tracker A/B tests, connected YouTube channels (sealed tokens), consents in progress, daily API quota",
			History:        1,
			Storage:        jetstream.FileStorage,
			Replicas:       r,
			LimitMarkerTTL: time.Minute,
		}},
	}
}
