package rollout

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
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/utils/ptr"

	"github.com/kubectl-sts/kubectl-sts/pkg/journal"
	"github.com/kubectl-sts/kubectl-sts/pkg/kube"
	"github.com/kubectl-sts/kubectl-sts/pkg/kube/kubefake"
	"github.com/kubectl-sts/kubectl-sts/pkg/progress"
	"github.com/kubectl-sts/kubectl-sts/pkg/wait"
	"github.com/kubectl-sts/kubectl-sts/plugins"
)

const testTimeout = 20 * time.Second

func setup(t *testing.T, replicas int32, mutate ...func(*appsv1.StatefulSet)) *fakeCluster {
	t.Helper()
	sts := newSTS("db", replicas, "app:v1")
	for _, m := range mutate {
		m(sts)
	}
	c := newFakeCluster(t, sts)
	c.start("db")
	c.waitSettled("db")
	return c
}

func (c *fakeCluster) runner(holder string, sink progress.Sink) *Runner {
	if sink == nil {
		sink = progress.Discard{}
	}
	return &Runner{
		Client: c.cs, Exec: &kubefake.Executor{}, Namespace: testNS, Name: "db",
		Journal: journal.New(c.cs, testNS, "db", holder),
		Events:  &c.events,
		Sink:    sink, Interval: 20 * time.Millisecond,
	}
}

