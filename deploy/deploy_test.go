// Package deploy_test checks the self-hosting files: docker-compose.yml at the
// repository root and the configuration under deploy/. No Docker engine is
// needed; the compose file is validated by the compose CLI when one is installed
// and otherwise by the structural checks below, which read the YAML as text so
// that the module needs no YAML dependency.
package deploy_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// Paths are relative to this package's directory, where `go test` runs.
const (
	composeFile    = "../docker-compose.yml"
	envExample     = ".env.example"
	natsConf       = "nats/nats.conf"
	clickhouseConf = "clickhouse/config.d/jetfleet.xml"
)

func TestComposeFileValidatesWithComposeCLI(t *testing.T) {
	cli := composeCLI(t)
	secrets := filepath.Join(t.TempDir(), "secrets.env")
	os.WriteFile(secrets, []byte(generatedEnv()), 0o600)
	empty := filepath.Join(t.TempDir(), "empty.env")
	os.WriteFile(empty, nil, 0o600)
	config := func(args ...string) ([]byte, error) {
		all := append([]string{}, cli[1:]...)
		all = append(all, "-f", composeFile)
		all = append(all, args...)
		all = append(all, "config", "-q")
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, cli[0], all...)
		// Only what the test gives: no secret from the caller's environment.
		cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
		return cmd.CombinedOutput()
	}
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"generated secrets", []string{"--env-file", secrets}},
		{"tools profile", []string{"--env-file", secrets, "--profile", "tools"}},
		{"monitoring profile", []string{"--env-file", secrets, "--profile", "monitoring"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if out, err := config(tc.args...); err != nil {
				t.Fatalf("compose config %v: %v\n%s", tc.args, err, out)
			}
		})
	}
	// No usable default secret: without .env, or with the example's empty
	// values, compose refuses to start and names what is missing.
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"no env file", []string{"--env-file", empty}},
		{"env example as copied", []string{"--env-file", envExample}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := config(tc.args...)
			if err == nil || !strings.Contains(string(out), "in .env (deploy/README.md)") {
				t.Fatalf("compose config %v accepted missing secrets (err %v):\n%s", tc.args, err, out)
			}
		})
	}
}

// generatedEnv is what deploy/README.md's generator writes: fresh secrets.
func generatedEnv() string {
	secret := func() string {
		b := make([]byte, 24)
		rand.Read(b)
		return hex.EncodeToString(b)
	}
	var b strings.Builder
	for _, v := range []string{"SESSION_SECRET", "TOKEN_KEY", "CLICKHOUSE_PASSWORD", "MINIO_ROOT_PASSWORD", "NATS_ROUTE_PASSWORD",
		"NATS_EDGE_PASSWORD", "NATS_WORKER_PASSWORD", "NATS_MIGRATE_PASSWORD", "NATS_OPERATOR_PASSWORD", "GRAFANA_ADMIN_PASSWORD"} {
		fmt.Fprintf(&b, "%s=%s\n", v, secret())
	}
	b.WriteString("MINIO_ROOT_USER=jetfleet\nBASE_URL=http://localhost:8081\n")
	return b.String()
}

// composeCLI returns the command that runs compose: the `docker compose`
// plugin when it answers, else the standalone docker-compose (Debian's
// package is 1.29). It skips the test, naming what is missing, when neither is
// installed.
func composeCLI(t *testing.T) []string {
	t.Helper()
	var missing []string
	if docker, err := exec.LookPath("docker"); err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if exec.CommandContext(ctx, docker, "compose", "version").Run() == nil {
			return []string{docker, "compose"}
		}
		missing = append(missing, "the `docker compose` plugin")
	} else {
		missing = append(missing, "docker")
	}
	if dc, err := exec.LookPath("docker-compose"); err == nil {
		return []string{dc}
	}
	missing = append(missing, "docker-compose")
	t.Skipf("cannot validate %s: %s not installed (apt-get install docker-compose provides one)",
		composeFile, strings.Join(missing, " and "))
	return nil
}

func TestEveryLongRunningJetfleetServiceHasAHealthcheckUsingTheBinary(t *testing.T) {
	c := readCompose(t)
	jetfleet := c.jetfleetServices()
	for _, want := range []string{"migrate", "edge-1", "edge-2", "worker-all"} {
		if !slices.Contains(jetfleet, want) {
			t.Fatalf("jetfleet services = %v, want %s among them (is it built from deploy/Dockerfile?)", jetfleet, want)
		}
	}
	for _, name := range jetfleet {
		svc := c.services[name]
		if svc.oneShot() {
			continue
		}
		hc, _ := svc.block("healthcheck")
		hc = c.resolve(hc)
		if len(hc) == 0 {
			t.Errorf("service %s runs the jetfleet image and restarts, but has no healthcheck", name)
			continue
		}
		test := strings.Join(hc, "\n")
		// The image is distroless: only the binary itself can probe.
		if !strings.Contains(test, `"/jetfleet", "health"`) {
			t.Errorf("service %s healthcheck does not run `/jetfleet health URL`:\n%s", name, test)
		}
		port := ":9090/" // METRICS_ADDR of a worker
		if strings.Contains(svc.value("command"), `"edge"`) {
			port = ":8080/" // HTTP_ADDR of an edge
		}
		if !strings.Contains(test, port) {
			t.Errorf("service %s healthcheck does not probe port %s:\n%s", name, strings.Trim(port, ":/"), test)
		}
	}
}

