package youtube_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"jetfleet/internal/youtube"
)

// Golden files are real YouTube responses; testdata/README.md says where
// each comes from and when it was captured.

func golden(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// playerJSON unwraps the {"playerResponse": …} envelope some captures have.
func playerJSON(t *testing.T, name string) []byte {
	t.Helper()
	b := golden(t, name)
	var env struct {
		PlayerResponse json.RawMessage `json:"playerResponse"`
	}
	if json.Unmarshal(b, &env) == nil && len(env.PlayerResponse) > 0 {
		return env.PlayerResponse
	}
	return b
}

func TestRealWatchPageGivesViewsTitleChannelAndDate(t *testing.T) {
	v, err := youtube.ParseWatchPage(golden(t, "watch-QRS8MkLhQmM.html"))
	if err != nil {
		t.Fatal(err)
	}
	want := youtube.Video{ID: "QRS8MkLhQmM", Title: "YouTube Captions and Subtitles", ChannelID: "UCBR8-60-B28hp2BmDPdntcQ",
		Author: "YouTube", Views: 1756498, PublishedAt: time.Date(2008, 9, 22, 0, 0, 0, 0, time.UTC)}
	if v != want {
		t.Fatalf("video = %+v\nwant    %+v", v, want)
	}
}

func TestRealPlayerResponseGivesLikesAndViewsFromMicroformat(t *testing.T) {
	// This capture has no videoDetails.viewCount, title or channelId: the
	// microformat alone must do.
	v, err := youtube.ParsePlayerResponse(playerJSON(t, "player-likes-tjz2u2DiveM.json"))
	if err != nil {
		t.Fatal(err)
	}
	if v.ID != "tjz2u2DiveM" || v.Views != 142650 || v.Likes != 1697 || v.Title != "dog" || v.ChannelID != "UCjKFYf7oRKTDX57VeFHnLoQ" || v.Author != "Jony Tube" {
		t.Fatalf("video = %+v", v)
	}
	if want := time.Date(2019, 5, 22, 18, 45, 33, 0, time.UTC); !v.PublishedAt.Equal(want) {
		t.Fatalf("published %v, want %v", v.PublishedAt, want)
	}
}

func TestRealRefusalsAndVideoStatesAreClassified(t *testing.T) {
	cases := []struct {
		file    string
		refusal youtube.Refusal    // a refusal of us, or
		state   youtube.VideoState // a state of the video without counts, or
		counted youtube.VideoState // a state of the video whose counts the page still gives
		views   int64
	}{
		{file: "watch-botcheck-derived.html", refusal: youtube.RefusedBotCheck},
		{file: "watch-private-m8uHb5jIGN8.html", state: youtube.StatePrivate},
		{file: "player-private-8VajtrESJzA.json", state: youtube.StatePrivate},
		{file: "watch-agegated-irauhITDrsE.html", counted: youtube.StateAgeRestricted, views: 714918},
		{file: "player-country-_PL2HJKxnOM.json", counted: youtube.StateUnavailable, views: 395969},
	}
	for _, c := range cases {
		t.Run(c.file, func(t *testing.T) {
			var (
				v   youtube.Video
				err error
			)
			if strings.HasSuffix(c.file, ".json") {
				v, err = youtube.ParsePlayerResponse(playerJSON(t, c.file))
			} else {
				v, err = youtube.ParseWatchPage(golden(t, c.file))
			}
			if errors.Is(err, youtube.ErrNotFound) {
				t.Fatalf("%v: a refusal or a state read as 'does not exist'", err)
			}
			var refusal *youtube.RefusalError
			var state *youtube.StateError
			switch {
			case c.refusal != "":
				if !errors.As(err, &refusal) || refusal.Kind != c.refusal || !errors.Is(err, youtube.ErrRefused) {
					t.Fatalf("err = %v, want refusal %s", err, c.refusal)
				}
			case c.state != "":
				if !errors.As(err, &state) || state.State != c.state || !errors.Is(err, youtube.ErrVideoState) {
					t.Fatalf("err = %v, want state %s", err, c.state)
				}
			default:
				if err != nil || v.State != c.counted || v.Views != c.views {
					t.Fatalf("video = %+v, %v; want state %s with %d views", v, err, c.counted, c.views)
				}
			}
		})
	}
}

func TestWatchPageSurvivesFormatDrift(t *testing.T) {
	page := golden(t, "watch-QRS8MkLhQmM.html")
	edit := func(page []byte, old, new string) []byte {
		t.Helper()
		if !bytes.Contains(page, []byte(old)) {
			t.Fatalf("page has no %q", old)
		}
		return bytes.Replace(page, []byte(old), []byte(new), 1)
	}
	// Without videoDetails.viewCount the microformat's count is used;
	// without a readable one there either, ytInitialData's "1,756,498 views".
	noDetails := edit(page, `"allowRatings":true,"viewCount":"1756498"`, `"allowRatings":true`)
	onlyData := edit(noDetails, `"viewCount":"1756498"`, `"viewCount":"gone"`)
	cases := []struct {
		name string
		page []byte
	}{
		{"no spaces around =", edit(page, "var ytInitialPlayerResponse = {", "var ytInitialPlayerResponse={")},
		{"window[] assignment", edit(page, "var ytInitialPlayerResponse = {", `window["ytInitialPlayerResponse"] = {`)},
		{"a placeholder assigned first", edit(page, "<script", `<script>var ytInitialPlayerResponse = {};</script><script`)},
		{"count as a number", edit(page, `"viewCount":"1756498"`, `"viewCount":1756498`)},
		{"only the microformat has views", noDetails},
		{"only ytInitialData has views", onlyData},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			v, err := youtube.ParseWatchPage(c.page)
			if err != nil || v.Views != 1756498 || v.ID != "QRS8MkLhQmM" {
				t.Fatalf("video = %+v, %v; want 1756498 views", v, err)
			}
		})
	}
}

