// Package expandpvc tests `kubectl sts expand-pvc` end to end, against the
// real control plane of the test bed: the real StatefulSet controller
// recreates the restarted pods and adopts orphans, the real garbage
// collector orphans them on the delete, and the test bed's storage stages
// drive each claim through the real resize status protocol.
package expandpvc

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/utils/ptr"

	cmdutil "github.com/kubectl-sts/kubectl-sts/pkg/cmd/util"
	"github.com/kubectl-sts/kubectl-sts/pkg/expand"
	"github.com/kubectl-sts/kubectl-sts/pkg/journal"
	"github.com/kubectl-sts/kubectl-sts/pkg/kube"
	"github.com/kubectl-sts/kubectl-sts/pkg/progress"
	"github.com/kubectl-sts/kubectl-sts/test/e2e/e2eutil"
	"github.com/kubectl-sts/kubectl-sts/test/testbed"
)

var cluster *testbed.Cluster

func TestMain(m *testing.M) {
	os.Exit(testbed.Main(m, testbed.Options{Name: "e2e-expandpvc"}, &cluster))
}

// generous bounds every wait of a test; a passing run stays far below.
const generous = 4 * time.Minute

var poll = e2eutil.Poll{Timeout: generous}

// newStatefulSet returns a StatefulSet labelled team=storage with one
// claim template of 1Gi in class.
func newStatefulSet(ns, name string, replicas int32, class string) *appsv1.StatefulSet {
	s := e2eutil.NewStatefulSet(ns, name, replicas, "registry.example/app:v1", "data")
	s.Labels = map[string]string{"team": "storage"}
	s.Spec.VolumeClaimTemplates[0].Spec.StorageClassName = ptr.To(class)
	return s
}

// run executes `kubectl sts args...` in-process in namespace ns.
func run(t *testing.T, ns string, args ...string) e2eutil.Result {
	t.Helper()
	return e2eutil.Run(t, e2eutil.Client(cluster, ns), generous, args...)
}

// create makes the StatefulSet and waits until all its pods are Ready.
func create(t *testing.T, sts *appsv1.StatefulSet) {
	t.Helper()
	_, err := cluster.Client.AppsV1().StatefulSets(sts.Namespace).Create(context.Background(), sts, metav1.CreateOptions{})
	require.NoError(t, err)
	poll.WaitSettled(t, cluster.Client, sts.Namespace, sts.Name)
}

// podHistory watches the pods of a namespace and keeps, per pod name, every
// UID it had: a restart shows as a second UID.
type podHistory struct {
	mu   sync.Mutex
	uids map[string][]types.UID
	stop func()
}

func watchPods(t *testing.T, ns string) *podHistory {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	w, err := cluster.Client.CoreV1().Pods(ns).Watch(ctx, metav1.ListOptions{})
	require.NoError(t, err)
	h := &podHistory{uids: map[string][]types.UID{}}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ev := range w.ResultChan() {
			p, ok := ev.Object.(*corev1.Pod)
			if !ok || ev.Type == watch.Deleted {
				continue
			}
			h.mu.Lock()
			seen := h.uids[p.Name]
			if len(seen) == 0 || seen[len(seen)-1] != p.UID {
				h.uids[p.Name] = append(seen, p.UID)
			}
			h.mu.Unlock()
		}
	}()
	h.stop = func() {
		cancel()
		w.Stop()
		<-done
	}
	t.Cleanup(h.stop)
	return h
}

func (h *podHistory) of(name string) []types.UID {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]types.UID(nil), h.uids[name]...)
}

func pvc(t *testing.T, ns, name string) *corev1.PersistentVolumeClaim {
	t.Helper()
	c, err := cluster.Client.CoreV1().PersistentVolumeClaims(ns).Get(context.Background(), name, metav1.GetOptions{})
	require.NoError(t, err)
	return c
}

func requestOf(c *corev1.PersistentVolumeClaim) string {
	q := c.Spec.Resources.Requests[corev1.ResourceStorage]
	return q.String()
}

