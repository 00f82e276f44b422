package scaledown

import (
	"sort"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/kubectl-sts/kubectl-sts/pkg/wait"
)

// OrdinalsStart returns spec.ordinals.start (0 when unset).
func OrdinalsStart(sts *appsv1.StatefulSet) int {
	if sts.Spec.Ordinals == nil {
		return 0
	}
	return int(sts.Spec.Ordinals.Start)
}

// Replicas returns spec.replicas with the API default of 1.
func Replicas(sts *appsv1.StatefulSet) int32 {
	if sts.Spec.Replicas == nil {
		return 1
	}
	return *sts.Spec.Replicas
}

// RemovedOrdinals returns the ordinals a scale-down of sts from `from` to
// `to` replicas removes, highest first: the order the StatefulSet
// controller removes them in.
func RemovedOrdinals(sts *appsv1.StatefulSet, from, to int32) []int {
	start := OrdinalsStart(sts)
	var out []int
	for i := int(from) - 1; i >= int(to); i-- {
		out = append(out, start+i)
	}
	return out
}

// Claim is a PersistentVolumeClaim created from one of a StatefulSet's
// volumeClaimTemplates for one ordinal.
type Claim struct {
	PVC      *corev1.PersistentVolumeClaim
	Template string
	Ordinal  int
}

// OwnedClaim reports whether pvc is one of sts's claims, and for which
// template and ordinal: the one rule, wait.OwnsClaim (by name, as the
// StatefulSet controller finds them).
func OwnedClaim(sts *appsv1.StatefulSet, pvc *corev1.PersistentVolumeClaim) (Claim, bool) {
	t, n, ok := wait.OwnsClaim(sts, pvc)
	if !ok {
		return Claim{}, false
	}
	return Claim{PVC: pvc, Template: t, Ordinal: n}, true
}

// ClaimsByOrdinal returns sts's claims among pvcs, grouped by ordinal and
// sorted by template order within an ordinal.
func ClaimsByOrdinal(sts *appsv1.StatefulSet, pvcs []*corev1.PersistentVolumeClaim) map[int][]Claim {
	order := map[string]int{}
	for i, t := range sts.Spec.VolumeClaimTemplates {
		order[t.Name] = i
	}
	out := map[int][]Claim{}
	for _, p := range pvcs {
		if c, ok := OwnedClaim(sts, p); ok {
			out[c.Ordinal] = append(out[c.Ordinal], c)
		}
	}
	for _, cs := range out {
		sort.Slice(cs, func(i, j int) bool { return order[cs[i].Template] < order[cs[j].Template] })
	}
	return out
}

// OwnedPod reports whether pod is a pod of sts, and its ordinal (the one
// rule, wait.OwnsPod).
func OwnedPod(sts *appsv1.StatefulSet, pod *corev1.Pod) (int, bool) {
	return wait.OwnsPod(sts, pod)
}

// PodsByOrdinal returns sts's pods among pods, keyed by ordinal.
func PodsByOrdinal(sts *appsv1.StatefulSet, pods []*corev1.Pod) map[int]*corev1.Pod {
	out := map[int]*corev1.Pod{}
	for _, p := range wait.FilterPods(sts, pods) {
		n, _ := wait.PodOrdinal(sts.Name, p.Name)
		out[n] = p
	}
	return out
}

// LeftoverOrdinals returns the ordinals at or above the end of sts's
// desired range that have claims but no pod: what earlier scale-downs left
// behind. Ordinals whose pod still exists are excluded (a scale-down is
// still removing them); so are ordinals below spec.ordinals.start, which
// no scale-down leaves. Highest first.
func LeftoverOrdinals(sts *appsv1.StatefulSet, claims map[int][]Claim, pods map[int]*corev1.Pod) []int {
	end := OrdinalsStart(sts) + int(Replicas(sts))
	var out []int
	for n := range claims {
		if n >= end && pods[n] == nil {
			out = append(out, n)
		}
	}
	sort.Sort(sort.Reverse(sort.IntSlice(out)))
	return out
}

// podUsingClaim returns the name of a pod among pods that mounts the claim
// named claim, or "".
func podUsingClaim(pods []corev1.Pod, claim string) string {
	for i := range pods {
		for _, v := range pods[i].Spec.Volumes {
			if v.PersistentVolumeClaim != nil && v.PersistentVolumeClaim.ClaimName == claim {
				return pods[i].Name
			}
			// Generic ephemeral volumes name their claim "<pod>-<volume>".
			if v.Ephemeral != nil && pods[i].Name+"-"+v.Name == claim {
				return pods[i].Name
			}
		}
	}
	return ""
}
