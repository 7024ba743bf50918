package enricher

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// multiGetter reads the last message of many subjects of a stream with one
// batched direct get (multi_last) per call, every call answered on one
// wildcard reply subscription.
//
// Why not jetstreamext.GetLastMsgsFor: it subscribes a fresh inbox per call,
// and nats.go gives every synchronous subscription a 64K-slot channel
// (512 KiB of pointers, zeroed and then scanned by the GC). At one call per
// shard and kind per fetched batch that was a third of the Enricher's CPU
// (bench profile: makechan under SubscribeSync 22%, GC assist on top).
type multiGetter struct {
	nc     *nats.Conn
	api    string // the JetStream API prefix, ending in "."
	prefix string // this getter's reply subjects: prefix + request id
	sub    *nats.Subscription

	mu      sync.Mutex
	next    uint64
	waiting map[string]*multiGet
}

// multiGet is one call in flight.
type multiGet struct {
	msgs []*nats.Msg
	done chan error // buffered: the reply handler never blocks on it
}

// errMultiGetUnsupported is returned by a server that answers a
// multi_last request without batch headers (before 2.11).
var errMultiGetUnsupported = errors.New("batched direct get not supported by the server (needs nats-server 2.11+)")

func newMultiGetter(js jetstream.JetStream) (*multiGetter, error) {
	g := &multiGetter{nc: js.Conn(), api: apiPrefix(js.Options()), waiting: map[string]*multiGet{}}
	g.prefix = g.nc.NewRespInbox() + "."
	sub, err := g.nc.Subscribe(g.prefix+"*", g.reply)
	if err != nil {
		return nil, fmt.Errorf("subscribe state replies: %w", err)
	}
	// Replies of many concurrent calls share this subscription: do not let
	// the default pending limits drop any under a burst.
	if err := sub.SetPendingLimits(-1, -1); err != nil {
		_ = sub.Unsubscribe()
		return nil, fmt.Errorf("state replies: %w", err)
	}
	g.sub = sub
	return g, nil
}

func apiPrefix(o jetstream.JetStreamOptions) string {
	switch {
	case o.APIPrefix != "":
		return strings.TrimSuffix(o.APIPrefix, ".") + "."
	case o.Domain != "":
		return "$JS." + o.Domain + ".API."
	default:
		return jetstream.DefaultAPIPrefix
	}
}

// close stops the reply subscription.
func (g *multiGetter) close() error { return g.sub.Unsubscribe() }

// reply routes one reply message to its call. Replies of one call arrive in
// order on this subscription's single delivery goroutine.
func (g *multiGetter) reply(m *nats.Msg) {
	id := m.Subject[len(g.prefix):]
	g.mu.Lock()
	c := g.waiting[id]
	g.mu.Unlock()
	if c == nil {
		return // the call gave up (timeout)
	}
	if len(m.Data) == 0 {
		switch status := m.Header.Get("Status"); status {
		case "":
		case "204", "404": // end of batch; none of the subjects has a message
			c.finish(g, id, nil)
			return
		default:
			c.finish(g, id, fmt.Errorf("direct get: status %s %s", status, m.Header.Get("Description")))
			return
		}
	}
	if m.Header.Get(jetstream.SubjectHeader) == "" {
		c.finish(g, id, errMultiGetUnsupported)
		return
	}
	c.msgs = append(c.msgs, m)
}

func (c *multiGet) finish(g *multiGetter, id string, err error) {
	g.forget(id)
	c.done <- err
}

// lastMsgs returns the last message of each of subjects (at most 1024, the
// server's limit) in stream; subjects with no message are left out. Each
// returned message's subject is the stored subject (header Nats-Subject),
// not the reply subject.
func (g *multiGetter) lastMsgs(ctx context.Context, stream string, subjects []string) ([]*nats.Msg, error) {
	req, err := json.Marshal(struct {
		MultiLast []string `json:"multi_last"`
	}{subjects})
	if err != nil {
		return nil, fmt.Errorf("encode direct get: %w", err)
	}
	c := &multiGet{msgs: make([]*nats.Msg, 0, len(subjects)), done: make(chan error, 1)}
	g.mu.Lock()
	g.next++
	id := strconv.FormatUint(g.next, 36)
	g.waiting[id] = c
	g.mu.Unlock()
	if err := g.nc.PublishRequest(g.api+"DIRECT.GET."+stream, g.prefix+id, req); err != nil {
		g.forget(id)
		return nil, fmt.Errorf("direct get %s: %w", stream, err)
	}
	select {
	case err := <-c.done:
		if err != nil {
			return nil, fmt.Errorf("direct get %s: %w", stream, err)
		}
	case <-ctx.Done():
		g.forget(id)
		return nil, fmt.Errorf("direct get %s: %w", stream, ctx.Err())
	}
	for _, m := range c.msgs {
		m.Subject = m.Header.Get(jetstream.SubjectHeader)
	}
	return c.msgs, nil
}

func (g *multiGetter) forget(id string) {
	g.mu.Lock()
	delete(g.waiting, id)
	g.mu.Unlock()
}
