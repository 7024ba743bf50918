package youtube

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/PuerkitoBio/goquery"
)

// Video is what a watch page says about a video.
type Video struct {
	ID          string
	Title       string
	ChannelID   string
	Author      string
	Views       int64
	Likes       int64     // 0 when the page does not say (ratings hidden)
	PublishedAt time.Time // zero when the page does not say
	// State is set when the page gives the counts of a video YouTube does
	// not play to signed-out visitors (e.g. age-gated): the sample is
	// still good, and the page says why the video cannot be watched.
	State       VideoState
	StateReason string // YouTube's words for State
}

// The page assigns its JSON in several spellings over the years: `var
// ytInitialPlayerResponse = {`, `ytInitialPlayerResponse={`, and
// `window["ytInitialPlayerResponse"] = {`. The regexes find the assignment
// by the variable's name; the JSON value itself is read by a decoder, which
// knows where it ends.
var (
	playerAssignRe = regexp.MustCompile(`ytInitialPlayerResponse["']?\s*\]?\s*=\s*\{`)
	dataAssignRe   = regexp.MustCompile(`ytInitialData["']?\s*\]?\s*=\s*\{`)
)

// Video fetches and scrapes the watch page of video id. A page without the
// data the scraper needs is ErrUnparseable, never a zero view count; a
// refusal of us is a *RefusalError (retried, counted by the breaker), a
// video YouTube hides is a *StateError.
func (c *Client) Video(ctx context.Context, id string) (Video, error) {
	if !ValidVideoID(id) {
		return Video{}, fmt.Errorf("video: %w: %q is not a video id", ErrNotYouTube, id)
	}
	var (
		v    Video
		perr error
	)
	_, err := c.get(ctx, c.pageURL("/watch", url.Values{"v": {id}}), 8<<20, func(status int, body []byte) error {
		if status != http.StatusOK {
			return nil
		}
		v, perr = ParseWatchPage(body)
		return perr
	})
	if err != nil {
		return Video{}, fmt.Errorf("watch page %s: %w", id, err)
	}
	if perr != nil {
		return Video{}, fmt.Errorf("watch page %s: %w", id, perr)
	}
	if v.ID != id {
		return Video{}, fmt.Errorf("watch page %s: %w: page is about video %q", id, ErrUnparseable, v.ID)
	}
	return v, nil
}

// ParseWatchPage reads a watch page: its embedded ytInitialPlayerResponse
// (playability, ids, title, counts, dates), and ytInitialData for the view
// count when the player response lacks it.
func ParseWatchPage(page []byte) (Video, error) {
	pr, err := assignedJSON(page, playerAssignRe)
	if err != nil {
		return Video{}, fmt.Errorf("%w: ytInitialPlayerResponse: %v", ErrUnparseable, err)
	}
	return fromPlayer(pr, func() any {
		data, _ := assignedJSON(page, dataAssignRe)
		return data
	})
}

// ParsePlayerResponse reads a player response on its own (the JSON of
// ytInitialPlayerResponse, as the player endpoint also returns it).
func ParsePlayerResponse(b []byte) (Video, error) {
	var pr map[string]any
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	if err := d.Decode(&pr); err != nil {
		return Video{}, fmt.Errorf("%w: player response: %v", ErrUnparseable, err)
	}
	return fromPlayer(pr, func() any { return nil })
}

// assignedJSON decodes the first non-empty JSON object assigned to the
// variable re names (pages also assign placeholders such as {}). Numbers
// stay json.Number, so a count is read exactly.
func assignedJSON(page []byte, re *regexp.Regexp) (map[string]any, error) {
	locs := re.FindAllIndex(page, 8)
	if len(locs) == 0 {
		return nil, errors.New("not on the page")
	}
	last := errors.New("only empty objects")
	for _, loc := range locs {
		d := json.NewDecoder(bytes.NewReader(page[loc[1]-1:]))
		d.UseNumber()
		var m map[string]any
		if err := d.Decode(&m); err != nil {
			last = fmt.Errorf("not JSON: %v", err)
			continue
		}
		if len(m) > 0 {
			return m, nil
		}
	}
	return nil, last
}

