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
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	k8stesting "k8s.io/client-go/testing"
)

func updatePod(t *testing.T, cs *cluster, p *corev1.Pod) {
	t.Helper()
	_, err := cs.CoreV1().Pods(testNS).Update(context.Background(), p, metav1.UpdateOptions{})
	require.NoError(t, err)
}

func createPod(t *testing.T, cs *cluster, p *corev1.Pod) {
	t.Helper()
	_, err := cs.CoreV1().Pods(testNS).Create(context.Background(), p, metav1.CreateOptions{})
	require.NoError(t, err)
}

func deletePod(t *testing.T, cs *cluster, name string) {
	t.Helper()
	require.NoError(t, cs.CoreV1().Pods(testNS).Delete(context.Background(), name, metav1.DeleteOptions{}))
}

func TestTrackerSnapshotScopesPodsToStatefulSet(t *testing.T) {
	other := newPod("other", 0, "u-other", "r1")
	sameLabelsWrongName := newPod("db", 0, "u-x", "r1")
	sameLabelsWrongName.Name = "db-backup-1234"
	wrongLabels := newPod("db", 1, "u-y", "r1")
	wrongLabels.Labels["app"] = "something-else"
	cs := newCluster(newSTS("db", 1, 1), newSTS("other", 1, 1),
		newPod("db", 0, "u0", "r1"), newPod("db", 2, "u2", "r1"),
		other, sameLabelsWrongName, wrongLabels)

	tr := startTracker(t, cs)
	s := tr.Snapshot()
	require.NotNil(t, s.StatefulSet)
	assert.Equal(t, "db", s.StatefulSet.Name)
	assert.Equal(t, types.UID("db-uid"), tr.UID())
	var names []string
	for _, p := range s.OrderedPods() {
		names = append(names, p.Name)
	}
	assert.Equal(t, []string{"db-0", "db-2"}, names)
	assert.Nil(t, s.PVCs, "PVCs are not tracked without WithPVCs")
}

func TestTrackerStartErrors(t *testing.T) {
	t.Run("not found", func(t *testing.T) {
		tr := NewTracker(newCluster(), testNS, "db")
		err := tr.Start(context.Background())
		require.Error(t, err)
		assert.True(t, apierrors.IsNotFound(err), "got %v", err)
		// Waiting on a tracker that failed to start is an error, not a hang.
		err = WaitGates(context.Background(), tr, safety, PodGone("db-0"))
		require.ErrorContains(t, err, "failed to start")
		<-tr.Done() // closed even though no watch ever started
	})
	t.Run("forbidden pod watch fails fast", func(t *testing.T) {
		cs := newCluster(newSTS("db", 1, 1))
		cs.PrependReactor("list", "pods", func(k8stesting.Action) (bool, runtime.Object, error) {
			return true, nil, apierrors.NewForbidden(corev1.Resource("pods"), "", errors.New("no RBAC"))
		})
		ctx, cancel := context.WithTimeout(context.Background(), safety)
		defer cancel()
		tr := NewTracker(cs, testNS, "db")
		err := tr.Start(ctx)
		require.Error(t, err)
		assert.True(t, apierrors.IsForbidden(err), "got %v", err)
		assert.NoError(t, ctx.Err(), "Start should fail on the error, not on the context")
		<-tr.Done()
	})
	t.Run("not started", func(t *testing.T) {
		tr := NewTracker(newCluster(), testNS, "db")
		err := WaitGates(context.Background(), tr, safety, PodGone("db-0"))
		require.ErrorContains(t, err, "not started")
	})
	t.Run("started twice", func(t *testing.T) {
		tr := startTracker(t, newCluster(newSTS("db", 1, 1)))
		require.ErrorContains(t, tr.Start(context.Background()), "already started")
	})
}

