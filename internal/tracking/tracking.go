// Package tracking is the Tracker's domain: who tracks which channel and
// video, the one tracking record per channel and per video however many
// users track it, the hourly and daily sampling windows of a video (KV keys
// with a per-key TTL) and the free plan's limits. It keeps all of it in the
// TRACKER KV bucket (keys documented in subjects/tracker.go), so the edge
// (tracking, dashboards, authorization) and the tracker workers (ticks,
// RSS checks, samples) share one implementation.
package tracking

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"jetfleet/internal/kvjson"
	"jetfleet/subjects"
)

// Errors callers tell apart.
var (
	ErrNotFound     = errors.New("not tracked")
	ErrLimitReached = errors.New("free plan limit reached")
	ErrInvalidID    = errors.New("invalid id")
)

// Options tune a Store. Zero values take the documented defaults.
type Options struct {
	// Now is the clock: credits are counted per calendar month of it, and
	// windows are measured from it. Default time.Now.
	Now func() time.Time
	// FreeChannels caps the channels a free user tracks; default 3.
	FreeChannels int
	// FreeVideosPerMonth caps the videos outside their channels a free
	// user starts tracking per calendar month (UTC); default 10.
	FreeVideosPerMonth int
	// HourlyWindow and DailyWindow are how long after a video is first
	// seen it is sampled hourly and daily; defaults 7 and 60 days.
	HourlyWindow, DailyWindow time.Duration
	// HiResPerUser caps the videos one premium user has sampled at high
	// resolution at once; default DefaultHiResPerUser.
	HiResPerUser int
}

// Store reads and writes tracking state. It is safe for concurrent use.
type Store struct {
	kv jetstream.KeyValue
	o  Options
}

// New returns a store over the TRACKER bucket kv.
func New(kv jetstream.KeyValue, o Options) *Store {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.FreeChannels <= 0 {
		o.FreeChannels = 3
	}
	if o.FreeVideosPerMonth <= 0 {
		o.FreeVideosPerMonth = 10
	}
	if o.HourlyWindow <= 0 {
		o.HourlyWindow = subjects.TrackerHourlyWindow
	}
	if o.DailyWindow <= 0 {
		o.DailyWindow = subjects.TrackerDailyWindow
	}
	if o.HiResPerUser <= 0 {
		o.HiResPerUser = DefaultHiResPerUser
	}
	return &Store{kv: kv, o: o}
}

// Open binds to the TRACKER bucket (see subjects.Provision).
func Open(ctx context.Context, js jetstream.JetStream, o Options) (*Store, error) {
	kv, err := js.KeyValue(ctx, subjects.TrackerBucket)
	if err != nil {
		return nil, fmt.Errorf("open tracker bucket: %w", err)
	}
	return New(kv, o), nil
}

// Limits are a user's plan limits and what they used.
type Limits struct {
	Premium            bool
	Channels, MaxChans int
	Credits, MaxCreds  int // this month
}

var tokenRe = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

func checkID(kind, id string) error {
	if !tokenRe.MatchString(id) {
		return fmt.Errorf("%w: %s %q", ErrInvalidID, kind, id)
	}
	return nil
}

func (s *Store) month() string { return s.o.Now().UTC().Format("200601") }

// Limits reports what a user may still track.
func (s *Store) Limits(ctx context.Context, uid string, premium bool) (Limits, error) {
	if err := checkID("user", uid); err != nil {
		return Limits{}, err
	}
	chans, _, err := s.claims(ctx, s.channelClaims(uid))
	if err != nil {
		return Limits{}, err
	}
	creds, _, err := s.claims(ctx, s.creditClaims(uid, s.month()))
	if err != nil {
		return Limits{}, err
	}
	return Limits{Premium: premium, Channels: len(chans), MaxChans: s.o.FreeChannels,
		Credits: len(creds), MaxCreds: s.o.FreeVideosPerMonth}, nil
}

