package scaledown

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	k8stesting "k8s.io/client-go/testing"

	"github.com/kubectl-sts/kubectl-sts/pkg/journal"
	"github.com/kubectl-sts/kubectl-sts/pkg/kube"
	"github.com/kubectl-sts/kubectl-sts/pkg/status/statustest"
	"github.com/kubectl-sts/kubectl-sts/plugins"
)

func cfg(replicas int32) Config {
	return Config{Namespace: ns, Name: "db", Replicas: replicas, PVC: PVCDelete, PVCExplicit: true}
}

func prepare(t *testing.T, f *statustest.Fixture, c Config, extra ...runtime.Object) (*Plan, *env, error) {
	t.Helper()
	e := newFixtureEnv(t, f, extra...)
	p, err := Prepare(context.Background(), c, e.deps())
	return p, e, err
}

func requireRefused(t *testing.T, err error, forceable bool, contains ...string) *RefusedError {
	t.Helper()
	var refused *RefusedError
	require.ErrorAs(t, err, &refused)
	assert.Equal(t, forceable, refused.Forceable, "forceable")
	for _, c := range contains {
		assert.Contains(t, err.Error(), c)
	}
	assert.Contains(t, err.Error(), "nothing was changed")
	return refused
}

func requireInvalid(t *testing.T, err error, contains string) {
	t.Helper()
	var invalid *InvalidError
	require.ErrorAs(t, err, &invalid)
	assert.Contains(t, err.Error(), contains)
}

func TestPreparePlansTheTopOrdinalsAndExactlyTheirClaims(t *testing.T) {
	f := fixture(5)
	// A look-alike claim without the StatefulSet's labels must not be planned.
	foreign := claim("data", "db", 4, map[string]string{"app": "other"})
	foreign.Name = "data-db-4-copy"
	p, _, err := prepare(t, f, cfg(3), foreign)
	require.NoError(t, err)
	assert.Equal(t, int32(5), p.From)
	assert.Equal(t, int32(3), p.To)
	assert.Equal(t, "fake", p.Engine)
	assert.Equal(t, "db-0", p.Primary)
	assert.Equal(t, "db-0..db-2", p.Stay)
	require.Len(t, p.Steps, 2)
	assert.Equal(t, "db-4", p.Steps[0].Pod)
	assert.Equal(t, "db-3", p.Steps[1].Pod)
	var names []string
	for _, s := range p.Steps {
		for _, c := range s.PVCs {
			names = append(names, c.Name)
			assert.Equal(t, PVCDelete, c.Action)
		}
	}
	assert.Equal(t, []string{"data-db-4", "wal-db-4", "data-db-3", "wal-db-3"}, names)
}

func TestPrepareWithOrdinalsStart(t *testing.T) {
	f := fixture(3)
	// Rename everything as if ordinals started at 10.
	sts := f.StatefulSet
	sts.Spec.Ordinals = &appsv1.StatefulSetOrdinals{Start: 10}
	for i, p := range f.Pods {
		p.Name = "db-" + itoa(10+i)
	}
	for _, c := range f.PVCs {
		c.Name = c.Name[:len(c.Name)-1] + itoa(10+int(c.Name[len(c.Name)-1]-'0'))
		c.UID = "uid-" + c.UID
	}
	e := newEnv(t, f.Objects()...)
	e.engine.members = []plugins.Member{{Pod: "db-10", Ordinal: 10, Role: plugins.RolePrimary}, {Pod: "db-11", Ordinal: 11, Role: plugins.RoleReplica}, {Pod: "db-12", Ordinal: 12, Role: plugins.RoleReplica}}
	p, err := Prepare(context.Background(), cfg(1), e.deps())
	require.NoError(t, err)
	require.Len(t, p.Steps, 2)
	assert.Equal(t, 12, p.Steps[0].Ordinal)
	assert.Equal(t, "db-12", p.Steps[0].Pod)
	assert.Equal(t, []string{"data-db-12", "wal-db-12"}, []string{p.Steps[0].PVCs[0].Name, p.Steps[0].PVCs[1].Name})
	assert.Equal(t, 11, p.Steps[1].Ordinal)
	assert.Equal(t, "db-10", p.Stay)
}

func itoa(n int) string { return string(rune('0'+n/10)) + string(rune('0'+n%10)) }

