package events

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"jetfleet/internal/blob"
	"jetfleet/internal/ids"
	"jetfleet/internal/kvjson"
	"jetfleet/subjects"
)

// Team submissions (seed 001): each team submits a title, description,
// link and optionally one file (kept in blob storage). Submitting again
// makes the next version. Contributors are registration ids, so a GDPR
// deletion, which pseudonymises the registration, leaves them pseudonymous.

// DefaultMaxSubmissionFile is the largest file a submission takes unless
// Config says otherwise.
const DefaultMaxSubmissionFile = 20 << 20

// Limits of the submission form.
const (
	MaxSubmissionTitle       = 140
	MaxSubmissionDescription = 5000
	MaxSubmissionLink        = 2000
	MaxSubmissionFileName    = 200
)

// SubmissionFileTypes are the kinds of file a submission takes, by the
// type their content is sniffed as (never the type the browser claims):
// documents, images, archives and plain text. Anything a browser would run
// (HTML, SVG, scripts) is refused, since the file is served from the site.
var SubmissionFileTypes = map[string]string{
	"application/pdf":           "PDF",
	"image/png":                 "PNG image",
	"image/jpeg":                "JPEG image",
	"image/gif":                 "GIF image",
	"image/webp":                "WebP image",
	"application/zip":           "ZIP archive (also .docx, .pptx, .xlsx)",
	"application/x-gzip":        "gzip archive",
	"text/plain; charset=utf-8": "plain text",
	"video/mp4":                 "MP4 video",
}

// Submission is a team's project.
type Submission struct {
	ID          string `json:"id"`
	EventID     string `json:"event_id"`
	TeamID      string `json:"team_id"`
	Version     int    `json:"version"`
	Title       string `json:"title"`
	Description string `json:"description"`
	Link        string `json:"link,omitempty"`
	File        *File  `json:"file,omitempty"`
	// Contributors are the registration ids of the members who submitted
	// a version, first contribution first.
	Contributors []string  `json:"contributors"`
	UpdatedBy    string    `json:"updated_by"`
	Created      time.Time `json:"created"`
	Updated      time.Time `json:"updated"`
}

// File is a submission's attachment in blob storage.
type File struct {
	Key         string `json:"key"`
	Name        string `json:"name"`
	Size        int64  `json:"size"`
	ContentType string `json:"content_type"`
}

// SubmissionInput is the form as typed, with an optional file.
type SubmissionInput struct {
	Title, Description, Link string
	// FileName and FileBody are set when a file was attached; FileSize is
	// its size as received.
	FileName string
	FileSize int64
	FileBody io.Reader
}

