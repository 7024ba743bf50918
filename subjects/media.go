package subjects

import (
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Media pipeline: an upload is announced on MediaUploaded; the probe role
// reads it and publishes one MediaJob per rendition on MediaJobs(rendition);
// the transcode role turns each into HLS and announces MediaRendered; the
// publish role writes the master playlist when every rendition is done.
// All three subjects live in one work-queue stream, each with its own
// consumer, so each role scales by running more processes.
const (
	// MediaStream is the work queue of the Media pipeline.
	MediaStream = "MEDIA"
	// MediaUploaded carries one MediaUpload.
	MediaUploaded = "media.uploaded"
	// MediaRenderedSubject carries one MediaRendition that is done.
	MediaRenderedSubject = "media.rendered"
	mediaJobPrefix       = "media.job."

	// MediaProbeConsumer is the probe role's durable consumer.
	MediaProbeConsumer = "media-probe"
	// MediaTranscodeConsumer is the transcode role's durable consumer.
	MediaTranscodeConsumer = "media-transcode"
	// MediaPublishConsumer is the publish role's durable consumer.
	MediaPublishConsumer = "media-publish"

	// MediaBucket keeps one record per media item (owner, content hash,
	// probe result, state of each rendition), keyed by MediaKey.
	MediaBucket = "MEDIA_ITEMS"

	// MediaTranscodeMaxDeliver is how often a transcode job is tried before
	// it is dead-lettered; the role marks the rendition failed on the last.
	MediaTranscodeMaxDeliver = 4
)

// MediaJobs returns the subject of the transcode jobs of one rendition
// ("480p"), or of every rendition for "*".
func MediaJobs(rendition string) string { return mediaJobPrefix + rendition }

// MediaKey is the MediaBucket key of an item: items are filed under their
// owner so a user's uploads are one filtered listing.
func MediaKey(owner, id string) string { return "owner." + owner + "." + id }

// MediaOwnerKeys matches every MediaBucket key of one owner.
func MediaOwnerKeys(owner string) string { return "owner." + owner + ".*" }

// MediaUpload announces a stored source video, published with
// Nats-Msg-Id "media-uploaded-<id>".
type MediaUpload struct {
	ID    string `json:"id"`
	Owner string `json:"owner"`
}

// MediaRendition names one rendition of one item: a transcode job on
// MediaJobs(rendition) (Nats-Msg-Id "media-job-<id>-<rendition>-<attempt>"),
// or a finished one on MediaRenderedSubject.
type MediaRendition struct {
	ID        string `json:"id"`
	Owner     string `json:"owner"`
	Rendition string `json:"rendition"`
	// Attempt counts retries asked for by the owner; it makes a retry's
	// message id differ from the first job's.
	Attempt int `json:"attempt,omitempty"`
}

// Validate reports what is missing.
func (m MediaUpload) Validate() error {
	var errs []error
	if m.ID == "" {
		errs = append(errs, errors.New("id: required"))
	}
	if m.Owner == "" {
		errs = append(errs, errors.New("owner: required"))
	}
	return errors.Join(errs...)
}

// Validate reports what is missing.
func (m MediaRendition) Validate() error {
	err := MediaUpload{ID: m.ID, Owner: m.Owner}.Validate()
	if m.Rendition == "" {
		err = errors.Join(err, fmt.Errorf("rendition: required"))
	}
	return err
}

func mediaAssets(o Options) assetSet {
	r := o.replicas()
	consumer := func(name, filter, desc string, ackWait time.Duration, maxDeliver int) jetstream.ConsumerConfig {
		return jetstream.ConsumerConfig{
			Durable: name, Description: desc, FilterSubject: filter,
			AckPolicy: jetstream.AckExplicitPolicy, AckWait: ackWait,
			MaxDeliver: maxDeliver, MaxAckPending: 64, Replicas: r,
		}
	}
	return assetSet{
		Streams: []jetstream.StreamConfig{{
			Name:        MediaStream,
			Description: "Media pipeline work: uploads to probe, one transcode job per rendition, renditions to publish",
			Subjects:    []string{MediaUploaded, MediaJobs("*"), MediaRenderedSubject},
			Retention:   jetstream.WorkQueuePolicy,
			MaxAge:      7 * 24 * time.Hour,
			Storage:     jetstream.FileStorage,
			Replicas:    r,
			Duplicates:  time.Hour,
		}},
		Consumers: map[string][]jetstream.ConsumerConfig{MediaStream: {
			consumer(MediaProbeConsumer, MediaUploaded, "media probe role: ffprobe the upload, fan out one job per rendition", time.Minute, 5),
			// Transcoding takes minutes; the role sends InProgress while
			// ffmpeg works, so AckWait only bounds a silent worker.
			consumer(MediaTranscodeConsumer, MediaJobs("*"), "media transcode role: ffmpeg one rendition into HLS", 2*time.Minute, MediaTranscodeMaxDeliver),
			consumer(MediaPublishConsumer, MediaRenderedSubject, "media publish role: master playlist once every rendition is done", time.Minute, 8),
		}},
		KeyValues: []jetstream.KeyValueConfig{{
			Bucket:      MediaBucket,
			Description: "Media items: owner, content hash, probe result, state of each rendition",
			History:     1,
			Storage:     jetstream.FileStorage,
			Replicas:    r,
		}},
	}
}
