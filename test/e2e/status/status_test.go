// Package status tests `kubectl sts status` end to end against the real
// control plane of the test bed: the real StatefulSet controller creates,
// updates and removes the pods, the real PV controller binds the claims,
// and the command reads them in-process through a real client.
package status

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"

	cmdutil "github.com/kubectl-sts/kubectl-sts/pkg/cmd/util"
	"github.com/kubectl-sts/kubectl-sts/pkg/kube"
	"github.com/kubectl-sts/kubectl-sts/pkg/status"
	"github.com/kubectl-sts/kubectl-sts/pkg/status/statustest"
	"github.com/kubectl-sts/kubectl-sts/pkg/wait"
	"github.com/kubectl-sts/kubectl-sts/test/e2e/e2eutil"
	"github.com/kubectl-sts/kubectl-sts/test/testbed"
)

var cluster *testbed.Cluster

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

func TestMain(m *testing.M) {
	os.Exit(testbed.Main(m, testbed.Options{Name: "e2e-status"}, &cluster))
}

// golden compares the output with testdata/<name>.golden, or on the old
// minor of the compatibility suite with testdata/compat/<name>.golden: the
// API server of that minor does not keep maxUnavailable, so the update
// strategy line differs (docs/compatibility.md).
func golden(t *testing.T, name, got string) {
	t.Helper()
	if !kube.ParseServer(cluster.ServerVersion).AtLeast(35) {
		name = "compat/" + name
	}
	statustest.Golden(t, name, got, *update)
}

// generous bounds every wait; a passing run stays far below it.
const generous = 3 * time.Minute

const (
	imageV1     = "registry.example/db:v1"
	imageV2     = "registry.example/db:v2"
	imageBroken = "registry.example/db:broken"
)

func newStatefulSet(ns, name string, replicas int32) *appsv1.StatefulSet {
	labels := map[string]string{"app": name}
	return &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: appsv1.StatefulSetSpec{
			Replicas:    ptr.To(replicas),
			ServiceName: name,
			Selector:    &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "db", Image: imageV1}}},
			},
			VolumeClaimTemplates: []corev1.PersistentVolumeClaim{{
				ObjectMeta: metav1.ObjectMeta{Name: "data"},
				Spec: corev1.PersistentVolumeClaimSpec{
					AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
					Resources: corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{
						corev1.ResourceStorage: resource.MustParse("1Gi"),
					}},
				},
			}},
		},
	}
}

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), generous)
	t.Cleanup(cancel)
	return ctx
}

// create makes the StatefulSet and waits until it is healthy.
func create(t *testing.T, ns, name string, replicas int32) *appsv1.StatefulSet {
	t.Helper()
	_, err := cluster.Client.AppsV1().StatefulSets(ns).Create(ctxFor(t), newStatefulSet(ns, name, replicas), metav1.CreateOptions{})
	require.NoError(t, err)
	waitFor(t, ns, name, "to be healthy", status.Options{}, func(r *status.Report) bool {
		return r.Verdict.Healthy && int(r.StatefulSet.Replicas.Ready) == int(replicas) && boundAtCapacity(r)
	})
	return get(t, ns, name)
}

func get(t *testing.T, ns, name string) *appsv1.StatefulSet {
	t.Helper()
	sts, err := cluster.Client.AppsV1().StatefulSets(ns).Get(ctxFor(t), name, metav1.GetOptions{})
	require.NoError(t, err)
	return sts
}

func boundAtCapacity(r *status.Report) bool {
	for _, o := range r.Ordinals {
		for _, c := range o.PVCs {
			if c.Missing || c.Phase != "Bound" || c.Capacity != c.Requested {
				return false
			}
		}
	}
	return true
}

// settled reports whether the controller's counts agree with the pods, so
// the Replicas line of the output is final.
func settled(r *status.Report) bool {
	s := r.StatefulSet
	if s.ObservedGeneration < s.Generation {
		return false
	}
	var existing, ready, updated int32
	for _, o := range r.Ordinals {
		if o.Pod == nil || o.Pod.Terminating {
			continue
		}
		existing++
		if o.Pod.Ready {
			ready++
		}
		if o.Pod.Revision == s.UpdateRevision {
			updated++
		}
	}
	return s.Replicas.Existing == existing && s.Replicas.Ready == ready && s.Replicas.Updated == updated &&
		s.Replicas.Available == ready
}