// TrackChannel makes uid track ch, creating the channel's tracking record
// the first time anyone tracks it. A free user is limited to FreeChannels,
// however many requests race (the channel is claimed with compare-and-set
// first). Tracking a channel twice is not an error.
func (s *Store) TrackChannel(ctx context.Context, uid string, premium bool, ch subjects.TrackerChannel) error {
	if err := errors.Join(checkID("user", uid), checkID("channel", ch.ID)); err != nil {
		return err
	}
	// Premium accounts claim too (without a cap), so an account that goes
	// back to the free plan counts every channel it tracks.
	limit := s.o.FreeChannels
	if premium {
		limit = 0
	}
	full := fmt.Errorf("%w: the free plan tracks up to %d channels", ErrLimitReached, s.o.FreeChannels)
	if _, err := s.claim(ctx, s.channelClaims(uid), ch.ID, limit, full); err != nil {
		return err
	}
	if ok, err := s.exists(ctx, subjects.TrackerUserChannelKey(uid, ch.ID)); err != nil || ok {
		return err
	}
	now := s.o.Now().UTC()
	ch.Created = now
	if err := s.create(ctx, subjects.TrackerChannelKey(ch.ID), ch, 0); err != nil && !errors.Is(err, jetstream.ErrKeyExists) {
		return fmt.Errorf("create channel record %s: %w", ch.ID, err)
	}
	link := subjects.TrackerLink{Since: now}
	// The channel→user side first: were the second write lost, the channel
	// would still be checked, and tracking again repairs the user side.
	if err := s.put(ctx, subjects.TrackerChannelUserKey(ch.ID, uid), link); err != nil {
		return err
	}
	return s.put(ctx, subjects.TrackerUserChannelKey(uid, ch.ID), link)
}

// UntrackChannel stops uid tracking cid. When its last user goes, so do the
// channel's record and the videos seen on it that nobody tracks on their
// own (dropVideo), so ticks stop checking and sampling them. The user's
// side of the mapping goes last: were the call cut short, calling it again
// (a GDPR deletion retried) still finds the channel through it.
func (s *Store) UntrackChannel(ctx context.Context, uid, cid string) error {
	if err := errors.Join(checkID("user", uid), checkID("channel", cid)); err != nil {
		return err
	}
	if err := s.kv.Delete(ctx, subjects.TrackerChannelUserKey(cid, uid)); err != nil {
		return fmt.Errorf("untrack channel %s: %w", cid, err)
	}
	users, err := s.keys(ctx, subjects.TrackerChannelUsers(cid))
	if err != nil {
		return err
	}
	if len(users) == 0 {
		vids, err := s.keys(ctx, subjects.TrackerChannelVideos(cid))
		if err != nil {
			return err
		}
		for _, vid := range vids {
			watched, err := s.keys(ctx, subjects.TrackerVideoUsers(vid))
			if err != nil {
				return err
			}
			if len(watched) == 0 {
				if err := s.dropVideo(ctx, vid, cid); err != nil {
					return err
				}
			}
		}
		if err := s.kv.Delete(ctx, subjects.TrackerChannelKey(cid)); err != nil {
			return fmt.Errorf("drop channel record %s: %w", cid, err)
		}
	}
	if err := s.release(ctx, s.channelClaims(uid), cid); err != nil {
		return err
	}
	if err := s.kv.Delete(ctx, subjects.TrackerUserChannelKey(uid, cid)); err != nil {
		return fmt.Errorf("untrack channel %s: %w", cid, err)
	}
	return nil
}

// TrackVideo makes uid track v. A video of a channel the user tracks is
// free; any other costs a free user one of FreeVideosPerMonth monthly
// credits (usedCredit reports it). The video's tracking record and its
// hourly and daily windows are created from now if it was never seen.
func (s *Store) TrackVideo(ctx context.Context, uid string, premium bool, v subjects.TrackerVideo) (usedCredit bool, err error) {
	if err := errors.Join(checkID("user", uid), checkID("video", v.ID)); err != nil {
		return false, err
	}
	if ok, err := s.exists(ctx, subjects.TrackerUserVideoKey(uid, v.ID)); err != nil || ok {
		return false, err
	}
	ownChannel := false
	if v.ChannelID != "" {
		if ownChannel, err = s.exists(ctx, subjects.TrackerUserChannelKey(uid, v.ChannelID)); err != nil {
			return false, err
		}
	}
	now := s.o.Now().UTC()
	if !premium && !ownChannel {
		month := s.month()
		full := fmt.Errorf("%w: the free plan tracks %d videos outside your channels per month", ErrLimitReached, s.o.FreeVideosPerMonth)
		// The claim (compare-and-set) decides; the credit's own key records
		// when it was spent, for the person's export. It is written even
		// when the claim was there already: an earlier attempt may have
		// stopped between the two.
		if usedCredit, err = s.claim(ctx, s.creditClaims(uid, month), v.ID, s.o.FreeVideosPerMonth, full); err != nil {
			return false, err
		}
		// Kept ~6 months, as the seed's monthly index, then gone.
		err := s.create(ctx, subjects.TrackerCreditKey(uid, month, v.ID), subjects.TrackerLink{Since: now}, 190*24*time.Hour)
		if err != nil && !errors.Is(err, jetstream.ErrKeyExists) {
			return false, fmt.Errorf("spend credit: %w", err)
		}
	}
	if _, err := s.SeeVideo(ctx, v, now); err != nil {
		return false, err
	}
	link := subjects.TrackerLink{Since: now}
	if err := s.put(ctx, subjects.TrackerVideoUserKey(v.ID, uid), link); err != nil {
		return false, err
	}
	return usedCredit, s.put(ctx, subjects.TrackerUserVideoKey(uid, v.ID), link)
}

