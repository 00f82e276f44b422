package rollout

import (
	appsv1 "k8s.io/api/apps/v1"

	"github.com/kubectl-sts/kubectl-sts/pkg/wait"
)

// drift names what someone else changed in the StatefulSet since base, the
// object as this run last wrote or read it, and who did when managedFields
// say; "" when nothing the rollout depends on changed.
func drift(base, cur *appsv1.StatefulSet) string {
	return wait.DetectDrift(base, cur).String()
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
	return wait.NotChangedElsewhere(name, base, "the rollout")
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