func TestEveryJetfleetServiceButMigrateWaitsForMigrate(t *testing.T) {
	c := readCompose(t)
	for _, name := range c.jetfleetServices() {
		if name == "migrate" {
			continue
		}
		svc := c.services[name]
		// A service that sets its own depends_on replaces the anchor's.
		if dep, ok := svc.block("depends_on"); ok {
			if !strings.Contains(strings.Join(dep, "\n"), "migrate:") {
				t.Errorf("service %s overrides depends_on without migrate", name)
			}
			continue
		}
		if !svc.mergesAnchor("jetfleet") {
			t.Errorf("service %s neither merges *jetfleet nor depends on migrate", name)
		}
	}
	anchor := strings.Join(c.anchors["jetfleet"], "\n")
	if !strings.Contains(anchor, "migrate:") || !strings.Contains(anchor, "service_completed_successfully") {
		t.Errorf("x-jetfleet does not wait for migrate to complete successfully:\n%s", anchor)
	}
}

func TestNATSConfigRoutesToTheThreeComposeNodes(t *testing.T) {
	conf := stripHashComments(readFile(t, natsConf))
	routes := regexp.MustCompile(`(?s)routes\s*[:=]?\s*\[(.*?)\]`).FindStringSubmatch(conf)
	if routes == nil {
		t.Fatalf("%s: no routes list", natsConf)
	}
	// Route URLs carry the route password, so the config names variables
	// and compose's x-nats-env builds them.
	vars := regexp.MustCompile(`\$(NATS_ROUTE_[0-9])`).FindAllStringSubmatch(routes[1], -1)
	natsEnv := strings.Join(readCompose(t).anchors["nats-env"], "\n")
	var hosts []string
	for _, v := range vars {
		m := regexp.MustCompile(v[1] + `: nats-route://route:\$\{NATS_ROUTE_PASSWORD\}@([a-z0-9-]+):6222`).FindStringSubmatch(natsEnv)
		if m == nil {
			t.Errorf("x-nats-env does not define %s as an authenticated route:\n%s", v[1], natsEnv)
			continue
		}
		hosts = append(hosts, m[1])
	}
	slices.Sort(hosts)
	if want := []string{"nats-1", "nats-2", "nats-3"}; !slices.Equal(hosts, want) {
		t.Errorf("%s routes to %v, want %v on port 6222", natsConf, hosts, want)
	}
	for _, want := range []string{
		"server_name: $NATS_SERVER_NAME",
		"name: jetfleet",
		"store_dir: /data",
		"listen: 0.0.0.0:4222",
		"http: 0.0.0.0:8222",
	} {
		if !strings.Contains(conf, want) {
			t.Errorf("%s lacks %q", natsConf, want)
		}
	}

	// Each node of the compose file names itself after its service, mounts
	// this file and keeps its own volume.
	c := readCompose(t)
	for _, node := range hosts {
		svc, ok := c.services[node]
		if !ok {
			t.Errorf("%s routes to %s, which docker-compose.yml does not define", natsConf, node)
			continue
		}
		body := strings.Join(svc.lines, "\n")
		for _, want := range []string{
			"NATS_SERVER_NAME: " + node,
			"./deploy/nats/nats.conf:/etc/nats/jetfleet.conf",
			node + "-data:/data",
		} {
			if !strings.Contains(body, want) {
				t.Errorf("service %s lacks %q", node, want)
			}
		}
	}
}

func TestClickHouseConfigIsWellFormedXML(t *testing.T) {
	d := xml.NewDecoder(bytes.NewReader(readFile(t, clickhouseConf)))
	root := ""
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("%s: %v", clickhouseConf, err)
		}
		if se, ok := tok.(xml.StartElement); ok && root == "" {
			root = se.Name.Local
		}
	}
	if root != "clickhouse" {
		t.Errorf("%s: root element %q, want clickhouse", clickhouseConf, root)
	}
}

