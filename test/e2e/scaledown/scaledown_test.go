// Package scaledown tests `kubectl sts scale-down` and `cleanup-pvcs`
// end to end, against the real control plane of the test bed: the real
// StatefulSet controller removes the pods, the real API server deletes the
// claims, and the real garbage collector and PV controller do the rest.
package scaledown

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/utils/ptr"

	"github.com/kubectl-sts/kubectl-sts/pkg/cmd"
	cmdutil "github.com/kubectl-sts/kubectl-sts/pkg/cmd/util"
	"github.com/kubectl-sts/kubectl-sts/pkg/journal"
	"github.com/kubectl-sts/kubectl-sts/pkg/kube"
	"github.com/kubectl-sts/kubectl-sts/pkg/progress"
	"github.com/kubectl-sts/kubectl-sts/pkg/status"
	"github.com/kubectl-sts/kubectl-sts/test/e2e/e2eutil"
	"github.com/kubectl-sts/kubectl-sts/test/testbed"
)

var cluster *testbed.Cluster

func TestMain(m *testing.M) {
	os.Exit(testbed.Main(m, testbed.Options{Name: "e2e-scaledown"}, &cluster))
}

// generous bounds every wait of a test; a passing run stays far below.
const generous = 3 * time.Minute

// poll's timeouts say where the pods and claims of the tests stand.
var poll = e2eutil.Poll{Timeout: generous, Describe: describeNamespaces}

// newStatefulSet returns a StatefulSet with two claim templates (data and
// wal), whose image no engine claims.
func newStatefulSet(ns, name string, replicas int32) *appsv1.StatefulSet {
	return e2eutil.NewStatefulSet(ns, name, replicas, "registry.example/app:v1", "data", "wal")
}

// run executes `kubectl sts args...` in-process in namespace ns.
func run(t *testing.T, ns string, args ...string) e2eutil.Result {
	t.Helper()
	return e2eutil.Run(t, e2eutil.Client(cluster, ns), generous, args...)
}

func create(t *testing.T, sts *appsv1.StatefulSet) {
	t.Helper()
	_, err := cluster.Client.AppsV1().StatefulSets(sts.Namespace).Create(context.Background(), sts, metav1.CreateOptions{})
	require.NoError(t, err)
	poll.WaitSettled(t, cluster.Client, sts.Namespace, sts.Name)
}

// describeNamespaces dumps the pods and claims of the test's namespaces,
// for the failure message of a wait.
func describeNamespaces() string {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var b strings.Builder
	pods, err := cluster.Client.CoreV1().Pods("").List(ctx, metav1.ListOptions{})
	if err == nil {
		for _, p := range pods.Items {
			if strings.HasPrefix(p.Namespace, "t-") {
				fmt.Fprintf(&b, "pod %s/%s phase=%s node=%q conditions=%v\n", p.Namespace, p.Name, p.Status.Phase, p.Spec.NodeName, p.Status.Conditions)
			}
		}
	}
	pvcs, err := cluster.Client.CoreV1().PersistentVolumeClaims("").List(ctx, metav1.ListOptions{})
	if err == nil {
		for _, c := range pvcs.Items {
			fmt.Fprintf(&b, "pvc %s/%s phase=%s\n", c.Namespace, c.Name, c.Status.Phase)
		}
	}
	return b.String()
}

// objects is the identity (UID) and version of every pod and claim of a
// namespace, to prove what was and was not touched.
type objects struct {
	pods map[string]string
	pvcs map[string]string
}

func snapshot(t *testing.T, ns string) objects {
	t.Helper()
	ctx := context.Background()
	o := objects{pods: map[string]string{}, pvcs: map[string]string{}}
	pods, err := cluster.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
	require.NoError(t, err)
	for _, p := range pods.Items {
		if p.DeletionTimestamp == nil {
			o.pods[p.Name] = string(p.UID)
		}
	}
	pvcs, err := cluster.Client.CoreV1().PersistentVolumeClaims(ns).List(ctx, metav1.ListOptions{})
	require.NoError(t, err)
	for _, c := range pvcs.Items {
		if c.DeletionTimestamp == nil {
			o.pvcs[c.Name] = string(c.UID)
		}
	}
	return o
}

