package status_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/utils/ptr"

	"github.com/kubectl-sts/kubectl-sts/pkg/kube"
	"github.com/kubectl-sts/kubectl-sts/pkg/status"
	"github.com/kubectl-sts/kubectl-sts/pkg/status/statustest"
	"github.com/kubectl-sts/kubectl-sts/plugins"
)

func TestSummarizeModel(t *testing.T) {
	f := fixture(3).StartRollout(0, 2).ScaleTo(2)
	f.AddLeftoverPVC(4)
	r := summarize(f, status.Options{})

	assert.Equal(t, status.APIVersion, r.APIVersion)
	assert.Equal(t, status.KindReport, r.Kind)
	assert.Equal(t, now, r.ObservedAt)

	s := r.StatefulSet
	assert.Equal(t, "prod", s.Namespace)
	assert.Equal(t, "db", s.Name)
	assert.Equal(t, status.Replicas{Desired: 2, Existing: 3, Ready: 3, Current: 2, Updated: 1, Available: 3}, s.Replicas)
	assert.Equal(t, "db-"+statustest.CurrentHash, s.CurrentRevision)
	assert.Equal(t, "db-"+statustest.UpdateHash, s.UpdateRevision)
	assert.Equal(t, "RollingUpdate", s.UpdateStrategy)
	assert.Equal(t, "OrderedReady", s.PodManagementPolicy)
	assert.Equal(t, status.PVCRetentionPolicy{WhenDeleted: "Retain", WhenScaled: "Retain"}, s.PVCRetention)
	assert.Equal(t, "app=db", s.Selector)
	assert.Equal(t, []status.ClaimTemplate{{Name: "data", StorageClass: "standard", Requested: "1Gi"}}, s.VolumeClaimTemplates)

	require.Len(t, r.Ordinals, 3)
	assert.True(t, r.Ordinals[0].Desired)
	assert.False(t, r.Ordinals[2].Desired, "ordinal 2 is above the 2 desired replicas")
	p0, p2 := r.Ordinals[0].Pod, r.Ordinals[2].Pod
	require.NotNil(t, p0)
	require.NotNil(t, p2)
	assert.Equal(t, status.RevisionCurrent, p0.RevisionRole)
	assert.Equal(t, status.RevisionUpdate, p2.RevisionRole)
	assert.Equal(t, "Running", p0.Status)
	assert.True(t, p0.Ready)
	assert.Equal(t, 1, p0.ReadyContainers)
	assert.Equal(t, "node-0", p0.Node)
	assert.Nil(t, p0.NotReadySince)
	require.Len(t, r.Ordinals[0].PVCs, 1)
	c := r.Ordinals[0].PVCs[0]
	assert.Equal(t, "data-db-0", c.Name)
	assert.Equal(t, "data", c.Template)
	assert.Equal(t, "1Gi", c.Requested)
	assert.Equal(t, "1Gi", c.Capacity)
	assert.Equal(t, "Bound", c.Phase)
	assert.Equal(t, status.ResizeNone, c.Resize)

	require.Len(t, r.LeftoverPVCs, 1)
	assert.Equal(t, "data-db-4", r.LeftoverPVCs[0].Name)
	assert.Equal(t, 4, r.LeftoverPVCs[0].Ordinal)
}

func TestSummarizeMissingPodKeepsItsRow(t *testing.T) {
	r := summarize(fixture(3).DeletePod(1), status.Options{})
	require.Len(t, r.Ordinals, 3)
	o := r.Ordinals[1]
	assert.Equal(t, "db-1", o.PodName)
	assert.Nil(t, o.Pod)
	require.Len(t, o.PVCs, 1)
	assert.False(t, o.PVCs[0].Missing, "the claim outlives its pod")
}

func TestSummarizeIgnoresOtherObjects(t *testing.T) {
	f := fixture(2)
	other := statustest.New("prod", "db-x", 1, now)  // db-x-0 looks like a pod of db
	elsewhere := statustest.New("dev", "db", 1, now) // same name, other namespace
	foreign := statustest.New("prod", "db", 3, now)  // a db-2 owned by another object
	foreign.Pod(2).OwnerReferences[0].UID = "someone-else"
	unlabelled := statustest.New("prod", "db", 3, now) // db-2 without the selector's labels
	delete(unlabelled.Pod(2).Labels, "app")

	pods := append(append(append([]*corev1.Pod{}, f.Pods...), other.Pods...), elsewhere.Pods...)
	pods = append(pods, foreign.Pod(2))
	pvcs := append(append(append([]*corev1.PersistentVolumeClaim{}, f.PVCs...), other.PVCs...), elsewhere.PVCs...)
	r := status.Summarize(f.StatefulSet, pods, pvcs, now, status.Options{})
	assert.Equal(t, []int{0, 1}, ordinalsOf(r))
	assert.Empty(t, r.LeftoverPVCs, "data-db-x-0 belongs to db-x")
	assert.True(t, r.Verdict.Healthy, "%+v", r.Verdict.Reasons)

	r = status.Summarize(f.StatefulSet, append(f.Pods, unlabelled.Pod(2)), f.PVCs, now, status.Options{})
	assert.Equal(t, []int{0, 1}, ordinalsOf(r))
}

