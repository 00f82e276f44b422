package status

import (
	"sort"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/kubectl-sts/kubectl-sts/pkg/kube"
	"github.com/kubectl-sts/kubectl-sts/pkg/wait"
)

// RevisionFromPods is StatefulSetInfo.CurrentRevisionSource when the
// current revision was read from the pods, not from the StatefulSet's
// status.
const RevisionFromPods = "pods"

// currentRevisionFromPods corrects info's current revision where the
// server's status.currentRevision cannot be trusted: for the OnDelete
// strategy before Kubernetes 1.37 the controller never moves it forward,
// so after every pod was replaced it still names the revision the set was
// created with. The pods say what runs: the revision of the pods not yet
// on the update revision (the most common one if they differ), or the
// update revision once every desired pod is on it and Ready, which is
// when 1.37 moves it forward too.
func currentRevisionFromPods(info *StatefulSetInfo, owned []*corev1.Pod, server kube.Server) {
	if info.UpdateStrategy != string(appsv1.OnDeleteStatefulSetStrategyType) || server.OnDeleteCurrentRevisionReliable() {
		return
	}
	counts := map[string]int32{}
	var live, updatedReady int32
	for _, p := range owned {
		rev := wait.PodRevision(p)
		if p.DeletionTimestamp != nil || rev == "" {
			continue
		}
		live++
		if rev == info.UpdateRevision {
			if wait.IsPodReady(p) {
				updatedReady++
			}
			continue
		}
		counts[rev]++
	}
	if live == 0 {
		return
	}
	var current string
	var n int32
	switch {
	case len(counts) == 0:
		if live != info.Replicas.Desired || updatedReady != live {
			return
		}
		current, n = info.UpdateRevision, live
	default:
		revs := make([]string, 0, len(counts))
		for r := range counts {
			revs = append(revs, r)
		}
		sort.Slice(revs, func(i, k int) bool {
			a, b := revs[i], revs[k]
			if counts[a] != counts[b] {
				return counts[a] > counts[b]
			}
			if (a == info.CurrentRevision) != (b == info.CurrentRevision) {
				return a == info.CurrentRevision
			}
			return a < b
		})
		current, n = revs[0], counts[revs[0]]
	}
	if current == info.CurrentRevision {
		return
	}
	info.CurrentRevision = current
	info.Replicas.Current = n
	info.CurrentRevisionSource = RevisionFromPods
}