func capacityOf(c *corev1.PersistentVolumeClaim) string {
	q := c.Status.Capacity[corev1.ResourceStorage]
	return q.String()
}

func templateSize(s *appsv1.StatefulSet) string {
	q := s.Spec.VolumeClaimTemplates[0].Spec.Resources.Requests[corev1.ResourceStorage]
	return q.String()
}

func operationRecord(t *testing.T, ns, name string) *journal.Record {
	t.Helper()
	rec, err := journal.New(cluster.Client, ns, name, "e2e-reader").Load(context.Background())
	require.NoError(t, err)
	return rec
}

// eventsWithReason returns the messages of the Events kubectl-sts recorded
// on StatefulSet name with reason.
func eventsWithReason(t *testing.T, ns, reason string) []string {
	t.Helper()
	list, err := cluster.Client.CoreV1().Events(ns).List(context.Background(), metav1.ListOptions{})
	require.NoError(t, err)
	var out []string
	for _, e := range list.Items {
		if e.Reason == reason && e.Source.Component == kube.EventSource {
			out = append(out, e.Message)
		}
	}
	return out
}

// assertAdopted checks that the pods are controlled by the current
// StatefulSet object.
func assertAdopted(t *testing.T, ns string, sts *appsv1.StatefulSet) {
	t.Helper()
	for name, p := range e2eutil.Pods(t, cluster.Client, ns, "") {
		ref := metav1.GetControllerOf(p)
		if assert.NotNil(t, ref, "pod %s has no controller", name) {
			assert.Equal(t, sts.UID, ref.UID, "pod %s is controlled by the recreated StatefulSet", name)
		}
	}
}

func TestOfflineResizeRestartsEachPodOnceAndUpdatesTheTemplate(t *testing.T) {
	ns := cluster.NewNamespace(t)
	create(t, newStatefulSet(ns, "db", 3, "testbed-offline"))
	oldUID := e2eutil.StatefulSet(t, cluster, ns, "db").UID
	history := watchPods(t, ns)

	r := run(t, ns, "expand-pvc", "db", "--size", "2Gi", "--yes", "--online-resize-wait", "3s")
	require.Equal(t, 0, r.Code, r.ErrOut)

	for i := 0; i < 3; i++ {
		c := pvc(t, ns, fmt.Sprintf("data-db-%d", i))
		assert.Equal(t, "2Gi", requestOf(c))
		assert.Equal(t, "2Gi", capacityOf(c), "pvc %s capacity", c.Name)
		assert.Empty(t, c.Status.AllocatedResourceStatuses, "pvc %s has no resize in progress", c.Name)
	}
	sts := e2eutil.StatefulSet(t, cluster, ns, "db")
	assert.Equal(t, "2Gi", templateSize(sts))
	assert.NotEqual(t, oldUID, sts.UID, "the StatefulSet was recreated")
	assert.Equal(t, "storage", sts.Labels["team"])
	assertAdopted(t, ns, sts)

	// Each pod was restarted exactly once: its original UID and the one of
	// its replacement, and the template step replaced none.
	current := e2eutil.Pods(t, cluster.Client, ns, "")
	for i := 0; i < 3; i++ {
		name := fmt.Sprintf("db-%d", i)
		uids := history.of(name)
		assert.Len(t, uids, 2, "pod %s UIDs over the run: %v", name, uids)
		assert.Equal(t, current[name].UID, uids[len(uids)-1])
		assert.Zero(t, current[name].Status.ContainerStatuses[0].RestartCount)
	}
	assert.Len(t, eventsWithReason(t, ns, expand.ReasonPodRestarted), 3)
	assert.Len(t, eventsWithReason(t, ns, expand.ReasonTemplateUpdated), 1)
	// Every write named the plugin as its field manager: each claim's
	// request, the recreated StatefulSet, the record.
	for i := 0; i < 3; i++ {
		assert.Contains(t, e2eutil.FieldsOf(pvc(t, ns, fmt.Sprintf("data-db-%d", i)), kube.FieldManager), `"f:storage"`)
	}
	assert.Contains(t, e2eutil.FieldsOf(sts, kube.FieldManager), `"f:volumeClaimTemplates"`)
	assert.Contains(t, e2eutil.FieldsOf(e2eutil.JournalConfigMap(t, cluster, ns, "db"), kube.FieldManager), `"f:data"`)
	assert.Equal(t, journal.Succeeded, operationRecord(t, ns, "db").Phase)
	assert.Contains(t, r.Out, "Plan: grow claim data of statefulset db")
	assert.Contains(t, r.Out, "will try to put the old volumeClaimTemplate back")

	// Running it again has nothing to do.
	again := run(t, ns, "expand-pvc", "db", "--size", "2Gi", "--yes")
	require.Equal(t, 0, again.Code, again.ErrOut)
	assert.Contains(t, again.Out, "Nothing to do")
	for i := 0; i < 3; i++ {
		assert.Len(t, history.of(fmt.Sprintf("db-%d", i)), 2, "a run with nothing to do restarts nothing")
	}
}

