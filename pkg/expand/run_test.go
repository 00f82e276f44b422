package expand

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/kubectl-sts/kubectl-sts/pkg/journal"
	"github.com/kubectl-sts/kubectl-sts/pkg/kube/kubefake"
	"github.com/kubectl-sts/kubectl-sts/pkg/progress"
	"github.com/kubectl-sts/kubectl-sts/pkg/wait"
	"github.com/kubectl-sts/kubectl-sts/plugins"
)

// eventLog records the Kubernetes Events a run writes.
type eventLog struct {
	mu      sync.Mutex
	reasons []string
}

func (l *eventLog) Event(_ context.Context, _ *corev1.ObjectReference, _, reason, _ string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.reasons = append(l.reasons, reason)
	return nil
}

func (l *eventLog) all() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.reasons...)
}

func testParams(size string) Params {
	return Params{
		Size: resource.MustParse(size), Restart: RestartAuto, UpdateTemplate: true,
		Timeout: 10 * time.Second, OnlineResizeWait: 150 * time.Millisecond,
	}
}

type harness struct {
	sim    *sim
	events *eventLog
	rec    *progress.Recorder
	engine plugins.Engine
	// sink, if set, also receives the events (e.g. to cancel at a step).
	sink func(progress.Event)
}

func (h *harness) expander(p Params) *Expander {
	sink := progress.SinkFunc(func(e progress.Event) {
		h.rec.Emit(e)
		if h.sink != nil {
			h.sink(e)
		}
	})
	cfg := Config{
		Client: h.sim.cs, Namespace: testNS, Name: "db", Params: p,
		Journal: journal.New(h.sim.cs, testNS, "db", "test-holder"),
		Events:  h.events, Sink: sink,
	}
	if h.engine != nil {
		cfg.EngineFor = func(*appsv1.StatefulSet) (plugins.Engine, error) { return h.engine, nil }
	}
	return New(cfg)
}

func newHarness(t *testing.T, objs ...runtime.Object) *harness {
	return &harness{sim: newSim(t, objs...), events: &eventLog{}, rec: &progress.Recorder{}}
}

// expand runs preflight and the plan, as the command does.
func (h *harness) expand(ctx context.Context, t *testing.T, p Params) (*Plan, *Result, error) {
	t.Helper()
	ex := h.expander(p)
	plan, err := ex.Preflight(ctx)
	require.NoError(t, err)
	res, err := ex.Run(ctx, plan)
	return plan, res, err
}

func (h *harness) pvc(t *testing.T, ordinal int) *corev1.PersistentVolumeClaim {
	t.Helper()
	pvc, err := h.sim.cs.CoreV1().PersistentVolumeClaims(testNS).Get(context.Background(), wait.PVCName("data", "db", ordinal), metav1.GetOptions{})
	require.NoError(t, err)
	return pvc
}

func (h *harness) sts(t *testing.T) *appsv1.StatefulSet {
	t.Helper()
	sts, err := h.sim.cs.AppsV1().StatefulSets(testNS).Get(context.Background(), "db", metav1.GetOptions{})
	require.NoError(t, err)
	return sts
}

func (h *harness) podUIDs(t *testing.T) map[string]string {
	t.Helper()
	pods, err := h.sim.cs.CoreV1().Pods(testNS).List(context.Background(), metav1.ListOptions{})
	require.NoError(t, err)
	out := map[string]string{}
	for _, p := range pods.Items {
		out[p.Name] = string(p.UID)
	}
	return out
}

func (h *harness) record(t *testing.T) (*journal.Record, *State) {
	t.Helper()
	rec, err := journal.New(h.sim.cs, testNS, "db", "reader").Load(context.Background())
	require.NoError(t, err)
	require.NotNil(t, rec)
	var st State
	require.NoError(t, rec.DecodeState(&st))
	return rec, &st
}

// recordedState reads the journal through the fake's tracker, which is
// safe inside a reactor.
func (s *sim) recordedState(t *testing.T) *State {
	obj, err := s.cs.Tracker().Get(schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}, testNS, journal.ConfigMapName("db"))
	if err != nil {
		t.Errorf("reading the journal inside a delete: %v", err)
		return nil
	}
	rec := &journal.Record{}
	cm := obj.(*corev1.ConfigMap)
	if err := jsonUnmarshal([]byte(cm.Data["record.json"]), rec); err != nil {
		t.Errorf("decoding the journal: %v", err)
		return nil
	}
	var st State
	if err := rec.DecodeState(&st); err != nil {
		t.Errorf("decoding the state: %v", err)
	}
	return &st
}