func TestEnvExampleListsEveryVariableTheComposeFileReads(t *testing.T) {
	compose := stripHashComments(readFile(t, composeFile))
	example := string(readFile(t, envExample))
	// $$NAME is an escape for the container's shell, not compose interpolation.
	vars := regexp.MustCompile(`(^|[^$])\$\{([A-Z0-9_]+)`).FindAllStringSubmatch(compose, -1)
	if len(vars) == 0 {
		t.Fatal("docker-compose.yml interpolates no variables; the parser is broken")
	}
	seen := map[string]bool{}
	for _, m := range vars {
		name := m[2]
		if seen[name] {
			continue
		}
		seen[name] = true
		if !regexp.MustCompile(`(?m)^` + name + `=`).MatchString(example) {
			t.Errorf("docker-compose.yml reads ${%s}, which %s does not list", name, envExample)
		}
	}
}

// compose is docker-compose.yml read as indented text: enough structure for
// the checks above without a YAML parser. It relies on the file's own layout:
// two-space indentation, services at depth 1 under `services:`, and anchors
// defined on top-level `x-…: &name` keys.
type compose struct {
	services map[string]service
	order    []string
	anchors  map[string][]string // anchor name → the lines of its block
}

type service struct {
	name  string
	lines []string // the service's body, comments dropped, indentation kept
}

func readCompose(t *testing.T) compose {
	t.Helper()
	c := compose{services: map[string]service{}, anchors: map[string][]string{}}
	var (
		section string   // current top-level key
		cur     *service // current service
		anchor  string   // current top-level anchor
	)
	flush := func() {
		if cur != nil {
			c.services[cur.name] = *cur
			c.order = append(c.order, cur.name)
			cur = nil
		}
	}
	topKey := regexp.MustCompile(`^([A-Za-z0-9_.-]+):\s*(?:&([A-Za-z0-9_-]+))?\s*$`)
	svcKey := regexp.MustCompile(`^  ([A-Za-z0-9_.-]+):\s*$`)
	for line := range strings.SplitSeq(string(readFile(t, composeFile)), "\n") {
		trimmed := strings.TrimSpace(line)
		if trimmed == "" || strings.HasPrefix(trimmed, "#") {
			continue
		}
		if m := topKey.FindStringSubmatch(line); m != nil {
			flush()
			section, anchor = m[1], m[2]
			continue
		}
		if anchor != "" {
			c.anchors[anchor] = append(c.anchors[anchor], line)
		}
		if section != "services" {
			continue
		}
		if m := svcKey.FindStringSubmatch(line); m != nil {
			flush()
			cur = &service{name: m[1]}
			continue
		}
		if cur != nil {
			cur.lines = append(cur.lines, line)
		}
	}
	flush()
	if len(c.services) == 0 {
		t.Fatalf("%s: found no services", composeFile)
	}
	return c
}

// jetfleetServices returns, in file order, the services that run the image
// built from deploy/Dockerfile.
func (c compose) jetfleetServices() []string {
	var out []string
	for _, name := range c.order {
		svc := c.services[name]
		body := strings.Join(svc.lines, "\n")
		if svc.mergesAnchor("jetfleet") || strings.Contains(body, "deploy/Dockerfile") ||
			strings.Contains(body, "${JETFLEET_IMAGE") {
			out = append(out, name)
		}
	}
	return out
}

// resolve follows a `key: *anchor` value to the anchor's block; any other
// value comes back as it is.
func (c compose) resolve(value []string) []string {
	if len(value) == 1 {
		if alias, ok := strings.CutPrefix(strings.TrimSpace(value[0]), "*"); ok {
			return c.anchors[alias]
		}
	}
	return value
}

func (s service) mergesAnchor(name string) bool {
	return slices.ContainsFunc(s.lines, func(l string) bool {
		return strings.TrimSpace(l) == "<<: *"+name
	})
}

// oneShot reports whether the service runs to completion (restart: "no").
func (s service) oneShot() bool {
	v := strings.Trim(s.value("restart"), `"' `)
	return v == "no"
}

// value returns the inline value of the service's top-level key, or "".
func (s service) value(key string) string {
	for _, l := range s.lines {
		if v, ok := strings.CutPrefix(l, "    "+key+":"); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// block returns the service's top-level key: its inline value as one line
// when it has one, else the lines nested under it.
func (s service) block(key string) ([]string, bool) {
	for i, l := range s.lines {
		v, ok := strings.CutPrefix(l, "    "+key+":")
		if !ok {
			continue
		}
		if v = strings.TrimSpace(v); v != "" {
			return []string{v}, true
		}
		var out []string
		for _, n := range s.lines[i+1:] {
			if !strings.HasPrefix(n, "      ") {
				break
			}
			out = append(out, n)
		}
		return out, true
	}
	return nil, false
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.FromSlash(path))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// stripHashComments drops `#` comments that start a line or follow a space
// (NATS config and YAML alike), so commented-out examples do not count.
func stripHashComments(b []byte) string {
	var out []string
	for line := range strings.SplitSeq(string(b), "\n") {
		if i := strings.Index(line, "#"); i == 0 || (i > 0 && strings.Contains(" \t", line[i-1:i])) {
			line = line[:i]
		}
		out = append(out, line)
	}
	return strings.Join(out, "\n")
}
