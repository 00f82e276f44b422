package rollout

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/kubectl-sts/kubectl-sts/pkg/kube"
	"github.com/kubectl-sts/kubectl-sts/pkg/progress"
	"github.com/kubectl-sts/kubectl-sts/pkg/wait"
)

func withMaxUnavailable(v intstr.IntOrString) func(*appsv1.StatefulSet) {
	return func(s *appsv1.StatefulSet) {
		s.Spec.UpdateStrategy.Type = appsv1.RollingUpdateStatefulSetStrategyType
		if s.Spec.UpdateStrategy.RollingUpdate == nil {
			s.Spec.UpdateStrategy.RollingUpdate = &appsv1.RollingUpdateStatefulSetStrategy{}
		}
		s.Spec.UpdateStrategy.RollingUpdate.MaxUnavailable = &v
	}
}

func TestPlanShowsTheBudgetTheServerKeeps(t *testing.T) {
	for _, tc := range []struct {
		mu   intstr.IntOrString
		pods int32
		text string
	}{
		{intstr.FromInt32(2), 2, ", up to 2 at once (maxUnavailable 2)"},
		{intstr.FromString("50%"), 2, ", up to 2 at once (maxUnavailable 50%)"},
		{intstr.FromInt32(1), 1, ""},
	} {
		c := setup(t, 4, withMaxUnavailable(tc.mu))
		c.applyPending("app:v2", 4)
		rec := &progress.Recorder{}
		r := c.runner("me", rec)
		steps, err := ParseSteps([]string{"2,100%"})
		require.NoError(t, err)
		pv, err := r.Prepare(ctxT(t), Request{Steps: steps})
		require.NoError(t, err)
		require.NotNil(t, pv.Plan.MaxUnavailable)
		assert.Equal(t, tc.pods, pv.Plan.MaxUnavailable.Pods, tc.mu.String())
		assert.Equal(t, tc.mu.String(), pv.Plan.MaxUnavailable.Spec)
		if tc.pods > 1 {
			assert.Contains(t, pv.Plan.Notes, "maxUnavailable "+tc.mu.String()+": the controller may take up to 2 pods down at once, "+
				"so a step of several pods replaces them together; an unavailable pod outside the step counts against that budget")
		} else {
			assert.Empty(t, pv.Plan.Notes)
		}
		require.NoError(t, r.Run(ctxT(t), pv))
		var started []string
		for _, e := range rec.Events() {
			if e.Kind == "step-started" {
				started = append(started, e.Message)
			}
		}
		require.Len(t, started, 2)
		assert.Contains(t, started[0], "updating db-3, db-2 to revision "+pv.To+" (2 of 4 pods"+tc.text+")")
	}
}

func TestReadBackNoticesTheServerDroppingTheField(t *testing.T) {
	c := setup(t, 3, withMaxUnavailable(intstr.FromInt32(2)))
	c.applyPending("app:v2", 3)
	rec := &progress.Recorder{}
	r := c.runner("me", rec)
	pv, err := r.Prepare(ctxT(t), Request{})
	require.NoError(t, err)
	require.Equal(t, int32(2), pv.Plan.MaxUnavailable.Pods)

	// The server starts dropping the field (its feature gate turned off):
	// the next write's answer says so, and the plan follows it.
	x := &execution{r: r, st: pv.State(), rep: progress.Reporter{Sink: rec, Operation: Operation}}
	sts := c.sts("db").DeepCopy()
	sts.Spec.UpdateStrategy.RollingUpdate.MaxUnavailable = nil
	x.readBack(sts)
	assert.Equal(t, MaxUnavailable{Pods: 1}, *x.st.Plan.MaxUnavailable)
	var warned bool
	for _, e := range rec.Events() {
		warned = warned || e.Level == progress.Warning && e.Message == `the server now answers maxUnavailable "" (was "2"): the controller may take 1 pods down at once`
	}
	assert.True(t, warned, "%v", rec.Events())
}

func TestUnknownServersAreNotProbed(t *testing.T) {
	c := setup(t, 2)
	r := c.runner("me", nil)
	asked := 0
	r.Server = func(context.Context) (kube.Server, error) { asked++; return kube.ParseServer(""), nil }
	c.applyPending("app:v2", 2)
	c.cs.ClearActions()
	pv, err := r.Prepare(ctxT(t), Request{})
	require.NoError(t, err)
	assert.Equal(t, 1, asked)
	assert.Equal(t, MaxUnavailable{Pods: 1}, *pv.Plan.MaxUnavailable)
	for _, a := range c.cs.Actions() {
		assert.NotEqual(t, "patch", a.GetVerb(), "no dry-run probe on a fake")
	}
}

func TestUnavailablePodsOutsideTheStepUseUpTheBudget(t *testing.T) {
	plan, err := BuildPlan("db", 4, 0, []StepSpec{{Value: 2}, {Value: 100, Percent: true}})
	require.NoError(t, err)
	ready := func(name string) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name}, Status: corev1.PodStatus{Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}}}
	}
	snap := wait.Snapshot{Pods: map[string]*corev1.Pod{"db-0": ready("db-0"), "db-1": {ObjectMeta: metav1.ObjectMeta{Name: "db-1"}}, "db-2": ready("db-2"), "db-3": ready("db-3")}}

	plan.MaxUnavailable = &MaxUnavailable{Pods: 1}
	assert.Equal(t, []string{"db-1"}, budgetBlockers(snap, plan, plan.Steps[0]), "one unready pod uses a budget of 1")
	plan.MaxUnavailable = &MaxUnavailable{Pods: 2, Spec: "2"}
	assert.Empty(t, budgetBlockers(snap, plan, plan.Steps[0]), "a budget of 2 leaves room for the step")
	delete(snap.Pods, "db-0")
	assert.Equal(t, []string{"db-0", "db-1"}, budgetBlockers(snap, plan, plan.Steps[0]))
	assert.Empty(t, budgetBlockers(snap, plan, plan.Steps[1]), "the step's own pods do not block it")
}

// On a cluster whose API server fills in maxUnavailable: 1 on the first
// write, the budget is the same one pod as before: no warning.
func TestReadBackIsSilentWhenTheServerOnlySpellsOutTheDefault(t *testing.T) {
	c := setup(t, 3)
	c.applyPending("app:v2", 3)
	rec := &progress.Recorder{}
	r := c.runner("me", rec)
	pv, err := r.Prepare(ctxT(t), Request{})
	require.NoError(t, err)
	require.Equal(t, "", pv.Plan.MaxUnavailable.Spec)

	x := &execution{r: r, st: pv.State(), rep: progress.Reporter{Sink: rec, Operation: Operation}}
	sts := c.sts("db").DeepCopy()
	one := intstr.FromInt32(1)
	if sts.Spec.UpdateStrategy.RollingUpdate == nil {
		sts.Spec.UpdateStrategy.RollingUpdate = &appsv1.RollingUpdateStatefulSetStrategy{}
	}
	sts.Spec.UpdateStrategy.RollingUpdate.MaxUnavailable = &one
	x.readBack(sts)
	assert.Equal(t, MaxUnavailable{Pods: 1, Spec: "1"}, *x.st.Plan.MaxUnavailable)
	for _, e := range rec.Events() {
		assert.NotEqual(t, progress.Warning, e.Level, "no warning: %s", e.Message)
	}
}
