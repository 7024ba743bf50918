// Package testenv starts the real servers that jetfleet's tests run against on
// loopback: an in-process NATS server with JetStream per test, and (in sibling
// files) ClickHouse and an S3-compatible server once per package. A server
// that cannot start fails the test with the reason; nothing is skipped
// silently.
package testenv

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"jetfleet/internal/natsserver"
)

// NATS is an in-process NATS server with JetStream, listening on a free
// loopback port, with its data in the test's temp dir.
type NATS struct {
	Server *server.Server
	URL    string
}

// StartNATS starts a server that is shut down when the test ends.
func StartNATS(t testing.TB) *NATS {
	t.Helper()
	ns, err := natsserver.Start(natsserver.Config{StoreDir: t.TempDir(), Port: -1})
	if err != nil {
		t.Fatalf("start nats server: %v", err)
	}
	t.Cleanup(func() {
		ns.Shutdown()
		ns.WaitForShutdown()
	})
	return &NATS{Server: ns, URL: ns.ClientURL()}
}

// Connect opens a client connection closed when the test ends.
func (n *NATS) Connect(t testing.TB) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	return Connect(t, n.URL)
}

// Connect opens a client connection to url, closed when the test ends.
func Connect(t testing.TB, url string, opts ...nats.Option) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		t.Fatalf("connect to nats %s: %v", url, err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatalf("jetstream context: %v", err)
	}
	return nc, js
}

// JetStream is the common case: a fresh server and one connection to it.
func JetStream(t testing.TB) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	return StartNATS(t).Connect(t)
}

// Context returns a context cancelled when the test ends or after d.
func Context(t testing.TB, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// Eventually polls cond every 10ms until it is true or d passes, then fails
// the test with msg. Tests use it instead of sleeping. Where msg alone would
// not tell what went wrong, use EventuallyState.
func Eventually(t testing.TB, d time.Duration, msg string, cond func() bool) {
	t.Helper()
	EventuallyState(t, d, msg, func() (bool, any) { return cond(), nil })
}

// EventuallyState is Eventually for a condition that also returns what it
// observed: on timeout the test fails with msg and the last state observed
// (printed with %+v), as nats-server's checkFor does, so a failure says how
// far things got.
func EventuallyState(t testing.TB, d time.Duration, msg string, cond func() (done bool, observed any)) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		done, observed := cond()
		if done {
			return
		}
		if time.Now().After(deadline) {
			if observed == nil {
				t.Fatalf("not within %v: %s", d, msg)
			}
			t.Fatalf("not within %v: %s; last observed: %+v", d, msg, observed)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
