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

	// log lists, for the sequence numbers after logFrom up to Seq, the pods
	// each one changed; logged is set when the source keeps such a log (a
	// Tracker does).
	log     []podChange
	logFrom uint64
	logged  bool
}

// podChange records that the change with sequence number seq concerned the
// pod name.
type podChange struct {
	seq  uint64
	name string
}

// ChangedPods returns the names of the pods added, changed or removed after
// the snapshot with sequence number since, up to this one (a name may
// appear more than once). ok is false when that is not known: the snapshot
// does not come from a Tracker, or since is older than the Tracker
// remembers. Gates that keep state per pod use it to look at the changed
// pods only.
func (s Snapshot) ChangedPods(since uint64) (names []string, ok bool) {
	changes, ok := s.podChangesSince(since)
	if !ok {
		return nil, false
	}
	names = make([]string, len(changes))
	for i, c := range changes {
		names[i] = c.name
	}
	return names, true
}

// podChangesSince is ChangedPods without copying.
func (s Snapshot) podChangesSince(since uint64) ([]podChange, bool) {
	switch {
	case since == s.Seq:
		return nil, true
	case !s.logged || since > s.Seq || since < s.logFrom:
		return nil, false
	}
	// The log is ordered by seq: find the first entry after since.
	i := sort.Search(len(s.log), func(i int) bool { return s.log[i].seq > since })
	return s.log[i:], true
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
