package subjects

import (
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// RateLimitStream counts actions per key and time window for the limits
// every edge must share (sign-in mails per inbox, registrations per client,
// API key creation…): a JetStream counter stream, where each publish with
// Nats-Incr adds to a subject's total and the acknowledgement carries the
// new total, so one round trip both counts and answers.
const RateLimitStream = "RATELIMITS"

const rateLimitPrefix = "ratelimit."

// RateLimitMaxWindow is the longest window a shared limit may count over:
// the stream forgets counts older than that.
const RateLimitMaxWindow = time.Hour

// RateLimitSubject is the counter of key (already hashed to a subject-safe
// token) in scope for the window starting at windowStart (Unix seconds).
func RateLimitSubject(scope, key string, windowStart int64) string {
	return rateLimitPrefix + scope + "." + key + "." + strconv.FormatInt(windowStart, 10)
}

func rateLimitAssets(o Options) assetSet {
	return assetSet{Streams: []jetstream.StreamConfig{{
		Name:            RateLimitStream,
		Description:     "Shared rate-limit counters: ratelimit.<scope>.<key hash>.<window start>",
		Subjects:        []string{rateLimitPrefix + ">"},
		Retention:       jetstream.LimitsPolicy,
		MaxAge:          RateLimitMaxWindow,
		Storage:         jetstream.FileStorage,
		Replicas:        o.replicas(),
		AllowMsgCounter: true,
		// Only the latest total of a counter matters: one message per
		// subject keeps the stream small under hot limits (counter reads).
		MaxMsgsPerSubject: 1,
		AllowDirect:       true,
	}}}
}
