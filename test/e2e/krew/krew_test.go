// Package krew tests the plugin the way users get it: the release archive
// installed into a plugin directory laid out as krew lays it out, found and
// run by a real kubectl against a real control plane.
package krew

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
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

	"github.com/kubectl-sts/kubectl-sts/test/e2e/e2eutil"
	"github.com/kubectl-sts/kubectl-sts/test/testbed"
)

var cluster *testbed.Cluster

func TestMain(m *testing.M) { os.Exit(testbed.Main(m, testbed.Options{Name: "krew"}, &cluster)) }

// install unpacks this platform's release archive the way krew does:
// <root>/store/sts/<version>/ holds the files, <root>/bin/kubectl-sts links
// to the binary. The completion helper is linked as docs/install says.
func install(t *testing.T) (binDir, version string) {
	t.Helper()
	pattern := filepath.Join("..", "..", "..", "dist", fmt.Sprintf("kubectl-sts_*_%s_%s.tar.gz", runtime.GOOS, runtime.GOARCH))
	matches, err := filepath.Glob(pattern)
	require.NoError(t, err)
	require.Len(t, matches, 1, "exactly one release archive for this platform in dist/: run make dist (make test does)")
	archive := matches[0]
	version = strings.TrimSuffix(strings.TrimPrefix(filepath.Base(archive), "kubectl-sts_"), fmt.Sprintf("_%s_%s.tar.gz", runtime.GOOS, runtime.GOARCH))

	root := t.TempDir()
	store := filepath.Join(root, "store", "sts", version)
	require.NoError(t, os.MkdirAll(store, 0o755))
	untar(t, archive, store)
	binDir = filepath.Join(root, "bin")
	require.NoError(t, os.MkdirAll(binDir, 0o755))
	require.NoError(t, os.Symlink(filepath.Join(store, "kubectl-sts"), filepath.Join(binDir, "kubectl-sts")))
	require.NoError(t, os.Symlink(filepath.Join(store, "kubectl_complete-sts"), filepath.Join(binDir, "kubectl_complete-sts")))
	return binDir, version
}

func untar(t *testing.T, archive, dest string) {
	t.Helper()
	f, err := os.Open(archive)
	require.NoError(t, err)
	defer f.Close()
	gz, err := gzip.NewReader(f)
	require.NoError(t, err)
	tr := tar.NewReader(gz)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return
		}
		require.NoError(t, err)
		require.False(t, strings.Contains(h.Name, ".."), "archive entry %q escapes the directory", h.Name)
		out, err := os.OpenFile(filepath.Join(dest, h.Name), os.O_CREATE|os.O_WRONLY, os.FileMode(h.Mode))
		require.NoError(t, err)
		_, err = io.Copy(out, tr)
		require.NoError(t, err)
		require.NoError(t, out.Close())
	}
}

// kubectl runs the test bed's kubectl with only the plugin directory and
// the system directories on PATH, as a user's shell would.
func kubectl(t *testing.T, binDir, kubeconfig string, args ...string) (string, string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, cluster.KubectlPath, args...)
	cmd.Env = []string{
		"PATH=" + binDir + ":" + filepath.Dir(cluster.KubectlPath) + ":/usr/bin:/bin",
		"KUBECONFIG=" + kubeconfig,
		"HOME=" + t.TempDir(),
		"NO_COLOR=1",
	}
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

func TestKubectlFindsAndRunsThePlugin(t *testing.T) {
	binDir, version := install(t)
	kubeconfig, realContext := kubeconfigWithDecoy(t)
	ns := cluster.NewNamespace(t)
	createStatefulSet(t, ns, "web")

	out, _, code := kubectl(t, binDir, kubeconfig, "plugin", "list")
	require.Equal(t, 0, code)
	assert.Contains(t, out, filepath.Join(binDir, "kubectl-sts"))

	out, stderr, code := kubectl(t, binDir, kubeconfig, "sts", "version", "--context", realContext)
	require.Equal(t, 0, code, stderr)
	assert.Contains(t, out, "Client Version: "+version)
	assert.Contains(t, out, "Server Version: v1.", "the server answered through --context")

	// Without --context the decoy is used: the same command cannot reach a server.
	out, _, _ = kubectl(t, binDir, kubeconfig, "sts", "version")
	assert.Contains(t, out, "Server Version: unavailable")

	out, stderr, code = kubectl(t, binDir, kubeconfig, "sts", "status", "web", "--context", realContext, "-n", ns)
	require.Equal(t, 0, code, "status of a ready StatefulSet through kubectl: %s%s", out, stderr)
	assert.Contains(t, out, "web")

	// -n reaches the plugin: the same name in another namespace is not found.
	_, stderr, code = kubectl(t, binDir, kubeconfig, "sts", "status", "web", "--context", realContext, "-n", "default")
	assert.NotEqual(t, 0, code)
	assert.Contains(t, stderr, `not found in namespace "default"`)
	assert.Contains(t, stderr, "add -n "+ns, "the hint names the namespace that has it")
}

func TestCompletionThroughKubectl(t *testing.T) {
	binDir, _ := install(t)
	kubeconfig, realContext := kubeconfigWithDecoy(t)
	ns := cluster.NewNamespace(t)
	createStatefulSet(t, ns, "orders")

	// kubectl asks kubectl_complete-sts for everything after the plugin name.
	out, stderr, code := kubectl(t, binDir, kubeconfig, "__complete", "sts", "")
	require.Equal(t, 0, code, stderr)
	for _, sub := range []string{"status", "rollout", "scale-down", "expand-pvc", "version"} {
		assert.Contains(t, out, sub+"\t", "subcommand %s is offered", sub)
	}

	out, stderr, code = kubectl(t, binDir, kubeconfig, "__complete", "sts", "status", "--context", realContext, "-n", ns, "or")
	require.Equal(t, 0, code, stderr)
	assert.Contains(t, strings.Split(out, "\n"), "orders", "StatefulSet names come from the cluster")

	out, stderr, code = kubectl(t, binDir, kubeconfig, "__complete", "sts", "status", "--")
	require.Equal(t, 0, code, stderr)
	assert.Contains(t, out, "--namespace", "flags are offered")
}
