package deploy_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.yaml.in/yaml/v3"

	"jetfleet/analytics/localserver"
	"jetfleet/internal/testenv"
)

// renderedCompose is docker-compose.yml as the compose CLI resolves it
// (anchors merged, .env interpolated): the same services, commands and
// environments a `docker compose up` would run.
type renderedCompose struct {
	Services map[string]composeService `yaml:"services"`
}

type composeService struct {
	Image       string            `yaml:"image"`
	Build       any               `yaml:"build"`
	Command     []string          `yaml:"command"`
	Environment map[string]string `yaml:"environment"`
	Volumes     []string          `yaml:"volumes"`
	Profiles    []string          `yaml:"profiles"`
	Deploy      struct {
		Replicas int `yaml:"replicas"`
	} `yaml:"deploy"`
	Healthcheck struct {
		Test []string `yaml:"test"`
	} `yaml:"healthcheck"`
}

func renderCompose(t *testing.T, envFile string) renderedCompose {
	t.Helper()
	cli := composeCLI(t)
	args := append(append([]string{}, cli[1:]...), "-f", composeFile, "--env-file", envFile, "config")
	cmd := exec.Command(cli[0], args...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("render %s: %v", composeFile, err)
	}
	var c renderedCompose
	if err := yaml.Unmarshal(out, &c); err != nil {
		t.Fatalf("parse rendered compose file: %v", err)
	}
	return c
}

// topology is the compose file's services running on this machine: NATS
// nodes in this test process (from deploy/nats/nats.conf), ClickHouse and
// MinIO as local servers with the credentials compose gives them, and every
// jetfleet service as a process of the real binary with the environment
// compose passes, service host names mapped to loopback addresses.
type topology struct {
	t       *testing.T
	compose renderedCompose
	bin     string
	hosts   map[string]string // "nats-1:4222" → "127.0.0.1:port"
	nats    map[string]*server.Server
	procs   map[string][]*process
}

type process struct {
	name    string
	cmd     *exec.Cmd
	out     *testenv.Buffer
	http    string // HTTP_ADDR on loopback
	metrics string // METRICS_ADDR on loopback
	killed  bool
}

// TestComposeTopologyRunsAsLocalProcessesAndLosesNothing is the self-hosting
// proof on a machine without Docker: everything docker-compose.yml runs, from
// its own files, with its authentication. It signs in through one edge and
// reads through the other, counts events through the Counter API while one
// NATS node and one worker die, and checks that every acknowledged event is
// counted. A service whose command, environment or config drifts from what
// runs here fails it, because what runs here is read from the compose file.
func TestComposeTopologyRunsAsLocalProcessesAndLosesNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the whole compose topology")
	}
	envFile := filepath.Join(t.TempDir(), "topology.env")
	if err := os.WriteFile(envFile, []byte(generatedEnv()), 0o600); err != nil {
		t.Fatal(err)
	}
	top := &topology{t: t, compose: renderCompose(t, envFile), hosts: map[string]string{},
		nats: map[string]*server.Server{}, procs: map[string][]*process{}}
	top.buildBinary()
	top.startNATS()
	top.startClickHouse()
	top.startMinIO()

	// NATS requires every client to authenticate, and services cannot
	// reshape the backbone.
	if nc, err := nats.Connect(top.natsURL()); err == nil {
		nc.Close()
		t.Fatal("the NATS cluster let a client in without credentials")
	}

	top.runOneShot("migrate")
	for _, name := range top.longRunning() {
		top.start(name)
	}
	for name, ps := range top.procs {
		for _, p := range ps {
			top.waitHealthy(name, p)
		}
	}
	top.checkServicePermissions("worker-all")

	edge1, edge2 := top.procs["edge-1"][0], top.procs["edge-2"][0]
	top.signInThroughOneEdgeReadThroughTheOther("http://"+edge1.http, "http://"+edge2.http)
	top.countEventsWhileANodeAndAWorkerDie("http://"+edge1.http, "http://"+edge2.http)
	top.checkMonitoringScrapesWhatTheDashboardQueries()
}

