package rollout

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	k8stesting "k8s.io/client-go/testing"

	"github.com/kubectl-sts/kubectl-sts/pkg/journal"
	"github.com/kubectl-sts/kubectl-sts/pkg/progress"
	"github.com/kubectl-sts/kubectl-sts/plugins"
)

var podsGVR = corev1.SchemeGroupVersion.WithResource("pods")

// startUnready makes the pods the controller creates at revision start
// not Ready, as a kubelet reports a starting container; markReady then
// turns one Ready.
func (c *fakeCluster) startUnready(revision string) (stop func()) {
	var off atomic.Bool
	c.ctrl.React("create", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		pod := a.(k8stesting.CreateAction).GetObject().(*corev1.Pod)
		if off.Load() || pod.Labels[appsv1.StatefulSetRevisionLabel] != revision {
			return false, nil, nil
		}
		setReady(pod, false)
		return true, pod, c.cs.Tracker().Create(podsGVR, pod, pod.Namespace)
	})
	return func() { off.Store(true) }
}

func setReady(pod *corev1.Pod, ready bool) {
	st := corev1.ConditionFalse
	if ready {
		st = corev1.ConditionTrue
	}
	for i := range pod.Status.Conditions {
		if pod.Status.Conditions[i].Type == corev1.PodReady {
			pod.Status.Conditions[i].Status = st
		}
	}
	for i := range pod.Status.ContainerStatuses {
		pod.Status.ContainerStatuses[i].Ready = ready
	}
}

func (c *fakeCluster) markReady(name string) {
	c.t.Helper()
	pod := c.pods("db")[name]
	require.NotNil(c.t, pod, name)
	setReady(pod, true)
	_, err := c.cs.CoreV1().Pods(testNS).Update(context.Background(), pod, metav1.UpdateOptions{})
	require.NoError(c.t, err)
}

// podAt returns the pod name if it exists at revision, not terminating.
func (c *fakeCluster) podAt(name, revision string) *corev1.Pod {
	p := c.pods("db")[name]
	if p == nil || p.DeletionTimestamp != nil || p.Labels[appsv1.StatefulSetRevisionLabel] != revision {
		return nil
	}
	return p
}

// With the gates the controller's own, the next step's partition goes out
// once the controller has replaced the current step's pod, before that pod
// is Ready; the controller (here the shared fake, which like the real one
// replaces no pod while an updated pod is not Ready) holds the next pod
// until then; every step is still checked and recorded.
func TestControllerPacedStepMovesThePartitionAheadBeforeThePodIsReady(t *testing.T) {
	c := setup(t, 4)
	from := c.applyPending("app:v2", 4)
	created := len(c.podChanges())
	rec := &progress.Recorder{}
	r := c.runner("me", rec)
	pv, err := r.Prepare(ctxT(t), Request{})
	require.NoError(t, err)
	assert.True(t, pv.Pacing.ControllerPaced, pv.Pacing.Message)
	assert.Contains(t, pv.Pacing.Message, "steps are controller-paced")
	c.startUnready(pv.To)

	done := make(chan error, 1)
	go func() { done <- r.Run(ctxT(t), pv) }()
	for k := 3; k >= 0; k-- {
		name := fmt.Sprintf("db-%d", k)
		waitFor(t, func() bool { return c.podAt(name, pv.To) != nil })
		if k > 0 {
			next := fmt.Sprintf("db-%d", k-1)
			old := c.podAt(next, from)
			require.NotNil(t, old, "%s still on the old revision while %s is not Ready", next, name)
			// The partition of the next step goes out while the pod of
			// this one is not Ready yet.
			waitFor(t, func() bool { return Partition(c.sts("db")) == int32(k-1) })
			require.False(t, c.podAt(name, pv.To).Status.Conditions[0].Status == corev1.ConditionTrue)
			// The controller holds the next pod until this one is Ready.
			time.Sleep(50 * time.Millisecond)
			held := c.podAt(next, from)
			require.NotNil(t, held, "%s replaced before %s was Ready", next, name)
			assert.Equal(t, old.UID, held.UID)
		}
		c.markReady(name)
	}
	require.NoError(t, <-done)

	assert.Equal(t, []string{"db-3:" + pv.To, "db-2:" + pv.To, "db-1:" + pv.To, "db-0:" + pv.To}, c.podChanges()[created:], "each pod replaced once")
	jr, st := record(t, c)
	assert.Equal(t, journal.Succeeded, jr.Phase)
	for i, s := range st.Steps {
		assert.False(t, s.Started.IsZero(), "step %d start recorded", i+1)
		assert.False(t, s.Finished.IsZero(), "step %d end recorded", i+1)
		assert.Len(t, s.UIDs, 1, "step %d pods recorded", i+1)
		if i > 0 {
			assert.True(t, s.Started.Before(st.Steps[i-1].Finished), "step %d began (its partition went out) before step %d passed", i+1, i)
		}
	}
	kinds := rec.Kinds()
	assert.Equal(t, 3, count(kinds, "partition-ahead"))
	assert.Equal(t, 4, count(kinds, "step-passed"))
	assert.Equal(t, 4, count(c.events.list(), ReasonStepPassed))
	for _, e := range rec.Events() {
		if e.Kind == "partition-ahead" {
			assert.Contains(t, e.Message, "ahead for step")
		}
	}
}