func keys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func replicas(t *testing.T, ns, name string) int32 {
	t.Helper()
	s, err := cluster.Client.AppsV1().StatefulSets(ns).Get(context.Background(), name, metav1.GetOptions{})
	require.NoError(t, err)
	return *s.Spec.Replicas
}

// deletions records the order in which pods are deleted.
func deletions(t *testing.T, ns string) func() []string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	w, err := cluster.Client.CoreV1().Pods(ns).Watch(ctx, metav1.ListOptions{})
	require.NoError(t, err)
	var mu sync.Mutex
	var order []string
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ev := range w.ResultChan() {
			if ev.Type == watch.Deleted {
				if p, ok := ev.Object.(*corev1.Pod); ok {
					mu.Lock()
					order = append(order, p.Name)
					mu.Unlock()
				}
			}
		}
	}()
	t.Cleanup(func() { cancel(); w.Stop(); <-done })
	return func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), order...)
	}
}

func operationRecord(t *testing.T, ns, name string) *journal.Record {
	t.Helper()
	rec, err := journal.New(cluster.Client, ns, name, "test").Load(context.Background())
	require.NoError(t, err)
	return rec
}

func lookalike(ns, name string, labels map[string]string) *corev1.PersistentVolumeClaim {
	return &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: labels},
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			Resources:   corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}},
		},
	}
}

func TestScaleDownDeletesExactlyTheRemovedOrdinalsPVCs(t *testing.T) {
	ns := cluster.NewNamespace(t)
	create(t, newStatefulSet(ns, "db", 5))
	// Claims that look like the StatefulSet's but are not: no selector
	// labels, or an ordinal the scale-down does not remove.
	for _, c := range []*corev1.PersistentVolumeClaim{
		lookalike(ns, "data-db-9", nil),
		lookalike(ns, "data-db-4-copy", map[string]string{"app": "db"}),
	} {
		_, err := cluster.Client.CoreV1().PersistentVolumeClaims(ns).Create(context.Background(), c, metav1.CreateOptions{})
		require.NoError(t, err)
	}
	before := snapshot(t, ns)
	order := deletions(t, ns)

	r := run(t, ns, "scale-down", "db", "--replicas", "3", "--pvc", "delete", "--yes", "--field-manager", "db-team-pipeline")
	require.Equal(t, 0, r.Code, r.ErrOut)
	// The writes name the field manager given on the command line.
	assert.Contains(t, e2eutil.FieldsOf(e2eutil.StatefulSet(t, cluster, ns, "db"), "db-team-pipeline"), `"f:replicas"`)
	assert.Contains(t, e2eutil.FieldsOf(e2eutil.JournalConfigMap(t, cluster, ns, "db"), "db-team-pipeline"), `"f:data"`)

	after := snapshot(t, ns)
	assert.Equal(t, []string{"db-0", "db-1", "db-2"}, keys(after.pods))
	for _, p := range []string{"db-0", "db-1", "db-2"} {
		assert.Equal(t, before.pods[p], after.pods[p], "pod %s was recreated", p)
	}
	assert.Equal(t, []string{"data-db-0", "data-db-1", "data-db-2", "data-db-4-copy", "data-db-9", "wal-db-0", "wal-db-1", "wal-db-2"}, keys(after.pvcs))
	for name, uid := range after.pvcs {
		assert.Equal(t, before.pvcs[name], uid, "pvc %s was replaced", name)
	}
	assert.Equal(t, []string{"db-4", "db-3"}, order(), "pods are removed one at a time from the top")
	assert.Equal(t, int32(3), replicas(t, ns, "db"))

	// db-4's claims were deleted before db-3 was scaled away.
	assert.Less(t, strings.Index(r.Out, "deleted pvc wal-db-4"), strings.Index(r.Out, "scaled statefulset db to 3 replicas"))
	rec := operationRecord(t, ns, "db")
	require.NotNil(t, rec)
	assert.Equal(t, journal.Succeeded, rec.Phase)

	events, err := cluster.Client.CoreV1().Events(ns).List(context.Background(), metav1.ListOptions{FieldSelector: "involvedObject.name=db,involvedObject.kind=StatefulSet"})
	require.NoError(t, err)
	var reasons []string
	for _, e := range events.Items {
		if e.Source.Component == kube.EventSource {
			reasons = append(reasons, e.Reason)
		}
	}
	for _, want := range []string{"ScaleDownStarted", "ScaleDownScaled", "ScaleDownPodRemoved", "ScaleDownPVCDeleted", "ScaleDownSucceeded"} {
		assert.Contains(t, reasons, want)
	}
}

