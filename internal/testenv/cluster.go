package testenv

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"net"
	"strings"
	"testing"

	"jetfleet/internal/natsserver"
)

// Cluster is n in-process NATS servers clustered over loopback routes, each
// with its own JetStream store.
type Cluster struct {
	Nodes []*NATS
}

// StartCluster starts an n-node JetStream cluster; every node is shut down
// when the test ends. Streams with n replicas can be created once a meta
// leader is elected: use WaitForJetStream.
func StartCluster(t testing.TB, n int) *Cluster {
	t.Helper()
	ports := make([]int, n)
	for i := range ports {
		ports[i] = freePort(t)
	}
	routes := make([]string, n)
	for i, p := range ports {
		routes[i] = fmt.Sprintf("nats-route://127.0.0.1:%d", p)
	}
	c := &Cluster{}
	for i := range n {
		ns, err := natsserver.Start(natsserver.Config{
			Name:        fmt.Sprintf("node-%d", i+1),
			StoreDir:    t.TempDir(),
			Port:        -1,
			ClusterName: "test",
			ClusterPort: ports[i],
			Routes:      routes,
		})
		if err != nil {
			t.Fatalf("start cluster node %d: %v", i+1, err)
		}
		t.Cleanup(func() {
			ns.Shutdown()
			ns.WaitForShutdown()
		})
		c.Nodes = append(c.Nodes, &NATS{Server: ns, URL: ns.ClientURL()})
	}
	return c
}

// URLs lists every node's client URL, starting with node first, so a client
// prefers that node and fails over to the others.
func (c *Cluster) URLs(first int) string {
	urls := []string{c.Nodes[first].URL}
	for i, n := range c.Nodes {
		if i != first {
			urls = append(urls, n.URL)
		}
	}
	return strings.Join(urls, ",")
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// WaitForJetStream blocks until the cluster answers JetStream API requests
// (a meta leader is elected). Requests sent before then go unanswered until
// their context ends, so each try gets a short timeout of its own.
func WaitForJetStream(t testing.TB, js jetstream.JetStream) {
	t.Helper()
	Eventually(t, 30*time.Second, "jetstream cluster answers API requests", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_, err := js.AccountInfo(ctx)
		return err == nil
	})
}
