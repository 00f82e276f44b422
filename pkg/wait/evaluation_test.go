package wait

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
)

// countingGate is a PodGate over one pod that counts its checks; it passes
// when the pod has the annotation "go" and tells the annotation "n".
type countingGate struct {
	pod string
	mu  *sync.Mutex
	n   map[string]int
}

func (g countingGate) Name() string   { return "pod " + g.pod + " to have go" }
func (g countingGate) Object() string { return "pod " + g.pod }
func (g countingGate) Pods() []string { return []string{g.pod} }
func (g countingGate) Check(_ context.Context, s Snapshot) (Verdict, string, error) {
	g.mu.Lock()
	g.n[g.pod]++
	g.mu.Unlock()
	p := s.Pod(g.pod)
	if p == nil {
		return NotYet, "no pod", nil
	}
	if p.Annotations["go"] != "" {
		return Pass, "go", nil
	}
	return NotYet, "n=" + p.Annotations["n"], nil
}

// A change of one pod checks the gates of that pod and the gates that are
// not pod gates, not the gates of the other pods.
func TestWaitChecksOnlyTheGatesOfTheChangedPod(t *testing.T) {
	cs := newCluster(newSTS("db", 1, 1), newPod("db", 0, "u0", "r1"), newPod("db", 1, "u1", "r1"), newPod("db", 2, "u2", "r1"))
	tr := startTracker(t, cs)
	var mu sync.Mutex
	counts := map[string]int{}
	others := 0
	gates := []Gate{NewGate("", "other", func(context.Context, Snapshot) (Verdict, string, error) {
		mu.Lock()
		others++
		mu.Unlock()
		return Pass, "", nil
	})}
	for i := range 3 {
		gates = append(gates, countingGate{pod: PodName("db", i), mu: &mu, n: counts})
	}
	rec := newRecorder()
	ch := goWait(func() error {
		return Waiter{Timeout: safety, Interval: -1, Observer: rec.observe}.Wait(context.Background(), tr, gates...)
	})
	rec.await(t, "first round", func(e Event) bool { return e.Object == "pod db-2" })

	for n := 1; n <= 3; n++ {
		p := newPod("db", 1, "u1", "r1")
		p.Annotations = map[string]string{"n": fmt.Sprint(n)}
		updatePod(t, cs, p)
		rec.await(t, "db-1 changed", func(e Event) bool { return e.Object == "pod db-1" && e.Reason == fmt.Sprintf("n=%d", n) })
	}
	requireRunning(t, ch)
	mu.Lock()
	assert.Equal(t, map[string]int{"db-0": 1, "db-1": 4, "db-2": 1}, counts, "checks by pod")
	assert.GreaterOrEqual(t, others, 4, "the other gate is checked every round")
	mu.Unlock()

	for i := range 3 {
		p := newPod("db", i, fmt.Sprintf("u%d", i), "r1")
		p.Annotations = map[string]string{"go": "yes"}
		updatePod(t, cs, p)
	}
	require.NoError(t, result(t, ch))
}