// checkMonitoringScrapesWhatTheDashboardQueries reads the monitoring
// profile's Prometheus config and Grafana dashboards from the files compose
// mounts: Prometheus must scrape every edge and worker service on its
// METRICS_ADDR port, and every jetfleet metric a dashboard queries must be
// exported by some running process.
func (top *topology) checkMonitoringScrapesWhatTheDashboardQueries() {
	t := top.t
	prom := top.compose.Services["prometheus"]
	var promCfg struct {
		ScrapeConfigs []struct {
			StaticConfigs []struct {
				Targets []string `yaml:"targets"`
			} `yaml:"static_configs"`
			DNSSDConfigs []struct {
				Names []string `yaml:"names"`
				Port  int      `yaml:"port"`
			} `yaml:"dns_sd_configs"`
		} `yaml:"scrape_configs"`
	}
	if err := yaml.Unmarshal(readFile(t, mountedFile(t, prom, "/etc/prometheus/prometheus.yml")), &promCfg); err != nil {
		t.Fatalf("prometheus.yml: %v", err)
	}
	scraped := map[string]bool{}
	for _, sc := range promCfg.ScrapeConfigs {
		for _, st := range sc.StaticConfigs {
			for _, target := range st.Targets {
				scraped[target] = true
			}
		}
		for _, dns := range sc.DNSSDConfigs {
			for _, n := range dns.Names {
				scraped[fmt.Sprintf("%s:%d", n, dns.Port)] = true
			}
		}
	}
	for _, name := range top.longRunning() {
		_, port, _ := net.SplitHostPort(top.compose.Services[name].Environment["METRICS_ADDR"])
		if target := name + ":" + port; !scraped[target] {
			t.Errorf("Prometheus does not scrape %s (METRICS_ADDR of service %s); it scrapes %v", target, name, scraped)
		}
	}

	exported := map[string]bool{}
	for _, ps := range top.procs {
		for _, p := range ps {
			if p.killed {
				continue
			}
			names := scrapeNames(t, "http://"+p.metrics+"/metrics")
			t.Logf("%s exports %d metric families", p.name, len(names))
			for _, name := range names {
				exported[name] = true
			}
		}
	}
	graf := top.compose.Services["grafana"]
	dir := mountedFile(t, graf, "/var/lib/grafana/dashboards")
	files, _ := filepath.Glob(filepath.Join(dir, "*.json"))
	if len(files) == 0 {
		t.Fatalf("no dashboards in %s", dir)
	}
	metric := regexp.MustCompile(`\bjetfleet_[a-z_]+`)
	for _, f := range files {
		var dash struct {
			Panels []struct {
				Title   string `json:"title"`
				Targets []struct {
					Expr string `json:"expr"`
				} `json:"targets"`
			} `json:"panels"`
		}
		if err := json.Unmarshal(readFile(t, f), &dash); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for _, p := range dash.Panels {
			for _, target := range p.Targets {
				for _, m := range metric.FindAllString(target.Expr, -1) {
					if base := histogramBase(m); !exported[base] {
						t.Errorf("dashboard panel %q queries %s, which no jetfleet process exports", p.Title, base)
					}
				}
			}
		}
	}
}

// histogramBase maps a histogram's series names to the family name.
func histogramBase(name string) string {
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		if b, ok := strings.CutSuffix(name, suffix); ok && strings.HasSuffix(b, "_seconds") {
			return b
		}
	}
	return name
}

// scrapeNames lists the metric families a /metrics endpoint exports.
func scrapeNames(t *testing.T, u string) []string {
	resp, err := http.Get(u)
	if err != nil {
		t.Fatalf("scrape %s: %v", u, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("scrape %s = %d: %s", u, resp.StatusCode, b)
	}
	var names []string
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, "# TYPE "); ok {
			names = append(names, strings.Fields(rest)[0])
		}
	}
	return names
}

func (top *topology) buildBinary() {
	t := top.t
	top.bin = filepath.Join(t.TempDir(), "jetfleet")
	cmd := exec.Command("go", "build", "-o", top.bin, "jetfleet/cmd/jetfleet")
	cmd.Env = os.Environ()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build jetfleet: %v\n%s", err, out)
	}
}