func TestOnlineResizeRestartsNothing(t *testing.T) {
	ns := cluster.NewNamespace(t)
	create(t, newStatefulSet(ns, "db", 3, "testbed-online"))
	history := watchPods(t, ns)
	before := e2eutil.Pods(t, cluster.Client, ns, "")

	r := run(t, ns, "expand-pvc", "db", "--size", "3Gi", "--yes", "--online-resize-wait", "2m")
	require.Equal(t, 0, r.Code, r.ErrOut)

	for i := 0; i < 3; i++ {
		name := fmt.Sprintf("db-%d", i)
		assert.Equal(t, "3Gi", capacityOf(pvc(t, ns, "data-"+name)))
		assert.Equal(t, []types.UID{before[name].UID}, history.of(name), "pod %s was never replaced", name)
	}
	sts := e2eutil.StatefulSet(t, cluster, ns, "db")
	assert.Equal(t, "3Gi", templateSize(sts))
	assertAdopted(t, ns, sts)
	assert.Empty(t, eventsWithReason(t, ns, expand.ReasonPodRestarted))
}

func TestFailingResizeStopsAtTheFirstOrdinal(t *testing.T) {
	ns := cluster.NewNamespace(t)
	create(t, newStatefulSet(ns, "db", 3, "testbed-failing"))
	oldUID := e2eutil.StatefulSet(t, cluster, ns, "db").UID
	history := watchPods(t, ns)

	r := run(t, ns, "expand-pvc", "db", "--size", "2Gi", "--yes")
	assert.Equal(t, cmdutil.ExitNeedsAttention, r.Code)
	assert.Contains(t, r.ErrOut, "the resize of pvc data-db-2 to 2Gi failed")
	assert.Contains(t, r.ErrOut, "ControllerResizeInfeasible")
	assert.Contains(t, r.ErrOut, "data-db-1, data-db-0 were not touched")
	assert.Contains(t, r.ErrOut, "run this command again with a --size the storage can provide, above 1Gi")

	assert.Equal(t, "2Gi", requestOf(pvc(t, ns, "data-db-2")))
	assert.Equal(t, "1Gi", capacityOf(pvc(t, ns, "data-db-2")))
	assert.Equal(t, "1Gi", requestOf(pvc(t, ns, "data-db-1")), "untouched")
	assert.Equal(t, "1Gi", requestOf(pvc(t, ns, "data-db-0")), "untouched")
	for i := 0; i < 3; i++ {
		assert.Len(t, history.of(fmt.Sprintf("db-%d", i)), 1, "no pod restarted")
	}
	sts := e2eutil.StatefulSet(t, cluster, ns, "db")
	assert.Equal(t, oldUID, sts.UID, "the StatefulSet was not recreated")
	assert.Equal(t, "1Gi", templateSize(sts))
	assert.Equal(t, journal.Failed, operationRecord(t, ns, "db").Phase)
	assert.NotEmpty(t, eventsWithReason(t, ns, expand.ReasonFailed))

	// The same size again is refused: the storage would not retry it.
	again := run(t, ns, "expand-pvc", "db", "--size", "2Gi", "--yes")
	assert.Equal(t, cmdutil.ExitFailed, again.Code)
	assert.Contains(t, again.ErrOut, "an earlier resize of pvc data-db-2 to 2Gi failed")
	assert.Contains(t, again.ErrOut, "above 1Gi and below 2Gi")

	// A smaller size retries with the request lowered, which the API
	// server allows (Kubernetes >= 1.34); this storage refuses it again.
	retry := run(t, ns, "expand-pvc", "db", "--size", "1536Mi", "--yes")
	assert.Equal(t, cmdutil.ExitNeedsAttention, retry.Code)
	assert.Contains(t, retry.Out, "retry")
	assert.Contains(t, retry.ErrOut, "the resize of pvc data-db-2 to 1536Mi failed")
	c := pvc(t, ns, "data-db-2")
	assert.Equal(t, "1536Mi", requestOf(c))
	assert.Equal(t, "1536Mi", c.Status.AllocatedResources.Storage().String(), "the resizer tried the lowered request")
	assert.Equal(t, "1Gi", requestOf(pvc(t, ns, "data-db-1")), "still untouched")
}

