package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"jetfleet/internal/testenv"
	"jetfleet/subjects"
	"jetfleet/workers/enricher"
)

// An operator finds a user's shard with `jetfleet enricher where`, from the
// shard count recorded on INPUT (3 here, not the default), and the user
// loaded by `jetfleet enricher load` is in the bucket it names. The load
// reports bad lines by number, goes on past them and sums up.
func TestEnricherWhereNamesTheShardThatHoldsTheLoadedUser(t *testing.T) {
	srv := testenv.StartNATS(t)
	_, js := srv.Connect(t)
	ctx := testenv.Context(t, 30*time.Second)
	if err := subjects.Provision(ctx, js, subjects.Options{EnricherStateShards: 3}); err != nil {
		t.Fatal(err)
	}
	vars := map[string]string{"NATS_URL": srv.URL, "LOG_LEVEL": "warn"}
	file := filepath.Join(t.TempDir(), "snapshot.ndjson")
	snapshot := strings.Join([]string{
		`{"uuid":"user-42","country":"PT"}`,
		`{"uuid":"user-43"`,
		`{"user_uuid":"user-42","language":"en","subscription_type":"pro"}`,
		`{"uuid":"user-44","active":"yes"}`,
		`{"uuid":"user-45","country":"NO"}`,
	}, "\n")
	if err := os.WriteFile(file, []byte(snapshot), 0o600); err != nil {
		t.Fatal(err)
	}
	load := runCmd(t, vars, "enricher", "load", file)
	for _, want := range []string{"line 2: not one JSON object", "line 4: invalid event: active: must be a boolean",
		"loaded 2 users and 1 subscriptions from 5 lines in", "2 lines rejected"} {
		if !strings.Contains(load, want) {
			t.Errorf("load output lacks %q:\n%s", want, load)
		}
	}

	where := runCmd(t, vars, "enricher", "where", "user-42")
	sh := subjects.EnricherShardOf("user-42", 3)
	bucket := subjects.EnricherUsersBucket(sh)
	for _, want := range []string{
		"state shard:   " + strconv.Itoa(sh) + " of 3",
		"nats kv get " + bucket + " user-42",
		"nats kv get " + subjects.EnricherSubsBucket(sh) + " user-42.<language>",
		"consumer " + subjects.EnricherPartitionConsumer(subjects.EnricherPartitionOf("user-42")),
	} {
		if !strings.Contains(where, want) {
			t.Errorf("where output lacks %q:\n%s", want, where)
		}
	}
	kv, err := js.KeyValue(ctx, bucket)
	if err != nil {
		t.Fatal(err)
	}
	if e, err := kv.Get(ctx, "user-42"); err != nil || !strings.Contains(string(e.Value()), `"country":"PT"`) {
		t.Errorf("user-42 not in %s, the bucket where names: %v", bucket, err)
	}
}

func TestLoadProgressShowsRowsRateAndTimeLeft(t *testing.T) {
	rows, rate, left := loadFigures(enricher.LoadStats{Users: 600, Subscriptions: 400, Bytes: 250}, 1000, 2*time.Second)
	if got := progressLine(rows, rate, left, 3); got != "1000 rows, 500 rows/s, 6s left, 3 lines rejected" {
		t.Errorf("progress line %q", got)
	}
	if _, _, left := loadFigures(enricher.LoadStats{Users: 1, Bytes: 10}, 0, time.Second); left != -1 {
		t.Errorf("time left of an input of unknown size: %v", left)
	}
}
