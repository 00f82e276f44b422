package wait

import (
	"context"
	"testing"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestQuietContext(t *testing.T) {
	// Without a logger, client-go gets a discarding one instead of the
	// global klog logger.
	l, err := logr.FromContext(quietContext(context.Background()))
	require.NoError(t, err)
	assert.Nil(t, l.GetSink())

	// A logger the caller put into the context is kept.
	var lines []string
	mine := funcr.New(func(prefix, args string) { lines = append(lines, args) }, funcr.Options{})
	l, err = logr.FromContext(quietContext(logr.NewContext(context.Background(), mine)))
	require.NoError(t, err)
	l.Info("hello")
	assert.Len(t, lines, 1)
}