func TestNonExpandableStorageClassIsRefusedWithNothingChanged(t *testing.T) {
	ns := cluster.NewNamespace(t)
	create(t, newStatefulSet(ns, "db", 2, "testbed-fixed"))
	before := e2eutil.StatefulSet(t, cluster, ns, "db")

	r := run(t, ns, "expand-pvc", "db", "--size", "2Gi", "--yes")
	assert.Equal(t, cmdutil.ExitFailed, r.Code)
	assert.Contains(t, r.ErrOut, "StorageClass testbed-fixed does not allow volume expansion")
	assert.Contains(t, r.ErrOut, "data-db-0, data-db-1")
	assert.Contains(t, r.ErrOut, "nothing was changed")
	assertUnchanged(t, ns, before)
}

func TestShrinkIsRefusedWithNothingChanged(t *testing.T) {
	ns := cluster.NewNamespace(t)
	create(t, newStatefulSet(ns, "db", 2, "testbed-online"))
	before := e2eutil.StatefulSet(t, cluster, ns, "db")

	r := run(t, ns, "expand-pvc", "db", "--size", "512Mi", "--yes")
	assert.Equal(t, cmdutil.ExitFailed, r.Code)
	assert.Contains(t, r.ErrOut, "a volume cannot be shrunk")
	assert.Contains(t, r.ErrOut, "data-db-0 requests 1Gi")
	assertUnchanged(t, ns, before)
}

// assertUnchanged checks that the StatefulSet, its claims and pods are as
// they were and that no operation was recorded.
func assertUnchanged(t *testing.T, ns string, before *appsv1.StatefulSet) {
	t.Helper()
	after := e2eutil.StatefulSet(t, cluster, ns, before.Name)
	assert.Equal(t, before.UID, after.UID)
	assert.Equal(t, "1Gi", templateSize(after))
	list, err := cluster.Client.CoreV1().PersistentVolumeClaims(ns).List(context.Background(), metav1.ListOptions{})
	require.NoError(t, err)
	for _, c := range list.Items {
		assert.Equal(t, "1Gi", requestOf(&c), "pvc %s", c.Name)
	}
	_, err = cluster.Client.CoreV1().ConfigMaps(ns).Get(context.Background(), journal.ConfigMapName(before.Name), metav1.GetOptions{})
	assert.True(t, apierrors.IsNotFound(err), "a refused run records nothing: %v", err)
}

