// Package abtest is the domain of the Tracker's A/B tests (seed 000, "A/B
// testing"): connecting a user's YouTube channel with Google OAuth (state
// bound to the session and used once, PKCE, refresh tokens sealed with
// TOKEN_KEY and bound to their user), tests of 2–4 thumbnail and/or title
// variants on one of the channel's videos, the timetable written whole at
// start as one-shot message schedules, the YouTube Data API quota of each
// Pacific-time day, putting a slot's variant live (idempotently), and the
// wrap-up's result.
//
// State is in the TRACKER_ABTESTS bucket (keys in subjects/tracker_abtests.go).
// The edge (web/tracker) and the roles (workers/abtests) share this one
// implementation.
package abtest

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"time"
	_ "time/tzdata" // America/Los_Angeles for quota days, whatever the host has

	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/oauth2"

	"jetfleet/internal/blob"
	"jetfleet/internal/google/oauth"
	"jetfleet/internal/kvjson"
	"jetfleet/internal/sealed"
	"jetfleet/internal/youtube/dataapi"
	"jetfleet/subjects"
)

// Errors callers tell apart.
var (
	ErrNotFound     = errors.New("a/b test not found")
	ErrNotConnected = errors.New("no YouTube channel connected")
	// ErrRevoked: Google refused the user's grant; they must connect again.
	ErrRevoked = errors.New("YouTube access was revoked; connect the channel again")
	// ErrOAuthState: the callback's state is unknown, expired, used, or
	// belongs to another session.
	ErrOAuthState = errors.New("this connection attempt is unknown, expired or from another browser session; start again")
	// ErrQuota: the test's timetable does not fit the day's API units.
	ErrQuota = errors.New("not enough YouTube API quota")
	// ErrState: the action does not apply to the test in its state.
	ErrState = errors.New("not possible in the test's current state")
	// ErrDisabled: Google OAuth is not configured (GOOGLE_CLIENT_ID).
	ErrDisabled = errors.New("connecting YouTube channels is not configured on this site (GOOGLE_CLIENT_ID)")
)

// Problems are form errors keyed by field; it is an error.
type Problems map[string]string

func (p Problems) Error() string {
	keys := make([]string, 0, len(p))
	for k := range p {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, k+": "+p[k])
	}
	return "invalid a/b test: " + strings.Join(parts, "; ")
}

// Limits of a test.
const (
	MinVariants = 2
	MaxVariants = 4
	MinDays     = 1
	MaxDays     = 14
	// DefaultRotation is the seed's twice a day.
	DefaultRotation = 12 * time.Hour
	// DemoRotation is the one-minute slot only `jetfleet dev --demo`
	// offers; with it a test's duration counts minutes, not days.
	DemoRotation = time.Minute
	// MinThumbWidth is YouTube's minimum thumbnail width; 1280×720 is
	// recommended.
	MinThumbWidth = 640
	// uploadURLExpiry is how long an upload link works.
	uploadURLExpiry = time.Hour
)

// Rotations are the slot lengths offered (DemoRotation only with Demo).
var Rotations = []time.Duration{6 * time.Hour, 12 * time.Hour, 24 * time.Hour}

// Config configures the service.
type Config struct {
	// OAuth connects channels; nil when GOOGLE_CLIENT_ID is unset.
	OAuth *oauth.Client
	// APIBase is the YouTube Data API base (GOOGLE_API_URL).
	APIBase string
	Tokens  *sealed.Box
	Blobs   blob.Store
	// QuotaPerDay is the project's daily units (YOUTUBE_QUOTA_PER_DAY);
	// default 10,000.
	QuotaPerDay int
	// Demo offers one-minute slots.
	Demo bool
	// QuotaResetMargin is how long after midnight Pacific time a slot
	// held for YouTube's daily quota is tried again; default
	// DefaultQuotaResetMargin.
	QuotaResetMargin time.Duration
	Now              func() time.Time
	Log              *slog.Logger
}

// Service is the A/B test domain. It is safe for concurrent use.
type Service struct {
	js  jetstream.JetStream
	kv  jetstream.KeyValue
	cfg Config
	pt  *time.Location
}

