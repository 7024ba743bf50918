package testenv

import (
	"bytes"
	"sync"
)

// Buffer is a bytes.Buffer safe to write from the goroutines under test (a
// command's output, a worker's log) and read from the test.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *Buffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *Buffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
