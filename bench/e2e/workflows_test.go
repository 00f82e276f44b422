package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubectl-sts/kubectl-sts/test/e2e/e2eutil"
	"github.com/kubectl-sts/kubectl-sts/test/testbed"
)

// measured is a command run a few times: the fastest wall time, the
// median, the largest peak RSS and the requests of the last run.
type measured struct {
	min, median time.Duration
	maxRSS      int64
	reqs        []request
}

func measure(t *testing.T, times int, name string, args ...string) measured {
	t.Helper()
	return measureExit(t, times, []int{0}, name, args...)
}

// measureExit is measure for a command whose exit code may be one of codes
// (status tells a degraded StatefulSet by its exit code).
func measureExit(t *testing.T, times int, codes []int, name string, args ...string) measured {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), bound)
	defer cancel()
	var walls []time.Duration
	var m measured
	for range times {
		p := runProc(ctx, name, args...)
		require.Contains(t, codes, p.code, "%s %v: %s\n%s", name, args, p.stdout, tailLines(p.stderr, 20))
		walls = append(walls, p.wall)
		m.maxRSS = max(m.maxRSS, p.maxRSS)
		m.reqs = requests(p.stderr)
	}
	m.min, m.median = minMedian(walls)
	return m
}

// parallelSet returns a StatefulSet whose pods start all at once, for the
// benchmarks that only need them there.
func parallelSet(ns, name string, n int, image string, claims ...string) *appsv1.StatefulSet {
	s := e2eutil.NewStatefulSet(ns, name, int32(n), image, claims...)
	s.Spec.PodManagementPolicy = appsv1.ParallelPodManagement
	return s
}

func createSettled(t *testing.T, s *appsv1.StatefulSet) {
	t.Helper()
	_, err := cluster.Client.AppsV1().StatefulSets(s.Namespace).Create(context.Background(), s, metav1.CreateOptions{})
	require.NoError(t, err)
	settle(t, s.Namespace, s.Name)
}

// statusBench runs `kubectl sts status` over n ready pods.
func statusBench(t *testing.T, plugin string, n int) measured {
	ns := cluster.NewNamespace(t)
	createSettled(t, parallelSet(ns, "db", n, imageA))
	return measure(t, 3, plugin, "status", "db", "-n", ns, "--engine", "none", "-v=6")
}

// fanoutBench runs `kubectl sts status --engine redis` over n pods whose
// every exec (through the real exec path: kube-apiserver, then the test
// bed's kubelet) answers after 200 ms with a recorded INFO reply.
func fanoutBench(t *testing.T, plugin string, n int) measured {
	ns := cluster.NewNamespace(t)
	dir := t.TempDir()
	info, err := os.ReadFile(filepath.Join(repoRoot(), "plugins", "redis", "testdata", "primary.txt"))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "info.txt"), info, 0o644))
	script := "#!/bin/sh\nsleep 0.2\ncat " + filepath.Join(dir, "info.txt") + "\n"
	require.NoError(t, os.WriteFile(filepath.Join(dir, "redis-cli"), []byte(script), 0o755))
	require.NoError(t, cluster.MapExec(context.Background(), testbed.ExecMapping{Namespace: ns,
		Env: map[string]string{"PATH": dir + ":" + os.Getenv("PATH")}}))
	createSettled(t, parallelSet(ns, "cache", n, "redis:7.2"))
	// A new mapping takes effect within a second or so.
	e2eutil.Poll{Timeout: time.Minute}.Until(t, "the exec mapping", func(ctx context.Context) (bool, error) {
		// Through sh, as the engine runs it: the mapping's PATH applies
		// inside the command, not to the lookup of the command itself.
		out, err := cluster.Kubectl(ctx, "exec", "-n", ns, "cache-0", "--", "sh", "-c", "redis-cli INFO")
		return err == nil && len(out) > 0, nil
	})
	// Every member answers as a primary: status may call that degraded.
	return measureExit(t, 3, []int{0, 3}, plugin, "status", "cache", "-n", ns, "--engine", "redis")
}

// pair is the plugin and its runbook doing the same work.
type pair struct {
	plugin, runbook proc
	pluginReqs      []request
}