// applyPending applies image with the partition holding every pod, the
// GitOps way, and returns the revision before.
func (c *fakeCluster) applyPending(image string, partition int32) string {
	c.t.Helper()
	before := c.sts("db").Status.CurrentRevision
	patch := fmt.Sprintf(`{"spec":{"template":{"spec":{"containers":[{"name":"db","image":%q}]}},"updateStrategy":{"rollingUpdate":{"partition":%d}}}}`, image, partition)
	_, err := c.cs.AppsV1().StatefulSets(testNS).Patch(context.Background(), "db", types.StrategicMergePatchType, []byte(patch), metav1.PatchOptions{})
	require.NoError(c.t, err)
	return before
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

func record(t *testing.T, c *fakeCluster) (*journal.Record, State) {
	t.Helper()
	rec, err := journal.New(c.cs, testNS, "db", "reader").Load(context.Background())
	require.NoError(t, err)
	require.NotNil(t, rec)
	var st State
	require.NoError(t, rec.DecodeState(&st))
	return rec, st
}

func podRevisions(c *fakeCluster) map[string]string {
	out := map[string]string{}
	for n, p := range c.pods("db") {
		out[n] = p.Labels[appsv1.StatefulSetRevisionLabel]
	}
	return out
}

func eventReasons(t *testing.T, c *fakeCluster) []string {
	t.Helper()
	return c.events.list()
}

func TestPendingRevisionRollsOutInStepsHighestOrdinalFirst(t *testing.T) {
	c := setup(t, 5)
	from := c.applyPending("app:v2", 5)
	created := len(c.podChanges())
	rec := &progress.Recorder{}
	r := c.runner("me", rec)

	steps, err := ParseSteps([]string{"1,50%,100%"})
	require.NoError(t, err)
	pv, err := r.Prepare(ctxT(t), Request{Steps: steps})
	require.NoError(t, err)
	assert.Equal(t, ModePending, pv.Mode)
	assert.Equal(t, from, pv.From)
	assert.NotEqual(t, from, pv.To)
	assert.Equal(t, []int32{4, 2, 0}, partitions(pv.Plan))

	require.NoError(t, r.Run(ctxT(t), pv))

	to := pv.To
	moved := c.podChanges()[created:]
	assert.Equal(t, []string{"db-4:" + to, "db-3:" + to, "db-2:" + to, "db-1:" + to, "db-0:" + to}, moved)
	sts := c.sts("db")
	assert.Equal(t, int32(0), Partition(sts))
	assert.Equal(t, to, sts.Status.CurrentRevision)
	for n, rev := range podRevisions(c) {
		assert.Equal(t, to, rev, n)
	}
	jr, st := record(t, c)
	assert.Equal(t, journal.Succeeded, jr.Phase)
	assert.Empty(t, jr.Holder)
	assert.Equal(t, 3, st.Current)
	kinds := rec.Kinds()
	assert.Equal(t, 3, count(kinds, "step-started"))
	assert.Equal(t, 3, count(kinds, "step-passed"))
	assert.Equal(t, "done", kinds[len(kinds)-1])
	reasons := eventReasons(t, c)
	assert.Contains(t, reasons, ReasonStarted)
	assert.Equal(t, 3, count(reasons, ReasonStepPassed))
	assert.Contains(t, reasons, ReasonSucceeded)
}

func count(list []string, v string) int {
	n := 0
	for _, x := range list {
		if x == v {
			n++
		}
	}
	return n
}

func TestChangeModeAppliesTemplateWithPartitionHeldThenRollsOut(t *testing.T) {
	c := setup(t, 3)
	r := c.runner("me", nil)
	pv, err := r.Prepare(ctxT(t), Request{Change: &Change{Images: map[string]string{"db": "app:v2"}}, FinalPartition: 3})
	require.NoError(t, err)
	assert.Equal(t, ModeChange, pv.Mode)
	assert.Empty(t, pv.To)
	assert.Equal(t, "apply", string(pv.State().Stage))
	assert.Equal(t, "app:v1", c.sts("db").Spec.Template.Spec.Containers[0].Image, "Prepare changes nothing")

	require.NoError(t, r.Run(ctxT(t), pv))
	sts := c.sts("db")
	assert.Equal(t, "app:v2", sts.Spec.Template.Spec.Containers[0].Image)
	assert.Equal(t, int32(3), Partition(sts), "--final-partition")
	for n, p := range c.pods("db") {
		assert.Equal(t, "app:v2", p.Spec.Containers[0].Image, n)
	}
	// The template and the holding partition went in one update: no pod
	// was created from the new template before the first step.
	_, st := record(t, c)
	assert.Nil(t, st.Change, "the change is dropped from the record once applied")
	assert.NotEmpty(t, st.To)
}

func TestBrokenImageRollsBackAndReplacesStuckPod(t *testing.T) {
	c := setup(t, 4)
	oldTemplate := c.sts("db").Spec.Template
	from := c.sts("db").Status.CurrentRevision
	rec := &progress.Recorder{}
	r := c.runner("me", rec)
	pv, err := r.Prepare(ctxT(t), Request{
		Change: &Change{Images: map[string]string{"db": "app:broken"}},
		Gates:  Gates{StepTimeout: 300 * time.Millisecond, RollbackTimeout: 10 * time.Second},
	})
	require.NoError(t, err)

	err = r.Run(ctxT(t), pv)
	var rb *RolledBackError
	require.ErrorAs(t, err, &rb, "got %v", err)
	assert.Equal(t, 1, rb.Step)
	assert.Equal(t, from, rb.Revision)
	assert.Contains(t, rb.Reason, "db-3")

	sts := c.sts("db")
	assert.Equal(t, oldTemplate.Spec.Containers[0].Image, sts.Spec.Template.Spec.Containers[0].Image)
	assert.Equal(t, int32(0), Partition(sts))
	for n, p := range c.pods("db") {
		assert.Equal(t, from, p.Labels[appsv1.StatefulSetRevisionLabel], n)
		assert.True(t, wait.IsPodReady(p), n)
	}
	jr, st := record(t, c)
	assert.Equal(t, journal.RolledBack, jr.Phase)
	require.NotNil(t, st.Rollback)
	assert.Equal(t, []string{"db-3"}, st.Rollback.Deleted)
	kinds := rec.Kinds()
	assert.Contains(t, kinds, "gate-failed")
	assert.Contains(t, kinds, "pod-deleted")
	assert.Equal(t, "rolled-back", kinds[len(kinds)-1])
	reasons := eventReasons(t, c)
	for _, want := range []string{ReasonGateFailed, ReasonRollback, ReasonPodDeleted, ReasonRolledBack} {
		assert.Contains(t, reasons, want)
	}
}

func TestNoRollbackLeavesPodsAndNeedsAttention(t *testing.T) {
	c := setup(t, 3)
	r := c.runner("me", nil)
	pv, err := r.Prepare(ctxT(t), Request{Change: &Change{Images: map[string]string{"db": "app:broken"}},
		Gates: Gates{StepTimeout: 200 * time.Millisecond}, NoRollback: true})
	require.NoError(t, err)
	err = r.Run(ctxT(t), pv)
	var na *NeedsAttentionError
	require.ErrorAs(t, err, &na)
	assert.Contains(t, err.Error(), "--no-rollback")
	assert.Equal(t, "app:broken", c.sts("db").Spec.Template.Spec.Containers[0].Image)
	assert.Equal(t, int32(2), Partition(c.sts("db")))
	jr, _ := record(t, c)
	assert.Equal(t, journal.Failed, jr.Phase)
}

// cancelAfter returns a sink that cancels when the n-th event of kind is
// emitted.
func cancelAfter(kind string, n int, cancel func()) (progress.Sink, *progress.Recorder) {
	rec := &progress.Recorder{}
	seen := 0
	var mu sync.Mutex
	return progress.SinkFunc(func(e progress.Event) {
		rec.Emit(e)
		mu.Lock()
		defer mu.Unlock()
		if e.Kind == kind {
			seen++
			if seen == n {
				cancel()
			}
		}
	}), rec
}

func TestResumeFromEveryStep(t *testing.T) {
	for stop := 1; stop <= 3; stop++ {
		t.Run(fmt.Sprintf("interrupted after step %d", stop), func(t *testing.T) {
			c := setup(t, 4)
			c.applyPending("app:v2", 4)
			steps, _ := ParseSteps([]string{"1,2,3,4"})

			ctx, cancel := context.WithCancel(ctxT(t))
			sink, _ := cancelAfter("step-passed", stop, cancel)
			r := c.runner("first", sink)
			pv, err := r.Prepare(ctx, Request{Steps: steps})
			require.NoError(t, err)
			err = r.Run(ctx, pv)
			require.ErrorIs(t, err, context.Canceled)
			assert.Contains(t, err.Error(), "kubectl sts rollout resume db")

			jr, st := record(t, c)
			assert.Equal(t, journal.Running, jr.Phase)
			assert.Empty(t, jr.Holder, "the lease is released on interruption")
			assert.Equal(t, stop, st.Current)
			uids := map[string]types.UID{}
			for i := 0; i < stop; i++ {
				for p, uid := range st.Steps[i].UIDs {
					uids[p] = uid
				}
			}
			require.Len(t, uids, stop)

			// The same command again resumes instead of starting over.
			rec := &progress.Recorder{}
			r2 := c.runner("second", rec)
			pv2, err := r2.Prepare(ctxT(t), Request{Steps: steps})
			require.NoError(t, err)
			assert.Equal(t, ModeResume, pv2.Mode)
			assert.Equal(t, stop, pv2.Done)
			require.NoError(t, r2.Run(ctxT(t), pv2))
			assert.Equal(t, 4-stop, count(rec.Kinds(), "step-started"), "finished steps are not redone")
			assert.Equal(t, "resumed", rec.Kinds()[0])

			pods := c.pods("db")
			for p, uid := range uids {
				assert.Equal(t, uid, pods[p].UID, "pod %s of a finished step was not recreated", p)
			}
			jr, _ = record(t, c)
			assert.Equal(t, journal.Succeeded, jr.Phase)
			for n, rev := range podRevisions(c) {
				assert.Equal(t, pv.To, rev, n)
			}
		})
	}
}

func TestResumeInterruptedRollback(t *testing.T) {
	c := setup(t, 3)
	ctx, cancel := context.WithCancel(ctxT(t))
	sink, _ := cancelAfter("rollback-started", 1, cancel)
	r := c.runner("first", sink)
	pv, err := r.Prepare(ctx, Request{Change: &Change{Images: map[string]string{"db": "app:broken"}}, Gates: Gates{StepTimeout: 200 * time.Millisecond}})
	require.NoError(t, err)
	from := pv.From
	require.ErrorIs(t, r.Run(ctx, pv), context.Canceled)
	_, st := record(t, c)
	require.Equal(t, StageRollback, st.Stage)

	r2 := c.runner("second", nil)
	pv2, err := r2.Prepare(ctxT(t), Request{Resume: true})
	require.NoError(t, err)
	err = r2.Run(ctxT(t), pv2)
	var rb *RolledBackError
	require.ErrorAs(t, err, &rb)
	for n, rev := range podRevisions(c) {
		assert.Equal(t, from, rev, n)
	}
}

func TestLease(t *testing.T) {
	c := setup(t, 2)
	c.applyPending("app:v2", 2)
	r := c.runner("first", nil)
	pv, err := r.Prepare(ctxT(t), Request{PauseAfter: []int{1}})
	require.NoError(t, err)
	var paused *PausedError
	require.ErrorAs(t, r.Run(ctxT(t), pv), &paused)

	// Simulate a process that holds the record: live, then dead.
	setHolder := func(holder string, heartbeat time.Time) {
		cm, err := c.cs.CoreV1().ConfigMaps(testNS).Get(context.Background(), journal.ConfigMapName("db"), metav1.GetOptions{})
		require.NoError(t, err)
		var rec map[string]any
		require.NoError(t, json.Unmarshal([]byte(cm.Data["record.json"]), &rec))
		rec["phase"], rec["holder"], rec["heartbeat"] = "Running", holder, heartbeat.UTC().Format(time.RFC3339Nano)
		raw, err := json.Marshal(rec)
		require.NoError(t, err)
		cm.Data["record.json"] = string(raw)
		_, err = c.cs.CoreV1().ConfigMaps(testNS).Update(context.Background(), cm, metav1.UpdateOptions{})
		require.NoError(t, err)
	}
	setHolder("other-host/42", time.Now())
	_, err = c.runner("second", nil).Prepare(ctxT(t), Request{Resume: true})
	var held *journal.HeldError
	require.ErrorAs(t, err, &held)
	assert.Equal(t, "other-host/42", held.Holder)

	setHolder("other-host/42", time.Now().Add(-time.Hour))
	r2 := c.runner("second", nil)
	pv2, err := r2.Prepare(ctxT(t), Request{})
	require.NoError(t, err, "a stale lease is taken over")
	require.NoError(t, r2.Run(ctxT(t), pv2))
	jr, _ := record(t, c)
	assert.Equal(t, journal.Succeeded, jr.Phase)
	found := false
	for _, h := range jr.History {
		found = found || strings.Contains(h.Message, "resumed by second")
	}
	assert.True(t, found, "history records the take-over: %+v", jr.History)
}

func TestPauseThenResumeAndAbort(t *testing.T) {
	c := setup(t, 3)
	c.applyPending("app:v2", 3)
	r := c.runner("first", nil)
	pv, err := r.Prepare(ctxT(t), Request{PauseAfter: []int{1, 2}})
	require.NoError(t, err)
	var paused *PausedError
	require.ErrorAs(t, r.Run(ctxT(t), pv), &paused)
	assert.Equal(t, 1, paused.Step)
	jr, st := record(t, c)
	assert.Equal(t, journal.Paused, jr.Phase)
	assert.Equal(t, 1, st.PausedAfter)

	// A plain run does not walk past an approval point.
	_, err = c.runner("first", nil).Prepare(ctxT(t), Request{})
	var refused *RefusedError
	require.ErrorAs(t, err, &refused)
	assert.Contains(t, err.Error(), "rollout resume db")

	// Resume runs step 2 and pauses again.
	pv, err = c.runner("first", nil).Prepare(ctxT(t), Request{Resume: true})
	require.NoError(t, err)
	require.ErrorAs(t, c.runner("first", nil).Run(ctxT(t), pv), &paused)
	assert.Equal(t, 2, paused.Step)
	assert.Equal(t, int32(1), Partition(c.sts("db")))

	// Abort: the partition holds the pods on the new revision (db-2, db-1).
	out, err := c.runner("other", nil).Abort(ctxT(t))
	require.NoError(t, err)
	assert.False(t, out.Requested)
	assert.Equal(t, int32(1), out.Partition)
	jr, _ = record(t, c)
	assert.Equal(t, journal.Aborted, jr.Phase)
	revs := podRevisions(c)
	assert.Equal(t, pv.From, revs["db-0"])
	assert.Equal(t, pv.To, revs["db-1"])
	assert.Contains(t, eventReasons(t, c), ReasonAborted)

	_, err = c.runner("other", nil).Abort(ctxT(t))
	assert.ErrorContains(t, err, "nothing to abort")
}

func TestAbortAfterInterruptionHoldsPodsAsTheyAre(t *testing.T) {
	c := setup(t, 4)
	c.applyPending("app:v2", 4)
	steps, _ := ParseSteps([]string{"1,100%"})
	ctx, cancel := context.WithCancel(ctxT(t))
	// Stop the controller's work during step 2 so that it is cut short:
	// the run lowers the partition for step 2 before it reports step 1
	// passed, so the controller is stopped as that patch lands, before any
	// sync can see it.
	c.ctrl.React("patch", "statefulsets", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if p, ok := a.(k8stesting.PatchAction); ok && strings.Contains(string(p.GetPatch()), `/rollingUpdate/partition","value":0}`) {
			c.setPaused(true)
		}
		return false, nil, nil
	})
	sink, _ := cancelAfter("step-passed", 1, cancel)
	r := c.runner("first", sink)
	pv, err := r.Prepare(ctx, Request{Steps: steps})
	require.NoError(t, err)
	require.ErrorIs(t, r.Run(ctx, pv), context.Canceled)
	// Lower the partition as the second step would, with the controller
	// stopped: nothing has moved yet.
	_, err = c.cs.AppsV1().StatefulSets(testNS).Patch(context.Background(), "db", types.StrategicMergePatchType, partitionPatch(0), metav1.PatchOptions{})
	require.NoError(t, err)
	out, err := c.runner("other", nil).Abort(ctxT(t))
	require.NoError(t, err)
	assert.Equal(t, int32(3), out.Partition, "raised to hold the three pods not on the new revision")
	c.setPaused(false)
	time.Sleep(50 * time.Millisecond)
	revs := podRevisions(c)
	assert.Equal(t, pv.To, revs["db-3"])
	for _, p := range []string{"db-0", "db-1", "db-2"} {
		assert.Equal(t, pv.From, revs[p], p)
	}
}

