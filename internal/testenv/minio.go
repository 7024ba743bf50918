package testenv

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"go/build"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// minioInstall is how to get the binary, quoted in every "not found" error.
const minioInstall = "go install github.com/minio/minio@latest (about 6 minutes on 2 cores; the binary lands in $(go env GOPATH)/bin)"

// minioReadyTimeout is generous because the machine may be busy compiling.
const minioReadyTimeout = 60 * time.Second

// MinIO is a real MinIO server on loopback, started once per test package
// from TestMain with StartMinIO and stopped with Stop. Each test takes its
// own bucket name from Bucket.
type MinIO struct {
	Endpoint  string // host:port, plain HTTP, as S3 clients take it
	AccessKey string
	SecretKey string
	Startup   time.Duration // from exec to ready, for reports

	dir     string
	cmd     *exec.Cmd
	exited  chan struct{} // closed when the process has exited
	waitErr error         // valid after exited is closed
	output  *tailBuffer
	buckets atomic.Int64
}

// StartMinIO starts MinIO with fresh random root credentials and an empty
// data directory, on free loopback ports, and waits until it is ready. The
// binary is looked up on PATH, then in $(go env GOBIN) and $(go env GOPATH)/bin.
// TestMain prints the error, which says how to install the binary, and exits
// non-zero: tests that need S3 never skip.
//
//	func TestMain(m *testing.M) {
//		srv, err := testenv.StartMinIO()
//		if err != nil {
//			fmt.Fprintln(os.Stderr, err)
//			os.Exit(1)
//		}
//		s3Server = srv
//		code := m.Run()
//		srv.Stop()
//		os.Exit(code)
//	}
func StartMinIO() (*MinIO, error) {
	return StartMinIOAs("test"+randomHex(8), randomHex(20))
}

// StartMinIOAs is StartMinIO with the given root credentials, for tests that
// run a configuration (such as docker-compose.yml's) that names them.
func StartMinIOAs(accessKey, secretKey string) (*MinIO, error) {
	bin, err := findMinIO()
	if err != nil {
		return nil, err
	}
	// A free port can be taken between our probe and MinIO's bind; new
	// ports on a second or third attempt cover that race.
	var lastErr error
	for range 3 {
		m, err := startMinIO(bin, accessKey, secretKey)
		if err == nil {
			return m, nil
		}
		lastErr = err
	}
	return nil, lastErr
}

func findMinIO() (string, error) {
	if p, err := exec.LookPath("minio"); err == nil {
		return p, nil
	}
	var tried []string
	for _, dir := range goBinDirs() {
		p := filepath.Join(dir, "minio")
		tried = append(tried, p)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("testenv: minio binary not found on PATH nor at %s; install it with: %s",
		strings.Join(tried, ", "), minioInstall)
}

// goBinDirs lists where `go install` puts binaries: GOBIN, else each
// GOPATH entry's bin.
func goBinDirs() []string {
	gobin, gopath := "", build.Default.GOPATH
	if out, err := exec.Command("go", "env", "GOBIN", "GOPATH").Output(); err == nil {
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		if len(lines) == 2 {
			gobin, gopath = strings.TrimSpace(lines[0]), strings.TrimSpace(lines[1])
		}
	}
	var dirs []string
	if gobin != "" {
		dirs = append(dirs, gobin)
	}
	for _, p := range filepath.SplitList(gopath) {
		if p != "" {
			dirs = append(dirs, filepath.Join(p, "bin"))
		}
	}
	return dirs
}

func startMinIO(bin, accessKey, secretKey string) (*MinIO, error) {
	ports, err := freePorts(2)
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "testenv-minio-")
	if err != nil {
		return nil, fmt.Errorf("testenv: minio data dir: %w", err)
	}
	m := &MinIO{
		Endpoint:  fmt.Sprintf("127.0.0.1:%d", ports[0]),
		AccessKey: accessKey,
		SecretKey: secretKey,
		dir:       dir,
		exited:    make(chan struct{}),
		output:    &tailBuffer{max: 16 << 10},
	}
	m.cmd = exec.Command(bin, "server", dir,
		"--address", m.Endpoint,
		"--console-address", fmt.Sprintf("127.0.0.1:%d", ports[1]),
		"--quiet")
	m.cmd.Env = append(withoutMinIOEnv(os.Environ()),
		"MINIO_ROOT_USER="+m.AccessKey,
		"MINIO_ROOT_PASSWORD="+m.SecretKey,
		"MINIO_BROWSER=off",
		"MINIO_UPDATE=off",
	)
	m.cmd.Stdout = m.output
	m.cmd.Stderr = m.output
	m.cmd.SysProcAttr = dieWithParent()

	begin := time.Now()
	if err := m.cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("testenv: start %s: %w", bin, err)
	}
	go func() {
		m.waitErr = m.cmd.Wait()
		close(m.exited)
	}()
	if err := m.waitReady(minioReadyTimeout); err != nil {
		m.Stop()
		return nil, fmt.Errorf("testenv: minio on %s: %w\n--- minio output ---\n%s", m.Endpoint, err, m.output)
	}
	m.Startup = time.Since(begin)
	return m, nil
}

