package cmd

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestReferenceDocsAreCurrent fails when docs/reference no longer matches
// the command tree; `make docs` regenerates it.
func TestReferenceDocsAreCurrent(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, GenerateReference(dir))
	want, err := filepath.Glob(filepath.Join(dir, "*.md"))
	require.NoError(t, err)
	require.NotEmpty(t, want)

	committed, err := filepath.Glob("../../docs/reference/*.md")
	require.NoError(t, err)
	assert.Len(t, committed, len(want), "docs/reference has a different set of pages: run make docs")
	for _, path := range want {
		name := filepath.Base(path)
		fresh, err := os.ReadFile(path)
		require.NoError(t, err)
		old, err := os.ReadFile(filepath.Join("../../docs/reference", name))
		if !assert.NoError(t, err, "docs/reference/%s is missing: run make docs", name) {
			continue
		}
		assert.Equal(t, string(fresh), string(old), "docs/reference/%s is stale: run make docs", name)
	}
}