func TestKeepLeavesThePVCsAndStatusReportsThem(t *testing.T) {
	ns := cluster.NewNamespace(t)
	create(t, newStatefulSet(ns, "db", 4))
	before := snapshot(t, ns)

	r := run(t, ns, "scale-down", "db", "--replicas", "2", "--pvc", "keep", "--yes")
	require.Equal(t, 0, r.Code, r.ErrOut)
	after := snapshot(t, ns)
	assert.Equal(t, []string{"db-0", "db-1"}, keys(after.pods))
	assert.Equal(t, before.pvcs, after.pvcs, "every claim is kept, unchanged")

	r = run(t, ns, "status", "db", "-o", "json")
	assert.Equal(t, cmdutil.ExitDegraded, r.Code, "leftover claims need attention")
	var report status.Report
	require.NoError(t, json.Unmarshal([]byte(r.Out), &report))
	var leftovers []string
	for _, c := range report.LeftoverPVCs {
		leftovers = append(leftovers, c.Name)
	}
	assert.ElementsMatch(t, []string{"data-db-2", "data-db-3", "wal-db-2", "wal-db-3"}, leftovers)
	assert.True(t, report.Verdict.Has(status.CodeLeftoverPVCs))

	// cleanup-pvcs removes exactly those, and status is healthy again.
	r = run(t, ns, "cleanup-pvcs", "db", "--yes")
	require.Equal(t, 0, r.Code, r.ErrOut)
	assert.Equal(t, []string{"data-db-0", "data-db-1", "wal-db-0", "wal-db-1"}, keys(snapshot(t, ns).pvcs))
	r = run(t, ns, "status", "db")
	assert.Equal(t, 0, r.Code, r.Out)
}

func TestAPDBThatForbidsItRefusesWithNothingChanged(t *testing.T) {
	ns := cluster.NewNamespace(t)
	create(t, newStatefulSet(ns, "db", 5))
	pdb := &policyv1.PodDisruptionBudget{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "db-quorum"},
		Spec: policyv1.PodDisruptionBudgetSpec{
			MinAvailable: ptr.To(intstr.FromInt32(4)),
			Selector:     &metav1.LabelSelector{MatchLabels: map[string]string{"app": "db"}},
		},
	}
	_, err := cluster.Client.PolicyV1().PodDisruptionBudgets(ns).Create(context.Background(), pdb, metav1.CreateOptions{})
	require.NoError(t, err)
	before := snapshot(t, ns)
	sts, err := cluster.Client.AppsV1().StatefulSets(ns).Get(context.Background(), "db", metav1.GetOptions{})
	require.NoError(t, err)

	r := run(t, ns, "scale-down", "db", "--replicas", "3", "--pvc", "delete", "--yes")
	assert.Equal(t, cmdutil.ExitFailed, r.Code)
	assert.Contains(t, r.ErrOut, "poddisruptionbudget db-quorum (minAvailable 4) needs 4 available pods, but only 3 would be left")
	assert.Contains(t, r.ErrOut, "nothing was changed")

	assert.Equal(t, before, snapshot(t, ns))
	after, err := cluster.Client.AppsV1().StatefulSets(ns).Get(context.Background(), "db", metav1.GetOptions{})
	require.NoError(t, err)
	assert.Equal(t, sts.ResourceVersion, after.ResourceVersion, "the StatefulSet was not written")
	assert.Nil(t, operationRecord(t, ns, "db"), "no operation was recorded")
}