func TestDryRunChangesNothing(t *testing.T) {
	ns := cluster.NewNamespace(t)
	create(t, newStatefulSet(ns, "db", 2, "testbed-offline"))
	before := e2eutil.StatefulSet(t, cluster, ns, "db")

	r := run(t, ns, "expand-pvc", "db", "--size", "2Gi", "--dry-run")
	require.Equal(t, 0, r.Code, r.ErrOut)
	assert.Contains(t, r.Out, "data-db-1")
	assert.Contains(t, r.Out, "if needed")
	assert.Contains(t, r.Out, "Dry run: nothing was changed.")
	assertUnchanged(t, ns, before)
}

func TestKilledRunResumesFromTheFirstUnverifiedOrdinal(t *testing.T) {
	ns := cluster.NewNamespace(t)
	create(t, newStatefulSet(ns, "db", 3, "testbed-offline"))
	history := watchPods(t, ns)
	bin := e2eutil.BuildPlugin(t)

	// A real process, killed with SIGKILL once the first ordinal is
	// verified.
	args := []string{"expand-pvc", "db", "--size", "2Gi", "--yes", "--online-resize-wait", "3s"}
	e2eutil.KillAt(t, cluster, bin, ns, generous, "verified an ordinal",
		func(ev progress.Event) bool { return ev.Kind == expand.KindPVCResized }, append(args, "-o", "json")...)

	// A second run is refused while the dead process's lease is live, and
	// continues once it expired.
	r := e2eutil.ResumeAfterLease(t, cluster, ns, "db", generous, args...)
	assert.Contains(t, r.Out, "continuing an interrupted run")

	for i := 0; i < 3; i++ {
		name := fmt.Sprintf("db-%d", i)
		assert.Equal(t, "2Gi", capacityOf(pvc(t, ns, "data-"+name)))
		assert.Len(t, history.of(name), 2, "pod %s restarted exactly once over both runs: %v", name, history.of(name))
	}
	// Each claim's request was raised once, by one of the two runs.
	requested := eventsWithReason(t, ns, expand.ReasonRequested)
	assert.Len(t, requested, 3, "requests raised: %v", requested)
	sts := e2eutil.StatefulSet(t, cluster, ns, "db")
	assert.Equal(t, "2Gi", templateSize(sts))
	assertAdopted(t, ns, sts)
	assert.Equal(t, journal.Succeeded, operationRecord(t, ns, "db").Phase)
}

func TestRunFinishesATemplateStepCutBetweenDeleteAndCreate(t *testing.T) {
	ns := cluster.NewNamespace(t)
	create(t, newStatefulSet(ns, "db", 2, "testbed-online"))
	r := run(t, ns, "expand-pvc", "db", "--size", "2Gi", "--yes", "--no-update-template")
	require.Equal(t, 0, r.Code, r.ErrOut)
	old := e2eutil.StatefulSet(t, cluster, ns, "db")
	before := e2eutil.Pods(t, cluster.Client, ns, "")

	// What a run killed right after the delete leaves: the desired object
	// saved in the journal, the StatefulSet gone, its pods orphaned.
	desired := old.DeepCopy()
	desired.ObjectMeta = metav1.ObjectMeta{Name: old.Name, Namespace: ns, Labels: old.Labels}
	desired.Status = appsv1.StatefulSetStatus{}
	desired.Spec.VolumeClaimTemplates[0].Spec.Resources.Requests[corev1.ResourceStorage] = resource.MustParse("2Gi")
	var marks []expand.PodMark
	for name, p := range before {
		marks = append(marks, expand.PodMark{Name: name, UID: p.UID, Revision: p.Labels[appsv1.ControllerRevisionHashLabelKey]})
	}
	j := journal.New(cluster.Client, ns, "db", "killed-process")
	rec, _, err := j.Begin(context.Background(), expand.Operation, &expand.State{
		Version: 1, Claim: "data", Size: "2Gi", Restart: expand.RestartAuto, UpdateTemplate: true, StatefulSetUID: old.UID,
		Template: &expand.TemplateState{Step: expand.TemplateDeleted, Desired: desired, OldUID: old.UID, Pods: marks, UpdateRevision: old.Status.UpdateRevision},
	})
	require.NoError(t, err)
	require.NoError(t, j.Release(context.Background(), rec, "killed"))
	orphan := metav1.DeletePropagationOrphan
	require.NoError(t, cluster.Client.AppsV1().StatefulSets(ns).Delete(context.Background(), "db", metav1.DeleteOptions{PropagationPolicy: &orphan}))
	poll.Until(t, "the StatefulSet to be gone", func(ctx context.Context) (bool, error) {
		_, err := cluster.Client.AppsV1().StatefulSets(ns).Get(ctx, "db", metav1.GetOptions{})
		return apierrors.IsNotFound(err), nil
	})

	r = run(t, ns, "expand-pvc", "db", "--size", "2Gi", "--yes")
	require.Equal(t, 0, r.Code, r.ErrOut)
	assert.Contains(t, r.Out, "is missing; it is recreated from the saved copy")
	sts := e2eutil.StatefulSet(t, cluster, ns, "db")
	assert.Equal(t, "2Gi", templateSize(sts))
	assertAdopted(t, ns, sts)
	after := e2eutil.Pods(t, cluster.Client, ns, "")
	for name, p := range before {
		assert.Equal(t, p.UID, after[name].UID, "pod %s kept", name)
	}
	assert.Equal(t, journal.Succeeded, operationRecord(t, ns, "db").Phase)
}

