package expand

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	clienttesting "k8s.io/client-go/testing"

	"github.com/kubectl-sts/kubectl-sts/pkg/journal"
	"github.com/kubectl-sts/kubectl-sts/plugins"
)

func TestPreflightAsksTheAPIServerInADryRun(t *testing.T) {
	h := newHarness(t, cluster(2, classOn, "1Gi")...)
	var dryRuns int
	h.sim.cs.PrependReactor("patch", "persistentvolumeclaims", func(a clienttesting.Action) (bool, runtime.Object, error) {
		pa := a.(clienttesting.PatchActionImpl)
		if len(pa.PatchOptions.DryRun) == 0 {
			t.Errorf("preflight made a real change to %s", pa.GetName())
			return false, nil, nil
		}
		dryRuns++
		return true, nil, apierrors.NewForbidden(schema.GroupResource{Resource: "persistentvolumeclaims"}, pa.GetName(),
			errors.New("exceeded quota: storage, requested: requests.storage=1Gi"))
	})
	_, err := h.expander(testParams("2Gi")).Preflight(context.Background())
	var refused *PreflightError
	require.ErrorAs(t, err, &refused)
	assert.Equal(t, 2, dryRuns)
	require.Len(t, refused.Problems, 2)
	assert.Contains(t, refused.Problems[0].Message, "the API server refuses to grow pvc data-db-1 to 2Gi")
	assert.Contains(t, refused.Problems[0].Message, "exceeded quota")
	assert.Equal(t, "1Gi", request(h.pvc(t, 0)))
}

// A server error on the dry run is a failure to ask, not the server's
// refusal: it is reported as the API error it is.
func TestPreflightDryRunServerErrorIsNotARefusal(t *testing.T) {
	h := newHarness(t, cluster(2, classOn, "1Gi")...)
	h.sim.cs.PrependReactor("patch", "persistentvolumeclaims", func(a clienttesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewInternalError(errors.New("etcdserver: request timed out"))
	})
	_, err := h.expander(testParams("2Gi")).Preflight(context.Background())
	require.Error(t, err)
	var refused *PreflightError
	assert.False(t, errors.As(err, &refused), "not a refusal: %v", err)
	assert.True(t, apierrors.IsInternalError(err), "the API error is kept: %v", err)
	assert.NotContains(t, err.Error(), "refuses")
	assert.Contains(t, err.Error(), "dry run")
	assert.Equal(t, "1Gi", request(h.pvc(t, 0)))
}

func TestPreflightRefusesWhileAnotherProcessHoldsTheLease(t *testing.T) {
	h := newHarness(t, cluster(1, classOn, "1Gi")...)
	other := journal.New(h.sim.cs, testNS, "db", "other-host/42")
	_, _, err := other.Begin(context.Background(), Operation, &State{Claim: "data", Size: "2Gi"})
	require.NoError(t, err)

	_, err = h.expander(testParams("2Gi")).Preflight(context.Background())
	var held *journal.HeldError
	require.ErrorAs(t, err, &held)
	assert.Contains(t, err.Error(), "other-host/42")
	assert.Contains(t, err.Error(), "held by other-host/42 (last heartbeat 0s ago")
}

func TestPreflightMissingStatefulSet(t *testing.T) {
	h := newHarness(t)
	_, err := h.expander(testParams("2Gi")).Preflight(context.Background())
	assert.True(t, apierrors.IsNotFound(err), "got %v", err)
}

// brokenEngine cannot read its members.
type brokenEngine struct{ *fakeEngine }

func (brokenEngine) Members(context.Context, plugins.Target) ([]plugins.Member, error) {
	return nil, errors.New("connection refused")
}

// expand-pvc restarts the primary last, so it must know which member that
// is before it changes anything: an engine that cannot tell is a refusal
// with the reasons, which --force overrides (then highest ordinal first).
func TestPreflightRefusesWhenThePrimaryIsUnknown(t *testing.T) {
	h := newHarness(t, cluster(3, classOn, "1Gi")...)
	h.engine = brokenEngine{&fakeEngine{}}
	_, err := h.expander(testParams("2Gi")).Preflight(context.Background())
	var refused *PreflightError
	require.ErrorAs(t, err, &refused)
	assert.Contains(t, err.Error(), "the fakedb engine cannot tell which member is the primary (connection refused), and expand-pvc restarts the primary last: with --force it goes highest ordinal first")
	for _, a := range h.sim.cs.Actions() {
		assert.Contains(t, []string{"get", "list", "watch"}, a.GetVerb(), "nothing was changed: %v", a)
	}

	p := testParams("2Gi")
	p.Force = true
	plan, err := h.expander(p).Preflight(context.Background())
	require.NoError(t, err)
	assert.Equal(t, []int{2, 1, 0}, ordinalsOf(plan))
	require.NotEmpty(t, plan.Warnings)
	assert.Contains(t, plan.Warnings[0], "--force: the fakedb engine cannot tell which member is the primary (connection refused)")
	assert.Nil(t, plan.engine, "an unreadable engine is not consulted during the run")
}