func TestPodReadyAtRevision(t *testing.T) {
	cs := newCluster(newSTS("db", 1, 1), newPod("db", 2, "u2", "db-old", notReady))
	tr := startTracker(t, cs)
	rec := newRecorder()
	w := Waiter{Timeout: safety, Observer: rec.observe}
	done := goWait(func() error {
		return w.Wait(context.Background(), tr, PodReadyAtRevision("db-2", "db-new"))
	})

	rec.await(t, "initial not-ready state", func(e Event) bool {
		return e.Reason == "pod is at revision db-old, not db-new (Running, not Ready (containers not ready: postgres))"
	})
	// Ready, but at the wrong revision: must keep waiting.
	updatePod(t, cs, newPod("db", 2, "u2", "db-old"))
	rec.await(t, "ready at the old revision", func(e Event) bool {
		return e.Reason == "pod is at revision db-old, not db-new (Running, Ready)"
	})
	requireRunning(t, done)

	// Recreated at the new revision but not Ready yet: still waiting.
	deletePod(t, cs, "db-2")
	createPod(t, cs, newPod("db", 2, "u2b", "db-new", notReady))
	rec.await(t, "new revision not ready", func(e Event) bool {
		return e.Reason == "pod is Running, not Ready (containers not ready: postgres)"
	})
	requireRunning(t, done)

	updatePod(t, cs, newPod("db", 2, "u2b", "db-new"))
	require.NoError(t, result(t, done))
	last := rec.all()[len(rec.all())-1]
	assert.Equal(t, Pass, last.Verdict)
	assert.Equal(t, "pod db-2", last.Object)
	assert.Equal(t, "pod db-2: pod is Ready at revision db-new", last.String())
}

func TestPodReadyAtRevisionRejectsTerminatingPod(t *testing.T) {
	p := newPod("db", 0, "u0", "r1")
	now := metav1.Now()
	p.DeletionTimestamp = &now
	cs := newCluster(newSTS("db", 1, 1), p)
	tr := startTracker(t, cs)
	err := WaitGates(context.Background(), tr, 50*time.Millisecond, PodReadyAtRevision("db-0", "r1"))
	var te *TimeoutError
	require.ErrorAs(t, err, &te)
	assert.Equal(t, "pod is Terminating", te.LastState)
}

func TestTimeoutErrorNamesObjectAndState(t *testing.T) {
	cs := newCluster(newSTS("db", 1, 1), newPod("db", 2, "u2", "db-7c9f", notReady))
	tr := startTracker(t, cs)

	err := WaitGates(context.Background(), tr, 50*time.Millisecond, PodReadyAtRevision("db-2", "db-7c9f"))
	require.Error(t, err)
	assert.Equal(t,
		"timed out after 50ms waiting for pod db-2 to be Ready at revision db-7c9f: pod is Running, not Ready (containers not ready: postgres)",
		err.Error())
	var te *TimeoutError
	require.ErrorAs(t, err, &te)
	assert.Equal(t, "pod db-2", te.Object)
	assert.Equal(t, "pod db-2 to be Ready at revision db-7c9f", te.WaitingFor)
	assert.Equal(t, 50*time.Millisecond, te.Timeout)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	assert.NotErrorIs(t, err, context.Canceled)
}

func TestTimeoutWithSeveralPendingGatesListsOnlyPendingOnes(t *testing.T) {
	cs := newCluster(newSTS("db", 1, 1),
		newPod("db", 0, "u0", "r2"), newPod("db", 1, "u1", "r2", notReady))
	tr := startTracker(t, cs)
	err := WaitGates(context.Background(), tr, 50*time.Millisecond,
		PodReadyAtRevision("db-0", "r2"), PodReadyAtRevision("db-1", "r2"), PodReadyAtRevision("db-2", "r2"))
	var te *TimeoutError
	require.ErrorAs(t, err, &te)
	assert.Equal(t, "pod db-1, pod db-2", te.Object)
	assert.Equal(t, "pod db-1 to be Ready at revision r2 and pod db-2 to be Ready at revision r2", te.WaitingFor)
	assert.Equal(t, "pod db-1: pod is Running, not Ready (containers not ready: postgres); pod db-2: pod does not exist", te.LastState)
}

