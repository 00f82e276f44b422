package krew

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"testing"
	"text/template"
	"unicode/utf8"

	"github.com/spf13/cobra"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"sigs.k8s.io/yaml"

	"github.com/kubectl-sts/kubectl-sts/pkg/cmd"
	cmdutil "github.com/kubectl-sts/kubectl-sts/pkg/cmd/util"
)

const (
	// distDir is where GoReleaser leaves a build (make dist, or make
	// dist-host, which make test runs first).
	distDir      = "../../dist"
	templateFile = "../../krew-manifest.yaml"
	config       = "../../.goreleaser.yaml"
)

func buildManifest(t *testing.T) *Manifest {
	t.Helper()
	m, err := Load(filepath.Join(distDir, "sts.yaml"))
	require.NoError(t, err, "run `make dist-host` or `make dist` (make test does) to build dist/sts.yaml")
	return m
}

// validate runs krew's own manifest validator on the manifest at path.
func validate(t *testing.T, path string) (string, error) {
	t.Helper()
	dir := os.Getenv(EnvToolsDir)
	require.NotEmpty(t, dir, "$%s must name the directory of krew's validate-krew-manifest (make test sets it)", EnvToolsDir)
	bin := filepath.Join(dir, "validate-krew-manifest")
	require.FileExists(t, bin, "run make test, which installs it")
	// -skip-install: installing downloads the uri, which is not published
	// for a snapshot; the e2e test in test/e2e/krew installs with krew.
	out, err := exec.Command(bin, "-manifest", path, "-skip-install").CombinedOutput()
	return string(out), err
}

func TestKrewValidatorAcceptsTheBuildManifest(t *testing.T) {
	out, err := validate(t, filepath.Join(distDir, "sts.yaml"))
	require.NoError(t, err, out)
}

// goreleaserTargets are the os/arch pairs .goreleaser.yaml builds.
func goreleaserTargets(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(config)
	require.NoError(t, err)
	var cfg struct {
		Builds []struct {
			Targets []string `json:"targets"`
		} `json:"builds"`
	}
	require.NoError(t, yaml.Unmarshal(b, &cfg))
	require.Len(t, cfg.Builds, 1)
	var out []string
	for _, target := range cfg.Builds[0].Targets {
		parts := strings.Split(target, "_")
		out = append(out, parts[0]+"/"+parts[1])
	}
	return out
}

// TestBuildManifestMatchesArchives checks what krew checks when it installs
// (the archive's sha256, the bin inside it) and what krew-index reviewers
// ask for (a LICENSE), for every platform of the build.
func TestBuildManifestMatchesArchives(t *testing.T) {
	m := buildManifest(t)
	require.NotEmpty(t, m.Spec.Platforms)
	sums, err := os.ReadFile(filepath.Join(distDir, "SHA256SUMS"))
	require.NoError(t, err)
	commitTime := commitTimestamp(t)

	for _, p := range m.Spec.Platforms {
		t.Run(p.OSArch(), func(t *testing.T) {
			assert.Contains(t, goreleaserTargets(t), p.OSArch(), "a platform .goreleaser.yaml builds")
			name := path.Base(p.URI)
			assert.Equal(t, "https://github.com/kubectl-sts/kubectl-sts/releases/download/"+m.Spec.Version+"/"+name, p.URI,
				"the uri is the release asset of the manifest's version")
			assert.Equal(t, fmt.Sprintf("kubectl-sts_%s_%s_%s.tar.gz", m.Spec.Version, p.Selector.MatchLabels["os"], p.Selector.MatchLabels["arch"]), name)
			archive := filepath.Join(distDir, name)
			sum, err := FileSHA256(archive)
			require.NoError(t, err)
			assert.Equal(t, sum, p.Sha256, "sha256 of %s", name)
			assert.Contains(t, string(sums), p.Sha256+"  "+name, "SHA256SUMS agrees with the manifest")

			files, err := ArchiveFiles(archive)
			require.NoError(t, err)
			assert.ElementsMatch(t, []string{p.Bin, "LICENSE", "kubectl_complete-sts"}, keys(files))
			wantBin := "kubectl-sts"
			if p.Selector.MatchLabels["os"] == "windows" {
				wantBin += ".exe"
			}
			assert.Equal(t, wantBin, p.Bin)
			for name, e := range files {
				assert.Equal(t, 0, e.UID, "%s owner", name)
				assert.Equal(t, 0, e.GID, "%s group", name)
				assert.Equal(t, commitTime, e.ModTime, "%s has the commit's time, so a rebuild gives the same bytes", name)
			}
			assert.Equal(t, int64(0o755), files[p.Bin].Mode, "bin is executable")
			assert.Equal(t, int64(0o755), files["kubectl_complete-sts"].Mode, "the completion helper is executable")
		})
	}
}

