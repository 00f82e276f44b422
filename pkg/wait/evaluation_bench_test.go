package wait

import (
	"context"
	"fmt"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// stepGates are the gates of the last step of a staged rollout of n pods,
// one pod per step, as the rollout waits: the StatefulSet observed, and
// every updated pod Ready at the new revision and not failing.
func stepGates(n int) []Gate {
	gates := []Gate{StatefulSetObserved("db", 2)}
	for i := range n {
		gates = append(gates, PodReadyAtRevision(PodName("db", i), "rev-2"), PodNotFailing(PodName("db", i), "rev-2"))
	}
	return flatten(gates)
}

// BenchmarkStepGatesPerEvent is the gate work of one watch event in the last
// step of a staged rollout of n pods: the step's pod turns unready or Ready
// again, and the wait checks the gates against the new snapshot. Time and
// allocations per event do not grow with n.
func BenchmarkStepGatesPerEvent(b *testing.B) {
	for _, n := range []int{200, 1000} {
		b.Run(fmt.Sprintf("pods=%d", n), func(b *testing.B) {
			ready, unready := map[string]*corev1.Pod{}, map[string]*corev1.Pod{}
			for i := range n {
				p := newPod("db", i, fmt.Sprintf("uid-%d", i), "rev-2")
				ready[p.Name], unready[p.Name] = p, p
			}
			unready["db-0"] = newPod("db", 0, "uid-0", "rev-2", notReady)
			sts := newSTS("db", 2, 2)
			ev := newEvaluation(stepGates(n))
			ctx := context.Background()
			emit := func(Gate, Verdict, string) {}
			snap := Snapshot{StatefulSet: sts, Pods: ready, Seq: 1, logged: true, logFrom: 1}
			if _, err := ev.update(ctx, snap, emit); err != nil || ev.pending != 0 {
				b.Fatalf("first round: %v, %d pending", err, ev.pending)
			}
			log := []podChange{{}}
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				seq := uint64(i) + 2
				log[0] = podChange{seq: seq, name: "db-0"}
				snap := Snapshot{StatefulSet: sts, Pods: ready, Seq: seq, log: log, logFrom: seq - 1, logged: true}
				if i%2 == 0 {
					snap.Pods = unready
				}
				if i, err := ev.update(ctx, snap, emit); err != nil || i >= 0 {
					b.Fatalf("gate %d: %v", i, err)
				}
				if want := i%2 == 0; (ev.pending > 0) != want {
					b.Fatalf("event %d: %d gates pending", i, ev.pending)
				}
			}
		})
	}
}

// BenchmarkTrackerPodEvent is the tracker's work for one changed pod of a
// StatefulSet of n pods, read by one wait: it copies the pod map (an
// immutable Snapshot.Pods for every reader), the one part of an event that
// grows with n.
func BenchmarkTrackerPodEvent(b *testing.B) {
	for _, n := range []int{200, 1000} {
		b.Run(fmt.Sprintf("pods=%d", n), func(b *testing.B) {
			tr := NewTracker(nil, testNS, "db")
			sts := newSTS("db", 2, 2)
			sel, err := labels.Parse("app=db")
			if err != nil {
				b.Fatal(err)
			}
			tr.selector, tr.uid, tr.sts, tr.owner = sel, sts.UID, sts, sts
			for i := range n {
				tr.upsertPod(newPod("db", i, fmt.Sprintf("uid-%d", i), "rev-2"))
			}
			tr.state = trackerRunning
			tr.publishLocked("")
			pods := []*corev1.Pod{newPod("db", 0, "uid-0", "rev-2", notReady), newPod("db", 0, "uid-0", "rev-2")}
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				tr.upsertPod(pods[i%2])
				if s := tr.Snapshot(); s.Pod("db-0") != pods[i%2] {
					b.Fatal("snapshot misses the change")
				}
			}
		})
	}
}
