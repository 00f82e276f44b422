package scaledown_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/utils/ptr"

	"github.com/kubectl-sts/kubectl-sts/pkg/cmd"
	sdcmd "github.com/kubectl-sts/kubectl-sts/pkg/cmd/scaledown"
	cmdtesting "github.com/kubectl-sts/kubectl-sts/pkg/cmd/testing"
	cmdutil "github.com/kubectl-sts/kubectl-sts/pkg/cmd/util"
	"github.com/kubectl-sts/kubectl-sts/pkg/journal"
	"github.com/kubectl-sts/kubectl-sts/pkg/scaledown"
	"github.com/kubectl-sts/kubectl-sts/pkg/status/statustest"
	"github.com/kubectl-sts/kubectl-sts/plugins"
)

const ns = "default"

// fixture is a healthy StatefulSet "db" whose image no engine claims.
func fixture(n int) *statustest.Fixture {
	f := statustest.New(ns, "db", n, cmdtesting.FakeNow)
	f.StatefulSet.Spec.Template.Spec.Containers[0].Image = "registry.example/app:1"
	return f
}

func leftover(f *statustest.Fixture, ordinals ...int) *statustest.Fixture {
	for _, n := range ordinals {
		f.AddLeftoverPVC(n)
	}
	return f
}

type result struct {
	code        int
	out, errOut string
}

func runCmd(t *testing.T, f *cmdtesting.Fake, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	code := f.Run(ctx, cmd.Run, args...)
	return result{code: code, out: f.Out.String(), errOut: f.ErrOut.String()}
}

// controller removes pods at or above the replica range, as the
// StatefulSet controller does.
func controller(t *testing.T, c kubernetes.Interface) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	w, err := c.AppsV1().StatefulSets(ns).Watch(ctx, metav1.ListOptions{})
	require.NoError(t, err)
	go func() {
		defer w.Stop()
		for ev := range w.ResultChan() {
			sts, ok := ev.Object.(*appsv1.StatefulSet)
			if !ok {
				continue
			}
			// Like the real controller, act a moment after the change: the
			// fake clientset drops events that fall between a watcher's list
			// and its watch, which a real API server never does.
			time.Sleep(200 * time.Millisecond)
			pods, err := c.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
			if err != nil {
				continue
			}
			for i := len(pods.Items) - 1; i >= 0; i-- {
				p := pods.Items[i]
				if n, ok := scaledown.OwnedPod(sts, &p); ok && n >= int(scaledown.Replicas(sts)) {
					_ = c.CoreV1().Pods(ns).Delete(ctx, p.Name, metav1.DeleteOptions{})
				}
			}
		}
	}()
}

func pvcNames(t *testing.T, c kubernetes.Interface) []string {
	t.Helper()
	list, err := c.CoreV1().PersistentVolumeClaims(ns).List(context.Background(), metav1.ListOptions{})
	require.NoError(t, err)
	var out []string
	for _, p := range list.Items {
		out = append(out, p.Name)
	}
	return out
}

func replicas(t *testing.T, c kubernetes.Interface) int32 {
	t.Helper()
	s, err := c.AppsV1().StatefulSets(ns).Get(context.Background(), "db", metav1.GetOptions{})
	require.NoError(t, err)
	return *s.Spec.Replicas
}