// waitFor follows the StatefulSet through the shared tracker until cond
// holds for its status report.
func waitFor(t *testing.T, ns, name, what string, opts status.Options, cond func(*status.Report) bool) {
	t.Helper()
	ctx := ctxFor(t)
	tr := wait.NewTracker(cluster.Client, ns, name, wait.WithPVCs())
	require.NoError(t, tr.Start(ctx))
	gate := wait.NewGate("statefulset "+name, what, func(_ context.Context, s wait.Snapshot) (wait.Verdict, string, error) {
		r := status.SummarizeSnapshot(s, time.Now(), opts)
		if r == nil {
			return wait.NotYet, "statefulset does not exist", nil
		}
		if cond(r) {
			return wait.Pass, "", nil
		}
		return wait.NotYet, fmt.Sprintf("%s %v", r.Verdict.State, r.Verdict.Codes()), nil
	})
	require.NoError(t, wait.Waiter{Timeout: generous, Interval: 200 * time.Millisecond}.Wait(ctx, tr, gate))
}

// run executes `kubectl sts status args...` in-process in namespace ns, with
// the real clock (the cluster's timestamps are real).
func run(t *testing.T, client *kube.Client, args ...string) e2eutil.Result {
	t.Helper()
	return e2eutil.RunContext(ctxFor(t), client, append([]string{"status"}, args...)...)
}

