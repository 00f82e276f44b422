package scaledown

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/utils/ptr"

	"github.com/kubectl-sts/kubectl-sts/pkg/journal"
	"github.com/kubectl-sts/kubectl-sts/pkg/progress"
)

func run(t *testing.T, ctx context.Context, e *env, c Config) (*Result, error) {
	t.Helper()
	p, err := Prepare(ctx, c, e.deps())
	require.NoError(t, err)
	return Execute(ctx, p, e.deps())
}

func record(t *testing.T, e *env) *journal.Record {
	t.Helper()
	rec, err := journal.New(e.client, ns, "db", "x").Load(context.Background())
	require.NoError(t, err)
	require.NotNil(t, rec)
	return rec
}

func drain(ch chan string) []string {
	var out []string
	for {
		select {
		case s := <-ch:
			out = append(out, s)
		default:
			return out
		}
	}
}

func indexOf(events []progress.Event, kind, obj string) int {
	return slices.IndexFunc(events, func(ev progress.Event) bool { return ev.Kind == kind && ev.Object == obj })
}

// What an engine step leaves of a removed member is listed in the
// summary, not only warned about along the way.
func TestSummaryListsWhatTheEngineLeft(t *testing.T) {
	ctx, e := newRunEnv(t, fixture(4))
	e.engine.left = map[int]string{3: "slot standby_db_3"}
	e.startController(ctx, "db", 0)
	res, err := run(t, ctx, e, cfg(3))
	require.NoError(t, err)
	assert.Equal(t, []string{"slot standby_db_3"}, res.Left)
	evs := e.rec.Events()
	require.Equal(t, "succeeded", evs[len(evs)-1].Kind)
	assert.Contains(t, evs[len(evs)-1].Message, "left in place of removed members: slot standby_db_3 (kubectl sts status db names them until they are dropped; kubectl sts cleanup db -n prod drops them)")
}

func TestExecuteRemovesOneOrdinalAtATimeFromTheTop(t *testing.T) {
	f := fixture(5)
	foreign := claim("data", "db", 4, map[string]string{"app": "other"})
	foreign.Name = "data-db-4-copy"
	ctx, e := newRunEnv(t, f, foreign)
	e.startController(ctx, "db", 0)

	c := cfg(3)
	c.SlotNames = []string{"replica_{ordinal}"}
	res, err := run(t, ctx, e, c)
	require.NoError(t, err)

	// The engine's post-removal step for 4 ran once pod 4 was gone (and
	// without it in the target), before anything happened to ordinal 3.
	assert.Equal(t, []string{"before:4", "after:4:pod-gone", "before:3", "after:3:pod-gone"}, e.engine.Calls())
	assert.Equal(t, []string{"replica_4"}, e.engine.slots[4])
	assert.Equal(t, []string{"replica_3"}, e.engine.slots[3])
	assert.Equal(t, []string{"db-4", "db-3"}, drain(e.deleted))
	assert.Equal(t, int32(3), e.replicas(ctx))
	assert.ElementsMatch(t, []string{"db-0", "db-1", "db-2"}, e.podNames(ctx))
	assert.ElementsMatch(t, []string{"data-db-0", "data-db-1", "data-db-2", "wal-db-0", "wal-db-1", "wal-db-2", "data-db-4-copy"}, e.pvcNames(ctx))
	assert.Equal(t, []string{"db-4", "db-3"}, res.Removed)
	assert.Equal(t, []string{"data-db-4", "wal-db-4", "data-db-3", "wal-db-3"}, res.Deleted)

	// Ordinal 4's claims were deleted before ordinal 3 was started.
	evs := e.rec.Events()
	assert.Less(t, indexOf(evs, "pvc-deleted", "pvc/wal-db-4"), indexOf(evs, "step-started", "pod/db-3"))
	assert.Less(t, indexOf(evs, "pod-gone", "pod/db-4"), indexOf(evs, "pvc-deleted", "pvc/data-db-4"))
	assert.Equal(t, "succeeded", evs[len(evs)-1].Kind)
	for _, ev := range evs {
		assert.Equal(t, Operation, ev.Operation)
	}

	rec := record(t, e)
	assert.Equal(t, journal.Succeeded, rec.Phase)
	assert.Empty(t, rec.Holder)
	reasons := e.events.Reasons()
	for _, want := range []string{"ScaleDownStarted", "ScaleDownScaled", "ScaleDownPodRemoved", "ScaleDownEngineStep", "ScaleDownPVCDeleted", "ScaleDownSucceeded"} {
		assert.Contains(t, reasons, want)
	}
}

