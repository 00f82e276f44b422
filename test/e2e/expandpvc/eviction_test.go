package expandpvc

import (
	"context"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	cmdutil "github.com/kubectl-sts/kubectl-sts/pkg/cmd/util"
	"github.com/kubectl-sts/kubectl-sts/pkg/expand"
	"github.com/kubectl-sts/kubectl-sts/pkg/journal"
)

// A real PodDisruptionBudget that allows no disruption holds the restart:
// the command waits, naming the budget, then stops with the pod untouched
// and the record resumable; once the budget allows one pod at a time, the
// same command finishes, restarting each pod once.
func TestEvictionWaitsForAPodDisruptionBudgetAndResumes(t *testing.T) {
	ns := cluster.NewNamespace(t)
	create(t, newStatefulSet(ns, "db", 2, "testbed-offline"))
	ctx := context.Background()
	pdb := &policyv1.PodDisruptionBudget{
		ObjectMeta: metav1.ObjectMeta{Name: "db-pdb", Namespace: ns},
		Spec: policyv1.PodDisruptionBudgetSpec{
			MinAvailable: ptr.To(intstr.FromInt32(2)),
			Selector:     &metav1.LabelSelector{MatchLabels: map[string]string{"app": "db"}},
		},
	}
	_, err := cluster.Client.PolicyV1().PodDisruptionBudgets(ns).Create(ctx, pdb, metav1.CreateOptions{})
	require.NoError(t, err)
	history := watchPods(t, ns)

	r := run(t, ns, "expand-pvc", "db", "--size", "2Gi", "--yes", "--online-resize-wait", "2s", "--step-timeout", "20s")
	assert.Equal(t, cmdutil.ExitNeedsAttention, r.Code)
	assert.Contains(t, r.Out, "waiting to evict pod db-1: PodDisruptionBudget db-pdb does not allow it now")
	assert.Contains(t, r.ErrOut, "pod db-1 was not evicted: PodDisruptionBudget db-pdb refused it until the time ran out")
	assert.Contains(t, r.ErrOut, "run the same command again to continue from this ordinal, or add --disable-eviction")
	for i := 0; i < 2; i++ {
		assert.Len(t, history.of(fmt.Sprintf("db-%d", i)), 1, "pod db-%d untouched", i)
	}
	assert.NotEmpty(t, eventsWithReason(t, ns, expand.ReasonEvictionBlocked))
	assert.NotEqual(t, journal.Succeeded, operationRecord(t, ns, "db").Phase)

	_, err = cluster.Client.PolicyV1().PodDisruptionBudgets(ns).Patch(ctx, "db-pdb", types.MergePatchType, []byte(`{"spec":{"minAvailable":1}}`), metav1.PatchOptions{})
	require.NoError(t, err)
	again := run(t, ns, "expand-pvc", "db", "--size", "2Gi", "--yes", "--online-resize-wait", "2s")
	require.Equal(t, 0, again.Code, again.ErrOut)
	assert.Contains(t, again.Out, "evicted pod db-1")
	assert.Contains(t, again.Out, "evicted pod db-0")
	for i := 0; i < 2; i++ {
		assert.Equal(t, "2Gi", capacityOf(pvc(t, ns, fmt.Sprintf("data-db-%d", i))))
	}
	assert.Len(t, eventsWithReason(t, ns, expand.ReasonPodRestarted), 2, "each pod restarted once")
	assert.Equal(t, journal.Succeeded, operationRecord(t, ns, "db").Phase)
}
