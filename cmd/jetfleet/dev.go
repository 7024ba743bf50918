package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"jetfleet/analytics"
	"jetfleet/analytics/localserver"
	"jetfleet/internal/jsmetrics"
	"jetfleet/internal/natsserver"
	"jetfleet/subjects"
	"jetfleet/workers/consume"
)

// runDev runs the whole fleet in one process: an embedded NATS server with
// JetStream, a supervised local ClickHouse (unless CLICKHOUSE_URL is set),
// the edge and every worker role.
func runDev(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	fs := flag.NewFlagSet("dev", flag.ContinueOnError)
	natsAddr := fs.String("nats-listen", "127.0.0.1:4222", "embedded NATS client address (for the nats CLI)")
	monitorPort := fs.Int("nats-monitor-port", 8222, "embedded NATS monitoring port on 127.0.0.1 (0: off)")
	expose := fs.Bool("expose", false, "serve the site on every interface (default: 127.0.0.1 only; /outbox shows everyone's sign-in links)")
	demo := fs.Bool("demo", false, "demo: a local YouTube stand-in with growing channels (ticks every few seconds), and an Events event that is live now with a local HLS stream (ffmpeg)")
	cfg, err := loadConfig(fs, args, getenv)
	if err != nil {
		return err
	}
	log := newLogger(cfg.LogLevel).With("process", "dev")
	host, portStr, err := net.SplitHostPort(*natsAddr)
	if err != nil {
		return fmt.Errorf("--nats-listen: %w", err)
	}
	var natsPort int
	fmt.Sscan(portStr, &natsPort)

	cfg.HTTPAddr = devHTTPAddr(cfg.HTTPAddr, getenv("HTTP_ADDR") != "" || flagSet(fs, "http-addr"), *expose)
	if *expose {
		log.Warn("--expose: the site, including /outbox with everyone's sign-in links, is reachable from other machines")
	}
	// The site's port is taken first, so links in mail (and the Stripe
	// stand-in's return and webhook URLs) name the port dev really serves,
	// also when the kernel picks it (":0").
	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", cfg.HTTPAddr, err)
	}
	defer ln.Close()
	if getenv("BASE_URL") == "" && !flagSet(fs, "base-url") {
		cfg.BaseURL = "http://localhost:" + strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	}
	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		return fmt.Errorf("DATA_DIR: %w", err)
	}
	// The embedded server requires a user too: anyone else on this machine
	// could otherwise read sessions, sign-in links and exports off it.
	natsPassword, err := dataDirSecret(cfg.DataDir, "nats.password")
	if err != nil {
		return err
	}
	cfg.NATSUser, cfg.NATSPassword, cfg.NATSCreds, cfg.NATSNKey = devNATSUser, natsPassword, "", ""
	ns, err := natsserver.Start(natsserver.Config{
		Name: "jetfleet-dev", StoreDir: filepath.Join(cfg.DataDir, "nats"),
		Host: host, Port: natsPort, HTTPPort: *monitorPort,
		Username: cfg.NATSUser, Password: cfg.NATSPassword,
	})
	if err != nil {
		return err
	}
	defer ns.WaitForShutdown()
	defer ns.Shutdown()
	cfg.NATSURL = ns.ClientURL()

	nc, js, err := connectNATS(cfg, "dev", log)
	if err != nil {
		return err
	}
	if err := subjects.Provision(ctx, js, provisionOptions(cfg)); err != nil {
		return err
	}
	if err := indexCounterOwners(ctx, js, stdout); err != nil {
		return err
	}
	var (
		demoText  string
		demoStart time.Time
		live      *liveDemo
	)
	if *demo {
		if demoText, demoStart, err = startDemo(ctx, cfg, js, log.With("component", "demo")); err != nil {
			return err
		}
		var liveText string
		if live, liveText, err = startLiveDemo(ctx, cfg, js, log.With("component", "demo-live")); err != nil {
			return err
		}
		defer live.stop()
		demoText += liveText
	}
	reg := newRegistry()
	chDesc := cfg.ClickHouseURL
	if cfg.ClickHouseURL == "" {
		chPassword, err := dataDirSecret(cfg.DataDir, "clickhouse.password")
		if err != nil {
			return err
		}
		ch, err := localserver.Start(ctx, localserver.Config{
			Dir:      filepath.Join(cfg.DataDir, "clickhouse"),
			Password: chPassword,
			Logger:   log.With("component", "clickhouse"),
		})
		if err != nil {
			return fmt.Errorf("start local clickhouse (or set CLICKHOUSE_URL): %w", err)
		}
		defer ch.Stop()
		cfg.ClickHouseURL = ch.DSN()
		chDesc = fmt.Sprintf("%s (local server, data in %s)", mask("CLICKHOUSE_URL", ch.DSN()), ch.Dir())
	} else {
		chDesc = mask("CLICKHOUSE_URL", chDesc)
	}
	chConn, err := openClickHouse(ctx, cfg.ClickHouseURL, true, log)
	if err != nil {
		return err
	}
	defer chConn.Close()

	secret, err := devSecret(cfg)
	if err != nil {
		return err
	}
	keys, err := deriveSiteKeys(secret)
	if err != nil {
		return err
	}
	tokens, err := tokenBox(cfg, true)
	if err != nil {
		return err
	}
	blobs, blobHandler, err := openBlobs(ctx, cfg, js, keys.BlobURL)
	if err != nil {
		return err
	}
	if *demo {
		if err := plantDemoHistory(ctx, chConn, blobs, demoStart, log.With("component", "demo")); err != nil {
			return err
		}
	}
	blobDesc := "JetStream object store " + subjects.BlobStore
	if cfg.S3Endpoint != "" {
		blobDesc = "S3 " + cfg.S3Endpoint + "/" + cfg.S3Bucket
	}

	reg.MustRegister(jsmetrics.New(js, log))
	chConn = analytics.InstrumentInserts(chConn, analytics.NewInsertMetrics(reg))
	metrics := consume.NewMetrics(reg)
	edge, closeSite, err := buildSite(ctx, cfg, backbone{nc: nc, js: js, ch: chConn, blobs: blobs, blobHandler: blobHandler, reg: reg, tokens: tokens},
		keys.CSRF, edgeMode{dev: true, demo: *demo}, log.With("component", "edge"))
	if err != nil {
		return err
	}
	defer closeSite()
	if live != nil {
		edge = live.wrap(edge)
	}
	roles, err := roleNames(cfg.Roles, allRoles(cfg))
	if err != nil {
		return err
	}

	g, gctx := errgroup.WithContext(ctx)
	if *demo {
		pay, err := eventsPostConfig(cfg).Payments()
		if err != nil {
			return err
		}
		g.Go(func() error {
			// A failed seed leaves the demo without its past event, not
			// the install without its site.
			if err := seedPostEventDemo(gctx, js, pay, log.With("component", "demo")); err != nil && gctx.Err() == nil {
				log.Warn("demo: seed the past event", "err", err)
			}
			return nil
		})
	}
	g.Go(func() error {
		return serveListener(gctx, ln, edge, log, func(a net.Addr) {
			printDevSummary(stdout, cfg, siteURL(cfg, a), ns.ClientURL(), host, *monitorPort, chDesc, blobDesc, roles)
			writeDemo(stdout, demoText)
		})
	})
	g.Go(func() error {
		return consume.RunRoles(gctx, roles, consume.Deps{JS: js, ClickHouse: chConn, Blobs: blobs, Log: log, Registerer: reg, Tokens: tokens}, metrics)
	})
	err = g.Wait()
	if derr := nc.Drain(); derr != nil {
		log.Warn("drain nats connection", "err", derr)
	}
	log.Info("stopped")
	return err
}

