package expandpvc

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"k8s.io/apimachinery/pkg/types"

	cmdutil "github.com/kubectl-sts/kubectl-sts/pkg/cmd/util"
	"github.com/kubectl-sts/kubectl-sts/pkg/progress"
	"github.com/kubectl-sts/kubectl-sts/test/e2e/e2eutil"
)

// A colleague's change of the StatefulSet while the expansion runs stops
// it at once (the partition above every ordinal keeps the controller from
// rolling the new template out, so any pod restart would be the run's): no pod is restarted, no further claim is touched, the
// StatefulSet is not recreated, and the change is kept.
func TestChangeBySomeoneElseStopsTheExpansion(t *testing.T) {
	ns := cluster.NewNamespace(t)
	create(t, newStatefulSet(ns, "db", 3, "testbed-offline"))
	before := e2eutil.StatefulSet(t, cluster, ns, "db")
	history := watchPods(t, ns)

	patch := e2eutil.ChangeAt(t, cluster, ns, "db", types.MergePatchType, e2eutil.ColleaguePatch(3),
		func(ev progress.Event) bool { return ev.Kind == "pvc-patched" && ev.Step == 1 })
	r := e2eutil.RunWatching(t, e2eutil.Client(cluster, ns), generous, patch,
		"expand-pvc", "db", "--size", "2Gi", "--yes", "--online-resize-wait", "3s", "-o", "json")
	require.Equal(t, cmdutil.ExitNeedsAttention, r.Code, r.ErrOut)
	assert.Contains(t, r.ErrOut, "statefulset db was changed by someone else during the expansion: the pod template, partition 0 → 3 (changed by colleague)")
	assert.Contains(t, r.ErrOut, "changed nothing more and undid nothing")

	sts := e2eutil.StatefulSet(t, cluster, ns, "db")
	assert.Equal(t, before.UID, sts.UID, "the StatefulSet was not recreated")
	assert.Equal(t, "was-here", sts.Spec.Template.Annotations["colleague"], "the colleague's change is kept")
	assert.Equal(t, int32(3), *sts.Spec.UpdateStrategy.RollingUpdate.Partition)
	assert.Equal(t, "1Gi", templateSize(sts))
	assert.Equal(t, "2Gi", requestOf(pvc(t, ns, "data-db-2")), "the first claim was patched before the change")
	for _, c := range []string{"data-db-0", "data-db-1"} {
		assert.Equal(t, "1Gi", requestOf(pvc(t, ns, c)), "pvc %s is untouched", c)
	}
	for i := 0; i < 3; i++ {
		name := fmt.Sprintf("db-%d", i)
		assert.Len(t, history.of(name), 1, "pod %s was not restarted", name)
	}
}

// A change made after the template step saved its copy of the StatefulSet
// is never undone by recreating it from that copy: the delete carries the
// resourceVersion the copy was made from, and the run stops.
func TestChangeDuringTheTemplateStepIsNotUndone(t *testing.T) {
	ns := cluster.NewNamespace(t)
	create(t, newStatefulSet(ns, "db", 2, "testbed-online"))
	before := e2eutil.StatefulSet(t, cluster, ns, "db")

	patch := e2eutil.ChangeAt(t, cluster, ns, "db", types.MergePatchType, e2eutil.ColleaguePatch(2),
		func(ev progress.Event) bool { return ev.Kind == "template-saved" })
	r := e2eutil.RunWatching(t, e2eutil.Client(cluster, ns), generous, patch,
		"expand-pvc", "db", "--size", "2Gi", "--yes", "-o", "json")
	require.Equal(t, cmdutil.ExitNeedsAttention, r.Code, r.ErrOut)
	assert.Contains(t, r.ErrOut, "statefulset db was changed by someone else during the expansion: the pod template, partition 0 → 2 (changed by colleague)")

	sts := e2eutil.StatefulSet(t, cluster, ns, "db")
	assert.Equal(t, before.UID, sts.UID, "the StatefulSet was not deleted")
	assert.Equal(t, "was-here", sts.Spec.Template.Annotations["colleague"], "the colleague's change is kept")
	assert.Equal(t, int32(2), *sts.Spec.UpdateStrategy.RollingUpdate.Partition)
	for _, c := range []string{"data-db-0", "data-db-1"} {
		assert.Equal(t, "2Gi", capacityOf(pvc(t, ns, c)), "pvc %s was expanded before the template step", c)
	}
}