// startNATS starts every NATS service of the compose file from the config
// file it mounts, with its environment; only addresses and the store
// directory change, from container paths to this machine's.
func (top *topology) startNATS() {
	t := top.t
	var names []string
	for name, svc := range top.compose.Services {
		if strings.HasPrefix(svc.Image, "nats:") {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	if len(names) != 3 {
		t.Fatalf("compose runs %d NATS servers (%v), want 3", len(names), names)
	}
	client, cluster := map[string]int{}, map[string]int{}
	for _, n := range names {
		client[n], cluster[n] = freePort(t), freePort(t)
		top.hosts[n+":4222"] = fmt.Sprintf("127.0.0.1:%d", client[n])
	}
	opts := map[string]*server.Options{}
	for _, n := range names {
		svc := top.compose.Services[n]
		conf := mountedFile(t, svc, svc.Command[len(svc.Command)-1])
		// The config resolves $VARIABLES from the environment it loads in.
		for k, v := range svc.Environment {
			t.Setenv(k, v)
		}
		o, err := server.ProcessConfigFile(conf)
		if err != nil {
			t.Fatalf("%s: load %s: %v", n, conf, err)
		}
		if o.Cluster.Username == "" || o.Cluster.Password == "" {
			t.Fatalf("%s: cluster routes accept unauthenticated peers", n)
		}
		o.Host, o.Port = "127.0.0.1", client[n]
		o.HTTPHost, o.HTTPPort = "127.0.0.1", -1
		o.Cluster.Host, o.Cluster.Port = "127.0.0.1", cluster[n]
		o.StoreDir = t.TempDir()
		o.NoSigs, o.NoLog = true, true
		for _, r := range o.Routes {
			peer := strings.Split(r.Host, ":")[0]
			p, ok := cluster[peer]
			if !ok {
				t.Fatalf("%s routes to %s, which compose does not run", n, r.Host)
			}
			r.Host = fmt.Sprintf("127.0.0.1:%d", p)
		}
		opts[n] = o
	}
	for _, n := range names {
		ns, err := server.NewServer(opts[n])
		if err != nil {
			t.Fatalf("%s: %v", n, err)
		}
		ns.Start()
		if !ns.ReadyForConnections(10 * time.Second) {
			t.Fatalf("%s not ready", n)
		}
		t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
		top.nats[n] = ns
	}
	// What compose waits for before `migrate` (depends_on: service_healthy):
	// each node's healthcheck, its /healthz answering 200 once it sees a
	// JetStream meta leader.
	for _, n := range names {
		hc := strings.Join(top.compose.Services[n].Healthcheck.Test, " ")
		m := regexp.MustCompile(`http://127\.0\.0\.1:8222(/\S*)`).FindStringSubmatch(hc)
		if m == nil {
			t.Fatalf("%s: healthcheck %q does not ask the monitoring port's /healthz", n, hc)
		}
		u := "http://" + top.nats[n].MonitorAddr().String() + m[1]
		var last string
		testenv.EventuallyState(t, 60*time.Second, n+" healthy as compose checks it", func() (bool, any) {
			resp, err := http.Get(u)
			if err != nil {
				last = err.Error()
				return false, last
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			last = fmt.Sprintf("%d %s", resp.StatusCode, b)
			return resp.StatusCode == http.StatusOK, last
		})
	}
}

func (top *topology) startClickHouse() {
	t := top.t
	env := top.compose.Services["clickhouse"].Environment
	srv, err := localserver.Start(t.Context(), localserver.Config{Dir: t.TempDir(), User: env["CLICKHOUSE_USER"], Password: env["CLICKHOUSE_PASSWORD"]})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Stop() })
	// The image's entrypoint creates CLICKHOUSE_DB on first start.
	o, _ := clickhouse.ParseDSN(srv.DSN())
	conn, err := clickhouse.Open(o)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := conn.Exec(t.Context(), "CREATE DATABASE IF NOT EXISTS "+env["CLICKHOUSE_DB"]); err != nil {
		t.Fatal(err)
	}
	top.hosts["clickhouse:9000"] = fmt.Sprintf("127.0.0.1:%d", srv.TCPPort())
}

func (top *topology) startMinIO() {
	t := top.t
	env := top.compose.Services["minio"].Environment
	srv, err := testenv.StartMinIOAs(env["MINIO_ROOT_USER"], env["MINIO_ROOT_PASSWORD"])
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Stop() })
	top.hosts["minio:9000"] = srv.Endpoint
	// What the minio-init service does.
	initEnv := top.compose.Services["minio-init"].Environment
	mc, err := minio.New(srv.Endpoint, &minio.Options{Creds: credentials.NewStaticV4(initEnv["MINIO_ROOT_USER"], initEnv["MINIO_ROOT_PASSWORD"], "")})
	if err != nil {
		t.Fatal(err)
	}
	if err := mc.MakeBucket(t.Context(), initEnv["S3_BUCKET"], minio.MakeBucketOptions{}); err != nil {
		t.Fatalf("minio-init: %v", err)
	}
}