func TestUnreadableViewsNameTheFieldsThatFailed(t *testing.T) {
	page := []byte(`<html><script>var ytInitialPlayerResponse = {"playabilityStatus":{"status":"OK"},"videoDetails":{"videoId":"abcdefghijk","title":"t","channelId":"UCuAXFkgsw1L7xaCfnd5JJOw","viewCount":"lots"}};</script></html>`)
	_, err := youtube.ParseWatchPage(page)
	if !errors.Is(err, youtube.ErrUnparseable) || !strings.Contains(err.Error(), `videoDetails.viewCount: "lots" is not a count`) {
		t.Fatalf("err = %v; want ErrUnparseable naming videoDetails.viewCount", err)
	}
}

func TestRealChannelPageAndFeed(t *testing.T) {
	ch, err := youtube.ParseChannelPage(golden(t, "channel-UCs6nmQViDpUw0nuIx9c_WvA.html"))
	if err != nil || ch.ID != "UCs6nmQViDpUw0nuIx9c_WvA" || ch.Title != "ProgrammingKnowledge" {
		t.Fatalf("channel = %+v, %v", ch, err)
	}
	f, err := youtube.ParseFeed(golden(t, "feed-kurzgesagt.xml"))
	if err != nil {
		t.Fatal(err)
	}
	if f.ChannelID != "UCsXVk37bltHxD1rDPwtNM8Q" || f.Title != "Kurzgesagt – In a Nutshell" || len(f.Entries) != 15 || f.Entries[0].VideoID != "zg40FHOAqC0" || f.Entries[0].Title != "Jupiter Made Earth Possible" {
		t.Fatalf("feed = %+v", f)
	}
}

func TestPlayabilityReasonsAreClassified(t *testing.T) {
	cases := []struct {
		status, reason string
		refusal        youtube.Refusal
		state          youtube.VideoState
		notFound       bool
	}{
		{status: "LOGIN_REQUIRED", reason: "Sign in to confirm you're not a bot", refusal: youtube.RefusedBotCheck},
		{status: "LOGIN_REQUIRED", reason: "Please sign in", refusal: youtube.RefusedSignIn},
		{status: "LOGIN_REQUIRED", reason: "This video is private", state: youtube.StatePrivate},
		{status: "LOGIN_REQUIRED", reason: "Sign in to confirm your age", state: youtube.StateAgeRestricted},
		{status: "AGE_CHECK_REQUIRED", reason: "", state: youtube.StateAgeRestricted},
		{status: "UNPLAYABLE", reason: "Join this channel to get access to members-only content like this video, and other exclusive perks.", state: youtube.StateMembersOnly},
		{status: "UNPLAYABLE", reason: "The uploader has not made this video available in your country", state: youtube.StateUnavailable},
		{status: "ERROR", reason: "This video has been removed by the uploader", state: youtube.StateRemoved},
		{status: "ERROR", reason: "This video is no longer available because the YouTube account associated with this video has been terminated.", state: youtube.StateRemoved},
		{status: "ERROR", reason: "This video isn't available anymore", state: youtube.StateRemoved},
		{status: "ERROR", reason: "Video unavailable", notFound: true},
	}
	for _, c := range cases {
		b, _ := json.Marshal(map[string]any{"playabilityStatus": map[string]any{"status": c.status, "reason": c.reason}})
		_, err := youtube.ParsePlayerResponse(b)
		var refusal *youtube.RefusalError
		var state *youtube.StateError
		switch {
		case c.refusal != "":
			if !errors.As(err, &refusal) || refusal.Kind != c.refusal {
				t.Errorf("%s %q: %v; want refusal %s", c.status, c.reason, err, c.refusal)
			}
		case c.state != "":
			if !errors.As(err, &state) || state.State != c.state {
				t.Errorf("%s %q: %v; want state %s", c.status, c.reason, err, c.state)
			}
		case c.notFound:
			if !errors.Is(err, youtube.ErrNotFound) {
				t.Errorf("%s %q: %v; want ErrNotFound", c.status, c.reason, err)
			}
		}
	}
}
