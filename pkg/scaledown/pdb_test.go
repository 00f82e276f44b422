package scaledown

import (
	"testing"

	"github.com/stretchr/testify/assert"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

func budget(name string, sel *metav1.LabelSelector, minAvailable, maxUnavailable *intstr.IntOrString) policyv1.PodDisruptionBudget {
	return policyv1.PodDisruptionBudget{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       policyv1.PodDisruptionBudgetSpec{Selector: sel, MinAvailable: minAvailable, MaxUnavailable: maxUnavailable},
	}
}

func intOr(v int) *intstr.IntOrString { x := intstr.FromInt32(int32(v)); return &x }

func pct(v string) *intstr.IntOrString { x := intstr.FromString(v); return &x }

func appDB() *metav1.LabelSelector {
	return &metav1.LabelSelector{MatchLabels: map[string]string{"app": "db"}}
}

func TestCheckPDBs(t *testing.T) {
	otherPod := func(name string, ready bool) corev1.Pod {
		p := corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{"app": "db", "role": "proxy"}}}
		if ready {
			p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}
		}
		return p
	}
	cases := []struct {
		name      string
		target    int32
		pdb       policyv1.PodDisruptionBudget
		notReady  []int
		extraPods []corev1.Pod
		want      []PDBViolation
	}{
		{name: "minAvailable above the target", target: 3, pdb: budget("quorum", appDB(), intOr(4), nil),
			want: []PDBViolation{{Name: "quorum", Rule: "minAvailable 4", Required: 4, Available: 3}}},
		{name: "minAvailable equal to the target", target: 3, pdb: budget("quorum", appDB(), intOr(3), nil)},
		{name: "minAvailable met only with a not Ready pod that stays", target: 3, notReady: []int{1}, pdb: budget("quorum", appDB(), intOr(3), nil),
			want: []PDBViolation{{Name: "quorum", Rule: "minAvailable 3", Required: 3, Available: 2}}},
		{name: "a not Ready pod that goes does not count", target: 3, notReady: []int{4}, pdb: budget("quorum", appDB(), intOr(3), nil)},
		{name: "minAvailable percentage scales with the target", target: 3, pdb: budget("half", appDB(), pct("60%"), nil)},
		{name: "minAvailable 100% needs every remaining pod Ready", target: 3, notReady: []int{0}, pdb: budget("all", appDB(), pct("100%"), nil),
			want: []PDBViolation{{Name: "all", Rule: "minAvailable 100%", Required: 3, Available: 2}}},
		{name: "maxUnavailable with all remaining pods Ready", target: 3, pdb: budget("one", appDB(), nil, intOr(1))},
		{name: "maxUnavailable 0 with all remaining pods Ready", target: 3, pdb: budget("none", appDB(), nil, intOr(0))},
		{name: "maxUnavailable exceeded by remaining unready pods", target: 3, notReady: []int{0, 1}, pdb: budget("one", appDB(), nil, intOr(1)),
			want: []PDBViolation{{Name: "one", Rule: "maxUnavailable 1", Required: 2, Available: 1}}},
		{name: "other pods the budget selects count", target: 2, pdb: budget("quorum", appDB(), intOr(3), nil),
			extraPods: []corev1.Pod{otherPod("proxy-a", true)}},
		{name: "other unready pods do not help", target: 2, pdb: budget("quorum", appDB(), intOr(3), nil),
			extraPods: []corev1.Pod{otherPod("proxy-a", false)},
			want:      []PDBViolation{{Name: "quorum", Rule: "minAvailable 3", Required: 3, Available: 2}}},
		{name: "a budget of other pods is ignored", target: 1,
			pdb: budget("web", &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}, intOr(5), nil)},
		{name: "a nil selector selects nothing", target: 1, pdb: budget("nil", nil, intOr(5), nil)},
		{name: "an empty selector selects every pod", target: 1, pdb: budget("everything", &metav1.LabelSelector{}, intOr(2), nil),
			want: []PDBViolation{{Name: "everything", Rule: "minAvailable 2", Required: 2, Available: 1}}},
		{name: "a budget with neither field is no constraint", target: 1, pdb: budget("empty", appDB(), nil, nil)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := fixture(5)
			for _, n := range c.notReady {
				f.NotReady(n, 0)
			}
			var pods []corev1.Pod
			for _, p := range f.Pods {
				pods = append(pods, *p)
			}
			pods = append(pods, c.extraPods...)
			got := CheckPDBs(f.StatefulSet, []policyv1.PodDisruptionBudget{c.pdb}, pods, c.target)
			assert.Equal(t, c.want, got)
		})
	}
}

func TestPDBViolationMessage(t *testing.T) {
	v := PDBViolation{Name: "quorum", Rule: "minAvailable 4", Required: 4, Available: 3}
	assert.Equal(t, "poddisruptionbudget quorum (minAvailable 4) needs 4 available pods, but only 3 would be left", v.String())
}
