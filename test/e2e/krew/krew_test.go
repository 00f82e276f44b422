// Package krew tests the plugin the way users get it: the real krew client
// installs, upgrades and uninstalls the archives and manifests GoReleaser
// built (make dist-host), and a real kubectl finds and runs the plugin
// against a real control plane.
package krew

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/yaml"

	krewcheck "github.com/kubectl-sts/kubectl-sts/hack/krew"
	"github.com/kubectl-sts/kubectl-sts/test/e2e/e2eutil"
	"github.com/kubectl-sts/kubectl-sts/test/testbed"
)

var cluster *testbed.Cluster

func TestMain(m *testing.M) { os.Exit(testbed.Main(m, testbed.Options{Name: "krew"}, &cluster)) }

// dist is where make dist-host leaves this platform's build, and the
// earlier snapshot the upgrade starts from in dist/previous.
const dist = "../../../dist"

// build is one GoReleaser build: its manifest and this platform's archive.
type build struct {
	manifestPath string
	manifest     *krewcheck.Manifest
	archive      string
}

func loadBuild(t *testing.T, dir string) build {
	t.Helper()
	dir, err := filepath.Abs(dir)
	require.NoError(t, err)
	b := build{manifestPath: filepath.Join(dir, "sts.yaml")}
	b.manifest, err = krewcheck.Load(b.manifestPath)
	require.NoError(t, err, "run `make dist-host` (make test does) to build it")
	for _, p := range b.manifest.Spec.Platforms {
		if p.OSArch() == runtime.GOOS+"/"+runtime.GOARCH {
			b.archive = filepath.Join(dir, path.Base(p.URI))
		}
	}
	require.FileExists(t, b.archive, "the archive for %s/%s", runtime.GOOS, runtime.GOARCH)
	return b
}

// user is a shell of a krew user: a fresh KREW_ROOT whose plugin index is a
// git clone (as krew's installer leaves it) of a local index repository,
// krew's bin directory and kubectl on PATH.
type user struct {
	root, home, index string
	path              string
	kubeconfig        string
}

func newUser(t *testing.T, kubeconfig string) *user {
	t.Helper()
	krewDir := os.Getenv(krewcheck.EnvToolsDir)
	require.NotEmpty(t, krewDir, "$%s must name the directory of kubectl-krew (make test installs it and sets it)", krewcheck.EnvToolsDir)
	require.FileExists(t, filepath.Join(krewDir, "kubectl-krew"))
	u := &user{root: t.TempDir(), home: t.TempDir(), index: filepath.Join(t.TempDir(), "krew-index"), kubeconfig: kubeconfig}
	u.path = strings.Join([]string{filepath.Join(u.root, "bin"), krewDir, filepath.Dir(cluster.KubectlPath), "/usr/bin", "/bin"}, ":")

	require.NoError(t, os.MkdirAll(filepath.Join(u.index, "plugins"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(u.index, "plugins", ".keep"), nil, 0o644))
	u.git(t, u.index, "init", "-q", "-b", "main")
	u.git(t, u.index, "add", ".")
	u.git(t, u.index, "commit", "-q", "-m", "an empty plugin index")
	u.git(t, "", "clone", "-q", u.index, filepath.Join(u.root, "index", "default"))
	return u
}

func (u *user) env() []string {
	return []string{"PATH=" + u.path, "HOME=" + u.home, "KREW_ROOT=" + u.root, "KUBECONFIG=" + u.kubeconfig, "NO_COLOR=1"}
}

func (u *user) git(t *testing.T, dir string, args ...string) {
	t.Helper()
	cmd := exec.Command("git", append([]string{"-c", "user.name=index", "-c", "user.email=index@example.invalid"}, args...)...)
	cmd.Dir, cmd.Env = dir, u.env()
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "git %v: %s", args, out)
}

// run runs a program as the user would and returns stdout, stderr and the
// exit code.
func (u *user) run(t *testing.T, name string, args ...string) (string, string, int) {
	t.Helper()
	return u.runIn(t, "", name, args...)
}

// runIn is run in the directory dir.
func (u *user) runIn(t *testing.T, dir, name string, args ...string) (string, string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir, cmd.Env = dir, u.env()
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) {
		code = exitErr.ExitCode()
	} else {
		require.NoError(t, err)
	}
	return stdout.String(), stderr.String(), code
}

func (u *user) kubectl(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	return u.run(t, cluster.KubectlPath, args...)
}

func (u *user) mustKubectl(t *testing.T, args ...string) (string, string) {
	t.Helper()
	out, stderr, code := u.kubectl(t, args...)
	require.Equal(t, 0, code, "kubectl %s:\n%s%s", strings.Join(args, " "), out, stderr)
	return out, stderr
}

// firstLine is the first line of text that starts with prefix, without
// its indentation.
func firstLine(t *testing.T, text, prefix string) string {
	t.Helper()
	for _, line := range strings.Split(text, "\n") {
		if line = strings.TrimSpace(line); strings.HasPrefix(line, prefix) {
			return line
		}
	}
	t.Fatalf("no line starts with %q in:\n%s", prefix, text)
	return ""
}

