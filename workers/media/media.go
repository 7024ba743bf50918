// Package media holds the Media pipeline's three worker roles. Probe reads
// an upload with ffprobe and fans out one transcode job per rendition;
// Transcode runs ffmpeg for one rendition into HLS and stores the playlist
// and segments; Publish writes the master playlist once every rendition of
// an item is done. Each role is a consume.Handler; retries, dead-lettering
// and shutdown are the shared runtime's (workers/consume).
package media

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"jetfleet/internal/blob"
	domain "jetfleet/internal/media"
	"jetfleet/subjects"
	"jetfleet/workers/consume"
)

// Deps are what the roles use.
type Deps struct {
	JS    jetstream.JetStream
	Items *domain.Service
	Blobs blob.Store
	Log   *slog.Logger
	// FFmpeg and FFprobe are the programs' paths; empty looks them up on
	// PATH.
	FFmpeg, FFprobe string
	// Preset is ffmpeg's x264 preset; empty is "veryfast".
	Preset string
	// KeepAlive is how often a running transcode tells the server it is
	// still working (InProgress); default 15s, well under the AckWait.
	KeepAlive time.Duration
}

// Roles runs the handlers.
type Handlers struct{ d Deps }

// New wires the handlers.
func New(d Deps) *Handlers {
	if d.FFmpeg == "" {
		d.FFmpeg = "ffmpeg"
	}
	if d.FFprobe == "" {
		d.FFprobe = "ffprobe"
	}
	if d.Preset == "" {
		d.Preset = "veryfast"
	}
	if d.KeepAlive <= 0 {
		d.KeepAlive = 15 * time.Second
	}
	return &Handlers{d: d}
}

// fetchSource copies an item's source to a temporary file, since ffmpeg
// and ffprobe want a seekable file; the caller removes it.
func (ro *Handlers) fetchSource(ctx context.Context, owner, id string) (string, error) {
	rc, _, err := ro.d.Blobs.Get(ctx, domain.SourceKey(owner, id))
	if err != nil {
		if errors.Is(err, blob.ErrNotFound) {
			return "", consume.Permanentf("source of item %s is gone: %w", id, err)
		}
		return "", fmt.Errorf("open source of item %s: %w", id, err)
	}
	defer rc.Close()
	f, err := os.CreateTemp("", "jetfleet-media-src-*")
	if err != nil {
		return "", fmt.Errorf("spool source: %w", err)
	}
	defer f.Close()
	if _, err := io.Copy(f, rc); err != nil {
		os.Remove(f.Name())
		return "", fmt.Errorf("copy source of item %s: %w", id, err)
	}
	return f.Name(), nil
}

// probeResult is what ffprobe tells about a file.
type probeResult struct {
	Duration               float64
	Width, Height          int
	VideoCodec, AudioCodec string
}

// probe runs ffprobe; an error means the file is not a video it can read.
func (ro *Handlers) probe(ctx context.Context, path string) (probeResult, error) {
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, ro.d.FFprobe, "-v", "error", "-print_format", "json", "-show_format", "-show_streams", path)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		// ffprobe names the file: our temporary path, not the user's.
		msg := strings.ReplaceAll(firstLine(stderr.String(), err.Error()), path, "the file")
		return probeResult{}, fmt.Errorf("ffprobe: %s", msg)
	}
	var v struct {
		Streams []struct {
			CodecType string `json:"codec_type"`
			CodecName string `json:"codec_name"`
			Width     int    `json:"width"`
			Height    int    `json:"height"`
		} `json:"streams"`
		Format struct {
			Duration string `json:"duration"`
		} `json:"format"`
	}
	if err := json.Unmarshal(out, &v); err != nil {
		return probeResult{}, fmt.Errorf("ffprobe output: %w", err)
	}
	var p probeResult
	for _, s := range v.Streams {
		switch {
		case s.CodecType == "video" && p.VideoCodec == "" && s.Width > 0:
			p.VideoCodec, p.Width, p.Height = s.CodecName, s.Width, s.Height
		case s.CodecType == "audio" && p.AudioCodec == "":
			p.AudioCodec = s.CodecName
		}
	}
	p.Duration, _ = strconv.ParseFloat(v.Format.Duration, 64)
	switch {
	case p.VideoCodec == "":
		return p, errors.New("no video stream")
	case p.Duration <= 0:
		return p, errors.New("no duration: not a video file with frames to play")
	}
	return p, nil
}

