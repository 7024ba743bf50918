package localserver_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"

	"jetfleet/analytics/localserver"
)

func TestStartedServerAnswersQueriesAndStopEndsIt(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	srv, err := localserver.Start(ctx, localserver.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Stop() })

	opts, err := clickhouse.ParseDSN(srv.DSN())
	if err != nil {
		t.Fatal(err)
	}
	conn, err := clickhouse.Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var got uint64
	if err := conn.QueryRow(ctx, "SELECT toUInt64(1 + 1)").Scan(&got); err != nil {
		t.Fatalf("query %s: %v", srv.DSN(), err)
	}
	if got != 2 {
		t.Fatalf("SELECT 1 + 1 = %d", got)
	}

	if err := srv.Stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	select {
	case <-srv.Done():
	default:
		t.Fatal("process still running after Stop returned")
	}
	if c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", srv.TCPPort())); err == nil {
		c.Close()
		t.Fatal("native port still accepts connections after Stop")
	}
	if err := srv.Stop(); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
}

func TestStartWithoutBinarySaysHowToInstallIt(t *testing.T) {
	_, err := localserver.Start(context.Background(), localserver.Config{
		Dir:    t.TempDir(),
		Binary: filepath.Join(t.TempDir(), "clickhouse-server"),
	})
	if !errors.Is(err, localserver.ErrNoBinary) {
		t.Fatalf("err = %v, want ErrNoBinary", err)
	}
	if !strings.Contains(err.Error(), "apt-get install clickhouse-server") {
		t.Fatalf("error does not say how to install: %v", err)
	}
}

func TestStartFailsWithLogTailWhenServerExits(t *testing.T) {
	// A port already taken makes the server exit during startup.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	srv, err := localserver.Start(ctx, localserver.Config{
		Dir:     t.TempDir(),
		TCPPort: l.Addr().(*net.TCPAddr).Port,
	})
	if err == nil {
		srv.Stop()
		t.Fatal("Start succeeded on a taken port")
	}
	if !strings.Contains(err.Error(), "exited during startup") || !strings.Contains(err.Error(), "clickhouse-server.err.log") {
		t.Fatalf("error lacks the exit and the log tail: %v", err)
	}
	if errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Start waited for its deadline instead of failing fast: %v", err)
	}
	t.Logf("error: %v", err)
}

func TestServerWithAPasswordRefusesClientsWithoutIt(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dir := t.TempDir()
	srv, err := localserver.Start(ctx, localserver.Config{Dir: dir, User: "jetfleet", Password: "s3cret-pw"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Stop() })
	query := func(dsn string) error {
		opts, err := clickhouse.ParseDSN(dsn)
		if err != nil {
			return err
		}
		conn, err := clickhouse.Open(opts)
		if err != nil {
			return err
		}
		defer conn.Close()
		return conn.Ping(ctx)
	}
	if err := query(srv.DSN()); err != nil {
		t.Fatalf("with the password: %v", err)
	}
	for _, dsn := range []string{"clickhouse://127.0.0.1:%d/default", "clickhouse://jetfleet@127.0.0.1:%d/default"} {
		if err := query(fmt.Sprintf(dsn, srv.TCPPort())); err == nil {
			t.Fatalf("%s: a client without the password was let in", dsn)
		}
	}
	users, err := os.ReadFile(filepath.Join(dir, "users.xml"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(users), "s3cret-pw") {
		t.Fatal("users.xml holds the password in clear")
	}
}
