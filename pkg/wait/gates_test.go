package wait

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func constGate(name string, v Verdict, reason string) Gate {
	return NewGate("", name, func(context.Context, Snapshot) (Verdict, string, error) { return v, reason, nil })
}

func TestAllAndAny(t *testing.T) {
	ctx := context.Background()
	pass, fail, notYet := constGate("p", Pass, "ok"), constGate("f", Fail, "broken"), constGate("n", NotYet, "later")

	v, _, err := All(pass, pass).Check(ctx, Snapshot{})
	require.NoError(t, err)
	assert.Equal(t, Pass, v)

	v, reason, _ := All(pass, notYet, fail).Check(ctx, Snapshot{})
	assert.Equal(t, Fail, v)
	assert.Equal(t, "f: broken", reason)

	v, reason, _ = All(pass, notYet).Check(ctx, Snapshot{})
	assert.Equal(t, NotYet, v)
	assert.Equal(t, "n: later", reason)
	assert.Equal(t, "p and n", All(pass, notYet).Name())

	v, _, _ = Any(fail, notYet, pass).Check(ctx, Snapshot{})
	assert.Equal(t, Pass, v)
	v, _, _ = Any(fail, notYet).Check(ctx, Snapshot{})
	assert.Equal(t, NotYet, v)
	v, reason, _ = Any(fail, fail).Check(ctx, Snapshot{})
	assert.Equal(t, Fail, v)
	assert.Equal(t, "f: broken; f: broken", reason)

	boom := errors.New("boom")
	_, _, err = All(pass, NewGate("", "e", func(context.Context, Snapshot) (Verdict, string, error) { return NotYet, "", boom })).Check(ctx, Snapshot{})
	assert.ErrorIs(t, err, boom)
}

func TestWaitGatesComposition(t *testing.T) {
	cs := newCluster(newSTS("db", 1, 1), newPod("db", 0, "u0", "r1"), newPod("db", 1, "u1", "r1"))
	tr := startTracker(t, cs)
	ctx := context.Background()

	t.Run("all pass", func(t *testing.T) {
		require.NoError(t, WaitGates(ctx, tr, safety, All(PodReadyAtRevision("db-0", "r1"), PodReadyAtRevision("db-1", "r1"))))
	})

	t.Run("one fails", func(t *testing.T) {
		err := WaitGates(ctx, tr, safety,
			PodReadyAtRevision("db-0", "r1"),
			All(constGate("replication caught up", Fail, "lag 40s exceeds 10s"), PodReadyAtRevision("db-1", "r1")))
		var gf *GateFailedError
		require.ErrorAs(t, err, &gf)
		// The nested All is flattened, so the error names the failing gate.
		assert.Equal(t, "replication caught up", gf.Gate)
		assert.Equal(t, "lag 40s exceeds 10s", gf.Reason)
		assert.Equal(t, "failed waiting for replication caught up: lag 40s exceeds 10s", err.Error())
	})

	t.Run("gate error aborts", func(t *testing.T) {
		boom := errors.New("exec failed")
		err := WaitGates(ctx, tr, safety, NewGate("pod db-0", "to answer", func(context.Context, Snapshot) (Verdict, string, error) {
			return NotYet, "", boom
		}))
		require.ErrorIs(t, err, boom)
		assert.Equal(t, "checking pod db-0 to answer: exec failed", err.Error())
	})

	t.Run("not yet then pass on a later event", func(t *testing.T) {
		rec := newRecorder()
		done := goWait(func() error {
			return Waiter{Timeout: safety, Observer: rec.observe}.Wait(ctx, tr,
				PodReadyAtRevision("db-0", "r1"), PodReadyAtRevision("db-2", "r1"))
		})
		rec.await(t, "db-2 missing", func(e Event) bool { return e.Object == "pod db-2" && e.Reason == "pod does not exist" })
		requireRunning(t, done)
		createPod(t, cs, newPod("db", 2, "u2", "r1"))
		require.NoError(t, result(t, done))
		var passes []string
		for _, e := range rec.all() {
			if e.Verdict == Pass {
				passes = append(passes, e.String())
			}
		}
		assert.Equal(t, []string{"pod db-0: pod is Ready at revision r1", "pod db-2: pod is Ready at revision r1"}, passes)
	})

	t.Run("tick re-evaluates outside state", func(t *testing.T) {
		var healthy atomic.Bool
		var checks atomic.Int32
		health := NewGate("pod db-0", "to report healthy", func(context.Context, Snapshot) (Verdict, string, error) {
			if checks.Add(1) >= 3 {
				healthy.Store(true)
			}
			if healthy.Load() {
				return Pass, "healthy", nil
			}
			return NotYet, "unhealthy", nil
		})
		// No watch event happens; only the tick can make this pass.
		require.NoError(t, Waiter{Timeout: safety, Interval: 5 * time.Millisecond}.Wait(ctx, tr, health))
		assert.GreaterOrEqual(t, checks.Load(), int32(3))
	})

	t.Run("without tick outside state is not re-checked", func(t *testing.T) {
		var checks atomic.Int32
		health := NewGate("pod db-0", "to report healthy", func(context.Context, Snapshot) (Verdict, string, error) {
			checks.Add(1)
			return NotYet, "unhealthy", nil
		})
		err := Waiter{Timeout: 50 * time.Millisecond, Interval: -1}.Wait(ctx, tr, health)
		var te *TimeoutError
		require.ErrorAs(t, err, &te)
		assert.Equal(t, "timed out after 50ms waiting for pod db-0 to report healthy: unhealthy", err.Error())
		assert.Equal(t, int32(1), checks.Load())
	})

	t.Run("no gates", func(t *testing.T) {
		require.Error(t, WaitGates(ctx, tr, safety))
	})
}