func TestUsageErrors(t *testing.T) {
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"scale-down"}, "needs the name of a StatefulSet"},
		{[]string{"scale-down", "db"}, "--replicas is required"},
		{[]string{"scale-down", "db", "--replicas", "3", "--pvc", "shred"}, `invalid --pvc "shred"`},
		{[]string{"scale-down", "db", "--replicas", "0"}, "add --allow-zero"},
		{[]string{"scale-down", "db", "--replicas", "-1"}, "must not be negative"},
		{[]string{"scale-down", "db", "--replicas", "3", "--snapshot-class", "x"}, "--snapshot-class applies only with --pvc snapshot"},
		{[]string{"scale-down", "db", "--replicas", "3", "--step-timeout", "0s"}, "--step-timeout must be positive"},
		{[]string{"scale-down", "db", "--replicas", "3", "--timeout", "-1s"}, "--timeout cannot be negative"},
		{[]string{"scale-down", "db", "--replicas", "3", "-o", "xml"}, `unable to match a printer suitable for the output format "xml"`},
		{[]string{"scale-down", "db", "--replicas", "3", "-o", "jsonpath={.to"}, "-o jsonpath={.to: "},
		{[]string{"scale-down", "Not_A_Name", "--replicas", "3"}, "is not a valid StatefulSet name"},
		{[]string{"scale-down", "db", "--replicas", "5", "--engine", "none"}, "--replicas 5 is not lower than the current 5 replicas"},
		{[]string{"scale-down", "db", "--replicas", "3", "--engine", "cassandra"}, `unknown engine "cassandra"`},
		{[]string{"scale-down", "db", "--replicas", "3", "--engine", "none", "--pvc", "snapshot"}, "needs the VolumeSnapshot API"},
		{[]string{"scale-down", "db", "--replicas", "3", "--engine", "none", "--slot-name", "s_{ordinal}"}, "--slot-name needs a database engine"},
		{[]string{"cleanup-pvcs", "db", "--pvc", "keep"}, "--pvc keep would clean up nothing"},
		{[]string{"cleanup-pvcs"}, "needs the name of a StatefulSet"},
	}
	for _, c := range cases {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			f := cmdtesting.NewFakeOptions(fixture(5).Objects()...)
			r := runCmd(t, f, c.args...)
			assert.Equal(t, cmdutil.ExitUsage, r.code, r.errOut)
			assert.Contains(t, r.errOut, c.want)
			assert.Equal(t, int32(5), replicas(t, f.Client.Kube))
		})
	}
}

func TestDryRunPrintsThePlanAndChangesNothing(t *testing.T) {
	f := cmdtesting.NewFakeOptions(fixture(5).Objects()...)
	r := runCmd(t, f, "scale-down", "db", "--replicas", "3", "--pvc", "delete", "--dry-run", "--engine", "none")
	require.Equal(t, 0, r.code, r.errOut)
	for _, want := range []string{
		"Plan: scale down statefulset db (namespace default) from 5 to 3 replicas",
		"db-0..db-2 and their PVCs are not touched",
		"1. pod db-4, pvc data-db-4 1Gi → delete",
		"2. pod db-3, pvc data-db-3 1Gi → delete",
		"Dry run: nothing was changed.",
	} {
		assert.Contains(t, r.out, want)
	}
	assert.Less(t, strings.Index(r.out, "db-4"), strings.Index(r.out, "db-3"))
	assert.Equal(t, int32(5), replicas(t, f.Client.Kube))
	assert.Len(t, pvcNames(t, f.Client.Kube), 5)
	cms, err := f.Client.Kube.CoreV1().ConfigMaps(ns).List(context.Background(), metav1.ListOptions{})
	require.NoError(t, err)
	assert.Empty(t, cms.Items, "a dry run writes no record")
}

func TestServerDryRunSendsTheFirstStepsWrites(t *testing.T) {
	f := cmdtesting.NewFakeOptions(fixture(5).Objects()...)
	seen := f.AnswerServerDryRun(func(a k8stesting.Action) error {
		if a.GetVerb() == "delete" {
			return apierrors.NewForbidden(schema.GroupResource{Resource: "persistentvolumeclaims"}, "data-db-4", errors.New(`User "ci" cannot delete resource "persistentvolumeclaims"`))
		}
		return nil
	})
	r := runCmd(t, f, "scale-down", "db", "--replicas", "3", "--pvc", "delete", "--dry-run=server", "--engine", "none")
	assert.Equal(t, cmdutil.ExitFailed, r.code)
	assert.Equal(t, []string{"create configmaps", "patch statefulsets", "delete persistentvolumeclaims"}, seen())
	assert.Contains(t, r.out, "  accepted  create configmap kubectl-sts.db (the operation record)\n")
	assert.Contains(t, r.out, "  accepted  patch statefulset db (replicas 4)\n")
	assert.Contains(t, r.out, "  refused   delete pvc data-db-4: ")
	assert.Contains(t, r.errOut, "the API server would refuse delete pvc data-db-4")
	assert.Equal(t, int32(5), replicas(t, f.Client.Kube))
	assert.Len(t, pvcNames(t, f.Client.Kube), 5)

	f = cmdtesting.NewFakeOptions(fixture(5).Objects()...)
	r = runCmd(t, f, "scale-down", "db", "--replicas", "3", "--dry-run=sometimes")
	assert.Equal(t, cmdutil.ExitUsage, r.code)
	assert.Contains(t, r.errOut, `Invalid dry-run value (sometimes)`)
}