// caveatStep runs the caveats' command line that starts with prefix, as
// the user pastes it into a shell.
func (u *user) caveatStep(t *testing.T, m *krewcheck.Manifest, prefix string) {
	t.Helper()
	line := firstLine(t, m.Spec.Caveats, prefix)
	out, stderr, code := u.run(t, "/bin/sh", "-c", line)
	require.Equal(t, 0, code, "%s\n%s%s", line, out, stderr)
}

// publish puts m into the user's plugin index as the index's maintainers
// would, with the archives served from baseURL instead of the release page.
func (u *user) publish(t *testing.T, m *krewcheck.Manifest, baseURL string) {
	t.Helper()
	mirrored := *m
	mirrored.Spec.Platforms = nil
	for _, p := range m.Spec.Platforms {
		p.URI = baseURL + "/" + path.Base(p.URI)
		mirrored.Spec.Platforms = append(mirrored.Spec.Platforms, p)
	}
	b, err := yaml.Marshal(mirrored)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(u.index, "plugins", "sts.yaml"), b, 0o644))
	u.git(t, u.index, "add", ".")
	u.git(t, u.index, "commit", "-q", "-m", "sts "+m.Spec.Version)
}

// assertCompletion checks `kubectl sts <TAB>` through kubectl and the
// kubectl_complete-sts helper.
func (u *user) assertCompletion(t *testing.T, realContext, ns, sts string) {
	t.Helper()
	out, _ := u.mustKubectl(t, "__complete", "sts", "")
	for _, sub := range []string{"status", "rollout", "scale-down", "cleanup", "expand-pvc", "version"} {
		assert.Contains(t, out, sub+"\t", "subcommand %s is offered", sub)
	}
	out, _ = u.mustKubectl(t, "__complete", "sts", "status", "--context", realContext, "-n", ns, sts[:2])
	assert.Contains(t, strings.Split(out, "\n"), sts, "StatefulSet names come from the cluster")
	out, _ = u.mustKubectl(t, "__complete", "sts", "status", "--")
	assert.Contains(t, out, "--namespace", "flags are offered")
}

// uninstall removes the plugin with krew and the helper as the caveats
// say, then checks that nothing of the plugin is left and krew still works.
func (u *user) uninstall(t *testing.T, m *krewcheck.Manifest) {
	t.Helper()
	_, stderr := u.mustKubectl(t, "krew", "uninstall", "sts")
	assert.Contains(t, stderr, "Uninstalled plugin: sts")
	u.caveatStep(t, m, "rm ")

	var left []string
	require.NoError(t, filepath.WalkDir(u.root, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && p == filepath.Join(u.root, "index") {
			return filepath.SkipDir // the plugin index, krew's own
		}
		if !d.IsDir() || p == filepath.Join(u.root, "store", "sts") {
			left = append(left, strings.TrimPrefix(p, u.root+"/"))
		}
		return nil
	}))
	assert.Empty(t, left, "nothing of the plugin is left in KREW_ROOT")

	out, _ := u.mustKubectl(t, "krew", "list")
	assert.NotContains(t, out, "sts")
	_, _, code := u.kubectl(t, "sts", "version")
	assert.NotEqual(t, 0, code, "kubectl no longer finds the plugin")
}

// kubeconfigWithDecoy copies the cluster's kubeconfig and makes a context
// that points nowhere the current one, so only --context reaches the
// cluster.
func kubeconfigWithDecoy(t *testing.T) (path, realContext string) {
	t.Helper()
	cfg, err := clientcmd.LoadFromFile(cluster.Kubeconfig)
	require.NoError(t, err)
	realContext = cfg.CurrentContext
	real := cfg.Contexts[realContext]
	require.NotNil(t, real)
	decoy := clientcmdapi.NewCluster()
	decoy.Server = "https://127.0.0.1:1"
	cfg.Clusters["decoy"] = decoy
	decoyCtx := clientcmdapi.NewContext()
	decoyCtx.Cluster, decoyCtx.AuthInfo = "decoy", real.AuthInfo
	cfg.Contexts["decoy"] = decoyCtx
	cfg.CurrentContext = "decoy"
	path = filepath.Join(t.TempDir(), "kubeconfig")
	require.NoError(t, clientcmd.WriteToFile(*cfg, path))
	return path, realContext
}

func createStatefulSet(t *testing.T, ns, name string) {
	t.Helper()
	ctx := context.Background()
	sts := e2eutil.NewStatefulSet(ns, name, 2, "example.com/app:1")
	_, err := cluster.Client.AppsV1().StatefulSets(ns).Create(ctx, sts, metav1.CreateOptions{})
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		got, err := cluster.Client.AppsV1().StatefulSets(ns).Get(ctx, name, metav1.GetOptions{})
		return err == nil && got.Status.ReadyReplicas == 2 && got.Status.ObservedGeneration >= got.Generation
	}, 2*time.Minute, 200*time.Millisecond, "statefulset %s/%s never became ready", ns, name)
}