func TestTemplateStepKeepsClaimsOwnedByTheStatefulSet(t *testing.T) {
	// whenDeleted: Delete makes the claims owned by the StatefulSet: only
	// the orphan propagation of the template step keeps them alive.
	ns := cluster.NewNamespace(t)
	sts := newStatefulSet(ns, "db", 2, "testbed-online")
	sts.Spec.PersistentVolumeClaimRetentionPolicy = &appsv1.StatefulSetPersistentVolumeClaimRetentionPolicy{
		WhenDeleted: appsv1.DeletePersistentVolumeClaimRetentionPolicyType,
		WhenScaled:  appsv1.RetainPersistentVolumeClaimRetentionPolicyType,
	}
	create(t, sts)
	oldUID := e2eutil.StatefulSet(t, cluster, ns, "db").UID
	poll.Until(t, "the claims to be owned by the StatefulSet", func(ctx context.Context) (bool, error) {
		for i := 0; i < 2; i++ {
			c, err := cluster.Client.CoreV1().PersistentVolumeClaims(ns).Get(ctx, fmt.Sprintf("data-db-%d", i), metav1.GetOptions{})
			if err != nil || !ownedBy(c.OwnerReferences, oldUID) {
				return false, err
			}
		}
		return true, nil
	})
	claimUIDs := map[string]types.UID{}
	for i := 0; i < 2; i++ {
		c := pvc(t, ns, fmt.Sprintf("data-db-%d", i))
		claimUIDs[c.Name] = c.UID
	}

	r := run(t, ns, "expand-pvc", "db", "--size", "2Gi", "--yes")
	require.Equal(t, 0, r.Code, r.ErrOut)
	newUID := e2eutil.StatefulSet(t, cluster, ns, "db").UID
	require.NotEqual(t, oldUID, newUID)

	// The claims survived, with their data, and the new StatefulSet owns
	// them again.
	poll.Until(t, "the claims to be owned by the recreated StatefulSet", func(ctx context.Context) (bool, error) {
		for name, uid := range claimUIDs {
			c, err := cluster.Client.CoreV1().PersistentVolumeClaims(ns).Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return false, err
			}
			if c.UID != uid || c.DeletionTimestamp != nil {
				return false, fmt.Errorf("claim %s was deleted or replaced", name)
			}
			if !ownedBy(c.OwnerReferences, newUID) {
				return false, nil
			}
		}
		return true, nil
	})
	for name := range claimUIDs {
		assert.Equal(t, "2Gi", capacityOf(pvc(t, ns, name)))
	}
}

func ownedBy(refs []metav1.OwnerReference, uid types.UID) bool {
	for _, r := range refs {
		if r.UID == uid {
			return true
		}
	}
	return false
}
