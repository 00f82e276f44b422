package scaledown

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubectl-sts/kubectl-sts/pkg/journal"
)

// inputs are the Inputs of a healthy StatefulSet of n pods with a
// PostgreSQL-like engine whose primary is db-0.
func inputs(n int) Inputs {
	f := fixture(n)
	eng := &fakeEngine{}
	return Inputs{
		StatefulSet: f.StatefulSet, Now: testNow, Pods: f.Pods, PVCs: f.PVCs,
		EngineAsked: true, Engine: eng, Members: primaryAt(0, n),
	}
}

func TestBuildPlan(t *testing.T) {
	type check func(t *testing.T, p *Plan, err error)
	refused := func(want string) check {
		return func(t *testing.T, p *Plan, err error) {
			var r *RefusedError
			require.ErrorAs(t, err, &r)
			assert.Contains(t, err.Error(), want)
			require.NotNil(t, p, "a refusal comes with the plan")
		}
	}
	invalid := func(want string) check {
		return func(t *testing.T, p *Plan, err error) {
			var iv *InvalidError
			require.ErrorAs(t, err, &iv)
			assert.Contains(t, err.Error(), want)
			assert.Nil(t, p)
		}
	}
	steps := func(want ...string) check {
		return func(t *testing.T, p *Plan, err error) {
			require.NoError(t, err)
			var got []string
			for _, s := range p.Steps {
				line := s.Pod
				for _, c := range s.PVCs {
					line += " " + c.Name + ":" + string(c.Action)
				}
				got = append(got, line)
			}
			assert.Equal(t, want, got)
		}
	}
	cases := []struct {
		name  string
		in    func() Inputs
		cfg   Config
		check check
	}{
		{"removes the top ordinals, highest first, with their claims", func() Inputs { return inputs(5) }, cfg(3),
			steps("db-4 data-db-4:delete wal-db-4:delete", "db-3 data-db-3:delete wal-db-3:delete")},
		{"keeps claims by default", func() Inputs { return inputs(3) }, Config{Namespace: ns, Name: "db", Replicas: 2},
			steps("db-2 data-db-2:keep wal-db-2:keep")},
		{"whenScaled Delete leaves claims to Kubernetes", func() Inputs {
			in := inputs(3)
			in.StatefulSet.Spec.PersistentVolumeClaimRetentionPolicy = &appsv1.StatefulSetPersistentVolumeClaimRetentionPolicy{WhenScaled: appsv1.DeletePersistentVolumeClaimRetentionPolicyType}
			return in
		}, Config{Namespace: ns, Name: "db", Replicas: 2}, steps("db-2 data-db-2:kubernetes wal-db-2:kubernetes")},
		{"whenScaled Delete refuses an explicit keep", func() Inputs {
			in := inputs(3)
			in.StatefulSet.Spec.PersistentVolumeClaimRetentionPolicy = &appsv1.StatefulSetPersistentVolumeClaimRetentionPolicy{WhenScaled: appsv1.DeletePersistentVolumeClaimRetentionPolicyType}
			return in
		}, Config{Namespace: ns, Name: "db", Replicas: 2, PVC: PVCKeep, PVCExplicit: true}, invalid("--pvc keep cannot be honoured")},
		{"snapshot without the API", func() Inputs {
			in := inputs(3)
			in.SnapshotErr = &InvalidError{Msg: "no default VolumeSnapshotClass is set"}
			return in
		}, Config{Namespace: ns, Name: "db", Replicas: 2, PVC: PVCSnapshot, PVCExplicit: true}, invalid("no default VolumeSnapshotClass")},
		{"not below the current count", func() Inputs { return inputs(3) }, cfg(3), func(t *testing.T, p *Plan, err error) {
			// Same count with --pvc delete: a cleanup of leftovers.
			require.NoError(t, err)
			assert.Equal(t, CleanupOperation, p.Operation)
		}},
		{"above the current count", func() Inputs { return inputs(3) }, cfg(4), invalid("is not lower than the current 3 replicas")},
		{"the primary among the removed ordinals", func() Inputs {
			in := inputs(3)
			in.Members = primaryAt(2, 3)
			return in
		}, cfg(2), refused("db-2")},
		{"an engine that does not answer", func() Inputs {
			in := inputs(3)
			in.Members, in.MembersErr = nil, errors.New("connection refused")
			return in
		}, cfg(2), refused("cannot ask the fake engine which member is the primary: connection refused")},
		{"slot names without an engine", func() Inputs {
			in := inputs(3)
			in.EngineAsked, in.Engine, in.Members = false, nil, nil
			return in
		}, Config{Namespace: ns, Name: "db", Replicas: 2, SlotNames: []string{"replica_{ordinal}"}}, invalid("--slot-name needs a database engine")},
		{"an autoscaler", func() Inputs {
			in := inputs(3)
			in.AutoscalerReason = "horizontalpodautoscaler db manages the replicas"
			return in
		}, cfg(2), refused("horizontalpodautoscaler db manages the replicas")},
		{"budgets that may not be read", func() Inputs {
			in := inputs(3)
			in.PDBsForbidden = true
			return in
		}, cfg(2), func(t *testing.T, p *Plan, err error) {
			require.NoError(t, err)
			assert.Contains(t, p.Warnings, "cannot list poddisruptionbudgets (forbidden), so they were not checked")
		}},
		{"a budget the target breaks", func() Inputs {
			in := inputs(3)
			in.PDBs = append(in.PDBs, budget("db", appDB(), intOr(3), nil))
			for _, p := range in.Pods {
				in.PDBPods = append(in.PDBPods, *p)
			}
			return in
		}, cfg(2), refused("poddisruptionbudget db (minAvailable 3) needs 3 available pods, but only 2 would be left with 2 replicas")},
		{"a pod that stays is not ready", func() Inputs {
			f := fixture(3).NotReady(1, 0)
			in := inputs(3)
			in.Pods = f.Pods
			return in
		}, cfg(2), func(t *testing.T, p *Plan, err error) {
			var r *RefusedError
			require.ErrorAs(t, err, &r)
			assert.True(t, r.Forceable, "only health stands in the way")
		}},
		{"being deleted", func() Inputs {
			in := inputs(3)
			in.StatefulSet.DeletionTimestamp = &metav1.Time{Time: testNow}
			return in
		}, cfg(2), func(t *testing.T, p *Plan, err error) {
			var r *RefusedError
			require.ErrorAs(t, err, &r)
			assert.Contains(t, err.Error(), "statefulset db is being deleted")
			assert.Nil(t, p, "Read reads nothing past a StatefulSet being deleted, so there is no plan to show")
		}},
		{"another live run holds the record", func() Inputs {
			in := inputs(3)
			in.Record = &journal.Record{Operation: Operation, Phase: journal.Running, Holder: "other/1"}
			in.Held = &journal.HeldError{Holder: "other/1"}
			return in
		}, cfg(2), func(t *testing.T, p *Plan, err error) {
			var r *RefusedError
			require.ErrorAs(t, err, &r)
			assert.Nil(t, p)
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, err := BuildPlan(c.in(), c.cfg)
			c.check(t, p, err)
		})
	}
}

func TestBuildPlanIsAFunctionOfItsInputs(t *testing.T) {
	in := inputs(4)
	a, errA := BuildPlan(in, cfg(2))
	b, errB := BuildPlan(in, cfg(2))
	require.NoError(t, errA)
	require.NoError(t, errB)
	assert.Equal(t, a, b)
	assert.Equal(t, "db-0..db-1", a.Stay)
	assert.Equal(t, "fake", a.Engine)
	assert.Equal(t, "db-0", a.Primary)
}
