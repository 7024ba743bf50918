// Package localserver supervises a ClickHouse server process on loopback, for
// `jetfleet dev` and for tests that need a real ClickHouse (through
// internal/testenv). It generates a minimal configuration in a directory of
// its own, starts the installed clickhouse-server binary as a child process,
// waits until the server answers, and stops it again.
//
// Production deployments do not use this package: there ClickHouse is a
// separate service reached through analytics.Open.
package localserver

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// ErrNoBinary is returned by Start when no ClickHouse server binary can be
// found.
var ErrNoBinary = errors.New("no ClickHouse server binary found (install it with `apt-get install clickhouse-server`, or set Config.Binary)")

const (
	readyTimeout = 30 * time.Second
	stopTimeout  = 10 * time.Second
	pollInterval = 50 * time.Millisecond
	logTailBytes = 2048
)

// Config describes one local server instance.
type Config struct {
	// Dir holds the generated configuration, the data (Dir/data) and the
	// logs (Dir/log). A server restarted on the same Dir finds its data
	// again. Required.
	Dir string
	// Binary is the server executable. Empty means: clickhouse-server on
	// PATH, then /usr/sbin/clickhouse-server, then `clickhouse server` (the
	// single-binary distribution) on PATH. A binary named "clickhouse" is
	// always run with the "server" subcommand.
	Binary string
	// TCPPort is the native protocol port and HTTPPort the HTTP port, both
	// on 127.0.0.1. Zero picks a free port.
	TCPPort, HTTPPort int
	// User names the one user (default: `default`), as a ClickHouse image's
	// CLICKHOUSE_USER does.
	User string
	// Password, when set, is required of the user (who is allowed
	// from loopback only either way). `jetfleet dev` sets one, so another
	// local user of the machine cannot read or change its data.
	Password string
	// Logger receives lifecycle events. Nil discards them.
	Logger *slog.Logger
}

// Server is a running ClickHouse server process.
type Server struct {
	cmd      *exec.Cmd
	user     string
	password string
	dir      string
	tcpPort  int
	httpPort int
	logger   *slog.Logger
	console  *os.File

	done    chan struct{} // closed when the process has exited
	waitErr error         // the process's exit status, set before done closes
}

// Start writes the configuration into cfg.Dir, starts the server and waits
// until it answers /ping (at most 30s, or until ctx ends). If the process
// exits during startup, the error carries the tail of its error log. ctx only
// bounds the startup: the server keeps running until Stop.
func Start(ctx context.Context, cfg Config) (*Server, error) {
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Dir == "" {
		return nil, errors.New("localserver config: Dir is empty")
	}
	dir, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("localserver config: Dir %q: %w", cfg.Dir, err)
	}
	binary, args, err := findBinary(cfg.Binary)
	if err != nil {
		return nil, err
	}
	if cfg.TCPPort == 0 {
		if cfg.TCPPort, err = freePort(); err != nil {
			return nil, err
		}
	}
	if cfg.HTTPPort == 0 {
		if cfg.HTTPPort, err = freePort(); err != nil {
			return nil, err
		}
	}
	for _, sub := range []string{"data/tmp", "log"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
			return nil, fmt.Errorf("create clickhouse dir: %w", err)
		}
	}
	user := cfg.User
	if user == "" {
		user = "default"
	}
	if err := writeConfig(dir, user, cfg.Password); err != nil {
		return nil, err
	}
	console, err := os.OpenFile(filepath.Join(dir, "log", "console.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open clickhouse console log: %w", err)
	}

	// Everything that differs between instances goes after "--", where it
	// overrides config.xml; the generated config itself is the same for all.
	args = append(args,
		"--config-file="+filepath.Join(dir, "config.xml"),
		"--",
		"--tcp_port="+strconv.Itoa(cfg.TCPPort),
		"--http_port="+strconv.Itoa(cfg.HTTPPort),
		"--path="+filepath.Join(dir, "data")+"/",
		"--tmp_path="+filepath.Join(dir, "data", "tmp")+"/",
		"--logger.log="+filepath.Join(dir, "log", "clickhouse-server.log"),
		"--logger.errorlog="+filepath.Join(dir, "log", "clickhouse-server.err.log"),
	)
	cmd := exec.Command(binary, args...)
	cmd.Dir = dir
	cmd.Stdout = console
	cmd.Stderr = console
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		console.Close()
		return nil, fmt.Errorf("start %s: %w", binary, err)
	}
	s := &Server{
		cmd:      cmd,
		user:     user,
		password: cfg.Password,
		dir:      dir,
		tcpPort:  cfg.TCPPort,
		httpPort: cfg.HTTPPort,
		logger:   logger.With("pid", cmd.Process.Pid, "tcp_port", cfg.TCPPort),
		console:  console,
		done:     make(chan struct{}),
	}
	go func() {
		s.waitErr = cmd.Wait()
		console.Close()
		close(s.done)
	}()
	s.logger.Info("clickhouse server starting", "binary", binary, "dir", dir, "http_port", cfg.HTTPPort)

	start := time.Now()
	if err := s.waitReady(ctx); err != nil {
		s.kill()
		return nil, err
	}
	s.logger.Info("clickhouse server ready", "after", time.Since(start).Round(time.Millisecond))
	return s, nil
}