func TestAbortOfALiveRunAndApprovalFromElsewhere(t *testing.T) {
	c := setup(t, 3)
	c.applyPending("app:v2", 3)

	// The first run waits at its pause, as on a terminal.
	rec := &progress.Recorder{}
	r := c.runner("first", rec)
	r.Prompt = func(ctx context.Context, step, steps int) <-chan struct{} { return make(chan struct{}) }
	pv, err := r.Prepare(ctxT(t), Request{PauseAfter: []int{1, 2}})
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() { done <- r.Run(ctxT(t), pv) }()

	waitFor(t, func() bool { return pausedAfter(c) == 1 })
	// Approve from "another terminal": the waiting run continues.
	a, err := c.runner("second", nil).Approve(ctxT(t))
	require.NoError(t, err)
	require.NotNil(t, a)
	assert.Equal(t, "first", a.Holder)
	waitFor(t, func() bool { return pausedAfter(c) == 2 })

	// Abort from elsewhere: the run stops itself.
	out, err := c.runner("second", nil).Abort(ctxT(t))
	require.NoError(t, err)
	assert.True(t, out.Requested)
	select {
	case err := <-done:
		var ab *AbortedError
		require.ErrorAs(t, err, &ab)
	case <-time.After(testTimeout):
		t.Fatal("the run did not stop")
	}
	jr, _ := record(t, c)
	assert.Equal(t, journal.Aborted, jr.Phase)
	assert.Equal(t, int32(1), Partition(c.sts("db")))
	assert.Empty(t, c.sts("db").Annotations[AnnotationAbort], "the abort request is cleared")
}