func TestKubectlPrintersPrintThePlanAndTheResult(t *testing.T) {
	f := cmdtesting.NewFakeOptions(fixture(5).Objects()...)
	r := runCmd(t, f, "scale-down", "db", "--replicas", "3", "--pvc", "delete", "--dry-run", "--engine", "none", "-o", "jsonpath={.steps[*].pod}")
	require.Equal(t, 0, r.code, r.errOut)
	assert.Equal(t, "db-4 db-3", r.out)

	f = cmdtesting.NewFakeOptions(fixture(4).Objects()...)
	controller(t, f.Client.Kube)
	r = runCmd(t, f, "scale-down", "db", "--replicas", "3", "--pvc", "delete", "--yes", "--engine", "none", "-o", "jsonpath={.removed[*]} {.deleted[*]}")
	require.Equal(t, 0, r.code, r.errOut)
	assert.Equal(t, "db-3 data-db-3", r.out)
	assert.Contains(t, r.errOut, "pod/db-3", "progress goes to standard error")

	f = cmdtesting.NewFakeOptions(fixture(5).Objects()...)
	r = runCmd(t, f, "cleanup-pvcs", "db", "--dry-run", "-o", "name")
	require.Equal(t, 0, r.code, r.errOut)
	assert.Equal(t, "statefulset.apps/db\n", r.out)
}

func TestDryRunJSON(t *testing.T) {
	f := cmdtesting.NewFakeOptions(fixture(5).Objects()...)
	r := runCmd(t, f, "scale-down", "db", "--replicas", "4", "--dry-run", "--engine", "none", "-o", "json")
	require.Equal(t, 0, r.code, r.errOut)
	first, _, _ := strings.Cut(r.out, "\n")
	var plan scaledown.Plan
	require.NoError(t, json.Unmarshal([]byte(first), &plan))
	assert.Equal(t, scaledown.PlanKind, plan.Kind)
	assert.True(t, plan.DryRun)
	assert.Equal(t, scaledown.PVCKeep, plan.PVC)
	require.Len(t, plan.Steps, 1)
	assert.Equal(t, "db-4", plan.Steps[0].Pod)
	assert.Equal(t, "data-db-4", plan.Steps[0].PVCs[0].Name)
}

func TestWithoutATerminalOrYesItRefuses(t *testing.T) {
	f := cmdtesting.NewFakeOptions(fixture(5).Objects()...)
	r := runCmd(t, f, "scale-down", "db", "--replicas", "3", "--pvc", "delete", "--engine", "none")
	assert.Equal(t, cmdutil.ExitUsage, r.code)
	assert.Contains(t, r.errOut, "no terminal to ask on: re-run with --yes")
	assert.Contains(t, r.out, "pod db-4", "the plan is shown before the question")
	assert.Equal(t, int32(5), replicas(t, f.Client.Kube))
	assert.Len(t, pvcNames(t, f.Client.Kube), 5)
}

