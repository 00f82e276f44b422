package status_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kubectl-sts/kubectl-sts/pkg/status"
	"github.com/kubectl-sts/kubectl-sts/pkg/status/statustest"
)

// An unfinished operation is part of the truth about a StatefulSet: other
// changes are refused until it ends, and the way on is its own command, not
// a hand-made patch of the partition.
func TestUnfinishedOperationIsReportedWithTheWayOn(t *testing.T) {
	started := now.Add(-time.Minute)
	reason := func(r *status.Report, code status.Code) status.Reason {
		t.Helper()
		for _, x := range r.Verdict.Reasons {
			if x.Code == code {
				return x
			}
		}
		t.Fatalf("no reason %s in %+v", code, r.Verdict.Reasons)
		return status.Reason{}
	}

	t.Run("a paused rollout says resume or undo, not patch the partition", func(t *testing.T) {
		r := summarize(fixture(3).StartRollout(2, 2), status.Options{})
		status.SetOperation(r, &status.OperationStatus{Operation: "rollout", Phase: "Paused", Started: started,
			Holder: "host/1/a", Heartbeat: started}, status.Options{})
		assert.Equal(t, status.StateProgressing, r.Verdict.State)
		op := reason(r, status.CodeOperationUnfinished)
		assert.Equal(t, "configmap/kubectl-sts.db", op.Object)
		assert.Contains(t, op.Message, "paused at an approval point")
		assert.Contains(t, op.Hint, "kubectl sts rollout resume db -n prod")
		assert.Contains(t, op.Hint, "kubectl sts rollout undo db -n prod")
		paused := reason(r, status.CodeRolloutPaused)
		assert.NotContains(t, paused.Hint, `"partition":0`)
		assert.NotContains(t, paused.Hint, "--staged")
		assert.Contains(t, paused.Hint, string(status.CodeOperationUnfinished))
	})

	t.Run("a rollout stopped part-way on healthy pods is not Healthy", func(t *testing.T) {
		r := summarize(fixture(3), status.Options{})
		require.Equal(t, status.StateHealthy, r.Verdict.State)
		status.SetOperation(r, &status.OperationStatus{Operation: "rollout", Phase: "Running", Started: started,
			Holder: "host/1/a", Heartbeat: started}, status.Options{})
		assert.Equal(t, status.StateProgressing, r.Verdict.State)
		assert.False(t, r.Verdict.Healthy)
		op := reason(r, status.CodeOperationUnfinished)
		assert.Contains(t, op.Message, "stopped part-way (Running, no process holds it)")
		assert.Contains(t, op.Hint, "kubectl sts rollout resume db -n prod")
	})

	t.Run("a run holding the lease is named with its expiry", func(t *testing.T) {
		expires := now.Add(20 * time.Second)
		r := summarize(fixture(3), status.Options{})
		status.SetOperation(r, &status.OperationStatus{Operation: "expand-pvc", Phase: "Running", Started: started,
			Holder: "host/7/b", Heartbeat: now.Add(-10 * time.Second), LeaseExpires: &expires}, status.Options{})
		op := reason(r, status.CodeOperationUnfinished)
		assert.Contains(t, op.Message, "the expand-pvc started")
		assert.Contains(t, op.Message, "host/7/b holds its lease (last heartbeat 10s ago; it expires at "+expires.UTC().Format(time.RFC3339)+")")
		assert.Contains(t, op.Hint, "--take-over")
		assert.NotContains(t, op.Hint, "rollout status")
	})

	t.Run("a scale-down stopped part-way says to run it again", func(t *testing.T) {
		r := summarize(fixture(3), status.Options{})
		status.SetOperation(r, &status.OperationStatus{Operation: "scale-down", Phase: "Running", Started: started}, status.Options{})
		op := reason(r, status.CodeOperationUnfinished)
		assert.Contains(t, op.Hint, "run the same kubectl sts scale-down command again")
	})

	t.Run("no record, no reason", func(t *testing.T) {
		r := summarize(fixture(3), status.Options{})
		status.SetOperation(r, nil, status.Options{})
		assert.Equal(t, status.StateHealthy, r.Verdict.State)
		assert.Empty(t, r.Verdict.Reasons)
	})
}

// A rollout whose StatefulSet someone else gave another template cannot be
// resumed (the rollout refuses): status says so and offers undo or abort.
func TestUnfinishedRolloutOverwrittenBySomeoneElse(t *testing.T) {
	started := now.Add(-time.Minute)
	f := fixture(3).StartRollout(2, 2)
	r := summarize(f, status.Options{})
	other := f.StatefulSet.Status.UpdateRevision + "x"
	r.StatefulSet.UpdateRevision = other
	status.SetOperation(r, &status.OperationStatus{Operation: "rollout", Phase: "Paused", Started: started,
		From: f.Revision(statustest.CurrentHash), To: f.Revision(statustest.UpdateHash)}, status.Options{})
	var op status.Reason
	for _, x := range r.Verdict.Reasons {
		if x.Code == status.CodeOperationUnfinished {
			op = x
		}
	}
	require.Equal(t, status.CodeOperationUnfinished, op.Code, "%+v", r.Verdict.Reasons)
	assert.Contains(t, op.Message, "the pod template changed since it started (update revision now "+other+", the rollout was rolling out "+f.Revision(statustest.UpdateHash)+")")
	assert.Contains(t, op.Hint, "undo it with: kubectl sts rollout undo db -n prod")
	assert.Contains(t, op.Hint, "abort it with: kubectl sts rollout abort db -n prod")
	assert.NotContains(t, op.Hint, "resume")

	// On the rollout's own revisions (before its template is applied, or
	// after a rollback restored the old one) resume stays the way on.
	for _, rev := range []string{f.Revision(statustest.CurrentHash), f.Revision(statustest.UpdateHash)} {
		r.StatefulSet.UpdateRevision = rev
		status.SetOperation(r, r.Operation, status.Options{})
		for _, x := range r.Verdict.Reasons {
			if x.Code == status.CodeOperationUnfinished {
				assert.Contains(t, x.Hint, "kubectl sts rollout resume db -n prod", rev)
			}
		}
	}
}