func TestExecuteKeepLeavesTheClaims(t *testing.T) {
	ctx, e := newRunEnv(t, fixture(4))
	e.startController(ctx, "db", 0)
	c := cfg(2)
	c.PVC = PVCKeep
	res, err := run(t, ctx, e, c)
	require.NoError(t, err)
	assert.Len(t, e.pvcNames(ctx), 8)
	assert.Equal(t, []string{"data-db-3", "wal-db-3", "data-db-2", "wal-db-2"}, res.Kept)
	assert.Empty(t, res.Deleted)
	assert.ElementsMatch(t, []string{"db-0", "db-1"}, e.podNames(ctx))
}

func TestExecuteStopsOnAFailedEngineStepAndResumesThere(t *testing.T) {
	ctx, e := newRunEnv(t, fixture(5))
	e.engine.afterErr = map[int]error{4: errors.New("slot replica_4 is still active")}
	e.startController(ctx, "db", 0)

	_, err := run(t, ctx, e, cfg(3))
	var stopped *StoppedError
	require.ErrorAs(t, err, &stopped)
	assert.Contains(t, err.Error(), "slot replica_4 is still active")
	assert.Contains(t, err.Error(), "run the same command again to resume")
	rec := record(t, e)
	assert.Equal(t, journal.Running, rec.Phase, "the record stays open for a resume")
	assert.Empty(t, rec.Holder, "the lease is released")
	var st State
	require.NoError(t, rec.DecodeState(&st))
	assert.Equal(t, StagePodGone, st.step(4).Stage)
	assert.Contains(t, e.pvcNames(ctx), "data-db-4", "no claim is touched before the engine step succeeded")
	assert.Equal(t, int32(4), e.replicas(ctx))

	// The slot went inactive: the same command resumes at the failed step.
	e.engine.afterErr = nil
	res, err := run(t, ctx, e, cfg(3))
	require.NoError(t, err)
	assert.Equal(t, []string{"before:4", "after:4:pod-gone", "after:4:pod-gone", "before:3", "after:3:pod-gone"}, e.engine.Calls())
	assert.Equal(t, []string{"db-3"}, res.Removed)
	assert.NotContains(t, e.pvcNames(ctx), "data-db-4")
	assert.Equal(t, journal.Succeeded, record(t, e).Phase)
}

