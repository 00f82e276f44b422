package status_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/kubectl-sts/kubectl-sts/pkg/status"
	"github.com/kubectl-sts/kubectl-sts/pkg/status/statustest"
)

var now = time.Date(2026, 1, 2, 15, 4, 5, 0, time.UTC)

func summarize(f *statustest.Fixture, opts status.Options) *status.Report {
	return status.Summarize(f.StatefulSet, f.Pods, f.PVCs, f.Now, opts)
}

func fixture(replicas int) *statustest.Fixture {
	return statustest.New("prod", "db", replicas, now)
}

func TestVerdict(t *testing.T) {
	type want struct {
		state status.State
		// codes are the expected reason codes, worst first.
		codes []status.Code
		// contains are substrings of the first reason's message and hint.
		message, hint []string
	}
	cases := []struct {
		name    string
		fixture func() *statustest.Fixture
		opts    status.Options
		want    want
	}{
		{
			name:    "healthy",
			fixture: func() *statustest.Fixture { return fixture(3) },
			want:    want{state: status.StateHealthy},
		},
		{
			name:    "rollout in progress",
			fixture: func() *statustest.Fixture { return fixture(3).StartRollout(0, 2) },
			want: want{state: status.StateProgressing, codes: []status.Code{status.CodeRolloutInProgress},
				message: []string{"rolling out revision " + statustest.UpdateHash, "1 of 3 pods updated"}},
		},
		{
			name:    "rollout in progress below a partition",
			fixture: func() *statustest.Fixture { return fixture(4).StartRollout(1, 3) },
			want: want{state: status.StateProgressing, codes: []status.Code{status.CodeRolloutInProgress},
				message: []string{"1 of 3 pods updated", "partition 1 holds 1 pod"}},
		},
		{
			name:    "rollout paused by partition",
			fixture: func() *statustest.Fixture { return fixture(3).StartRollout(2, 2) },
			want: want{state: status.StateProgressing, codes: []status.Code{status.CodeRolloutPaused},
				message: []string{"paused by partition 2", "1 of 3 pods run revision " + statustest.UpdateHash, "2 remain on " + statustest.CurrentHash},
				hint:    []string{"kubectl sts rollout db --staged -n prod", `"partition":0`}},
		},
		{
			name: "rollout stuck on a broken update pod",
			fixture: func() *statustest.Fixture {
				return fixture(3).StartRollout(0).Recreate(2, statustest.UpdateHash, 10*time.Minute, false)
			},
			want: want{state: status.StateDegraded, codes: []status.Code{status.CodeRolloutStuck},
				message: []string{"rollout stuck", "pod db-2 on update revision " + statustest.UpdateHash, "not been Ready for 10m",
					"Reverting the template alone will not replace db-2", "OrderedReady"},
				hint: []string{"kubectl rollout undo statefulset/db -n prod", "kubectl delete pod db-2 -n prod"}},
		},
		{
			name: "update pod not Ready yet is progress, not stuck",
			fixture: func() *statustest.Fixture {
				return fixture(3).StartRollout(0).Recreate(2, statustest.UpdateHash, time.Minute, false)
			},
			want: want{state: status.StateProgressing, codes: []status.Code{status.CodePodNotReady, status.CodeRolloutInProgress},
				message: []string{"pod db-2 has not been Ready for 60s", "state: Running, not Ready"}},
		},
		{
			name: "the stuck threshold is an option",
			fixture: func() *statustest.Fixture {
				return fixture(3).StartRollout(0).Recreate(2, statustest.UpdateHash, time.Minute, false)
			},
			opts: status.Options{StuckAfter: 30 * time.Second},
			want: want{state: status.StateDegraded, codes: []status.Code{status.CodeRolloutStuck}},
		},
		{
			name: "stuck with Parallel: a revert replaces the pod",
			fixture: func() *statustest.Fixture {
				f := fixture(3).StartRollout(0).Recreate(2, statustest.UpdateHash, 10*time.Minute, false)
				f.StatefulSet.Spec.PodManagementPolicy = appsv1.ParallelPodManagement
				return f
			},
			want: want{state: status.StateDegraded, codes: []status.Code{status.CodeRolloutStuck},
				message: []string{"rollout stuck"},
				hint:    []string{"with podManagementPolicy Parallel the controller then replaces db-2"}},
		},
		{
			name: "stuck on an abandoned revision after a template revert",
			fixture: func() *statustest.Fixture {
				return fixture(3).Recreate(2, statustest.OtherHash, 10*time.Minute, false)
			},
			want: want{state: status.StateDegraded, codes: []status.Code{status.CodeRolloutStuck},
				message: []string{"pod db-2 runs revision " + statustest.OtherHash, "no longer the update revision " + statustest.CurrentHash,
					"will not replace it by itself"},
				hint: []string{"kubectl delete pod db-2 -n prod"}},
		},
		{
			name:    "pod not Ready past the threshold without a rollout",
			fixture: func() *statustest.Fixture { return fixture(3).NotReady(1, time.Hour) },
			want: want{state: status.StateDegraded, codes: []status.Code{status.CodePodNotReady},
				message: []string{"pod db-1 has not been Ready for 60m"}, hint: []string{"kubectl describe pod db-1 -n prod"}},
		},
		{
			name:    "crash looping pod is broken at once",
			fixture: func() *statustest.Fixture { return fixture(3).NotReady(1, time.Minute).CrashLoop(1, 4) },
			want: want{state: status.StateDegraded, codes: []status.Code{status.CodePodNotReady},
				message: []string{"CrashLoopBackOff"}},
		},
		{
			name:    "missing pod",
			fixture: func() *statustest.Fixture { return fixture(3).DeletePod(2) },
			want: want{state: status.StateProgressing, codes: []status.Code{status.CodePodMissing},
				message: []string{"pod db-2 does not exist yet"}},
		},
		{
			name:    "missing pod behind a pod that is not Ready",
			fixture: func() *statustest.Fixture { return fixture(3).NotReady(1, time.Minute).DeletePod(2) },
			want:    want{state: status.StateProgressing, codes: []status.Code{status.CodePodNotReady, status.CodePodMissing}},
		},
		{
			name:    "terminating pod",
			fixture: func() *statustest.Fixture { return fixture(3).Terminating(1, 10*time.Second) },
			want: want{state: status.StateProgressing, codes: []status.Code{status.CodePodTerminating},
				message: []string{"pod db-1 is terminating"}},
		},
		{
			name:    "pod terminating for too long",
			fixture: func() *statustest.Fixture { return fixture(3).Terminating(1, time.Hour) },
			want: want{state: status.StateNeedsAttention, codes: []status.Code{status.CodePodTerminating},
				message: []string{"terminating for over 60m"}, hint: []string{"finalizers"}},
		},
		{
			name:    "scale-down in progress",
			fixture: func() *statustest.Fixture { return fixture(3).ScaleTo(2) },
			want: want{state: status.StateProgressing, codes: []status.Code{status.CodeScaleDownInProgress},
				message: []string{"scaling down to 2 replicas: db-2 still exists"}},
		},
		{
			name:    "leftover claims after a scale-down",
			fixture: func() *statustest.Fixture { return fixture(4).ScaleTo(2).DeletePod(2).DeletePod(3) },
			want: want{state: status.StateNeedsAttention, codes: []status.Code{status.CodeLeftoverPVCs},
				message: []string{"2 pvcs left over from ordinals outside 0..1", "whenScaled: Retain", "data-db-2, data-db-3"},
				hint:    []string{"kubectl sts cleanup-pvcs db -n prod", "reattaches them"}},
		},
		{
			name:    "resize requested",
			fixture: func() *statustest.Fixture { return fixture(3).Resize(1, "2Gi", "requested") },
			want: want{state: status.StateProgressing, codes: []status.Code{status.CodePVCResizing},
				message: []string{"pvc data-db-1 is being resized from 1Gi to 2Gi"}},
		},
		{
			name:    "resize in progress",
			fixture: func() *statustest.Fixture { return fixture(3).Resize(1, "2Gi", "in-progress") },
			want: want{state: status.StateProgressing, codes: []status.Code{status.CodePVCResizing},
				message: []string{"ControllerResizeInProgress"}},
		},
		{
			name:    "resize pending a pod restart",
			fixture: func() *statustest.Fixture { return fixture(3).Resize(1, "2Gi", "pending-restart") },
			want: want{state: status.StateNeedsAttention, codes: []status.Code{status.CodePVCResizePendingRestart},
				message: []string{"expanded to 2Gi", "waits for pod db-1 to restart", "capacity still 1Gi"},
				hint:    []string{"kubectl delete pod db-1 -n prod", "kubectl sts expand-pvc db --size 2Gi -n prod"}},
		},
		{
			name:    "resize failed",
			fixture: func() *statustest.Fixture { return fixture(3).Resize(0, "2Gi", "failed") },
			want: want{state: status.StateDegraded, codes: []status.Code{status.CodePVCResizeFailed},
				message: []string{"resize to 2Gi failed", "requested size exceeds the pool", "ControllerResizeInfeasible"},
				hint:    []string{"set the request back to the capacity 1Gi"}},
		},
		{
			name: "spec not observed yet",
			fixture: func() *statustest.Fixture {
				f := fixture(3)
				f.StatefulSet.Generation = 2
				return f
			},
			want: want{state: status.StateProgressing, codes: []status.Code{status.CodeNotObserved},
				message: []string{"generation 2, observed 1"}},
		},
		{
			name: "OnDelete with outdated pods",
			fixture: func() *statustest.Fixture {
				f := fixture(3).StartRollout(0, 2)
				f.StatefulSet.Spec.UpdateStrategy = appsv1.StatefulSetUpdateStrategy{Type: appsv1.OnDeleteStatefulSetStrategyType}
				return f
			},
			want: want{state: status.StateNeedsAttention, codes: []status.Code{status.CodeUpdatePendingOnDelete},
				message: []string{"2 of 3 pods run an older revision"}, hint: []string{"kubectl delete pod db-1 -n prod"}},
		},
		{
			name: "claim missing for an existing pod",
			fixture: func() *statustest.Fixture {
				f := fixture(2)
				f.PVCs = f.PVCs[:1]
				return f
			},
			want: want{state: status.StateProgressing, codes: []status.Code{status.CodePVCMissing},
				message: []string{"pvc data-db-1 of pod db-1 does not exist yet"}},
		},
		{
			name: "StatefulSet being deleted",
			fixture: func() *statustest.Fixture {
				f := fixture(1)
				f.StatefulSet.DeletionTimestamp = &metav1.Time{Time: now}
				return f
			},
			want: want{state: status.StateNeedsAttention, codes: []status.Code{status.CodeDeleting}},
		},
		{
			name: "stuck outranks leftovers and progress",
			fixture: func() *statustest.Fixture {
				return fixture(3).AddLeftoverPVC(5).StartRollout(0).Recreate(2, statustest.UpdateHash, time.Hour, false)
			},
			want: want{state: status.StateDegraded, codes: []status.Code{status.CodeRolloutStuck, status.CodeLeftoverPVCs}},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := summarize(tc.fixture(), tc.opts)
			v := r.Verdict
			assert.Equal(t, tc.want.state, v.State, "reasons: %+v", v.Reasons)
			assert.Equal(t, tc.want.state == status.StateHealthy, v.Healthy)
			if tc.want.codes == nil {
				assert.Empty(t, v.Reasons)
			} else {
				assert.Equal(t, tc.want.codes, v.Codes(), "reasons: %+v", v.Reasons)
			}
			if len(tc.want.message)+len(tc.want.hint) == 0 {
				return
			}
			require.NotEmpty(t, v.Reasons)
			for _, s := range tc.want.message {
				assert.Contains(t, v.Reasons[0].Message, s)
			}
			for _, s := range tc.want.hint {
				assert.Contains(t, v.Reasons[0].Hint, s)
			}
		})
	}
}