// DSN returns the URL of the server's `default` database for analytics.Open.
func (s *Server) DSN() string { return s.DatabaseDSN("default") }

// DatabaseDSN returns the URL of database db on this server.
func (s *Server) DatabaseDSN(db string) string {
	u := url.URL{Scheme: "clickhouse", Host: fmt.Sprintf("127.0.0.1:%d", s.tcpPort), Path: "/" + db}
	if s.password != "" {
		u.User = url.UserPassword(s.user, s.password)
	} else if s.user != "default" {
		u.User = url.User(s.user)
	}
	return u.String()
}

// TCPPort is the native protocol port.
func (s *Server) TCPPort() int { return s.tcpPort }

// HTTPPort is the HTTP port.
func (s *Server) HTTPPort() int { return s.httpPort }

// Dir is the absolute directory holding the server's config, data and logs.
func (s *Server) Dir() string { return s.dir }

// Done is closed when the server process has exited, whether through Stop or
// not.
func (s *Server) Done() <-chan struct{} { return s.done }

// Stop sends SIGTERM and waits up to 10s for the process to exit, then kills
// it. It is safe to call more than once.
func (s *Server) Stop() error {
	select {
	case <-s.done:
		return nil
	default:
	}
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("stop clickhouse server pid %d: %w", s.cmd.Process.Pid, err)
	}
	select {
	case <-s.done:
		s.logger.Info("clickhouse server stopped")
		return nil
	case <-time.After(stopTimeout):
	}
	s.kill()
	return fmt.Errorf("stop clickhouse server pid %d: no exit %v after SIGTERM, killed", s.cmd.Process.Pid, stopTimeout)
}

func (s *Server) kill() {
	_ = s.cmd.Process.Kill()
	<-s.done
}

// waitReady polls /ping until the server answers "Ok.", the process exits,
// or the startup deadline passes.
func (s *Server) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	url := fmt.Sprintf("http://127.0.0.1:%d/ping", s.httpPort)
	client := &http.Client{Timeout: time.Second}
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for {
		if ping(ctx, client, url) {
			// A ping answered after our process exited came from
			// another process that holds the port.
			select {
			case <-s.done:
			default:
				return nil
			}
		}
		select {
		case <-s.done:
			return fmt.Errorf("clickhouse server exited during startup (%v); log tail:\n%s", s.waitErr, s.logTail())
		case <-ctx.Done():
			return fmt.Errorf("clickhouse server not ready at %s: %w; log tail:\n%s", url, ctx.Err(), s.logTail())
		case <-tick.C:
		}
	}
}

func ping(ctx context.Context, client *http.Client, url string) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return false
	}
	resp, err := client.Do(req)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64))
	return resp.StatusCode == http.StatusOK && strings.TrimSpace(string(body)) == "Ok."
}