// UntrackVideo stops uid tracking vid individually. When nobody tracks it
// any more, on its own or through its channel, its record and windows go
// (dropVideo), so it is no longer sampled. The user's side of the mapping
// goes last, as in UntrackChannel.
func (s *Store) UntrackVideo(ctx context.Context, uid, vid string) error {
	if err := errors.Join(checkID("user", uid), checkID("video", vid)); err != nil {
		return err
	}
	if err := s.kv.Delete(ctx, subjects.TrackerVideoUserKey(vid, uid)); err != nil {
		return fmt.Errorf("untrack video %s: %w", vid, err)
	}
	users, err := s.keys(ctx, subjects.TrackerVideoUsers(vid))
	if err != nil {
		return err
	}
	if len(users) == 0 {
		v, err := s.Video(ctx, vid)
		switch {
		case errors.Is(err, ErrNotFound):
		case err != nil:
			return err
		default:
			viaChannel := false
			if v.ChannelID != "" {
				chUsers, err := s.keys(ctx, subjects.TrackerChannelUsers(v.ChannelID))
				if err != nil {
					return err
				}
				viaChannel = len(chUsers) > 0
			}
			if !viaChannel {
				if err := s.dropVideo(ctx, vid, v.ChannelID); err != nil {
					return err
				}
			}
		}
	}
	if err := s.kv.Delete(ctx, subjects.TrackerUserVideoKey(uid, vid)); err != nil {
		return fmt.Errorf("untrack video %s: %w", vid, err)
	}
	return nil
}

// dropVideo removes what makes video vid (seen on channel cid, or none)
// sampled: its windows, its place in its channel's list and, last, its
// record. Its samples in ClickHouse stay; they are about the video.
func (s *Store) dropVideo(ctx context.Context, vid, cid string) error {
	if err := s.dropHiRes(ctx, vid); err != nil {
		return fmt.Errorf("drop video %s: %w", vid, err)
	}
	keys := []string{subjects.TrackerHourlyKey(vid), subjects.TrackerDailyKey(vid)}
	if cid != "" {
		keys = append(keys, subjects.TrackerChannelVideoKey(cid, vid))
	}
	for _, k := range append(keys, subjects.TrackerVideoKey(vid)) {
		if err := s.kv.Delete(ctx, k); err != nil {
			return fmt.Errorf("drop video %s: delete %s: %w", vid, k, err)
		}
	}
	return nil
}