// A gate that is not the controller's own (or a pause, or another
// controller behaviour) keeps the partition at the step until its gates
// pass.
func TestStepsAreNotControllerPacedUnlessTheGatesAreTheControllersOwn(t *testing.T) {
	type tc struct {
		name   string
		mutate func(*appsv1.StatefulSet)
		req    Request
		runner func(*Runner)
		reason string
	}
	for _, tt := range []tc{
		{name: "soak", req: Request{Gates: Gates{Soak: 10 * time.Millisecond}}, reason: "--soak"},
		{name: "exec", req: Request{Gates: Gates{Exec: "true"}}, reason: "--gate-exec"},
		{name: "command", req: Request{Gates: Gates{Command: "./gate.sh"}}, runner: func(r *Runner) { r.Local = &fakeRunner{} }, reason: "--gate-cmd"},
		{name: "pause", req: Request{PauseAfter: []int{2}}, reason: "pauses"},
		{name: "engine", req: Request{Gates: Gates{Engine: "auto"}}, runner: func(r *Runner) {
			r.Engines = plugins.NewRegistry(&fakeEngine{healthy: func() bool { return true }})
		}, reason: "fakedb engine"},
		{name: "parallel", mutate: func(s *appsv1.StatefulSet) { s.Spec.PodManagementPolicy = appsv1.ParallelPodManagement }, reason: "Parallel"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var mutate []func(*appsv1.StatefulSet)
			if tt.mutate != nil {
				mutate = append(mutate, tt.mutate)
			}
			c := setup(t, 3, mutate...)
			c.applyPending("app:v2", 3)
			r := c.runner("me", nil)
			if tt.runner != nil {
				tt.runner(r)
			}
			pv, err := r.Prepare(ctxT(t), tt.req)
			require.NoError(t, err)
			assert.False(t, pv.Pacing.ControllerPaced)
			assert.Contains(t, pv.Pacing.Message, tt.reason)
			c.startUnready(pv.To)
			ctx, cancel := context.WithCancel(ctxT(t))
			done := make(chan error, 1)
			go func() { done <- r.Run(ctx, pv) }()
			waitFor(t, func() bool { return c.podAt("db-2", pv.To) != nil })
			time.Sleep(200 * time.Millisecond)
			assert.Equal(t, int32(2), Partition(c.sts("db")), "the partition holds at step 1 while db-2 is not Ready")
			cancel()
			require.ErrorIs(t, <-done, context.Canceled)
		})
	}
}

