package expand

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/kubectl-sts/kubectl-sts/pkg/journal"
	"github.com/kubectl-sts/kubectl-sts/plugins"
)

// inputs returns healthy inputs: n ordinals of class at 1Gi, all Ready.
func inputs(n int32, class string) Inputs {
	sts := newSTS(n, class, "1Gi")
	in := Inputs{
		StatefulSet:        sts,
		StorageClasses:     map[string]*storagev1.StorageClass{},
		StorageClassErrors: map[string]error{},
		Now:                time.Date(2026, 1, 2, 15, 4, 5, 0, time.UTC),
	}
	for _, sc := range []*storagev1.StorageClass{storageClass(classOff, true), storageClass(classOn, true), storageClass(classNone, false)} {
		in.StorageClasses[sc.Name] = sc
	}
	for i := 0; i < int(n); i++ {
		in.Pods = append(in.Pods, newPod(sts, i, "pod-uid"))
		in.PVCs = append(in.PVCs, newPVC(i, class, "1Gi", "1Gi"))
	}
	return in
}

func params(size string) Params {
	return Params{Size: resource.MustParse(size), Restart: RestartAuto, UpdateTemplate: true}
}

// refused builds the plan and returns its problems; it fails the test when
// the plan is accepted.
func refused(t *testing.T, in Inputs, p Params) []Problem {
	t.Helper()
	plan, err := BuildPlan(in, p)
	require.Nil(t, plan)
	var pe *PreflightError
	require.ErrorAs(t, err, &pe)
	require.NotEmpty(t, pe.Problems)
	return pe.Problems
}

func messages(ps []Problem) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.Message + " | " + p.Hint
	}
	return out
}

func requireProblem(t *testing.T, ps []Problem, want string) Problem {
	t.Helper()
	for _, p := range ps {
		if strings.Contains(p.Message+" | "+p.Hint, want) {
			return p
		}
	}
	t.Fatalf("no problem mentions %q; got %q", want, messages(ps))
	return Problem{}
}

func TestBuildPlanHappyPath(t *testing.T) {
	plan, err := BuildPlan(inputs(3, classOff), params("2Gi"))
	require.NoError(t, err)
	assert.Equal(t, "data", plan.Claim)
	assert.Equal(t, "2Gi", plan.Size)
	require.Len(t, plan.Ordinals, 3)
	for i, o := range plan.Ordinals {
		assert.Equal(t, 2-i, o.Ordinal)
		assert.Equal(t, ActionExpand, o.Action)
		assert.Equal(t, RestartIfNeeded, o.Restart)
		assert.Equal(t, "1Gi", o.Requested)
		assert.Equal(t, classOff, o.StorageClass)
	}
	assert.True(t, plan.Template.Update)
	assert.Equal(t, "1Gi", plan.Template.Current)
	assert.True(t, plan.Changes())
	assert.Equal(t, []string{"db-2", "db-1", "db-0"}, plan.Restarts())
	assert.Empty(t, plan.Warnings)
}

func TestBuildPlanRestartExpectations(t *testing.T) {
	for _, tc := range []struct {
		policy RestartPolicy
		want   string
	}{{RestartAuto, RestartIfNeeded}, {RestartAlways, RestartYes}, {RestartNever, RestartLeft}} {
		p := params("2Gi")
		p.Restart = tc.policy
		plan, err := BuildPlan(inputs(1, classOff), p)
		require.NoError(t, err)
		assert.Equal(t, tc.want, plan.Ordinals[0].Restart, tc.policy)
	}
}

func TestBuildPlanHonoursOrdinalsStart(t *testing.T) {
	in := inputs(2, classOn)
	in.StatefulSet.Spec.Ordinals = &appsv1.StatefulSetOrdinals{Start: 5}
	in.PVCs = []*corev1.PersistentVolumeClaim{newPVC(5, classOn, "1Gi", "1Gi"), newPVC(6, classOn, "1Gi", "1Gi")}
	in.Pods = []*corev1.Pod{newPod(in.StatefulSet, 5, "a"), newPod(in.StatefulSet, 6, "b")}
	plan, err := BuildPlan(in, params("2Gi"))
	require.NoError(t, err)
	assert.Equal(t, []int{6, 5}, ordinalsOf(plan))
	assert.Equal(t, "data-db-6", plan.Ordinals[0].PVC)
}