// SeeVideo records a video seen for the first time: its hourly and daily
// windows, measured from anchor (its publish time for a channel's upload,
// now for a video a user tracks), its place in its channel's list, and its
// tracking record. A window already over is not created. created is false
// when the video was known already; calling it again is harmless.
func (s *Store) SeeVideo(ctx context.Context, v subjects.TrackerVideo, anchor time.Time) (created bool, err error) {
	if err := checkID("video", v.ID); err != nil {
		return false, err
	}
	now := s.o.Now().UTC()
	// Windows first: a crash after them but before the record is repaired
	// by the retry, while a record without windows would never be sampled.
	for _, w := range []struct {
		key    string
		window time.Duration
	}{{subjects.TrackerHourlyKey(v.ID), s.o.HourlyWindow}, {subjects.TrackerDailyKey(v.ID), s.o.DailyWindow}} {
		until := anchor.Add(w.window)
		ttl := until.Sub(now).Truncate(time.Second)
		if ttl < time.Second {
			continue
		}
		if err := s.create(ctx, w.key, subjects.TrackerWindow{Until: until.UTC()}, ttl); err != nil && !errors.Is(err, jetstream.ErrKeyExists) {
			return false, fmt.Errorf("create window %s: %w", w.key, err)
		}
	}
	if v.ChannelID != "" {
		if err := s.put(ctx, subjects.TrackerChannelVideoKey(v.ChannelID, v.ID), subjects.TrackerLink{Since: now}); err != nil {
			return false, err
		}
	}
	v.FirstSeen = now
	err = s.create(ctx, subjects.TrackerVideoKey(v.ID), v, 0)
	if errors.Is(err, jetstream.ErrKeyExists) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("create video record %s: %w", v.ID, err)
	}
	return true, nil
}

// Channel returns a channel's tracking record.
func (s *Store) Channel(ctx context.Context, cid string) (subjects.TrackerChannel, error) {
	var ch subjects.TrackerChannel
	_, err := s.get(ctx, subjects.TrackerChannelKey(cid), &ch)
	return ch, err
}

// Video returns a video's tracking record.
func (s *Store) Video(ctx context.Context, vid string) (subjects.TrackerVideo, error) {
	var v subjects.TrackerVideo
	_, err := s.get(ctx, subjects.TrackerVideoKey(vid), &v)
	return v, err
}

// UpdateChannel applies f to a channel's record with compare-and-set,
// retrying when another writer got there first.
func (s *Store) UpdateChannel(ctx context.Context, cid string, f func(*subjects.TrackerChannel)) error {
	return update(ctx, s, subjects.TrackerChannelKey(cid), f)
}

// UpdateVideo applies f to a video's record with compare-and-set.
func (s *Store) UpdateVideo(ctx context.Context, vid string, f func(*subjects.TrackerVideo)) error {
	return update(ctx, s, subjects.TrackerVideoKey(vid), f)
}

func update[T any](ctx context.Context, s *Store, key string, f func(*T)) error {
	_, err := kvjson.Update(ctx, s.kv, key, ErrNotFound, 10, func(v *T) error {
		f(v)
		return nil
	})
	return err
}

// claimSet names a TrackClaims record and the per-item keys it is seeded
// from when absent (mappings written before claims existed).
type claimSet struct {
	key, seed string
	// list, when set, gives the seed ids instead of seed's last tokens.
	list func(context.Context) ([]string, error)
}

func (s *Store) channelClaims(uid string) claimSet {
	return claimSet{key: subjects.TrackerUserChannelClaimsKey(uid), seed: subjects.TrackerUserChannels(uid)}
}

// creditClaims are the videos that spent a credit of uid in month. Unlike
// the credit keys, the record has no TTL (a KV update cannot set one): a
// few bytes per user and month, removed with the user (ForgetUser).
func (s *Store) creditClaims(uid, month string) claimSet {
	return claimSet{key: subjects.TrackerUserCreditClaimsKey(uid, month), seed: subjects.TrackerUserCredits(uid, month)}
}

// claims returns the ids claimed in c and the record's revision, 0 when the
// record does not exist yet (the ids then come from its seed keys).
func (s *Store) claims(ctx context.Context, c claimSet) ([]string, uint64, error) {
	var rec subjects.TrackerClaims
	rev, err := s.get(ctx, c.key, &rec)
	if errors.Is(err, ErrNotFound) {
		if c.list != nil {
			ids, err := c.list(ctx)
			return ids, 0, err
		}
		ids, err := s.keys(ctx, c.seed)
		return ids, 0, err
	}
	return rec.IDs, rev, err
}

// claim adds id to c unless c holds limit ids already (limit 0: no cap),
// in which case it returns full. added is false when id was claimed
// before. A read-then-write of a count lets parallel requests all see room
// for one more; here the write is a compare-and-set on the revision read,
// so of racing claims one wins and the others read again and recount.
func (s *Store) claim(ctx context.Context, c claimSet, id string, limit int, full error) (added bool, err error) {
	return s.changeClaims(ctx, c, func(ids []string) ([]string, error) {
		if slices.Contains(ids, id) {
			return nil, nil
		}
		if limit > 0 && len(ids) >= limit {
			return nil, full
		}
		return append(ids, id), nil
	})
}