func TestLeftoverPVCsAreFoundWithoutLabels(t *testing.T) {
	f := fixture(3).ScaleTo(1).DeletePod(1).DeletePod(2)
	for _, c := range f.PVCs {
		c.Labels = nil
	}
	r := summarize(f, status.Options{})
	require.Len(t, r.LeftoverPVCs, 2)
	assert.Equal(t, "data-db-1", r.LeftoverPVCs[0].Name)
	assert.Equal(t, "data-db-2", r.LeftoverPVCs[1].Name)
}

func TestResizeStates(t *testing.T) {
	for state, want := range map[string]string{
		"requested":       status.ResizeRequested,
		"in-progress":     status.ResizeInProgress,
		"pending-restart": status.ResizePendingRestart,
		"failed":          status.ResizeFailed,
	} {
		t.Run(state, func(t *testing.T) {
			r := summarize(fixture(2).Resize(1, "5Gi", state), status.Options{})
			c := r.Ordinals[1].PVCs[0]
			assert.Equal(t, want, c.Resize)
			assert.Equal(t, "5Gi", c.Requested)
			assert.Equal(t, "1Gi", c.Capacity)
			assert.Equal(t, status.ResizeNone, r.Ordinals[0].PVCs[0].Resize)
		})
	}
}

func TestReportJSONShape(t *testing.T) {
	r := summarize(fixture(2).DeletePod(1), status.Options{})
	b, err := json.Marshal(r)
	require.NoError(t, err)
	var doc map[string]any
	require.NoError(t, json.Unmarshal(b, &doc))
	for _, k := range []string{"apiVersion", "kind", "observedAt", "statefulSet", "ordinals", "leftoverPVCs", "verdict"} {
		assert.Contains(t, doc, k)
	}
	assert.NotContains(t, doc, "members", "members appear only with an engine")
	ords := doc["ordinals"].([]any)
	assert.Nil(t, ords[1].(map[string]any)["pod"], "a missing pod is null")
	v := doc["verdict"].(map[string]any)
	assert.Equal(t, false, v["healthy"])
	assert.Equal(t, "Progressing", v["state"])
	reason := v["reasons"].([]any)[0].(map[string]any)
	assert.Equal(t, "PodMissing", reason["code"])
	assert.Equal(t, "progressing", reason["severity"])
}

// countingClient returns a fake clientset seeded with objs and a function
// that returns the API requests made so far.
func countingClient(objs ...runtime.Object) (*fake.Clientset, func() []string) {
	c := fake.NewClientset(objs...)
	c.ClearActions()
	return c, func() []string {
		var out []string
		for _, a := range c.Actions() {
			out = append(out, a.GetVerb()+" "+a.GetResource().Resource)
		}
		return out
	}
}

func TestFetchMakesThreeRequestsWhateverTheReplicas(t *testing.T) {
	for _, n := range []int{1, 3, 50, 300} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			f := fixture(n)
			c, requests := countingClient(f.Objects()...)
			r, err := status.Build(context.Background(), c, "prod", "db", status.BuildOptions{Now: func() time.Time { return now }})
			require.NoError(t, err)
			assert.Len(t, r.Ordinals, n)
			assert.Equal(t, []string{"get statefulsets", "list pods", "list persistentvolumeclaims"}, requests())
		})
	}
}

func TestFetchListsPodsBySelector(t *testing.T) {
	f := fixture(2)
	c, _ := countingClient(f.Objects()...)
	_, err := status.Fetch(context.Background(), c, "prod", "db")
	require.NoError(t, err)
	var podList k8stesting.ListActionImpl
	for _, a := range c.Actions() {
		if l, ok := a.(k8stesting.ListActionImpl); ok && l.GetResource().Resource == "pods" {
			podList = l
		}
	}
	assert.Equal(t, "app=db", podList.GetListRestrictions().Labels.String())
}