// logTail returns the end of the error log, or of the console output when
// the server failed before it opened its log files.
func (s *Server) logTail() string {
	var out []string
	for _, name := range []string{"clickhouse-server.err.log", "console.log"} {
		b, err := os.ReadFile(filepath.Join(s.dir, "log", name))
		if err != nil || len(bytes.TrimSpace(b)) == 0 {
			continue
		}
		if len(b) > logTailBytes {
			b = b[len(b)-logTailBytes:]
		}
		out = append(out, fmt.Sprintf("[%s] %s", name, bytes.TrimSpace(b)))
	}
	if len(out) == 0 {
		return "(logs empty)"
	}
	return strings.Join(out, "\n")
}

// findBinary resolves the executable and the arguments that precede the
// server options.
func findBinary(configured string) (string, []string, error) {
	withSub := func(path string) (string, []string, error) {
		if filepath.Base(path) == "clickhouse" {
			return path, []string{"server"}, nil
		}
		return path, nil, nil
	}
	if configured != "" {
		path, err := exec.LookPath(configured)
		if err != nil {
			return "", nil, fmt.Errorf("clickhouse binary %q: %w: %w", configured, ErrNoBinary, err)
		}
		return withSub(path)
	}
	for _, name := range []string{"clickhouse-server", "/usr/sbin/clickhouse-server", "clickhouse"} {
		if path, err := exec.LookPath(name); err == nil {
			return withSub(path)
		}
	}
	return "", nil, ErrNoBinary
}

// freePort asks the kernel for a free loopback port. Another process may
// take it before the server binds it; the server then exits and Start
// reports the bind error.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("pick free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func writeConfig(dir, user, password string) error {
	// The password is stored as its SHA-256, which 18.16 accepts
	// (password_sha256_hex), so the file holds nothing to sign in with.
	pw := "<password></password>"
	if password != "" {
		sum := sha256.Sum256([]byte(password))
		pw = "<password_sha256_hex>" + hex.EncodeToString(sum[:]) + "</password_sha256_hex>"
	}
	users := strings.Replace(usersXML, "<password></password>", pw, 1)
	users = strings.Replace(users, "<default>\n            "+pw, "<"+user+">\n            "+pw, 1)
	users = strings.Replace(users, "<quota>default</quota>\n        </default>", "<quota>default</quota>\n        </"+user+">", 1)
	for name, content := range map[string]string{"config.xml": configXML, "users.xml": users} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			return fmt.Errorf("write clickhouse %s: %w", name, err)
		}
	}
	return nil
}

// configXML is the server configuration shared by all instances; ports and
// paths are passed on the command line. The <yandex> root element is what
// 18.16 requires and current releases still accept.
const configXML = `<?xml version="1.0"?>
<yandex>
    <logger>
        <level>information</level>
        <console>0</console>
        <size>100M</size>
        <count>3</count>
    </logger>
    <listen_host>127.0.0.1</listen_host>
    <max_connections>256</max_connections>
    <keep_alive_timeout>3</keep_alive_timeout>
    <max_concurrent_queries>100</max_concurrent_queries>
    <!-- Small caches: this server is for development and tests. -->
    <uncompressed_cache_size>268435456</uncompressed_cache_size>
    <mark_cache_size>268435456</mark_cache_size>
    <users_config>users.xml</users_config>
    <default_profile>default</default_profile>
    <default_database>default</default_database>
</yandex>
`

// usersXML allows the `default` user from loopback only, with the password
// writeConfig puts in (none for tests).
const usersXML = `<?xml version="1.0"?>
<yandex>
    <profiles>
        <default>
            <max_memory_usage>4000000000</max_memory_usage>
            <!-- An idle client connection notices shutdown only after this
                 many seconds (default 10): keep Stop quick with clients. -->
            <poll_interval>1</poll_interval>
            <load_balancing>random</load_balancing>
        </default>
    </profiles>
    <users>
        <default>
            <password></password>
            <networks>
                <ip>127.0.0.1</ip>
                <ip>::1</ip>
            </networks>
            <profile>default</profile>
            <quota>default</quota>
        </default>
    </users>
    <quotas>
        <default>
            <interval>
                <duration>3600</duration>
                <queries>0</queries>
                <errors>0</errors>
                <result_rows>0</result_rows>
                <read_rows>0</read_rows>
                <execution_time>0</execution_time>
            </interval>
        </default>
    </quotas>
</yandex>
`
