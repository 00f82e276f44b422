// Package compat holds the end-to-end tests of what only the old minor of
// the test bed shows (KUBERNETES_COMPAT_VERSION in hack/testbed/versions.env):
// the version-specific paths of the plugin must be taken there. The main
// scenarios run on that minor too, from their own packages (make
// test-compat); see docs/compatibility.md.
package compat

import (
	"context"
	"encoding/json"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	cmdutil "github.com/kubectl-sts/kubectl-sts/pkg/cmd/util"
	"github.com/kubectl-sts/kubectl-sts/pkg/kube"
	"github.com/kubectl-sts/kubectl-sts/pkg/status"
	"github.com/kubectl-sts/kubectl-sts/pkg/wait"
	"github.com/kubectl-sts/kubectl-sts/test/e2e/e2eutil"
	"github.com/kubectl-sts/kubectl-sts/test/testbed"
)

var cluster *testbed.Cluster

func TestMain(m *testing.M) {
	os.Exit(testbed.Main(m, testbed.Options{Name: "e2e-compat", Version: testbed.Compat}, &cluster))
}

const generous = 3 * time.Minute

// create makes sts and waits until every pod is Ready on its revision.
func create(t *testing.T, sts *appsv1.StatefulSet) *appsv1.StatefulSet {
	t.Helper()
	_, err := cluster.Client.AppsV1().StatefulSets(sts.Namespace).Create(context.Background(), sts, metav1.CreateOptions{})
	require.NoError(t, err)
	return settled(t, sts.Namespace, sts.Name, func(s *appsv1.StatefulSet) bool {
		return s.Status.CurrentRevision == s.Status.UpdateRevision
	})
}