// expandBench grows the claims of n ordinals with expand-pvc and with the
// runbook loop, each on its own StatefulSet.
func expandBench(t *testing.T, plugin string, n int) pair {
	ctx, cancel := context.WithTimeout(context.Background(), bound)
	defer cancel()
	a, b := cluster.NewNamespace(t), cluster.NewNamespace(t)
	createSettled(t, e2eutil.NewStatefulSet(a, "db", int32(n), imageA, "data"))
	createSettled(t, e2eutil.NewStatefulSet(b, "db", int32(n), imageA, "data"))
	var out pair
	out.plugin = runProc(ctx, plugin, "expand-pvc", "db", "-n", a, "--size", "2Gi", "--restart", "always", "--no-update-template", "--engine", "none", "--yes", "-v=6")
	require.Equal(t, 0, out.plugin.code, tailLines(out.plugin.stderr, 20))
	out.pluginReqs = requests(out.plugin.stderr)
	out.runbook = runProc(ctx, "bash", filepath.Join(repoRoot(), "bench", "runbooks", "expand-pvc.sh"), b, "db", "data", "2Gi")
	require.Equal(t, 0, out.runbook.code, out.runbook.stderr)
	return out
}

// scaleDownBench removes n ordinals (n+1 replicas down to 1) and their
// claims with scale-down and with the runbook loop.
func scaleDownBench(t *testing.T, plugin string, n int) pair {
	ctx, cancel := context.WithTimeout(context.Background(), bound)
	defer cancel()
	a, b := cluster.NewNamespace(t), cluster.NewNamespace(t)
	createSettled(t, e2eutil.NewStatefulSet(a, "db", int32(n+1), imageA, "data"))
	createSettled(t, e2eutil.NewStatefulSet(b, "db", int32(n+1), imageA, "data"))
	var out pair
	out.plugin = runProc(ctx, plugin, "scale-down", "db", "-n", a, "--replicas", "1", "--pvc", "delete", "--engine", "none", "--yes", "-v=6")
	require.Equal(t, 0, out.plugin.code, tailLines(out.plugin.stderr, 20))
	out.pluginReqs = requests(out.plugin.stderr)
	out.runbook = runProc(ctx, "bash", filepath.Join(repoRoot(), "bench", "runbooks", "scale-down.sh"), b, "db", "data", "1")
	require.Equal(t, 0, out.runbook.code, out.runbook.stderr)
	return out
}

// memoryBench measures status and the first step of a rollout over n
// pods: peak RSS and wall time.
func memoryBench(t *testing.T, plugin string, n int) (status measured, rollout proc) {
	roomFor(t, n)
	ns := cluster.NewNamespace(t)
	s := parallelSet(ns, "db", n, imageA)
	createSettled(t, s)
	status = measure(t, 1, plugin, "status", "db", "-n", ns, "--engine", "none")
	pend(t, ns, "db", imageB, int32(n))
	ctx, cancel := context.WithTimeout(context.Background(), bound)
	defer cancel()
	// One canary step, then the pause ends the run: the rollout holds its
	// watches over all n pods throughout.
	rollout = runProc(ctx, plugin, "rollout", "db", "-n", ns, "--staged", "--steps", "1,100%", "--pause-after", "1", "--engine", "none", "--yes")
	require.NotEqual(t, -1, rollout.code, rollout.stderr)
	require.Contains(t, rollout.stdout+rollout.stderr, "paused after step 1", "exit %d", rollout.code)
	return status, rollout
}

// startup runs `kubectl sts version --client`: the process alone.
func startup(t *testing.T, plugin string, times int) measured {
	return measure(t, times, plugin, "version", "--client")
}

func fileSize(t *testing.T, path string) int64 {
	fi, err := os.Stat(path)
	require.NoError(t, err)
	return fi.Size()
}

func itoa(n int) string { return strconv.Itoa(n) }

// drained waits until no namespace of the benchmark is left terminating.
func drained(t *testing.T) {
	t.Helper()
	var left []string
	e2eutil.Poll{Timeout: 10 * time.Minute, Describe: func() string { return "still terminating: " + strings.Join(left, ", ") }}.Until(t, "the namespaces of the finished parts to be gone", func(ctx context.Context) (bool, error) {
		list, err := cluster.Client.CoreV1().Namespaces().List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, err
		}
		left = left[:0]
		for _, ns := range list.Items {
			if ns.Status.Phase == corev1.NamespaceTerminating {
				left = append(left, ns.Name)
			}
		}
		return len(left) == 0, nil
	})
}

// roomFor fails unless the nodes have room for n more pods.
func roomFor(t *testing.T, n int) {
	t.Helper()
	ctx := context.Background()
	nodes, err := cluster.Client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	require.NoError(t, err)
	pods, err := cluster.Client.CoreV1().Pods("").List(ctx, metav1.ListOptions{})
	require.NoError(t, err)
	capacity := int64(0)
	for _, nd := range nodes.Items {
		capacity += nd.Status.Allocatable.Pods().Value()
	}
	require.GreaterOrEqual(t, capacity-int64(len(pods.Items)), int64(n),
		"the test bed's %d nodes take %d pods and hold %d: no room for %d more (testbed.Options.PodsPerNode)", len(nodes.Items), capacity, len(pods.Items), n)
}