// waitReady polls MinIO's readiness probe until it answers 200, the
// process exits, or d passes.
func (m *MinIO) waitReady(d time.Duration) error {
	client := &http.Client{Timeout: time.Second}
	url := "http://" + m.Endpoint + "/minio/health/ready"
	deadline := time.Now().Add(d)
	tick := time.NewTicker(25 * time.Millisecond)
	defer tick.Stop()
	for {
		resp, err := client.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready within %v (last probe: %v)", d, probeResult(resp, err))
		}
		select {
		case <-m.exited:
			return fmt.Errorf("exited before ready: %v", m.waitErr)
		case <-tick.C:
		}
	}
}

func probeResult(resp *http.Response, err error) string {
	if err != nil {
		return err.Error()
	}
	return resp.Status
}

// Stop terminates the server (SIGTERM, then SIGKILL after 10 s) and removes
// its data. It is safe to call more than once.
func (m *MinIO) Stop() error {
	var err error
	select {
	case <-m.exited:
	default:
		if serr := m.cmd.Process.Signal(syscall.SIGTERM); serr != nil {
			m.cmd.Process.Kill()
		}
		select {
		case <-m.exited:
		case <-time.After(10 * time.Second):
			m.cmd.Process.Kill()
			<-m.exited
			err = errors.New("testenv: minio ignored SIGTERM for 10s; killed")
		}
	}
	if rerr := os.RemoveAll(m.dir); rerr != nil && err == nil {
		err = fmt.Errorf("testenv: remove minio data: %w", rerr)
	}
	return err
}

// Bucket returns a valid S3 bucket name that no other test of this server
// has been given, derived from the test's name so it is recognisable. The
// bucket is not created: that is the code under test's job.
func (m *MinIO) Bucket(t testing.TB) string {
	t.Helper()
	n := m.buckets.Add(1)
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(t.Name()) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
			dash = false
		} else if !dash {
			b.WriteByte('-')
			dash = true
		}
	}
	name := fmt.Sprintf("t%d-%s", n, b.String())
	if len(name) > 63 {
		name = name[:63]
	}
	return strings.TrimRight(name, "-")
}

// dieWithParent asks the kernel to kill MinIO when the test binary dies
// without running Stop (a -timeout panic, a SIGKILL, a closed pipe), so no
// 220 MB server outlives its tests. Only Linux has Pdeathsig; the field is
// set by name so this file builds everywhere.
func dieWithParent() *syscall.SysProcAttr {
	attr := &syscall.SysProcAttr{}
	if f := reflect.ValueOf(attr).Elem().FieldByName("Pdeathsig"); f.IsValid() && f.CanSet() {
		f.Set(reflect.ValueOf(syscall.SIGKILL))
	}
	return attr
}

func freePorts(n int) ([]int, error) {
	ports := make([]int, 0, n)
	// Hold every listener until all ports are picked so they differ.
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("testenv: free port: %w", err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

func withoutMinIOEnv(env []string) []string {
	out := env[:0:0]
	for _, kv := range env {
		if !strings.HasPrefix(kv, "MINIO_") {
			out = append(out, kv)
		}
	}
	return out
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// tailBuffer keeps the last max bytes written to it, for error messages.
type tailBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
	max int
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf.Write(p)
	if over := b.buf.Len() - b.max; over > 0 {
		b.buf.Next(over)
	}
	return len(p), nil
}

func (b *tailBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