func commitTimestamp(t *testing.T) int64 {
	t.Helper()
	out, err := exec.Command("git", "log", "-1", "--format=%ct").Output()
	require.NoError(t, err)
	var ts int64
	_, err = fmt.Sscan(string(out), &ts)
	require.NoError(t, err)
	return ts
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// renderTemplate renders krew-manifest.yaml the way krew-release-bot does
// for a release tag: text/template with TagName, and addURIAndSha writing
// the uri and the sha256 of the asset it names (here from dist/, or a placeholder
// for a platform this build did not make).
func renderTemplate(t *testing.T, tag string) []byte {
	t.Helper()
	funcs := template.FuncMap{
		"addURIAndSha": func(url, tag string) (string, error) {
			u, err := template.New("url").Parse(url)
			if err != nil {
				return "", err
			}
			var buf bytes.Buffer
			if err := u.Execute(&buf, struct{ TagName string }{tag}); err != nil {
				return "", err
			}
			sum, err := FileSHA256(filepath.Join(distDir, path.Base(buf.String())))
			if os.IsNotExist(err) {
				sum, err = strings.Repeat("f", 64), nil
			}
			return fmt.Sprintf("uri: %s\n    sha256: %s", buf.String(), sum), err
		},
	}
	tmpl, err := template.New(filepath.Base(templateFile)).Funcs(funcs).ParseFiles(templateFile)
	require.NoError(t, err)
	var out bytes.Buffer
	require.NoError(t, tmpl.Execute(&out, struct{ TagName string }{tag}))
	return out.Bytes()
}

// TestReleaseTemplateAgreesWithTheBuild: the manifest krew-release-bot
// submits to krew-index for a tag is the manifest GoReleaser builds for it.
func TestReleaseTemplateAgreesWithTheBuild(t *testing.T) {
	built := buildManifest(t)
	rendered, err := Parse(renderTemplate(t, built.Spec.Version))
	require.NoError(t, err)

	// krew's validator accepts the rendered template, under the name krew-index uses.
	file := filepath.Join(t.TempDir(), "sts.yaml")
	require.NoError(t, os.WriteFile(file, renderTemplate(t, built.Spec.Version), 0o644))
	out, err := validate(t, file)
	require.NoError(t, err, out)

	assert.Equal(t, built.Metadata, rendered.Metadata)
	assert.Equal(t, built.Spec.Version, rendered.Spec.Version)
	assert.Equal(t, built.Spec.Homepage, rendered.Spec.Homepage)
	assert.Equal(t, built.Spec.ShortDescription, rendered.Spec.ShortDescription)
	assert.Equal(t, built.Spec.Description, rendered.Spec.Description)
	assert.Equal(t, built.Spec.Caveats, rendered.Spec.Caveats)

	var platforms []string
	for _, p := range rendered.Spec.Platforms {
		platforms = append(platforms, p.OSArch())
	}
	assert.ElementsMatch(t, goreleaserTargets(t), platforms, "the template offers every platform GoReleaser builds")
	for _, b := range built.Spec.Platforms {
		for _, r := range rendered.Spec.Platforms {
			if r.OSArch() == b.OSArch() {
				assert.Equal(t, b, r, "platform %s", b.OSArch())
			}
		}
	}
}

// TestManifestDescribesThePlugin: krew search cuts the short description
// at about 50 characters, and the description names every command.
func TestManifestDescribesThePlugin(t *testing.T) {
	m, err := Parse(renderTemplate(t, "v1.2.3"))
	require.NoError(t, err)
	assert.LessOrEqual(t, utf8.RuneCountInString(m.Spec.ShortDescription), 50, "shortDescription %q", m.Spec.ShortDescription)

	root := cmd.NewCmdRoot(cmdutil.NewOptions(genericiooptions.NewTestIOStreamsDiscard()))
	var names []string
	for _, c := range root.Commands() {
		if c.Hidden || c.Name() == "help" || c.Name() == cobra.ShellCompRequestCmd || c.Name() == "completion" {
			continue
		}
		names = append(names, c.Name())
		assert.Contains(t, m.Spec.Description, "kubectl sts "+c.Name()+" ", "the description names %s", c.Name())
	}
	assert.Contains(t, names, "cleanup")

	assert.Contains(t, m.Spec.Caveats, "kubectl_complete-sts", "the caveats give the completion step")
	assert.NotContains(t, m.Spec.Caveats, "ln -s", "a link into krew's store breaks on upgrade")
}

// TestSnapshotVersionIsKrewSemver: an untagged build names its commit in a
// version krew accepts (the validator checked it above); make build agrees.
func TestSnapshotVersionIsKrewSemver(t *testing.T) {
	m := buildManifest(t)
	sha, err := exec.Command("git", "rev-parse", "--short", "HEAD").Output()
	require.NoError(t, err)
	if tag, err := exec.Command("git", "describe", "--tags", "--exact-match", "--match", "v[0-9]*").Output(); err == nil {
		assert.Equal(t, strings.TrimSpace(string(tag)), m.Spec.Version)
		return
	}
	assert.Equal(t, "v0.0.0-dev+"+strings.TrimSpace(string(sha)), m.Spec.Version)
}