func pausedAfter(c *fakeCluster) int {
	rec, err := journal.New(c.cs, testNS, "db", "reader").Load(context.Background())
	if err != nil || rec == nil {
		return 0
	}
	var st State
	_ = rec.DecodeState(&st)
	return st.PausedAfter
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(testTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestTakeOverRaisesPartitionThenContinues(t *testing.T) {
	c := setup(t, 4)
	c.setPaused(true)
	c.applyPending("app:v2", 0)
	// The controller sees the new template and starts updating from the
	// top (one pod), as it would with partition 0.
	c.setPaused(false)
	waitFor(t, func() bool {
		s := c.sts("db")
		return s.Status.UpdatedReplicas >= 1 && s.Status.UpdatedReplicas < 4
	})
	c.setPaused(true)
	r := c.runner("me", nil)
	pv, err := r.Prepare(ctxT(t), Request{})
	require.NoError(t, err)
	assert.Equal(t, ModeTakeOver, pv.Mode)
	updated := c.sts("db").Status.UpdatedReplicas
	assert.Equal(t, 4-updated, pv.Hold)
	assert.Equal(t, int(updated), pv.Done)
	c.setPaused(false)
	require.NoError(t, r.Run(ctxT(t), pv))
	for n, rev := range podRevisions(c) {
		assert.Equal(t, pv.To, rev, n)
	}
}

func TestUndoAfterSuccessfulRollout(t *testing.T) {
	c := setup(t, 3)
	v1 := c.sts("db").Status.CurrentRevision
	r := c.runner("me", nil)
	pv, err := r.Prepare(ctxT(t), Request{Change: &Change{Images: map[string]string{"db": "app:v2"}}})
	require.NoError(t, err)
	require.NoError(t, r.Run(ctxT(t), pv))

	undo, err := c.runner("me", nil).PrepareUndo(ctxT(t), 0)
	require.NoError(t, err)
	assert.Equal(t, v1, undo.From)
	err = c.runner("me", nil).Run(ctxT(t), undo)
	var rb *RolledBackError
	require.ErrorAs(t, err, &rb)
	assert.Equal(t, 0, rb.Step)
	assert.Equal(t, "app:v1", c.sts("db").Spec.Template.Spec.Containers[0].Image)
	for n, rev := range podRevisions(c) {
		assert.Equal(t, v1, rev, n)
	}
}

func TestUndoOfPausedRolloutUsesRecordedRevision(t *testing.T) {
	c := setup(t, 3)
	v1 := c.sts("db").Status.CurrentRevision
	c.applyPending("app:v2", 3)
	r := c.runner("me", nil)
	pv, err := r.Prepare(ctxT(t), Request{PauseAfter: []int{1}})
	require.NoError(t, err)
	var paused *PausedError
	require.ErrorAs(t, r.Run(ctxT(t), pv), &paused)

	undo, err := c.runner("me", nil).PrepareUndo(ctxT(t), 0)
	require.NoError(t, err)
	assert.Equal(t, v1, undo.From)
	assert.Equal(t, int32(3), undo.FinalPartition)
	var rb *RolledBackError
	require.ErrorAs(t, c.runner("me", nil).Run(ctxT(t), undo), &rb)
	assert.Equal(t, int32(3), Partition(c.sts("db")), "the partition is back where it was")
	for n, rev := range podRevisions(c) {
		assert.Equal(t, v1, rev, n)
	}
	jr, _ := record(t, c)
	assert.Equal(t, journal.RolledBack, jr.Phase)
}

func TestRefusals(t *testing.T) {
	cases := []struct {
		name    string
		mutate  func(*appsv1.StatefulSet)
		pending bool
		req     Request
		want    string
		input   bool
	}{
		{name: "OnDelete", mutate: func(s *appsv1.StatefulSet) {
			s.Spec.UpdateStrategy = appsv1.StatefulSetUpdateStrategy{Type: appsv1.OnDeleteStatefulSetStrategyType}
		}, pending: true, want: "updateStrategy OnDelete"},
		{name: "nothing to roll out", want: "nothing to roll out", input: true},
		{name: "change with pending revision", pending: true, req: Request{Change: &Change{Images: map[string]string{"db": "app:v3"}}},
			want: "already has a pending revision", input: true},
		{name: "change that changes nothing", req: Request{Change: &Change{Images: map[string]string{"db": "app:v1"}}},
			want: "leaves the pod template", input: true},
		{name: "unknown container", req: Request{Change: &Change{Images: map[string]string{"web": "app:v3"}}},
			want: `no container "web"`, input: true},
		{name: "steps not ending at 100%", pending: true, req: Request{Steps: []StepSpec{{Value: 1}}}, want: "does not end at 100%", input: true},
		{name: "pause after last step", pending: true, req: Request{PauseAfter: []int{3}}, want: "--pause-after 3", input: true},
		{name: "max-lag without engine", pending: true, req: Request{Gates: Gates{MaxLagSeconds: 5}}, want: "--max-lag needs a database engine", input: true},
		{name: "unknown engine", pending: true, req: Request{Gates: Gates{Engine: "oracle"}}, want: "unknown engine", input: true},
		{name: "resume without record", pending: true, req: Request{Resume: true}, want: "no unfinished rollout"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var mutate []func(*appsv1.StatefulSet)
			if tc.mutate != nil {
				mutate = append(mutate, tc.mutate)
			}
			c := setup(t, 3, mutate...)
			if tc.pending {
				c.applyPending("app:v2", 3)
			}
			rv := c.sts("db").ResourceVersion
			_, err := c.runner("me", nil).Prepare(ctxT(t), tc.req)
			var refused *RefusedError
			require.ErrorAs(t, err, &refused)
			assert.Contains(t, err.Error(), tc.want)
			assert.Equal(t, tc.input, refused.Input)
			assert.Equal(t, rv, c.sts("db").ResourceVersion, "nothing changed")
		})
	}
}

func TestRefuseZeroReplicasAndWarnParallel(t *testing.T) {
	c := newFakeCluster(t, newSTS("db", 0, "app:v1"))
	_, err := c.runner("me", nil).Prepare(ctxT(t), Request{Change: &Change{Images: map[string]string{"db": "app:v2"}}})
	assert.ErrorContains(t, err, "0 replicas")

	p := setup(t, 2, func(s *appsv1.StatefulSet) { s.Spec.PodManagementPolicy = appsv1.ParallelPodManagement })
	p.applyPending("app:v2", 2)
	pv, err := p.runner("me", nil).Prepare(ctxT(t), Request{})
	require.NoError(t, err)
	require.Len(t, pv.Warnings, 1)
	assert.Contains(t, pv.Warnings[0], "Parallel")
}

func TestOrdinalsStartPlan(t *testing.T) {
	c := setup(t, 3, func(s *appsv1.StatefulSet) { s.Spec.Ordinals = &appsv1.StatefulSetOrdinals{Start: 5} })
	c.applyPending("app:v2", 3)
	created := len(c.podChanges())
	r := c.runner("me", nil)
	pv, err := r.Prepare(ctxT(t), Request{})
	require.NoError(t, err)
	assert.Equal(t, []string{"db-7"}, pv.Plan.Steps[0].Pods)
	require.NoError(t, r.Run(ctxT(t), pv))
	to := pv.To
	assert.Equal(t, []string{"db-7:" + to, "db-6:" + to, "db-5:" + to}, c.podChanges()[created:])
}

func TestExecAndCommandGates(t *testing.T) {
	c := setup(t, 2)
	c.applyPending("app:v2", 2)
	r := c.runner("me", nil)
	ex := &kubefake.Executor{}
	var mu sync.Mutex
	calls := map[string]int{}
	ex.HandleAll(func(req kube.ExecRequest) (kube.ExecResult, error) {
		mu.Lock()
		defer mu.Unlock()
		calls[req.Pod]++
		if req.Pod == "db-1" && calls[req.Pod] < 3 {
			return kube.ExecResult{ExitCode: 1, Stderr: []byte("replica not caught up")}, nil
		}
		return kube.ExecResult{}, nil
	})
	r.Exec = ex
	local := &fakeRunner{}
	r.Local = local
	pv, err := r.Prepare(ctxT(t), Request{Gates: Gates{Exec: "check", ExecContainer: "db", Command: "./gate.sh", Soak: 50 * time.Millisecond}})
	require.NoError(t, err)
	require.NoError(t, r.Run(ctxT(t), pv))

	mu.Lock()
	assert.Equal(t, 3, calls["db-1"], "retried until it passed, then not again")
	assert.Equal(t, 1, calls["db-0"])
	mu.Unlock()
	for _, call := range ex.Calls() {
		assert.Equal(t, []string{"sh", "-c", "check"}, call.Command)
		assert.Equal(t, "db", call.Container)
	}
	envs := local.envs()
	require.Len(t, envs, 2)
	assert.Contains(t, envs[0], "KUBECTL_STS_STEP=1")
	assert.Contains(t, envs[0], "KUBECTL_STS_PODS=db-1")
	assert.Contains(t, envs[1], "KUBECTL_STS_STEP=2")
	assert.Contains(t, envs[1], "KUBECTL_STS_UPDATED_PODS=db-1 db-0")
	assert.Contains(t, envs[1], "KUBECTL_STS_REVISION="+pv.To)
}

func TestCommandGateFailureRollsBack(t *testing.T) {
	c := setup(t, 2)
	c.applyPending("app:v2", 2)
	r := c.runner("me", nil)
	r.Local = &fakeRunner{code: 3, out: "error rate 5%"}
	pv, err := r.Prepare(ctxT(t), Request{Gates: Gates{Command: "./gate.sh", StepTimeout: 300 * time.Millisecond}})
	require.NoError(t, err)
	err = r.Run(ctxT(t), pv)
	var rb *RolledBackError
	require.ErrorAs(t, err, &rb)
	assert.Contains(t, rb.Reason, "exit code 3: error rate 5%")
	for n, rev := range podRevisions(c) {
		assert.Equal(t, pv.From, rev, n)
	}
}

type fakeRunner struct {
	mu   sync.Mutex
	code int
	out  string
	got  [][]string
}

func (f *fakeRunner) Run(_ context.Context, command string, env []string) (CommandResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.got = append(f.got, env)
	return CommandResult{ExitCode: f.code, Output: []byte(f.out)}, nil
}

func (f *fakeRunner) envs() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, e := range f.got {
		out = append(out, strings.Join(e, "\n"))
	}
	return out
}

