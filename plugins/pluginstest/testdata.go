package pluginstest

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Testdata returns the file name of the test's testdata directory: client
// output recorded from a real server.
func Testdata(t testing.TB, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	require.NoError(t, err)
	return string(b)
}

// TestdataJSON returns the JSON object in the file name of the test's
// testdata directory.
func TestdataJSON(t testing.TB, name string) map[string]any {
	t.Helper()
	var doc map[string]any
	require.NoError(t, json.Unmarshal([]byte(Testdata(t, name)), &doc))
	return doc
}

// AssertMatches checks that matches, an engine's Matches, claims every
// image of claimed and none of others.
func AssertMatches(t *testing.T, matches func(image string) bool, claimed, others []string) {
	t.Helper()
	for _, img := range claimed {
		assert.True(t, matches(img), img)
	}
	for _, img := range others {
		assert.False(t, matches(img), img)
	}
}
