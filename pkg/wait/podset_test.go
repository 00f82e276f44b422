package wait

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// runningTracker is a started Tracker fed by hand, without watches.
func runningTracker(t testing.TB, pods ...*corev1.Pod) *Tracker {
	tr := NewTracker(nil, testNS, "db")
	sts := newSTS("db", 2, 2)
	sel, err := labels.Parse("app=db")
	require.NoError(t, err)
	tr.selector, tr.uid, tr.sts, tr.owner = sel, sts.UID, sts, sts
	for _, p := range pods {
		tr.upsertPod(p)
	}
	tr.state = trackerRunning
	tr.logFrom = tr.seq + 1
	tr.publishLocked("")
	return tr
}

// The set gates give the verdicts of the gates of each pod, change after
// change, while they look only at the changed pods: pods turning unready
// again, restarting, failing, deleted, recreated, on another revision.
func TestPodSetsAgreeWithPodGates(t *testing.T) {
	const n = 6
	var pods []string
	var initial []*corev1.Pod
	for i := range n {
		pods = append(pods, PodName("db", i))
		initial = append(initial, newPod("db", i, fmt.Sprintf("u%d", i), "r2"))
	}
	tr := runningTracker(t, initial...)
	ready, failing := PodsReadyAtRevision(pods, "r2"), PodsNotFailing(pods, "r2")
	var readyEach, failingEach []Gate
	for _, p := range pods {
		readyEach = append(readyEach, PodReadyAtRevision(p, "r2"))
		failingEach = append(failingEach, PodNotFailing(p, "r2"))
	}
	changes := []func(i int) *corev1.Pod{
		func(i int) *corev1.Pod { return newPod("db", i, fmt.Sprintf("u%d", i), "r2") },
		func(i int) *corev1.Pod { return newPod("db", i, fmt.Sprintf("u%d", i), "r2", notReady) },
		func(i int) *corev1.Pod { return newPod("db", i, fmt.Sprintf("u%d", i), "r2", withRestarts(3)) },
		func(i int) *corev1.Pod { return newPod("db", i, fmt.Sprintf("u%d", i), "r2", crashLooping) },
		func(i int) *corev1.Pod { return newPod("db", i, fmt.Sprintf("u%d", i), "r1") },
		func(i int) *corev1.Pod { return newPod("db", i, fmt.Sprintf("new-u%d", i), "r2", notReady) },
		func(i int) *corev1.Pod {
			p := newPod("db", i, fmt.Sprintf("u%d", i), "r2")
			p.DeletionTimestamp = &metav1.Time{}
			return p
		},
		nil, // deleted
	}
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(1, 2))
	for step := range 400 {
		i, c := rng.IntN(n), changes[rng.IntN(len(changes))]
		if c == nil {
			tr.deletePod(newPod("db", i, "", "r2"))
		} else {
			tr.upsertPod(c(i))
		}
		// A wait may skip snapshots: check after one change or several.
		if rng.IntN(3) == 0 {
			continue
		}
		s := tr.Snapshot()
		for _, tc := range []struct {
			set  Gate
			each []Gate
		}{{ready, readyEach}, {failing, failingEach}} {
			v, reason, err := tc.set.Check(ctx, s)
			require.NoError(t, err)
			want, wantReason, wantObject := Pass, "", ""
			for _, g := range tc.each {
				gv, gr, _ := g.Check(ctx, s)
				if gv != Pass {
					want, wantReason, wantObject = gv, gr, gateObject(g)
					break
				}
			}
			require.Equal(t, want, v, "change %d: %s", step, tc.set.Name())
			if want != Pass {
				assert.Equal(t, wantReason, reason, "change %d", step)
				assert.Equal(t, wantObject, gateObject(tc.set), "change %d", step)
			}
		}
	}
}

func TestPodSetNames(t *testing.T) {
	ctx := context.Background()
	tr := runningTracker(t, newPod("db", 0, "u0", "r2"), newPod("db", 1, "u1", "r2", notReady))
	g := PodsReadyAtRevision([]string{"db-1", "db-0"}, "r2")
	v, reason, err := g.Check(ctx, tr.Snapshot())
	require.NoError(t, err)
	assert.Equal(t, NotYet, v)
	assert.Equal(t, "pod db-1 to be Ready at revision r2", g.Name())
	assert.Equal(t, "pod is Running, not Ready (containers not ready: postgres)", reason)
	tr.upsertPod(newPod("db", 1, "u1", "r2"))
	v, reason, _ = g.Check(ctx, tr.Snapshot())
	assert.Equal(t, Pass, v)
	assert.Equal(t, "all 2 pods are Ready at revision r2", reason)
	assert.Equal(t, "pods db-1, db-0 to be Ready at revision r2", g.Name())

	one := PodsReadyAtRevision([]string{"db-0"}, "r2")
	v, reason, _ = one.Check(ctx, tr.Snapshot())
	assert.Equal(t, Pass, v)
	assert.Equal(t, "pod is Ready at revision r2", reason)
	assert.Equal(t, "pods db-5, db-4, db-3 and 3 more", describePodSet([]string{"db-5", "db-4", "db-3", "db-2", "db-1", "db-0"}))
}