func capacity(pvc *corev1.PersistentVolumeClaim) string {
	q := pvc.Status.Capacity[corev1.ResourceStorage]
	return q.String()
}

func request(pvc *corev1.PersistentVolumeClaim) string {
	q := pvc.Spec.Resources.Requests[corev1.ResourceStorage]
	return q.String()
}

func TestRunOfflineRestartsEachPodOnceAndUpdatesTemplate(t *testing.T) {
	h := newHarness(t, cluster(3, classOff, "1Gi")...)
	// Crash safety: each delete must be announced in the journal first.
	h.sim.onPodDelete = func(name string) {
		st := h.sim.recordedState(t)
		n, _ := wait.PodOrdinal("db", name)
		if c := st.find(wait.PVCName("data", "db", n)); c == nil || c.RestartedPod == "" || c.Status != ClaimRestarting {
			t.Errorf("pod %s deleted before the journal recorded the restart: %+v", name, c)
		}
	}
	h.sim.onSTSDelete = func() {
		st := h.sim.recordedState(t)
		if st.Template == nil || st.Template.Desired == nil || st.Template.OldUID != "sts-uid-0" {
			t.Errorf("statefulset deleted before the desired object was saved: %+v", st.Template)
		}
	}

	plan, res, err := h.expand(context.Background(), t, testParams("2Gi"))
	require.NoError(t, err)

	assert.Equal(t, []int{2, 1, 0}, ordinalsOf(plan), "highest ordinal first without an engine")
	assert.Equal(t, []string{"db-2", "db-1", "db-0"}, res.Restarted)
	for i := 0; i < 3; i++ {
		assert.Equal(t, 1, h.sim.deleteCount(wait.PodName("db", i)), "pod %d restarted exactly once", i)
		assert.Equal(t, 1, h.sim.evictionCount(wait.PodName("db", i)), "pod %d restarted by eviction, so budgets hold", i)
		assert.Equal(t, 1, h.sim.patchCount(wait.PVCName("data", "db", i)), "pvc %d patched exactly once", i)
		assert.Equal(t, "2Gi", capacity(h.pvc(t, i)))
	}
	uidsAfterExpand := res.UID
	assert.True(t, res.TemplateUpdated)
	sts := h.sts(t)
	assert.Equal(t, uidsAfterExpand, sts.UID)
	assert.NotEqual(t, "sts-uid-0", string(sts.UID), "the StatefulSet was recreated")
	q := sts.Spec.VolumeClaimTemplates[0].Spec.Resources.Requests[corev1.ResourceStorage]
	assert.Equal(t, "2Gi", q.String())
	assert.Equal(t, map[string]string{"team": "data"}, sts.Labels, "metadata kept")
	assert.Equal(t, 1, h.sim.stsDeletes())

	rec, st := h.record(t)
	assert.Equal(t, journal.Succeeded, rec.Phase)
	assert.Equal(t, TemplateVerified, st.Template.Step)
	assert.Nil(t, st.Template.Desired, "the saved copy is dropped once done")
	for _, c := range st.Claims {
		assert.Equal(t, ClaimVerified, c.Status, c.PVC)
	}
	reasons := h.events.all()
	assert.Contains(t, reasons, ReasonPodRestarted)
	assert.Contains(t, reasons, ReasonTemplateUpdated)
	assert.Contains(t, reasons, ReasonSucceeded)
	assert.Contains(t, h.rec.Kinds(), KindPodsAdopted)
}

func TestRunDisableEvictionDeletes(t *testing.T) {
	h := newHarness(t, cluster(2, classOff, "1Gi")...)
	p := testParams("2Gi")
	p.DisableEviction = true
	_, res, err := h.expand(context.Background(), t, p)
	require.NoError(t, err)
	assert.Equal(t, []string{"db-1", "db-0"}, res.Restarted)
	for i := 0; i < 2; i++ {
		assert.Equal(t, 1, h.sim.deleteCount(wait.PodName("db", i)))
		assert.Zero(t, h.sim.evictionCount(wait.PodName("db", i)), "no eviction with --disable-eviction")
	}
}