// TestKrewInstallsTheBuild follows the README: krew installs the archive
// with the manifest GoReleaser rendered for it.
func TestKrewInstallsTheBuild(t *testing.T) {
	current := loadBuild(t, dist)
	version := current.manifest.Spec.Version
	kubeconfig, realContext := kubeconfigWithDecoy(t)
	u := newUser(t, kubeconfig)
	ns := cluster.NewNamespace(t)
	createStatefulSet(t, ns, "web")

	// The README's command, run literally in a checkout after make dist
	// (it asks go for the platform).
	readme, err := os.ReadFile(filepath.Join(dist, "..", "README.md"))
	require.NoError(t, err)
	install := firstLine(t, string(readme), "kubectl krew install --manifest=")
	goBin, err := exec.LookPath("go")
	require.NoError(t, err)
	u.path += ":" + filepath.Dir(goBin)
	out, stderr, code := u.runIn(t, filepath.Join(dist, ".."), "/bin/sh", "-c", install)
	require.Equal(t, 0, code, "%s\n%s%s", install, out, stderr)
	assert.Contains(t, stderr, "Installed plugin: sts")
	assert.Contains(t, stderr, "kubectl_complete-sts", "krew shows the completion step of the caveats")
	assert.FileExists(t, filepath.Join(u.root, "store", "sts", version, "LICENSE"))

	out, _ = u.mustKubectl(t, "plugin", "list")
	assert.Contains(t, out, filepath.Join(u.root, "bin", "kubectl-sts"))

	out, _ = u.mustKubectl(t, "sts", "version", "--context", realContext)
	assert.Contains(t, out, "Client Version: "+version)
	assert.Contains(t, out, "Server Version: v1.", "the server answered through --context")

	// Without --context the decoy is used: the same command cannot reach a server.
	out, _, _ = u.kubectl(t, "sts", "version")
	assert.Contains(t, out, "Server Version: unavailable")

	out, _ = u.mustKubectl(t, "sts", "status", "web", "--context", realContext, "-n", ns)
	assert.Contains(t, out, "web")

	// -n reaches the plugin: the same name in another namespace is not found.
	_, stderr, code = u.kubectl(t, "sts", "status", "web", "--context", realContext, "-n", "default")
	assert.NotEqual(t, 0, code)
	assert.Contains(t, stderr, `not found in namespace "default"`)
	assert.Contains(t, stderr, "add -n "+ns, "the hint names the namespace that has it")

	u.caveatStep(t, current.manifest, "cp ")
	u.assertCompletion(t, realContext, ns, "web")
	assert.Contains(t, string(readme), firstLine(t, current.manifest.Spec.Caveats, "cp "), "the README gives the caveats' completion step")

	u.uninstall(t, current.manifest)
}

// TestKrewUpgradeKeepsCompletion installs an earlier build from the plugin
// index, upgrades to this build the way `kubectl krew upgrade` users get
// releases, and checks completion across the upgrade.
func TestKrewUpgradeKeepsCompletion(t *testing.T) {
	previous, current := loadBuild(t, filepath.Join(dist, "previous")), loadBuild(t, dist)
	require.NotEqual(t, previous.manifest.Spec.Version, current.manifest.Spec.Version)
	server := httptest.NewServer(http.FileServer(http.Dir(filepath.Dir(current.archive))))
	t.Cleanup(server.Close)
	kubeconfig, realContext := kubeconfigWithDecoy(t)
	u := newUser(t, kubeconfig)
	ns := cluster.NewNamespace(t)
	createStatefulSet(t, ns, "orders")

	u.publish(t, previous.manifest, server.URL+"/previous")
	u.mustKubectl(t, "krew", "install", "sts")
	out, _ := u.mustKubectl(t, "sts", "version", "--context", realContext)
	assert.Contains(t, out, "Client Version: "+previous.manifest.Spec.Version)
	u.caveatStep(t, previous.manifest, "cp ")
	u.assertCompletion(t, realContext, ns, "orders")

	u.publish(t, current.manifest, server.URL)
	_, stderr := u.mustKubectl(t, "krew", "upgrade")
	assert.Contains(t, stderr, "Upgraded plugin: sts")
	out, _ = u.mustKubectl(t, "sts", "version", "--context", realContext)
	assert.Contains(t, out, "Client Version: "+current.manifest.Spec.Version)
	assert.NoDirExists(t, filepath.Join(u.root, "store", "sts", previous.manifest.Spec.Version), "krew removed the earlier version")

	fi, err := os.Lstat(filepath.Join(u.root, "bin", "kubectl_complete-sts"))
	require.NoError(t, err)
	assert.True(t, fi.Mode().IsRegular(), "the helper is a copy, not a link into krew's store")
	u.assertCompletion(t, realContext, ns, "orders")

	u.uninstall(t, current.manifest)
}