// Probe handles MediaUploaded: it ffprobes the source, records what it
// found and publishes one job per rendition not larger than the source.
// A retried probe publishes the same message ids, so jobs are not doubled.
func (ro *Handlers) Probe(ctx context.Context, msg jetstream.Msg) error {
	var up subjects.MediaUpload
	if err := json.Unmarshal(msg.Data(), &up); err != nil {
		return consume.Permanentf("decode upload: %w", err)
	}
	if err := up.Validate(); err != nil {
		return consume.Permanentf("upload: %w", err)
	}
	if _, err := ro.d.Items.Get(ctx, up.Owner, up.ID); errors.Is(err, domain.ErrNotFound) {
		return nil // deleted by its owner before it was probed
	} else if err != nil {
		return err
	}
	path, err := ro.fetchSource(ctx, up.Owner, up.ID)
	if err != nil {
		return err
	}
	defer os.Remove(path)
	p, err := ro.probe(ctx, path)
	if err != nil {
		if ctx.Err() != nil {
			return err
		}
		reason := err.Error()
		if _, uerr := ro.d.Items.Update(ctx, up.Owner, up.ID, func(it *domain.Item) error {
			it.State, it.Reason = domain.StateFailed, domain.NotAVideoReadable+" ("+reason+")"
			return nil
		}); uerr != nil {
			return fmt.Errorf("record failed probe of %s: %w", up.ID, uerr)
		}
		return consume.Permanentf("item %s: %s: %s", up.ID, domain.NotAVideoReadable, reason)
	}
	it, err := ro.d.Items.Update(ctx, up.Owner, up.ID, func(it *domain.Item) error {
		it.Duration, it.Width, it.Height = p.Duration, p.Width, p.Height
		it.VideoCodec, it.AudioCodec = p.VideoCodec, p.AudioCodec
		if len(it.Renditions) == 0 { // a retried probe keeps the progress made
			for _, r := range domain.RenditionsFor(p.Height) {
				it.Renditions = append(it.Renditions, domain.RenditionState{Name: r.Name, Height: r.Height, State: domain.StateQueued})
			}
		}
		if it.State == domain.StateUploaded {
			it.State = domain.StateProcessing
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, r := range it.Renditions {
		if r.State == domain.StateQueued {
			if err := ro.d.Items.PublishJob(ctx, up.Owner, up.ID, r.Name, r.Attempt); err != nil {
				return err
			}
		}
	}
	ro.d.Log.Info("media probed", "item", up.ID, "height", p.Height, "duration", p.Duration, "renditions", len(it.Renditions))
	return nil
}

// Transcode handles one MediaJobs message: ffmpeg into HLS in a temporary
// folder, then every file to blob storage under fixed names. A redelivered
// job overwrites the same keys and removes leftovers, so segments are never
// duplicated.
func (ro *Handlers) Transcode(ctx context.Context, msg jetstream.Msg) error {
	var job subjects.MediaRendition
	if err := json.Unmarshal(msg.Data(), &job); err != nil {
		return consume.Permanentf("decode job: %w", err)
	}
	if err := job.Validate(); err != nil {
		return consume.Permanentf("job: %w", err)
	}
	err := ro.transcode(ctx, msg, job)
	if err == nil {
		return nil
	}
	last := false
	if md, merr := msg.Metadata(); merr == nil {
		last = md.NumDelivered >= subjects.MediaTranscodeMaxDeliver
	}
	if consume.IsPermanent(err) || last {
		reason := err.Error()
		if _, uerr := ro.d.Items.Update(context.WithoutCancel(ctx), job.Owner, job.ID, func(it *domain.Item) error {
			if r := it.Rendition(job.Rendition); r != nil {
				r.State, r.Reason = domain.StateFailed, reason
			}
			it.State, it.Reason = domain.StateFailed, job.Rendition+" failed"
			return nil
		}); uerr != nil && !errors.Is(uerr, domain.ErrNotFound) {
			ro.d.Log.Warn("record failed rendition", "item", job.ID, "rendition", job.Rendition, "err", uerr)
		}
	}
	return err
}

func (ro *Handlers) transcode(ctx context.Context, msg jetstream.Msg, job subjects.MediaRendition) error {
	rung, ok := domain.RenditionNamed(job.Rendition)
	if !ok {
		return consume.Permanentf("unknown rendition %q", job.Rendition)
	}
	it, err := ro.d.Items.Get(ctx, job.Owner, job.ID)
	if errors.Is(err, domain.ErrNotFound) {
		return nil // deleted by its owner meanwhile: nothing to make
	}
	if err != nil {
		return err
	}
	st := it.Rendition(job.Rendition)
	if st == nil {
		return consume.Permanentf("item %s has no rendition %s", job.ID, job.Rendition)
	}
	if st.Attempt > job.Attempt {
		return nil // superseded by a retry the owner asked for
	}
	if st.Height > 0 {
		rung.Height = st.Height
	}
	src, err := ro.fetchSource(ctx, job.Owner, job.ID)
	if err != nil {
		return err
	}
	defer os.Remove(src)
	dir, err := os.MkdirTemp("", "jetfleet-media-hls-*")
	if err != nil {
		return fmt.Errorf("temp folder: %w", err)
	}
	defer os.RemoveAll(dir)

	ro.setProgress(ctx, job, domain.StateTranscoding, 0)
	if err := ro.ffmpeg(ctx, msg, job, src, dir, rung, it.Duration); err != nil {
		return err
	}
	if err := ro.store(ctx, job, dir); err != nil {
		return err
	}
	_, err = ro.d.Items.Update(ctx, job.Owner, job.ID, func(it *domain.Item) error {
		if r := it.Rendition(job.Rendition); r != nil {
			r.State, r.Percent, r.Reason = domain.StateDone, 100, ""
		}
		return nil
	})
	if errors.Is(err, domain.ErrNotFound) {
		// Its owner deleted the item while ffmpeg ran: take back what
		// this job stored.
		return ro.removeAll(ctx, domain.RenditionPrefix(job.Owner, job.ID, job.Rendition))
	}
	if err != nil {
		return err
	}
	data, _ := json.Marshal(job)
	out := &nats.Msg{Subject: subjects.MediaRenderedSubject, Data: data, Header: nats.Header{}}
	out.Header.Set(jetstream.MsgIDHeader, fmt.Sprintf("media-rendered-%s-%s-%d", job.ID, job.Rendition, job.Attempt))
	if _, err := ro.d.JS.PublishMsg(ctx, out); err != nil {
		return fmt.Errorf("announce %s of %s: %w", job.Rendition, job.ID, err)
	}
	ro.d.Log.Info("media rendition done", "item", job.ID, "rendition", job.Rendition)
	return nil
}

// ffmpeg transcodes src into dir/index.m3u8 and dir/seg_NNNN.ts, reporting
// progress to the item record and keeping the message alive.
func (ro *Handlers) ffmpeg(ctx context.Context, msg jetstream.Msg, job subjects.MediaRendition, src, dir string, rung domain.Rendition, duration float64) error {
	args := []string{
		"-nostdin", "-y", "-v", "error", "-nostats", "-progress", "pipe:1",
		"-i", src,
		"-map", "0:v:0", "-map", "0:a:0?",
		"-vf", fmt.Sprintf("scale=-2:%d", rung.Height),
		"-c:v", "libx264", "-preset", ro.d.Preset, "-profile:v", "main", "-pix_fmt", "yuv420p",
		"-b:v", strconv.Itoa(rung.Bitrate), "-maxrate", strconv.Itoa(rung.Bitrate * 3 / 2), "-bufsize", strconv.Itoa(rung.Bitrate * 2),
		// A keyframe every 2 s so every segment starts with one.
		"-force_key_frames", "expr:gte(t,n_forced*2)",
		"-c:a", "aac", "-b:a", "128k", "-ac", "2",
		"-f", "hls", "-hls_time", "2", "-hls_playlist_type", "vod",
		"-hls_segment_filename", filepath.Join(dir, "seg_%04d.ts"),
		filepath.Join(dir, domain.PlaylistName),
	}
	cmd := exec.CommandContext(ctx, ro.d.FFmpeg, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return fmt.Errorf("ffmpeg pipe: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start ffmpeg: %w", err)
	}
	// Tell the server the job is being worked on for as long as ffmpeg
	// runs, output or not, so it is not redelivered to another worker.
	stopKeepAlive := make(chan struct{})
	keepAliveDone := make(chan struct{})
	go func() {
		defer close(keepAliveDone)
		tick := time.NewTicker(ro.d.KeepAlive)
		defer tick.Stop()
		for {
			select {
			case <-tick.C:
				if err := msg.InProgress(); err != nil {
					ro.d.Log.Warn("media: in-progress ack failed", "item", job.ID, "rendition", job.Rendition, "err", err)
				}
			case <-stopKeepAlive:
				return
			}
		}
	}()
	defer func() { close(stopKeepAlive); <-keepAliveDone }()
	lastPct := 0
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		v, ok := strings.CutPrefix(sc.Text(), "out_time_us=")
		if !ok || duration <= 0 {
			continue
		}
		us, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			continue
		}
		pct := min(99, int(float64(us)/1e6/duration*100))
		// Every 5 points: enough for the page, few KV writes.
		if pct >= lastPct+5 {
			lastPct = pct
			ro.setProgress(ctx, job, domain.StateTranscoding, pct)
		}
	}
	if err := cmd.Wait(); err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("ffmpeg %s of %s stopped: %w", job.Rendition, job.ID, ctx.Err())
		}
		msg := strings.NewReplacer(src, "the source", dir+"/", "").Replace(firstLine(stderr.String(), err.Error()))
		return consume.Permanentf("ffmpeg %s: %s", job.Rendition, msg)
	}
	return nil
}

