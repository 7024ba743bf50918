// Package natsserver runs an embedded NATS server with JetStream. `jetfleet dev`
// uses it as the whole backbone of a one-process install; tests use it (through
// internal/testenv) as a real server on loopback.
package natsserver

import (
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"jetfleet/subjects"
)

// Config describes one embedded server.
type Config struct {
	Name     string // server name; must be unique within a cluster
	StoreDir string // JetStream file storage
	Host     string // client listen host; default 127.0.0.1
	Port     int    // client port; -1 picks a free one
	HTTPPort int    // monitoring port; 0 disables, -1 picks a free one

	// Cluster, when ClusterPort is set, joins the server to a cluster.
	ClusterName string
	ClusterPort int      // -1 picks a free one
	Routes      []string // nats-route://host:port of the other members

	// Username and Password, when set, are required of every client.
	Username, Password string

	Logger server.Logger // nil: the server logs nothing
}

// Start starts the server, with the subject mappings jetfleet needs of its
// account (subjects.EnricherMappingSource), and waits until it accepts clients and JetStream is
// enabled (in a cluster: until the meta leader is known is the caller's job).
func Start(cfg Config) (*server.Server, error) {
	if cfg.StoreDir == "" {
		return nil, errors.New("natsserver: StoreDir is required")
	}
	host := cfg.Host
	if host == "" {
		host = "127.0.0.1"
	}
	opts := &server.Options{
		ServerName: cfg.Name,
		Host:       host,
		Port:       cfg.Port,
		JetStream:  true,
		StoreDir:   cfg.StoreDir,
		NoSigs:     true,
		NoLog:      cfg.Logger == nil,
		Username:   cfg.Username,
		Password:   cfg.Password,
	}
	if cfg.HTTPPort != 0 {
		opts.HTTPHost = host
		opts.HTTPPort = cfg.HTTPPort
	}
	if cfg.ClusterPort != 0 {
		opts.Cluster.Name = cfg.ClusterName
		opts.Cluster.Host = host
		opts.Cluster.Port = cfg.ClusterPort
		routes, err := parseRoutes(cfg.Routes)
		if err != nil {
			return nil, err
		}
		opts.Routes = routes
	}
	ns, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("natsserver: new server: %w", err)
	}
	// The mapping that partitions the Enricher's input is server
	// configuration (a self-hosted server has it in its config file,
	// deploy/nats/nats.conf): every client of this server is in the global
	// account.
	if err := ns.GlobalAccount().AddMapping(subjects.EnricherMappingSource, subjects.EnricherMappingDestination); err != nil {
		return nil, fmt.Errorf("natsserver: enricher mapping: %w", err)
	}
	if cfg.Logger != nil {
		ns.SetLoggerV2(cfg.Logger, false, false, false)
	}
	ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		ns.Shutdown()
		return nil, fmt.Errorf("natsserver: %s not ready for connections within 10s", host)
	}
	return ns, nil
}

func parseRoutes(routes []string) ([]*url.URL, error) {
	out := make([]*url.URL, 0, len(routes))
	for _, r := range routes {
		u, err := url.Parse(r)
		if err != nil {
			return nil, fmt.Errorf("natsserver: route %q: %w", r, err)
		}
		out = append(out, u)
	}
	return out, nil
}