func TestPrepareRefusals(t *testing.T) {
	autoscaler := &autoscalingv2.HorizontalPodAutoscaler{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "db-hpa"},
		Spec:       autoscalingv2.HorizontalPodAutoscalerSpec{ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{Kind: "StatefulSet", Name: "db", APIVersion: "apps/v1"}, MaxReplicas: 5},
	}
	quorum := budget("quorum", appDB(), intOr(4), nil)
	cases := []struct {
		name      string
		fixture   func(f *statustest.Fixture)
		members   func() []plugins.Member
		membersEr error
		extra     []runtime.Object
		forceable bool
		contains  []string
	}{
		{name: "a removed ordinal is the primary", members: func() []plugins.Member { return primaryAt(4, 5) },
			contains: []string{"pod db-4 is the primary: switch the primary"}},
		{name: "the engine cannot tell the roles", members: func() []plugins.Member { return nil }, membersEr: errors.New("connection refused"),
			contains: []string{"cannot ask the fake engine", "--engine none"}},
		{name: "a PodDisruptionBudget would be violated", extra: []runtime.Object{&quorum},
			contains: []string{"poddisruptionbudget quorum (minAvailable 4) needs 4 available pods, but only 3 would be left"}},
		{name: "an autoscaler owns the scale", extra: []runtime.Object{autoscaler},
			contains: []string{"horizontalpodautoscaler db-hpa manages the replicas"}},
		{name: "a rollout is in progress", fixture: func(f *statustest.Fixture) { f.StartRollout(0, 4) }, forceable: true,
			contains: []string{"rolling out revision", "--force"}},
		{name: "a pod that stays is not Ready", fixture: func(f *statustest.Fixture) { f.NotReady(1, time.Hour) }, forceable: true,
			contains: []string{"db-1"}},
		{name: "a pod is missing", fixture: func(f *statustest.Fixture) { f.DeletePod(2) }, forceable: true,
			contains: []string{"db-2"}},
		{name: "the statefulset is being deleted", fixture: func(f *statustest.Fixture) {
			f.StatefulSet.DeletionTimestamp = &metav1.Time{Time: testNow}
			f.StatefulSet.Finalizers = []string{"x"}
		}, contains: []string{"is being deleted"}},
		{name: "unhealthy and primary together are not forceable", fixture: func(f *statustest.Fixture) { f.NotReady(1, time.Hour) },
			members: func() []plugins.Member { return primaryAt(3, 5) }, contains: []string{"pod db-3 is the primary", "db-1"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := fixture(5)
			if c.fixture != nil {
				c.fixture(f)
			}
			e := newEnv(t, objects(f, c.extra...)...)
			e.engine.members = primaryAt(0, 5)
			if c.members != nil {
				e.engine.members = c.members()
			}
			e.engine.membersErr = c.membersEr
			_, err := Prepare(context.Background(), cfg(3), e.deps())
			requireRefused(t, err, c.forceable, c.contains...)
			assert.Empty(t, e.engine.Calls(), "no engine step may run in a refused preflight")
			assert.Equal(t, int32(5), e.replicas(context.Background()))
		})
	}
}

// The primary on a removed ordinal is refused for that reason alone: the
// members that would stay have no primary, but saying "no member is
// primary" is wrong while one exists.
func TestPrimaryAmongTheRemovedIsNotCalledMissing(t *testing.T) {
	e := newEnv(t, objects(fixture(5))...)
	e.engine.members = primaryAt(4, 5)
	_, err := Prepare(context.Background(), cfg(3), e.deps())
	requireRefused(t, err, false, "pod db-4 is the primary")
	assert.NotContains(t, err.Error(), "no member is primary")
}

func TestPrepareForceOverridesOnlyHealth(t *testing.T) {
	f := fixture(5)
	f.NotReady(1, time.Hour)
	c := cfg(3)
	c.Force = true
	p, _, err := prepare(t, f, c)
	require.NoError(t, err)
	require.NotEmpty(t, p.Warnings)
	assert.Contains(t, p.Warnings[0], "--force: proceeding although")

	quorum := budget("quorum", appDB(), intOr(4), nil)
	_, _, err = prepare(t, fixture(5), c, &quorum)
	requireRefused(t, err, false, "poddisruptionbudget quorum")
}

