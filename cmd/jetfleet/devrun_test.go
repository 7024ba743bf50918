package main

import (
	"context"
	"regexp"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"jetfleet/internal/testenv"
)

// devRun is a `jetfleet dev` a test started on a fresh data dir, as a
// newcomer's `make run` would, with what its summary printed.
type devRun struct {
	Site, NATSURL, NATSUser, NATSPassword string
	Out                                   *testenv.Buffer
}

var (
	devSite    = regexp.MustCompile(`site\s+(http://\S+)`)
	devContext = regexp.MustCompile(`nats context save \S+ --server (\S+) --user (\S+) --password (\S+) --select`)
)

// startDev runs `jetfleet dev` with args (free ports unless args say
// otherwise) until the test ends, and waits for its summary.
func startDev(t *testing.T, args ...string) *devRun {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	d := &devRun{Out: &testenv.Buffer{}}
	done := make(chan error, 1)
	all := append([]string{"dev", "--http-addr", "127.0.0.1:0", "--nats-listen", "127.0.0.1:-1", "--nats-monitor-port", "0"}, args...)
	go func() {
		done <- run(ctx, all, env(map[string]string{"DATA_DIR": t.TempDir(), "LOG_LEVEL": "warn"}), d.Out)
	}()
	t.Cleanup(func() { cancel(); <-done })
	testenv.Eventually(t, 60*time.Second, "dev prints its summary", func() bool {
		select {
		case err := <-done:
			t.Fatalf("dev exited early: %v\n%s", err, d.Out.String())
		default:
		}
		return devSite.MatchString(d.Out.String()) && devContext.MatchString(d.Out.String())
	})
	d.Site = devSite.FindStringSubmatch(d.Out.String())[1]
	m := devContext.FindStringSubmatch(d.Out.String())
	d.NATSURL, d.NATSUser, d.NATSPassword = m[1], m[2], m[3]
	return d
}

// connect signs in to dev's NATS with the credentials it printed.
func (d *devRun) connect(t *testing.T) (*nats.Conn, jetstream.JetStream) {
	return testenv.Connect(t, d.NATSURL, nats.UserInfo(d.NATSUser, d.NATSPassword))
}

// vars is the environment an operator's jetfleet command needs against it.
func (d *devRun) vars() map[string]string {
	return map[string]string{"NATS_URL": d.NATSURL, "NATS_USER": d.NATSUser, "NATS_PASSWORD": d.NATSPassword, "LOG_LEVEL": "warn"}
}