// A budget that refuses the eviction makes the ordinal wait, saying so,
// then stop cleanly: the pod is untouched and the same run continues
// from that ordinal once the budget allows it.
func TestRunEvictionBlockedByABudgetWaitsThenStopsResumably(t *testing.T) {
	pdb := &policyv1.PodDisruptionBudget{ObjectMeta: metav1.ObjectMeta{Name: "db-pdb", Namespace: testNS},
		Spec: policyv1.PodDisruptionBudgetSpec{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "db"}}}}
	h := newHarness(t, append(cluster(2, classOff, "1Gi"), pdb)...)
	h.sim.setRefuseEvictions(true)
	p := testParams("2Gi")
	p.Timeout, p.EvictionRetry = 2*time.Second, 20*time.Millisecond
	_, _, err := h.expand(context.Background(), t, p)
	var attention *AttentionError
	require.ErrorAs(t, err, &attention)
	assert.Contains(t, err.Error(), "pod db-1 was not evicted: PodDisruptionBudget db-pdb refused it until the time ran out (The disruption budget db-pdb needs 3 healthy pods and has 3 currently)")
	assert.Contains(t, err.Error(), "run the same command again to continue from this ordinal, or add --disable-eviction")
	assert.Zero(t, h.sim.deleteCount("db-1"), "the pod is untouched")
	var told int
	for _, k := range h.rec.Kinds() {
		if k == KindEvictionBlocked {
			told++
		}
	}
	assert.Equal(t, 1, told, "the wait is told once, not at every retry")
	assert.Contains(t, h.events.all(), ReasonEvictionBlocked)
	rec, _ := h.record(t)
	assert.NotEqual(t, journal.Succeeded, rec.Phase)

	h.sim.setRefuseEvictions(false)
	_, res, err := h.expand(context.Background(), t, p)
	require.NoError(t, err)
	assert.Equal(t, []string{"db-1", "db-0"}, res.Restarted)
	assert.Equal(t, 1, h.sim.deleteCount("db-1"))
	assert.Equal(t, 1, h.sim.patchCount(wait.PVCName("data", "db", 1)), "the claim is not patched twice")
}

func TestRunTemplateStepKeepsPods(t *testing.T) {
	h := newHarness(t, cluster(2, classOn, "1Gi")...)
	before := h.podUIDs(t)
	_, res, err := h.expand(context.Background(), t, testParams("2Gi"))
	require.NoError(t, err)
	assert.Empty(t, res.Restarted)
	assert.Equal(t, before, h.podUIDs(t), "neither the online resize nor the template step replaced a pod")
	assert.True(t, res.TemplateUpdated)
}

func TestRunOnlineRestartsNothing(t *testing.T) {
	h := newHarness(t, cluster(3, classOn, "1Gi")...)
	p := testParams("3Gi")
	p.OnlineResizeWait = 5 * time.Second
	_, res, err := h.expand(context.Background(), t, p)
	require.NoError(t, err)
	assert.Empty(t, res.Restarted)
	assert.ElementsMatch(t, []string{"data-db-0", "data-db-1", "data-db-2"}, res.Expanded)
	for i := 0; i < 3; i++ {
		assert.Zero(t, h.sim.deleteCount(wait.PodName("db", i)))
		assert.Equal(t, "3Gi", capacity(h.pvc(t, i)))
	}
}

func TestRunRestartAlwaysRestartsOnlineClaimsToo(t *testing.T) {
	h := newHarness(t, cluster(2, classOn, "1Gi")...)
	p := testParams("2Gi")
	p.Restart = RestartAlways
	_, res, err := h.expand(context.Background(), t, p)
	require.NoError(t, err)
	assert.Equal(t, []string{"db-1", "db-0"}, res.Restarted)
	assert.Equal(t, 1, h.sim.deleteCount("db-0"))
	assert.Equal(t, 1, h.sim.deleteCount("db-1"))
}