// A broken member that is being removed must not block its own removal; a
// broken member that stays does, unless forced.
func TestEngineHealthIsJudgedOnTheMembersThatStay(t *testing.T) {
	broken := func(ordinal int) func(*env) {
		return func(e *env) {
			e.engine.members[ordinal].Role = plugins.RoleUnknown
			e.engine.members[ordinal].Error = "connection refused"
		}
	}
	for name, c := range map[string]struct {
		ordinal int
		refused bool
	}{
		"removed member broken": {ordinal: 4, refused: false},
		"staying member broken": {ordinal: 1, refused: true},
	} {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, objects(fixture(5))...)
			e.engine.members = primaryAt(0, 5)
			broken(c.ordinal)(e)
			_, err := Prepare(context.Background(), cfg(3), e.deps())
			if !c.refused {
				require.NoError(t, err)
				return
			}
			requireRefused(t, err, true, "no answer from db-1")
		})
	}
}

func TestPrepareInvalidRequests(t *testing.T) {
	t.Run("not lower", func(t *testing.T) {
		_, _, err := prepare(t, fixture(3), Config{Namespace: ns, Name: "db", Replicas: 3, PVC: PVCKeep})
		requireInvalid(t, err, "--replicas 3 is not lower than the current 3 replicas")
		_, _, err = prepare(t, fixture(3), Config{Namespace: ns, Name: "db", Replicas: 4})
		requireInvalid(t, err, "is not lower")
	})
	t.Run("zero needs allow-zero", func(t *testing.T) {
		_, _, err := prepare(t, fixture(3), cfg(0))
		requireInvalid(t, err, "pass --allow-zero")
		c := cfg(0)
		c.AllowZero = true
		p, _, err := prepare(t, fixture(3), c)
		require.NoError(t, err)
		assert.Len(t, p.Steps, 3)
		assert.Contains(t, strings.Join(p.Warnings, "\n"), "scaling to 0 replicas")
		assert.Contains(t, strings.Join(p.Warnings, "\n"), "the primary db-0 is removed last")

		// A primary above the lowest ordinal would go while replicas remain.
		e := newEnv(t, fixture(3).Objects()...)
		e.engine.members = primaryAt(2, 3)
		_, err = Prepare(context.Background(), c, e.deps())
		requireRefused(t, err, false, "pod db-2 is the primary")
	})
	t.Run("negative", func(t *testing.T) {
		_, _, err := prepare(t, fixture(3), cfg(-1))
		requireInvalid(t, err, "must not be negative")
	})
	t.Run("bad slot name", func(t *testing.T) {
		c := cfg(3)
		c.SlotNames = []string{"standby"}
		_, _, err := prepare(t, fixture(5), c)
		requireInvalid(t, err, "names one slot, but 2 ordinals are removed")
	})
	t.Run("slot names without an engine", func(t *testing.T) {
		f := fixture(5)
		e := newEnv(t, f.Objects()...)
		d := e.deps()
		d.EngineFor = func(*appsv1.StatefulSet) (plugins.Engine, error) { return nil, nil }
		c := cfg(3)
		c.SlotNames = []string{"s_{ordinal}"}
		_, err := Prepare(context.Background(), c, d)
		requireInvalid(t, err, "--slot-name needs a database engine")
	})
	t.Run("unknown engine", func(t *testing.T) {
		f := fixture(5)
		e := newEnv(t, f.Objects()...)
		d := e.deps()
		d.EngineFor = func(sts *appsv1.StatefulSet) (plugins.Engine, error) {
			return plugins.NewRegistry().Detect(sts, "cassandra")
		}
		_, err := Prepare(context.Background(), cfg(3), d)
		requireInvalid(t, err, `unknown engine "cassandra"`)
	})
	t.Run("snapshot without the API", func(t *testing.T) {
		c := cfg(3)
		c.PVC = PVCSnapshot
		_, _, err := prepare(t, fixture(5), c)
		var missing *SnapshotAPIMissingError
		require.ErrorAs(t, err, &missing)
	})
	t.Run("missing statefulset", func(t *testing.T) {
		e := newEnv(t)
		_, err := Prepare(context.Background(), cfg(3), e.deps())
		require.Error(t, err)
	})
}

