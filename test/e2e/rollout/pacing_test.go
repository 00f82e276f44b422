package rollout

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	cmdutil "github.com/kubectl-sts/kubectl-sts/pkg/cmd/util"
	"github.com/kubectl-sts/kubectl-sts/pkg/progress"
	"github.com/kubectl-sts/kubectl-sts/pkg/rollout"
	"github.com/kubectl-sts/kubectl-sts/pkg/wait"
	"github.com/kubectl-sts/kubectl-sts/test/e2e/e2eutil"
)

// aheadCheck looks at the cluster each time the rollout reports that it
// moved the partition one step ahead: the step's pod must not be Ready on
// the new revision yet (the partition went out before it), and the next
// pod must still be the old one (the controller holds it).
type aheadCheck struct {
	mu         sync.Mutex
	ns, to     string
	replicas   int
	seen       []int // steps
	partitions []int32
	problems   []string
}

func (a *aheadCheck) onEvent(t *testing.T) func(progress.Event) {
	return func(e progress.Event) {
		if e.Kind != "partition-ahead" {
			return
		}
		ctx := context.Background()
		sts, err := cluster.Client.AppsV1().StatefulSets(a.ns).Get(ctx, "db", metav1.GetOptions{})
		require.NoError(t, err)
		cur := fmt.Sprintf("db-%d", a.replicas-e.Step)
		next := fmt.Sprintf("db-%d", a.replicas-e.Step-1)
		a.mu.Lock()
		defer a.mu.Unlock()
		a.seen = append(a.seen, e.Step)
		a.partitions = append(a.partitions, *sts.Spec.UpdateStrategy.RollingUpdate.Partition)
		p, err := cluster.Client.CoreV1().Pods(a.ns).Get(ctx, cur, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
		case err != nil:
			a.problems = append(a.problems, err.Error())
		case p.DeletionTimestamp == nil && wait.PodRevision(p) == a.to && ready(p):
			a.problems = append(a.problems, fmt.Sprintf("step %d: %s was already Ready on the new revision when the partition went ahead", e.Step, cur))
		}
		n, err := cluster.Client.CoreV1().Pods(a.ns).Get(ctx, next, metav1.GetOptions{})
		switch {
		case err != nil:
			a.problems = append(a.problems, fmt.Sprintf("step %d: %s: %v", e.Step, next, err))
		case n.DeletionTimestamp != nil || wait.PodRevision(n) == a.to:
			a.problems = append(a.problems, fmt.Sprintf("step %d: %s was replaced before %s was Ready", e.Step, next, cur))
		}
	}
}

// With no gate but the controller's own, each step's pod replaced before
// its successor and every pod exactly once: the partition of the next
// step goes out while the step's pod is still starting (Ready 2s after it
// runs), and the real StatefulSet controller holds the next pod until it
// is Ready.
func TestControllerPacedRolloutReplacesEachPodOnce(t *testing.T) {
	ns := cluster.NewNamespace(t)
	s := newStatefulSet(ns, "db", 4)
	s.Spec.Template.Annotations = map[string]string{"testbed.kubectl-sts.io/ready-delay": "2s"}
	create(t, s)
	pending := applyPending(t, ns, "db", imageV2, 4)
	to := pending.Status.UpdateRevision
	created := watchCreations(t, ns, "db")

	dry := run(t, ns, "rollout", "db", "--staged", "--dry-run=client")
	require.Equal(t, cmdutil.ExitOK, dry.Code, dry.ErrOut)
	assert.Contains(t, dry.Out, "pacing:     steps are controller-paced")
	dry = run(t, ns, "rollout", "db", "--staged", "--dry-run=client", "-o", "json")
	require.Equal(t, cmdutil.ExitOK, dry.Code, dry.ErrOut)
	assert.Contains(t, dry.Out, `"controllerPaced": true`)

	a := &aheadCheck{ns: ns, to: to, replicas: 4}
	res := e2eutil.RunWatching(t, e2eutil.Client(cluster, ns), generous, a.onEvent(t), "rollout", "db", "--staged", "--yes", "-o", "json")
	require.Equal(t, cmdutil.ExitOK, res.Code, res.ErrOut)

	assert.Equal(t, []string{"db-3 " + to, "db-2 " + to, "db-1 " + to, "db-0 " + to}, created.list(), "each pod replaced once, highest first")
	a.mu.Lock()
	assert.Equal(t, []int{1, 2, 3}, a.seen, "the partition went ahead during steps 1 to 3")
	assert.Equal(t, []int32{2, 1, 0}, a.partitions)
	assert.Empty(t, a.problems)
	a.mu.Unlock()
	for n, p := range e2eutil.Pods(t, cluster.Client, ns, "app=db") {
		assert.Equal(t, to, p.Labels[appsv1.StatefulSetRevisionLabel], n)
		assert.True(t, ready(p), n)
	}
	rec, st := record(t, ns, "db")
	assert.Equal(t, "Succeeded", string(rec.Phase))
	for i, s := range st.Steps {
		assert.Len(t, s.UIDs, 1, "step %d recorded", i+1)
	}
	reasons := eventReasons(t, ns, "db")
	assert.Equal(t, 4, count(reasons, rollout.ReasonStepPassed), "kubectl describe shows each step: %v", reasons)
	assert.Equal(t, 4, strings.Count(res.Out, `"kind":"step-passed"`))
}