func TestPodNotFailing(t *testing.T) {
	crash := newPod("db", 0, "u0", "r2", notReady)
	crash.Status.ContainerStatuses[0].State = corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff"}}
	s := Snapshot{Pods: map[string]*corev1.Pod{"db-0": crash}}

	v, reason, err := PodNotFailing("db-0", "r2").Check(context.Background(), s)
	require.NoError(t, err)
	assert.Equal(t, Fail, v)
	assert.Equal(t, "pod is CrashLoopBackOff (container postgres)", reason)

	// An old-revision pod that is broken does not fail a rollout to r3.
	v, _, _ = PodNotFailing("db-0", "r3").Check(context.Background(), s)
	assert.Equal(t, Pass, v)

	// Fail fast in a wait that also waits for readiness.
	cs := newCluster(newSTS("db", 1, 1), crash)
	tr := startTracker(t, cs)
	err = WaitGates(context.Background(), tr, safety, PodReadyAtRevision("db-0", "r2"), PodNotFailing("db-0", "r2"))
	var gf *GateFailedError
	require.ErrorAs(t, err, &gf)
	assert.Equal(t, "pod db-0", gf.Object)
	assert.Equal(t, "failed waiting for pod db-0 not to be failing at revision r2: pod is CrashLoopBackOff (container postgres)", err.Error())
}

func snapOf(pods ...*corev1.Pod) Snapshot {
	m := map[string]*corev1.Pod{}
	for _, p := range pods {
		m[p.Name] = p
	}
	return Snapshot{Pods: m}
}

// soakAt returns a Soak gate driven by a fake clock.
func soakAt(pods []string, d time.Duration, now *time.Time) *soakGate {
	g := Soak(pods, d).(*soakGate)
	g.now = func() time.Time { return *now }
	return g
}

func TestSoakCheck(t *testing.T) {
	ctx := context.Background()
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	pods := []string{"db-0", "db-1"}
	stable := snapOf(newPod("db", 0, "u0", "r1"), newPod("db", 1, "u1", "r1", withRestarts(2)))

	t.Run("waits for readiness, then passes after the duration", func(t *testing.T) {
		now := t0
		g := soakAt(pods, 30*time.Second, &now)
		assert.Equal(t, "pods db-0, db-1 to stay Ready for 30s", g.Name())

		v, reason, err := g.Check(ctx, snapOf(newPod("db", 0, "u0", "r1"), newPod("db", 1, "u1", "r1", notReady)))
		require.NoError(t, err)
		assert.Equal(t, NotYet, v)
		assert.Equal(t, "soak not started: pod db-1: pod is Running, not Ready (containers not ready: postgres)", reason)
		assert.True(t, g.NextCheck().IsZero())

		v, _, _ = g.Check(ctx, stable)
		assert.Equal(t, NotYet, v)
		assert.Equal(t, t0.Add(30*time.Second), g.NextCheck())

		now = t0.Add(10 * time.Second)
		v, reason, _ = g.Check(ctx, stable)
		assert.Equal(t, NotYet, v)
		assert.Equal(t, "stable for 10s of 30s", reason)

		now = t0.Add(30 * time.Second)
		v, reason, _ = g.Check(ctx, stable)
		assert.Equal(t, Pass, v)
		assert.Equal(t, "stable for 30s", reason)
	})

	failures := []struct {
		name   string
		after  Snapshot
		reason string
	}{
		{"restart count increases",
			snapOf(newPod("db", 0, "u0", "r1"), newPod("db", 1, "u1", "r1", withRestarts(3))),
			"pod db-1 restarted during the soak (restarts 2 -> 3)"},
		{"uid changes",
			snapOf(newPod("db", 0, "u0-new", "r1"), newPod("db", 1, "u1", "r1", withRestarts(2))),
			"pod db-0 was replaced during the soak (uid u0 -> u0-new)"},
		{"pod goes unready",
			snapOf(newPod("db", 0, "u0", "r1", notReady), newPod("db", 1, "u1", "r1", withRestarts(2))),
			"pod db-0 became unready during the soak: pod is Running, not Ready (containers not ready: postgres)"},
		{"pod deleted",
			snapOf(newPod("db", 1, "u1", "r1", withRestarts(2))),
			"pod db-0 was deleted during the soak"},
		{"readiness flapped in between",
			snapOf(newPod("db", 0, "u0", "r1", withReadySince(t0.Add(5*time.Second))), newPod("db", 1, "u1", "r1", withRestarts(2))),
			"pod db-0 was briefly unready during the soak (Ready since 2026-03-01T12:00:05Z)"},
	}
	for _, tc := range failures {
		t.Run("fails when "+tc.name, func(t *testing.T) {
			now := t0
			g := soakAt(pods, 30*time.Second, &now)
			v, _, _ := g.Check(ctx, stable)
			require.Equal(t, NotYet, v)
			now = t0.Add(10 * time.Second)
			v, reason, err := g.Check(ctx, tc.after)
			require.NoError(t, err)
			assert.Equal(t, Fail, v)
			assert.Equal(t, tc.reason, reason)
		})
	}
}