func TestPrepareWhenScaledDelete(t *testing.T) {
	withPolicy := func() *statustest.Fixture {
		f := fixture(5)
		f.StatefulSet.Spec.PersistentVolumeClaimRetentionPolicy = &appsv1.StatefulSetPersistentVolumeClaimRetentionPolicy{
			WhenDeleted: appsv1.RetainPersistentVolumeClaimRetentionPolicyType,
			WhenScaled:  appsv1.DeletePersistentVolumeClaimRetentionPolicyType,
		}
		return f
	}
	for _, action := range []PVCAction{PVCKeep, PVCSnapshot} {
		c := cfg(3)
		c.PVC = action
		_, _, err := prepare(t, withPolicy(), c)
		requireInvalid(t, err, "whenScaled: Delete")
	}
	c := cfg(3)
	c.PVC, c.PVCExplicit = "", false
	p, _, err := prepare(t, withPolicy(), c)
	require.NoError(t, err)
	assert.Equal(t, PVCByKubernetes, p.PVC)
	assert.Contains(t, p.Warnings[0], "Kubernetes itself deletes the claims")
	assert.Equal(t, PVCByKubernetes, p.Steps[0].PVCs[0].Action)
}

func TestPrepareRefusesWhileAnotherOperationIsRecorded(t *testing.T) {
	f := fixture(5)
	e := newEnv(t, f.Objects()...)
	e.engine.members = primaryAt(0, 5)
	ctx := context.Background()
	other := journal.New(e.client, ns, "db", "elsewhere/9")
	_, _, err := other.Begin(ctx, "rollout", map[string]int{"step": 1})
	require.NoError(t, err)
	_, err = Prepare(ctx, cfg(3), e.deps())
	requireRefused(t, err, false, "an unfinished rollout")
}

func TestPrepareRefusesWhileAnotherProcessHoldsTheScaleDown(t *testing.T) {
	f := fixture(5)
	e := newEnv(t, f.Objects()...)
	e.engine.members = primaryAt(0, 5)
	ctx := context.Background()
	// The holder's heartbeat is fresh on the injected clock: liveness is
	// judged on that clock, never the wall clock.
	other := journal.New(e.client, ns, "db", "elsewhere/9").WithClock(func() time.Time { return testNow.Add(-20 * time.Second) }, journal.DefaultLeaseDuration)
	_, _, err := other.Begin(ctx, Operation, &State{UID: f.StatefulSet.UID, From: 5, To: 3})
	require.NoError(t, err)
	_, err = Prepare(ctx, cfg(3), e.deps())
	requireRefused(t, err, false, "held by elsewhere/9 (last heartbeat 20s ago at 2026-01-02T15:03:45Z; its lease expires at 2026-01-02T15:04:15Z, in 10s)")
}

func TestPrepareResumeRules(t *testing.T) {
	ctx := context.Background()
	setup := func(t *testing.T, f *statustest.Fixture, st *State) *env {
		e := newEnv(t, f.Objects()...)
		e.engine.members = primaryAt(0, len(f.Pods))
		j := journal.New(e.client, ns, "db", "gone/1")
		rec, _, err := j.Begin(ctx, Operation, st)
		require.NoError(t, err)
		require.NoError(t, j.Release(ctx, rec, "killed"))
		return e
	}
	state := func(f *statustest.Fixture) *State {
		return &State{UID: f.StatefulSet.UID, From: 5, To: 3, PVC: PVCDelete, Engine: "fake",
			Ordinals: []StepState{{Ordinal: 4, Stage: StageDone}, {Ordinal: 3, Stage: StagePending}}}
	}
	t.Run("resumes with the recorded range and stages", func(t *testing.T) {
		f := fixture(5)
		f.ScaleTo(4).DeletePod(4)
		e := setup(t, f, state(f))
		c := cfg(3)
		c.PVC, c.PVCExplicit = "", false
		p, err := Prepare(ctx, c, e.deps())
		require.NoError(t, err)
		assert.True(t, p.Resumed)
		assert.Equal(t, int32(5), p.From)
		assert.Equal(t, int32(4), p.Current)
		assert.Equal(t, PVCDelete, p.PVC, "the recorded action is used")
		require.Len(t, p.Steps, 2)
		assert.True(t, p.Steps[0].Done)
		assert.False(t, p.Steps[1].Done)
	})
	t.Run("another target", func(t *testing.T) {
		f := fixture(5)
		e := setup(t, f, state(f))
		_, err := Prepare(ctx, cfg(2), e.deps())
		requireInvalid(t, err, "run it again with --replicas 3 to resume it, or drop the record with --abort")
	})
	t.Run("another claim action", func(t *testing.T) {
		f := fixture(5)
		e := setup(t, f, state(f))
		c := cfg(3)
		c.PVC = PVCKeep
		_, err := Prepare(ctx, c, e.deps())
		requireInvalid(t, err, "resume it with the same --pvc")
	})
	t.Run("another engine", func(t *testing.T) {
		f := fixture(5)
		e := setup(t, f, state(f))
		d := e.deps()
		d.EngineFor = func(*appsv1.StatefulSet) (plugins.Engine, error) { return nil, nil }
		_, err := Prepare(ctx, cfg(3), d)
		requireInvalid(t, err, "ran with --engine fake")
	})
	t.Run("scale changed by someone else", func(t *testing.T) {
		f := fixture(5)
		f.ScaleTo(2)
		e := setup(t, f, state(f))
		_, err := Prepare(ctx, cfg(3), e.deps())
		requireRefused(t, err, false, "outside the range 3..5")
	})
	t.Run("statefulset recreated", func(t *testing.T) {
		f := fixture(5)
		st := state(f)
		st.UID = "old-uid"
		e := setup(t, f, st)
		_, err := Prepare(ctx, cfg(3), e.deps())
		requireInvalid(t, err, "has been recreated since")
	})
}