// store uploads the playlist and segments, then removes objects of an
// earlier attempt that this one did not write.
func (ro *Handlers) store(ctx context.Context, job subjects.MediaRendition, dir string) error {
	prefix := domain.RenditionPrefix(job.Owner, job.ID, job.Rendition)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("read output: %w", err)
	}
	written := map[string]bool{}
	// Segments first, playlist last: a reader never sees a playlist
	// naming a segment not stored yet.
	var playlist os.DirEntry
	for _, e := range entries {
		if e.Name() == domain.PlaylistName {
			playlist = e
			continue
		}
		if err := ro.putFile(ctx, filepath.Join(dir, e.Name()), prefix+e.Name(), "video/mp2t"); err != nil {
			return err
		}
		written[prefix+e.Name()] = true
	}
	if playlist == nil {
		return consume.Permanentf("ffmpeg wrote no playlist for %s", job.Rendition)
	}
	if err := ro.putFile(ctx, filepath.Join(dir, domain.PlaylistName), prefix+domain.PlaylistName, "application/vnd.apple.mpegurl"); err != nil {
		return err
	}
	written[prefix+domain.PlaylistName] = true
	old, err := ro.d.Blobs.List(ctx, prefix)
	if err != nil {
		return fmt.Errorf("list %s: %w", prefix, err)
	}
	for _, o := range old {
		if !written[o.Key] {
			if err := ro.d.Blobs.Delete(ctx, o.Key); err != nil {
				return fmt.Errorf("remove leftover %s: %w", o.Key, err)
			}
		}
	}
	return nil
}

