package rollout

import (
	"context"
	"fmt"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/api/equality"

	"github.com/kubectl-sts/kubectl-sts/pkg/wait"
)

// drift names what someone else changed in the StatefulSet since base, the
// object as this run last wrote or read it; "" when nothing the rollout
// depends on changed. Every spec change moves the generation, so a
// snapshot not newer than base (the watch may lag behind the run's own
// write) says nothing.
func drift(base, cur *appsv1.StatefulSet) string {
	if base == nil || cur == nil {
		return ""
	}
	if cur.UID != base.UID {
		return "it was deleted and recreated"
	}
	if cur.Generation <= base.Generation {
		return ""
	}
	var what []string
	if !equality.Semantic.DeepEqual(base.Spec.Template, cur.Spec.Template) {
		what = append(what, "the pod template")
	}
	if a, b := Replicas(base), Replicas(cur); a != b {
		what = append(what, fmt.Sprintf("replicas %d → %d", a, b))
	}
	if a, b := Partition(base), Partition(cur); a != b {
		what = append(what, fmt.Sprintf("partition %d → %d", a, b))
	}
	if base.Spec.UpdateStrategy.Type != cur.Spec.UpdateStrategy.Type || !equality.Semantic.DeepEqual(maxUnavailable(base), maxUnavailable(cur)) {
		what = append(what, "the update strategy")
	}
	if !equality.Semantic.DeepEqual(base.Spec.VolumeClaimTemplates, cur.Spec.VolumeClaimTemplates) {
		what = append(what, "the volumeClaimTemplates")
	}
	return strings.Join(what, ", ")
}

// withPartition is s as this run's own partition patch leaves it.
func withPartition(s *appsv1.StatefulSet, p int32) *appsv1.StatefulSet {
	out := s.DeepCopy()
	if out.Spec.UpdateStrategy.RollingUpdate == nil {
		out.Spec.UpdateStrategy.RollingUpdate = &appsv1.RollingUpdateStatefulSetStrategy{}
	}
	out.Spec.UpdateStrategy.RollingUpdate.Partition = &p
	return out
}

// driftGate fails as soon as the watch shows a change by someone else.
func driftGate(name string, base *appsv1.StatefulSet) wait.Gate {
	return wait.NewGate("statefulset "+name, "not to be changed by anyone else", func(_ context.Context, s wait.Snapshot) (wait.Verdict, string, error) {
		if d := drift(base, s.StatefulSet); d != "" {
			return wait.Fail, "changed by someone else during the rollout: " + d, nil
		}
		return wait.Pass, "unchanged", nil
	})
}

// changedElsewhere is the outcome of a run stopped by someone else's
// change: nothing more is changed, nothing is rolled back, and the record
// stays for the person to decide.
func (x *execution) changedElsewhere(what string) error {
	r := x.r
	return needsAttention("statefulset %s was changed by someone else during step %d of %d (%s); the rollout stopped, changed nothing more and rolled nothing back. "+
		"Look at it with: kubectl sts status %s; then continue from the new state with: kubectl sts rollout resume %s (refused if the plan no longer fits), "+
		"roll back with: kubectl sts rollout undo %s, or end the rollout as it stands with: kubectl sts rollout abort %s",
		r.Name, x.st.StepNumber(), len(x.st.Plan.Steps), what, r.Name, r.Name, r.Name, r.Name)
}
