// Package media is the Media pipeline's domain: a media item (an uploaded
// video, its probe result and the state of each HLS rendition), kept as one
// KV record per item, the rendition ladder, and the operations the edge and
// the worker roles share: upload with content-hash dedup, record updates
// under compare-and-set, retry of a failed rendition, and a user's export
// and deletion. The roles themselves live in workers/media, the pages in
// web/media.
package media

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"jetfleet/internal/blob"
	"jetfleet/internal/kvjson"
	"jetfleet/subjects"
)

// Rendition is one rung of the ladder.
type Rendition struct {
	Name    string
	Height  int
	Bitrate int // video bits per second, for the master playlist
}

// Ladder is every rendition the pipeline makes, smallest first.
func Ladder() []Rendition {
	return []Rendition{
		{Name: "480p", Height: 480, Bitrate: 1_400_000},
		{Name: "720p", Height: 720, Bitrate: 2_800_000},
		{Name: "1080p", Height: 1080, Bitrate: 5_000_000},
	}
}

// RenditionNamed returns the ladder's rendition of that name.
func RenditionNamed(name string) (Rendition, bool) {
	i := slices.IndexFunc(Ladder(), func(r Rendition) bool { return r.Name == name })
	if i < 0 {
		return Rendition{}, false
	}
	return Ladder()[i], true
}

// RenditionsFor returns the renditions not larger than a source of the
// given height; a source smaller than the smallest rung still gets that
// rung, at its own height, so every readable video plays.
func RenditionsFor(sourceHeight int) []Rendition {
	var out []Rendition
	for _, r := range Ladder() {
		if r.Height <= sourceHeight {
			out = append(out, r)
		}
	}
	if len(out) == 0 {
		r := Ladder()[0]
		r.Height = max(2, sourceHeight&^1)
		out = append(out, r)
	}
	return out
}

// States of an item and of a rendition.
const (
	StateUploaded     = "uploaded"    // item: stored, waiting for the probe
	StateQueued       = "queued"      // rendition: job published
	StateTranscoding  = "transcoding" // rendition: ffmpeg running
	StateDone         = "done"        // rendition: segments stored
	StateFailed       = "failed"      // item or rendition: see Reason
	StateProcessing   = "processing"  // item: renditions under way
	StateReady        = "ready"       // item: master playlist written
	NotAVideoReadable = "this file is not a video we can read"
)

// RenditionState is the progress of one rendition.
type RenditionState struct {
	Name    string `json:"name"`
	Height  int    `json:"height"`
	State   string `json:"state"`
	Percent int    `json:"percent"`
	Reason  string `json:"reason,omitempty"`
	Attempt int    `json:"attempt,omitempty"`
}

// Item is one uploaded video.
type Item struct {
	ID       string    `json:"id"`
	Owner    string    `json:"owner"`
	Name     string    `json:"name"` // file name as uploaded
	SHA256   string    `json:"sha256"`
	Size     int64     `json:"size"`
	Uploaded time.Time `json:"uploaded"`
	State    string    `json:"state"`
	Reason   string    `json:"reason,omitempty"`
	// Probe result.
	Duration   float64          `json:"duration,omitempty"` // seconds
	Width      int              `json:"width,omitempty"`
	Height     int              `json:"height,omitempty"`
	VideoCodec string           `json:"video_codec,omitempty"`
	AudioCodec string           `json:"audio_codec,omitempty"`
	Renditions []RenditionState `json:"renditions,omitempty"`
}

// Rendition returns a pointer to the named rendition's state, or nil.
func (it *Item) Rendition(name string) *RenditionState {
	for i := range it.Renditions {
		if it.Renditions[i].Name == name {
			return &it.Renditions[i]
		}
	}
	return nil
}

// AllDone reports whether every rendition is done.
func (it *Item) AllDone() bool {
	if len(it.Renditions) == 0 {
		return false
	}
	for _, r := range it.Renditions {
		if r.State != StateDone {
			return false
		}
	}
	return true
}

// Blob keys of an item.
func itemPrefix(owner, id string) string { return "media/" + owner + "/" + id + "/" }

// SourceKey is where the uploaded file is stored.
func SourceKey(owner, id string) string { return itemPrefix(owner, id) + "source" }