func TestRunRestartNeverLeavesClaimsAwaitingRestart(t *testing.T) {
	h := newHarness(t, cluster(2, classOff, "1Gi")...)
	p := testParams("2Gi")
	p.Restart = RestartNever
	_, res, err := h.expand(context.Background(), t, p)
	require.NoError(t, err)
	assert.Empty(t, res.Restarted)
	assert.Equal(t, []string{"data-db-1", "data-db-0"}, res.AwaitingRestart)
	assert.Zero(t, h.sim.deleteCount("db-0")+h.sim.deleteCount("db-1"))
	assert.Equal(t, "1Gi", capacity(h.pvc(t, 0)), "the file system resize still waits")
	assert.Equal(t, "2Gi", request(h.pvc(t, 0)))
	assert.True(t, res.TemplateUpdated, "the template step does not depend on the file systems")
	_, st := h.record(t)
	assert.Equal(t, ClaimAwaitingRestart, st.find("data-db-0").Status)
}

func TestRunInfeasibleResizeStopsAtFirstOrdinal(t *testing.T) {
	h := newHarness(t, cluster(3, classFail, "1Gi")...)
	_, res, err := h.expand(context.Background(), t, testParams("2Gi"))
	var failed *ResizeFailedError
	require.ErrorAs(t, err, &failed)
	assert.Equal(t, "data-db-2", failed.PVC)
	assert.Equal(t, []string{"data-db-1", "data-db-0"}, failed.Untouched)
	assert.Equal(t, "1Gi", failed.Capacity)
	assert.Contains(t, failed.Reason, "ControllerResizeInfeasible")
	assert.Contains(t, err.Error(), "run this command again with a --size the storage can provide, above 1Gi")
	assert.True(t, res.Changed)

	assert.Equal(t, "1Gi", request(h.pvc(t, 1)), "ordinal 1 untouched")
	assert.Equal(t, "1Gi", request(h.pvc(t, 0)), "ordinal 0 untouched")
	assert.Zero(t, h.sim.deleteCount("db-2"), "a failed resize restarts nothing")
	assert.Zero(t, h.sim.stsDeletes(), "the template is not touched after a failure")
	rec, _ := h.record(t)
	assert.Equal(t, journal.Failed, rec.Phase)
	assert.Contains(t, h.events.all(), ReasonFailed)
}

func TestRunRetriesAFailedResizeWithALowerRequest(t *testing.T) {
	h := newHarness(t, cluster(2, classLimited, "1Gi")...)
	_, _, err := h.expand(context.Background(), t, testParams("2Gi"))
	var failed *ResizeFailedError
	require.ErrorAs(t, err, &failed)
	assert.Equal(t, "data-db-1", failed.PVC)

	// The same size again is refused: the storage would not retry it.
	_, err = h.expander(testParams("2Gi")).Preflight(context.Background())
	var refused *PreflightError
	require.ErrorAs(t, err, &refused)
	assert.Contains(t, err.Error(), "an earlier resize of pvc data-db-1 to 2Gi failed")
	assert.Contains(t, err.Error(), "above 1Gi and below 2Gi")

	// A size the storage can provide retries with a lowered request.
	plan, res, err := h.expand(context.Background(), t, testParams(limitedMax))
	require.NoError(t, err)
	assert.Equal(t, ActionRetry, plan.Ordinals[0].Action)
	assert.Equal(t, ActionExpand, plan.Ordinals[1].Action)
	assert.Equal(t, []string{"data-db-1", "data-db-0"}, res.Expanded)
	for i := 0; i < 2; i++ {
		assert.Equal(t, "1536Mi", request(h.pvc(t, i)))
		assert.Equal(t, "1536Mi", capacity(h.pvc(t, i)))
	}
	q := h.sts(t).Spec.VolumeClaimTemplates[0].Spec.Resources.Requests[corev1.ResourceStorage]
	assert.Equal(t, "1536Mi", q.String())
}

func TestRunResizeFailedEventStops(t *testing.T) {
	h := newHarness(t, cluster(2, classEvent, "1Gi")...)
	_, _, err := h.expand(context.Background(), t, testParams("2Gi"))
	var failed *ResizeFailedError
	require.ErrorAs(t, err, &failed)
	assert.Equal(t, "data-db-1", failed.PVC)
	assert.Contains(t, failed.Reason, "VolumeResizeFailed: rpc error: quota of the storage backend exceeded")
	assert.Equal(t, "1Gi", request(h.pvc(t, 0)))
}

