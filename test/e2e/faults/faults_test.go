// Package faults runs every workflow through a proxy that makes the API
// server fail the way a loaded or restarting one does (500, 503, 429 with
// Retry-After, connection resets, writes whose answer is lost after they
// applied, watch streams cut), on a seeded schedule, and asserts that each
// finishes in one run with exactly the end state of a clean run.
//
// KUBECTL_STS_FAULT_SEED replays a schedule; the seed of every run is logged.
package faults

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/kubectl-sts/kubectl-sts/pkg/journal"
	"github.com/kubectl-sts/kubectl-sts/test/e2e/e2eutil"
	"github.com/kubectl-sts/kubectl-sts/test/testbed"
)

var cluster *testbed.Cluster

func TestMain(m *testing.M) {
	os.Exit(testbed.Main(m, testbed.Options{Name: "e2e-faults"}, &cluster))
}

// generous bounds every wait of a test; a passing run stays far below.
const generous = 4 * time.Minute

// rate is the share of requests that fail.
const rate = 0.10

var poll = e2eutil.Poll{Timeout: generous}

// schedules is how many fault schedules each workflow runs through.
const schedules = 3

// seed is the schedule's seed: KUBECTL_STS_FAULT_SEED, else one per test.
func seed(t *testing.T, def uint64) uint64 {
	if s := os.Getenv("KUBECTL_STS_FAULT_SEED"); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		require.NoError(t, err, "KUBECTL_STS_FAULT_SEED")
		def = n
	}
	t.Logf("fault schedule seed %d (replay with KUBECTL_STS_FAULT_SEED=%d)", def, def)
	return def
}

// eachSchedule runs body once per fault schedule, each in a subtest with
// a proxy of its own.
func eachSchedule(t *testing.T, first uint64, body func(t *testing.T, p *testbed.FaultProxy)) {
	n := schedules
	if os.Getenv("KUBECTL_STS_FAULT_SEED") != "" {
		n = 1
	}
	for i := range n {
		t.Run(fmt.Sprintf("schedule %d", i+1), func(t *testing.T) {
			p := cluster.StartFaultProxy(t, seed(t, first+uint64(i)), rate)
			body(t, p)
			total, faults := p.Counts()
			assert.Positive(t, total)
			assert.NotEmpty(t, faults, "the schedule injected faults")
		})
	}
}

// through runs `kubectl sts args...` in-process in ns, through the proxy.
func through(t *testing.T, p *testbed.FaultProxy, ns string, args ...string) e2eutil.Result {
	t.Helper()
	res := e2eutil.Run(t, e2eutil.ClientFor(t, ns, p.Config()), generous, args...)
	t.Logf("through the fault proxy: %s", p.Summary())
	return res
}

func create(t *testing.T, sts *appsv1.StatefulSet) {
	t.Helper()
	_, err := cluster.Client.AppsV1().StatefulSets(sts.Namespace).Create(context.Background(), sts, metav1.CreateOptions{})
	require.NoError(t, err)
	poll.WaitSettled(t, cluster.Client, sts.Namespace, sts.Name)
}

// assertOneHolder checks the record finished with phase and was held by
// one run from start to end: nobody resumed or took it over.
func assertOneHolder(t *testing.T, ns, name string, phase journal.Phase) {
	t.Helper()
	rec, err := journal.New(cluster.Client, ns, name, "reader").Load(context.Background())
	require.NoError(t, err)
	require.NotNil(t, rec)
	assert.Equal(t, phase, rec.Phase)
	var starts, others []string
	for _, e := range rec.History {
		switch {
		case strings.HasPrefix(e.Message, "started by "):
			starts = append(starts, e.Message)
		case strings.HasPrefix(e.Message, "resumed by "), strings.HasPrefix(e.Message, "taken over by "):
			others = append(others, e.Message)
		}
	}
	assert.Len(t, starts, 1, "history: %+v", rec.History)
	assert.Empty(t, others, "one run held the record throughout")
}

func TestRolloutFinishesInOneRunThroughFaults(t *testing.T) {
	eachSchedule(t, 1201, rolloutThroughFaults)
}

func rolloutThroughFaults(t *testing.T, p *testbed.FaultProxy) {
	ns := cluster.NewNamespace(t)
	create(t, e2eutil.NewStatefulSet(ns, "db", 3, "registry.example/app:v1"))

	r := through(t, p, ns, "rollout", "db", "--staged", "--image", "app=registry.example/app:v2", "--engine", "none", "--yes")
	require.Equal(t, 0, r.Code, r.ErrOut)

	sts := settledAt(t, ns, "db", 3)
	list, err := cluster.Client.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{})
	require.NoError(t, err)
	require.Len(t, list.Items, 3)
	for _, pod := range list.Items {
		assert.Equal(t, sts.Status.UpdateRevision, pod.Labels[appsv1.ControllerRevisionHashLabelKey], "pod %s", pod.Name)
		assert.Equal(t, "registry.example/app:v2", pod.Spec.Containers[0].Image, "pod %s", pod.Name)
	}
	assertOneHolder(t, ns, "db", journal.Succeeded)
}