func TestSoakWait(t *testing.T) {
	ctx := context.Background()

	t.Run("passes when stable", func(t *testing.T) {
		cs := newCluster(newSTS("db", 1, 1), newPod("db", 0, "u0", "r1"), newPod("db", 1, "u1", "r1"))
		tr := startTracker(t, cs)
		// No tick: the soak's own deadline must wake the wait.
		require.NoError(t, Waiter{Timeout: safety, Interval: -1}.Wait(ctx, tr, Soak([]string{"db-0", "db-1"}, 50*time.Millisecond)))
	})

	t.Run("fails on restart", func(t *testing.T) {
		cs := newCluster(newSTS("db", 1, 1), newPod("db", 0, "u0", "r1"), newPod("db", 1, "u1", "r1"))
		tr := startTracker(t, cs)
		rec := newRecorder()
		done := goWait(func() error {
			return Waiter{Timeout: safety, Observer: rec.observe}.Wait(ctx, tr, Soak([]string{"db-0", "db-1"}, time.Hour))
		})
		rec.await(t, "soak started", func(e Event) bool { return strings.HasPrefix(e.Reason, "stable for") })
		updatePod(t, cs, newPod("db", 1, "u1", "r1", withRestarts(1)))
		err := result(t, done)
		var gf *GateFailedError
		require.ErrorAs(t, err, &gf)
		assert.Equal(t, "pods db-0, db-1", gf.Object)
		assert.Equal(t, "failed waiting for pods db-0, db-1 to stay Ready for 1h0m0s: pod db-1 restarted during the soak (restarts 0 -> 1)", err.Error())
	})

	t.Run("fails on replacement", func(t *testing.T) {
		cs := newCluster(newSTS("db", 1, 1), newPod("db", 0, "u0", "r1"))
		tr := startTracker(t, cs)
		rec := newRecorder()
		done := goWait(func() error {
			return Waiter{Timeout: safety, Observer: rec.observe}.Wait(ctx, tr, Soak([]string{"db-0"}, time.Hour))
		})
		rec.await(t, "soak started", func(e Event) bool { return strings.HasPrefix(e.Reason, "stable for") })
		deletePod(t, cs, "db-0")
		createPod(t, cs, newPod("db", 0, "u0-new", "r1"))
		var gf *GateFailedError
		require.ErrorAs(t, result(t, done), &gf)
		// Depending on whether the deletion was observed on its own, the
		// soak sees the pod gone or already replaced; both fail.
		assert.Contains(t, []string{
			"pod db-0 was deleted during the soak",
			"pod db-0 was replaced during the soak (uid u0 -> u0-new)",
		}, gf.Reason)
	})
}

func pvc(name string, capacity string, mutate ...func(*corev1.PersistentVolumeClaim)) *corev1.PersistentVolumeClaim {
	p := &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: testNS},
		Status: corev1.PersistentVolumeClaimStatus{
			Phase:    corev1.ClaimBound,
			Capacity: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse(capacity)},
		},
	}
	for _, m := range mutate {
		m(p)
	}
	return p
}