func (ro *Handlers) removeAll(ctx context.Context, prefix string) error {
	objs, err := ro.d.Blobs.List(ctx, prefix)
	if err != nil {
		return fmt.Errorf("list %s: %w", prefix, err)
	}
	for _, o := range objs {
		if err := ro.d.Blobs.Delete(ctx, o.Key); err != nil {
			return fmt.Errorf("delete %s: %w", o.Key, err)
		}
	}
	return nil
}

func (ro *Handlers) putFile(ctx context.Context, path, key, contentType string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("open %s: %w", path, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("stat %s: %w", path, err)
	}
	if err := ro.d.Blobs.Put(ctx, key, f, fi.Size(), contentType); err != nil {
		return fmt.Errorf("store %s: %w", key, err)
	}
	return nil
}

// setProgress records a rendition's state; a failure only delays what the
// page shows, so it is logged, not returned.
func (ro *Handlers) setProgress(ctx context.Context, job subjects.MediaRendition, state string, pct int) {
	_, err := ro.d.Items.Update(ctx, job.Owner, job.ID, func(it *domain.Item) error {
		if r := it.Rendition(job.Rendition); r != nil {
			r.State, r.Percent, r.Reason = state, pct, ""
		}
		// A rendition replayed from the DLQ by an operator: the item is
		// under way again unless another rendition is still failed.
		if it.State == domain.StateFailed && !slices.ContainsFunc(it.Renditions, func(r domain.RenditionState) bool { return r.State == domain.StateFailed }) {
			it.State, it.Reason = domain.StateProcessing, ""
		}
		return nil
	})
	if err != nil {
		ro.d.Log.Warn("media progress not recorded", "item", job.ID, "rendition", job.Rendition, "err", err)
	}
}

