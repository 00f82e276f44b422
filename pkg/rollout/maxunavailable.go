package rollout

import (
	"context"
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"

	"github.com/kubectl-sts/kubectl-sts/pkg/progress"
	"github.com/kubectl-sts/kubectl-sts/pkg/wait"
)

// How many pods the StatefulSet controller may take down at once depends on
// the cluster: spec.updateStrategy.rollingUpdate.maxUnavailable exists only
// where the MaxUnavailableStatefulSet feature is on (1.35.0-1.35.3 and
// 1.37 on by default; off before 1.35, in 1.35.4+ and in 1.36), and where
// it is off the API server drops the field on every write. So the rollout
// never assumes: it reads the field back from the server's answers.

// MaxUnavailable is what the plan knows about the controller's budget.
type MaxUnavailable struct {
	// Pods is how many pods of the set the controller may have unavailable
	// at once during an update (1 when the field is unset or dropped).
	Pods int32 `json:"pods"`
	// Spec is the field as the server keeps it ("2", "50%"); empty when
	// unset.
	Spec string `json:"spec,omitempty"`
	// Dropped is true when the server was seen dropping the field (a
	// dry-run write of it came back without it).
	Dropped bool `json:"dropped,omitempty"`
}

// budgetOf reads the controller's budget from a StatefulSet as the server
// returned it.
func budgetOf(sts *appsv1.StatefulSet) MaxUnavailable {
	mu := maxUnavailable(sts)
	if mu == nil {
		return MaxUnavailable{Pods: 1}
	}
	n, err := intstr.GetScaledValueFromIntOrPercent(mu, int(Replicas(sts)), false)
	if err != nil || n < 1 {
		n = 1
	}
	return MaxUnavailable{Pods: int32(n), Spec: mu.String()}
}

// probeMaxUnavailable asks the server, with a dry-run patch that changes
// nothing, whether it keeps spec.updateStrategy.rollingUpdate.maxUnavailable.
// It is asked only about a set whose field is unset, to tell the user why
// the controller will replace one pod at a time.
func probeMaxUnavailable(ctx context.Context, c kubernetes.Interface, sts *appsv1.StatefulSet) (kept bool, err error) {
	patch := fmt.Appendf(nil, `{"spec":{"updateStrategy":{"type":"RollingUpdate","rollingUpdate":{"partition":%d,"maxUnavailable":2}}}}`, Partition(sts))
	got, err := c.AppsV1().StatefulSets(sts.Namespace).Patch(ctx, sts.Name, types.StrategicMergePatchType, patch,
		metav1.PatchOptions{DryRun: []string{metav1.DryRunAll}})
	if err != nil {
		return false, err
	}
	return maxUnavailable(got) != nil, nil
}

// note is the plan's line about the budget.
func (m MaxUnavailable) note() string {
	switch {
	case m.Dropped:
		return "this cluster drops spec.updateStrategy.rollingUpdate.maxUnavailable (the MaxUnavailableStatefulSet feature is off): " +
			"the controller replaces one pod at a time, whatever the manifest says"
	case m.Pods > 1:
		return fmt.Sprintf("maxUnavailable %s: the controller may take up to %d pods down at once, so a step of several pods replaces them together; "+
			"an unavailable pod outside the step counts against that budget", m.Spec, m.Pods)
	}
	return ""
}

// readBack records the budget from the server's answer to a write, and
// reports a change of how many pods the controller may take down (someone
// set the field, or the server dropped it).
func (x *execution) readBack(sts *appsv1.StatefulSet) {
	if sts == nil {
		return
	}
	now := budgetOf(sts)
	before := x.st.Plan.MaxUnavailable
	if before == nil {
		x.st.Plan.MaxUnavailable = &now
		return
	}
	if now.Pods == before.Pods && now.Spec == before.Spec {
		return
	}
	// A server that spells out the default (unset and 1 are one pod) or
	// drops a 1 changes nothing the user needs to hear of.
	if now.Pods != before.Pods {
		x.emitStep(progress.Event{Kind: "warning", Level: progress.Warning, Message: fmt.Sprintf("the server now answers maxUnavailable %q (was %q): the controller may take %d pods down at once",
			now.Spec, before.Spec, now.Pods)})
	}
	now.Dropped = before.Dropped && now.Spec == ""
	x.st.Plan.MaxUnavailable = &now
}

// maxUnavailableDropped tells whether the server would drop the
// maxUnavailable field of sts. Only where the field is unset and the
// server's version is known (a real cluster) does a dry-run write ask, so
// the plan can say that a maxUnavailable in the manifest was dropped.
func (r *Runner) maxUnavailableDropped(ctx context.Context, sts *appsv1.StatefulSet) bool {
	if budgetOf(sts).Spec != "" || r.Server == nil {
		return false
	}
	if s, err := r.Server(ctx); err != nil || !s.Known {
		return false
	}
	kept, err := probeMaxUnavailable(ctx, r.Client, sts)
	return err == nil && !kept
}

// planBudget reads the budget of sts into the plan.
func planBudget(sts *appsv1.StatefulSet, dropped bool, plan *Plan) {
	b := budgetOf(sts)
	b.Dropped = dropped
	plan.MaxUnavailable = &b
	if n := b.note(); n != "" {
		plan.Notes = append(plan.Notes, n)
	}
}

// budgetText is what a step's message says about the budget.
func (p Plan) budgetText() string {
	if p.MaxUnavailable == nil || p.MaxUnavailable.Pods <= 1 {
		return ""
	}
	return fmt.Sprintf(", up to %d at once (maxUnavailable %s)", p.MaxUnavailable.Pods, p.MaxUnavailable.Spec)
}

// budgetBlockers returns the pods outside a step that are unavailable
// (missing Ready, or terminating) when they use up the controller's whole
// budget: the controller then replaces no pod of the step until they are
// back, since an unavailable pod anywhere in the set counts against
// maxUnavailable.
func budgetBlockers(s wait.Snapshot, p Plan, step Step) []string {
	if p.MaxUnavailable == nil {
		return nil
	}
	inStep := map[string]bool{}
	for _, name := range step.Pods {
		inStep[name] = true
	}
	var out []string
	for idx := int32(0); idx < p.Replicas; idx++ {
		name := wait.PodName(p.StatefulSet, int(p.OrdinalsStart+idx))
		if inStep[name] {
			continue
		}
		pod := s.Pod(name)
		if pod == nil || pod.DeletionTimestamp != nil || !wait.IsPodReady(pod) {
			out = append(out, name)
		}
	}
	if int32(len(out)) < p.MaxUnavailable.Pods {
		return nil
	}
	return out
}