// fakeEngine is healthy when healthy() says so.
type fakeEngine struct {
	healthy func() bool
	mu      sync.Mutex
	asked   int
}

func (e *fakeEngine) Name() string              { return "fakedb" }
func (e *fakeEngine) Matches(image string) bool { return strings.HasPrefix(image, "app:") }
func (e *fakeEngine) Members(_ context.Context, t plugins.Target) ([]plugins.Member, error) {
	e.mu.Lock()
	e.asked++
	e.mu.Unlock()
	var out []plugins.Member
	for _, p := range t.Pods {
		out = append(out, plugins.Member{Pod: p.Name, Role: plugins.RoleReplica, LagSeconds: plugins.Float64(1)})
	}
	return out, nil
}
func (e *fakeEngine) Healthy(m []plugins.Member, opts plugins.HealthOptions) (bool, string) {
	if e.healthy() {
		return true, ""
	}
	return false, fmt.Sprintf("lag above %gs", opts.MaxLagSeconds)
}
func (e *fakeEngine) BeforeRemove(context.Context, plugins.Target, int, plugins.RemoveOptions) error {
	return nil
}
func (e *fakeEngine) AfterRemove(context.Context, plugins.Target, int, plugins.RemoveOptions) error {
	return nil
}

func TestEngineGateHook(t *testing.T) {
	for _, healthy := range []bool{true, false} {
		t.Run(fmt.Sprintf("healthy=%v", healthy), func(t *testing.T) {
			c := setup(t, 2)
			c.applyPending("app:v2", 2)
			// Healthy when the rollout starts; with healthy=false it
			// turns unhealthy once a pod is updated.
			e := &fakeEngine{}
			e.healthy = func() bool {
				e.mu.Lock()
				defer e.mu.Unlock()
				return healthy || e.asked <= 1
			}
			r := c.runner("me", nil)
			r.Engines = plugins.NewRegistry(e)
			pv, err := r.Prepare(ctxT(t), Request{Gates: Gates{Engine: "auto", MaxLagSeconds: 5, StepTimeout: 500 * time.Millisecond}})
			require.NoError(t, err)
			assert.Contains(t, strings.Join(pv.Gates, "\n"), "fakedb reports the replica set healthy with replication lag under 5s")
			err = r.Run(ctxT(t), pv)
			e.mu.Lock()
			assert.Positive(t, e.asked)
			e.mu.Unlock()
			if healthy {
				require.NoError(t, err)
				return
			}
			var rb *RolledBackError
			require.ErrorAs(t, err, &rb)
			assert.Contains(t, rb.Reason, "lag above 5s")
		})
	}
}