func TestDryRunChangesNothing(t *testing.T) {
	ns := cluster.NewNamespace(t)
	create(t, newStatefulSet(ns, "db", 4))
	before := snapshot(t, ns)
	sts, err := cluster.Client.AppsV1().StatefulSets(ns).Get(context.Background(), "db", metav1.GetOptions{})
	require.NoError(t, err)

	r := run(t, ns, "scale-down", "db", "--replicas", "1", "--pvc", "delete", "--dry-run")
	require.Equal(t, 0, r.Code, r.ErrOut)
	assert.Contains(t, r.Out, "1. pod db-3, pvc data-db-3 1Gi → delete, pvc wal-db-3 1Gi → delete")
	assert.Contains(t, r.Out, "3. pod db-1")
	assert.Contains(t, r.Out, "Dry run: nothing was changed.")

	r = run(t, ns, "cleanup-pvcs", "db", "--dry-run")
	require.Equal(t, 0, r.Code, r.ErrOut)

	assert.Equal(t, before, snapshot(t, ns))
	after, err := cluster.Client.AppsV1().StatefulSets(ns).Get(context.Background(), "db", metav1.GetOptions{})
	require.NoError(t, err)
	assert.Equal(t, sts.ResourceVersion, after.ResourceVersion)
	assert.Nil(t, operationRecord(t, ns, "db"))
	events, err := cluster.Client.CoreV1().Events(ns).List(context.Background(), metav1.ListOptions{})
	require.NoError(t, err)
	for _, e := range events.Items {
		assert.NotEqual(t, kube.EventSource, e.Source.Component, "a dry run records no event: %s", e.Reason)
	}
}

func TestSnapshotRefusesCleanlyWithoutTheSnapshotAPI(t *testing.T) {
	ns := cluster.NewNamespace(t)
	create(t, newStatefulSet(ns, "db", 3))
	before := snapshot(t, ns)
	r := run(t, ns, "scale-down", "db", "--replicas", "2", "--pvc", "snapshot", "--yes")
	assert.Equal(t, cmdutil.ExitUsage, r.Code)
	assert.Contains(t, r.ErrOut, "--pvc snapshot needs the VolumeSnapshot API (snapshot.storage.k8s.io/v1), which this cluster does not serve")
	assert.Equal(t, before, snapshot(t, ns))
	assert.Equal(t, int32(3), replicas(t, ns, "db"))
}

func TestOrdinalsStartingAboveZero(t *testing.T) {
	ns := cluster.NewNamespace(t)
	sts := newStatefulSet(ns, "db", 3)
	sts.Spec.Ordinals = &appsv1.StatefulSetOrdinals{Start: 5}
	create(t, sts)
	require.Equal(t, []string{"db-5", "db-6", "db-7"}, keys(snapshot(t, ns).pods))
	order := deletions(t, ns)

	r := run(t, ns, "scale-down", "db", "--replicas", "1", "--pvc", "delete", "--yes")
	require.Equal(t, 0, r.Code, r.ErrOut)
	after := snapshot(t, ns)
	assert.Equal(t, []string{"db-5"}, keys(after.pods))
	assert.Equal(t, []string{"data-db-5", "wal-db-5"}, keys(after.pvcs))
	assert.Equal(t, []string{"db-7", "db-6"}, order())
}