func TestRunInterruptedResumesWithoutRepeating(t *testing.T) {
	h := newHarness(t, cluster(3, classOff, "1Gi")...)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	h.sink = func(e progress.Event) {
		if e.Kind == KindPVCResized {
			cancel()
		}
	}
	_, _, err := h.expand(ctx, t, testParams("2Gi"))
	require.ErrorIs(t, err, context.Canceled)
	assert.Contains(t, err.Error(), "run the same command again to continue")
	rec, st := h.record(t)
	assert.Equal(t, journal.Running, rec.Phase, "an interrupted run stays resumable")
	assert.Empty(t, rec.Holder, "the lease is released")
	assert.Equal(t, ClaimVerified, st.find("data-db-2").Status)

	h.sink = nil
	plan, res, err := h.expand(context.Background(), t, testParams("2Gi"))
	require.NoError(t, err)
	assert.True(t, plan.Resumed)
	assert.Equal(t, ActionDone, plan.Ordinals[0].Action, "the verified ordinal is skipped")
	assert.Equal(t, []string{"data-db-2"}, res.Skipped)
	for i := 0; i < 3; i++ {
		assert.Equal(t, 1, h.sim.patchCount(wait.PVCName("data", "db", i)), "pvc %d patched once over both runs", i)
		assert.Equal(t, 1, h.sim.deleteCount(wait.PodName("db", i)), "pod %d restarted once over both runs", i)
	}
	assert.True(t, res.TemplateUpdated)
}

func TestRunInterruptedAfterRestartNeverRestartsAgain(t *testing.T) {
	h := newHarness(t, cluster(2, classOff, "1Gi")...)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	h.sink = func(e progress.Event) {
		if e.Kind == KindPodRestarting {
			cancel()
		}
	}
	_, _, err := h.expand(ctx, t, testParams("2Gi"))
	require.ErrorIs(t, err, context.Canceled)
	_, st := h.record(t)
	require.NotEmpty(t, st.find("data-db-1").RestartedPod)

	h.sink = nil
	_, _, err = h.expand(context.Background(), t, testParams("2Gi"))
	require.NoError(t, err)
	assert.Equal(t, 1, h.sim.deleteCount("db-1"))
	assert.Equal(t, 1, h.sim.deleteCount("db-0"))
}

func TestRunRecordedRestartIsNotRepeated(t *testing.T) {
	objs := cluster(1, classOff, "1Gi")
	// An earlier run deleted pod uid pod-0-a; its replacement is still
	// starting, and the claim waits for it.
	for i, o := range objs {
		switch v := o.(type) {
		case *corev1.Pod:
			p := newPod(newSTS(1, classOff, "1Gi"), 0, "pod-0-b")
			p.Status.Conditions[0].Status = corev1.ConditionFalse
			objs[i] = p
		case *corev1.PersistentVolumeClaim:
			v.Spec.Resources.Requests[corev1.ResourceStorage] = resource.MustParse("2Gi")
			v.Status.AllocatedResourceStatuses = map[corev1.ResourceName]corev1.ClaimResourceStatus{corev1.ResourceStorage: corev1.PersistentVolumeClaimNodeResizePending}
			v.Status.Conditions = []corev1.PersistentVolumeClaimCondition{{Type: corev1.PersistentVolumeClaimFileSystemResizePending, Status: corev1.ConditionTrue}}
		}
	}
	h := newHarness(t, objs...)
	h.sim.pendingBy["data-db-0"] = "pod-0-a"
	j := journal.New(h.sim.cs, testNS, "db", "crashed-process")
	rec, _, err := j.Begin(context.Background(), Operation, &State{Version: 1, Claim: "data", Size: "2Gi", Restart: RestartAuto,
		Claims: []*ClaimState{{Ordinal: 0, PVC: "data-db-0", Status: ClaimRestarting, Patched: true, RestartedPod: "pod-0-a"}}})
	require.NoError(t, err)
	require.NoError(t, j.Release(context.Background(), rec, "interrupted"))
	go func() {
		time.Sleep(100 * time.Millisecond)
		pod, err := h.sim.cs.CoreV1().Pods(testNS).Get(context.Background(), "db-0", metav1.GetOptions{})
		if err == nil {
			pod.Status.Conditions[0].Status = corev1.ConditionTrue
			_, _ = h.sim.cs.CoreV1().Pods(testNS).UpdateStatus(context.Background(), pod, metav1.UpdateOptions{})
		}
	}()

	plan, res, err := h.expand(context.Background(), t, testParams("2Gi"))
	require.NoError(t, err)
	assert.True(t, plan.Resumed)
	assert.Equal(t, RestartDone, plan.Ordinals[0].Restart)
	assert.Zero(t, h.sim.deleteCount("db-0"), "the recorded restart is not repeated")
	assert.Zero(t, h.sim.patchCount("data-db-0"), "the request already says 2Gi")
	assert.Equal(t, []string{"data-db-0"}, res.Expanded)
	assert.Equal(t, "2Gi", capacity(h.pvc(t, 0)))
}