// fromPlayer reads a player response. data lazily gives ytInitialData, a
// third source of the view count.
func fromPlayer(pr map[string]any, data func() any) (Video, error) {
	refusal, state, gone := playability(pr)
	if refusal != nil {
		return Video{}, refusal
	}
	if gone != nil {
		return Video{}, gone
	}
	var problems []string
	text := func(field string, sources ...[]string) string {
		for _, p := range sources {
			if s := textAt(pr, p...); s != "" {
				return s
			}
		}
		problems = append(problems, field+" missing")
		return ""
	}
	v := Video{
		ID:        text("videoId", []string{"videoDetails", "videoId"}),
		Title:     text("title", []string{"videoDetails", "title"}, []string{"microformat", "playerMicroformatRenderer", "title"}),
		ChannelID: text("channelId", []string{"videoDetails", "channelId"}, []string{"microformat", "playerMicroformatRenderer", "externalChannelId"}),
	}
	v.Author = textAt(pr, "videoDetails", "author")
	if v.Author == "" {
		v.Author = textAt(pr, "microformat", "playerMicroformatRenderer", "ownerChannelName")
	}
	views, viewProblems := viewCount(pr, data)
	if views < 0 {
		problems = append(problems, "views: "+strings.Join(viewProblems, "; "))
	}
	v.Views = views
	if n, ok, _ := countAt(pr, "microformat", "playerMicroformatRenderer", "likeCount"); ok {
		v.Likes = n
	}
	for _, p := range [][]string{{"microformat", "playerMicroformatRenderer", "publishDate"}, {"microformat", "playerMicroformatRenderer", "uploadDate"}} {
		if t, err := parseDate(textAt(pr, p...)); err == nil {
			v.PublishedAt = t
			break
		}
	}
	if len(problems) == 0 && (!ValidVideoID(v.ID) || !ValidChannelID(v.ChannelID)) {
		problems = append(problems, fmt.Sprintf("ids not of YouTube's shape (video %q, channel %q)", v.ID, v.ChannelID))
	}
	if len(problems) > 0 {
		if state != nil {
			// No counts to sample: the state is the answer.
			return Video{}, state
		}
		return Video{}, fmt.Errorf("%w: %s (playability %q)", ErrUnparseable, strings.Join(problems, "; "), textAt(pr, "playabilityStatus", "status"))
	}
	if state != nil {
		v.State, v.StateReason = state.State, state.Reason
	}
	return v, nil
}

// viewCount reads the views from the first source that has them: the
// player's videoDetails, its microformat, then ytInitialData's
// videoViewCountRenderer. It returns -1 and what was wrong with each source
// when none has them.
func viewCount(pr map[string]any, data func() any) (int64, []string) {
	var problems []string
	for _, p := range [][]string{{"videoDetails", "viewCount"}, {"microformat", "playerMicroformatRenderer", "viewCount"}} {
		n, ok, err := countAt(pr, p...)
		switch {
		case ok:
			return n, nil
		case err != nil:
			problems = append(problems, strings.Join(p, ".")+": "+err.Error())
		default:
			problems = append(problems, strings.Join(p, ".")+" missing")
		}
	}
	r, _ := find(data(), "videoViewCountRenderer").(map[string]any)
	if r == nil {
		return -1, append(problems, "ytInitialData videoViewCountRenderer missing")
	}
	if n, ok, _ := countAt(r, "originalViewCount"); ok {
		return n, nil
	}
	label := textAt(r, "viewCount")
	if n, ok := countInText(label); ok {
		return n, nil
	}
	return -1, append(problems, fmt.Sprintf("ytInitialData videoViewCountRenderer: %q is not a count", label))
}