func TestExecuteInterruptedAfterTheFirstOrdinalResumes(t *testing.T) {
	f := fixture(5)
	e := newEnv(t, f.Objects()...)
	e.engine.members = primaryAt(0, 5)

	// First run: the controller removes pod 4, then "dies" before pod 3:
	// the run waits for pod 3 and is interrupted there.
	ctx1, cancel1 := context.WithCancel(context.Background())
	defer cancel1()
	e.rec = &progress.Recorder{}
	d := e.deps()
	d.Sink = progress.SinkFunc(func(ev progress.Event) {
		e.rec.Emit(ev)
		if ev.Kind == "scaled" && ev.Step == 1 {
			// One sync of the controller: it removes pod 4 and observes
			// the new generation; then it syncs no more.
			go e.ctrl.Reconcile(context.Background(), "db")
		}
		if ev.Kind == "waiting" && ev.Step == 2 {
			cancel1()
		}
	})
	p, err := Prepare(ctx1, cfg(3), d)
	require.NoError(t, err)
	_, err = Execute(ctx1, p, d)
	require.Error(t, err)
	require.ErrorIs(t, err, context.Canceled)
	rec := record(t, e)
	assert.Equal(t, journal.Running, rec.Phase)
	assert.Empty(t, rec.Holder, "an interrupted run releases its lease")
	var st State
	require.NoError(t, rec.DecodeState(&st))
	assert.Equal(t, StageDone, st.step(4).Stage)
	assert.Equal(t, StageScaled, st.step(3).Stage)
	assert.Equal(t, int32(3), e.replicas(context.Background()))
	assert.NotContains(t, e.pvcNames(context.Background()), "data-db-4")
	assert.Contains(t, e.pvcNames(context.Background()), "data-db-3")

	// Second run: nothing of ordinal 4 is redone; ordinal 3 continues at
	// its wait.
	ctx, cancel := context.WithTimeout(context.Background(), safety)
	defer cancel()
	e.startController(ctx, "db", 0)
	// The controller is back and has caught up with the scale to 3.
	e.waitObserved(ctx)
	before := len(e.engine.Calls())
	p, err = Prepare(ctx, cfg(3), e.deps())
	require.NoError(t, err)
	assert.True(t, p.Resumed)
	res, err := Execute(ctx, p, e.deps())
	require.NoError(t, err)
	assert.Equal(t, []string{"after:3:pod-gone"}, e.engine.Calls()[before:])
	assert.Equal(t, []string{"db-3"}, res.Removed)
	assert.ElementsMatch(t, []string{"data-db-0", "data-db-1", "data-db-2", "wal-db-0", "wal-db-1", "wal-db-2"}, e.pvcNames(ctx))
	assert.Equal(t, journal.Succeeded, record(t, e).Phase)
	// The summary counts the whole operation, not only the resumed run.
	evs := e.rec.Events()
	require.Equal(t, "succeeded", evs[len(evs)-1].Kind)
	assert.Equal(t, "statefulset db scaled from 5 to 3 replicas; 4 pvcs deleted", evs[len(evs)-1].Message)
}

func TestExecuteNeverDeletesAClaimAPodMounts(t *testing.T) {
	f := fixture(4)
	backup := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "backup-job"},
		Spec: corev1.PodSpec{Volumes: []corev1.Volume{{Name: "src", VolumeSource: corev1.VolumeSource{
			PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "wal-db-3"}}}}},
	}
	ctx, e := newRunEnv(t, f, backup)
	e.startController(ctx, "db", 0)
	_, err := run(t, ctx, e, cfg(3))
	var stopped *StoppedError
	require.ErrorAs(t, err, &stopped)
	assert.Contains(t, err.Error(), "not touching pvc wal-db-3: pod backup-job mounts it")
	assert.Contains(t, e.pvcNames(ctx), "wal-db-3")
}