// jetfleetServices are the services built from deploy/Dockerfile.
func (top *topology) longRunning() []string {
	var names []string
	for name, svc := range top.compose.Services {
		if svc.Build != nil && name != "migrate" && len(svc.Profiles) == 0 {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	return names
}

// environment is a service's compose environment with container host names
// replaced by the loopback addresses their stand-ins listen on.
func (top *topology) environment(svc composeService) []string {
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"), "DATA_DIR=" + top.t.TempDir()}
	for k, v := range svc.Environment {
		for from, to := range top.hosts {
			v = strings.ReplaceAll(v, from, to)
		}
		env = append(env, k+"="+v)
	}
	return env
}

func (top *topology) runOneShot(name string) {
	t := top.t
	svc, ok := top.compose.Services[name]
	if !ok {
		t.Fatalf("compose has no %s service", name)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, top.bin, svc.Command...)
	cmd.Env = top.environment(svc)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", name, err, out)
	}
}

func (top *topology) start(name string) {
	t := top.t
	svc := top.compose.Services[name]
	replicas := max(svc.Deploy.Replicas, 1)
	for i := range replicas {
		p := &process{name: fmt.Sprintf("%s.%d", name, i+1), out: &testenv.Buffer{},
			http: fmt.Sprintf("127.0.0.1:%d", freePort(t)), metrics: fmt.Sprintf("127.0.0.1:%d", freePort(t))}
		env := top.environment(svc)
		for j, kv := range env {
			switch {
			case strings.HasPrefix(kv, "HTTP_ADDR="):
				env[j] = "HTTP_ADDR=" + p.http
			case strings.HasPrefix(kv, "METRICS_ADDR="):
				env[j] = "METRICS_ADDR=" + p.metrics
			}
		}
		p.cmd = exec.Command(top.bin, svc.Command...)
		p.cmd.Env = env
		p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
		p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := p.cmd.Start(); err != nil {
			t.Fatalf("start %s: %v", p.name, err)
		}
		t.Cleanup(func() {
			p.cmd.Process.Signal(syscall.SIGTERM)
			done := make(chan struct{})
			go func() { p.cmd.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(20 * time.Second):
				p.cmd.Process.Kill()
			}
			if t.Failed() {
				t.Logf("--- %s output ---\n%s", p.name, tail(p.out.String(), 3000))
			}
		})
		top.procs[name] = append(top.procs[name], p)
	}
}

// waitHealthy runs the service's compose healthcheck against the process.
func (top *topology) waitHealthy(name string, p *process) {
	t := top.t
	hc := top.compose.Services[name].Healthcheck.Test
	if len(hc) < 4 || hc[1] != "/jetfleet" || hc[2] != "health" {
		t.Fatalf("%s: healthcheck %v is not `/jetfleet health URL`", name, hc)
	}
	u := strings.Replace(hc[3], "127.0.0.1:8080", p.http, 1)
	u = strings.Replace(u, "127.0.0.1:9090", p.metrics, 1)
	var last string
	testenv.Eventually(t, 60*time.Second, p.name+" healthy", func() bool {
		if p.cmd.ProcessState != nil {
			t.Fatalf("%s exited: %s", p.name, tail(p.out.String(), 3000))
		}
		cmd := exec.Command(top.bin, "health", u)
		out, err := cmd.CombinedOutput()
		last = string(out)
		return err == nil
	})
	_ = last
}

func (top *topology) natsURL() string {
	var urls []string
	for _, n := range []string{"nats-1", "nats-2", "nats-3"} {
		urls = append(urls, "nats://"+top.hosts[n+":4222"])
	}
	return strings.Join(urls, ",")
}

// connectAs connects with the NATS user and password a compose service uses.
func (top *topology) connectAs(service string) (*nats.Conn, jetstream.JetStream) {
	env := top.compose.Services[service].Environment
	return testenv.Connect(top.t, top.natsURL(), nats.UserInfo(env["NATS_USER"], env["NATS_PASSWORD"]))
}

func (top *topology) checkServicePermissions(service string) {
	t := top.t
	_, js := top.connectAs(service)
	// A denied request is not answered: the server only tells the client
	// asynchronously, so the call ends at its deadline.
	if err := js.DeleteStream(testenv.Context(t, 2*time.Second), "DLQ"); err == nil {
		t.Fatalf("NATS user of %s deleted a stream", service)
	}
	if _, err := js.Stream(testenv.Context(t, 10*time.Second), "DLQ"); err != nil {
		t.Fatalf("NATS user of %s cannot read a stream: %v", service, err)
	}
}

func (top *topology) signInThroughOneEdgeReadThroughTheOther(edge1, edge2 string) {
	t := top.t
	jar, _ := cookiejar.New(nil) // cookies are per host, not per port: both edges share them
	c := &http.Client{Jar: jar, Timeout: 15 * time.Second}
	csrf := regexp.MustCompile(`name="csrf_token" value="([^"]+)"`)
	get := func(u string) string {
		resp, err := c.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	form := csrf.FindStringSubmatch(get(edge1 + "/signin"))
	if form == nil {
		t.Fatal("no sign-in form on edge-1")
	}
	resp, err := c.PostForm(edge1+"/signin", url.Values{"email": {"selfhost@example.com"}, "csrf_token": {form[1]}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("sign-in request on edge-1 = %d", resp.StatusCode)
	}
	// Without SMTP the mail role keeps mail in OUTBOX; an operator reads it.
	_, js := top.connectAs("nats-cli")
	var token string
	testenv.Eventually(t, 30*time.Second, "the sign-in mail is kept", func() bool {
		token = outboxToken(t, js)
		return token != ""
	})
	confirm := get(edge2 + "/signin/verify?token=" + url.QueryEscape(token))
	form = csrf.FindStringSubmatch(confirm)
	if form == nil {
		t.Fatalf("no confirmation form on edge-2:\n%s", confirm)
	}
	resp, err = c.PostForm(edge2+"/signin/verify", url.Values{"token": {token}, "csrf_token": {form[1]}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	for _, edge := range []string{edge1, edge2} {
		if home := get(edge + "/"); !strings.Contains(home, "selfhost@example.com") {
			t.Fatalf("%s does not see the session started through the other edge", edge)
		}
	}
}

func outboxToken(t *testing.T, js jetstream.JetStream) string {
	ctx := testenv.Context(t, 5*time.Second)
	kv, err := js.KeyValue(ctx, "OUTBOX")
	if err != nil {
		return ""
	}
	keys, err := kv.ListKeys(ctx)
	if err != nil {
		return ""
	}
	link := regexp.MustCompile(`/signin/verify\?token=([A-Za-z0-9_%-]+)`)
	for k := range keys.Keys() {
		e, err := kv.Get(ctx, k)
		if err != nil {
			continue
		}
		var m map[string]any
		if json.Unmarshal(e.Value(), &m) != nil {
			continue
		}
		text, _ := json.Marshal(m)
		if found := link.FindSubmatch(bytes.ReplaceAll(text, []byte(`\u0026`), []byte("&"))); found != nil {
			tok, _ := url.QueryUnescape(string(found[1]))
			return tok
		}
	}
	return ""
}

// countEventsWhileANodeAndAWorkerDie posts Counter API batches through both
// edges, stops one NATS node and kills one worker mid-load, then checks that
// every event the API acknowledged is counted.
func (top *topology) countEventsWhileANodeAndAWorkerDie(edge1, edge2 string) {
	t := top.t
	key := top.counterKey()
	const video, perBatch, batches = "topology-v1", 50, 60
	var acked, sent int
	var events bytes.Buffer
	events.WriteString(`{"events":[`)
	for i := range perBatch {
		if i > 0 {
			events.WriteByte(',')
		}
		events.WriteString(`{"video_id":"` + video + `"}`)
	}
	events.WriteString(`]}`)
	c := &http.Client{Timeout: 10 * time.Second}
	var killOnce sync.Once
	for i := range batches {
		if i == batches/3 {
			top.nats["nats-2"].Shutdown()
		}
		if i == batches/2 {
			killOnce.Do(func() {
				w := top.procs["worker-all"][0]
				w.cmd.Process.Kill()
				w.killed = true
			})
		}
		edge := edge1
		if i%2 == 1 {
			edge = edge2
		}
		req, _ := http.NewRequest(http.MethodPost, edge+"/api/counter/v1/batch", bytes.NewReader(events.Bytes()))
		req.Header.Set("X-API-Key", key)
		sent += perBatch
		resp, err := c.Do(req)
		if err != nil {
			continue // not acknowledged
		}
		var body struct {
			Accepted int `json:"accepted"`
		}
		json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusAccepted {
			acked += body.Accepted
		}
		time.Sleep(50 * time.Millisecond) // pace the load across the failures
	}
	if acked < sent/2 {
		t.Fatalf("only %d of %d events acknowledged while one of three NATS nodes was down", acked, sent)
	}
	var counted uint64
	testenv.Eventually(t, 120*time.Second, fmt.Sprintf("all %d acknowledged events counted", acked), func() bool {
		counted = top.countThrough(edge2, key, video)
		return counted >= uint64(acked)
	})
	if counted > uint64(sent) {
		t.Fatalf("counted %d events, but only %d were sent", counted, sent)
	}
	t.Logf("sent %d, acknowledged %d, counted %d", sent, acked, counted)
}

func (top *topology) counterKey() string {
	t := top.t
	cmd := exec.Command(top.bin, "counter", "apikey", "create", "--tenant", "topology")
	svc := top.compose.Services["nats-cli"]
	env := top.environment(top.compose.Services["worker-all"])
	// The operator's NATS user, as the nats-cli service has it.
	env = append(env, "NATS_USER="+svc.Environment["NATS_USER"], "NATS_PASSWORD="+svc.Environment["NATS_PASSWORD"])
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("counter apikey create: %v\n%s", err, out)
	}
	var key string
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if f := strings.TrimSpace(sc.Text()); strings.HasPrefix(f, "jfc_") {
			key = f
		}
	}
	if key == "" {
		t.Fatalf("no key in:\n%s", out)
	}
	return key
}

func (top *topology) countThrough(edge, key, video string) uint64 {
	now := time.Now().UTC()
	q := url.Values{"type": {"VIEW"}, "function": {"COUNT"},
		"start": {now.Add(-time.Hour).Truncate(time.Hour).Format(time.RFC3339)},
		"end":   {now.Add(2 * time.Hour).Truncate(time.Hour).Format(time.RFC3339)}}
	req, _ := http.NewRequest(http.MethodGet, edge+"/api/counter/v1/videos/"+video+"/stats?"+q.Encode(), nil)
	req.Header.Set("X-API-Key", key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	var body struct {
		Count uint64 `json:"count"`
	}
	json.NewDecoder(resp.Body).Decode(&body)
	return body.Count
}

// mountedFile maps a path inside a container back to the file compose
// mounts there.
func mountedFile(t *testing.T, svc composeService, inside string) string {
	for _, v := range svc.Volumes {
		parts := strings.Split(v, ":")
		if len(parts) >= 2 && parts[1] == inside {
			return parts[0]
		}
	}
	t.Fatalf("nothing is mounted at %s (volumes %v)", inside, svc.Volumes)
	return ""
}

func freePort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