// playability classifies the player response's playabilityStatus: a
// refusal of us, a state of the video, or a video that does not exist. All
// nil: the video plays.
func playability(pr map[string]any) (*RefusalError, *StateError, error) {
	status := textAt(pr, "playabilityStatus", "status")
	reason := textAt(pr, "playabilityStatus", "reason")
	if reason == "" {
		reason = textAt(pr, "playabilityStatus", "errorScreen", "playerErrorMessageRenderer", "reason")
	}
	words := []string{reason, textAt(pr, "playabilityStatus", "errorScreen", "playerErrorMessageRenderer", "subreason")}
	if ms, ok := at(pr, "playabilityStatus", "messages").([]any); ok {
		for _, m := range ms {
			if s, ok := m.(string); ok {
				words = append(words, s)
			}
		}
	}
	all := strings.ToLower(strings.Join(words, " "))
	if reason == "" {
		reason = strings.TrimSpace(strings.Join(words, " "))
	}
	has := func(subs ...string) bool {
		for _, s := range subs {
			if strings.Contains(all, s) {
				return true
			}
		}
		return false
	}
	state := func(s VideoState) (*RefusalError, *StateError, error) {
		return nil, &StateError{State: s, Reason: reason}, nil
	}
	isBot := has("not a bot", "not a robot")
	isPrivate := has("private")
	isAge := has("confirm your age", "age-restricted", "age restricted", "inappropriate for some users")
	isMembers := has("members-only", "members only", "join this channel")
	isRemoved := has("removed", "terminated", "no longer available", "isn't available anymore", "isn’t available anymore", "closed their youtube account", "violat", "copyright")
	switch status {
	case "", "OK", "LIVE_STREAM_OFFLINE":
		return nil, nil, nil
	case "LOGIN_REQUIRED":
		switch {
		case isBot:
			return &RefusalError{Kind: RefusedBotCheck, Reason: reason}, nil, nil
		case isPrivate:
			return state(StatePrivate)
		case isAge:
			return state(StateAgeRestricted)
		case isMembers:
			return state(StateMembersOnly)
		}
		// A sign-in wall that names nothing about the video is about us.
		return &RefusalError{Kind: RefusedSignIn, Reason: reason}, nil, nil
	case "AGE_CHECK_REQUIRED", "AGE_VERIFICATION_REQUIRED", "CONTENT_CHECK_REQUIRED":
		return state(StateAgeRestricted)
	case "UNPLAYABLE", "ERROR":
		switch {
		case isBot:
			return &RefusalError{Kind: RefusedBotCheck, Reason: reason}, nil, nil
		case isMembers:
			return state(StateMembersOnly)
		case isPrivate:
			return state(StatePrivate)
		case isAge:
			return state(StateAgeRestricted)
		case isRemoved:
			return state(StateRemoved)
		case status == "UNPLAYABLE":
			return state(StateUnavailable)
		}
		// ERROR without a reason about the video: YouTube's answer for an
		// id it does not know ("Video unavailable").
		return nil, nil, fmt.Errorf("%w: %s", ErrNotFound, strings.TrimSpace(status+" "+reason))
	}
	return state(StateUnavailable)
}

// at walks m along keys; nil when a step is missing.
func at(m any, keys ...string) any {
	for _, k := range keys {
		o, ok := m.(map[string]any)
		if !ok {
			return nil
		}
		m = o[k]
	}
	return m
}

// textAt reads a string at keys, or YouTube's text objects ({"simpleText":
// …} or {"runs": [{"text": …}]}).
func textAt(m any, keys ...string) string {
	switch v := at(m, keys...).(type) {
	case string:
		return strings.TrimSpace(v)
	case map[string]any:
		if s, ok := v["simpleText"].(string); ok {
			return strings.TrimSpace(s)
		}
		var b strings.Builder
		runs, _ := v["runs"].([]any)
		for _, r := range runs {
			s, _ := at(r, "text").(string)
			b.WriteString(s)
		}
		return strings.TrimSpace(b.String())
	}
	return ""
}

// countAt reads a count at keys sent as a string ("1234") or a number
// (1234). ok is false when it is missing; err says what was there instead
// of a count.
func countAt(m any, keys ...string) (n int64, ok bool, err error) {
	var s string
	switch v := at(m, keys...).(type) {
	case nil:
		return 0, false, nil
	case string:
		s = strings.TrimSpace(v)
	case json.Number:
		s = v.String()
	case float64:
		s = strconv.FormatFloat(v, 'f', -1, 64)
	default:
		return 0, false, fmt.Errorf("%v is not a count", v)
	}
	n, perr := strconv.ParseInt(s, 10, 64)
	if perr != nil || n < 0 {
		return 0, false, fmt.Errorf("%q is not a count", s)
	}
	return n, true, nil
}

// countInText reads "1,756,498 views" (any digit grouping); "No views" is
// zero.
func countInText(s string) (int64, bool) {
	var digits strings.Builder
	for _, r := range s {
		if r >= '0' && r <= '9' {
			digits.WriteRune(r)
		}
	}
	if digits.Len() == 0 {
		return 0, strings.HasPrefix(strings.ToLower(s), "no views")
	}
	n, err := strconv.ParseInt(digits.String(), 10, 64)
	return n, err == nil
}

// find returns the value of the first key named key anywhere under v
// (depth first), or nil.
func find(v any, key string) any {
	switch t := v.(type) {
	case map[string]any:
		if r, ok := t[key]; ok {
			return r
		}
		for _, c := range t {
			if r := find(c, key); r != nil {
				return r
			}
		}
	case []any:
		for _, c := range t {
			if r := find(c, key); r != nil {
				return r
			}
		}
	}
	return nil
}