// A replica set the engine reports unhealthy before any change is
// refused (nothing changes, not an input error) unless forced; forced, it
// starts with the reason as a warning.
func TestEngineUnhealthyBeforeTheFirstChangeIsRefusedUnlessForced(t *testing.T) {
	c := setup(t, 2)
	c.applyPending("app:v2", 2)
	e := &fakeEngine{healthy: func() bool { return false }}
	r := c.runner("me", nil)
	r.Engines = plugins.NewRegistry(e)
	rv := c.sts("db").ResourceVersion
	_, err := r.Prepare(ctxT(t), Request{Gates: Gates{Engine: "auto"}})
	var refused *RefusedError
	require.ErrorAs(t, err, &refused)
	assert.False(t, refused.Input)
	assert.Contains(t, err.Error(), "fakedb reports the replica set of statefulset db unhealthy before any change: lag above 0s")
	assert.Contains(t, err.Error(), "--force")
	assert.Equal(t, rv, c.sts("db").ResourceVersion, "nothing changed")

	pv, err := r.Prepare(ctxT(t), Request{Gates: Gates{Engine: "auto"}, Force: true})
	require.NoError(t, err)
	assert.Contains(t, strings.Join(pv.Warnings, "\n"), "--force: starting although fakedb reports the replica set unhealthy: lag above 0s")
}