// RenditionPrefix is the folder of one rendition's playlist and segments.
func RenditionPrefix(owner, id, rendition string) string {
	return itemPrefix(owner, id) + rendition + "/"
}

// PlaylistName is the variant playlist in a rendition's folder.
const PlaylistName = "index.m3u8"

// MasterKey is the master playlist of an item.
func MasterKey(owner, id string) string { return itemPrefix(owner, id) + "master.m3u8" }

// ErrNotFound is returned (wrapped) for an item that does not exist or is
// not the caller's.
var ErrNotFound = errors.New("media: no such item")

// ErrEmpty is returned for an upload without content.
var ErrEmpty = errors.New("media: the file is empty")

// ErrNotRetryable is returned when a retry is asked for a rendition that
// has not failed.
var ErrNotRetryable = errors.New("media: only a failed rendition can be retried")

// Service reads and writes items.
type Service struct {
	js    jetstream.JetStream
	kv    jetstream.KeyValue
	blobs blob.Store
}

// Open opens the items bucket (provisioned by subjects.Provision).
func Open(ctx context.Context, js jetstream.JetStream, blobs blob.Store) (*Service, error) {
	kv, err := js.KeyValue(ctx, subjects.MediaBucket)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", subjects.MediaBucket, err)
	}
	return &Service{js: js, kv: kv, blobs: blobs}, nil
}

// Blobs is the store items' files live in.
func (s *Service) Blobs() blob.Store { return s.blobs }

// ItemID is the id of owner's upload of content with that SHA-256: the
// same file uploaded twice by the same user is the same item.
func ItemID(owner, sha string) string {
	h := sha256.Sum256([]byte(owner + "\n" + sha))
	return hex.EncodeToString(h[:12])
}

// Upload stores a video read from r (spooled to a temporary file while it
// is hashed, so memory stays flat whatever its size), records the item and
// announces it. A file the owner uploaded before returns the existing item
// and created false: no second transcode.
func (s *Service) Upload(ctx context.Context, owner, name string, r io.Reader) (it Item, created bool, err error) {
	tmp, err := os.CreateTemp("", "jetfleet-upload-*")
	if err != nil {
		return Item{}, false, fmt.Errorf("spool upload: %w", err)
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	h := sha256.New()
	size, err := io.Copy(io.MultiWriter(tmp, h), r)
	if err != nil {
		return Item{}, false, fmt.Errorf("read upload: %w", err)
	}
	if size == 0 {
		return Item{}, false, ErrEmpty
	}
	sha := hex.EncodeToString(h.Sum(nil))
	id := ItemID(owner, sha)
	if existing, err := s.Get(ctx, owner, id); err == nil {
		if existing.State == StateUploaded {
			// An earlier upload may have been recorded but not announced
			// (the publish failed): announce it now; the message id makes
			// this harmless when it was.
			if err := s.announce(ctx, existing); err != nil {
				return Item{}, false, err
			}
		}
		return existing, false, nil
	} else if !errors.Is(err, ErrNotFound) {
		return Item{}, false, err
	}
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		return Item{}, false, fmt.Errorf("rewind upload: %w", err)
	}
	if err := s.blobs.Put(ctx, SourceKey(owner, id), tmp, size, "application/octet-stream"); err != nil {
		return Item{}, false, fmt.Errorf("store upload: %w", err)
	}
	it = Item{ID: id, Owner: owner, Name: name, SHA256: sha, Size: size, Uploaded: time.Now().UTC(), State: StateUploaded}
	b, _ := json.Marshal(it)
	if _, err := s.kv.Create(ctx, subjects.MediaKey(owner, id), b); err != nil {
		if errors.Is(err, jetstream.ErrKeyExists) {
			// Two uploads of the same file raced; the other one won.
			existing, gerr := s.Get(ctx, owner, id)
			return existing, false, gerr
		}
		return Item{}, false, fmt.Errorf("record item %s: %w", id, err)
	}
	if err := s.announce(ctx, it); err != nil {
		return it, true, err
	}
	return it, true, nil
}