// parseDate reads the two forms watch pages use: RFC 3339 and a bare date.
func parseDate(s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t.UTC(), nil
	}
	return time.Parse(time.DateOnly, s)
}

// Feed is a channel's RSS (Atom) feed: its latest uploads, newest first.
type Feed struct {
	ChannelID string
	Title     string
	Entries   []FeedEntry
}

// FeedEntry is one upload in a feed.
type FeedEntry struct {
	VideoID   string
	Title     string
	Published time.Time
	Views     int64 // media:statistics, often rounded; informational only
}

type atomFeed struct {
	ChannelID string `xml:"http://www.youtube.com/xml/schemas/2015 channelId"`
	Title     string `xml:"http://www.w3.org/2005/Atom title"`
	Entries   []struct {
		VideoID   string `xml:"http://www.youtube.com/xml/schemas/2015 videoId"`
		Title     string `xml:"http://www.w3.org/2005/Atom title"`
		Published string `xml:"http://www.w3.org/2005/Atom published"`
		Group     struct {
			Stats struct {
				Views string `xml:"views,attr"`
			} `xml:"http://search.yahoo.com/mrss/ community>statistics"`
		} `xml:"http://search.yahoo.com/mrss/ group"`
	} `xml:"http://www.w3.org/2005/Atom entry"`
}

// Feed fetches the RSS feed of channel id.
func (c *Client) Feed(ctx context.Context, channelID string) (Feed, error) {
	if !ValidChannelID(channelID) {
		return Feed{}, fmt.Errorf("feed: %w: %q is not a channel id", ErrNotYouTube, channelID)
	}
	// YouTube's feeds answer 404 (or 500) for live channels during outages,
	// so a 404 is retried and counts against the breaker like a 503; after
	// the attempts it is still ErrNotFound, which only the channel page can
	// confirm (see Channel).
	body, err := c.get(ctx, c.pageURL("/feeds/videos.xml", url.Values{"channel_id": {channelID}}), 4<<20, func(status int, _ []byte) error {
		if status == http.StatusNotFound {
			return &outageError{err: fmt.Errorf("%w (HTTP 404 from the feed)", ErrNotFound)}
		}
		return nil
	})
	if err != nil {
		return Feed{}, fmt.Errorf("feed %s: %w", channelID, err)
	}
	f, err := ParseFeed(body)
	if err != nil {
		return Feed{}, fmt.Errorf("feed %s: %w", channelID, err)
	}
	if f.ChannelID != channelID {
		return Feed{}, fmt.Errorf("feed %s: %w: feed is of channel %q", channelID, ErrUnparseable, f.ChannelID)
	}
	return f, nil
}

// ParseFeed reads a channel's Atom feed.
func ParseFeed(body []byte) (Feed, error) {
	var af atomFeed
	if err := xml.Unmarshal(body, &af); err != nil {
		return Feed{}, fmt.Errorf("%w: feed XML: %v", ErrUnparseable, err)
	}
	f := Feed{ChannelID: strings.TrimSpace(af.ChannelID), Title: strings.TrimSpace(af.Title)}
	// Some feeds give the channel id without its UC prefix.
	if f.ChannelID != "" && !strings.HasPrefix(f.ChannelID, "UC") && ValidChannelID("UC"+f.ChannelID) {
		f.ChannelID = "UC" + f.ChannelID
	}
	if !ValidChannelID(f.ChannelID) {
		return Feed{}, fmt.Errorf("%w: feed has no channel id", ErrUnparseable)
	}
	for _, e := range af.Entries {
		id := strings.TrimSpace(e.VideoID)
		if !ValidVideoID(id) {
			return Feed{}, fmt.Errorf("%w: feed entry with video id %q", ErrUnparseable, id)
		}
		pub, err := time.Parse(time.RFC3339, strings.TrimSpace(e.Published))
		if err != nil {
			return Feed{}, fmt.Errorf("%w: entry %s published %q", ErrUnparseable, id, e.Published)
		}
		views, _ := strconv.ParseInt(e.Group.Stats.Views, 10, 64)
		f.Entries = append(f.Entries, FeedEntry{VideoID: id, Title: strings.TrimSpace(e.Title), Published: pub.UTC(), Views: views})
	}
	return f, nil
}

// Channel is what a channel page says about a channel.
type Channel struct {
	ID     string
	Handle string
	Title  string
}