func TestVerdictHas(t *testing.T) {
	r := summarize(fixture(3).StartRollout(2, 2), status.Options{})
	assert.True(t, r.Verdict.Has(status.CodeRolloutPaused))
	assert.True(t, r.Verdict.Has(status.CodeRolloutInProgress, status.CodeRolloutPaused))
	assert.False(t, r.Verdict.Has(status.CodeRolloutStuck))
}

func TestJudgeIsPureOverTheModel(t *testing.T) {
	r := summarize(fixture(3).StartRollout(0).Recreate(2, statustest.UpdateHash, 2*time.Minute, false), status.Options{})
	require.Equal(t, status.StateProgressing, r.Verdict.State)

	// The same model judged later crosses the threshold.
	later := *r
	later.ObservedAt = r.ObservedAt.Add(10 * time.Minute)
	v := status.Judge(&later, status.Options{})
	assert.Equal(t, status.StateDegraded, v.State)
	assert.True(t, v.Has(status.CodeRolloutStuck))
	// And the original report is unchanged.
	assert.Equal(t, status.StateProgressing, r.Verdict.State)
}

func TestDefaultStuckAfter(t *testing.T) {
	f := func(age time.Duration) status.State {
		return summarize(fixture(1).StartRollout(0).Recreate(0, statustest.UpdateHash, age, false), status.Options{}).Verdict.State
	}
	assert.Equal(t, status.StateProgressing, f(status.DefaultStuckAfter-time.Second))
	assert.Equal(t, status.StateDegraded, f(status.DefaultStuckAfter))
}