func TestRunRecreatesStatefulSetDeletedByACrashedRun(t *testing.T) {
	old := newSTS(2, classOn, "1Gi")
	var objs []runtime.Object
	var marks []PodMark
	for i := 0; i < 2; i++ {
		p := newPod(old, i, fmt.Sprintf("pod-%d-a", i))
		p.OwnerReferences = nil // orphaned by the delete
		objs = append(objs, p, newPVC(i, classOn, "2Gi", "2Gi"))
		marks = append(marks, PodMark{Name: p.Name, UID: p.UID, Revision: testRev})
	}
	// The old StatefulSet's ControllerRevision outlives it, orphaned as
	// its pods are, and the recreated one adopts it.
	rev := &appsv1.ControllerRevision{
		ObjectMeta: metav1.ObjectMeta{Name: testRev, Namespace: testNS, Labels: old.Spec.Selector.MatchLabels},
		Data:       runtime.RawExtension{Raw: kubefake.RevisionData(old.Spec.Template)},
		Revision:   1,
	}
	objs = append(objs, rev, storageClass(classOn, true))
	h := newHarness(t, objs...)
	j := journal.New(h.sim.cs, testNS, "db", "crashed-process")
	rec, _, err := j.Begin(context.Background(), Operation, &State{Version: 1, Claim: "data", Size: "2Gi", Restart: RestartAuto, UpdateTemplate: true,
		Template: &TemplateState{Step: TemplateDeleted, Desired: desiredStatefulSet(old, "data", resource.MustParse("2Gi")), OldUID: old.UID, Pods: marks, UpdateRevision: testRev}})
	require.NoError(t, err)
	require.NoError(t, j.Release(context.Background(), rec, "killed"))

	plan, res, err := h.expand(context.Background(), t, testParams("2Gi"))
	require.NoError(t, err)
	assert.True(t, plan.Recreate)
	assert.True(t, res.TemplateUpdated)
	sts := h.sts(t)
	q := sts.Spec.VolumeClaimTemplates[0].Spec.Resources.Requests[corev1.ResourceStorage]
	assert.Equal(t, "2Gi", q.String())
	assert.Equal(t, map[string]string{"db-0": "pod-0-a", "db-1": "pod-1-a"}, h.podUIDs(t), "the pods were adopted, not replaced")
	rec2, _ := h.record(t)
	assert.Equal(t, journal.Succeeded, rec2.Phase)
}

func TestRunRecreateNeedsTheRecordedSize(t *testing.T) {
	old := newSTS(1, classOn, "1Gi")
	h := newHarness(t, newPVC(0, classOn, "2Gi", "2Gi"))
	j := journal.New(h.sim.cs, testNS, "db", "crashed-process")
	rec, _, err := j.Begin(context.Background(), Operation, &State{Version: 1, Claim: "data", Size: "2Gi",
		Template: &TemplateState{Step: TemplateDeleted, Desired: desiredStatefulSet(old, "data", resource.MustParse("2Gi")), OldUID: old.UID}})
	require.NoError(t, err)
	require.NoError(t, j.Release(context.Background(), rec, "killed"))

	_, err = h.expander(testParams("3Gi")).Preflight(context.Background())
	var refused *PreflightError
	require.ErrorAs(t, err, &refused)
	assert.Contains(t, err.Error(), "kubectl sts expand-pvc db --claim data --size 2Gi -n default")
}