func TestParentDeadlineIsATimeout(t *testing.T) {
	cs := newCluster(newSTS("db", 1, 1))
	tr := startTracker(t, cs)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	err := WaitGates(ctx, tr, 0, PodReadyAtRevision("db-0", ""))
	var te *TimeoutError
	require.ErrorAs(t, err, &te)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Equal(t, "pod does not exist", te.LastState)
	assert.Contains(t, err.Error(), "waiting for pod db-0 to be Ready: pod does not exist")
}

func TestCancelReturnsCanceledWithContext(t *testing.T) {
	cs := newCluster(newSTS("db", 1, 1), newPod("db", 0, "u0", "r1", notReady))
	tr := startTracker(t, cs)
	rec := newRecorder()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := goWait(func() error {
		return Waiter{Timeout: safety, Observer: rec.observe}.Wait(ctx, tr, PodReadyAtRevision("db-0", "r1"))
	})
	rec.await(t, "first evaluation", func(Event) bool { return true })
	cancel()
	err := result(t, done)
	require.ErrorIs(t, err, context.Canceled)
	assert.NotErrorIs(t, err, context.DeadlineExceeded)
	var te *TimeoutError
	assert.False(t, errors.As(err, &te), "cancellation must not be reported as a timeout")
	assert.Equal(t, "waiting for pod db-0 to be Ready at revision r1 (last state: pod is Running, not Ready (containers not ready: postgres)): context canceled", err.Error())
}

func TestTrackerStoppedEndsWait(t *testing.T) {
	cs := newCluster(newSTS("db", 1, 1))
	trCtx, stop := context.WithCancel(context.Background())
	tr := NewTracker(cs, testNS, "db")
	require.NoError(t, tr.Start(trCtx))
	done := goWait(func() error {
		return WaitGates(context.Background(), tr, safety, PodReadyAtRevision("db-0", ""))
	})
	stop()
	err := result(t, done)
	require.ErrorContains(t, err, "watches of statefulset default/db stopped")
}

func TestStatefulSetDeletedWhileWaiting(t *testing.T) {
	cs := newCluster(newSTS("db", 1, 1), newPod("db", 0, "u0", "r1", notReady))
	tr := startTracker(t, cs)
	rec := newRecorder()
	done := goWait(func() error {
		return Waiter{Timeout: safety, Observer: rec.observe}.Wait(context.Background(), tr, PodReadyAtRevision("db-0", "r1"))
	})
	rec.await(t, "first evaluation", func(Event) bool { return true })
	require.NoError(t, cs.AppsV1().StatefulSets(testNS).Delete(context.Background(), "db", metav1.DeleteOptions{}))

	err := result(t, done)
	var de *StatefulSetDeletedError
	require.ErrorAs(t, err, &de)
	assert.False(t, de.Recreated)
	assert.Equal(t, "statefulset default/db was deleted while waiting for pod db-0 to be Ready at revision r1", err.Error())
	assert.Nil(t, tr.Snapshot().StatefulSet)
}

func TestStatefulSetRecreatedIsADifferentObject(t *testing.T) {
	cs := newCluster(newSTS("db", 1, 1))
	tr := startTracker(t, cs)
	rec := newRecorder()
	done := goWait(func() error {
		return Waiter{Timeout: safety, Observer: rec.observe}.Wait(context.Background(), tr, StatefulSetGone("db"))
	})
	rec.await(t, "first evaluation", func(Event) bool { return true })
	require.NoError(t, cs.AppsV1().StatefulSets(testNS).Delete(context.Background(), "db", metav1.DeleteOptions{}))
	require.NoError(t, result(t, done), "StatefulSetGone passes on deletion")

	recreated := newSTS("db", 1, 1)
	recreated.UID = "db-uid-2"
	_, err := cs.AppsV1().StatefulSets(testNS).Create(context.Background(), recreated, metav1.CreateOptions{})
	require.NoError(t, err)
	// Wait (event-driven) until the tracker has seen the new object.
	for {
		snap, changed := tr.Latest()
		if snap.recreated {
			break
		}
		select {
		case <-changed:
		case <-time.After(safety):
			t.Fatal("recreated statefulset not seen")
		}
	}
	err = WaitGates(context.Background(), tr, safety, StatefulSetObserved("db", 0))
	var de *StatefulSetDeletedError
	require.ErrorAs(t, err, &de)
	assert.True(t, de.Recreated)
	assert.Contains(t, err.Error(), "was deleted and recreated")
	assert.Nil(t, tr.Snapshot().StatefulSet, "the recreated object is not the tracked one")
}