// Two members reporting themselves primary is refused the same way.
func TestPreflightRefusesSeveralPrimaries(t *testing.T) {
	h := newHarness(t, cluster(3, classOn, "1Gi")...)
	h.engine = twoPrimaries{&fakeEngine{}}
	_, err := h.expander(testParams("2Gi")).Preflight(context.Background())
	var refused *PreflightError
	require.ErrorAs(t, err, &refused)
	assert.Contains(t, err.Error(), "cannot tell which member is the primary (")
	assert.Contains(t, err.Error(), "db-0")
	assert.Contains(t, err.Error(), "db-1")
}

type twoPrimaries struct{ *fakeEngine }

func (twoPrimaries) Members(_ context.Context, t plugins.Target) ([]plugins.Member, error) {
	var out []plugins.Member
	for _, p := range t.SortedPods() {
		o := plugins.Ordinal(t.StatefulSet, p)
		role := plugins.RoleReplica
		if o < 2 {
			role = plugins.RolePrimary
		}
		out = append(out, plugins.Member{Pod: p.Name, Ordinal: o, Role: role})
	}
	return out, nil
}

func TestPreflightDoesNotAskTheEngineWhenNothingRestarts(t *testing.T) {
	h := newHarness(t, cluster(2, classOn, "1Gi")...)
	engine := &fakeEngine{primary: 0}
	h.engine = engine
	p := testParams("2Gi")
	p.Restart = RestartNever
	_, err := h.expander(p).Preflight(context.Background())
	require.NoError(t, err)
	assert.Zero(t, engine.calls)
}

func TestPreflightPassesEngineSelectionErrors(t *testing.T) {
	h := newHarness(t, cluster(1, classOn, "1Gi")...)
	ex := h.expander(testParams("2Gi"))
	ex.cfg.EngineFor = func(*appsv1.StatefulSet) (plugins.Engine, error) {
		return nil, &plugins.UnknownEngineError{Name: "oracle", Source: "annotation"}
	}
	_, err := ex.Preflight(context.Background())
	var unknown *plugins.UnknownEngineError
	assert.ErrorAs(t, err, &unknown)
}

func TestDesiredStatefulSetKeepsTheSpecAndDropsServerFields(t *testing.T) {
	cur := newSTS(3, classOn, "1Gi")
	cur.ResourceVersion, cur.Generation = "42", 7
	cur.CreationTimestamp = metav1.Now()
	cur.Annotations = map[string]string{"kubectl.kubernetes.io/last-applied-configuration": "{}"}
	cur.Finalizers = []string{metav1.FinalizerOrphanDependents}
	cur.Spec.VolumeClaimTemplates[0].Status.Phase = corev1.ClaimBound
	d := desiredStatefulSet(cur, "data", *resourceQuantity("5Gi"))
	assert.Empty(t, d.UID)
	assert.Empty(t, d.ResourceVersion)
	assert.Zero(t, d.Generation)
	assert.True(t, d.CreationTimestamp.IsZero())
	assert.Empty(t, d.Finalizers)
	assert.Equal(t, appsv1.StatefulSetStatus{}, d.Status)
	assert.Equal(t, cur.Annotations, d.Annotations)
	assert.Equal(t, cur.Spec.Template, d.Spec.Template, "the pod template, and so the revision, is unchanged")
	assert.Empty(t, d.Spec.VolumeClaimTemplates[0].Status.Phase)
	q := d.Spec.VolumeClaimTemplates[0].Spec.Resources.Requests[corev1.ResourceStorage]
	assert.Equal(t, "5Gi", q.String())
	orig := cur.Spec.VolumeClaimTemplates[0].Spec.Resources.Requests[corev1.ResourceStorage]
	assert.Equal(t, "1Gi", orig.String(), "the current object is not modified")
}