// release removes id from c (compare-and-set, as claim).
func (s *Store) release(ctx context.Context, c claimSet, id string) error {
	_, err := s.changeClaims(ctx, c, func(ids []string) ([]string, error) {
		if !slices.Contains(ids, id) {
			return nil, nil
		}
		return slices.DeleteFunc(ids, func(x string) bool { return x == id }), nil
	})
	return err
}

// changeClaims writes f's change of c's ids with compare-and-set, reading
// again after losing a race. f returns nil for no change.
func (s *Store) changeClaims(ctx context.Context, c claimSet, f func([]string) ([]string, error)) (changed bool, err error) {
	// Every round some writer wins, so a few rounds per racing request
	// suffice; the bound only stops a pathological loop.
	for range 100 {
		ids, rev, err := s.claims(ctx, c)
		if err != nil {
			return false, err
		}
		next, err := f(slices.Clone(ids))
		if err != nil || next == nil {
			return false, err
		}
		b, err := json.Marshal(subjects.TrackerClaims{IDs: next})
		if err != nil {
			return false, err
		}
		if rev == 0 {
			_, err = s.kv.Create(ctx, c.key, b)
		} else {
			_, err = s.kv.Update(ctx, c.key, b, rev)
		}
		if err == nil {
			return true, nil
		}
		if !kvjson.Conflict(err) {
			return false, fmt.Errorf("update %s: %w", c.key, err)
		}
	}
	return false, fmt.Errorf("update %s: %w", c.key, kvjson.ErrContended)
}

// LiveChannels lists the ids of every tracked channel.
func (s *Store) LiveChannels(ctx context.Context) ([]string, error) {
	return s.keys(ctx, subjects.TrackerAllChannels)
}

// LiveHourly lists the videos inside their hourly window.
func (s *Store) LiveHourly(ctx context.Context) ([]string, error) {
	return s.keys(ctx, subjects.TrackerAllHourly)
}

// LiveDaily lists the videos inside their daily window.
func (s *Store) LiveDaily(ctx context.Context) ([]string, error) {
	return s.keys(ctx, subjects.TrackerAllDaily)
}

// ChannelUsers lists who tracks a channel.
func (s *Store) ChannelUsers(ctx context.Context, cid string) ([]string, error) {
	return s.keys(ctx, subjects.TrackerChannelUsers(cid))
}

// UserChannels returns the channels uid tracks.
func (s *Store) UserChannels(ctx context.Context, uid string) ([]subjects.TrackerChannel, error) {
	if err := checkID("user", uid); err != nil {
		return nil, err
	}
	ids, err := s.keys(ctx, subjects.TrackerUserChannels(uid))
	if err != nil {
		return nil, err
	}
	return loadAll(ctx, ids, s.Channel)
}

// UserVideos returns the videos uid tracks individually.
func (s *Store) UserVideos(ctx context.Context, uid string) ([]subjects.TrackerVideo, error) {
	if err := checkID("user", uid); err != nil {
		return nil, err
	}
	ids, err := s.keys(ctx, subjects.TrackerUserVideos(uid))
	if err != nil {
		return nil, err
	}
	return loadAll(ctx, ids, s.Video)
}

// ChannelVideos returns the videos seen on a channel, newest first.
func (s *Store) ChannelVideos(ctx context.Context, cid string) ([]subjects.TrackerVideo, error) {
	if err := checkID("channel", cid); err != nil {
		return nil, err
	}
	ids, err := s.keys(ctx, subjects.TrackerChannelVideos(cid))
	if err != nil {
		return nil, err
	}
	vs, err := loadAll(ctx, ids, s.Video)
	slices.SortFunc(vs, func(a, b subjects.TrackerVideo) int { return b.PublishedAt.Compare(a.PublishedAt) })
	return vs, err
}

// CanSeeChannel reports whether uid tracks cid.
func (s *Store) CanSeeChannel(ctx context.Context, uid, cid string) (bool, error) {
	if checkID("user", uid) != nil || checkID("channel", cid) != nil {
		return false, nil
	}
	return s.exists(ctx, subjects.TrackerUserChannelKey(uid, cid))
}