func TestScaleDownFinishesInOneRunThroughFaults(t *testing.T) {
	eachSchedule(t, 1211, scaleDownThroughFaults)
}

func scaleDownThroughFaults(t *testing.T, p *testbed.FaultProxy) {
	ns := cluster.NewNamespace(t)
	create(t, e2eutil.NewStatefulSet(ns, "db", 5, "registry.example/app:v1", "data"))
	pods, pvcs := e2eutil.PodUIDs(t, cluster.Client, ns, ""), e2eutil.Claims(t, cluster.Client, ns)

	r := through(t, p, ns, "scale-down", "db", "--replicas", "3", "--pvc", "delete", "--engine", "none", "--yes")
	require.Equal(t, 0, r.Code, r.ErrOut)

	settledAt(t, ns, "db", 3)
	after := e2eutil.PodUIDs(t, cluster.Client, ns, "")
	assert.Len(t, after, 3)
	for _, name := range []string{"db-0", "db-1", "db-2"} {
		assert.Equal(t, pods[name], after[name], "pod %s stays as it was", name)
	}
	poll.Until(t, "removed claims gone", func(context.Context) (bool, error) {
		return len(e2eutil.Claims(t, cluster.Client, ns)) == 3, nil
	})
	left := e2eutil.Claims(t, cluster.Client, ns)
	for _, name := range []string{"data-db-0", "data-db-1", "data-db-2"} {
		require.Contains(t, left, name)
		assert.Equal(t, pvcs[name].UID, left[name].UID, "pvc %s kept", name)
	}
	assertOneHolder(t, ns, "db", journal.Succeeded)
}

func TestExpandPVCFinishesInOneRunThroughFaults(t *testing.T) {
	eachSchedule(t, 1221, expandThroughFaults)
}

func expandThroughFaults(t *testing.T, p *testbed.FaultProxy) {
	ns := cluster.NewNamespace(t)
	sts := e2eutil.NewStatefulSet(ns, "db", 2, "registry.example/app:v1", "data")
	sts.Spec.VolumeClaimTemplates[0].Spec.StorageClassName = ptr.To("testbed-online")
	create(t, sts)
	pods, pvcs := e2eutil.PodUIDs(t, cluster.Client, ns, ""), e2eutil.Claims(t, cluster.Client, ns)

	r := through(t, p, ns, "expand-pvc", "db", "--size", "2Gi", "--engine", "none", "--yes")
	require.Equal(t, 0, r.Code, r.ErrOut)

	left := e2eutil.Claims(t, cluster.Client, ns)
	require.Len(t, left, 2)
	for name, c := range left {
		assert.Equal(t, pvcs[name].UID, c.UID, "pvc %s is the same claim", name)
		assert.Equal(t, "2Gi", c.Spec.Resources.Requests.Storage().String(), "pvc %s request", name)
		assert.Equal(t, "2Gi", c.Status.Capacity.Storage().String(), "pvc %s capacity", name)
	}
	settledAt(t, ns, "db", 2)
	assert.Equal(t, pods, e2eutil.PodUIDs(t, cluster.Client, ns, ""), "an online resize restarts no pod")
	assertOneHolder(t, ns, "db", journal.Succeeded)
}