func TestScaleDownDeletesTheRemovedOrdinalsPVCs(t *testing.T) {
	f := cmdtesting.NewFakeOptions(leftover(fixture(5), 7).Objects()...)
	controller(t, f.Client.Kube)
	r := runCmd(t, f, "scale-down", "db", "--replicas", "3", "--pvc", "delete", "--yes", "--engine", "none")
	require.Equal(t, 0, r.code, r.errOut)
	assert.Equal(t, int32(3), replicas(t, f.Client.Kube))
	assert.ElementsMatch(t, []string{"data-db-0", "data-db-1", "data-db-2", "data-db-7"}, pvcNames(t, f.Client.Kube))
	assert.Contains(t, r.out, "other leftover pvcs: data-db-7")
	assert.Contains(t, r.out, "step 1/2 pod/db-4 pod db-4 is gone")
	assert.Contains(t, r.out, "deleted pvc data-db-3 (1Gi)")
	assert.Contains(t, r.out, "statefulset db scaled from 5 to 3 replicas; 2 pvcs deleted")
	events, err := f.Client.Kube.CoreV1().Events(ns).List(context.Background(), metav1.ListOptions{})
	require.NoError(t, err)
	var reasons []string
	for _, e := range events.Items {
		reasons = append(reasons, e.Reason)
		assert.Equal(t, "db", e.InvolvedObject.Name)
	}
	assert.Contains(t, reasons, "ScaleDownSucceeded")
	assert.Contains(t, reasons, "ScaleDownPVCDeleted")
}

func TestTerminalIsAskedForThePVCAction(t *testing.T) {
	f := cmdtesting.NewFakeOptions(fixture(4).Objects()...)
	f.Options.StdinIsTerminal = func() bool { return true }
	f.In.WriteString("d\ny\n")
	controller(t, f.Client.Kube)
	r := runCmd(t, f, "scale-down", "db", "--replicas", "3", "--engine", "none")
	require.Equal(t, 0, r.code, r.errOut)
	assert.Contains(t, r.errOut, "What should happen to the PVCs of the removed ordinals?")
	assert.Contains(t, r.errOut, "and delete PVCs data-db-3? [y/N]")
	assert.NotContains(t, pvcNames(t, f.Client.Kube), "data-db-3")
}

func TestTerminalDefaultKeepsThePVCs(t *testing.T) {
	f := cmdtesting.NewFakeOptions(fixture(4).Objects()...)
	f.Options.StdinIsTerminal = func() bool { return true }
	f.In.WriteString("\ny\n")
	controller(t, f.Client.Kube)
	r := runCmd(t, f, "scale-down", "db", "--replicas", "3", "--engine", "none")
	require.Equal(t, 0, r.code, r.errOut)
	assert.Contains(t, pvcNames(t, f.Client.Kube), "data-db-3")
	assert.Contains(t, r.out, "kept pvc data-db-3")
}

func TestAnsweringNoChangesNothing(t *testing.T) {
	f := cmdtesting.NewFakeOptions(fixture(4).Objects()...)
	f.Options.StdinIsTerminal = func() bool { return true }
	f.In.WriteString("d\nn\n")
	r := runCmd(t, f, "scale-down", "db", "--replicas", "3", "--engine", "none")
	assert.Equal(t, cmdutil.ExitFailed, r.code)
	assert.Contains(t, r.errOut, "not confirmed; nothing was changed")
	assert.Equal(t, int32(4), replicas(t, f.Client.Kube))
}

func TestAPDBThatForbidsItRefuses(t *testing.T) {
	min := intstr.FromInt32(4)
	pdb := &policyv1.PodDisruptionBudget{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "quorum"},
		Spec:       policyv1.PodDisruptionBudgetSpec{MinAvailable: &min, Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "db"}}},
	}
	f := cmdtesting.NewFakeOptions(append(fixture(5).Objects(), pdb)...)
	r := runCmd(t, f, "scale-down", "db", "--replicas", "3", "--pvc", "delete", "--yes", "--engine", "none")
	assert.Equal(t, cmdutil.ExitFailed, r.code)
	assert.Contains(t, r.errOut, "poddisruptionbudget quorum (minAvailable 4) needs 4 available pods")
	assert.Contains(t, r.errOut, "nothing was changed")
	assert.Contains(t, r.out, "pod db-4", "the refused plan is shown")
	assert.Equal(t, int32(5), replicas(t, f.Client.Kube))
	assert.Len(t, pvcNames(t, f.Client.Kube), 5)
}