// The verdicts of a wait that checks only changed pods are those of
// checking every gate: a pod that passed and then changes is checked
// again, whatever the other pods do meanwhile.
func TestWaitIncrementalVerdicts(t *testing.T) {
	gatesOf := func(pods ...int) []Gate {
		var gates []Gate
		for _, i := range pods {
			gates = append(gates, PodReadyAtRevision(PodName("db", i), "r2"), PodNotFailing(PodName("db", i), "r2"))
		}
		return gates
	}
	t.Run("pod goes unready again", func(t *testing.T) {
		cs := newCluster(newSTS("db", 1, 1), newPod("db", 0, "u0", "r2"), newPod("db", 1, "u1", "r2", notReady))
		tr := startTracker(t, cs)
		rec := newRecorder()
		ch := goWait(func() error {
			return Waiter{Timeout: safety, Interval: -1, Observer: rec.observe}.Wait(context.Background(), tr, gatesOf(0, 1)...)
		})
		rec.await(t, "db-1 not ready", func(e Event) bool { return e.Object == "pod db-1" && e.Verdict == NotYet })
		updatePod(t, cs, newPod("db", 0, "u0", "r2", notReady))
		rec.await(t, "db-0 unready", func(e Event) bool { return e.Object == "pod db-0" && e.Verdict == NotYet })
		updatePod(t, cs, newPod("db", 1, "u1", "r2"))
		rec.await(t, "db-1 ready", func(e Event) bool {
			return e.Object == "pod db-1" && e.Verdict == Pass && e.Gate != "pod db-1 not to be failing at revision r2"
		})
		requireRunning(t, ch)
		updatePod(t, cs, newPod("db", 0, "u0", "r2"))
		require.NoError(t, result(t, ch))
	})
	t.Run("restart count increases", func(t *testing.T) {
		cs := newCluster(newSTS("db", 1, 1), newPod("db", 0, "u0", "r2"), newPod("db", 1, "u1", "r2", notReady))
		tr := startTracker(t, cs)
		rec := newRecorder()
		gates := append(gatesOf(0, 1), Soak([]string{"db-0", "db-1"}, time.Hour))
		ch := goWait(func() error {
			return Waiter{Timeout: safety, Interval: -1, Observer: rec.observe}.Wait(context.Background(), tr, gates...)
		})
		rec.await(t, "db-1 not ready", func(e Event) bool { return e.Object == "pod db-1" && e.Verdict == NotYet })
		updatePod(t, cs, newPod("db", 1, "u1", "r2"))
		rec.await(t, "soak started", func(e Event) bool {
			return e.Object == "pods db-0, db-1" && e.Verdict == NotYet && e.Reason != "" && e.Reason[:6] == "stable"
		})
		updatePod(t, cs, newPod("db", 0, "u0", "r2", withRestarts(1)))
		err := result(t, ch)
		var gf *GateFailedError
		require.ErrorAs(t, err, &gf)
		assert.Equal(t, "pod db-0 restarted during the soak (restarts 0 -> 1)", gf.Reason)
	})
	t.Run("deleted pod", func(t *testing.T) {
		cs := newCluster(newSTS("db", 1, 1), newPod("db", 0, "u0", "r2", notReady), newPod("db", 1, "u1", "r2"))
		tr := startTracker(t, cs)
		rec := newRecorder()
		ch := goWait(func() error {
			return Waiter{Timeout: safety, Interval: -1, Observer: rec.observe}.Wait(context.Background(), tr, gatesOf(0, 1)...)
		})
		rec.await(t, "db-0 not ready", func(e Event) bool { return e.Object == "pod db-0" && e.Verdict == NotYet })
		deletePod(t, cs, "db-1")
		rec.await(t, "db-1 gone", func(e Event) bool { return e.Object == "pod db-1" && e.Reason == "pod does not exist" })
		updatePod(t, cs, newPod("db", 0, "u0", "r2"))
		rec.await(t, "db-0 ready", func(e Event) bool {
			return e.Object == "pod db-0" && e.Verdict == Pass && e.Reason == "pod is Ready at revision r2"
		})
		requireRunning(t, ch)
		createPod(t, cs, newPod("db", 1, "u1b", "r2"))
		require.NoError(t, result(t, ch))
	})
	t.Run("failing pod fails the wait", func(t *testing.T) {
		cs := newCluster(newSTS("db", 1, 1), newPod("db", 0, "u0", "r2"), newPod("db", 1, "u1", "r2", notReady))
		tr := startTracker(t, cs)
		rec := newRecorder()
		ch := goWait(func() error {
			return Waiter{Timeout: safety, Interval: -1, Observer: rec.observe}.Wait(context.Background(), tr, gatesOf(0, 1)...)
		})
		rec.await(t, "db-1 not ready", func(e Event) bool { return e.Object == "pod db-1" && e.Verdict == NotYet })
		updatePod(t, cs, newPod("db", 0, "u0", "r2", crashLooping))
		err := result(t, ch)
		var gf *GateFailedError
		require.ErrorAs(t, err, &gf)
		assert.Equal(t, "pod db-0", gf.Object)
		assert.Contains(t, gf.Reason, "CrashLoopBackOff")
	})
}