// runInUntil runs the command until its output contains want: a verdict
// that depends on how long a pod has been not Ready is judged on the
// cluster's second-granular timestamps, so the first run may come a moment
// early.
func runInUntil(t *testing.T, ns, want string, args ...string) e2eutil.Result {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		res := runIn(t, ns, args...)
		if strings.Contains(res.Out, want) || time.Now().After(deadline) {
			return res
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func runIn(t *testing.T, ns string, args ...string) e2eutil.Result {
	t.Helper()
	return run(t, e2eutil.ClientFor(t, ns, cluster.RESTConfig), args...)
}

var (
	ageToken   = regexp.MustCompile(`\b\d+(?:ms|s|m|h|d|y)(?:\d+(?:s|m|h))?\b`)
	nodeToken  = regexp.MustCompile(`testbed-node-\d+`)
	blankRuns  = regexp.MustCompile(` {2,}`)
	trailBlank = regexp.MustCompile(` +\n`)
)

// normalize makes output of a real cluster stable: the namespace, the
// revision hashes (named by role), node names and ages become
// placeholders; runs of blanks, whose width depends on them, become three.
func normalize(out, ns string, sts *appsv1.StatefulSet, extraRevisions ...string) string {
	revs := []struct{ rev, name string }{
		{sts.Status.CurrentRevision, "CURRENT-REV"},
		{sts.Status.UpdateRevision, "UPDATE-REV"},
	}
	for i, r := range extraRevisions {
		revs = append(revs, struct{ rev, name string }{r, fmt.Sprintf("OTHER-REV-%d", i+1)})
	}
	for _, r := range revs {
		if h := status.ShortRevision(sts.Name, r.rev); h != "" {
			out = strings.ReplaceAll(out, h, r.name)
		}
	}
	out = strings.ReplaceAll(out, ns, "NAMESPACE")
	out = nodeToken.ReplaceAllString(out, "testbed-node-N")
	out = ageToken.ReplaceAllString(out, "AGE")
	out = blankRuns.ReplaceAllString(out, "   ")
	return trailBlank.ReplaceAllString(out, "\n")
}

func TestHealthy(t *testing.T) {
	ns := cluster.NewNamespace(t)
	sts := create(t, ns, "db", 3)

	res := runIn(t, ns, "db")
	require.Equal(t, cmdutil.ExitOK, res.Code, res.ErrOut+res.Out)
	assert.Empty(t, res.ErrOut)
	assert.Contains(t, res.Out, "Verdict: Healthy")
	golden(t, "healthy", normalize(res.Out, ns, sts))

	// kubectl's printers print the document, as for any object.
	res = runIn(t, ns, "db", "-o", "jsonpath={.verdict.state} {.statefulSet.replicas.ready}")
	require.Equal(t, cmdutil.ExitOK, res.Code, res.ErrOut)
	assert.Equal(t, "Healthy 3", res.Out)
	res = runIn(t, ns, "db", "-o", "name")
	require.Equal(t, cmdutil.ExitOK, res.Code, res.ErrOut)
	assert.Equal(t, "statefulset.apps/db\n", res.Out)

	res = runIn(t, ns, "db", "-o", "json")
	require.Equal(t, cmdutil.ExitOK, res.Code, res.ErrOut)
	var r status.Report
	require.NoError(t, json.Unmarshal([]byte(res.Out), &r))
	assert.True(t, r.Verdict.Healthy)
	assert.Equal(t, sts.UID, r.StatefulSet.UID)
	require.Len(t, r.Ordinals, 3)
	for i, o := range r.Ordinals {
		require.NotNil(t, o.Pod, "ordinal %d", i)
		assert.True(t, o.Pod.Ready)
		assert.Equal(t, status.RevisionCurrent, o.Pod.RevisionRole)
		assert.NotEmpty(t, o.Pod.Node)
		require.Len(t, o.PVCs, 1)
		assert.Equal(t, fmt.Sprintf("data-db-%d", i), o.PVCs[0].Name)
		assert.Equal(t, "Bound", o.PVCs[0].Phase)
		assert.Equal(t, "testbed-offline", o.PVCs[0].StorageClass)
	}

	// Without a name: one line per StatefulSet of the namespace.
	_, err := cluster.Client.AppsV1().StatefulSets(ns).Create(ctxFor(t), newStatefulSet(ns, "cache", 1), metav1.CreateOptions{})
	require.NoError(t, err)
	waitFor(t, ns, "cache", "to be healthy", status.Options{}, func(r *status.Report) bool { return r.Verdict.Healthy && settled(r) })
	res = runIn(t, ns)
	require.Equal(t, cmdutil.ExitOK, res.Code, res.ErrOut)
	lines := strings.Split(strings.TrimSpace(res.Out), "\n")
	require.Len(t, lines, 3, res.Out)
	assert.Regexp(t, `^NAME\s+READY`, lines[0])
	assert.Regexp(t, `^cache\s+1/1\s+1\s`, lines[1])
	assert.Regexp(t, `^db\s+3/3\s+3\s.*Healthy`, lines[2])
}

func TestRolloutPausedByPartition(t *testing.T) {
	ns := cluster.NewNamespace(t)
	create(t, ns, "db", 3)

	patch := fmt.Sprintf(`{"spec":{"updateStrategy":{"rollingUpdate":{"partition":2}},"template":{"spec":{"containers":[{"name":"db","image":%q}]}}}}`, imageV2)
	_, err := cluster.Client.AppsV1().StatefulSets(ns).Patch(ctxFor(t), "db", types.StrategicMergePatchType, []byte(patch), metav1.PatchOptions{})
	require.NoError(t, err)
	waitFor(t, ns, "db", "to pause at partition 2", status.Options{}, func(r *status.Report) bool {
		return settled(r) && r.Verdict.Has(status.CodeRolloutPaused)
	})
	sts := get(t, ns, "db")
	require.NotEqual(t, sts.Status.CurrentRevision, sts.Status.UpdateRevision)

	res := runIn(t, ns, "db")
	require.Equal(t, cmdutil.ExitDegraded, res.Code, res.ErrOut+res.Out)
	assert.Contains(t, res.Out, "Verdict: Progressing")
	assert.Contains(t, res.Out, "RolloutPaused: rollout paused by partition 2")
	assert.Regexp(t, `(?m)^db-2\s+Running\s+1/1\s+update\s`, res.Out)
	assert.Regexp(t, `(?m)^db-0\s+Running\s+1/1\s+current\s`, res.Out)
	golden(t, "rollout-paused", normalize(res.Out, ns, sts))

	// Lowering the partition continues the rollout to the end.
	_, err = cluster.Client.AppsV1().StatefulSets(ns).Patch(ctxFor(t), "db", types.MergePatchType,
		[]byte(`{"spec":{"updateStrategy":{"rollingUpdate":{"partition":0}}}}`), metav1.PatchOptions{})
	require.NoError(t, err)
	waitFor(t, ns, "db", "to finish the rollout", status.Options{}, func(r *status.Report) bool {
		return r.Verdict.Healthy && settled(r) && r.StatefulSet.CurrentRevision == r.StatefulSet.UpdateRevision
	})
	res = runIn(t, ns, "db")
	assert.Equal(t, cmdutil.ExitOK, res.Code, res.Out)
}

func TestStuckRollout(t *testing.T) {
	ns := cluster.NewNamespace(t)
	create(t, ns, "db", 3)
	good := get(t, ns, "db").Status.CurrentRevision

	patch := fmt.Sprintf(`{"spec":{"template":{"spec":{"containers":[{"name":"db","image":%q}]}}}}`, imageBroken)
	_, err := cluster.Client.AppsV1().StatefulSets(ns).Patch(ctxFor(t), "db", types.StrategicMergePatchType, []byte(patch), metav1.PatchOptions{})
	require.NoError(t, err)
	stuck := status.Options{StuckAfter: time.Second}
	// Stuck is reported from the first second, while db-2 may still be
	// Pending; the table below shows it Running, as the node leaves it.
	waitFor(t, ns, "db", "to be stuck on db-2, Running", stuck, func(r *status.Report) bool {
		running := false
		for _, o := range r.Ordinals {
			if o.Pod != nil && o.Pod.Name == "db-2" && o.Pod.Phase == "Running" {
				running = true
			}
		}
		return settled(r) && running && r.Verdict.Has(status.CodeRolloutStuck)
	})
	sts := get(t, ns, "db")
	bad := sts.Status.UpdateRevision
	require.NotEqual(t, good, bad)

	// With the default threshold the same state is still progress.
	res := runIn(t, ns, "db")
	require.Equal(t, cmdutil.ExitDegraded, res.Code, res.ErrOut+res.Out)
	assert.NotContains(t, res.Out, "RolloutStuck")

	res = runInUntil(t, ns, "RolloutStuck", "db", "--stuck-after", "1s")
	require.Equal(t, cmdutil.ExitDegraded, res.Code, res.ErrOut+res.Out)
	assert.Contains(t, res.Out, "Verdict: Degraded")
	assert.Contains(t, res.Out, "RolloutStuck: rollout stuck: pod db-2 on update revision "+status.ShortRevision("db", bad))
	assert.Contains(t, res.Out, "Reverting the template alone will not replace db-2")
	assert.Contains(t, res.Out, "kubectl delete pod db-2 -n "+ns)
	assert.Regexp(t, `(?m)^db-2\s+Running\s+0/1\s+update\s`, res.Out)
	golden(t, "rollout-stuck", normalize(res.Out, ns, sts))
	res = runIn(t, ns, "db", "--stuck-after", "1s", "-o", "jsonpath={.verdict.state} {.verdict.reasons[0].code}")
	require.Equal(t, cmdutil.ExitDegraded, res.Code, res.ErrOut)
	assert.Equal(t, "Degraded RolloutStuck", res.Out)

	// The trap is real: revert the template, and db-2 stays on the bad
	// revision, not Ready; status now points at the abandoned revision.
	patch = fmt.Sprintf(`{"spec":{"template":{"spec":{"containers":[{"name":"db","image":%q}]}}}}`, imageV1)
	_, err = cluster.Client.AppsV1().StatefulSets(ns).Patch(ctxFor(t), "db", types.StrategicMergePatchType, []byte(patch), metav1.PatchOptions{})
	require.NoError(t, err)
	waitFor(t, ns, "db", "to see the revert", stuck, func(r *status.Report) bool {
		return settled(r) && r.StatefulSet.UpdateRevision == good && r.Verdict.Has(status.CodeRolloutStuck)
	})
	res = runInUntil(t, ns, "which is no longer the update revision", "db", "--stuck-after", "1s")
	require.Equal(t, cmdutil.ExitDegraded, res.Code, res.Out)
	assert.Contains(t, res.Out, fmt.Sprintf("pod db-2 runs revision %s, which is no longer the update revision %s",
		status.ShortRevision("db", bad), status.ShortRevision("db", good)))
	pod, err := cluster.Client.CoreV1().Pods(ns).Get(ctxFor(t), "db-2", metav1.GetOptions{})
	require.NoError(t, err)
	assert.Equal(t, bad, wait.PodRevision(pod), "the controller did not replace the pod after the revert")

	// Following the hint fixes it.
	require.NoError(t, cluster.Client.CoreV1().Pods(ns).Delete(ctxFor(t), "db-2", metav1.DeleteOptions{}))
	waitFor(t, ns, "db", "to recover", status.Options{}, func(r *status.Report) bool { return r.Verdict.Healthy && settled(r) })
	res = runIn(t, ns, "db")
	assert.Equal(t, cmdutil.ExitOK, res.Code, res.Out)
}

func TestLeftoverPVCsAfterScaleDown(t *testing.T) {
	ns := cluster.NewNamespace(t)
	create(t, ns, "db", 3)

	_, err := cluster.Kubectl(ctxFor(t), "-n", ns, "scale", "statefulset/db", "--replicas=1")
	require.NoError(t, err)
	waitFor(t, ns, "db", "to scale down to 1", status.Options{}, func(r *status.Report) bool {
		return settled(r) && len(r.Ordinals) == 1 && len(r.LeftoverPVCs) == 2
	})
	sts := get(t, ns, "db")

	res := runIn(t, ns, "db")
	require.Equal(t, cmdutil.ExitDegraded, res.Code, res.ErrOut+res.Out)
	assert.Contains(t, res.Out, "Verdict: NeedsAttention")
	assert.Contains(t, res.Out, "LeftoverPVCs: 2 pvcs left over from ordinals outside 0..0 (whenScaled: Retain): data-db-1, data-db-2")
	assert.Regexp(t, `(?m)^1\s+data-db-1\s+Bound\s+1Gi\s+1Gi\s`, res.Out)
	golden(t, "leftover-pvcs", normalize(res.Out, ns, sts))

	res = runIn(t, ns, "db", "-o", "yaml")
	require.Equal(t, cmdutil.ExitDegraded, res.Code)
	assert.Contains(t, res.Out, "leftoverPVCs:\n- ")
	assert.Contains(t, res.Out, "code: LeftoverPVCs")

	// -A lists it with its one-line verdict, among the other namespaces'.
	res = runIn(t, ns, "-A")
	require.Contains(t, []int{cmdutil.ExitOK, cmdutil.ExitDegraded}, res.Code, res.ErrOut)
	assert.Regexp(t, `(?m)^`+regexp.QuoteMeta(ns)+`\s+db\s+1/1\s+1\s.*NeedsAttention\s+LeftoverPVCs$`, res.Out)
}

func TestBadInput(t *testing.T) {
	ns := cluster.NewNamespace(t)
	create(t, ns, "orders", 1)

	res := runIn(t, ns, "nope")
	assert.Equal(t, cmdutil.ExitFailed, res.Code)
	assert.Contains(t, res.ErrOut, `statefulsets.apps "nope" not found`)
	assert.Contains(t, res.ErrOut, "kubectl get sts -n "+ns)

	other := cluster.NewNamespace(t)
	res = runIn(t, other, "orders")
	assert.Equal(t, cmdutil.ExitFailed, res.Code)
	assert.Contains(t, res.ErrOut, fmt.Sprintf(`StatefulSet "orders" not found in namespace %q, but it exists in namespace %q: add -n %s`, other, ns, ns))

	res = runIn(t, "no-such-namespace", "orders")
	assert.Equal(t, cmdutil.ExitFailed, res.Code)
	assert.Contains(t, res.ErrOut, `namespace "no-such-namespace" does not exist`)

	res = runIn(t, ns, "orders", "-o", "xml")
	assert.Equal(t, cmdutil.ExitUsage, res.Code)
	assert.Contains(t, res.ErrOut, `error: unable to match a printer suitable for the output format "xml", allowed formats are: `)
	assert.Empty(t, res.Out)
}

func TestForbiddenNamesTheMissingPermission(t *testing.T) {
	ns := cluster.NewNamespace(t)
	create(t, ns, "db", 1)

	// alice may read StatefulSets but not list pods.
	ctx := ctxFor(t)
	_, err := cluster.Client.RbacV1().Roles(ns).Create(ctx, &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: "sts-only"},
		Rules:      []rbacv1.PolicyRule{{APIGroups: []string{"apps"}, Resources: []string{"statefulsets"}, Verbs: []string{"get", "list"}}},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
	_, err = cluster.Client.RbacV1().RoleBindings(ns).Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "alice"},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: "sts-only"},
		Subjects:   []rbacv1.Subject{{APIGroup: "rbac.authorization.k8s.io", Kind: "User", Name: "alice"}},
	}, metav1.CreateOptions{})
	require.NoError(t, err)

	cfg := rest.CopyConfig(cluster.RESTConfig)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: "alice"}
	want := fmt.Sprintf(`missing permission: verb "list" on resource "pods" in namespace %q`, ns)
	var res e2eutil.Result
	// The authorizer sees the new binding a moment later.
	require.Eventually(t, func() bool {
		res = run(t, e2eutil.ClientFor(t, ns, cfg), "db")
		return strings.Contains(res.ErrOut, want)
	}, time.Minute, 200*time.Millisecond, "last: %+v", res)
	assert.Equal(t, cmdutil.ExitFailed, res.Code, res.Out)
	assert.Empty(t, res.Out)
}