func TestBuildPlanSkipsClaimsAlreadyAtTheSize(t *testing.T) {
	in := inputs(3, classOn)
	in.PVCs[1] = newPVC(1, classOn, "2Gi", "2Gi")
	in.PVCs[2] = pvcWith("2Gi", "1Gi", corev1.PersistentVolumeClaimNodeResizePending, corev1.PersistentVolumeClaimFileSystemResizePending)
	in.PVCs[2].Name = "data-db-2"
	plan, err := BuildPlan(in, params("2Gi"))
	require.NoError(t, err)
	actions := map[int]Action{}
	for _, o := range plan.Ordinals {
		actions[o.Ordinal] = o.Action
	}
	assert.Equal(t, map[int]Action{0: ActionExpand, 1: ActionDone, 2: ActionContinue}, actions)
	assert.Len(t, plan.Pending(), 2)
}

func TestBuildPlanNothingToDo(t *testing.T) {
	in := inputs(2, classOn)
	in.StatefulSet.Spec.VolumeClaimTemplates[0].Spec.Resources.Requests[corev1.ResourceStorage] = resource.MustParse("2Gi")
	for i := range in.PVCs {
		in.PVCs[i] = newPVC(i, classOn, "2Gi", "2Gi")
	}
	plan, err := BuildPlan(in, params("2048Mi"))
	require.NoError(t, err)
	assert.False(t, plan.Changes(), "equal sizes are done, whatever their spelling")
	assert.False(t, plan.Template.Update)
	assert.Contains(t, plan.Template.Reason, "already requests 2Gi")
}

func TestBuildPlanTemplateChoices(t *testing.T) {
	p := params("2Gi")
	p.UpdateTemplate = false
	plan, err := BuildPlan(inputs(1, classOn), p)
	require.NoError(t, err)
	assert.False(t, plan.Template.Update)
	assert.Contains(t, plan.Template.Reason, "--no-update-template")

	in := inputs(1, classOn)
	in.StatefulSet.Spec.VolumeClaimTemplates[0].Spec.Resources.Requests[corev1.ResourceStorage] = resource.MustParse("10Gi")
	plan, err = BuildPlan(in, params("2Gi"))
	require.NoError(t, err)
	assert.False(t, plan.Template.Update, "a larger template is left alone")
	assert.Contains(t, plan.Template.Reason, "more than 2Gi")
}

func TestBuildPlanNamesGitOpsTools(t *testing.T) {
	in := inputs(1, classOn)
	in.StatefulSet.Labels["app.kubernetes.io/managed-by"] = "Helm"
	in.StatefulSet.Annotations = map[string]string{"meta.helm.sh/release-name": "db", "argocd.argoproj.io/tracking-id": "x"}
	plan, err := BuildPlan(in, params("2Gi"))
	require.NoError(t, err)
	assert.Equal(t, []string{"Argo CD", "Helm"}, plan.Template.ManagedBy)
}

func TestBuildPlanWarnsAboutLeftoverClaims(t *testing.T) {
	in := inputs(2, classOn)
	in.PVCs = append(in.PVCs, newPVC(2, classOn, "1Gi", "1Gi"), newPVC(3, classOn, "5Gi", "5Gi"))
	plan, err := BuildPlan(in, params("2Gi"))
	require.NoError(t, err)
	require.Len(t, plan.Warnings, 1)
	assert.Contains(t, plan.Warnings[0], "data-db-2 outside the 2 desired ordinals is not expanded")
	assert.NotContains(t, plan.Warnings[0], "data-db-3", "a claim already as large is not mentioned")
}