func TestPodDeletedCountsAsGoneAndReplaced(t *testing.T) {
	cs := newCluster(newSTS("db", 1, 1), newPod("db", 2, "u2", "r1"))
	tr := startTracker(t, cs)
	rec := newRecorder()
	done := goWait(func() error {
		return Waiter{Timeout: safety, Observer: rec.observe}.Wait(context.Background(), tr,
			PodGone("db-2"), PodReplaced("db-2", "u2"))
	})
	rec.await(t, "first evaluation", func(Event) bool { return true })
	requireRunning(t, done)
	deletePod(t, cs, "db-2")
	require.NoError(t, result(t, done))
}

func TestPodRecreatedWithNewUIDIsReplaced(t *testing.T) {
	cs := newCluster(newSTS("db", 1, 1), newPod("db", 1, "old-uid", "r1"))
	tr := startTracker(t, cs)

	// Same pod still there: not replaced.
	err := WaitGates(context.Background(), tr, 50*time.Millisecond, PodReplaced("db-1", "old-uid"))
	var te *TimeoutError
	require.ErrorAs(t, err, &te)
	assert.Equal(t, "old pod still exists: pod is Running, Ready", te.LastState)

	rec := newRecorder()
	done := goWait(func() error {
		return Waiter{Timeout: safety, Observer: rec.observe}.Wait(context.Background(), tr,
			PodReplacedReady("db-1", "old-uid", "r2"))
	})
	rec.await(t, "first evaluation", func(Event) bool { return true })
	// Delete and recreate under the same name; the wait only sees the
	// latest state, which is why replacement is judged by UID.
	deletePod(t, cs, "db-1")
	createPod(t, cs, newPod("db", 1, "new-uid", "r2", notReady))
	rec.await(t, "new pod seen", func(e Event) bool { return strings.Contains(e.Reason, "not Ready") })
	requireRunning(t, done)
	require.NoError(t, WaitGates(context.Background(), tr, safety, PodReplaced("db-1", "old-uid")))

	updatePod(t, cs, newPod("db", 1, "new-uid", "r2"))
	require.NoError(t, result(t, done))
}

func TestTerminatingPodIsNotGone(t *testing.T) {
	cs := newCluster(newSTS("db", 1, 1), newPod("db", 2, "u2", "r1"))
	tr := startTracker(t, cs)

	p := newPod("db", 2, "u2", "r1")
	now := metav1.Now()
	p.DeletionTimestamp = &now
	updatePod(t, cs, p)
	require.NoError(t, WaitGates(context.Background(), tr, safety, NewGate("pod db-2", "to be seen terminating",
		func(_ context.Context, s Snapshot) (Verdict, string, error) {
			if IsPodTerminating(s.Pod("db-2")) {
				return Pass, "", nil
			}
			return NotYet, "", nil
		})))

	err := WaitGates(context.Background(), tr, 50*time.Millisecond, PodGone("db-2"))
	var te *TimeoutError
	require.ErrorAs(t, err, &te)
	assert.Equal(t, "timed out after 50ms waiting for pod db-2 to be gone: pod is Terminating", err.Error())

	done := goWait(func() error { return WaitGates(context.Background(), tr, safety, PodGone("db-2")) })
	deletePod(t, cs, "db-2")
	require.NoError(t, result(t, done))
}