func siteURL(cfg *config, a net.Addr) string {
	_, port, _ := net.SplitHostPort(a.String())
	host, _, _ := net.SplitHostPort(cfg.HTTPAddr)
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "localhost"
	}
	return "http://" + net.JoinHostPort(host, port)
}

// devHTTPAddr is where dev serves the site. A development install shows
// every user's sign-in links at /outbox, so unless an address was given or
// --expose asked for it, only this machine may reach it.
func devHTTPAddr(addr string, explicit, expose bool) string {
	if explicit || expose {
		return addr
	}
	if _, port, err := net.SplitHostPort(addr); err == nil {
		return net.JoinHostPort("127.0.0.1", port)
	}
	return addr
}

// devNATSUser is the one user of the embedded server; its password is
// generated into DATA_DIR/nats.password.
const devNATSUser = "jetfleet"

func printDevSummary(w io.Writer, cfg *config, site, natsURL, monitorHost string, monitorPort int, ch, blobs string, roles []consume.Role) {
	var names []string
	for _, r := range roles {
		names = append(names, r.Name)
	}
	monitor := "off"
	if monitorPort > 0 {
		monitor = fmt.Sprintf("http://%s", net.JoinHostPort(monitorHost, fmt.Sprint(monitorPort)))
	}
	fmt.Fprintf(w, `
jetfleet dev is running
  site        %s
  NATS        %s   monitoring %s   user %s, password in %s
  ClickHouse  %s
  blobs       %s
  workers     %s
  CRMs        HubSpot %s  Salesforce %s  (stand-ins unless configured: their pages list the exported contacts)
  data        %s
Ctrl-C stops everything.

For the nats CLI (README recipes), once:
  nats context save jetfleet-dev --server %s --user %s --password %s --select

`, site, natsURL, monitor, devNATSUser, filepath.Join(cfg.DataDir, "nats.password"), ch, blobs, strings.Join(names, ", "), cfg.HubSpotAPIBase, cfg.SalesforceLoginURL, cfg.DataDir,
		natsURL, devNATSUser, cfg.NATSPassword)
}

func flagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}
