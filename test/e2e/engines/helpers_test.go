package engines

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/kubectl-sts/kubectl-sts/pkg/kube"
	"github.com/kubectl-sts/kubectl-sts/pkg/wait"
	"github.com/kubectl-sts/kubectl-sts/plugins"
	"github.com/kubectl-sts/kubectl-sts/test/testbed"
)

// Generous: the machine is shared, and nothing here measures speed.
const waitTimeout = 2 * time.Minute

// bed is one StatefulSet on the test bed whose pods' exec runs local
// clients pointed at real servers.
type bed struct {
	t       *testing.T
	ns      string
	sts     *appsv1.StatefulSet
	exec    kube.Executor
	tracker *wait.Tracker
}

// newBed creates a StatefulSet of len(envs) replicas with image, maps
// each pod's exec to the local machine with its environment, and waits
// until every pod is Ready and its mapping answers.
func newBed(t *testing.T, name, image string, envs []map[string]string) *bed {
	t.Helper()
	ctx := context.Background()
	ns := cluster.NewNamespace(t)
	replicas := int32(len(envs))
	labels := map[string]string{"app": name}
	sts := &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: appsv1.StatefulSetSpec{
			Replicas:            &replicas,
			ServiceName:         name,
			PodManagementPolicy: appsv1.ParallelPodManagement,
			Selector:            &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{
					{Name: "metrics", Image: "prometheuscommunity/postgres-exporter:v0.15.0"},
					{Name: "db", Image: image},
				}},
			},
		},
	}
	for i, env := range envs {
		env["KUBECTL_STS_TEST_POD"] = fmt.Sprintf("%s-%d", name, i)
		err := cluster.MapExec(ctx, testbed.ExecMapping{Namespace: ns, Pod: fmt.Sprintf("%s-%d", name, i), Env: env, WorkDir: t.TempDir()})
		require.NoError(t, err)
	}
	created, err := cluster.Client.AppsV1().StatefulSets(ns).Create(ctx, sts, metav1.CreateOptions{})
	require.NoError(t, err)
	b := &bed{t: t, ns: ns, sts: created, exec: cluster.Executor()}

	tctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	b.tracker = wait.NewTracker(cluster.Client, ns, name)
	require.NoError(t, b.tracker.Start(tctx))
	require.NoError(t, wait.WaitGates(ctx, b.tracker, waitTimeout, wait.StatefulSetReady(name)))

	// KWOK applies a mapping asynchronously: wait until each pod's exec
	// runs with its own environment.
	for i := range envs {
		pod := fmt.Sprintf("%s-%d", name, i)
		deadline := time.Now().Add(waitTimeout)
		for {
			res, err := b.exec.Exec(ctx, kube.ExecRequest{Namespace: ns, Pod: pod, Container: "db",
				Command: []string{"sh", "-c", `printf %s "$KUBECTL_STS_TEST_POD"`}})
			if err == nil && res.ExitCode == 0 && string(res.Stdout) == pod {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("exec in pod %s is not mapped: %v %q", pod, err, res.Stdout)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	return b
}

// target is what a command gives an engine: the StatefulSet's pods now.
func (b *bed) target() plugins.Target {
	b.t.Helper()
	snap := b.tracker.Snapshot()
	return plugins.Target{StatefulSet: snap.StatefulSet, Pods: snap.OrderedPods(), Exec: b.exec, Parallel: 2, Timeout: 30 * time.Second}
}

// scaleTo sets the replicas and waits until the pods above are gone.
func (b *bed) scaleTo(replicas int) {
	b.t.Helper()
	ctx := context.Background()
	old := *b.tracker.Snapshot().StatefulSet.Spec.Replicas
	patch := fmt.Sprintf(`{"spec":{"replicas":%d}}`, replicas)
	_, err := cluster.Client.AppsV1().StatefulSets(b.ns).Patch(ctx, b.sts.Name, types.MergePatchType, []byte(patch), metav1.PatchOptions{})
	require.NoError(b.t, err)
	var gates []wait.Gate
	for o := replicas; o < int(old); o++ {
		gates = append(gates, wait.PodGone(wait.PodName(b.sts.Name, o)))
	}
	require.NoError(b.t, wait.WaitGates(ctx, b.tracker, waitTimeout, gates...))
}

func members(t *testing.T, e plugins.Engine, tg plugins.Target) []plugins.Member {
	t.Helper()
	ms, err := e.Members(context.Background(), tg)
	require.NoError(t, err)
	b, _ := json.MarshalIndent(ms, "", "  ")
	t.Logf("%s members: %s", e.Name(), b)
	return ms
}

// closedPort is a loopback port nothing listens on: a pod mapped to it
// has no database.
func closedPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	port := l.Addr().(*net.TCPAddr).Port
	require.NoError(t, l.Close())
	return strconv.Itoa(port)
}

// mustNotLeak fails when a secret shows anywhere in what the engine said.
func mustNotLeak(t *testing.T, secret string, v any) {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	if strings.Contains(string(b), secret) {
		t.Fatalf("the password appears in the engine's output: %s", b)
	}
}

func events(t *testing.T) (*[]plugins.RemoveEvent, func(plugins.RemoveEvent)) {
	var got []plugins.RemoveEvent
	return &got, func(ev plugins.RemoveEvent) {
		t.Logf("event: %s %s: %s", ev.Action, ev.Object, ev.Message)
		got = append(got, ev)
	}
}
