package testenv

import (
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// LatencyProxy forwards loopback TCP connections to target and holds every
// chunk the target sends back for delay before passing it on, in order: a
// server that answers each request late (a ClickHouse under load, a slow
// link) while staying byte-for-byte the real server. It returns the address
// to dial instead of target and stops when the test ends.
func LatencyProxy(t testing.TB, target string, delay time.Duration) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("latency proxy: %v", err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	track := func(c net.Conn) {
		mu.Lock()
		conns = append(conns, c)
		mu.Unlock()
	}
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			client, err := l.Accept()
			if err != nil {
				return
			}
			server, err := net.Dial("tcp", target)
			if err != nil {
				client.Close()
				continue
			}
			track(client)
			track(server)
			wg.Add(2)
			go func() {
				defer wg.Done()
				io.Copy(server, client)
				server.Close()
			}()
			go func() {
				defer wg.Done()
				delayedCopy(client, server, delay)
				client.Close()
			}()
		}
	}()
	return l.Addr().String()
}

// delayedCopy copies src to dst, each chunk delay after it was read.
func delayedCopy(dst io.Writer, src io.Reader, delay time.Duration) {
	type chunk struct {
		at   time.Time
		data []byte
	}
	ch := make(chan chunk, 1024)
	go func() {
		defer close(ch)
		for {
			buf := make([]byte, 32<<10)
			n, err := src.Read(buf)
			if n > 0 {
				ch <- chunk{time.Now(), buf[:n]}
			}
			if err != nil {
				return
			}
		}
	}()
	for c := range ch {
		// The delay is the simulated latency, not a wait for some state.
		time.Sleep(time.Until(c.at.Add(delay)))
		if _, err := dst.Write(c.data); err != nil {
			for range ch {
			}
			return
		}
	}
}