// settled waits until every desired pod of ns/name is Ready on the update
// revision and cond holds for the StatefulSet.
func settled(t *testing.T, ns, name string, cond func(*appsv1.StatefulSet) bool) *appsv1.StatefulSet {
	t.Helper()
	var sts *appsv1.StatefulSet
	e2eutil.Poll{Timeout: generous}.Until(t, "statefulset "+name+" settled", func(ctx context.Context) (bool, error) {
		s, err := cluster.Client.AppsV1().StatefulSets(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		sts = s
		if s.Status.ObservedGeneration < s.Generation || s.Status.UpdateRevision == "" {
			return false, nil
		}
		pods, err := cluster.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=" + name})
		if err != nil {
			return false, err
		}
		ready := 0
		for i := range pods.Items {
			p := &pods.Items[i]
			if p.DeletionTimestamp == nil && wait.IsPodReady(p) && wait.PodRevision(p) == s.Status.UpdateRevision {
				ready++
			}
		}
		return ready == int(*s.Spec.Replicas) && cond(s), nil
	})
	return sts
}

func TestCompatTheTestBedRunsTheOldMinor(t *testing.T) {
	s := kube.ParseServer(cluster.ServerVersion)
	require.True(t, s.Known, cluster.ServerVersion)
	assert.Equal(t, kube.OldestTestedMinor, s.Minor, "the compatibility suite runs on the oldest tested minor")

	res := e2eutil.Run(t, e2eutil.Client(cluster, "default"), time.Minute, "version")
	require.Equal(t, cmdutil.ExitOK, res.Code, res.ErrOut)
	assert.Contains(t, res.Out, "Server Version: "+cluster.ServerVersion+" (inside the tested range "+kube.TestedRange()+")")
}

// On the old minor the API server drops maxUnavailable on write
// (MaxUnavailableStatefulSet is off): the plan says so, and the steps
// replace one pod at a time.
func TestCompatMaxUnavailableIsDroppedAndThePlanSaysSo(t *testing.T) {
	ns := cluster.NewNamespace(t)
	sts := e2eutil.NewStatefulSet(ns, "db", 4, "registry.example/db:v1")
	sts.Spec.UpdateStrategy = appsv1.StatefulSetUpdateStrategy{
		Type:          appsv1.RollingUpdateStatefulSetStrategyType,
		RollingUpdate: &appsv1.RollingUpdateStatefulSetStrategy{MaxUnavailable: ptr.To(intstr.FromInt32(2))},
	}
	got := create(t, sts)
	if ru := got.Spec.UpdateStrategy.RollingUpdate; ru != nil {
		require.Nil(t, ru.MaxUnavailable, "this minor must drop the field, or the test proves nothing")
	}

	c := e2eutil.Client(cluster, ns)
	res := e2eutil.Run(t, c, generous, "rollout", "db", "--staged", "--image", "app=registry.example/db:v2", "--steps", "2,100%", "--dry-run")
	require.Equal(t, cmdutil.ExitOK, res.Code, res.ErrOut)
	assert.Contains(t, res.Out, "this cluster drops spec.updateStrategy.rollingUpdate.maxUnavailable (the MaxUnavailableStatefulSet feature is off)")
	assert.Nil(t, e2eutil.StatefulSet(t, cluster, ns, "db").Spec.UpdateStrategy.RollingUpdate.MaxUnavailable, "the dry-run probe changed nothing")

	res = e2eutil.Run(t, c, generous, "rollout", "db", "--staged", "--image", "app=registry.example/db:v2", "--steps", "2,100%", "--yes", "-o", "json")
	require.Equal(t, cmdutil.ExitOK, res.Code, res.ErrOut)
	assert.Contains(t, res.Out, "updating db-3, db-2 to revision ")
	assert.NotContains(t, res.Out, "at once (maxUnavailable")
}

// Before 1.37 the controller never moves status.currentRevision of an
// OnDelete StatefulSet: status reads the current revision from the pods.
func TestCompatOnDeleteCurrentRevisionComesFromThePods(t *testing.T) {
	ns := cluster.NewNamespace(t)
	sts := e2eutil.NewStatefulSet(ns, "db", 2, "registry.example/db:v1")
	sts.Spec.UpdateStrategy = appsv1.StatefulSetUpdateStrategy{Type: appsv1.OnDeleteStatefulSetStrategyType}
	create(t, sts)

	// A patch, not a read-modify-write: the controller's status writes
	// move the resourceVersion at any moment.
	patch := []byte(`{"spec":{"template":{"spec":{"containers":[{"name":"app","image":"registry.example/db:v2"}]}}}}`)
	_, err := cluster.Client.AppsV1().StatefulSets(ns).Patch(context.Background(), "db", types.StrategicMergePatchType, patch, metav1.PatchOptions{})
	require.NoError(t, err)
	e2eutil.Poll{Timeout: generous}.Until(t, "the controller names the new revision", func(ctx context.Context) (bool, error) {
		s, err := cluster.Client.AppsV1().StatefulSets(ns).Get(ctx, "db", metav1.GetOptions{})
		return err == nil && s.Status.ObservedGeneration >= s.Generation && s.Status.UpdateRevision != s.Status.CurrentRevision, err
	})
	// OnDelete: the pods move when deleted.
	for _, name := range []string{"db-1", "db-0"} {
		require.NoError(t, cluster.Client.CoreV1().Pods(ns).Delete(context.Background(), name, metav1.DeleteOptions{}))
	}
	after := settled(t, ns, "db", func(s *appsv1.StatefulSet) bool {
		return s.Status.UpdatedReplicas == 2 && s.Status.ReadyReplicas == 2
	})
	require.NotEqual(t, after.Status.UpdateRevision, after.Status.CurrentRevision,
		"this minor must leave status.currentRevision behind, or the test proves nothing")

	res := e2eutil.Run(t, e2eutil.Client(cluster, ns), time.Minute, "status", "db", "-o", "json")
	require.Equal(t, cmdutil.ExitOK, res.Code, "every pod runs the template: healthy\n%s", res.ErrOut)
	var r status.Report
	require.NoError(t, json.Unmarshal([]byte(res.Out), &r))
	assert.Equal(t, after.Status.UpdateRevision, r.StatefulSet.CurrentRevision)
	assert.Equal(t, status.RevisionFromPods, r.StatefulSet.CurrentRevisionSource)
	assert.True(t, r.Verdict.Healthy)
	for _, o := range r.Ordinals {
		require.NotNil(t, o.Pod, o.PodName)
		assert.Equal(t, status.RevisionCurrent, o.Pod.RevisionRole, o.PodName)
	}
}
