package chat

import (
	"bufio"
	"encoding/binary"
	"net"
	"net/http"
	"sync"
)

// wholeFrames makes the connection that websocket.Accept hijacks from w
// hand the kernel whole WebSocket frames, one write system call each.
// coder/websocket writes a frame's header into its 4 KiB buffered writer,
// then the payload: a frame larger than the buffer (a 100 ms batch of a
// busy room is 5–20 KiB) went out in two or more writes, and those system
// calls were most of an edge's CPU under make bench-chat.
func wholeFrames(w http.ResponseWriter) http.ResponseWriter { return &framesHijacker{w} }

type framesHijacker struct{ http.ResponseWriter }

// Unwrap lets http.ResponseController reach the server's writer.
func (h *framesHijacker) Unwrap() http.ResponseWriter { return h.ResponseWriter }

func (h *framesHijacker) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, brw, err := http.NewResponseController(h.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	// net/http empties the writer before handing it over (the 101
	// response is already on the wire); flush anyway rather than drop
	// bytes if that ever changes.
	if err := brw.Writer.Flush(); err != nil {
		c.Close()
		return nil, nil, err
	}
	brw.Writer.Reset(&frameWriter{conn: c})
	return c, brw, nil
}

// maxHeld is the largest frame a frameWriter assembles; larger ones go out
// as they come (a catch-up frame of hundreds of messages: rare, and its
// extra write is small beside its size).
const maxHeld = 64 << 10

// held are the buffers frames are assembled in, shared by every socket:
// one is taken only while a frame is between its first and last write.
var held = sync.Pool{New: func() any { b := make([]byte, 0, 16<<10); return &b }}

// frameWriter is a connection's writer under coder/websocket's buffered
// writer, which flushes at the end of every frame: it writes through what
// ends on a frame boundary and holds a frame's first part until its end
// arrives. It is only called with the socket's write lock held.
type frameWriter struct {
	conn net.Conn
	part *[]byte // a frame's start, nil on a frame boundary
	// pass: bytes of a frame larger than maxHeld still to write through.
	pass int
}

func (w *frameWriter) Write(p []byte) (int, error) {
	n := len(p)
	if w.pass > 0 {
		k := min(w.pass, len(p))
		if _, err := w.conn.Write(p[:k]); err != nil {
			return 0, err
		}
		w.pass -= k
		p = p[k:]
		if len(p) == 0 {
			return n, nil
		}
	}
	b := p
	if w.part != nil {
		*w.part = append(*w.part, p...)
		b = *w.part
	}
	switch end, size := frameEnd(b); {
	case end == len(b):
		_, err := w.conn.Write(b)
		w.release()
		if err != nil {
			return 0, err
		}
	case size > maxHeld:
		// Too large to hold: what has come so far goes now, the rest of
		// this frame as it comes; the next frame starts on a boundary.
		_, err := w.conn.Write(b)
		w.release()
		if err != nil {
			return 0, err
		}
		w.pass = end + size - len(b)
	case w.part == nil:
		w.part = held.Get().(*[]byte)
		*w.part = append((*w.part)[:0], p...)
	}
	return n, nil
}

func (w *frameWriter) release() {
	if w.part != nil {
		held.Put(w.part)
		w.part = nil
	}
}

// frameEnd walks the frames in b, which starts on a frame boundary: end
// is where the last complete frame ends (len(b) when b is whole frames),
// size the length, header included, of the incomplete frame after it (0
// while its header is incomplete).
func frameEnd(b []byte) (end, size int) {
	for end < len(b) {
		size = frameSize(b[end:])
		if size == 0 || end+size > len(b) {
			return end, size
		}
		end += size
	}
	return end, 0
}

// frameSize is the length of the frame b starts with, header included
// (RFC 6455 §5.2), or 0 while b is shorter than its header.
func frameSize(b []byte) int {
	if len(b) < 2 {
		return 0
	}
	hdr, n := 2, int(b[1]&0x7f)
	switch n {
	case 126:
		hdr += 2
	case 127:
		hdr += 8
	}
	if b[1]&0x80 != 0 {
		hdr += 4 // masked: only clients mask, but count it if present
	}
	if len(b) < hdr {
		return 0
	}
	switch n {
	case 126:
		n = int(binary.BigEndian.Uint16(b[2:]))
	case 127:
		n = int(min(binary.BigEndian.Uint64(b[2:]), 1<<40))
	}
	return hdr + n
}
