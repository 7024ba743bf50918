package media_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"jetfleet/internal/blob"
	domain "jetfleet/internal/media"
	"jetfleet/internal/testenv"
	"jetfleet/subjects"
	"jetfleet/workers/consume"
	"jetfleet/workers/deadletter"
	workermedia "jetfleet/workers/media"
)

const owner = "0123456789abcdef01234567"

type pipeline struct {
	js      jetstream.JetStream
	items   *domain.Service
	blobs   blob.Store
	metrics *consume.Metrics
	// failFlag, while the file exists, makes the ffmpeg the roles run
	// fail as an encoder crash would; slowFlag makes it wait 3 s first,
	// as a long transcode would.
	failFlag, slowFlag string
}

// startPipeline runs the three Media roles on the shared consumer runtime
// against an in-process JetStream server and its object store.
func startPipeline(t *testing.T) *pipeline {
	t.Helper()
	return startRoles(t, "media-probe", "media-transcode", "media-publish")
}

// startRoles runs only the named roles.
func startRoles(t *testing.T, only ...string) *pipeline {
	t.Helper()
	for _, prog := range []string{"ffmpeg", "ffprobe"} {
		if _, err := exec.LookPath(prog); err != nil {
			t.Fatalf("%s is needed (make deps-test installs it): %v", prog, err)
		}
	}
	_, js := testenv.JetStream(t)
	ctx := testenv.Context(t, 2*time.Minute)
	if err := subjects.Provision(ctx, js, subjects.Options{}); err != nil {
		t.Fatal(err)
	}
	signer, err := blob.NewURLSigner([]byte("0123456789abcdef0123456789abcdef"))
	if err != nil {
		t.Fatal(err)
	}
	blobs, err := blob.NewObjectStore(ctx, js, subjects.BlobStore, signer, "http://edge")
	if err != nil {
		t.Fatal(err)
	}
	items, err := domain.Open(ctx, js, blobs)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	p := &pipeline{js: js, items: items, blobs: blobs, failFlag: filepath.Join(dir, "fail"), slowFlag: filepath.Join(dir, "slow")}
	wrapper := filepath.Join(dir, "ffmpeg")
	script := fmt.Sprintf("#!/bin/sh\nif [ -e %q ]; then echo 'simulated encoder crash' >&2; exit 1; fi\nif [ -e %q ]; then sleep 3; fi\nexec ffmpeg \"$@\"\n", p.failFlag, p.slowFlag)
	if err := os.WriteFile(wrapper, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	roles := workermedia.New(workermedia.Deps{JS: js, Items: items, Blobs: blobs, Log: log, FFmpeg: wrapper, Preset: "ultrafast", KeepAlive: 200 * time.Millisecond})
	p.metrics = consume.NewMetrics(prometheus.NewRegistry())
	runCtx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, c := range []struct {
		name, consumer string
		h              consume.Handler
	}{
		{"media-probe", subjects.MediaProbeConsumer, roles.Probe},
		{"media-transcode", subjects.MediaTranscodeConsumer, roles.Transcode},
		{"media-publish", subjects.MediaPublishConsumer, roles.Publish},
	} {
		if !slices.Contains(only, c.name) {
			continue
		}
		cons := consume.New(js, consume.Config{Role: c.name, Stream: subjects.MediaStream, Consumer: c.consumer,
			Batch: 4, Concurrency: 2, FetchWait: 200 * time.Millisecond, BackoffMin: 50 * time.Millisecond, BackoffMax: 200 * time.Millisecond}, c.h, p.metrics, log)
		wg.Add(1)
		go func() { defer wg.Done(); cons.Run(runCtx) }()
	}
	t.Cleanup(func() { stop(); wg.Wait() })
	return p
}

// video makes a small test video (ffmpeg's testsrc) of the given size.
func video(t *testing.T, width, height int) []byte {
	t.Helper()
	out := filepath.Join(t.TempDir(), "in.mp4")
	cmd := exec.Command("ffmpeg", "-nostdin", "-v", "error", "-f", "lavfi",
		"-i", fmt.Sprintf("testsrc=size=%dx%d:rate=12:duration=2", width, height),
		"-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", out)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make test video: %v: %s", err, b)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (p *pipeline) upload(t *testing.T, body []byte) (domain.Item, bool) {
	t.Helper()
	it, created, err := p.items.Upload(testenv.Context(t, 30*time.Second), owner, "clip.mp4", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	return it, created
}

// waitState polls the item until it reaches state, printing the last
// record seen on timeout.
func (p *pipeline) waitState(t *testing.T, id, state string) domain.Item {
	t.Helper()
	var last domain.Item
	deadline := time.Now().Add(90 * time.Second)
	for {
		it, err := p.items.Get(context.Background(), owner, id)
		if err == nil {
			last = it
			if it.State == state {
				return it
			}
		}
		if time.Now().After(deadline) {
			b, _ := json.Marshal(last)
			t.Fatalf("item %s not %s within 90s; last seen: %s (err %v)", id, state, b, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// blobKeys lists the keys under prefix.
func (p *pipeline) blobKeys(t *testing.T, prefix string) []string {
	t.Helper()
	infos, err := p.blobs.List(context.Background(), prefix)
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, i := range infos {
		keys = append(keys, i.Key)
	}
	return keys
}

// renditionHeight copies one rendition's playlist and segments to disk and
// ffprobes the playlist.
func (p *pipeline) renditionHeight(t *testing.T, it domain.Item, rendition string) int {
	t.Helper()
	dir := t.TempDir()
	prefix := domain.RenditionPrefix(it.Owner, it.ID, rendition)
	for _, k := range p.blobKeys(t, prefix) {
		rc, _, err := p.blobs.Get(context.Background(), k)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(rc)
		rc.Close()
		if err := os.WriteFile(filepath.Join(dir, strings.TrimPrefix(k, prefix)), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out, err := exec.Command("ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries", "stream=height",
		"-of", "csv=p=0", filepath.Join(dir, domain.PlaylistName)).CombinedOutput()
	if err != nil {
		t.Fatalf("ffprobe %s: %v: %s", rendition, err, out)
	}
	var h int
	fmt.Sscan(strings.TrimSpace(string(out)), &h)
	return h
}

func (p *pipeline) read(t *testing.T, key string) string {
	t.Helper()
	rc, _, err := p.blobs.Get(context.Background(), key)
	if err != nil {
		t.Fatalf("read %s: %v", key, err)
	}
	defer rc.Close()
	b, _ := io.ReadAll(rc)
	return string(b)
}

func TestUploadBecomesOneHLSRenditionPerRungNotLargerThanTheSourceAndAMasterPlaylist(t *testing.T) {
	p := startPipeline(t)
	it, created := p.upload(t, video(t, 1280, 720))
	if !created {
		t.Fatal("first upload reported as a duplicate")
	}
	it = p.waitState(t, it.ID, domain.StateReady)
	if it.Width != 1280 || it.Height != 720 || it.VideoCodec != "h264" || it.Duration < 1.5 {
		t.Errorf("probe recorded %dx%d %s %.2fs, want 1280x720 h264 ~2s", it.Width, it.Height, it.VideoCodec, it.Duration)
	}
	var names []string
	for _, r := range it.Renditions {
		names = append(names, r.Name)
		if r.State != domain.StateDone || r.Percent != 100 {
			t.Errorf("rendition %s: %s %d%%, want done 100%%", r.Name, r.State, r.Percent)
		}
	}
	if !slices.Equal(names, []string{"480p", "720p"}) {
		t.Fatalf("renditions %v, want 480p and 720p (no 1080p from a 720p source)", names)
	}
	for _, r := range []struct {
		name   string
		height int
	}{{"480p", 480}, {"720p", 720}} {
		if h := p.renditionHeight(t, it, r.name); h != r.height {
			t.Errorf("%s rendition is %d px high, want %d", r.name, h, r.height)
		}
	}
	master := p.read(t, domain.MasterKey(owner, it.ID))
	for _, want := range []string{"#EXTM3U", "RESOLUTION=854x480", "480p/index.m3u8", "RESOLUTION=1280x720", "720p/index.m3u8"} {
		if !strings.Contains(master, want) {
			t.Errorf("master playlist lacks %q:\n%s", want, master)
		}
	}
	if strings.Contains(master, "1080p") {
		t.Errorf("master playlist lists 1080p for a 720p source:\n%s", master)
	}
}

func TestCorruptUploadIsDeadLetteredWithItsReasonAndShownAsNotAVideo(t *testing.T) {
	p := startPipeline(t)
	junk := make([]byte, 4096)
	rand.Read(junk)
	it, _ := p.upload(t, junk)
	it = p.waitState(t, it.ID, domain.StateFailed)
	if !strings.HasPrefix(it.Reason, domain.NotAVideoReadable) || strings.Contains(it.Reason, os.TempDir()) {
		t.Errorf("item reason %q, want it to start with %q and name no server path", it.Reason, domain.NotAVideoReadable)
	}
	var entries []deadletter.Entry
	testenv.Eventually(t, 10*time.Second, "the upload is dead-lettered", func() bool {
		entries, _ = deadletter.List(context.Background(), p.js, subjects.MediaStream, 10)
		return len(entries) == 1
	})
	e := entries[0]
	if e.Origin != subjects.MediaUploaded || !strings.Contains(e.Error, domain.NotAVideoReadable) || !strings.Contains(e.Error, it.ID) {
		t.Errorf("dead letter: subject %q error %q; want %s with the reason and item id", e.Origin, e.Error, subjects.MediaUploaded)
	}
}

func TestSameFileUploadedTwiceIsTheSameItemAndIsNotTranscodedAgain(t *testing.T) {
	p := startPipeline(t)
	body := video(t, 640, 480)
	first, _ := p.upload(t, body)
	p.waitState(t, first.ID, domain.StateReady)
	second, created := p.upload(t, body)
	if created || second.ID != first.ID {
		t.Fatalf("second upload: created %v id %s; want the existing item %s", created, second.ID, first.ID)
	}
	items, err := p.items.List(context.Background(), owner)
	if err != nil || len(items) != 1 {
		t.Fatalf("owner has %d items (err %v), want 1", len(items), err)
	}
	info, err := p.js.Stream(context.Background(), subjects.MediaStream)
	if err != nil {
		t.Fatal(err)
	}
	// One upload, one job (480p), one rendered: nothing from the second.
	if got := info.CachedInfo().State.LastSeq; got != 3 {
		t.Errorf("MEDIA stream received %d messages, want 3 (one upload, one job, one rendered)", got)
	}
}

func TestRedeliveredTranscodeJobOverwritesItsSegmentsWithoutDuplicates(t *testing.T) {
	p := startPipeline(t)
	it, _ := p.upload(t, video(t, 640, 480))
	it = p.waitState(t, it.ID, domain.StateReady)
	prefix := domain.RenditionPrefix(owner, it.ID, "480p")
	before := p.blobKeys(t, prefix)
	// A leftover an earlier, longer attempt could have left behind.
	if err := p.blobs.Put(context.Background(), prefix+"seg_9999.ts", strings.NewReader("stale"), 5, "video/mp2t"); err != nil {
		t.Fatal(err)
	}
	done := testutil.ToFloat64(p.metrics.Processed("media-transcode"))
	// The same job again, as the server redelivers it when an ack is lost.
	data, _ := json.Marshal(subjects.MediaRendition{ID: it.ID, Owner: owner, Rendition: "480p"})
	if _, err := p.js.Publish(context.Background(), subjects.MediaJobs("480p"), data); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 60*time.Second, "the repeated job is handled", func() bool {
		return testutil.ToFloat64(p.metrics.Processed("media-transcode")) > done
	})
	after := p.blobKeys(t, prefix)
	if !slices.Equal(before, after) {
		t.Errorf("keys after the repeated job:\n%v\nwant the same as before:\n%v", after, before)
	}
}

func TestFailedRenditionShowsItsReasonAndItsOwnerCanRetryIt(t *testing.T) {
	p := startPipeline(t)
	if err := os.WriteFile(p.failFlag, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	it, _ := p.upload(t, video(t, 640, 480))
	it = p.waitState(t, it.ID, domain.StateFailed)
	r := it.Rendition("480p")
	if r == nil || r.State != domain.StateFailed || !strings.Contains(r.Reason, "simulated encoder crash") {
		t.Fatalf("480p after the crash: %+v; want failed with ffmpeg's message", r)
	}
	testenv.Eventually(t, 10*time.Second, "the job is dead-lettered", func() bool {
		entries, _ := deadletter.List(context.Background(), p.js, subjects.MediaStream, 10)
		return len(entries) == 1 && entries[0].Origin == subjects.MediaJobs("480p")
	})
	os.Remove(p.failFlag)
	if err := p.items.Retry(context.Background(), owner, it.ID, "480p"); err != nil {
		t.Fatal(err)
	}
	it = p.waitState(t, it.ID, domain.StateReady)
	if r := it.Rendition("480p"); r.State != domain.StateDone || r.Reason != "" || r.Attempt != 1 {
		t.Errorf("480p after the retry: %+v; want done, no reason, attempt 1", r)
	}
	if err := p.items.Retry(context.Background(), owner, it.ID, "480p"); err == nil {
		t.Error("retrying a done rendition was accepted")
	}
}

func TestFailedRenditionReplayedFromTheDLQByAnOperatorFinishesTheItem(t *testing.T) {
	p := startPipeline(t)
	if err := os.WriteFile(p.failFlag, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	it, _ := p.upload(t, video(t, 640, 480))
	p.waitState(t, it.ID, domain.StateFailed)
	testenv.Eventually(t, 10*time.Second, "the job is dead-lettered", func() bool {
		entries, _ := deadletter.List(context.Background(), p.js, subjects.MediaStream, 10)
		return len(entries) == 1
	})
	os.Remove(p.failFlag)
	// What `jetfleet dlq replay --all --stream MEDIA` does.
	if n, err := deadletter.ReplayAll(context.Background(), p.js, subjects.MediaStream, ""); err != nil || n != 1 {
		t.Fatalf("replayed %d (err %v), want 1", n, err)
	}
	it = p.waitState(t, it.ID, domain.StateReady)
	if r := it.Rendition("480p"); r.State != domain.StateDone || r.Reason != "" {
		t.Errorf("480p after the replay: %+v; want done without a reason", r)
	}
}

func TestRetriedProbePublishesEachRenditionJobOnce(t *testing.T) {
	p := startRoles(t, "media-probe") // no transcoder: the jobs stay in the stream
	it, _ := p.upload(t, video(t, 1280, 720))
	testenv.Eventually(t, 30*time.Second, "the upload is probed", func() bool {
		return testutil.ToFloat64(p.metrics.Processed("media-probe")) == 1
	})
	// The same upload again, as when a probe's ack is lost.
	data, _ := json.Marshal(subjects.MediaUpload{ID: it.ID, Owner: owner})
	if _, err := p.js.Publish(context.Background(), subjects.MediaUploaded, data); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 30*time.Second, "the repeated upload is probed", func() bool {
		return testutil.ToFloat64(p.metrics.Processed("media-probe")) == 2
	})
	stream, err := p.js.Stream(context.Background(), subjects.MediaStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := stream.Info(context.Background(), jetstream.WithSubjectFilter(subjects.MediaJobs("*")))
	if err != nil {
		t.Fatal(err)
	}
	if got := info.State.Subjects; got[subjects.MediaJobs("480p")] != 1 || got[subjects.MediaJobs("720p")] != 1 || len(got) != 2 {
		t.Errorf("jobs waiting by subject: %v; want one 480p and one 720p", got)
	}
}

func TestLongTranscodeKeepsItsJobWithInProgressAcks(t *testing.T) {
	p := startPipeline(t)
	// An ack wait far shorter than the transcode: without InProgress the
	// job would be redelivered while ffmpeg still works.
	ctx := context.Background()
	cons, err := p.js.Consumer(ctx, subjects.MediaStream, subjects.MediaTranscodeConsumer)
	if err != nil {
		t.Fatal(err)
	}
	cfg := cons.CachedInfo().Config
	cfg.AckWait = time.Second
	if _, err := p.js.UpdateConsumer(ctx, subjects.MediaStream, cfg); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p.slowFlag, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	it, _ := p.upload(t, video(t, 640, 480))
	p.waitState(t, it.ID, domain.StateReady)
	info, err := cons.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.NumRedelivered != 0 || info.Delivered.Consumer != 1 {
		t.Errorf("transcode consumer delivered %d, redelivered %d; want the one job delivered once", info.Delivered.Consumer, info.NumRedelivered)
	}
}

func TestTranscodeReportsProgressBetweenQueuedAndDone(t *testing.T) {
	p := startPipeline(t)
	kv, err := p.js.KeyValue(context.Background(), subjects.MediaBucket)
	if err != nil {
		t.Fatal(err)
	}
	w, err := kv.WatchAll(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	it, _ := p.upload(t, video(t, 640, 480))
	p.waitState(t, it.ID, domain.StateReady)
	// Every write to the record, in order, until the one marking it ready.
	var seen []string
	timeout := time.After(30 * time.Second)
	for ready := false; !ready; {
		select {
		case e := <-w.Updates():
			if e == nil {
				continue // end of the initial values
			}
			var rec domain.Item
			if json.Unmarshal(e.Value(), &rec) != nil {
				continue
			}
			if r := rec.Rendition("480p"); r != nil {
				seen = append(seen, fmt.Sprintf("%s %d", r.State, r.Percent))
			}
			ready = rec.State == domain.StateReady
		case <-timeout:
			t.Fatalf("the watch did not reach the ready record; 480p states seen: %v", seen)
		}
	}
	between := slices.ContainsFunc(seen, func(s string) bool {
		var state string
		var pct int
		fmt.Sscanf(s, "%s %d", &state, &pct)
		return state == domain.StateTranscoding && pct > 0 && pct < 100
	})
	if !between {
		t.Errorf("480p states seen: %v; want a transcoding percent between 0 and 100", seen)
	}
}

func TestItemDeletedWhileTranscodingLeavesNoFilesBehind(t *testing.T) {
	p := startPipeline(t)
	if err := os.WriteFile(p.slowFlag, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	it, _ := p.upload(t, video(t, 640, 480))
	testenv.Eventually(t, 30*time.Second, "480p transcoding", func() bool {
		got, err := p.items.Get(context.Background(), owner, it.ID)
		r := got.Rendition("480p")
		return err == nil && r != nil && r.State == domain.StateTranscoding
	})
	// The owner's data is deleted while ffmpeg runs (3 s here).
	if err := p.items.Forget(context.Background(), owner); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 30*time.Second, "the transcode job finishes", func() bool {
		return testutil.ToFloat64(p.metrics.Processed("media-transcode")) == 1
	})
	if left := p.blobKeys(t, "media/"+owner+"/"); len(left) != 0 {
		t.Errorf("files left after the item was deleted: %v", left)
	}
}

func TestUploadOfADeletedItemIsDroppedWithoutADeadLetter(t *testing.T) {
	p := startRoles(t, "media-probe")
	data, _ := json.Marshal(subjects.MediaUpload{ID: "0123456789abcdef01234567", Owner: owner})
	if _, err := p.js.Publish(context.Background(), subjects.MediaUploaded, data); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 30*time.Second, "the upload is handled", func() bool {
		return testutil.ToFloat64(p.metrics.Processed("media-probe"))+testutil.ToFloat64(p.metrics.DeadLettered("media-probe")) == 1
	})
	if n := testutil.ToFloat64(p.metrics.DeadLettered("media-probe")); n != 0 {
		t.Errorf("%v dead letters for an item its owner deleted, want none", n)
	}
}

func TestJobOfADeletedItemIsDroppedWithoutADeadLetter(t *testing.T) {
	p := startRoles(t, "media-transcode")
	data, _ := json.Marshal(subjects.MediaRendition{ID: "0123456789abcdef01234567", Owner: owner, Rendition: "480p"})
	if _, err := p.js.Publish(context.Background(), subjects.MediaJobs("480p"), data); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 30*time.Second, "the job is handled", func() bool {
		return testutil.ToFloat64(p.metrics.Processed("media-transcode"))+testutil.ToFloat64(p.metrics.DeadLettered("media-transcode")) == 1
	})
	if n := testutil.ToFloat64(p.metrics.DeadLettered("media-transcode")); n != 0 {
		t.Errorf("%v dead letters for an item its owner deleted, want none", n)
	}
}