func TestCheckDeletableRefusals(t *testing.T) {
	ctx := context.Background()
	f := fixture(5)
	e := newEnv(t, f.Objects()...)
	e.engine.members = primaryAt(0, 5)
	p, err := Prepare(ctx, cfg(3), e.deps())
	require.NoError(t, err)
	r := &runner{plan: p, cfg: p.cfg, deps: e.deps()}
	planned := p.Steps[0].PVCs[0] // data-db-4

	_, err = r.checkDeletable(ctx, 4, planned)
	assert.ErrorContains(t, err, "its ordinal 4 is inside the replica range", "5 replicas still include ordinal 4")

	_, err = e.client.AppsV1().StatefulSets(ns).Patch(ctx, "db", "application/merge-patch+json", []byte(`{"spec":{"replicas":3}}`), metav1.PatchOptions{})
	require.NoError(t, err)
	_, err = r.checkDeletable(ctx, 4, planned)
	assert.ErrorContains(t, err, "pod db-4 exists again")

	require.NoError(t, e.client.CoreV1().Pods(ns).Delete(ctx, "db-4", metav1.DeleteOptions{}))
	live, err := r.checkDeletable(ctx, 4, planned)
	require.NoError(t, err)
	assert.Equal(t, "data-db-4", live.Name)

	other := planned
	other.UID = "stale"
	_, err = r.checkDeletable(ctx, 4, other)
	assert.ErrorContains(t, err, "it was recreated since the plan was made")

	pvc, err := e.client.CoreV1().PersistentVolumeClaims(ns).Get(ctx, "data-db-4", metav1.GetOptions{})
	require.NoError(t, err)
	_, err = e.client.CoreV1().PersistentVolumeClaims(ns).Update(ctx, controlledBy(pvc, otherSTS()), metav1.UpdateOptions{})
	require.NoError(t, err)
	_, err = r.checkDeletable(ctx, 4, planned)
	assert.ErrorContains(t, err, "it is no longer a claim of statefulset db")

	// Below the target: never, even if the StatefulSet were scaled further.
	_, err = e.client.AppsV1().StatefulSets(ns).Patch(ctx, "db", "application/merge-patch+json", []byte(`{"spec":{"replicas":1}}`), metav1.PatchOptions{})
	require.NoError(t, err)
	require.NoError(t, e.client.CoreV1().Pods(ns).Delete(ctx, "db-2", metav1.DeleteOptions{}))
	_, err = r.checkDeletable(ctx, 2, PlanPVC{Name: "data-db-2", UID: "uid"})
	assert.ErrorContains(t, err, "inside the replica range")

	require.NoError(t, e.client.CoreV1().PersistentVolumeClaims(ns).Delete(ctx, "wal-db-4", metav1.DeleteOptions{}))
	live, err = r.checkDeletable(ctx, 4, p.Steps[0].PVCs[1])
	require.NoError(t, err)
	assert.Nil(t, live, "a claim that is already gone is not an error")
}

func TestExecuteSnapshotsThenDeletes(t *testing.T) {
	ctx, e := newRunEnv(t, fixture(4))
	withSnapshotAPI(e.client)
	e.startController(ctx, "db", 0)
	dyn := newFakeDynamic(snapshotClass("std", true))
	go markAllReady(ctx, dyn)

	d := e.deps()
	d.Dynamic = dyn
	c := cfg(3)
	c.PVC = PVCSnapshot
	p, err := Prepare(ctx, c, d)
	require.NoError(t, err)
	assert.Equal(t, "std", p.SnapshotClass)
	res, err := Execute(ctx, p, d)
	require.NoError(t, err)
	require.Len(t, res.Snapshots, 2)
	assert.Equal(t, []string{"data-db-3", "wal-db-3"}, res.Deleted)
	snaps, err := dyn.Resource(SnapshotResource()).Namespace(ns).List(ctx, metav1.ListOptions{})
	require.NoError(t, err)
	var sources []string
	for _, s := range snaps.Items {
		src, _, _ := unstructured.NestedString(s.Object, "spec", "source", "persistentVolumeClaimName")
		sources = append(sources, src)
		assert.Equal(t, journal.ManagedBy, s.GetLabels()[journal.LabelManagedBy])
	}
	assert.ElementsMatch(t, []string{"data-db-3", "wal-db-3"}, sources)
	evs := e.rec.Events()
	assert.Less(t, indexOf(evs, "snapshot-ready", "volumesnapshot/"+res.Snapshots[0]), indexOf(evs, "pvc-deleted", "pvc/data-db-3"))
}

func TestExecuteSnapshotFailureKeepsTheClaim(t *testing.T) {
	ctx, e := newRunEnv(t, fixture(4))
	withSnapshotAPI(e.client)
	e.startController(ctx, "db", 0)
	dyn := newFakeDynamic(snapshotClass("std", true))
	d := e.deps()
	d.Dynamic = dyn
	c := cfg(3)
	c.PVC = PVCSnapshot
	c.Timeout = 300 * time.Millisecond
	p, err := Prepare(ctx, c, d)
	require.NoError(t, err)
	_, err = Execute(ctx, p, d)
	var stopped *StoppedError
	require.ErrorAs(t, err, &stopped)
	assert.Contains(t, err.Error(), "readyToUse")
	assert.Contains(t, err.Error(), "pvc data-db-3 was not deleted")
	assert.Contains(t, e.pvcNames(ctx), "data-db-3")
}