func TestBuildPlanOrdersByEngineRoles(t *testing.T) {
	in := inputs(3, classOn)
	in.Engine = &fakeEngine{}
	in.Members = members(plugins.RolePrimary, plugins.RoleReplica, plugins.RoleReplica)
	plan, err := BuildPlan(in, params("2Gi"))
	require.NoError(t, err)
	assert.Equal(t, []int{2, 1, 0}, ordinalsOf(plan))
	assert.Equal(t, plugins.RolePrimary, plan.Ordinals[2].Role)

	in.Members = members(plugins.RoleReplica, plugins.RoleReplica, plugins.RolePrimary)
	plan, err = BuildPlan(in, params("2Gi"))
	require.NoError(t, err)
	assert.Equal(t, []int{1, 0, 2}, ordinalsOf(plan))
	assert.Equal(t, "fakedb", plan.Engine)
}

func TestBuildPlanRefusals(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(*Inputs, *Params)
		want   string
	}{
		{"no claim templates", func(in *Inputs, _ *Params) { in.StatefulSet.Spec.VolumeClaimTemplates = nil }, "has no volumeClaimTemplates"},
		{"several templates", func(in *Inputs, _ *Params) {
			wal := in.StatefulSet.Spec.VolumeClaimTemplates[0]
			wal.Name = "wal"
			in.StatefulSet.Spec.VolumeClaimTemplates = append(in.StatefulSet.Spec.VolumeClaimTemplates, wal)
		}, "has 2 volumeClaimTemplates (data, wal): pick one with --claim"},
		{"unknown claim", func(_ *Inputs, p *Params) { p.Claim = "logs" }, `has no volumeClaimTemplate "logs"; it has: data`},
		{"statefulset deleting", func(in *Inputs, _ *Params) { in.StatefulSet.DeletionTimestamp = &metav1.Time{} }, "statefulset db is being deleted"},
		{"claim missing", func(in *Inputs, _ *Params) { in.PVCs = in.PVCs[1:] }, "pvc data-db-0 of ordinal 0 does not exist"},
		{"claim pending", func(in *Inputs, _ *Params) { in.PVCs[1].Status.Phase = corev1.ClaimPending }, "pvc data-db-1 is Pending, not Bound"},
		{"claim deleting", func(in *Inputs, _ *Params) { in.PVCs[1].DeletionTimestamp = &metav1.Time{} }, "pvc data-db-1 is being deleted"},
		{"no storage class", func(in *Inputs, _ *Params) { in.PVCs[0].Spec.StorageClassName = nil }, "pvc data-db-0 has no StorageClass"},
		{"storage class missing", func(in *Inputs, _ *Params) { delete(in.StorageClasses, classOn) }, "StorageClass online of pvc data-db-0, data-db-1 does not exist"},
		{"storage class not expandable", func(in *Inputs, _ *Params) {
			for i := range in.PVCs {
				in.PVCs[i].Spec.StorageClassName = ptr(classNone)
			}
		}, "StorageClass fixed does not allow volume expansion (allowVolumeExpansion is not true), so the API server refuses to grow pvc data-db-0, data-db-1"},
		{"shrink", func(_ *Inputs, p *Params) { p.Size = resource.MustParse("512Mi") }, "--size 512Mi is smaller than what is already requested (data-db-0 requests 1Gi, data-db-1 requests 1Gi): a volume cannot be shrunk"},
		{"shrink below one claim", func(in *Inputs, _ *Params) { in.PVCs[1] = newPVC(1, classOn, "3Gi", "3Gi") }, "data-db-1 requests 3Gi"},
		{"earlier resize infeasible", func(in *Inputs, _ *Params) {
			in.PVCs[0] = stale(pvcWith("2Gi", "1Gi", corev1.PersistentVolumeClaimControllerResizeInfeasible, corev1.PersistentVolumeClaimControllerResizeError), "2Gi")
			in.PVCs[0].Name = "data-db-0"
		}, "an earlier resize of pvc data-db-0 to 2Gi failed"},
		{"retry not above the capacity", func(in *Inputs, p *Params) {
			in.PVCs[0] = stale(pvcWith("3Gi", "2Gi", corev1.PersistentVolumeClaimControllerResizeInfeasible), "3Gi")
			in.PVCs[0].Name = "data-db-0"
		}, "--size 2Gi is not above its capacity 2Gi"},
		{"quota", func(in *Inputs, _ *Params) {
			in.Quotas = []corev1.ResourceQuota{{ObjectMeta: metav1.ObjectMeta{Name: "storage"},
				Spec:   corev1.ResourceQuotaSpec{Hard: corev1.ResourceList{corev1.ResourceRequestsStorage: resource.MustParse("3Gi")}},
				Status: corev1.ResourceQuotaStatus{Used: corev1.ResourceList{corev1.ResourceRequestsStorage: resource.MustParse("2Gi")}}}}
		}, "ResourceQuota storage allows requests.storage 3Gi; 2Gi is used and this expansion adds 2Gi"},
		{"class quota", func(in *Inputs, _ *Params) {
			key := corev1.ResourceName(classOn + ".storageclass.storage.k8s.io/requests.storage")
			in.Quotas = []corev1.ResourceQuota{{ObjectMeta: metav1.ObjectMeta{Name: "fast"},
				Status: corev1.ResourceQuotaStatus{Hard: corev1.ResourceList{key: resource.MustParse("3Gi")}, Used: corev1.ResourceList{key: resource.MustParse("2Gi")}}}}
		}, "ResourceQuota fast allows online.storageclass.storage.k8s.io/requests.storage 3Gi"},
		{"limit range", func(in *Inputs, _ *Params) {
			in.LimitRanges = []corev1.LimitRange{{ObjectMeta: metav1.ObjectMeta{Name: "claims"}, Spec: corev1.LimitRangeSpec{Limits: []corev1.LimitRangeItem{{
				Type: corev1.LimitTypePersistentVolumeClaim, Max: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1536Mi")}}}}}}
		}, "LimitRange claims allows claims of at most 1536Mi; --size 2Gi is larger"},
		{"controlled by an operator", func(in *Inputs, _ *Params) {
			in.StatefulSet.OwnerReferences = []metav1.OwnerReference{{Kind: "PostgresCluster", Name: "pg", Controller: ptr(true)}}
		}, "controlled by PostgresCluster pg: recreating it to update its template would fight that controller"},
		{"finalizer", func(in *Inputs, _ *Params) { in.StatefulSet.Finalizers = []string{"example.com/protect"} }, "has finalizers (example.com/protect)"},
		{"another operation unfinished", func(in *Inputs, _ *Params) {
			in.Record = &journal.Record{Operation: "rollout", Phase: journal.Paused, Started: in.Now}
		}, "an unfinished rollout (Paused"},
		{"another expansion interrupted", func(in *Inputs, _ *Params) {
			raw, _ := json.Marshal(&State{Claim: "data", Size: "5Gi"})
			in.Record = &journal.Record{Operation: Operation, Phase: journal.Running, Started: in.Now, State: raw}
		}, "an interrupted expand-pvc of claim data to 5Gi is recorded"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in, p := inputs(2, classOn), params("2Gi")
			tc.change(&in, &p)
			problems := refused(t, in, p)
			got := requireProblem(t, problems, tc.want)
			assert.False(t, got.Forcible, "only health problems can be forced")
		})
	}
}

func TestBuildPlanForcibleRefusals(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(*Inputs)
		want   string
	}{
		{"rollout in progress", func(in *Inputs) {
			in.StatefulSet.Status.UpdateRevision = "db-rev2"
			in.StatefulSet.Status.UpdatedReplicas = 0
		}, "the StatefulSet is changing: rolling out revision"},
		{"not observed", func(in *Inputs) {
			in.StatefulSet.Generation = 3
			in.StatefulSet.Status.ObservedGeneration = 2
		}, "has not yet acted on the latest spec"},
		{"pod not ready", func(in *Inputs) { in.Pods[0].Status.Conditions[0].Status = corev1.ConditionFalse }, "pod db-0 has not been Ready"},
		{"pod missing", func(in *Inputs) { in.Pods = in.Pods[1:] }, "pod db-0 does not exist yet"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := inputs(2, classOn)
			tc.change(&in)
			got := requireProblem(t, refused(t, in, params("2Gi")), tc.want)
			assert.True(t, got.Forcible)
			assert.Contains(t, got.Hint, "--force risks")

			p := params("2Gi")
			p.Force = true
			plan, err := BuildPlan(in, p)
			require.NoError(t, err, "--force accepts the risk")
			assert.Contains(t, plan.Warnings[0], "--force: ")
		})
	}
}

func TestBuildPlanRefusalListsEveryProblem(t *testing.T) {
	in := inputs(2, classOn)
	in.PVCs[0].Spec.StorageClassName = ptr(classNone)
	in.PVCs[1].Status.Phase = corev1.ClaimLost
	in.Pods[0].Status.Conditions[0].Status = corev1.ConditionFalse
	_, err := BuildPlan(in, params("2Gi"))
	var pe *PreflightError
	require.ErrorAs(t, err, &pe)
	assert.Len(t, pe.Problems, 3, messages(pe.Problems))
	msg := err.Error()
	assert.Contains(t, msg, "expand-pvc of statefulset db refused; nothing was changed:")
	assert.Contains(t, msg, "[--force]")
}

func TestBuildPlanResumeToleratesThePodItWasRestarting(t *testing.T) {
	in := inputs(2, classOff)
	in.Pods[1].Status.Conditions[0].Status = corev1.ConditionFalse
	in.PVCs[1] = newPVC(1, classOff, "2Gi", "1Gi")
	raw, _ := json.Marshal(&State{Claim: "data", Size: "2Gi", Claims: []*ClaimState{{Ordinal: 1, PVC: "data-db-1", Status: ClaimRestarting, RestartedPod: "old-uid"}}})
	in.Record = &journal.Record{Operation: Operation, Phase: journal.Running, State: raw}
	plan, err := BuildPlan(in, params("2Gi"))
	require.NoError(t, err)
	assert.True(t, plan.Resumed)
	assert.Equal(t, ActionContinue, plan.Ordinals[0].Action)
	assert.Equal(t, RestartDone, plan.Ordinals[0].Restart, "its replacement already runs")

	// A pod that no run was working on still blocks.
	in.Pods[0].Status.Conditions[0].Status = corev1.ConditionFalse
	requireProblem(t, refused(t, in, params("2Gi")), "pod db-0 has not been Ready")
}

func TestBuildPlanUnreadableStorageClassIsAWarning(t *testing.T) {
	in := inputs(1, classOn)
	delete(in.StorageClasses, classOn)
	in.StorageClassErrors[classOn] = apierrors.NewForbidden(schema.GroupResource{Group: "storage.k8s.io", Resource: "storageclasses"}, classOn, nil)
	plan, err := BuildPlan(in, params("2Gi"))
	require.NoError(t, err)
	require.Len(t, plan.Warnings, 1)
	assert.Contains(t, plan.Warnings[0], "cannot read StorageClass online")
}

// BenchmarkBuildPlan plans a large StatefulSet: the preflight arithmetic
// must stay negligible next to the API round trips.
func BenchmarkBuildPlan(b *testing.B) {
	in := inputs(500, classOn)
	p := params("2Gi")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := BuildPlan(in, p); err != nil {
			b.Fatal(err)
		}
	}
}

// A StatefulSet being deleted is refused for that alone: the finalizer
// holding its deletion is not reported as well, since its hint
// (--no-update-template) would lead to the same refusal.
func TestBuildPlanOfAStatefulSetBeingDeletedGivesOneReason(t *testing.T) {
	in := inputs(2, classOn)
	in.StatefulSet.DeletionTimestamp = &metav1.Time{Time: in.Now}
	in.StatefulSet.Finalizers = []string{"example.com/protect"}
	problems := refused(t, in, params("2Gi"))
	requireProblem(t, problems, "statefulset db is being deleted")
	for _, p := range problems {
		assert.NotContains(t, p.Message+" | "+p.Hint, "--no-update-template", "a hint that cannot help")
	}
	in.StatefulSet.Finalizers = nil
	p := params("2Gi")
	p.UpdateTemplate = false
	requireProblem(t, refused(t, in, p), "statefulset db is being deleted")
}