// ResolveHandle reads the @handle's channel page for its channel id.
func (c *Client) ResolveHandle(ctx context.Context, handle string) (Channel, error) {
	if !ValidHandle(handle) {
		return Channel{}, fmt.Errorf("handle: %w: %q is not an @handle", ErrNotYouTube, handle)
	}
	ch, err := c.channelPage(ctx, "/"+handle)
	if err != nil {
		return Channel{}, err
	}
	ch.Handle = handle
	return ch, nil
}

// Resolve finds the channel a Ref names: by id (Channel), @handle
// (ResolveHandle) or legacy /c/ or /user/ link (its page).
func (c *Client) Resolve(ctx context.Context, ref Ref) (Channel, error) {
	switch {
	case ref.Kind != KindChannel:
		return Channel{}, fmt.Errorf("resolve: %w: not a channel", ErrNotYouTube)
	case ref.ID != "":
		return c.Channel(ctx, ref.ID)
	case ref.Handle != "":
		return c.ResolveHandle(ctx, ref.Handle)
	case ref.Path != "":
		return c.channelPage(ctx, ref.Path)
	}
	return Channel{}, fmt.Errorf("resolve: %w: empty channel reference", ErrNotYouTube)
}

// channelPage reads the channel page at path (/@handle, /c/NAME,
// /user/NAME, /channel/UC…).
func (c *Client) channelPage(ctx context.Context, path string) (Channel, error) {
	body, err := c.get(ctx, c.pageURL(path, nil), 8<<20, nil)
	if err != nil {
		return Channel{}, fmt.Errorf("channel page %s: %w", path, err)
	}
	ch, err := ParseChannelPage(body)
	if err != nil {
		return Channel{}, fmt.Errorf("channel page %s: %w", path, err)
	}
	return ch, nil
}

// ParseChannelPage reads a channel page's id (canonical link, og:url or
// itemprop identifier) and title.
func ParseChannelPage(page []byte) (Channel, error) {
	doc, err := goquery.NewDocumentFromReader(bytes.NewReader(page))
	if err != nil {
		return Channel{}, fmt.Errorf("%w: not HTML: %v", ErrUnparseable, err)
	}
	var ch Channel
	for _, cand := range []string{
		attr(doc, `link[rel="canonical"]`, "href"),
		attr(doc, `meta[property="og:url"]`, "content"),
		attr(doc, `meta[itemprop="identifier"]`, "content"),
	} {
		id := cand[strings.LastIndex(cand, "/")+1:]
		if ValidChannelID(id) {
			ch.ID = id
			break
		}
	}
	if ch.ID == "" {
		return Channel{}, fmt.Errorf("%w: no channel id on the page", ErrUnparseable)
	}
	ch.Title = attr(doc, `meta[property="og:title"]`, "content")
	if ch.Title == "" {
		ch.Title = strings.TrimSuffix(strings.TrimSpace(doc.Find("title").First().Text()), " - YouTube")
	}
	return ch, nil
}

func attr(doc *goquery.Document, sel, name string) string {
	v, _ := doc.Find(sel).First().Attr(name)
	return strings.TrimSpace(v)
}

// ErrNoAnswer wraps the failure to look a channel up when neither its feed
// nor its page answered: YouTube did not say whether it exists.
var ErrNoAnswer = errors.New("youtube did not answer")

// Channel looks a channel up by id: its feed tells whether it exists and
// gives its title. YouTube's feeds answer 404 or 500 for live channels
// during outages, so a feed that fails is checked against the channel page,
// which alone decides "does not exist".
func (c *Client) Channel(ctx context.Context, id string) (Channel, error) {
	f, ferr := c.Feed(ctx, id)
	if ferr == nil {
		return Channel{ID: f.ChannelID, Title: f.Title}, nil
	}
	if errors.Is(ferr, ErrNotYouTube) || ctx.Err() != nil {
		return Channel{}, ferr
	}
	ch, err := c.channelPage(ctx, "/channel/"+id)
	switch {
	case err == nil && ch.ID == id:
		return ch, nil
	case err == nil:
		return Channel{}, fmt.Errorf("channel %s: %w: page is of channel %q", id, ErrUnparseable, ch.ID)
	case errors.Is(err, ErrNotFound):
		return Channel{}, err
	}
	return Channel{}, fmt.Errorf("channel %s: %w (feed: %w; page: %w)", id, ErrNoAnswer, ferr, err)
}