func TestFetchAllMakesThreeRequests(t *testing.T) {
	var objs []runtime.Object
	for i, n := range []int{1, 3, 40} {
		objs = append(objs, statustest.New(fmt.Sprintf("ns%d", i%2), fmt.Sprintf("db%d", i), n, now).Objects()...)
	}
	c, requests := countingClient(objs...)
	reports, err := status.BuildAll(context.Background(), c, metav1.NamespaceAll, status.BuildOptions{Now: func() time.Time { return now }})
	require.NoError(t, err)
	assert.Equal(t, []string{"list statefulsets", "list pods", "list persistentvolumeclaims"}, requests())
	require.Len(t, reports, 3)
	// Sorted by namespace, then name.
	assert.Equal(t, "ns0/db0", reports[0].StatefulSet.Namespace+"/"+reports[0].StatefulSet.Name)
	assert.Equal(t, "ns0/db2", reports[1].StatefulSet.Namespace+"/"+reports[1].StatefulSet.Name)
	assert.Equal(t, "ns1/db1", reports[2].StatefulSet.Namespace+"/"+reports[2].StatefulSet.Name)
	assert.Len(t, reports[1].Ordinals, 40)
	for _, r := range reports {
		assert.True(t, r.Verdict.Healthy, "%s: %+v", r.StatefulSet.Name, r.Verdict.Reasons)
	}
}

func TestFetchAllInOneNamespace(t *testing.T) {
	a := statustest.New("prod", "db", 2, now)
	b := statustest.New("dev", "db", 2, now)
	c, _ := countingClient(append(a.Objects(), b.Objects()...)...)
	reports, err := status.BuildAll(context.Background(), c, "dev", status.BuildOptions{})
	require.NoError(t, err)
	require.Len(t, reports, 1)
	assert.Equal(t, "dev", reports[0].StatefulSet.Namespace)
}

func TestFetchErrorsAreTheAPIErrors(t *testing.T) {
	c, _ := countingClient()
	_, err := status.Fetch(context.Background(), c, "prod", "nope")
	require.Error(t, err)
	assert.Contains(t, err.Error(), `statefulsets.apps "nope" not found`)
}

// fakeEngine answers Members from a fixed list.
type fakeEngine struct {
	members []plugins.Member
	err     error
	healthy bool
	reason  string
	calls   int
	target  plugins.Target
}

func (e *fakeEngine) Name() string        { return "fakedb" }
func (e *fakeEngine) Matches(string) bool { return true }
func (e *fakeEngine) Members(_ context.Context, t plugins.Target) ([]plugins.Member, error) {
	e.calls++
	e.target = t
	return e.members, e.err
}
func (e *fakeEngine) Healthy([]plugins.Member, plugins.HealthOptions) (bool, string) {
	return e.healthy, e.reason
}
func (e *fakeEngine) BeforeRemove(context.Context, plugins.Target, int, plugins.RemoveOptions) error {
	return nil
}
func (e *fakeEngine) AfterRemove(context.Context, plugins.Target, int, plugins.RemoveOptions) error {
	return nil
}

func TestBuildWithEngine(t *testing.T) {
	f := fixture(3)
	e := &fakeEngine{healthy: true, members: []plugins.Member{
		{Pod: "db-0", Ordinal: 0, Role: plugins.RolePrimary, Slots: []plugins.Slot{{Name: "db_1", Active: true}, {Name: "db_2", Active: true}}},
		{Pod: "db-1", Ordinal: 1, Role: plugins.RoleReplica, LagBytes: ptr.To(int64(0))},
		{Pod: "db-2", Ordinal: 2, Role: plugins.RoleReplica, LagBytes: ptr.To(int64(2048))},
	}}
	c, requests := countingClient(f.Objects()...)
	ex := &recordingExecutor{}
	var _ kube.Executor = ex
	r, err := status.Build(context.Background(), c, "prod", "db", status.BuildOptions{
		Now:       func() time.Time { return now },
		EngineFor: func(*appsv1.StatefulSet) (plugins.Engine, error) { return e, nil },
		Exec:      ex,
	})
	require.NoError(t, err)
	assert.Len(t, requests(), 3, "the engine adds no API requests")
	assert.Equal(t, 1, e.calls)
	assert.Len(t, e.target.Pods, 3)
	assert.Equal(t, "db", e.target.StatefulSet.Name)
	assert.Same(t, ex, e.target.Exec)

	require.NotNil(t, r.Engine)
	assert.Equal(t, "fakedb", r.Engine.Name)
	assert.True(t, r.Engine.Healthy)
	require.Len(t, r.Members, 3)
	require.NotNil(t, r.Ordinals[0].Member)
	assert.Equal(t, plugins.RolePrimary, r.Ordinals[0].Member.Role)
	assert.Equal(t, int64(2048), *r.Ordinals[2].Member.LagBytes)
	assert.True(t, r.Verdict.Healthy)
}

