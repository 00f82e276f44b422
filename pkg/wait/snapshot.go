package wait

import (
	"sort"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// Snapshot is an immutable view of a StatefulSet and its pods at one point in
// time. The objects are shared with the watch cache and with other snapshots:
// treat them, and the maps, as read-only.
type Snapshot struct {
	// StatefulSet is the tracked StatefulSet, or nil once it has been
	// deleted. A StatefulSet recreated under the same name is a different
	// object (different UID) and is not reported here.
	StatefulSet *appsv1.StatefulSet
	// Pods holds the StatefulSet's pods (matching its selector and named
	// "<statefulset>-<ordinal>"), keyed by pod name.
	Pods map[string]*corev1.Pod
	// PVCs holds PersistentVolumeClaims keyed by name: the StatefulSet's
	// claims (see OwnsClaim) when the Tracker was created with WithPVCs,
	// the one claim of a WaitPVC, and nil otherwise.
	PVCs map[string]*corev1.PersistentVolumeClaim
	// Object is the one object of a WaitObject (nil while it does not
	// exist), and nil otherwise.
	Object runtime.Object
	// Seq increases with every change; two snapshots from the same source
	// with the same Seq are identical.
	Seq uint64

	// recreated is set when an object with the tracked StatefulSet's name but
	// a different UID exists.
	recreated bool
}

// Pod returns the pod with the given name, or nil.
func (s Snapshot) Pod(name string) *corev1.Pod {
	return s.Pods[name]
}

// PVC returns the PersistentVolumeClaim with the given name, or nil.
func (s Snapshot) PVC(name string) *corev1.PersistentVolumeClaim {
	return s.PVCs[name]
}

// OrderedPods returns the pods sorted by ordinal (pods whose ordinal cannot
// be determined sort last, by name).
func (s Snapshot) OrderedPods() []*corev1.Pod {
	pods := make([]*corev1.Pod, 0, len(s.Pods))
	for _, p := range s.Pods {
		pods = append(pods, p)
	}
	stsName := ""
	if s.StatefulSet != nil {
		stsName = s.StatefulSet.Name
	}
	sort.Slice(pods, func(i, j int) bool {
		oi, okI := PodOrdinal(stsName, pods[i].Name)
		oj, okJ := PodOrdinal(stsName, pods[j].Name)
		switch {
		case okI && okJ:
			return oi < oj
		case okI != okJ:
			return okI
		default:
			return pods[i].Name < pods[j].Name
		}
	})
	return pods
}