func withPVCCondition(t corev1.PersistentVolumeClaimConditionType, msg string) func(*corev1.PersistentVolumeClaim) {
	return func(p *corev1.PersistentVolumeClaim) {
		p.Status.Conditions = append(p.Status.Conditions, corev1.PersistentVolumeClaimCondition{Type: t, Status: corev1.ConditionTrue, Message: msg})
	}
}

func TestWaitPVC(t *testing.T) {
	ctx := context.Background()
	want := resource.MustParse("20Gi")

	t.Run("timeout names the claim and its resize state", func(t *testing.T) {
		cs := newCluster(pvc("data-db-0", "10Gi",
			withPVCCondition(corev1.PersistentVolumeClaimResizing, ""),
			withPVCCondition(corev1.PersistentVolumeClaimControllerResizeError, "quota exceeded")))
		err := WaitPVC(ctx, cs, testNS, "data-db-0", 50*time.Millisecond, PVCCapacityAtLeast("data-db-0", want))
		var te *TimeoutError
		require.ErrorAs(t, err, &te)
		assert.Equal(t, "pvc data-db-0", te.Object)
		assert.Equal(t, "timed out after 50ms waiting for pvc data-db-0 to have capacity 20Gi: pvc capacity is 10Gi (Resizing; ControllerResizeError: quota exceeded)", err.Error())
	})

	t.Run("passes when expanded", func(t *testing.T) {
		cs := newCluster(pvc("data-db-0", "10Gi", withPVCCondition(corev1.PersistentVolumeClaimFileSystemResizePending, "")))
		rec := newRecorder()
		done := goWait(func() error {
			return Waiter{Timeout: safety, Observer: rec.observe}.WaitPVC(ctx, cs, testNS, "data-db-0",
				PVCCapacityAtLeast("data-db-0", want))
		})
		rec.await(t, "pending resize", func(e Event) bool {
			return e.Reason == "pvc capacity is 10Gi (FileSystemResizePending)"
		})
		requireRunning(t, done)
		_, err := cs.CoreV1().PersistentVolumeClaims(testNS).UpdateStatus(ctx, pvc("data-db-0", "20Gi"), metav1.UpdateOptions{})
		require.NoError(t, err)
		require.NoError(t, result(t, done))
	})

	t.Run("file system resize pending", func(t *testing.T) {
		cs := newCluster(pvc("data-db-0", "10Gi", withPVCCondition(corev1.PersistentVolumeClaimFileSystemResizePending, "")))
		require.NoError(t, WaitPVC(ctx, cs, testNS, "data-db-0", safety,
			Any(PVCCapacityAtLeast("data-db-0", want), PVCFileSystemResizePending("data-db-0"))))
	})

	t.Run("infeasible fails", func(t *testing.T) {
		cs := newCluster(pvc("data-db-0", "10Gi", func(p *corev1.PersistentVolumeClaim) {
			p.Status.AllocatedResourceStatuses = map[corev1.ResourceName]corev1.ClaimResourceStatus{
				corev1.ResourceStorage: corev1.PersistentVolumeClaimControllerResizeInfeasible,
			}
		}))
		err := WaitPVC(ctx, cs, testNS, "data-db-0", safety, PVCCapacityAtLeast("data-db-0", want))
		var gf *GateFailedError
		require.ErrorAs(t, err, &gf)
		assert.Equal(t, "pvc capacity is 10Gi; resize is ControllerResizeInfeasible", gf.Reason)
	})

	t.Run("missing claim, then created", func(t *testing.T) {
		cs := newCluster(pvc("other", "1Gi"))
		rec := newRecorder()
		done := goWait(func() error {
			return Waiter{Timeout: safety, Observer: rec.observe}.WaitPVC(ctx, cs, testNS, "data-db-0", PVCBound("data-db-0"))
		})
		rec.await(t, "missing", func(e Event) bool { return e.Reason == "pvc does not exist" })
		_, err := cs.CoreV1().PersistentVolumeClaims(testNS).Create(ctx, pvc("data-db-0", "1Gi"), metav1.CreateOptions{})
		require.NoError(t, err)
		require.NoError(t, result(t, done))
	})

	t.Run("cancel", func(t *testing.T) {
		cs := newCluster()
		cctx, cancel := context.WithCancel(ctx)
		rec := newRecorder()
		done := goWait(func() error {
			return Waiter{Timeout: safety, Observer: rec.observe}.WaitPVC(cctx, cs, testNS, "data-db-0", PVCBound("data-db-0"))
		})
		rec.await(t, "first evaluation", func(Event) bool { return true })
		cancel()
		err := result(t, done)
		require.ErrorIs(t, err, context.Canceled)
		assert.Contains(t, err.Error(), "pvc data-db-0 to be Bound")
	})
}
