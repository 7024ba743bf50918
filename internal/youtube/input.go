package youtube

import (
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"
)

// ErrNotYouTube is returned (wrapped) for input that names no YouTube channel
// or video. Its message is meant for the person who typed the input.
var ErrNotYouTube = errors.New("not a YouTube channel or video")

var (
	videoIDRe   = regexp.MustCompile(`^[A-Za-z0-9_-]{11}$`)
	channelIDRe = regexp.MustCompile(`^UC[A-Za-z0-9_-]{22}$`)
	// Handles are 3–30 letters, marks and digits of any script, with
	// underscores, hyphens, periods and middle dots (@日本語チャンネル, @café).
	handleRe = regexp.MustCompile(`^@[\p{L}\p{M}\p{N}._·-]{3,30}$`)
	// Legacy custom-URL and username names of /c/NAME and /user/NAME links.
	legacyNameRe = regexp.MustCompile(`^[\p{L}\p{M}\p{N}._-]{1,100}$`)
)

// ValidVideoID reports whether id has the shape of a video id (11 characters
// of [A-Za-z0-9_-]).
func ValidVideoID(id string) bool { return videoIDRe.MatchString(id) }

// ValidChannelID reports whether id has the shape of a channel id (UC and 22
// characters of [A-Za-z0-9_-]).
func ValidChannelID(id string) bool { return channelIDRe.MatchString(id) }

// ValidHandle reports whether h is an @handle (letters of any script).
func ValidHandle(h string) bool { return handleRe.MatchString(h) }

// Kind says what a Ref names.
type Kind int

// Kinds of Ref.
const (
	KindChannel Kind = iota + 1
	KindVideo
)

// Ref is what a person's input names: a channel (by ID, by Handle or by a
// legacy Path, which Client.Resolve turns into an ID) or a video (by ID).
type Ref struct {
	Kind   Kind
	ID     string // channel id (UC…) or video id; empty for a channel given by handle or path
	Handle string // @handle, for a channel given by handle
	Path   string // "/c/NAME" or "/user/NAME", for a channel given by a legacy link
}

// Parse reads a channel or video reference in any form people paste: a
// channel URL (/channel/UC…, /@handle, /c/NAME, /user/NAME), an @handle, a channel id, a video URL
// (youtu.be/ID, /watch?v=ID, /shorts/ID, /live/ID, /embed/ID) or a bare
// 11-character video id.
func Parse(input string) (Ref, error) {
	s := strings.TrimSpace(input)
	switch {
	case s == "":
		return Ref{}, fmt.Errorf("%w: the input is empty", ErrNotYouTube)
	case ValidChannelID(s):
		return Ref{Kind: KindChannel, ID: s}, nil
	case ValidHandle(s):
		return Ref{Kind: KindChannel, Handle: s}, nil
	case ValidVideoID(s):
		return Ref{Kind: KindVideo, ID: s}, nil
	}
	if !strings.Contains(s, "://") {
		// People paste "youtube.com/…" without a scheme.
		s = "https://" + s
	}
	u, err := url.Parse(s)
	if err != nil || u.Host == "" {
		return Ref{}, fmt.Errorf("%w: %q is neither a link nor an id", ErrNotYouTube, input)
	}
	host := strings.TrimPrefix(strings.ToLower(u.Hostname()), "www.")
	host = strings.TrimPrefix(host, "m.")
	segs := strings.Split(strings.Trim(u.Path, "/"), "/")
	switch host {
	case "youtu.be":
		if ValidVideoID(segs[0]) {
			return Ref{Kind: KindVideo, ID: segs[0]}, nil
		}
	case "youtube.com", "music.youtube.com":
		switch {
		case segs[0] == "watch":
			if v := u.Query().Get("v"); ValidVideoID(v) {
				return Ref{Kind: KindVideo, ID: v}, nil
			}
		case len(segs) >= 2 && (segs[0] == "shorts" || segs[0] == "live" || segs[0] == "embed" || segs[0] == "v"):
			if ValidVideoID(segs[1]) {
				return Ref{Kind: KindVideo, ID: segs[1]}, nil
			}
		case len(segs) >= 2 && segs[0] == "channel":
			if ValidChannelID(segs[1]) {
				return Ref{Kind: KindChannel, ID: segs[1]}, nil
			}
		case len(segs) >= 2 && (segs[0] == "c" || segs[0] == "user"):
			if legacyNameRe.MatchString(segs[1]) {
				return Ref{Kind: KindChannel, Path: "/" + segs[0] + "/" + segs[1]}, nil
			}
		case ValidHandle(segs[0]):
			return Ref{Kind: KindChannel, Handle: segs[0]}, nil
		}
		return Ref{}, fmt.Errorf("%w: %q is a YouTube link but not to a channel or a video", ErrNotYouTube, input)
	}
	return Ref{}, fmt.Errorf("%w: %q is not a youtube.com or youtu.be link, an @handle, a channel id (UC…) or an 11-character video id", ErrNotYouTube, input)
}
