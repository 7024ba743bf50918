// Package dataapi is jetfleet's client of the YouTube Data API v3, the
// signed-in part of YouTube that A/B tests need: which channel the user
// owns (channels.list mine=true), a video's snippet and statistics
// (videos.list), changing its title (videos.update) and its thumbnail
// (thumbnails.set, a media upload). The caller hands it an http.Client
// that carries the user's OAuth access token (internal/google/oauth). The
// base URL is configuration: tests and `jetfleet dev --demo` point it at
// the stand-in in youtubetest.
//
// Every call costs quota units of the project's daily allowance (10,000 by
// default, reset at midnight Pacific Time); Cost lists them as the API's
// "Quota Calculator" page (developers.google.com/youtube/v3/determine_quota_cost)
// does.
package dataapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Quota costs in units, from the Quota Calculator.
const (
	CostChannelsList  = 1
	CostVideosList    = 1
	CostVideosUpdate  = 50
	CostThumbnailsSet = 50
)

// Limits the API enforces, checked before a call so a user hears why.
const (
	// MaxTitle is videos.update's limit on snippet.title, in characters.
	MaxTitle = 100
	// MaxThumbnailBytes is thumbnails.set's upload limit (2 MB).
	MaxThumbnailBytes = 2 * 1024 * 1024
)

// Errors callers tell apart; *APIError carries Google's words.
var (
	// ErrUnauthorized: 401, the access token is not accepted (the grant
	// was revoked). Pause, do not retry.
	ErrUnauthorized = errors.New("youtube data api: not authorized")
	// ErrQuota: 403 quotaExceeded; the project's daily units are spent
	// until midnight Pacific Time.
	ErrQuota = errors.New("youtube data api: daily quota exceeded")
	// ErrForbidden: 403 for anything else, e.g. a video of a channel the
	// user does not own.
	ErrForbidden = errors.New("youtube data api: forbidden")
	// ErrNotFound: 404, or a list without the item.
	ErrNotFound = errors.New("youtube data api: not found")
	// ErrInvalid: 400, the request broke a rule (title too long, category
	// missing, image too large).
	ErrInvalid = errors.New("youtube data api: invalid request")
)

// APIError is Google's JSON error answer.
type APIError struct {
	Status  int
	Reason  string // errors[0].reason, e.g. quotaExceeded, authError, forbidden
	Message string
}

func (e *APIError) Error() string {
	return fmt.Sprintf("youtube data api: HTTP %d %s: %s", e.Status, e.Reason, e.Message)
}

// Is maps the status and reason onto the package's errors.
func (e *APIError) Is(target error) bool {
	switch target {
	case ErrUnauthorized:
		return e.Status == http.StatusUnauthorized
	case ErrQuota:
		return e.Status == http.StatusForbidden && (e.Reason == "quotaExceeded" || e.Reason == "dailyLimitExceeded")
	case ErrForbidden:
		return e.Status == http.StatusForbidden && e.Reason != "quotaExceeded" && e.Reason != "dailyLimitExceeded"
	case ErrNotFound:
		return e.Status == http.StatusNotFound
	case ErrInvalid:
		return e.Status == http.StatusBadRequest
	}
	return false
}

// errorBody is the shape of Google's error answers.
type errorBody struct {
	Error struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
		Errors  []struct {
			Message string `json:"message"`
			Domain  string `json:"domain"`
			Reason  string `json:"reason"`
		} `json:"errors"`
		Status string `json:"status"`
	} `json:"error"`
}

// Config configures a Client.
type Config struct {
	// BaseURL serves /youtube/v3 and /upload/youtube/v3; default
	// https://www.googleapis.com.
	BaseURL string
}

// Client calls the API for one user: its http.Client carries their token.
type Client struct {
	base string
	http *http.Client
}

// New returns a client sending requests through hc (an oauth2 client).
func New(c Config, hc *http.Client) *Client {
	if c.BaseURL == "" {
		c.BaseURL = "https://www.googleapis.com"
	}
	return &Client{base: strings.TrimSuffix(c.BaseURL, "/"), http: hc}
}

// Channel is a channel the user owns.
type Channel struct {
	ID    string
	Title string
}

// Video is what videos.list part=snippet,statistics tells.
type Video struct {
	ID          string
	ChannelID   string
	Title       string
	CategoryID  string
	PublishedAt time.Time
	Views       int64
	// snippet is the whole snippet as YouTube sent it, so an update
	// keeps the fields we do not touch (description, tags, language).
	snippet map[string]any
}