func TestGateHelpersUseSnapshotOnly(t *testing.T) {
	// completeGate waits for the controller's own record of completion.
	sts := newSTS("db", 1, "app:v1")
	sts.Status = appsv1.StatefulSetStatus{ObservedGeneration: 1, UpdateRevision: "r2", CurrentRevision: "r1", UpdatedReplicas: 1, ReadyReplicas: 1}
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "db-0", Labels: map[string]string{appsv1.StatefulSetRevisionLabel: "r2"}},
		Status: corev1.PodStatus{Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}}}
	s := wait.Snapshot{StatefulSet: sts, Pods: map[string]*corev1.Pod{"db-0": pod}}
	v, reason, err := completeGate("db", "r2").Check(context.Background(), s)
	require.NoError(t, err)
	assert.Equal(t, wait.NotYet, v)
	assert.Contains(t, reason, "current revision r1")
	sts.Status.CurrentRevision = "r2"
	v, _, _ = completeGate("db", "r2").Check(context.Background(), s)
	assert.Equal(t, wait.Pass, v)

	assert.Empty(t, stuckPods(s, "r2"))
	pod.Status.Conditions[0].Status = corev1.ConditionFalse
	assert.Len(t, stuckPods(s, "r1"), 1)
	v, _, _ = stuckGate("db", "r1", map[types.UID]bool{pod.UID: true}).Check(context.Background(), s)
	assert.Equal(t, wait.NotYet, v, "a pod already deleted is not stuck again")
}

func TestPauseApprovedAtTheTerminal(t *testing.T) {
	c := setup(t, 2)
	c.applyPending("app:v2", 2)
	rec := &progress.Recorder{}
	r := c.runner("me", rec)
	prompted := 0
	r.Prompt = func(_ context.Context, step, steps int) <-chan struct{} {
		prompted++
		assert.Equal(t, 1, step)
		assert.Equal(t, 2, steps)
		ch := make(chan struct{})
		close(ch) // Enter pressed
		return ch
	}
	pv, err := r.Prepare(ctxT(t), Request{Interactive: true})
	require.NoError(t, err)
	assert.Equal(t, []int{1}, pv.PauseAfter)
	require.NoError(t, r.Run(ctxT(t), pv))
	assert.Equal(t, 1, prompted)
	kinds := rec.Kinds()
	assert.Contains(t, kinds, "paused")
	assert.Contains(t, kinds, "resumed")
	jr, _ := record(t, c)
	assert.Equal(t, journal.Succeeded, jr.Phase)
}

// Running the identical --image command again continues the recorded
// rollout; a different change is still refused.
func TestSameChangeAgainResumes(t *testing.T) {
	for _, stop := range []string{"template-applied", "step-passed"} {
		t.Run("interrupted after "+stop, func(t *testing.T) {
			c := setup(t, 3)
			change := func() *Change { return &Change{Images: map[string]string{"db": "app:v2"}} }
			ctx, cancel := context.WithCancel(ctxT(t))
			sink, _ := cancelAfter(stop, 1, cancel)
			r := c.runner("first", sink)
			pv, err := r.Prepare(ctx, Request{Change: change()})
			require.NoError(t, err)
			require.ErrorIs(t, r.Run(ctx, pv), context.Canceled)

			_, err = c.runner("other", nil).Prepare(ctxT(t), Request{Change: &Change{Images: map[string]string{"db": "app:v3"}}})
			var refused *RefusedError
			require.ErrorAs(t, err, &refused, "another change is refused")
			assert.Contains(t, err.Error(), "kubectl sts rollout resume db")

			r2 := c.runner("second", nil)
			pv2, err := r2.Prepare(ctxT(t), Request{Change: change()})
			require.NoError(t, err, "the same change again continues the recorded rollout")
			assert.Equal(t, ModeResume, pv2.Mode)
			require.NoError(t, r2.Run(ctxT(t), pv2))
			jr, _ := record(t, c)
			assert.Equal(t, journal.Succeeded, jr.Phase)
			for n, p := range c.pods("db") {
				assert.Equal(t, "app:v2", p.Spec.Containers[0].Image, n)
			}
		})
	}
}

// A person's change to the StatefulSet while a step waits stops the run at
// once; it changes nothing more and never rolls the person's change back.
func TestChangeBySomeoneElseStopsTheRunWithoutRollback(t *testing.T) {
	edits := map[string]func(*appsv1.StatefulSet){
		"template": func(s *appsv1.StatefulSet) { s.Spec.Template.Spec.Containers[0].Image = "app:hotfix" },
		"replicas": func(s *appsv1.StatefulSet) { s.Spec.Replicas = ptr.To(int32(5)) },
		"partition": func(s *appsv1.StatefulSet) {
			s.Spec.UpdateStrategy.RollingUpdate.Partition = ptr.To(int32(0))
		},
	}
	for what, edit := range edits {
		t.Run(what, func(t *testing.T) {
			c := setup(t, 4)
			var once sync.Once
			edited := make(chan *appsv1.StatefulSet, 1)
			sink := progress.SinkFunc(func(e progress.Event) {
				if e.Kind != "gate" || e.Step != 2 {
					return
				}
				once.Do(func() {
					// The step's pods can never become Ready: only the
					// change stops the wait before its timeout.
					c.setPaused(true)
					s := c.sts("db")
					edit(s)
					out, err := c.cs.AppsV1().StatefulSets(testNS).Update(context.Background(), s, metav1.UpdateOptions{})
					require.NoError(t, err)
					edited <- out
				})
			})
			r := c.runner("me", sink)
			pv, err := r.Prepare(ctxT(t), Request{
				Change: &Change{Images: map[string]string{"db": "app:v2"}},
				Gates:  Gates{StepTimeout: time.Minute, RollbackTimeout: 10 * time.Second},
			})
			require.NoError(t, err)
			start := time.Now()
			err = r.Run(ctxT(t), pv)
			require.Error(t, err)
			assert.Less(t, time.Since(start), 20*time.Second, "stopped at the change, not at the step timeout")
			var na *NeedsAttentionError
			require.ErrorAs(t, err, &na, "got %v", err)
			assert.Contains(t, err.Error(), "changed by someone else")
			assert.Contains(t, err.Error(), "kubectl sts rollout undo db")

			person := <-edited
			sts := c.sts("db")
			assert.Equal(t, person.Spec, sts.Spec, "nothing was changed after the person's edit")
			jr, st := record(t, c)
			assert.Equal(t, journal.Running, jr.Phase, "the record stays for resume, undo or abort")
			assert.Empty(t, jr.Holder)
			assert.Nil(t, st.Rollback, "no automatic rollback")
			assert.Contains(t, jr.History[len(jr.History)-1].Message, "changed by someone else")
		})
	}
}