func TestPartitionCountsFromOrdinalsStart(t *testing.T) {
	f := fixture(3)
	f.StatefulSet.Spec.Ordinals = &appsv1.StatefulSetOrdinals{Start: 5}
	r := summarize(f, status.Options{})
	// Pods db-0..2 are outside 5..7: they are condemned, 5..7 missing.
	assert.Equal(t, []int{0, 1, 2, 5, 6, 7}, ordinalsOf(r))
	assert.True(t, r.Verdict.Has(status.CodePodMissing, status.CodeScaleDownInProgress))

	// With pods at 5..7 and partition 1, ordinals 6 and 7 are targets.
	f2 := statustest.New("prod", "db", 8, now)
	f2.StatefulSet.Spec.Replicas = ptr.To(int32(3))
	f2.StatefulSet.Spec.Ordinals = &appsv1.StatefulSetOrdinals{Start: 5}
	for _, n := range []int{0, 1, 2, 3, 4} {
		f2.DeletePod(n)
	}
	f2.PVCs = f2.PVCs[5:]
	f2.StartRollout(1, 7, 6)
	r2 := summarize(f2, status.Options{})
	assert.Equal(t, []int{5, 6, 7}, ordinalsOf(r2))
	assert.Equal(t, []status.Code{status.CodeRolloutPaused}, r2.Verdict.Codes(), "%+v", r2.Verdict.Reasons)
	assert.Contains(t, r2.Verdict.Reasons[0].Message, "ordinals below 6")
}

func ordinalsOf(r *status.Report) []int {
	var out []int
	for _, o := range r.Ordinals {
		out = append(out, o.Ordinal)
	}
	return out
}