// Submit saves (or updates, as the next version) the submission of member
// m's team. The file goes to blob storage first; the record follows only
// when it is stored, so no saved version names a missing file.
// Submissions close at the event's end: ErrEventOver.
func (s *Service) Submit(ctx context.Context, m Member, in SubmissionInput) (Submission, error) {
	if err := s.notOver(ctx, m.EventID); err != nil {
		return Submission{}, err
	}
	t, err := s.TeamOf(ctx, m.EventID, m.RegistrationID)
	if err != nil {
		return Submission{}, err
	}
	var v ValidationError
	title := strings.TrimSpace(in.Title)
	switch n := utf8.RuneCountInString(title); {
	case n == 0:
		v.add("title", "Give your project a title.")
	case n > MaxSubmissionTitle:
		v.add("title", fmt.Sprintf("Keep the title under %d characters.", MaxSubmissionTitle))
	case !oneLine(title):
		v.add("title", "Keep the title on one line.")
	}
	desc := strings.TrimSpace(in.Description)
	if utf8.RuneCountInString(desc) > MaxSubmissionDescription {
		v.add("description", fmt.Sprintf("Keep the description under %d characters.", MaxSubmissionDescription))
	}
	link := strings.TrimSpace(in.Link)
	if link != "" {
		u, err := url.Parse(link)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || len(link) > MaxSubmissionLink {
			v.add("link", "Give a full http(s):// address (a repository, a demo), or leave it empty.")
		}
	}
	var body *bufio.Reader
	var ctype, name string
	if in.FileBody != nil {
		name = cleanFileName(in.FileName)
		switch {
		case s.cfg.Blobs == nil:
			v.add("file", "This site takes no files; give a link instead.")
		case in.FileSize > s.cfg.MaxSubmissionFile:
			v.add("file", fmt.Sprintf("This file is %s; a submission takes files up to %s.", MB(in.FileSize), MB(s.cfg.MaxSubmissionFile)))
		case in.FileSize == 0:
			v.add("file", "The file is empty.")
		default:
			body = bufio.NewReaderSize(in.FileBody, 512)
			head, _ := body.Peek(512)
			ctype = http.DetectContentType(head)
			if _, ok := SubmissionFileTypes[ctype]; !ok {
				v.add("file", "This kind of file ("+ctype+") is not taken; attach a PDF, an image, a ZIP archive, an MP4 video or plain text.")
			}
		}
	}
	if err := v.orNil(); err != nil {
		return Submission{}, err
	}
	// The file is stored once; a compare-and-set retry (a teammate
	// submitted meanwhile) builds on their version and keeps it.
	var stored *File
	for {
		old, rev, err := getJSON[Submission](ctx, s.teams, submissionKey(m.EventID, t.ID))
		if err != nil && !errors.Is(err, ErrNotFound) {
			return Submission{}, err
		}
		now := s.now()
		sub := old
		if rev == 0 {
			sub = Submission{ID: ids.New(), EventID: m.EventID, TeamID: t.ID, Created: now}
		}
		sub.Version++
		sub.Title, sub.Description, sub.Link = title, desc, link
		sub.UpdatedBy, sub.Updated = m.RegistrationID, now
		if !slices.Contains(sub.Contributors, m.RegistrationID) {
			sub.Contributors = append(sub.Contributors, m.RegistrationID)
		}
		if body != nil && stored == nil {
			f := File{
				Key:  "events/" + m.EventID + "/submissions/" + t.ID + "/" + ids.New(),
				Name: name, Size: in.FileSize, ContentType: ctype,
			}
			if err := s.cfg.Blobs.Put(ctx, f.Key, body, in.FileSize, ctype); err != nil {
				return Submission{}, fmt.Errorf("store submission file: %w", err)
			}
			stored = &f
		}
		if stored != nil {
			sub.File = stored
		}
		if rev == 0 {
			_, err = s.teams.Create(ctx, submissionKey(m.EventID, t.ID), mustJSON(sub))
		} else {
			_, err = s.teams.Update(ctx, submissionKey(m.EventID, t.ID), mustJSON(sub), rev)
		}
		if kvjson.Conflict(err) {
			continue
		}
		if err != nil {
			if stored != nil {
				_ = s.cfg.Blobs.Delete(ctx, stored.Key) // no record names it
			}
			return Submission{}, fmt.Errorf("save submission: %w", err)
		}
		if old.File != nil && sub.File != nil && old.File.Key != sub.File.Key {
			// The earlier version's file is replaced; a failure leaves an
			// orphan blob, never a record naming a missing file.
			if err := s.cfg.Blobs.Delete(ctx, old.File.Key); err != nil {
				s.cfg.Log.Warn("delete replaced submission file", "key", old.File.Key, "err", err)
			}
		}
		err = s.deskEngagement(ctx, subjects.EventsEngagement{
			Kind: subjects.EngagementSubmitted, EventID: m.EventID, ID: sub.ID + "." + strconv.Itoa(sub.Version),
			Ref: sub.ID, UserID: m.UserID, Room: t.ID, At: now,
		})
		return sub, err
	}
}

// MB formats a byte count for people.
func MB(n int64) string {
	if n < 1<<20 {
		return fmt.Sprintf("%d KB", (n+1023)>>10)
	}
	return fmt.Sprintf("%.1f MB", float64(n)/(1<<20))
}

func cleanFileName(n string) string {
	n = path.Base(strings.ReplaceAll(strings.TrimSpace(n), "\\", "/"))
	n = OneLine(n)
	if n == "." || n == "/" || n == "" {
		n = "file"
	}
	if len(n) > MaxSubmissionFileName {
		n = n[:MaxSubmissionFileName]
	}
	return strings.ToValidUTF8(n, "_")
}

// SubmissionOf returns team tid's submission, ErrNotFound when it has none.
func (s *Service) SubmissionOf(ctx context.Context, eid, tid string) (Submission, error) {
	sub, _, err := getJSON[Submission](ctx, s.teams, submissionKey(eid, tid))
	return sub, err
}

// Submissions returns every submission of event eid, latest first, read
// in one pass (the admin dashboard reads them every few seconds).
func (s *Service) Submissions(ctx context.Context, eid string) ([]Submission, error) {
	if !ids.Valid(eid) {
		return nil, ErrNotFound
	}
	out, err := watchAll[Submission](ctx, s.teams, "submission."+eid+".*")
	if err != nil {
		return nil, fmt.Errorf("read submissions of %s: %w", eid, err)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Updated.After(out[j].Updated) })
	return out, nil
}

// SubmissionFile opens team tid's file, ErrNotFound when its submission
// has none; the caller closes it. The edge streams it to the people it
// has checked (the team's members and the event's admins) rather than
// handing out a blob URL, which anyone it is passed to could open.
func (s *Service) SubmissionFile(ctx context.Context, eid, tid string) (io.ReadCloser, File, error) {
	sub, err := s.SubmissionOf(ctx, eid, tid)
	if err != nil {
		return nil, File{}, err
	}
	if sub.File == nil || s.cfg.Blobs == nil {
		return nil, File{}, ErrNotFound
	}
	body, info, err := s.cfg.Blobs.Get(ctx, sub.File.Key)
	if errors.Is(err, blob.ErrNotFound) {
		return nil, File{}, fmt.Errorf("submission file %s: %w", sub.File.Key, ErrNotFound)
	}
	if err != nil {
		return nil, File{}, fmt.Errorf("open submission file: %w", err)
	}
	f := *sub.File
	f.Size = info.Size
	return body, f, nil
}
