package scaledown

import (
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/kubectl-sts/kubectl-sts/pkg/wait"
)

// PDBViolation is a PodDisruptionBudget that the target count would break.
type PDBViolation struct {
	Name string `json:"name"`
	// Rule is the budget's rule as written, e.g. "minAvailable 4".
	Rule string `json:"rule"`
	// Required is how many matching pods must be available afterwards;
	// Available is how many would be.
	Required  int32 `json:"required"`
	Available int32 `json:"available"`
}

func (v PDBViolation) String() string {
	return fmt.Sprintf("poddisruptionbudget %s (%s) needs %d available %s, but only %d would be left",
		v.Name, v.Rule, v.Required, plural(int(v.Required), "pod", "pods"), v.Available)
}

// CheckPDBs returns the budgets among pdbs that cover sts's pods (their
// selector matches the pod template's labels) and would be violated once
// sts has `target` replicas. It uses the disruption controller's
// arithmetic on the state after the scale-down: the expected count is
// `target` for sts's pods plus one for every other pod the budget
// selects; available pods are the Ready, not terminating ones among the
// pods that stay; percentages are scaled and rounded up. pods are the
// namespace's pods.
func CheckPDBs(sts *appsv1.StatefulSet, pdbs []policyv1.PodDisruptionBudget, pods []corev1.Pod, target int32) []PDBViolation {
	start := OrdinalsStart(sts)
	end := start + int(target)
	var out []PDBViolation
	for i := range pdbs {
		pdb := &pdbs[i]
		// policy/v1: a nil selector selects nothing, an empty one everything.
		sel, err := metav1.LabelSelectorAsSelector(pdb.Spec.Selector)
		if err != nil || !sel.Matches(labels.Set(sts.Spec.Template.Labels)) {
			continue
		}
		expected, available := target, int32(0)
		for j := range pods {
			p := &pods[j]
			if !sel.Matches(labels.Set(p.Labels)) {
				continue
			}
			healthy := p.DeletionTimestamp == nil && wait.IsPodReady(p)
			if n, ok := OwnedPod(sts, p); ok {
				if n >= start && n < end && healthy {
					available++
				}
				continue
			}
			expected++
			if healthy {
				available++
			}
		}
		var required int32
		var rule string
		switch {
		case pdb.Spec.MaxUnavailable != nil:
			maxUnavailable, err := intstr.GetScaledValueFromIntOrPercent(pdb.Spec.MaxUnavailable, int(expected), true)
			if err != nil {
				continue
			}
			required = max(expected-int32(maxUnavailable), 0)
			rule = "maxUnavailable " + pdb.Spec.MaxUnavailable.String()
		case pdb.Spec.MinAvailable != nil:
			minAvailable, err := intstr.GetScaledValueFromIntOrPercent(pdb.Spec.MinAvailable, int(expected), true)
			if err != nil {
				continue
			}
			required = int32(minAvailable)
			rule = "minAvailable " + pdb.Spec.MinAvailable.String()
		default:
			continue
		}
		if available < required {
			out = append(out, PDBViolation{Name: pdb.Name, Rule: rule, Required: required, Available: available})
		}
	}
	return out
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