func (s *Service) announce(ctx context.Context, it Item) error {
	data, _ := json.Marshal(subjects.MediaUpload{ID: it.ID, Owner: it.Owner})
	msg := &nats.Msg{Subject: subjects.MediaUploaded, Data: data, Header: nats.Header{}}
	msg.Header.Set(jetstream.MsgIDHeader, "media-uploaded-"+it.ID)
	if _, err := s.js.PublishMsg(ctx, msg); err != nil {
		return fmt.Errorf("announce item %s: %w", it.ID, err)
	}
	return nil
}

// Get returns owner's item id.
func (s *Service) Get(ctx context.Context, owner, id string) (Item, error) {
	var it Item
	_, err := kvjson.Get(ctx, s.kv, subjects.MediaKey(owner, id), &it, ErrNotFound)
	return it, err
}

// List returns owner's items, newest first.
func (s *Service) List(ctx context.Context, owner string) ([]Item, error) {
	lister, err := s.kv.ListKeysFiltered(ctx, subjects.MediaOwnerKeys(owner))
	if err != nil {
		return nil, fmt.Errorf("list items of %s: %w", owner, err)
	}
	var out []Item
	for k := range lister.Keys() {
		e, err := s.kv.Get(ctx, k)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue // deleted meanwhile
		}
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", k, err)
		}
		var it Item
		if err := json.Unmarshal(e.Value(), &it); err != nil {
			return nil, fmt.Errorf("decode %s: %w", k, err)
		}
		out = append(out, it)
	}
	slices.SortFunc(out, func(a, b Item) int { return b.Uploaded.Compare(a.Uploaded) })
	return out, nil
}

// updateTries bounds Update's compare-and-set rounds: every round some
// writer wins, so only a pathological loop reaches it.
const updateTries = 100

// Update applies change to the item under compare-and-set, retrying when
// another worker (another rendition of the same item) wrote in between.
// change may return an error to abandon the update.
func (s *Service) Update(ctx context.Context, owner, id string, change func(*Item) error) (Item, error) {
	return kvjson.Update(ctx, s.kv, subjects.MediaKey(owner, id), ErrNotFound, updateTries, change)
}

// PublishJob publishes the transcode job of one rendition, with a message
// id that makes a repeated publish of the same attempt a no-op.
func (s *Service) PublishJob(ctx context.Context, owner, id, rendition string, attempt int) error {
	data, _ := json.Marshal(subjects.MediaRendition{ID: id, Owner: owner, Rendition: rendition, Attempt: attempt})
	msg := &nats.Msg{Subject: subjects.MediaJobs(rendition), Data: data, Header: nats.Header{}}
	msg.Header.Set(jetstream.MsgIDHeader, "media-job-"+id+"-"+rendition+"-"+strconv.Itoa(attempt))
	if _, err := s.js.PublishMsg(ctx, msg); err != nil {
		return fmt.Errorf("publish %s job of %s: %w", rendition, id, err)
	}
	return nil
}

// Retry queues a failed rendition again, as its owner asked.
func (s *Service) Retry(ctx context.Context, owner, id, rendition string) error {
	var attempt int
	_, err := s.Update(ctx, owner, id, func(it *Item) error {
		r := it.Rendition(rendition)
		if r == nil || r.State != StateFailed {
			return ErrNotRetryable
		}
		r.Attempt++
		attempt = r.Attempt
		r.State, r.Percent, r.Reason = StateQueued, 0, ""
		it.State, it.Reason = StateProcessing, ""
		return nil
	})
	if err != nil {
		return err
	}
	return s.PublishJob(ctx, owner, id, rendition, attempt)
}

// Forget deletes every item of owner and their files. Running it again is
// harmless.
func (s *Service) Forget(ctx context.Context, owner string) error {
	items, err := s.List(ctx, owner)
	if err != nil {
		return err
	}
	for _, it := range items {
		objs, err := s.blobs.List(ctx, itemPrefix(owner, it.ID))
		if err != nil {
			return fmt.Errorf("list files of item %s: %w", it.ID, err)
		}
		for _, o := range objs {
			if err := s.blobs.Delete(ctx, o.Key); err != nil {
				return fmt.Errorf("delete %s: %w", o.Key, err)
			}
		}
		// The record goes last so a retry after a failure finds the
		// files it did not delete yet.
		if err := s.kv.Purge(ctx, subjects.MediaKey(owner, it.ID)); err != nil {
			return fmt.Errorf("delete item %s: %w", it.ID, err)
		}
	}
	return nil
}