func TestStatefulSetObserved(t *testing.T) {
	cs := newCluster(newSTS("db", 2, 1))
	tr := startTracker(t, cs)

	err := WaitGates(context.Background(), tr, 50*time.Millisecond, StatefulSetObserved("db", 0))
	require.EqualError(t, err, "timed out after 50ms waiting for statefulset db to be observed by its controller: observedGeneration 1 < generation 2")

	done := goWait(func() error { return WaitGates(context.Background(), tr, safety, StatefulSetObserved("db", 0)) })
	_, err = cs.AppsV1().StatefulSets(testNS).UpdateStatus(context.Background(), newSTS("db", 2, 2), metav1.UpdateOptions{})
	require.NoError(t, err)
	require.NoError(t, result(t, done))

	// A stale object whose own generation is observed does not satisfy a
	// wait for a newer generation.
	err = WaitGates(context.Background(), tr, 50*time.Millisecond, StatefulSetObserved("db", 3))
	require.EqualError(t, err, "timed out after 50ms waiting for statefulset db to be observed by its controller: generation 3 not yet seen (latest seen: 2)")
	done = goWait(func() error { return WaitGates(context.Background(), tr, safety, StatefulSetObserved("db", 3)) })
	_, err = cs.AppsV1().StatefulSets(testNS).Update(context.Background(), newSTS("db", 3, 2), metav1.UpdateOptions{})
	require.NoError(t, err)
	_, err = cs.AppsV1().StatefulSets(testNS).UpdateStatus(context.Background(), newSTS("db", 3, 3), metav1.UpdateOptions{})
	require.NoError(t, err)
	require.NoError(t, result(t, done))
}

func TestStatefulSetReady(t *testing.T) {
	sts := newSTS("db", 1, 1)
	sts.Status.Replicas, sts.Status.ReadyReplicas, sts.Status.AvailableReplicas = 3, 2, 2
	cs := newCluster(sts)
	tr := startTracker(t, cs)
	err := WaitGates(context.Background(), tr, 50*time.Millisecond, StatefulSetReady("db"))
	require.EqualError(t, err, "timed out after 50ms waiting for statefulset db to have all replicas ready: 2/3 ready, 2 available, 3 existing")

	sts = sts.DeepCopy()
	sts.Status.ReadyReplicas, sts.Status.AvailableReplicas = 3, 3
	done := goWait(func() error { return WaitGates(context.Background(), tr, safety, StatefulSetReady("db")) })
	_, err = cs.AppsV1().StatefulSets(testNS).UpdateStatus(context.Background(), sts, metav1.UpdateOptions{})
	require.NoError(t, err)
	require.NoError(t, result(t, done))
}

// After a watch expires (410), the reflector relists; changes made while the
// watch was broken must still be seen.
func TestRelistAfterWatchExpiry(t *testing.T) {
	cs := newCluster(newSTS("db", 1, 1), newPod("db", 0, "u0", "r1", notReady))
	cs.customPodWatch = true
	var calls atomic.Int32
	broken := watch.NewRaceFreeFake()
	cs.PrependWatchReactor("pods", func(k8stesting.Action) (bool, watch.Interface, error) {
		if calls.Add(1) == 1 {
			return true, broken, nil
		}
		return false, nil, nil // fall through to the normal fake watch
	})
	tr := startTracker(t, cs)

	done := goWait(func() error { return WaitGates(context.Background(), tr, safety, PodReadyAtRevision("db-0", "r1")) })
	// This update is not delivered through the broken watch...
	updatePod(t, cs, newPod("db", 0, "u0", "r1"))
	// ...which now expires, forcing a relist that picks it up.
	broken.Error(&apierrors.NewResourceExpired("too old resource version").ErrStatus)
	require.NoError(t, result(t, done))

	// Later changes arrive through the re-established watch.
	done = goWait(func() error {
		return WaitGates(context.Background(), tr, safety, NewGate("pod db-0", "to become unready",
			func(_ context.Context, s Snapshot) (Verdict, string, error) {
				if p := s.Pod("db-0"); p != nil && !IsPodReady(p) {
					return Pass, "", nil
				}
				return NotYet, "", nil
			}))
	})
	updatePod(t, cs, newPod("db", 0, "u0", "r1", notReady))
	require.NoError(t, result(t, done))
	assert.GreaterOrEqual(t, calls.Load(), int32(2), "the pod watch should have been re-established")
}