// Open binds to the TRACKER_ABTESTS bucket.
func Open(ctx context.Context, js jetstream.JetStream, cfg Config) (*Service, error) {
	kv, err := js.KeyValue(ctx, subjects.TrackerABTestsBucket)
	if err != nil {
		return nil, fmt.Errorf("open a/b tests bucket: %w", err)
	}
	if cfg.QuotaPerDay <= 0 {
		cfg.QuotaPerDay = 10000
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.QuotaResetMargin <= 0 {
		cfg.QuotaResetMargin = DefaultQuotaResetMargin
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	pt, err := time.LoadLocation("America/Los_Angeles")
	if err != nil {
		return nil, fmt.Errorf("quota days are Pacific time: %w", err)
	}
	return &Service{js: js, kv: kv, cfg: cfg, pt: pt}, nil
}

// Enabled reports whether channels can be connected.
func (s *Service) Enabled() bool { return s.cfg.OAuth != nil && s.cfg.Tokens != nil }

// Demo reports whether one-minute slots are offered.
func (s *Service) Demo() bool { return s.cfg.Demo }

// QuotaPerDay is the daily budget.
func (s *Service) QuotaPerDay() int { return s.cfg.QuotaPerDay }

func newID() string {
	b := make([]byte, 8)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func hashHex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

func grantContext(uid string) string { return "google-oauth:" + uid }
func pkceContext(uid string) string  { return "google-pkce:" + uid }

// --- KV helpers ---

func (s *Service) get(ctx context.Context, key string, v any) (uint64, error) {
	return kvjson.Get(ctx, s.kv, key, v, ErrNotFound)
}

func (s *Service) put(ctx context.Context, key string, v any) error {
	return kvjson.Put(ctx, s.kv, key, v)
}

// updateTries bounds update's compare-and-set rounds: every round some
// writer wins, so only a pathological loop reaches it.
const updateTries = 100

// update applies f to the record at key with compare-and-set, retrying on
// a concurrent change. f returning an error aborts without writing.
func update[T any](ctx context.Context, s *Service, key string, f func(*T) error) (T, error) {
	return kvjson.Update(ctx, s.kv, key, ErrNotFound, updateTries, f)
}

// --- Connecting a channel ---

// BeginConnect starts a consent for uid in the browser session session:
// it keeps a single-use state bound to that session and a PKCE verifier
// (sealed), and returns Google's consent URL.
func (s *Service) BeginConnect(ctx context.Context, uid, session string) (string, error) {
	if !s.Enabled() {
		return "", ErrDisabled
	}
	state := newID() + newID() + newID() + newID()
	verifier := oauth.NewVerifier()
	rec := subjects.TrackerABOAuthState{UserID: uid, Session: hashHex(session),
		Verifier: s.cfg.Tokens.Seal([]byte(verifier), pkceContext(uid))}
	b, _ := json.Marshal(rec)
	if _, err := s.kv.Create(ctx, subjects.TrackerABOAuthKey(hashHex(state)), b, jetstream.KeyTTL(subjects.TrackerABOAuthStateTTL)); err != nil {
		return "", fmt.Errorf("keep oauth state: %w", err)
	}
	return s.cfg.OAuth.AuthCodeURL(state, verifier), nil
}

// FinishConnect completes the consent that Google sent back with state
// and code, for uid in session: the state must be one BeginConnect issued
// to this very session and is spent by this call whatever happens next.
// The channel is the one channels.list mine=true names.
func (s *Service) FinishConnect(ctx context.Context, uid, session, state, code string) (subjects.TrackerABGrant, error) {
	if !s.Enabled() {
		return subjects.TrackerABGrant{}, ErrDisabled
	}
	key := subjects.TrackerABOAuthKey(hashHex(state))
	e, err := s.kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) || state == "" {
		return subjects.TrackerABGrant{}, ErrOAuthState
	}
	if err != nil {
		return subjects.TrackerABGrant{}, fmt.Errorf("oauth state: %w", err)
	}
	// Spend it first, with the revision read: of two callbacks racing
	// with the same state only one gets past here.
	if err := s.kv.Delete(ctx, key, jetstream.LastRevision(e.Revision())); err != nil {
		return subjects.TrackerABGrant{}, ErrOAuthState
	}
	var rec subjects.TrackerABOAuthState
	if err := json.Unmarshal(e.Value(), &rec); err != nil {
		return subjects.TrackerABGrant{}, ErrOAuthState
	}
	if rec.UserID != uid || rec.Session != hashHex(session) {
		return subjects.TrackerABGrant{}, ErrOAuthState
	}
	verifier, err := s.cfg.Tokens.Open(rec.Verifier, pkceContext(uid))
	if err != nil {
		return subjects.TrackerABGrant{}, ErrOAuthState
	}
	tok, err := s.cfg.OAuth.Exchange(ctx, code, string(verifier))
	if err != nil {
		return subjects.TrackerABGrant{}, err
	}
	api := dataapi.New(dataapi.Config{BaseURL: s.cfg.APIBase}, s.cfg.OAuth.HTTPClient(ctx, oauth2.StaticTokenSource(tok)))
	ch, err := api.MyChannel(ctx)
	if err != nil {
		return subjects.TrackerABGrant{}, err
	}
	s.Spend(ctx, dataapi.CostChannelsList)
	g := subjects.TrackerABGrant{ChannelID: ch.ID, ChannelTitle: ch.Title, Connected: s.cfg.Now().UTC(),
		Refresh: s.cfg.Tokens.Seal([]byte(tok.RefreshToken), grantContext(uid))}
	if err := s.put(ctx, subjects.TrackerABGrantKey(uid), g); err != nil {
		return g, err
	}
	return g, nil
}

// Grant returns uid's connected channel; ErrNotConnected when none.
func (s *Service) Grant(ctx context.Context, uid string) (subjects.TrackerABGrant, error) {
	var g subjects.TrackerABGrant
	_, err := s.get(ctx, subjects.TrackerABGrantKey(uid), &g)
	if errors.Is(err, ErrNotFound) {
		return g, ErrNotConnected
	}
	return g, err
}

// Disconnect revokes uid's grant at Google, deletes its tokens and pauses
// their running tests. A revocation Google does not confirm is logged; the
// tokens go anyway: the user asked us to forget them.
func (s *Service) Disconnect(ctx context.Context, uid string) error {
	unrevoked, err := s.disconnect(ctx, uid)
	if unrevoked != nil {
		s.cfg.Log.Warn("revoke at google failed; our tokens are deleted anyway", "user", uid, "err", unrevoked)
	}
	return err
}

// disconnect is Disconnect returning, apart from its error, why the grant
// could not be revoked at Google (nil when it was, or there was none).
func (s *Service) disconnect(ctx context.Context, uid string) (unrevoked, err error) {
	g, err := s.Grant(ctx, uid)
	if errors.Is(err, ErrNotConnected) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if g.Revoked.IsZero() {
		unrevoked = s.revoke(ctx, uid, g)
	}
	if err := s.kv.Purge(ctx, subjects.TrackerABGrantKey(uid)); err != nil {
		return unrevoked, fmt.Errorf("delete tokens: %w", err)
	}
	return unrevoked, s.pauseAll(ctx, uid, "the YouTube channel was disconnected")
}

// revoke asks Google to revoke grant g of uid.
func (s *Service) revoke(ctx context.Context, uid string, g subjects.TrackerABGrant) error {
	if !s.Enabled() {
		return ErrDisabled
	}
	refresh, err := s.cfg.Tokens.Open(g.Refresh, grantContext(uid))
	if err != nil {
		return fmt.Errorf("unseal the refresh token (TOKEN_KEY changed?): %w", err)
	}
	return s.cfg.OAuth.Revoke(ctx, string(refresh))
}

// MarkRevoked records that Google refused uid's grant and pauses their
// running tests: nothing is retried until they connect again.
func (s *Service) MarkRevoked(ctx context.Context, uid, reason string) error {
	_, err := update(ctx, s, subjects.TrackerABGrantKey(uid), func(g *subjects.TrackerABGrant) error {
		if g.Revoked.IsZero() {
			g.Revoked, g.RevokedReason = s.cfg.Now().UTC(), reason
		}
		return nil
	})
	if err != nil && !errors.Is(err, ErrNotFound) {
		return err
	}
	s.cfg.Log.Warn("youtube grant revoked; tests paused", "user", uid, "reason", reason)
	return s.pauseAll(ctx, uid, "YouTube access was revoked ("+reason+"); connect the channel again, then resume")
}

func (s *Service) pauseAll(ctx context.Context, uid, reason string) error {
	tests, err := s.List(ctx, uid)
	if err != nil {
		return err
	}
	for _, t := range tests {
		if t.Status != subjects.TrackerABRunning {
			continue
		}
		if _, err := update(ctx, s, subjects.TrackerABTestKey(t.ID), func(t *subjects.TrackerABTest) error {
			if t.Status == subjects.TrackerABRunning {
				t.Status, t.StatusReason = subjects.TrackerABPaused, reason
			}
			return nil
		}); err != nil {
			return err
		}
	}
	return nil
}

// API returns a Data API client acting for uid, refreshing their access
// token as needed. A refusal of the grant (invalid_grant on refresh, 401
// on a call) comes back as ErrRevoked after MarkRevoked.
func (s *Service) API(ctx context.Context, uid string) (*dataapi.Client, subjects.TrackerABGrant, error) {
	if !s.Enabled() {
		return nil, subjects.TrackerABGrant{}, ErrDisabled
	}
	g, err := s.Grant(ctx, uid)
	if err != nil {
		return nil, g, err
	}
	if !g.Revoked.IsZero() {
		return nil, g, ErrRevoked
	}
	refresh, err := s.cfg.Tokens.Open(g.Refresh, grantContext(uid))
	if err != nil {
		return nil, g, fmt.Errorf("open %s's refresh token (TOKEN_KEY changed?): %w", uid, err)
	}
	hc := s.cfg.OAuth.HTTPClient(ctx, s.cfg.OAuth.TokenSource(ctx, string(refresh), nil))
	return dataapi.New(dataapi.Config{BaseURL: s.cfg.APIBase}, hc), g, nil
}

// checkGrant turns a refusal of the grant into MarkRevoked + ErrRevoked.
func (s *Service) checkGrant(ctx context.Context, uid string, err error) error {
	if errors.Is(err, oauth.ErrRevoked) || errors.Is(err, dataapi.ErrUnauthorized) {
		if merr := s.MarkRevoked(ctx, uid, err.Error()); merr != nil {
			return merr
		}
		return fmt.Errorf("%w: %v", ErrRevoked, err)
	}
	return err
}

// --- Tests ---

// Draft is what the creation form asks.
type Draft struct {
	VideoID   string
	Titles    []string // one per variant, "" for none
	Days      int
	Rotation  time.Duration
	AutoApply bool
}

// Create checks a draft and keeps it as a test in state draft, whose
// variants' thumbnails are then uploaded (ThumbUpload) before Start. The
// video must belong to the connected channel (videos.list).
func (s *Service) Create(ctx context.Context, uid string, d Draft) (subjects.TrackerABTest, error) {
	p := Problems{}
	d.VideoID = strings.TrimSpace(d.VideoID)
	if n := len(d.Titles); n < MinVariants || n > MaxVariants {
		p["variants"] = fmt.Sprintf("a test has %d to %d variants", MinVariants, MaxVariants)
	}
	titled := 0
	for i, t := range d.Titles {
		t = strings.TrimSpace(t)
		d.Titles[i] = t
		switch n := len([]rune(t)); {
		case n > dataapi.MaxTitle:
			p[fmt.Sprintf("title%d", i)] = fmt.Sprintf("YouTube titles are at most %d characters; this one has %d", dataapi.MaxTitle, n)
		case strings.ContainsAny(t, "<>"):
			p[fmt.Sprintf("title%d", i)] = "YouTube does not allow < or > in titles"
		case n > 0:
			titled++
		}
	}
	if titled > 0 && titled < len(d.Titles) {
		p["variants"] = "give every variant a title, or none (a thumbnail-only test)"
	}
	if d.Days < MinDays || d.Days > MaxDays {
		p["days"] = fmt.Sprintf("a test runs %d to %d days", MinDays, MaxDays)
	}
	if d.Rotation == 0 {
		d.Rotation = DefaultRotation
	}
	if !slices.Contains(Rotations, d.Rotation) && !(s.cfg.Demo && d.Rotation == DemoRotation) {
		p["rotation"] = "choose one of the rotations offered"
	}
	if d.VideoID == "" {
		p["video"] = "which video? paste its link or id"
	}
	if len(p) > 0 {
		return subjects.TrackerABTest{}, p
	}
	api, g, err := s.API(ctx, uid)
	if err != nil {
		return subjects.TrackerABTest{}, err
	}
	v, err := api.Video(ctx, d.VideoID)
	s.Spend(ctx, dataapi.CostVideosList)
	switch {
	case errors.Is(err, dataapi.ErrNotFound):
		return subjects.TrackerABTest{}, Problems{"video": "YouTube has no public video with this id"}
	case err != nil:
		return subjects.TrackerABTest{}, s.checkGrant(ctx, uid, err)
	case v.ChannelID != g.ChannelID:
		return subjects.TrackerABTest{}, Problems{"video": fmt.Sprintf("this video is not on your connected channel %s", g.ChannelTitle)}
	}
	t := subjects.TrackerABTest{
		ID: newID(), UserID: uid, VideoID: v.ID, ChannelID: v.ChannelID, VideoTitle: v.Title, Published: v.PublishedAt,
		RotationSeconds: int64(d.Rotation / time.Second), Days: d.Days, Status: subjects.TrackerABDraft,
		AutoApply: d.AutoApply, Created: s.cfg.Now().UTC(), LiveThumb: -1, LiveTitle: -1,
	}
	for i, title := range d.Titles {
		t.Variants = append(t.Variants, subjects.TrackerABVariant{Label: string(rune('A' + i)), Title: title,
			ThumbKey: fmt.Sprintf("abtests/%s/%s/%c", uid, t.ID, 'a'+i)})
	}
	if err := s.put(ctx, subjects.TrackerABTestKey(t.ID), t); err != nil {
		return t, err
	}
	if err := s.put(ctx, subjects.TrackerABUserTestKey(uid, t.ID), subjects.TrackerLink{Since: t.Created}); err != nil {
		return t, err
	}
	return t, nil
}

// Test returns uid's test tid; ErrNotFound for anyone else's.
func (s *Service) Test(ctx context.Context, uid, tid string) (subjects.TrackerABTest, error) {
	t, err := s.load(ctx, tid)
	if err == nil && t.UserID != uid {
		return subjects.TrackerABTest{}, fmt.Errorf("test %s: %w", tid, ErrNotFound)
	}
	return t, err
}

func (s *Service) load(ctx context.Context, tid string) (subjects.TrackerABTest, error) {
	var t subjects.TrackerABTest
	if !validID(tid) {
		return t, fmt.Errorf("test %q: %w", tid, ErrNotFound)
	}
	_, err := s.get(ctx, subjects.TrackerABTestKey(tid), &t)
	return t, err
}

func validID(id string) bool {
	if len(id) != 16 {
		return false
	}
	_, err := hex.DecodeString(id)
	return err == nil
}

// List returns uid's tests, newest first.
func (s *Service) List(ctx context.Context, uid string) ([]subjects.TrackerABTest, error) {
	lister, err := s.kv.ListKeysFiltered(ctx, subjects.TrackerABUserTests(uid))
	if err != nil {
		return nil, fmt.Errorf("list tests: %w", err)
	}
	var out []subjects.TrackerABTest
	for k := range lister.Keys() {
		t, err := s.load(ctx, subjects.LastToken(k))
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Created.After(out[j].Created) })
	return out, nil
}

// ThumbUpload is how the browser uploads variant i's thumbnail of a
// draft: the store itself refuses more than YouTube's 2 MB or a type
// that is not an image (JPEG or PNG is checked from the bytes later).
func (s *Service) ThumbUpload(ctx context.Context, t subjects.TrackerABTest, i int) (blob.Upload, error) {
	up, ok := s.cfg.Blobs.(blob.Uploader)
	if !ok {
		return blob.Upload{}, errors.New("blob store takes no direct uploads")
	}
	return up.Upload(ctx, t.Variants[i].ThumbKey, blob.Limits{MaxBytes: dataapi.MaxThumbnailBytes, TypePrefix: "image/"}, uploadURLExpiry)
}

// ThumbURL is a URL to show variant i's uploaded thumbnail.
func (s *Service) ThumbURL(ctx context.Context, t subjects.TrackerABTest, i int) string {
	u, err := s.cfg.Blobs.URL(ctx, t.Variants[i].ThumbKey, time.Hour)
	if err != nil {
		return ""
	}
	return u
}