// The template update applies but its answer is lost; the client's retry
// meets a conflict with that very write. The run recognises its own
// change and goes on.
func TestAppliedTemplateWhoseAnswerWasLostIsRecognised(t *testing.T) {
	c := setup(t, 3)
	var once sync.Once
	c.ctrl.React("update", "statefulsets", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if a.GetSubresource() != "" {
			return false, nil, nil
		}
		lost := false
		once.Do(func() {
			in := a.(k8stesting.UpdateAction).GetObject().(*appsv1.StatefulSet).DeepCopy()
			old, err := c.cs.Tracker().Get(kubefake.StatefulSetGVR, a.GetNamespace(), in.Name)
			require.NoError(t, err)
			in.Generation = old.(*appsv1.StatefulSet).Generation + 1
			in.Status = old.(*appsv1.StatefulSet).Status
			require.NoError(t, c.cs.Tracker().Update(kubefake.StatefulSetGVR, in, a.GetNamespace()))
			lost = true
		})
		if lost {
			return true, nil, apierrors.NewConflict(schema.GroupResource{Group: "apps", Resource: "statefulsets"}, "db", errors.New("the object has been modified"))
		}
		return false, nil, nil
	})
	r := c.runner("me", nil)
	pv, err := r.Prepare(ctxT(t), Request{Change: &Change{Images: map[string]string{"db": "app:v2"}}})
	require.NoError(t, err)
	require.NoError(t, r.Run(ctxT(t), pv))
	for n, p := range c.pods("db") {
		assert.Equal(t, "app:v2", p.Spec.Containers[0].Image, n)
	}
}

// A step reports the pods it moves, not again every pod an earlier step
// updated: the progress of a rollout of one pod per step grows with the
// steps, not with their square.
func TestStepReportsOnlyItsOwnPods(t *testing.T) {
	c := setup(t, 8)
	c.applyPending("app:v2", 8)
	rec := &progress.Recorder{}
	r := c.runner("me", rec)
	pv, err := r.Prepare(ctxT(t), Request{})
	require.NoError(t, err)
	require.Len(t, pv.Plan.Steps, 8)
	require.NoError(t, r.Run(ctxT(t), pv))

	for _, e := range rec.Events() {
		if e.Kind != "gate" || e.Step == 0 || !strings.HasPrefix(e.Object, "pod/") {
			continue
		}
		step := pv.Plan.Steps[e.Step-1]
		assert.Equal(t, "pod/"+step.Pods[0], e.Object, "step %d reports %s: %s", e.Step, e.Object, e.Message)
	}
}

// An aborted rollout leaves the partition holding the pods not yet moved;
// undoing it afterwards puts the partition back where it was before the
// rollout, not where the abort left it: a partition left behind would hold
// back the next template change without a word.
func TestUndoAfterAbortRestoresThePartitionFromBeforeTheRollout(t *testing.T) {
	c := setup(t, 3)
	v1 := c.sts("db").Status.CurrentRevision
	require.Equal(t, int32(0), Partition(c.sts("db")))
	r := c.runner("me", nil)
	pv, err := r.Prepare(ctxT(t), Request{Change: &Change{Images: map[string]string{"db": "app:v2"}}, PauseAfter: []int{1}})
	require.NoError(t, err)
	var paused *PausedError
	require.ErrorAs(t, r.Run(ctxT(t), pv), &paused)
	out, err := c.runner("other", nil).Abort(ctxT(t))
	require.NoError(t, err)
	require.Equal(t, int32(2), out.Partition, "the abort holds db-0 and db-1")

	undo, err := c.runner("me", nil).PrepareUndo(ctxT(t), 0)
	require.NoError(t, err)
	assert.Equal(t, v1, undo.From)
	assert.Equal(t, int32(0), undo.FinalPartition, "the plan names the partition from before the rollout")
	var rb *RolledBackError
	require.ErrorAs(t, c.runner("me", nil).Run(ctxT(t), undo), &rb)
	assert.Equal(t, int32(0), Partition(c.sts("db")), "the partition is back where it was before the rollout")
	for n, rev := range podRevisions(c) {
		assert.Equal(t, v1, rev, n)
	}
}

// A StatefulSet being deleted is left to its deletion by resume and undo
// as by a new rollout: its controller no longer replaces or updates pods,
// so a resumed step would wait for nothing and a rollback would delete pods
// that never come back.
func TestResumeAndUndoRefuseAStatefulSetBeingDeleted(t *testing.T) {
	c := setup(t, 3)
	r := c.runner("me", nil)
	pv, err := r.Prepare(ctxT(t), Request{Change: &Change{Images: map[string]string{"db": "app:v2"}}, PauseAfter: []int{1}})
	require.NoError(t, err)
	var paused *PausedError
	require.ErrorAs(t, r.Run(ctxT(t), pv), &paused)

	sts := c.sts("db")
	sts.Finalizers = []string{"example.com/hold"}
	sts.DeletionTimestamp = &metav1.Time{Time: time.Now()}
	_, err = c.cs.AppsV1().StatefulSets(testNS).Update(context.Background(), sts, metav1.UpdateOptions{})
	require.NoError(t, err)
	partition := Partition(c.sts("db"))

	var refused *RefusedError
	_, err = c.runner("me", nil).Prepare(ctxT(t), Request{Resume: true})
	require.ErrorAs(t, err, &refused)
	assert.Contains(t, err.Error(), "statefulset db is being deleted")
	_, err = c.runner("me", nil).PrepareUndo(ctxT(t), 0)
	require.ErrorAs(t, err, &refused)
	assert.Contains(t, err.Error(), "statefulset db is being deleted")
	assert.Equal(t, partition, Partition(c.sts("db")), "nothing changed")
}
