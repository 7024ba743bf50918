package chat

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// writeCounter counts the writes of the connections a listener accepts.
type writeCounter struct {
	net.Listener
	mu     sync.Mutex
	writes int
}

func (l *writeCounter) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &countedConn{Conn: c, l: l}, nil
}

func (l *writeCounter) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.writes
}

type countedConn struct {
	net.Conn
	l *writeCounter
}

func (c *countedConn) Write(p []byte) (int, error) {
	c.l.mu.Lock()
	c.l.writes++
	c.l.mu.Unlock()
	return c.Conn.Write(p)
}

// Frames of every size reach the client intact, and each one up to
// maxHeld, however much larger than the socket's 4 KiB buffer, costs the
// server one write; larger ones still arrive whole.
func TestSocketWritesEachFrameInOneWrite(t *testing.T) {
	sizes := []int{10, 125, 126, 4090, 4096, 4097, 6000, 20000, 65535, 65536, maxHeld - 10, maxHeld + 1, 200000, 17}
	frame := func(i, n int) []byte { return bytes.Repeat([]byte{byte('a' + i%26)}, n) }
	ready := make(chan struct{})
	wrote, counted := make(chan int), make(chan struct{})
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(wholeFrames(w), r, nil)
		if err != nil {
			t.Error(err)
			return
		}
		defer c.CloseNow()
		<-ready
		for i, n := range sizes {
			if err := c.Write(r.Context(), websocket.MessageText, frame(i, n)); err != nil {
				t.Error(err)
				return
			}
			wrote <- i
			<-counted
		}
		c.Close(websocket.StatusNormalClosure, "")
	}))
	l := &writeCounter{Listener: srv.Listener}
	srv.Listener = l
	srv.Start()
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	c.SetReadLimit(1 << 20)
	before := l.count() // the handshake's
	close(ready)
	for i, n := range sizes {
		<-wrote
		writes := l.count() - before
		before += writes
		counted <- struct{}{}
		if n+len(header(n)) <= maxHeld && writes != 1 {
			t.Errorf("a frame of %d bytes took %d writes, want 1", n, writes)
		}
		_, got, err := c.Read(ctx)
		if err != nil {
			t.Fatalf("frame %d (%d bytes): %v", i, n, err)
		}
		if !bytes.Equal(got, frame(i, n)) {
			t.Fatalf("frame %d: got %d bytes, want %d of %q", i, len(got), n, rune('a'+i%26))
		}
	}
	if _, _, err := c.Read(ctx); websocket.CloseStatus(err) != websocket.StatusNormalClosure {
		t.Errorf("after the frames: %v, want a normal close", err)
	}
}

// The frame parser finds boundaries and the size of a frame cut short,
// with its header cut anywhere.
func TestFrameEnd(t *testing.T) {
	for _, n := range []int{0, 5, 125, 126, 300, 65535, 65536, 70000} {
		f := append(header(n), make([]byte, n)...)
		two := append(append([]byte(nil), f...), f...)
		if end, _ := frameEnd(two); end != len(two) {
			t.Errorf("two frames of %d: end %d, want %d", n, end, len(two))
		}
		for cut := 1; cut < len(f); cut += max(1, len(f)/7) {
			b := append(append([]byte(nil), f...), f[:cut]...)
			end, size := frameEnd(b)
			if end != len(f) {
				t.Errorf("frame of %d then %d bytes: end %d, want %d", n, cut, end, len(f))
			}
			if cut >= len(header(n)) && size != len(f) {
				t.Errorf("frame of %d cut at %d: size %d, want %d", n, cut, size, len(f))
			}
			if cut < len(header(n)) && size != 0 {
				t.Errorf("frame of %d cut in its header at %d: size %d, want 0", n, cut, size)
			}
		}
	}
}

// header is an unmasked text frame's header for n payload bytes.
func header(n int) []byte {
	switch {
	case n < 126:
		return []byte{0x81, byte(n)}
	case n < 1<<16:
		return []byte{0x81, 126, byte(n >> 8), byte(n)}
	}
	h := []byte{0x81, 127, 0, 0, 0, 0, 0, 0, 0, 0}
	for i := range 8 {
		h[9-i] = byte(n >> (8 * i))
	}
	return h
}