// MyChannel returns the channel of the signed-in user (channels.list
// part=snippet mine=true); ErrNotFound when the account has none.
func (c *Client) MyChannel(ctx context.Context) (Channel, error) {
	var out struct {
		Items []struct {
			ID      string `json:"id"`
			Snippet struct {
				Title string `json:"title"`
			} `json:"snippet"`
		} `json:"items"`
	}
	if err := c.do(ctx, http.MethodGet, "/youtube/v3/channels?"+url.Values{"part": {"snippet"}, "mine": {"true"}}.Encode(), nil, "", &out); err != nil {
		return Channel{}, fmt.Errorf("channels.list mine: %w", err)
	}
	if len(out.Items) == 0 {
		return Channel{}, fmt.Errorf("channels.list mine: %w: this Google account has no YouTube channel", ErrNotFound)
	}
	return Channel{ID: out.Items[0].ID, Title: out.Items[0].Snippet.Title}, nil
}

// Video returns a video's snippet and statistics (videos.list);
// ErrNotFound when YouTube lists nothing for id.
func (c *Client) Video(ctx context.Context, id string) (Video, error) {
	var out struct {
		Items []struct {
			ID         string         `json:"id"`
			Snippet    map[string]any `json:"snippet"`
			Statistics struct {
				ViewCount string `json:"viewCount"`
			} `json:"statistics"`
		} `json:"items"`
	}
	q := url.Values{"part": {"snippet,statistics"}, "id": {id}}
	if err := c.do(ctx, http.MethodGet, "/youtube/v3/videos?"+q.Encode(), nil, "", &out); err != nil {
		return Video{}, fmt.Errorf("videos.list %s: %w", id, err)
	}
	if len(out.Items) == 0 {
		return Video{}, fmt.Errorf("videos.list %s: %w", id, ErrNotFound)
	}
	it := out.Items[0]
	v := Video{ID: it.ID, snippet: it.Snippet}
	v.ChannelID, _ = it.Snippet["channelId"].(string)
	v.Title, _ = it.Snippet["title"].(string)
	v.CategoryID, _ = it.Snippet["categoryId"].(string)
	if s, ok := it.Snippet["publishedAt"].(string); ok {
		v.PublishedAt, _ = time.Parse(time.RFC3339, s)
	}
	fmt.Sscan(it.Statistics.ViewCount, &v.Views)
	return v, nil
}

// SetTitle changes v's title with videos.update part=snippet. The API
// replaces the whole snippet and requires categoryId, so the update sends
// back the snippet videos.list gave with only the title changed.
func (c *Client) SetTitle(ctx context.Context, v Video, title string) error {
	if n := len([]rune(title)); n > MaxTitle || strings.TrimSpace(title) == "" {
		return fmt.Errorf("videos.update %s: %w: a title is 1 to %d characters (this one has %d)", v.ID, ErrInvalid, MaxTitle, n)
	}
	snippet := map[string]any{}
	for k, val := range v.snippet {
		switch k {
		// Read-only fields the API ignores or refuses on update.
		case "thumbnails", "channelId", "channelTitle", "publishedAt", "localized", "liveBroadcastContent":
			continue
		}
		snippet[k] = val
	}
	snippet["title"] = title
	snippet["categoryId"] = v.CategoryID
	body, _ := json.Marshal(map[string]any{"id": v.ID, "snippet": snippet})
	if err := c.do(ctx, http.MethodPut, "/youtube/v3/videos?part=snippet", bytes.NewReader(body), "application/json", nil); err != nil {
		return fmt.Errorf("videos.update %s: %w", v.ID, err)
	}
	return nil
}

// SetThumbnail uploads img (JPEG or PNG, at most 2 MB) as video id's
// thumbnail: thumbnails.set, a simple media upload.
func (c *Client) SetThumbnail(ctx context.Context, id string, img []byte, contentType string) error {
	if len(img) > MaxThumbnailBytes {
		return fmt.Errorf("thumbnails.set %s: %w: %d bytes, over the 2 MB limit", id, ErrInvalid, len(img))
	}
	q := url.Values{"videoId": {id}, "uploadType": {"media"}}
	if err := c.do(ctx, http.MethodPost, "/upload/youtube/v3/thumbnails/set?"+q.Encode(), bytes.NewReader(img), contentType, nil); err != nil {
		return fmt.Errorf("thumbnails.set %s: %w", id, err)
	}
	return nil
}

func (c *Client) do(ctx context.Context, method, path string, body io.Reader, contentType string, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		return parseError(resp.StatusCode, b)
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("decode answer: %w", err)
	}
	return nil
}

// parseError reads Google's error JSON; an answer in another shape (a
// proxy's page) still keeps its status.
func parseError(status int, b []byte) error {
	e := &APIError{Status: status, Message: strings.TrimSpace(string(b))}
	var eb errorBody
	if json.Unmarshal(b, &eb) == nil && eb.Error.Code != 0 {
		e.Message = eb.Error.Message
		if len(eb.Error.Errors) > 0 {
			e.Reason = eb.Error.Errors[0].Reason
		}
	}
	if len(e.Message) > 300 {
		e.Message = e.Message[:300]
	}
	return e
}