// CanSeeVideo reports whether uid tracks vid or the channel it belongs to.
func (s *Store) CanSeeVideo(ctx context.Context, uid, vid string) (bool, error) {
	if checkID("user", uid) != nil || checkID("video", vid) != nil {
		return false, nil
	}
	if ok, err := s.exists(ctx, subjects.TrackerUserVideoKey(uid, vid)); err != nil || ok {
		return ok, err
	}
	v, err := s.Video(ctx, vid)
	if errors.Is(err, ErrNotFound) || err == nil && v.ChannelID == "" {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return s.exists(ctx, subjects.TrackerUserChannelKey(uid, v.ChannelID))
}

func loadAll[T any](ctx context.Context, ids []string, get func(context.Context, string) (T, error)) ([]T, error) {
	out := make([]T, 0, len(ids))
	for _, id := range ids {
		v, err := get(ctx, id)
		if errors.Is(err, ErrNotFound) {
			// A mapping whose record went (untracked meanwhile).
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

// keys lists the last token of every live key matching filter.
func (s *Store) keys(ctx context.Context, filter string) ([]string, error) {
	l, err := s.kv.ListKeysFiltered(ctx, filter)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", filter, err)
	}
	var out []string
	for k := range l.Keys() {
		out = append(out, subjects.LastToken(k))
	}
	return out, nil
}

func (s *Store) exists(ctx context.Context, key string) (bool, error) {
	_, err := s.kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("get %s: %w", key, err)
	}
	return true, nil
}

func (s *Store) get(ctx context.Context, key string, v any) (uint64, error) {
	return kvjson.Get(ctx, s.kv, key, v, ErrNotFound)
}

func (s *Store) put(ctx context.Context, key string, v any) error {
	return kvjson.Put(ctx, s.kv, key, v)
}

func (s *Store) create(ctx context.Context, key string, v any, ttl time.Duration) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	var opts []jetstream.KVCreateOpt
	if ttl > 0 {
		opts = append(opts, jetstream.KeyTTL(ttl))
	}
	_, err = s.kv.Create(ctx, key, b, opts...)
	return err
}

// ThumbKey is the blob key of a stored thumbnail of video vid with content
// hash hash: the low-resolution copy (default.jpg, the one hashed) or the
// high-resolution one. Known keys let the pages link images without a
// lookup.
func ThumbKey(vid, hash string, high bool) string {
	res := "lo"
	if high {
		res = "hi"
	}
	return "thumbs/" + vid + "/" + hash + "-" + res + ".jpg"
}

// TracksVideo reports whether uid tracks vid individually.
func (s *Store) TracksVideo(ctx context.Context, uid, vid string) (bool, error) {
	if checkID("user", uid) != nil || checkID("video", vid) != nil {
		return false, nil
	}
	return s.exists(ctx, subjects.TrackerUserVideoKey(uid, vid))
}

// NoteRefusal records that YouTube refused us just now (kind as
// youtube.Refusal, reason in YouTube's words), for the pages to say so.
func (s *Store) NoteRefusal(ctx context.Context, kind, reason string) error {
	return s.put(ctx, subjects.TrackerYouTubeStatusKey, subjects.TrackerYouTubeStatus{RefusedAt: s.o.Now().UTC(), Kind: kind, Reason: reason})
}

// YouTubeStatus returns the last refusal recorded; zero when there was
// none.
func (s *Store) YouTubeStatus(ctx context.Context) (subjects.TrackerYouTubeStatus, error) {
	var st subjects.TrackerYouTubeStatus
	_, err := s.get(ctx, subjects.TrackerYouTubeStatusKey, &st)
	if errors.Is(err, ErrNotFound) {
		return subjects.TrackerYouTubeStatus{}, nil
	}
	return st, err
}

// Users lists everyone who tracks a channel or a video: the weekly digest's
// possible recipients.
func (s *Store) Users(ctx context.Context) ([]string, error) {
	seen := map[string]bool{}
	var out []string
	for _, filter := range []string{subjects.TrackerAllUserChannels, subjects.TrackerAllUserVideos} {
		keys, err := s.fullKeys(ctx, filter)
		if err != nil {
			return nil, err
		}
		for _, k := range keys {
			// user.<uid>.channel.<cid>
			parts := strings.SplitN(k, ".", 3)
			if len(parts) == 3 && !seen[parts[1]] {
				seen[parts[1]] = true
				out = append(out, parts[1])
			}
		}
	}
	slices.Sort(out)
	return out, nil
}

// DigestOff reports whether uid turned the weekly outlier digest off.
func (s *Store) DigestOff(ctx context.Context, uid string) (bool, error) {
	if err := checkID("user", uid); err != nil {
		return false, err
	}
	return s.exists(ctx, subjects.TrackerDigestOffKey(uid))
}

// SetDigest turns uid's weekly outlier digest on or off.
func (s *Store) SetDigest(ctx context.Context, uid string, on bool) error {
	if err := checkID("user", uid); err != nil {
		return err
	}
	key := subjects.TrackerDigestOffKey(uid)
	if on {
		if err := s.kv.Delete(ctx, key); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
			return fmt.Errorf("digest on for %s: %w", uid, err)
		}
		return nil
	}
	if _, err := s.kv.Put(ctx, key, []byte("off")); err != nil {
		return fmt.Errorf("digest off for %s: %w", uid, err)
	}
	return nil
}