func TestPrepareCleanup(t *testing.T) {
	f := fixture(3)
	labels := map[string]string{"app": "db"}
	f.PVCs = append(f.PVCs, claim("data", "db", 3, labels), claim("wal", "db", 3, labels), claim("data", "db", 5, labels), controlledBy(claim("data", "db", 4, labels), otherSTS()))
	e := newEnv(t, f.Objects()...)
	p, err := Prepare(context.Background(), Config{Namespace: ns, Name: "db", Cleanup: true}, e.deps())
	require.NoError(t, err)
	assert.Equal(t, CleanupOperation, p.Operation)
	assert.Equal(t, PVCDelete, p.PVC)
	require.Len(t, p.Steps, 2)
	assert.Equal(t, 5, p.Steps[0].Ordinal)
	assert.Equal(t, []PlanPVC{{Name: "data-db-5", Template: "data", UID: "uid-data-db-5", Capacity: "1Gi", Action: PVCDelete}}, p.Steps[0].PVCs)
	assert.Equal(t, 3, p.Steps[1].Ordinal)
	assert.Len(t, p.Steps[1].PVCs, 2)
	assert.Empty(t, e.engine.Calls())
}

func TestPrepareScaleDownWithoutChangeCleansUp(t *testing.T) {
	f := fixture(3)
	f.PVCs = append(f.PVCs, claim("data", "db", 3, map[string]string{"app": "db"}))
	p, _, err := prepare(t, f, cfg(3))
	require.NoError(t, err)
	assert.Equal(t, CleanupOperation, p.Operation)
	require.Len(t, p.Steps, 1)
	assert.Equal(t, "data-db-3", p.Steps[0].PVCs[0].Name)
}

func TestPrepareListsOtherLeftovers(t *testing.T) {
	f := fixture(5)
	f.PVCs = append(f.PVCs, claim("data", "db", 7, map[string]string{"app": "db"}))
	p, _, err := prepare(t, f, cfg(3))
	require.NoError(t, err)
	assert.Equal(t, []string{"data-db-7"}, p.OtherLeftovers)
	for _, s := range p.Steps {
		assert.NotEqual(t, 7, s.Ordinal)
	}
}

func TestPrepareReadsAFixedNumberOfRequestsWhateverTheReplicaCount(t *testing.T) {
	// Reads, and access reviews of the permissions the run needs.
	count := func(n int) (int, int) {
		f := fixture(n)
		e := newEnv(t, f.Objects()...)
		d := e.deps()
		d.EngineFor = nil
		_, err := Prepare(context.Background(), cfg(1), d)
		require.NoError(t, err)
		reads, reviews := 0, 0
		for _, a := range e.client.Actions() {
			if a.GetResource().Resource == "selfsubjectaccessreviews" {
				reviews++
			} else {
				reads++
			}
		}
		return reads, reviews
	}
	small, smallReviews := count(3)
	large, largeReviews := count(40)
	assert.Equal(t, small, large)
	assert.LessOrEqual(t, small, 8)
	// create and update configmaps (the record), patch statefulsets,
	// delete persistentvolumeclaims.
	assert.Equal(t, 4, smallReviews)
	assert.Equal(t, 4, largeReviews)
}