func TestPacingDecision(t *testing.T) {
	one := &MaxUnavailable{Pods: 1}
	base := func() *State {
		p, err := BuildPlan("db", 3, 0, nil)
		require.NoError(t, err)
		p.MaxUnavailable = one
		return &State{Plan: p, Stage: StageSteps, Steps: make([]StepState, len(p.Steps))}
	}
	ok, reason := pacingOf(base(), appsv1.OrderedReadyPodManagement, nil)
	assert.True(t, ok, reason)
	ok, _ = pacingOf(base(), "", nil)
	assert.True(t, ok, "OrderedReady is the default")

	for name, tt := range map[string]struct {
		mutate func(*State)
		policy appsv1.PodManagementPolicyType
		engine plugins.Engine
		reason string
	}{
		"soak":      {mutate: func(s *State) { s.Gates.Soak = time.Second }, reason: "--soak"},
		"exec":      {mutate: func(s *State) { s.Gates.Exec = "true" }, reason: "--gate-exec"},
		"command":   {mutate: func(s *State) { s.Gates.Command = "true" }, reason: "--gate-cmd"},
		"engine":    {engine: &fakeEngine{}, reason: "fakedb"},
		"pause":     {mutate: func(s *State) { s.PauseAfter = []int{1} }, reason: "pauses"},
		"budget":    {mutate: func(s *State) { s.Plan.MaxUnavailable = &MaxUnavailable{Pods: 2, Spec: "2"} }, reason: "maxUnavailable"},
		"no budget": {mutate: func(s *State) { s.Plan.MaxUnavailable = nil }, reason: "maxUnavailable"},
		"parallel":  {policy: appsv1.ParallelPodManagement, reason: "Parallel"},
		"handoff":   {mutate: func(s *State) { s.Handoff = &HandoffState{} }, reason: "leader"},
		"multi-pod": {mutate: func(s *State) {
			p, err := BuildPlan("db", 3, 0, []StepSpec{{Value: 1}, {Value: 3}})
			require.NoError(t, err)
			p.MaxUnavailable = one
			s.Plan = p
		}, reason: "more than one pod"},
		"last step": {mutate: func(s *State) { s.Current = 2 }, reason: "no step follows"},
	} {
		st := base()
		if tt.mutate != nil {
			tt.mutate(st)
		}
		policy := tt.policy
		if policy == "" {
			policy = appsv1.OrderedReadyPodManagement
		}
		ok, reason := pacingOf(st, policy, tt.engine)
		assert.False(t, ok, name)
		assert.Contains(t, reason, tt.reason, name)
	}
}

// A run killed right after the partition patch that went ahead, before
// step 1's pod was Ready (nothing after it reaches the API server: no
// journal write, no Event, no lease release), is resumed by the next run:
// the journal still says step 1, the partition is one step ahead, the
// step's gates cover its pod, and every pod is replaced exactly once.
func TestResumeAfterAKillRightAfterThePartitionWentAhead(t *testing.T) {
	c := setup(t, 4)
	c.applyPending("app:v2", 4)
	created := len(c.podChanges())
	ctx, cancel := context.WithCancel(ctxT(t))
	r := c.runner("first", nil)
	l := logWrites(c, r)
	patches := 0
	var killed atomic.Bool
	l.onWrite = func(w string, _ int) error {
		if killed.Load() {
			return context.Canceled
		}
		if w == "patch" {
			patches++
		}
		if w == "patch" && patches == 2 {
			killed.Store(true) // this write lands; the process dies with it
			cancel()
		}
		return nil
	}
	pv, err := r.Prepare(ctx, Request{})
	require.NoError(t, err)
	require.True(t, pv.Pacing.ControllerPaced)
	stop := c.startUnready(pv.To)
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx, pv) }()
	waitFor(t, killed.Load)
	require.ErrorIs(t, <-done, context.Canceled)
	if p := c.podAt("db-3", pv.To); p != nil {
		require.Equal(t, corev1.ConditionFalse, p.Status.Conditions[0].Status, "killed before db-3 was Ready")
	}
	l.mu.Lock()
	l.onWrite = nil
	l.mu.Unlock()
	jr, st := record(t, c)
	require.Equal(t, 0, st.Current, "the journal still says step 1")
	require.NotEmpty(t, jr.Holder, "the killed run never released its lease")
	require.Equal(t, int32(2), Partition(c.sts("db")), "the partition of step 2 went out ahead")

	stop()
	waitFor(t, func() bool { return c.podAt("db-3", pv.To) != nil })
	c.markReady("db-3")
	later := func() time.Time { return time.Now().Add(time.Hour) }
	rec := &progress.Recorder{}
	r2 := c.runner("second", rec)
	r2.Now = later
	r2.Journal = r2.Journal.WithClock(later, journal.DefaultLeaseDuration)
	pv2, err := r2.Prepare(ctxT(t), Request{})
	require.NoError(t, err)
	require.NoError(t, r2.Run(ctxT(t), pv2))
	for _, e := range rec.Events() {
		assert.NotContains(t, e.Message, "released by someone else")
	}
	jr, st = record(t, c)
	assert.Equal(t, journal.Succeeded, jr.Phase)
	for i, s := range st.Steps {
		assert.False(t, s.Finished.IsZero(), "step %d passed", i+1)
	}
	assert.Equal(t, []string{"db-3:" + pv.To, "db-2:" + pv.To, "db-1:" + pv.To, "db-0:" + pv.To}, c.podChanges()[created:], "each pod replaced once")
}