// DigestSent reports whether week's digest (yyyymmdd) was enqueued for uid.
func (s *Store) DigestSent(ctx context.Context, uid, week string) (bool, error) {
	return s.exists(ctx, subjects.TrackerDigestSentKey(uid, week))
}

// MarkDigestSent records that week's digest was enqueued for uid; the mark
// expires after subjects.TrackerDigestTTL.
func (s *Store) MarkDigestSent(ctx context.Context, uid, week string) error {
	_, err := s.kv.Create(ctx, subjects.TrackerDigestSentKey(uid, week), []byte("sent"), jetstream.KeyTTL(subjects.TrackerDigestTTL))
	if err != nil && !errors.Is(err, jetstream.ErrKeyExists) {
		return fmt.Errorf("mark digest %s sent for %s: %w", week, uid, err)
	}
	return nil
}

// TrackedIDs returns the ids of the channels and videos uid tracks, as sets.
func (s *Store) TrackedIDs(ctx context.Context, uid string) (channels, videos map[string]bool, err error) {
	if err := checkID("user", uid); err != nil {
		return nil, nil, err
	}
	channels, videos = map[string]bool{}, map[string]bool{}
	cs, err := s.keys(ctx, subjects.TrackerUserChannels(uid))
	if err != nil {
		return nil, nil, err
	}
	vs, err := s.keys(ctx, subjects.TrackerUserVideos(uid))
	if err != nil {
		return nil, nil, err
	}
	for _, c := range cs {
		channels[c] = true
	}
	for _, v := range vs {
		videos[v] = true
	}
	return channels, videos, nil
}

// KeepHourly keeps video v sampled hourly until until, whatever its age:
// an A/B test on it needs hourly samples for its whole run. The video's
// record is created (windows from its publish time) if it was never seen,
// and its hourly window is replaced by a longer one when it would end
// sooner.
func (s *Store) KeepHourly(ctx context.Context, v subjects.TrackerVideo, until time.Time) error {
	if err := checkID("video", v.ID); err != nil {
		return err
	}
	if _, err := s.Video(ctx, v.ID); errors.Is(err, ErrNotFound) {
		anchor := v.PublishedAt
		if anchor.IsZero() {
			anchor = s.o.Now()
		}
		if _, err := s.SeeVideo(ctx, v, anchor); err != nil {
			return err
		}
	} else if err != nil {
		return err
	}
	key := subjects.TrackerHourlyKey(v.ID)
	var w subjects.TrackerWindow
	if _, err := s.get(ctx, key, &w); err == nil && !w.Until.Before(until) {
		return nil
	}
	ttl := until.Sub(s.o.Now()).Truncate(time.Second)
	if ttl < time.Second {
		return nil
	}
	if err := s.kv.Delete(ctx, key); err != nil {
		return fmt.Errorf("extend hourly window %s: %w", v.ID, err)
	}
	if err := s.create(ctx, key, subjects.TrackerWindow{Until: until.UTC()}, ttl); err != nil && !errors.Is(err, jetstream.ErrKeyExists) {
		return fmt.Errorf("extend hourly window %s: %w", v.ID, err)
	}
	return nil
}