// A pod that never becomes Ready stops a controller-paced rollout with
// only that pod replaced, though the partition already went one step
// ahead: the real controller does not replace the next pod while an
// updated one is not Ready. The rollback then restores exactly what it
// restores with the partition held.
func TestControllerPacedRolloutStopsAtAPodThatNeverBecomesReady(t *testing.T) {
	ns := cluster.NewNamespace(t)
	before := create(t, newStatefulSet(ns, "db", 3))
	from := before.Status.CurrentRevision
	oldUIDs := e2eutil.PodUIDs(t, cluster.Client, ns, "app=db")
	created := watchCreations(t, ns, "db")

	a := &aheadCheck{ns: ns, replicas: 3}
	onEvent := a.onEvent(t)
	res := e2eutil.RunWatching(t, e2eutil.Client(cluster, ns), generous, func(e progress.Event) {
		if e.Kind == "revision" {
			a.mu.Lock()
			a.to = e2eutil.StatefulSet(t, cluster, ns, "db").Status.UpdateRevision
			a.mu.Unlock()
		}
		onEvent(e)
	}, "rollout", "db", "--staged", "--image", "app="+imageBroken, "--step-timeout", "8s", "--yes", "-o", "json")
	require.Equal(t, cmdutil.ExitRolledBack, res.Code, res.ErrOut)

	a.mu.Lock()
	assert.Equal(t, []int{1}, a.seen, "the partition went ahead for step 2 once db-2 was replaced")
	assert.Equal(t, []int32{1}, a.partitions)
	assert.Empty(t, a.problems)
	broken := a.to
	a.mu.Unlock()
	require.NotEmpty(t, broken)
	// db-2 onto the broken revision, then back; nothing else moved.
	assert.Equal(t, []string{"db-2 " + broken, "db-2 " + from}, created.list())
	p := e2eutil.Pods(t, cluster.Client, ns, "app=db")
	assert.Equal(t, oldUIDs["db-1"], p["db-1"].UID, "db-1 was held by the controller")
	assert.Equal(t, oldUIDs["db-0"], p["db-0"].UID)
	for n, pod := range p {
		assert.Equal(t, from, pod.Labels[appsv1.StatefulSetRevisionLabel], n)
		assert.True(t, ready(pod), n)
		assert.Equal(t, imageV1, pod.Spec.Containers[0].Image, n)
	}
	sts := e2eutil.StatefulSet(t, cluster, ns, "db")
	assert.Equal(t, imageV1, sts.Spec.Template.Spec.Containers[0].Image, "the old template is back")
	assert.Equal(t, from, sts.Status.CurrentRevision)
	assert.Equal(t, int32(0), *sts.Spec.UpdateStrategy.RollingUpdate.Partition)
	rec, st := record(t, ns, "db")
	assert.Equal(t, "RolledBack", string(rec.Phase))
	require.NotNil(t, st.Rollback)
	assert.Equal(t, 1, st.Rollback.FailedStep)
	assert.Equal(t, []string{"db-2"}, st.Rollback.Deleted)
}