func TestAStuckStepExitsNeedsAttentionAndResumes(t *testing.T) {
	f := cmdtesting.NewFakeOptions(fixture(4).Objects()...)
	// No controller: pod 3 never goes.
	r := runCmd(t, f, "scale-down", "db", "--replicas", "3", "--pvc", "delete", "--yes", "--engine", "none", "--step-timeout", "300ms")
	assert.Equal(t, cmdutil.ExitNeedsAttention, r.code, r.errOut)
	assert.Contains(t, r.errOut, "timed out after 300ms waiting for")
	assert.Contains(t, r.errOut, "run the same command again to resume")
	assert.Contains(t, pvcNames(t, f.Client.Kube), "data-db-3")

	f.Out.Reset()
	f.ErrOut.Reset()
	controller(t, f.Client.Kube)
	// The pod of the already lowered scale goes, as on a controller resync
	// (the fake controller may have removed it already).
	if err := f.Client.Kube.CoreV1().Pods(ns).Delete(context.Background(), "db-3", metav1.DeleteOptions{}); err != nil {
		require.True(t, apierrors.IsNotFound(err), err)
	}
	r = runCmd(t, f, "scale-down", "db", "--replicas", "3", "--yes", "--engine", "none")
	require.Equal(t, 0, r.code, r.errOut)
	assert.Contains(t, r.out, "an interrupted run is resumed")
	assert.NotContains(t, pvcNames(t, f.Client.Kube), "data-db-3", "the recorded --pvc delete is kept on resume")
}

// TestTheWholeOperationTimeoutStopsCleanlyAndResumes: --timeout bounds the
// whole scale-down, as kubectl's --timeout does; when it runs out the run
// stops as on Ctrl-C (record kept, lease released) and exits 5.
func TestTheWholeOperationTimeoutStopsCleanlyAndResumes(t *testing.T) {
	f := cmdtesting.NewFakeOptions(fixture(4).Objects()...)
	// No controller: pod 3 never goes, and the step may wait 10 minutes.
	r := runCmd(t, f, "scale-down", "db", "--replicas", "3", "--pvc", "delete", "--yes", "--engine", "none", "--timeout", "300ms", "--step-timeout", "10m")
	assert.Equal(t, cmdutil.ExitNeedsAttention, r.code, r.errOut)
	assert.Contains(t, r.errOut, "error: the operation did not finish within --timeout 300ms and stopped cleanly, keeping its record: ")
	assert.Contains(t, r.errOut, "run the same command again to resume")
	assert.NotContains(t, r.errOut, "context canceled")
	assert.NotContains(t, r.errOut, "interrupted: the operation", "not reported as Ctrl-C")
	assert.Contains(t, pvcNames(t, f.Client.Kube), "data-db-3")
	rec, err := journal.New(f.Client.Kube, ns, "db", "other/1").Load(context.Background())
	require.NoError(t, err)
	require.NotNil(t, rec, "the record is kept")
	assert.False(t, rec.Phase.Finished(), "phase %s", rec.Phase)
	assert.Empty(t, rec.Holder, "the lease is released, so the next run starts at once")

	f.Out.Reset()
	f.ErrOut.Reset()
	controller(t, f.Client.Kube)
	if err := f.Client.Kube.CoreV1().Pods(ns).Delete(context.Background(), "db-3", metav1.DeleteOptions{}); err != nil {
		require.True(t, apierrors.IsNotFound(err), err)
	}
	r = runCmd(t, f, "scale-down", "db", "--replicas", "3", "--yes", "--engine", "none", "--timeout", "1m")
	require.Equal(t, 0, r.code, r.errOut)
	assert.Contains(t, r.out, "an interrupted run is resumed")
	assert.NotContains(t, pvcNames(t, f.Client.Kube), "data-db-3")
}

func TestAbort(t *testing.T) {
	f := cmdtesting.NewFakeOptions(fixture(4).Objects()...)
	r := runCmd(t, f, "scale-down", "db", "--abort")
	assert.Equal(t, cmdutil.ExitUsage, r.code)
	assert.Contains(t, r.errOut, "nothing to abort")

	ctx := context.Background()
	j := journal.New(f.Client.Kube, ns, "db", "gone/1")
	rec, _, err := j.Begin(ctx, scaledown.Operation, map[string]any{"from": 4, "to": 3})
	require.NoError(t, err)
	require.NoError(t, j.Release(ctx, rec, "killed"))
	f.ErrOut.Reset()
	r = runCmd(t, f, "scale-down", "db", "--abort")
	require.Equal(t, 0, r.code, r.errOut)
	assert.Contains(t, r.out, "Dropped the record of the interrupted scale-down of statefulset db")
	got, err := j.Load(ctx)
	require.NoError(t, err)
	assert.Equal(t, journal.Aborted, got.Phase)
}