func TestInterruptedAfterTheFirstOrdinalResumes(t *testing.T) {
	ns := cluster.NewNamespace(t)
	create(t, newStatefulSet(ns, "db", 5))
	order := deletions(t, ns)

	// Ctrl-C once the first ordinal is done.
	f := e2eutil.Fake(e2eutil.Client(cluster, ns))
	ctx, cancel := context.WithTimeout(context.Background(), generous)
	defer cancel()
	out := &e2eutil.JSONLines{OnEvent: func(ev progress.Event) {
		if ev.Kind == "step-done" && ev.Step == 1 {
			cancel()
		}
	}}
	f.Options.Out = out
	code := f.Run(ctx, cmd.Run, "scale-down", "db", "--replicas", "2", "--pvc", "delete", "--yes", "-o", "json")
	t.Logf("first run → exit %d\n%s%s", code, out.String(), f.ErrOut.String())
	require.Equal(t, cmdutil.ExitInterrupted, code)
	assert.Contains(t, f.ErrOut.String(), "run the same command again to resume")

	rec := operationRecord(t, ns, "db")
	require.NotNil(t, rec)
	assert.Equal(t, journal.Running, rec.Phase)
	assert.Empty(t, rec.Holder, "Ctrl-C releases the lease")
	assert.NotContains(t, keys(snapshot(t, ns).pvcs), "data-db-4")

	// The same command resumes at once and does not redo ordinal 4.
	r := run(t, ns, "scale-down", "db", "--replicas", "2", "--pvc", "delete", "--yes")
	require.Equal(t, 0, r.Code, r.ErrOut)
	assert.Contains(t, r.Out, "an interrupted run is resumed")
	assert.Contains(t, r.Out, "step 1/3 pod/db-4 already removed by the interrupted run")
	assert.NotContains(t, r.Out, "removing db-4")
	after := snapshot(t, ns)
	assert.Equal(t, []string{"db-0", "db-1"}, keys(after.pods))
	assert.Equal(t, []string{"data-db-0", "data-db-1", "wal-db-0", "wal-db-1"}, keys(after.pvcs))
	assert.Equal(t, []string{"db-4", "db-3", "db-2"}, order())
	assert.Equal(t, journal.Succeeded, operationRecord(t, ns, "db").Phase)
}

func TestKilledRunResumesAfterItsLeaseExpires(t *testing.T) {
	ns := cluster.NewNamespace(t)
	create(t, newStatefulSet(ns, "db", 4))
	bin := e2eutil.BuildPlugin(t)

	// A real process, killed with SIGKILL right after the first ordinal.
	args := []string{"scale-down", "db", "--replicas", "2", "--pvc", "delete", "--yes"}
	e2eutil.KillAt(t, cluster, bin, ns, generous, "finished its first ordinal",
		func(ev progress.Event) bool { return ev.Kind == "step-done" && ev.Step == 1 }, append(args, "-o", "json")...)

	// A second run right away is refused while the lease is live, and
	// resumes once it has expired.
	r := e2eutil.ResumeAfterLease(t, cluster, ns, "db", generous, args...)
	assert.Contains(t, r.Out, "already removed by the interrupted run")
	after := snapshot(t, ns)
	assert.Equal(t, []string{"db-0", "db-1"}, keys(after.pods))
	assert.Equal(t, []string{"data-db-0", "data-db-1", "wal-db-0", "wal-db-1"}, keys(after.pvcs))
	assert.Equal(t, journal.Succeeded, operationRecord(t, ns, "db").Phase)
}

func TestWhenScaledDeleteIsLeftToKubernetes(t *testing.T) {
	ns := cluster.NewNamespace(t)
	sts := newStatefulSet(ns, "db", 3)
	sts.Spec.PersistentVolumeClaimRetentionPolicy = &appsv1.StatefulSetPersistentVolumeClaimRetentionPolicy{
		WhenDeleted: appsv1.RetainPersistentVolumeClaimRetentionPolicyType,
		WhenScaled:  appsv1.DeletePersistentVolumeClaimRetentionPolicyType,
	}
	create(t, sts)

	r := run(t, ns, "scale-down", "db", "--replicas", "2", "--pvc", "keep", "--yes")
	assert.Equal(t, cmdutil.ExitUsage, r.Code, "an explicit keep cannot be honoured")
	assert.Contains(t, r.ErrOut, "whenScaled: Delete")

	r = run(t, ns, "scale-down", "db", "--replicas", "2", "--yes")
	require.Equal(t, 0, r.Code, r.ErrOut)
	assert.Contains(t, r.Out, "warning: persistentVolumeClaimRetentionPolicy.whenScaled is Delete")
	assert.Contains(t, r.Out, "deleted by Kubernetes")
	// The garbage collector deletes the claims of ordinal 2.
	poll.Until(t, "the retention policy to delete the claims of db-2", func(ctx context.Context) (bool, error) {
		_, err := cluster.Client.CoreV1().PersistentVolumeClaims(ns).Get(ctx, "data-db-2", metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return true, nil
		}
		return false, nil
	})
	assert.Equal(t, []string{"data-db-0", "data-db-1", "wal-db-0", "wal-db-1"}, keys(snapshot(t, ns).pvcs))
}