// markAllReady plays the snapshot controller for every snapshot.
func markAllReady(ctx context.Context, dyn *dynamicfake.FakeDynamicClient) {
	api := dyn.Resource(SnapshotResource()).Namespace(ns)
	for ctx.Err() == nil {
		list, err := api.List(ctx, metav1.ListOptions{})
		if err == nil {
			for _, s := range list.Items {
				if ready, _, _ := unstructured.NestedBool(s.Object, "status", "readyToUse"); !ready {
					_ = unstructured.SetNestedField(s.Object, true, "status", "readyToUse")
					_, _ = api.Update(ctx, &s, metav1.UpdateOptions{})
				}
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestExecuteLeavesClaimsToTheRetentionPolicy(t *testing.T) {
	f := fixture(4)
	f.StatefulSet.Spec.PersistentVolumeClaimRetentionPolicy = &appsv1.StatefulSetPersistentVolumeClaimRetentionPolicy{
		WhenScaled: appsv1.DeletePersistentVolumeClaimRetentionPolicyType, WhenDeleted: appsv1.RetainPersistentVolumeClaimRetentionPolicyType,
	}
	ctx, e := newRunEnv(t, f)
	e.startController(ctx, "db", 0)
	c := cfg(3)
	c.PVC, c.PVCExplicit = "", false
	res, err := run(t, ctx, e, c)
	require.NoError(t, err)
	assert.Equal(t, []string{"data-db-3", "wal-db-3"}, res.ByKubernetes)
	assert.Empty(t, res.Deleted)
	// The fake has no garbage collector: the claims are still there, and
	// kubectl-sts did not touch them.
	assert.Contains(t, e.pvcNames(ctx), "data-db-3")
}

func TestExecuteEventFailuresAreWarningsOnly(t *testing.T) {
	ctx, e := newRunEnv(t, fixture(4))
	e.events.fail = true
	e.startController(ctx, "db", 0)
	_, err := run(t, ctx, e, cfg(3))
	require.NoError(t, err)
	assert.Contains(t, e.rec.Kinds(), "event-failed")
}

func TestExecuteCleanupDeletesOnlyLeftovers(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), safety)
	defer cancel()
	f := fixture(3)
	labels := map[string]string{"app": "db"}
	lookalike := controlledBy(claim("data", "db", 4, labels), otherSTS())
	f.PVCs = append(f.PVCs, claim("data", "db", 3, labels), claim("wal", "db", 3, labels), claim("data", "db", 6, labels))
	e := newEnv(t, objects(f, lookalike)...)
	res, err := run(t, ctx, e, Config{Namespace: ns, Name: "db", Cleanup: true})
	require.NoError(t, err)
	assert.Equal(t, []string{"data-db-6", "data-db-3", "wal-db-3"}, res.Deleted)
	assert.ElementsMatch(t, []string{"data-db-0", "data-db-1", "data-db-2", "wal-db-0", "wal-db-1", "wal-db-2", "data-db-4"}, e.pvcNames(ctx))
	assert.Empty(t, e.engine.Calls())
	assert.Equal(t, int32(3), e.replicas(ctx))
	rec := record(t, e)
	assert.Equal(t, CleanupOperation, rec.Operation)
	assert.Equal(t, journal.Succeeded, rec.Phase)
	assert.Contains(t, e.events.Reasons(), "CleanupPVCsPVCDeleted")
}

func TestExecuteTimesOutNamingThePod(t *testing.T) {
	ctx, e := newRunEnv(t, fixture(4))
	// No controller: pod 3 never goes.
	c := cfg(3)
	c.Timeout = 200 * time.Millisecond
	_, err := run(t, ctx, e, c)
	var stopped *StoppedError
	require.ErrorAs(t, err, &stopped)
	assert.Contains(t, err.Error(), "pod db-3 to be gone")
	assert.Contains(t, err.Error(), "Running, Ready")
	assert.Equal(t, []string{"before:3"}, e.engine.Calls(), "no post-removal step while the pod exists")
}

func TestAbortDropsTheRecord(t *testing.T) {
	ctx := context.Background()
	f := fixture(5)
	e := newEnv(t, f.Objects()...)
	_, err := Abort(ctx, ns, "db", Operation, e.deps())
	requireInvalid(t, err, "nothing to abort")

	j := journal.New(e.client, ns, "db", "gone/1")
	rec, _, err := j.Begin(ctx, Operation, &State{UID: f.StatefulSet.UID, From: 5, To: 3})
	require.NoError(t, err)
	_, err = Abort(ctx, ns, "db", Operation, e.deps())
	require.Error(t, err, "a live holder is not overridden")
	require.NoError(t, j.Release(ctx, rec, "killed"))

	_, err = Abort(ctx, ns, "db", CleanupOperation, e.deps())
	requireInvalid(t, err, "is a scale-down, not a cleanup-pvcs")

	got, err := Abort(ctx, ns, "db", Operation, e.deps())
	require.NoError(t, err)
	assert.Equal(t, journal.Aborted, got.Phase)
	assert.Equal(t, journal.Aborted, record(t, e).Phase)
}

func TestDryRunAsksTheEngineAndChangesNothing(t *testing.T) {
	ctx := context.Background()
	f := fixture(5)
	e := newEnv(t, f.Objects()...)
	e.engine.members = primaryAt(0, 5)
	c := cfg(3)
	c.SlotNames = []string{"s_{ordinal}"}
	p, err := Prepare(ctx, c, e.deps())
	require.NoError(t, err)
	require.NoError(t, DryRun(ctx, p, e.deps()))
	assert.Equal(t, 4, e.engine.dryRuns)
	assert.Empty(t, e.engine.Calls())
	assert.Contains(t, e.rec.Kinds(), "dry-run-engine-changed")
	var msgs []string
	for _, ev := range e.rec.Events() {
		msgs = append(msgs, ev.Object+" "+ev.Message)
	}
	assert.Contains(t, msgs, "slot s_4 drop slot")
	assert.Equal(t, int32(5), e.replicas(ctx))
	assert.Len(t, e.pvcNames(ctx), 10)
	rec, err := journal.New(e.client, ns, "db", "x").Load(ctx)
	require.NoError(t, err)
	assert.Nil(t, rec, "a dry run writes no record")
}

// The scale patch applies but its answer is lost; the client's retry fails
// the patch's own test of the old replica count. The run recognises its
// own scale and goes on.
func TestScaleWhoseAnswerWasLostIsRecognised(t *testing.T) {
	ctx, e := newRunEnv(t, fixture(5))
	lost := 0
	e.client.PrependReactor("patch", "statefulsets", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if lost > 0 {
			return false, nil, nil
		}
		lost++
		gvr := appsv1.SchemeGroupVersion.WithResource("statefulsets")
		obj, err := e.client.Tracker().Get(gvr, a.GetNamespace(), "db")
		require.NoError(t, err)
		sts := obj.(*appsv1.StatefulSet).DeepCopy()
		sts.Spec.Replicas = ptr.To(*sts.Spec.Replicas - 1)
		require.NoError(t, e.client.Tracker().Update(gvr, sts, a.GetNamespace()))
		return true, nil, apierrors.NewInvalid(schema.GroupKind{Group: "apps", Kind: "StatefulSet"}, "db", nil)
	})
	e.startController(ctx, "db", 0)
	res, err := run(t, ctx, e, cfg(3))
	require.NoError(t, err)
	assert.Equal(t, 1, lost)
	assert.Equal(t, int32(3), e.replicas(ctx))
	assert.Equal(t, []string{"db-4", "db-3"}, res.Removed)
}
