package wait

import (
	"context"
	"fmt"
	"slices"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// Drift is a change to a StatefulSet that a workflow did not make.
type Drift struct {
	// What lists the changed parts, e.g. "the pod template", "replicas 3 → 4".
	What []string
	// By names the field managers that wrote the spec since the base
	// object, as managedFields records them; empty when unknown.
	By []string
}

// String says what changed and, when known, by whom: "the pod template
// (changed by kubectl-patch)".
func (d *Drift) String() string {
	if d == nil {
		return ""
	}
	s := strings.Join(d.What, ", ")
	if len(d.By) > 0 {
		s += " (changed by " + strings.Join(d.By, ", ") + ")"
	}
	return s
}

// DetectDrift names what someone else changed in the StatefulSet since
// base, the object as the workflow last wrote or read it; nil when nothing
// a workflow depends on changed (template, replicas, partition, update
// strategy, volumeClaimTemplates, identity). Every spec change moves the
// generation, so a snapshot not newer than base (a watch may lag behind the
// workflow's own write) says nothing.
func DetectDrift(base, cur *appsv1.StatefulSet) *Drift {
	if base == nil || cur == nil {
		return nil
	}
	if cur.UID != base.UID {
		return &Drift{What: []string{"it was deleted and recreated"}}
	}
	if cur.Generation <= base.Generation {
		return nil
	}
	what := SpecChanges(base, cur, true)
	if len(what) == 0 {
		return nil
	}
	return &Drift{What: what, By: ChangedBy(base, cur)}
}

// SpecChanges lists the parts of the spec that differ between a and b
// which the workflows depend on; the volumeClaimTemplates only when
// claims is set.
func SpecChanges(a, b *appsv1.StatefulSet, claims bool) []string {
	var what []string
	if !equality.Semantic.DeepEqual(a.Spec.Template, b.Spec.Template) {
		what = append(what, "the pod template")
	}
	if x, y := replicas(a), replicas(b); x != y {
		what = append(what, fmt.Sprintf("replicas %d → %d", x, y))
	}
	if x, y := partition(a), partition(b); x != y {
		what = append(what, fmt.Sprintf("partition %d → %d", x, y))
	}
	if a.Spec.UpdateStrategy.Type != b.Spec.UpdateStrategy.Type || !equality.Semantic.DeepEqual(maxUnavailable(a), maxUnavailable(b)) {
		what = append(what, "the update strategy")
	}
	if claims && !equality.Semantic.DeepEqual(a.Spec.VolumeClaimTemplates, b.Spec.VolumeClaimTemplates) {
		what = append(what, "the volumeClaimTemplates")
	}
	return what
}

// ChangedBy names the field managers that wrote the StatefulSet's main
// resource (not its status) between base and cur: those whose managedFields
// entry is new or carries a new time. A manager that only lost fields to
// another keeps its time and is not named.
func ChangedBy(base, cur *appsv1.StatefulSet) []string {
	var by []string
	for _, e := range cur.ManagedFields {
		if e.Subresource != "" || slices.Contains(by, e.Manager) {
			continue
		}
		if !sameWrite(base.ManagedFields, e) {
			by = append(by, e.Manager)
		}
	}
	return by
}

func sameWrite(entries []metav1.ManagedFieldsEntry, e metav1.ManagedFieldsEntry) bool {
	for _, b := range entries {
		if b.Manager == e.Manager && b.Operation == e.Operation && b.Subresource == e.Subresource {
			return equality.Semantic.DeepEqual(b.Time, e.Time)
		}
	}
	return false
}

// NotChangedElsewhere fails as soon as the watch shows a change of the
// StatefulSet that the workflow did not make since base. during names the
// workflow in the reason, e.g. "the scale-down".
func NotChangedElsewhere(name string, base *appsv1.StatefulSet, during string) Gate {
	return NewGate("statefulset "+name, "not to be changed by anyone else", func(_ context.Context, s Snapshot) (Verdict, string, error) {
		if d := DetectDrift(base, s.StatefulSet); d != nil {
			return Fail, "changed by someone else during " + during + ": " + d.String(), nil
		}
		return Pass, "unchanged", nil
	})
}

func replicas(sts *appsv1.StatefulSet) int32 {
	if sts.Spec.Replicas == nil {
		return 1
	}
	return *sts.Spec.Replicas
}

func partition(sts *appsv1.StatefulSet) int32 {
	if ru := sts.Spec.UpdateStrategy.RollingUpdate; ru != nil && ru.Partition != nil {
		return *ru.Partition
	}
	return 0
}

func maxUnavailable(sts *appsv1.StatefulSet) *intstr.IntOrString {
	if ru := sts.Spec.UpdateStrategy.RollingUpdate; ru != nil {
		return ru.MaxUnavailable
	}
	return nil
}