// A wait that falls further behind the tracker than its log reaches checks
// every gate again.
func TestEvaluationBehindTheLogChecksEveryGate(t *testing.T) {
	var mu sync.Mutex
	counts := map[string]int{}
	gates := []Gate{countingGate{pod: "db-0", mu: &mu, n: counts}, countingGate{pod: "db-1", mu: &mu, n: counts}}
	ev := newEvaluation(gates)
	emit := func(Gate, Verdict, string) {}
	pods := map[string]*corev1.Pod{"db-0": newPod("db", 0, "u0", "r1"), "db-1": newPod("db", 1, "u1", "r1")}
	snap := Snapshot{Pods: pods, Seq: 10, logged: true, logFrom: 10}
	_, err := ev.update(context.Background(), snap, emit)
	require.NoError(t, err)
	// Seq 11 changed db-1: only its gate.
	snap = Snapshot{Pods: pods, Seq: 11, logged: true, logFrom: 10, log: []podChange{{11, "db-1"}}}
	_, err = ev.update(context.Background(), snap, emit)
	require.NoError(t, err)
	assert.Equal(t, map[string]int{"db-0": 1, "db-1": 2}, counts)
	// The log now starts after 20: what 12 to 20 changed is not known.
	snap = Snapshot{Pods: pods, Seq: 21, logged: true, logFrom: 20, log: []podChange{{21, "db-1"}}}
	_, err = ev.update(context.Background(), snap, emit)
	require.NoError(t, err)
	assert.Equal(t, map[string]int{"db-0": 2, "db-1": 3}, counts)
	// A snapshot from a source without a log: every gate.
	_, err = ev.update(context.Background(), Snapshot{Pods: pods, Seq: 22}, emit)
	require.NoError(t, err)
	assert.Equal(t, map[string]int{"db-0": 3, "db-1": 4}, counts)
}

// The tracker's log names the changed pods, and forgets the oldest once it
// is long.
func TestTrackerChangedPods(t *testing.T) {
	cs := newCluster(newSTS("db", 1, 1), newPod("db", 0, "u0", "r1"), newPod("db", 1, "u1", "r1"))
	tr := startTracker(t, cs)
	first := tr.Snapshot()
	names, ok := first.ChangedPods(first.Seq)
	require.True(t, ok)
	assert.Empty(t, names)
	_, ok = first.ChangedPods(first.Seq - 1)
	assert.False(t, ok, "the initial state is not a change")

	tr.upsertPod(newPod("db", 1, "u1", "r1", notReady))
	tr.deletePod(newPod("db", 0, "u0", "r1"))
	tr.upsertStatefulSet(newSTS("db", 2, 1))
	s := tr.Snapshot()
	names, ok = s.ChangedPods(first.Seq)
	require.True(t, ok)
	assert.Equal(t, []string{"db-1", "db-0"}, names)
	assert.Nil(t, first.Pod("db-0").DeletionTimestamp, "older snapshots keep their pods")
	assert.NotNil(t, first.Pod("db-0"))
	assert.Nil(t, s.Pod("db-0"))

	for range 2*maxPodLog + 1 {
		tr.upsertPod(newPod("db", 1, "u1", "r1"))
	}
	last := tr.Snapshot()
	_, ok = last.ChangedPods(s.Seq)
	assert.False(t, ok, "too far behind")
	names, ok = last.ChangedPods(last.Seq - 3)
	require.True(t, ok)
	assert.Equal(t, []string{"db-1", "db-1", "db-1"}, names)
}

func crashLooping(p *corev1.Pod) {
	notReady(p)
	p.Status.ContainerStatuses[0].State = corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff"}}
}
