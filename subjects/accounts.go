package subjects

import (
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// KV buckets of accounts, shared by every product (one sign-in for the site).
const (
	// UsersBucket holds users under id.<user-id> and an index
	// email.<sha256-of-normalised-email> → user id.
	UsersBucket = "USERS"
	// MagicLinksBucket holds sign-in links under the SHA-256 of their token,
	// each key with its own short TTL; redeeming deletes the key.
	MagicLinksBucket = "MAGICLINKS"
)

func accountAssets(o Options) assetSet {
	r := o.replicas()
	return assetSet{KeyValues: []jetstream.KeyValueConfig{
		{
			Bucket:      UsersBucket,
			Description: "Users by id, and the email → id index",
			History:     1,
			Storage:     jetstream.FileStorage,
			Replicas:    r,
		},
		{
			Bucket:         MagicLinksBucket,
			Description:    "Single-use sign-in links by token hash; each expires on its own",
			History:        1,
			Storage:        jetstream.FileStorage,
			Replicas:       r,
			LimitMarkerTTL: time.Minute,
		},
	}}
}