// An interrupted controller-paced run (Ctrl-C) takes back the partition it
// set ahead while the controller has not begun the next step: nothing
// moves beyond the step in progress until the rollout is resumed.
func TestInterruptedControllerPacedRunTakesThePartitionBack(t *testing.T) {
	c := setup(t, 3)
	from := c.applyPending("app:v2", 3)
	rec := &progress.Recorder{}
	r := c.runner("me", rec)
	pv, err := r.Prepare(ctxT(t), Request{})
	require.NoError(t, err)
	c.startUnready(pv.To)
	ctx, cancel := context.WithCancel(ctxT(t))
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx, pv) }()
	waitFor(t, func() bool { return Partition(c.sts("db")) == 1 })
	old := c.podAt("db-1", from)
	require.NotNil(t, old)
	cancel()
	require.ErrorIs(t, <-done, context.Canceled)
	assert.Equal(t, int32(2), Partition(c.sts("db")), "the partition is back at step 1")
	assert.Contains(t, rec.Kinds(), "partition-held")
	waitFor(t, func() bool { return c.podAt("db-2", pv.To) != nil })
	c.markReady("db-2")
	time.Sleep(100 * time.Millisecond)
	held := c.podAt("db-1", from)
	require.NotNil(t, held, "db-1 stays on the old revision")
	assert.Equal(t, old.UID, held.UID)

	// Resumed, it goes on from step 1.
	go func() {
		for _, name := range []string{"db-1", "db-0"} {
			for c.podAt(name, pv.To) == nil {
				time.Sleep(5 * time.Millisecond)
			}
			pod := c.pods("db")[name]
			setReady(pod, true)
			_, _ = c.cs.CoreV1().Pods(testNS).Update(context.Background(), pod, metav1.UpdateOptions{})
		}
	}()
	pv2, err := r.Prepare(ctxT(t), Request{Resume: true})
	require.NoError(t, err)
	require.NoError(t, r.Run(ctxT(t), pv2))
	for n, rev := range podRevisions(c) {
		assert.Equal(t, pv.To, rev, n)
	}
}

// With --no-rollback a failed controller-paced step leaves the partition
// at the failed step, not one ahead: the pods stay as they are.
func TestNoRollbackOfAControllerPacedRunHoldsThePartitionAtTheFailedStep(t *testing.T) {
	c := setup(t, 3)
	r := c.runner("me", nil)
	pv, err := r.Prepare(ctxT(t), Request{Change: &Change{Images: map[string]string{"db": "app:broken"}},
		Gates: Gates{StepTimeout: 300 * time.Millisecond}, NoRollback: true})
	require.NoError(t, err)
	require.True(t, pv.Pacing.ControllerPaced)
	err = r.Run(ctxT(t), pv)
	var na *NeedsAttentionError
	require.ErrorAs(t, err, &na)
	assert.Contains(t, err.Error(), "the partition holds at 2")
	assert.Equal(t, int32(2), Partition(c.sts("db")))
	for n, p := range c.pods("db") {
		if n != "db-2" {
			assert.NotContains(t, p.Spec.Containers[0].Image, "broken", n)
		}
	}
}

// An abort of a live controller-paced run while the partition is one
// step ahead raises it back to hold exactly the pods already on the new
// revision: the next pod is never replaced.
func TestAbortOfAControllerPacedRunRaisesThePartitionBack(t *testing.T) {
	c := setup(t, 3)
	from := c.applyPending("app:v2", 3)
	r := c.runner("first", nil)
	pv, err := r.Prepare(ctxT(t), Request{})
	require.NoError(t, err)
	c.startUnready(pv.To)
	done := make(chan error, 1)
	go func() { done <- r.Run(ctxT(t), pv) }()
	waitFor(t, func() bool { return Partition(c.sts("db")) == 1 && c.podAt("db-2", pv.To) != nil })
	old := c.podAt("db-1", from)
	require.NotNil(t, old)

	out, err := c.runner("second", nil).Abort(ctxT(t))
	require.NoError(t, err)
	require.True(t, out.Requested)
	var ab *AbortedError
	require.ErrorAs(t, <-done, &ab)
	assert.Equal(t, int32(2), ab.Partition)
	assert.Equal(t, int32(2), Partition(c.sts("db")), "the partition holds db-2, the one pod on the new revision")
	c.markReady("db-2")
	time.Sleep(100 * time.Millisecond)
	held := c.podAt("db-1", from)
	require.NotNil(t, held, "db-1 stays on the old revision")
	assert.Equal(t, old.UID, held.UID)
	jr, _ := record(t, c)
	assert.Equal(t, journal.Aborted, jr.Phase)
}