// The lost-response case: a write of the operation record applies but its
// answer never arrives. The run must recognise the write as its own, keep
// its lease, and a second run started more than a lease duration later is
// still refused while the first one works.
func TestLostRecordWriteKeepsTheLeaseAndRefusesASecondRun(t *testing.T) {
	p := cluster.StartFaultProxy(t, seed(t, 1204), 0)
	var lost atomic.Int64
	p.LoseWrites(func(r *http.Request) bool {
		if r.Method != http.MethodPut || !strings.HasSuffix(r.URL.Path, "/configmaps/"+journal.ConfigMapName("db")) {
			return false
		}
		if lost.Load() == 0 {
			lost.Store(time.Now().UnixNano())
			return true
		}
		return false
	})
	ns := cluster.NewNamespace(t)
	create(t, e2eutil.NewStatefulSet(ns, "db", 3, "registry.example/app:v1"))

	done := make(chan e2eutil.Result, 1)
	go func() {
		done <- e2eutil.Run(t, e2eutil.ClientFor(t, ns, p.Config()), generous,
			"rollout", "db", "--staged", "--image", "app=registry.example/app:v2", "--engine", "none", "--soak", "15s", "--yes")
	}()
	poll.Until(t, "a record write answered by nothing", func(context.Context) (bool, error) { return lost.Load() != 0, nil })
	// Past the lease: had the first run lost it, the second would take over.
	time.Sleep(time.Until(time.Unix(0, lost.Load()).Add(journal.DefaultLeaseDuration + 3*time.Second)))
	select {
	case r := <-done:
		t.Fatalf("the rollout ended before the second run could be tried (exit %d); make it longer", r.Code)
	default:
	}
	second := e2eutil.Run(t, e2eutil.Client(cluster, ns), time.Minute, "rollout", "resume", "db", "--yes")
	assert.Equal(t, 1, second.Code, "the second run is refused")
	assert.Contains(t, second.ErrOut, "is held by")
	assert.Contains(t, second.ErrOut, "its lease expires at")

	first := <-done
	require.Equal(t, 0, first.Code, first.ErrOut)
	assert.NotContains(t, first.ErrOut, "changed by another process")
	settledAt(t, ns, "db", 3)
	assertOneHolder(t, ns, "db", journal.Succeeded)
	_, faults := p.Counts()
	assert.Equal(t, 1, faults[testbed.FaultLost])
}

// An API server gone for longer than the lease: the run stops before its
// lease could lapse, changing nothing more, and the same command continues
// the rollout once the server is back and the lease has expired.
func TestOutageLongerThanTheLeaseStopsCleanlyAndResumes(t *testing.T) {
	p := cluster.StartFaultProxy(t, seed(t, 1231), 0)
	ns := cluster.NewNamespace(t)
	create(t, e2eutil.NewStatefulSet(ns, "db", 3, "registry.example/app:v1"))
	args := []string{"rollout", "db", "--staged", "--image", "app=registry.example/app:v2", "--engine", "none", "--soak", "20s", "--yes"}

	done := make(chan e2eutil.Result, 1)
	go func() { done <- e2eutil.Run(t, e2eutil.ClientFor(t, ns, p.Config()), generous, args...) }()
	poll.Until(t, "the first step under way", func(ctx context.Context) (bool, error) {
		rec, err := journal.New(cluster.Client, ns, "db", "reader").Load(ctx)
		return err == nil && rec != nil && strings.Contains(rec.History[len(rec.History)-1].Message, "step 1 of"), nil
	})
	p.SetDown(true)
	outage := time.Now()
	// The fence stops the run's actions at most 20s after its last renewal;
	// its attempt to give the lease back then waits up to 10s more.
	const down = 45 * time.Second
	var first e2eutil.Result
	select {
	case first = <-done:
	case <-time.After(down):
		t.Fatalf("the run went on for %s without reaching the API server", down)
	}
	stopped := time.Since(outage)
	p.SetDown(false)
	t.Logf("the run stopped %s into the outage", stopped.Round(time.Second))
	assert.Equal(t, 1, first.Code)
	assert.Contains(t, first.ErrOut, "could not be renewed in time")

	rec, err := journal.New(cluster.Client, ns, "db", "reader").Load(context.Background())
	require.NoError(t, err)
	assert.Equal(t, journal.Running, rec.Phase)
	// The lease could not be given back while the server was away: wait
	// for it to expire, as the refusal says.
	time.Sleep(time.Until(rec.Heartbeat.Add(journal.DefaultLeaseDuration + time.Second)))
	again := through(t, p, ns, args...)
	require.Equal(t, 0, again.Code, again.ErrOut)
	sts := settledAt(t, ns, "db", 3)
	list, err := cluster.Client.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{})
	require.NoError(t, err)
	for _, pod := range list.Items {
		assert.Equal(t, sts.Status.UpdateRevision, pod.Labels[appsv1.ControllerRevisionHashLabelKey], "pod %s", pod.Name)
	}
	rec, err = journal.New(cluster.Client, ns, "db", "reader").Load(context.Background())
	require.NoError(t, err)
	assert.Equal(t, journal.Succeeded, rec.Phase)
}

// settledAt waits until StatefulSet ns/name is settled at n replicas.
func settledAt(t *testing.T, ns, name string, n int32) *appsv1.StatefulSet {
	t.Helper()
	sts := poll.WaitSettled(t, cluster.Client, ns, name)
	require.Equal(t, n, *sts.Spec.Replicas, "replicas of statefulset %s", name)
	return sts
}
