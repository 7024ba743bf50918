package main

import (
	"bufio"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"sync"

	"github.com/coder/websocket"
)

// readBuffer is a client's read buffer: a 100 ms batch of a 167
// messages/s room (about 6 KiB) and most of a lagging socket's catch-up
// frames are read in place.
const readBuffer = 32 << 10

// client is the load generator's WebSocket client (RFC 6455, text frames,
// no extensions): a TCP connection read through one 32 KiB buffer.
// coder/websocket's client read a 100 ms batch in several system calls
// through a 4 KiB buffer and armed a context watch per message, which
// made the generator, on the same 2 cores as the servers, cost as much as
// an edge; this one reads whatever the kernel holds in one call. Both
// phases use it.
type client struct {
	conn net.Conn
	br   *bufio.Reader
	data []byte // the last message read, reused
	wmu  sync.Mutex
}

// closeError is a close frame from the server.
type closeError struct{ code websocket.StatusCode }

func (e closeError) Error() string { return "closed by the server: " + e.code.String() }

// dial opens a WebSocket to http://addr+path.
func dial(addr, path string) (*client, error) {
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	var k [16]byte
	rand.Read(k[:])
	key := base64.StdEncoding.EncodeToString(k[:])
	_, err = fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n", path, addr, key)
	if err != nil {
		conn.Close()
		return nil, err
	}
	br := bufio.NewReaderSize(conn, readBuffer)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("websocket handshake: %w", err)
	}
	resp.Body.Close()
	sum := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	if resp.StatusCode != http.StatusSwitchingProtocols || resp.Header.Get("Sec-WebSocket-Accept") != base64.StdEncoding.EncodeToString(sum[:]) {
		conn.Close()
		return nil, fmt.Errorf("websocket handshake: %s", resp.Status)
	}
	return &client{conn: conn, br: br}, nil
}

// read returns the next message, valid until the next read; a close
// frame is a closeError.
func (c *client) read() ([]byte, error) {
	c.data = c.data[:0]
	var h [8]byte
	for {
		if _, err := io.ReadFull(c.br, h[:2]); err != nil {
			return nil, err
		}
		fin, op, n := h[0]&0x80 != 0, h[0]&0x0f, uint64(h[1]&0x7f)
		if h[1]&0x80 != 0 {
			return nil, errors.New("a masked frame from the server")
		}
		switch n {
		case 126:
			if _, err := io.ReadFull(c.br, h[:2]); err != nil {
				return nil, err
			}
			n = uint64(binary.BigEndian.Uint16(h[:2]))
		case 127:
			if _, err := io.ReadFull(c.br, h[:8]); err != nil {
				return nil, err
			}
			n = binary.BigEndian.Uint64(h[:8])
		}
		if n > 16<<20 {
			return nil, fmt.Errorf("a frame of %d bytes", n)
		}
		var payload []byte
		copied := !(len(c.data) == 0 && fin && n <= readBuffer)
		if !copied {
			// The usual case, a whole message that fits the buffer: read
			// in place, no copy (valid until the next read).
			b, err := c.br.Peek(int(n))
			if err != nil {
				return nil, err
			}
			c.br.Discard(int(n))
			payload = b
		} else {
			at := len(c.data)
			c.data = slices.Grow(c.data, int(n))[:at+int(n)]
			if _, err := io.ReadFull(c.br, c.data[at:]); err != nil {
				return nil, err
			}
			payload = c.data[at:]
		}
		switch op {
		case 0x8: // close
			code := websocket.StatusNoStatusRcvd
			if n >= 2 {
				code = websocket.StatusCode(binary.BigEndian.Uint16(payload))
			}
			return nil, closeError{code}
		case 0x9: // ping
			if err := c.write(0xA, payload); err != nil {
				return nil, err
			}
		}
		if op == 0x9 || op == 0xA { // a control frame, maybe between a message's fragments
			if copied {
				c.data = c.data[:len(c.data)-len(payload)]
			}
			continue
		}
		if fin && !copied {
			return payload, nil
		}
		if fin {
			return c.data, nil
		}
	}
}

// writeText sends one text message.
func (c *client) writeText(p []byte) error { return c.write(0x1, p) }

// write sends one frame, masked as a client's must be.
func (c *client) write(op byte, p []byte) error {
	f := make([]byte, 0, 14+len(p))
	f = append(f, 0x80|op)
	switch n := len(p); {
	case n < 126:
		f = append(f, 0x80|byte(n))
	case n < 1<<16:
		f = append(f, 0x80|126)
		f = binary.BigEndian.AppendUint16(f, uint16(n))
	default:
		f = append(f, 0x80|127)
		f = binary.BigEndian.AppendUint64(f, uint64(n))
	}
	var mask [4]byte
	rand.Read(mask[:])
	f = append(f, mask[:]...)
	for i, b := range p {
		f = append(f, b^mask[i%4])
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_, err := c.conn.Write(f)
	return err
}

func (c *client) close() { c.conn.Close() }