func TestPrepareListsPodsOnlyBySelectors(t *testing.T) {
	f := fixture(5)
	// A budget over the StatefulSet's pods and a proxy beside them; an
	// unrelated pod in the namespace that no list may return.
	pdb := budget("db", appDB(), intOr(5), nil)
	proxy := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "proxy", UID: "proxy-uid", Labels: map[string]string{"app": "db", "role": "proxy"}},
		Status: corev1.PodStatus{Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}}}
	unrelated := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "web-0", Labels: map[string]string{"app": "web"}}}
	e := newEnv(t, objects(f, &pdb, proxy, unrelated)...)
	e.engine.members = primaryAt(0, 5)
	e.client.ClearActions()

	p, err := Prepare(context.Background(), cfg(3), e.deps())
	var refused *RefusedError
	require.ErrorAs(t, err, &refused)
	// 3 staying pods and the proxy are available; minAvailable 5 of
	// 3+1 expected pods fails: the proxy was counted.
	assert.Contains(t, err.Error(), "poddisruptionbudget db (minAvailable 5) needs 5 available pods, but only 4 would be left")
	require.NotNil(t, p)

	var selectors []string
	for _, a := range e.client.Actions() {
		if l, ok := a.(k8stesting.ListActionImpl); ok && l.GetResource().Resource == "pods" {
			selectors = append(selectors, l.GetListRestrictions().Labels.String())
		}
	}
	assert.Equal(t, []string{"app=db", "app=db"}, selectors, "the StatefulSet's pods, then the budget's, each by its selector")
}

// denyAccess makes the fake API server refuse the caller access.
func denyAccess(e *env, access kube.Access) {
	e.client.PrependReactor("create", "selfsubjectaccessreviews", func(a k8stesting.Action) (bool, runtime.Object, error) {
		review := a.(k8stesting.CreateAction).GetObject().(*authorizationv1.SelfSubjectAccessReview).DeepCopy()
		attr := review.Spec.ResourceAttributes
		review.Status.Allowed = attr.Verb != access.Verb || attr.Resource != access.Resource || attr.Group != access.Group || attr.Subresource != access.Subresource
		return true, review, nil
	})
}

// A permission the run needs and lacks refuses it before the first
// change: a run that scaled down and then met a Forbidden on the claims
// would stop part-way, its record holding the StatefulSet.
func TestAMissingPermissionRefusesTheRunBeforeAnyChange(t *testing.T) {
	f := fixture(3)
	e := newEnv(t, f.Objects()...)
	denyAccess(e, kube.Access{Verb: "delete", Resource: "persistentvolumeclaims"})
	d := e.deps()
	d.EngineFor = nil
	p, err := Prepare(context.Background(), cfg(1), d)
	var refused *RefusedError
	require.ErrorAs(t, err, &refused)
	require.NotNil(t, p, "the plan is shown with the refusal")
	assert.Equal(t, []string{"missing permission: delete persistentvolumeclaims in namespace " + ns +
		", which this run needs (without it the run would stop part-way); see docs/rbac.md for the Role kubectl-sts needs"}, refused.Reasons)

	// Keeping the claims needs no delete.
	c := cfg(1)
	c.PVC = PVCKeep
	_, err = Prepare(context.Background(), c, d)
	require.NoError(t, err)

	// A cleanup that snapshots the claims needs to create snapshots and
	// delete the claims, and no patch of the StatefulSet.
	assert.Equal(t, []kube.Access{
		{Verb: "create", Resource: "configmaps"}, {Verb: "update", Resource: "configmaps"},
		{Verb: "create", Group: "snapshot.storage.k8s.io", Resource: "volumesnapshots"}, {Verb: "delete", Resource: "persistentvolumeclaims"},
	}, accessNeeded(f.StatefulSet, Config{Cleanup: true, PVC: PVCSnapshot}, nil, false))
}