func TestRunStopsWhenSomeoneRecreatedTheOldTemplate(t *testing.T) {
	objs := cluster(1, classOn, "1Gi")
	objs[0].(*appsv1.StatefulSet).UID = "sts-uid-gitops"
	for _, o := range objs {
		switch v := o.(type) {
		case *corev1.PersistentVolumeClaim:
			v.Spec.Resources.Requests[corev1.ResourceStorage] = resource.MustParse("2Gi")
			v.Status.Capacity[corev1.ResourceStorage] = resource.MustParse("2Gi")
		case *corev1.Pod:
			v.OwnerReferences[0].UID = "sts-uid-gitops"
		}
	}
	h := newHarness(t, objs...)
	old := newSTS(1, classOn, "1Gi")
	j := journal.New(h.sim.cs, testNS, "db", "crashed-process")
	rec, _, err := j.Begin(context.Background(), Operation, &State{Version: 1, Claim: "data", Size: "2Gi", UpdateTemplate: true,
		Template: &TemplateState{Step: TemplateDeleted, Desired: desiredStatefulSet(old, "data", resource.MustParse("2Gi")), OldUID: old.UID}})
	require.NoError(t, err)
	require.NoError(t, j.Release(context.Background(), rec, "killed"))

	_, _, err = h.expand(context.Background(), t, testParams("2Gi"))
	var attention *AttentionError
	require.ErrorAs(t, err, &attention)
	assert.Contains(t, err.Error(), "recreated by someone else")
	assert.Contains(t, err.Error(), "GitOps")
	assert.Zero(t, h.sim.stsDeletes(), "a StatefulSet someone else made is not deleted")
}

// fakeEngine reports fixed roles.
type fakeEngine struct {
	mu      sync.Mutex
	primary int
	calls   int
}

func (e *fakeEngine) Name() string        { return "fakedb" }
func (e *fakeEngine) Matches(string) bool { return false }
func (e *fakeEngine) Members(_ context.Context, t plugins.Target) ([]plugins.Member, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.calls++
	var out []plugins.Member
	for _, p := range t.Pods {
		n, _ := wait.PodOrdinal(t.StatefulSet.Name, p.Name)
		role := plugins.RoleReplica
		if n == e.primary {
			role = plugins.RolePrimary
		}
		out = append(out, plugins.Member{Pod: p.Name, Ordinal: n, Role: role})
	}
	return out, nil
}
func (e *fakeEngine) Healthy([]plugins.Member, plugins.HealthOptions) (bool, string) { return true, "" }
func (e *fakeEngine) BeforeRemove(context.Context, plugins.Target, int, plugins.RemoveOptions) error {
	return errors.New("not used")
}
func (e *fakeEngine) AfterRemove(context.Context, plugins.Target, int, plugins.RemoveOptions) error {
	return errors.New("not used")
}

func TestRunRestartsThePrimaryLast(t *testing.T) {
	h := newHarness(t, cluster(3, classOff, "1Gi")...)
	engine := &fakeEngine{primary: 1}
	h.engine = engine
	plan, res, err := h.expand(context.Background(), t, testParams("2Gi"))
	require.NoError(t, err)
	assert.Equal(t, "fakedb", plan.Engine)
	assert.Equal(t, []int{2, 0, 1}, ordinalsOf(plan))
	assert.Equal(t, plugins.RolePrimary, plan.Ordinals[2].Role)
	assert.Equal(t, []string{"db-2", "db-0", "db-1"}, res.Restarted)
}

func TestRunReordersWhenThePrimaryMoves(t *testing.T) {
	h := newHarness(t, cluster(3, classOff, "1Gi")...)
	engine := &fakeEngine{primary: 2}
	h.engine = engine
	// After the plan named pod 2 the primary, a failover makes pod 0 it:
	// the replicas go first, highest ordinal first, and pod 0 last.
	h.sink = func(e progress.Event) {
		if e.Kind == KindStarted {
			engine.mu.Lock()
			engine.primary = 0
			engine.mu.Unlock()
		}
	}
	plan, res, err := h.expand(context.Background(), t, testParams("2Gi"))
	require.NoError(t, err)
	assert.Equal(t, []int{1, 0, 2}, ordinalsOf(plan))
	assert.Equal(t, []string{"db-2", "db-1", "db-0"}, res.Restarted)
	assert.Contains(t, h.rec.Kinds(), KindWarning)
}

func ordinalsOf(p *Plan) []int {
	out := make([]int, len(p.Ordinals))
	for i, o := range p.Ordinals {
		out[i] = o.Ordinal
	}
	return out
}
