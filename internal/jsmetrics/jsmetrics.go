// Package jsmetrics exports the state of JetStream's streams and consumers
// as Prometheus metrics: messages and bytes kept, the last sequence (whose
// rate is a stream's ingest rate), and each consumer's backlog. Operators
// see the same numbers with `nats stream report` and `nats consumer report`;
// this puts them on a dashboard next to the workers' own metrics.
package jsmetrics

import (
	"context"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
)

// Collector reads stream and consumer info on each scrape: one listing of
// all streams and one of each stream's consumers, bounded by a timeout, so a
// scrape never hangs on an unavailable cluster.
type Collector struct {
	js      jetstream.JetStream
	timeout time.Duration
	log     *slog.Logger

	messages, bytes, lastSeq         *prometheus.Desc
	pending, ackPending, redelivered *prometheus.Desc
	up                               *prometheus.Desc
}

// New returns a collector for the account js is connected to.
func New(js jetstream.JetStream, log *slog.Logger) *Collector {
	stream := []string{"stream"}
	consumer := []string{"stream", "consumer"}
	return &Collector{
		js: js, timeout: 3 * time.Second, log: log,
		messages:    prometheus.NewDesc("jetfleet_stream_messages", "Messages a stream keeps now (DLQ: dead letters waiting).", stream, nil),
		bytes:       prometheus.NewDesc("jetfleet_stream_bytes", "Bytes a stream keeps now.", stream, nil),
		lastSeq:     prometheus.NewDesc("jetfleet_stream_last_sequence", "Sequence of a stream's newest message; its rate is the stream's ingest rate.", stream, nil),
		pending:     prometheus.NewDesc("jetfleet_consumer_pending", "Messages a consumer has not been delivered yet (lag).", consumer, nil),
		ackPending:  prometheus.NewDesc("jetfleet_consumer_ack_pending", "Messages delivered to a consumer and not acknowledged yet.", consumer, nil),
		redelivered: prometheus.NewDesc("jetfleet_consumer_redelivered", "Messages a consumer is redelivering now.", consumer, nil),
		up:          prometheus.NewDesc("jetfleet_jetstream_up", "1 when the last scrape could read JetStream's state.", nil, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.messages, c.bytes, c.lastSeq, c.pending, c.ackPending, c.redelivered, c.up} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	up := 1.0
	streams := c.js.ListStreams(ctx)
	var names []string
	for info := range streams.Info() {
		name := info.Config.Name
		names = append(names, name)
		ch <- prometheus.MustNewConstMetric(c.messages, prometheus.GaugeValue, float64(info.State.Msgs), name)
		ch <- prometheus.MustNewConstMetric(c.bytes, prometheus.GaugeValue, float64(info.State.Bytes), name)
		ch <- prometheus.MustNewConstMetric(c.lastSeq, prometheus.CounterValue, float64(info.State.LastSeq), name)
	}
	if err := streams.Err(); err != nil {
		c.log.Warn("metrics: list streams", "err", err)
		up = 0
	}
	for _, name := range names {
		s, err := c.js.Stream(ctx, name)
		if err != nil {
			up = 0
			continue
		}
		consumers := s.ListConsumers(ctx)
		for info := range consumers.Info() {
			ch <- prometheus.MustNewConstMetric(c.pending, prometheus.GaugeValue, float64(info.NumPending), name, info.Name)
			ch <- prometheus.MustNewConstMetric(c.ackPending, prometheus.GaugeValue, float64(info.NumAckPending), name, info.Name)
			ch <- prometheus.MustNewConstMetric(c.redelivered, prometheus.GaugeValue, float64(info.NumRedelivered), name, info.Name)
		}
		if err := consumers.Err(); err != nil {
			up = 0
		}
	}
	ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, up)
}