func TestCleanupPVCs(t *testing.T) {
	f := fixture(3)
	leftover(f, 3, 5)
	foreign := f.PVCs[len(f.PVCs)-1].DeepCopy()
	foreign.Name, foreign.UID = "data-db-4", "foreign"
	foreign.OwnerReferences = []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "StatefulSet", Name: "archive", UID: "archive-uid", Controller: ptr.To(true)}}
	fk := cmdtesting.NewFakeOptions(append(f.Objects(), foreign)...)
	r := runCmd(t, fk, "cleanup-pvcs", "db", "--yes")
	require.Equal(t, 0, r.code, r.errOut)
	assert.Contains(t, r.out, "left over from removed ordinals; it has 3 replicas")
	assert.ElementsMatch(t, []string{"data-db-0", "data-db-1", "data-db-2", "data-db-4"}, pvcNames(t, fk.Client.Kube))
	assert.Contains(t, r.out, "deleted pvc data-db-5")

	fk.Out.Reset()
	r = runCmd(t, fk, "cleanup-pvcs", "db", "--yes")
	require.Equal(t, 0, r.code, r.errOut)
	assert.Contains(t, r.out, "Nothing to do.")
}

func TestScaleDownWithPVCDeleteAndNoReplicasCleansUp(t *testing.T) {
	f := cmdtesting.NewFakeOptions(leftover(fixture(3), 4).Objects()...)
	r := runCmd(t, f, "scale-down", "db", "--pvc", "delete", "--yes")
	require.Equal(t, 0, r.code, r.errOut)
	assert.NotContains(t, pvcNames(t, f.Client.Kube), "data-db-4")
	assert.Equal(t, int32(3), replicas(t, f.Client.Kube))

	f = cmdtesting.NewFakeOptions(leftover(fixture(3), 4).Objects()...)
	r = runCmd(t, f, "scale-down", "db", "--replicas", "3", "--pvc", "delete", "--yes")
	require.Equal(t, 0, r.code, r.errOut)
	assert.NotContains(t, pvcNames(t, f.Client.Kube), "data-db-4")
}

// recordingEngine is an engine the test registers under --engine fake.
type recordingEngine struct {
	mu    sync.Mutex
	calls []string
}

func (e *recordingEngine) Name() string          { return "fake" }
func (e *recordingEngine) Matches(s string) bool { return false }
func (e *recordingEngine) Members(_ context.Context, t plugins.Target) ([]plugins.Member, error) {
	var ms []plugins.Member
	for _, p := range t.Pods {
		role := plugins.RoleReplica
		if p.Name == "db-0" {
			role = plugins.RolePrimary
		}
		ms = append(ms, plugins.Member{Pod: p.Name, Ordinal: plugins.Ordinal(t.StatefulSet, p), Role: role})
	}
	return ms, nil
}
func (e *recordingEngine) Healthy([]plugins.Member, plugins.HealthOptions) (bool, string) {
	return true, ""
}
func (e *recordingEngine) BeforeRemove(_ context.Context, _ plugins.Target, n int, o plugins.RemoveOptions) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.calls = append(e.calls, fmt.Sprintf("before %d %v dry=%v", n, o.SlotNames, o.DryRun))
	return nil
}
func (e *recordingEngine) AfterRemove(_ context.Context, _ plugins.Target, n int, o plugins.RemoveOptions) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.calls = append(e.calls, fmt.Sprintf("after %d %v dry=%v", n, o.SlotNames, o.DryRun))
	o.Emit(plugins.RemoveEvent{Ordinal: n, Action: plugins.ActionChanged, Pod: "db-0", Object: "slot " + strings.Join(o.SlotNames, ","), Message: "dropped replication slot " + strings.Join(o.SlotNames, ",")})
	return nil
}