func TestEngineVerdicts(t *testing.T) {
	f := fixture(2)
	unhealthy := &fakeEngine{healthy: false, reason: "replica db-1 is not streaming",
		members: []plugins.Member{{Pod: "db-0", Role: plugins.RolePrimary}, {Pod: "db-1", Role: plugins.RoleUnknown, Error: "connection refused"}}}
	r := summarize(f, status.Options{})
	status.AddMembers(context.Background(), r, unhealthy, plugins.Target{}, status.Options{})
	assert.Equal(t, status.StateNeedsAttention, r.Verdict.State)
	assert.Equal(t, []status.Code{status.CodeEngineUnhealthy}, r.Verdict.Codes())
	assert.Contains(t, r.Verdict.Reasons[0].Message, "replica db-1 is not streaming")

	broken := &fakeEngine{err: errors.New("exec forbidden")}
	r = summarize(f, status.Options{})
	status.AddMembers(context.Background(), r, broken, plugins.Target{}, status.Options{})
	assert.Equal(t, []status.Code{status.CodeEngineUnavailable}, r.Verdict.Codes())
	assert.Equal(t, "exec forbidden", r.Engine.Error)
	assert.Empty(t, r.Members)
	assert.Nil(t, r.Ordinals[0].Member)
}

func TestBuildWithoutEngineHasNoMembers(t *testing.T) {
	f := fixture(2)
	c, _ := countingClient(f.Objects()...)
	r, err := status.Build(context.Background(), c, "prod", "db", status.BuildOptions{
		EngineFor: func(*appsv1.StatefulSet) (plugins.Engine, error) { return nil, nil },
	})
	require.NoError(t, err)
	assert.Nil(t, r.Engine)
	assert.Nil(t, r.Members)
}

func TestShortRevision(t *testing.T) {
	assert.Equal(t, "5d8f7c6b9", status.ShortRevision("db", "db-5d8f7c6b9"))
	assert.Equal(t, "other-5d8f", status.ShortRevision("db", "other-5d8f"))
	assert.Equal(t, "", status.ShortRevision("db", ""))
}

type recordingExecutor struct{}

func (recordingExecutor) Exec(context.Context, kube.ExecRequest) (kube.ExecResult, error) {
	return kube.ExecResult{}, errors.New("not used")
}

// trapEngine names the traps it is given.
type trapEngine struct {
	fakeEngine
	traps []plugins.Trap
}

func (e *trapEngine) Traps([]plugins.Member, plugins.TrapOptions) []plugins.Trap { return e.traps }

func TestEngineTrapsAreReasons(t *testing.T) {
	f := fixture(2)
	members := []plugins.Member{{Pod: "db-0", Role: plugins.RolePrimary},
		{Pod: "db-1", Ordinal: 1, Role: plugins.RoleReplica, State: "link down", LagBytes: ptr.To(int64(5 << 20))}}

	// A broken replication link is Degraded, not a warning.
	e := &trapEngine{fakeEngine: fakeEngine{reason: "db-1 replication link down", members: members},
		traps: []plugins.Trap{{Code: plugins.TrapReplicationBroken, Broken: true, Object: "pod/db-1", Message: "replica db-1 has its replication link down"}}}
	r := summarize(f, status.Options{})
	status.AddMembers(context.Background(), r, e, plugins.Target{}, status.Options{})
	assert.Equal(t, status.StateDegraded, r.Verdict.State)
	assert.Equal(t, []status.Code{status.CodeReplicationBroken, status.CodeEngineUnhealthy}, r.Verdict.Codes())
	assert.Equal(t, "pod/db-1", r.Verdict.Reasons[0].Object)
	require.Len(t, r.Engine.Traps, 1)

	// A trap that is not broken needs attention; --max-lag names lag.
	e.traps = []plugins.Trap{{Code: plugins.TrapSlotRetainingWAL, Object: "slot/db_9", Message: "slot db_9 retains 470.0MiB"}}
	e.healthy = true
	r = summarize(f, status.Options{})
	opts := status.Options{MaxLag: plugins.HealthOptions{MaxLagBytes: 1 << 20}}
	status.AddMembers(context.Background(), r, e, plugins.Target{}, opts)
	assert.Equal(t, status.StateNeedsAttention, r.Verdict.State)
	assert.ElementsMatch(t, []status.Code{status.CodeSlotRetainingWAL, status.CodeReplicationLag}, r.Verdict.Codes())
	assert.Contains(t, fmt.Sprint(r.Verdict.Reasons), "db-1: 5242880 bytes behind (bound 1048576)")
}
