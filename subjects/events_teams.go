package subjects

import (
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Breakout teams, help flags and team submissions of the live event app
// (seed 001, "Team Chat" and "Analytics and exports").
const (
	// EventsTeamsBucket holds, per event:
	//   split.<event-id>                  the team split (JSON: teams and their
	//                                     members by registration id); re-run
	//                                     until published, then frozen;
	//                                     changed only by compare-and-set
	//   submission.<event-id>.<team-id>   the team's submission (JSON, with its
	//                                     version and contributors by
	//                                     registration id)
	EventsTeamsBucket = "EVENTS_TEAMS"
	// EventsHelpBucket holds help flags:
	//   <event-id>.<flag-id>          the flag (JSON: raised, claimed, resolved)
	//   open.<event-id>.<team-id>     the id of the team's open flag (one at a
	//                                 time; created only if absent)
	// Edges with admin sockets of an event watch <event-id>.* and push each
	// change to those sockets.
	EventsHelpBucket = "EVENTS_HELP"
	// EventsHelpTTL is how long a help flag is kept: longer than any event
	// lasts (14 days), so dashboards and exports of a finished event still
	// show them; the times are in ClickHouse through the engagement stream.
	EventsHelpTTL = 30 * 24 * time.Hour
)

// EventsHelpWatch is the key filter of every help flag of event eid.
func EventsHelpWatch(eid string) string { return eid + ".*" }

func eventsTeamsAssets(o Options) assetSet {
	r := o.replicas()
	return assetSet{KeyValues: []jetstream.KeyValueConfig{
		{Bucket: EventsTeamsBucket, Description: "Live event teams (split per event) and team submissions", History: 5, Storage: jetstream.FileStorage, Replicas: r},
		{Bucket: EventsHelpBucket, Description: "Live event help flags (<event>.<flag>) and each team's open flag", History: 5, TTL: EventsHelpTTL, Storage: jetstream.FileStorage, Replicas: r},
	}}
}