// Publish handles MediaRenderedSubject: once every rendition of the item is
// done it writes the master playlist and marks the item ready. Writing it
// again is harmless.
func (ro *Handlers) Publish(ctx context.Context, msg jetstream.Msg) error {
	var done subjects.MediaRendition
	if err := json.Unmarshal(msg.Data(), &done); err != nil {
		return consume.Permanentf("decode rendition: %w", err)
	}
	if err := done.Validate(); err != nil {
		return consume.Permanentf("rendition: %w", err)
	}
	it, err := ro.d.Items.Get(ctx, done.Owner, done.ID)
	if errors.Is(err, domain.ErrNotFound) {
		return nil // deleted by its owner meanwhile: nothing to publish
	}
	if err != nil {
		return err
	}
	if !it.AllDone() {
		return nil // the last rendition to finish publishes
	}
	master := MasterPlaylist(it)
	if err := ro.d.Blobs.Put(ctx, domain.MasterKey(it.Owner, it.ID), strings.NewReader(master), int64(len(master)), "application/vnd.apple.mpegurl"); err != nil {
		return fmt.Errorf("store master playlist of %s: %w", it.ID, err)
	}
	_, err = ro.d.Items.Update(ctx, it.Owner, it.ID, func(it *domain.Item) error {
		if it.AllDone() {
			it.State, it.Reason = domain.StateReady, ""
		}
		return nil
	})
	if err == nil {
		ro.d.Log.Info("media published", "item", it.ID)
	}
	return err
}

// MasterPlaylist lists an item's renditions, relative to the master's
// folder, smallest first.
func MasterPlaylist(it domain.Item) string {
	var b strings.Builder
	b.WriteString("#EXTM3U\n#EXT-X-VERSION:3\n")
	for _, r := range it.Renditions {
		rung, _ := domain.RenditionNamed(r.Name)
		width := 0
		if it.Height > 0 {
			width = (it.Width*r.Height/it.Height + 1) &^ 1
		}
		codecs := "avc1.4d401f"
		if it.AudioCodec != "" {
			codecs += ",mp4a.40.2"
		}
		fmt.Fprintf(&b, "#EXT-X-STREAM-INF:BANDWIDTH=%d,RESOLUTION=%dx%d,CODECS=\"%s\"\n%s/%s\n",
			rung.Bitrate+128_000, width, r.Height, codecs, r.Name, domain.PlaylistName)
	}
	return b.String()
}

func firstLine(s, fallback string) string {
	s = strings.TrimSpace(s)
	if s == "" {
		return fallback
	}
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return s
}
