package counter

import "fmt"

func curlExamples(d pageData) string {
	key := "$COUNTER_KEY"
	return fmt.Sprintf(`export COUNTER_KEY=jfc_...   # from "Create an API key" or: jetfleet counter apikey create --tenant T

# countViewEvent(videoId)
curl -s -X POST %[1]s/api/counter/v1/events -H "X-API-Key: %[2]s" \
  -d '{"video_id":"%[3]s"}'

# processEvent(videoId, type, value), counted once per idempotency key
curl -s -X POST %[1]s/api/counter/v1/events -H "X-API-Key: %[2]s" \
  -d '{"video_id":"%[3]s","type":"LIKE","value":5,"idempotency_key":"like-42"}'

# processEvent(listOfEvents): valid items accepted, invalid ones listed with index and reason
curl -s -X POST %[1]s/api/counter/v1/batch -H "X-API-Key: %[2]s" \
  -d '{"events":[{"video_id":"%[3]s"},{"video_id":"%[3]s","type":"SHARE"},{"type":"VIEW"}]}'

# getViewCount / getCount / getStats over [start, end), with an hourly series
curl -s "%[1]s/api/counter/v1/videos/%[3]s/views?start=%[4]s" -H "X-API-Key: %[2]s"
curl -s "%[1]s/api/counter/v1/videos/%[3]s/count?type=LIKE&start=%[4]s" -H "X-API-Key: %[2]s"
curl -s "%[1]s/api/counter/v1/videos/%[3]s/stats?type=LIKE&function=AVG&start=%[4]s&step=hour" -H "X-API-Key: %[2]s"
`, d.Base, key, d.Sample, d.Interval)
}
