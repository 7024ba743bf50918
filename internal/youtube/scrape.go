package youtube

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"net/url"
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
	PublishedAt time.Time // zero when the page does not say
}

// playerResponse is the part of the page's ytInitialPlayerResponse JSON the
// scraper reads.
type playerResponse struct {
	PlayabilityStatus struct {
		Status string `json:"status"`
		Reason string `json:"reason"`
	} `json:"playabilityStatus"`
	VideoDetails *struct {
		VideoID   string `json:"videoId"`
		Title     string `json:"title"`
		ChannelID string `json:"channelId"`
		ViewCount string `json:"viewCount"`
		Author    string `json:"author"`
	} `json:"videoDetails"`
	Microformat struct {
		Renderer struct {
			PublishDate string `json:"publishDate"`
			UploadDate  string `json:"uploadDate"`
		} `json:"playerMicroformatRenderer"`
	} `json:"microformat"`
}

const playerMarker = "ytInitialPlayerResponse = "

// Video fetches and scrapes the watch page of video id. A page without the
// data the scraper needs is ErrUnparseable, never a zero view count.
func (c *Client) Video(ctx context.Context, id string) (Video, error) {
	if !ValidVideoID(id) {
		return Video{}, fmt.Errorf("video: %w: %q is not a video id", ErrNotYouTube, id)
	}
	body, err := c.get(ctx, c.pageURL("/watch", url.Values{"v": {id}}), 8<<20)
	if err != nil {
		return Video{}, fmt.Errorf("watch page %s: %w", id, err)
	}
	v, err := ParseWatchPage(body)
	if err != nil {
		return Video{}, fmt.Errorf("watch page %s: %w", id, err)
	}
	if v.ID != id {
		return Video{}, fmt.Errorf("watch page %s: %w: page is about video %q", id, ErrUnparseable, v.ID)
	}
	return v, nil
}

// ParseWatchPage reads a watch page: the embedded ytInitialPlayerResponse
// JSON first (views, title, channel, publish date), the page's meta tags
// where the JSON lacks something.
func ParseWatchPage(page []byte) (Video, error) {
	doc, err := goquery.NewDocumentFromReader(bytes.NewReader(page))
	if err != nil {
		return Video{}, fmt.Errorf("%w: not HTML: %v", ErrUnparseable, err)
	}
	var pr *playerResponse
	doc.Find("script").EachWithBreak(func(_ int, s *goquery.Selection) bool {
		text := s.Text()
		i := strings.Index(text, playerMarker)
		if i < 0 {
			return true
		}
		var p playerResponse
		// The decoder stops after the object; the script's trailing
		// statements are not read.
		if err := json.NewDecoder(strings.NewReader(text[i+len(playerMarker):])).Decode(&p); err == nil {
			pr = &p
		}
		return false
	})
	if pr == nil {
		return Video{}, fmt.Errorf("%w: no ytInitialPlayerResponse JSON on the page", ErrUnparseable)
	}
	if st := pr.PlayabilityStatus.Status; st == "ERROR" || st == "LOGIN_REQUIRED" && pr.VideoDetails == nil {
		return Video{}, fmt.Errorf("%w: %s", ErrNotFound, strings.TrimSpace(st+" "+pr.PlayabilityStatus.Reason))
	}
	d := pr.VideoDetails
	if d == nil {
		return Video{}, fmt.Errorf("%w: player response has no videoDetails (status %q)", ErrUnparseable, pr.PlayabilityStatus.Status)
	}
	v := Video{ID: d.VideoID, Title: d.Title, ChannelID: d.ChannelID, Author: d.Author}
	meta := func(sel string) string {
		val, _ := doc.Find(sel).First().Attr("content")
		return strings.TrimSpace(val)
	}
	if v.ID == "" {
		v.ID = meta(`meta[itemprop="identifier"], meta[itemprop="videoId"]`)
	}
	if v.Title == "" {
		v.Title = meta(`meta[name="title"], meta[property="og:title"]`)
	}
	if v.ChannelID == "" {
		v.ChannelID = meta(`meta[itemprop="channelId"]`)
	}
	views := d.ViewCount
	if views == "" {
		views = meta(`meta[itemprop="interactionCount"]`)
	}
	n, err := strconv.ParseInt(views, 10, 64)
	if err != nil || n < 0 {
		return Video{}, fmt.Errorf("%w: view count %q is not a number", ErrUnparseable, views)
	}
	v.Views = n
	date := pr.Microformat.Renderer.PublishDate
	if date == "" {
		date = pr.Microformat.Renderer.UploadDate
	}
	if date == "" {
		date = meta(`meta[itemprop="datePublished"], meta[itemprop="uploadDate"]`)
	}
	if date != "" {
		if v.PublishedAt, err = parseDate(date); err != nil {
			return Video{}, fmt.Errorf("%w: publish date %q: %v", ErrUnparseable, date, err)
		}
	}
	if !ValidVideoID(v.ID) || v.Title == "" || !ValidChannelID(v.ChannelID) {
		return Video{}, fmt.Errorf("%w: incomplete video details (id %q, title %q, channel %q)", ErrUnparseable, v.ID, v.Title, v.ChannelID)
	}
	return v, nil
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
	body, err := c.get(ctx, c.pageURL("/feeds/videos.xml", url.Values{"channel_id": {channelID}}), 4<<20)
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
	body, err := c.get(ctx, c.pageURL("/"+handle, nil), 8<<20)
	if err != nil {
		return Channel{}, fmt.Errorf("channel page %s: %w", handle, err)
	}
	ch, err := ParseChannelPage(body)
	if err != nil {
		return Channel{}, fmt.Errorf("channel page %s: %w", handle, err)
	}
	ch.Handle = handle
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

// Channel looks a channel up by id through its feed: it tells whether the
// channel exists and gives its title.
func (c *Client) Channel(ctx context.Context, id string) (Channel, error) {
	f, err := c.Feed(ctx, id)
	if err != nil {
		return Channel{}, err
	}
	return Channel{ID: f.ChannelID, Title: f.Title}, nil
}
