package subjects

import (
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// KV buckets of accounts, shared by every product (one sign-in for the site).
const (
	// AccountsUsersBucket holds users under id.<user-id> and an index
	// email.<sha256-of-normalised-email> → user id.
	AccountsUsersBucket = "USERS"
	// AccountsMagicLinksBucket holds sign-in links under the SHA-256 of their token,
	// each key with its own short TTL; redeeming deletes the key.
	AccountsMagicLinksBucket = "MAGICLINKS"
)

func accountAssets(o Options) assetSet {
	r := o.replicas()
	return assetSet{KeyValues: []jetstream.KeyValueConfig{
		{
			Bucket:      AccountsUsersBucket,
			Description: "Users by id, and the email → id index",
			History:     1,
			Storage:     jetstream.FileStorage,
			Replicas:    r,
		},
		{
			Bucket:         AccountsMagicLinksBucket,
			Description:    "Single-use sign-in links by token hash; each expires on its own",
			History:        1,
			Storage:        jetstream.FileStorage,
			Replicas:       r,
			LimitMarkerTTL: time.Minute,
		},
	}}
}

// SessionRecord is the value of a signed-in session in SessionsBucket
// (keyed by the SHA-256 of the cookie's id): written by the edge, read by
// the edge and by the gdpr role, which ends a deleted user's sessions.
type SessionRecord struct {
	UserID  string    `json:"user_id"`
	Email   string    `json:"email"`
	Created time.Time `json:"created"`
}