func TestTrackerWithPVCs(t *testing.T) {
	pvc := func(name string) *corev1.PersistentVolumeClaim {
		return &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{
			Name: name, Namespace: testNS, Labels: map[string]string{"app": "db"},
		}}
	}
	cs := newCluster(newSTS("db", 1, 1), pvc("data-db-0"), pvc("data-db-1"), pvc("scratch"), pvc("data-dbx-0"))
	tr := startTracker(t, cs, WithPVCs())
	s := tr.Snapshot()
	assert.Len(t, s.PVCs, 2)
	assert.NotNil(t, s.PVC("data-db-0"))
	assert.NotNil(t, s.PVC("data-db-1"))

	done := goWait(func() error { return WaitGates(context.Background(), tr, safety, PVCBound("data-db-1")) })
	bound := pvc("data-db-1")
	bound.Status.Phase = corev1.ClaimBound
	_, err := cs.CoreV1().PersistentVolumeClaims(testNS).UpdateStatus(context.Background(), bound, metav1.UpdateOptions{})
	require.NoError(t, err)
	require.NoError(t, result(t, done))
}

func TestLatestNotifiesOnChange(t *testing.T) {
	cs := newCluster(newSTS("db", 1, 1))
	tr := startTracker(t, cs)
	s0, changed := tr.Latest()
	assert.Empty(t, s0.Pods)
	createPod(t, cs, newPod("db", 0, "u0", "r1"))
	select {
	case <-changed:
	case <-time.After(safety):
		t.Fatal("no change notification")
	}
	s1 := tr.Snapshot()
	assert.Greater(t, s1.Seq, s0.Seq)
	assert.NotNil(t, s1.Pod("db-0"))
	assert.Empty(t, s0.Pods, "older snapshots are immutable")
}

// A list error while the reflector recovers from an expired watch is
// reported with the last state, since it may explain why the state is stale.
func TestWaitErrorMentionsWatchError(t *testing.T) {
	cs := newCluster(newSTS("db", 1, 1), newPod("db", 0, "u0", "r1", notReady))
	var lists atomic.Int32
	cs.PrependReactor("list", "pods", func(k8stesting.Action) (bool, runtime.Object, error) {
		if lists.Add(1) == 1 {
			return false, nil, nil // the initial list succeeds
		}
		return true, nil, apierrors.NewInternalError(errors.New("etcd unavailable"))
	})
	first := watch.NewRaceFreeFake()
	cs.customPodWatch = true
	cs.PrependWatchReactor("pods", func(k8stesting.Action) (bool, watch.Interface, error) {
		return true, first, nil
	})
	tr := startTracker(t, cs)

	// Before any watch error the state is reported as is.
	err := WaitGates(context.Background(), tr, 50*time.Millisecond, PodReadyAtRevision("db-0", "r1"))
	var te *TimeoutError
	require.ErrorAs(t, err, &te)
	assert.Equal(t, "pod is Running, not Ready (containers not ready: postgres)", te.LastState)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	rec := newRecorder()
	done := goWait(func() error {
		return Waiter{Timeout: safety, Observer: rec.observe}.Wait(ctx, tr, PodReadyAtRevision("db-0", "r1"))
	})
	rec.await(t, "first evaluation", func(Event) bool { return true })
	// Expire the watch; the reflector relists and the list fails.
	first.Error(&apierrors.NewResourceExpired("too old resource version").ErrStatus)
	for deadline := time.Now().Add(safety); ; time.Sleep(5 * time.Millisecond) {
		if _, err := tr.watchError(); err != nil {
			break
		}
		require.True(t, time.Now().Before(deadline), "list error not recorded")
	}
	cancel()
	err = result(t, done)
	require.ErrorIs(t, err, context.Canceled)
	assert.Contains(t, err.Error(), "(last state: pod is Running, not Ready (containers not ready: postgres) (last watch error ")
	assert.Contains(t, err.Error(), "etcd unavailable")
}
