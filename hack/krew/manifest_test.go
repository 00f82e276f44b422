package krew

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"sigs.k8s.io/yaml"
)

// distDir is where `make dist` leaves the archives; `make test` builds them
// before running this package.
const distDir = "../../dist"

func load(t *testing.T, path string) *Manifest {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err, "run `make dist krew-manifest` (make test does) to produce %s", path)
	var m Manifest
	require.NoError(t, yaml.UnmarshalStrict(b, &m))
	return &m
}

// TestRenderedManifestMatchesArchives checks the manifest rendered from the
// freshly built archives the way krew would before installing.
func TestRenderedManifestMatchesArchives(t *testing.T) {
	m := load(t, filepath.Join(distDir, "krew-manifest.yaml"))
	require.NoError(t, Validate(m, distDir))
	assert.Len(t, m.Spec.Platforms, len(Platforms))

	sums, err := os.ReadFile(filepath.Join(distDir, "SHA256SUMS"))
	require.NoError(t, err)
	for _, p := range m.Spec.Platforms {
		assert.Contains(t, string(sums), p.Sha256+"  "+filepath.Base(p.URI), "SHA256SUMS agrees with the manifest")
		names, err := ArchiveFiles(filepath.Join(distDir, filepath.Base(p.URI)))
		require.NoError(t, err)
		assert.True(t, names["LICENSE"], "%s ships LICENSE", p.URI)
	}
}

// TestCommittedManifestIsWellFormed checks the manifest at the repository
// root; its hashes belong to the release it was rendered for.
func TestCommittedManifestIsWellFormed(t *testing.T) {
	m := load(t, "../../krew-manifest.yaml")
	require.NoError(t, Validate(m, ""))
	for _, p := range m.Spec.Platforms {
		assert.Contains(t, p.URI, "/"+m.Spec.Version+"/", "uri points at the manifest's own release")
	}
}

func TestValidateCatchesWhatKrewRejects(t *testing.T) {
	good := func() *Manifest {
		return &Manifest{
			APIVersion: "krew.googlecontainertools.github.com/v1alpha2", Kind: "Plugin",
			Metadata: Metadata{Name: "sts"},
			Spec: Spec{Version: "v1.2.3", Homepage: "https://x", ShortDescription: "one line", Description: "d",
				Platforms: []Platform{{
					Selector: Selector{MatchLabels: map[string]string{"os": "linux", "arch": "amd64"}},
					URI:      "https://x/a.tar.gz", Sha256: strings.Repeat("a", 64), Bin: "kubectl-sts",
					Files: []FileOp{{From: "kubectl-sts", To: "."}, {From: "LICENSE", To: "."}},
				}}},
		}
	}
	require.NoError(t, Validate(good(), ""))

	cases := map[string]struct {
		mutate func(*Manifest)
		want   string
	}{
		"not semver":        {func(m *Manifest) { m.Spec.Version = "1.2" }, "not a semantic version"},
		"multi-line short":  {func(m *Manifest) { m.Spec.ShortDescription = "a\nb" }, "one non-empty line"},
		"overlap":           {func(m *Manifest) { m.Spec.Platforms = append(m.Spec.Platforms, m.Spec.Platforms[0]) }, "overlaps"},
		"bad sha":           {func(m *Manifest) { m.Spec.Platforms[0].Sha256 = "xyz" }, "not a hex sha256"},
		"no license":        {func(m *Manifest) { m.Spec.Platforms[0].Files = m.Spec.Platforms[0].Files[:1] }, "LICENSE"},
		"missing selector":  {func(m *Manifest) { delete(m.Spec.Platforms[0].Selector.MatchLabels, "arch") }, "needs os and arch"},
		"wrong plugin name": {func(m *Manifest) { m.Metadata.Name = "statefulset" }, "metadata.name"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			m := good()
			c.mutate(m)
			err := Validate(m, "")
			require.Error(t, err)
			assert.Contains(t, err.Error(), c.want)
		})
	}
}

func TestValidateDetectsTamperedArchive(t *testing.T) {
	dir := t.TempDir()
	m := load(t, filepath.Join(distDir, "krew-manifest.yaml"))
	for _, p := range m.Spec.Platforms {
		b, err := os.ReadFile(filepath.Join(distDir, filepath.Base(p.URI)))
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(dir, filepath.Base(p.URI)), b, 0o644))
	}
	victim := filepath.Join(dir, filepath.Base(m.Spec.Platforms[0].URI))
	f, err := os.OpenFile(victim, os.O_APPEND|os.O_WRONLY, 0)
	require.NoError(t, err)
	_, err = f.Write([]byte("x"))
	require.NoError(t, err)
	require.NoError(t, f.Close())

	err = Validate(m, dir)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "sha256 of")
}