func TestEngineAndSlotNamesAreWired(t *testing.T) {
	objs := fixture(4).Objects()
	for _, dry := range []bool{true, false} {
		f := cmdtesting.NewFakeOptions(append([]runtime.Object(nil), objs...)...)
		controller(t, f.Client.Kube)
		eng := &recordingEngine{}
		o := sdcmd.NewOptions(f.Options)
		o.Engines = plugins.NewRegistry(eng)
		c := sdcmd.NewCmd(o)
		args := []string{"db", "--replicas", "2", "--engine", "fake", "--slot-name", "replica_{ordinal}", "--yes", "--pvc", "keep"}
		if dry {
			args = append(args, "--dry-run")
		}
		c.SetArgs(args)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		err := c.ExecuteContext(ctx)
		cancel()
		require.NoError(t, err, f.ErrOut.String())
		if dry {
			assert.Equal(t, []string{"before 3 [replica_3] dry=true", "after 3 [replica_3] dry=true", "before 2 [replica_2] dry=true", "after 2 [replica_2] dry=true"}, eng.calls)
			assert.Equal(t, int32(4), replicas(t, f.Client.Kube))
			continue
		}
		assert.Equal(t, []string{"before 3 [replica_3] dry=false", "after 3 [replica_3] dry=false", "before 2 [replica_2] dry=false", "after 2 [replica_2] dry=false"}, eng.calls)
		assert.Contains(t, f.Out.String(), "engine:  fake (primary: db-0)")
		assert.Contains(t, f.Out.String(), "slots replica_3")
		assert.Contains(t, f.Out.String(), "dropped replication slot replica_3 (on db-0)")
	}
}

func TestPVCsOfStayingOrdinalsAreNeverPlanned(t *testing.T) {
	f := fixture(5)
	// A claim named like ordinal 4's but controlled by another StatefulSet.
	f.PVCs[4].OwnerReferences = []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "StatefulSet", Name: "archive", UID: "archive-uid", Controller: ptr.To(true)}}
	fk := cmdtesting.NewFakeOptions(f.Objects()...)
	// Status counts ordinal 4's claim as missing; --force looks past that.
	r := runCmd(t, fk, "scale-down", "db", "--replicas", "3", "--pvc", "delete", "--dry-run", "--engine", "none", "--force")
	require.Equal(t, 0, r.code, r.errOut)
	assert.Contains(t, r.out, "1. pod db-4, no pvcs")
	assert.NotContains(t, r.out, "pvc data-db-4 1Gi", "the claim is not planned")
	for _, n := range []string{"data-db-0", "data-db-1", "data-db-2"} {
		assert.NotContains(t, r.out, "pvc "+n)
	}
}

// A StatefulSet being deleted is refused before its pods and claims are
// read, so there is no plan to show: a half-built one (from 0 to 0
// replicas, no claims) would misreport what the command was asked.
func TestAStatefulSetBeingDeletedIsRefusedWithoutAHalfBuiltPlan(t *testing.T) {
	for _, args := range [][]string{
		{"scale-down", "db", "--replicas", "1", "--pvc", "delete", "--dry-run=client"},
		{"scale-down", "db", "--replicas", "1", "--pvc", "delete", "--dry-run=server"},
		{"scale-down", "db", "--replicas", "1", "--pvc", "delete", "--yes"},
		{"cleanup", "db", "--dry-run=client"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			fx := fixture(3)
			fx.StatefulSet.DeletionTimestamp = &metav1.Time{Time: cmdtesting.FakeNow}
			fx.StatefulSet.Finalizers = []string{"example.com/hold"}
			f := cmdtesting.NewFakeOptions(fx.Objects()...)
			r := runCmd(t, f, append(args, "--engine", "none")...)
			assert.Equal(t, cmdutil.ExitFailed, r.code)
			assert.Contains(t, r.errOut, "statefulset db is being deleted")
			assert.Contains(t, r.errOut, "nothing was changed")
			assert.NotContains(t, r.out, "Plan:", "no plan was built")
			assert.NotContains(t, r.out, "from 0 to 0")
			assert.Equal(t, int32(3), replicas(t, f.Client.Kube))
		})
	}
}
