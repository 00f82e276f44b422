package util

import (
	"bytes"
	"context"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// The first Ctrl-C stops cleanly; the second exits at once and says the
// lease stays until it expires.
func TestSecondInterruptSaysTheLeaseStays(t *testing.T) {
	var out syncBuffer
	exited := make(chan int, 1)
	ctx, stop := SignalContext(context.Background(), &out, func(code int) { exited <- code })
	defer stop()

	require.NoError(t, syscall.Kill(syscall.Getpid(), syscall.SIGINT))
	select {
	case <-ctx.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the first interrupt did not cancel the context")
	}
	require.NoError(t, syscall.Kill(syscall.Getpid(), syscall.SIGINT))
	select {
	case code := <-exited:
		assert.Equal(t, ExitInterrupted, code)
	case <-time.After(10 * time.Second):
		t.Fatal("the second interrupt did not exit")
	}
	assert.Contains(t, out.String(), "stopping cleanly")
	assert.Contains(t, out.String(), "the lease of a running operation stays until it expires (30s after its last heartbeat)")
}
