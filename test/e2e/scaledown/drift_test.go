package scaledown

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"k8s.io/apimachinery/pkg/types"

	cmdutil "github.com/kubectl-sts/kubectl-sts/pkg/cmd/util"
	"github.com/kubectl-sts/kubectl-sts/pkg/journal"
	"github.com/kubectl-sts/kubectl-sts/pkg/progress"
	"github.com/kubectl-sts/kubectl-sts/test/e2e/e2eutil"
)

// A colleague's change of the pod template while the scale-down runs stops
// it at once: the next ordinal is not removed, its claims stay, and the
// change is kept. The colleague's partition above every ordinal keeps the
// controller from rolling the new template out, so every pod that goes
// would be the run's.
func TestChangeBySomeoneElseStopsTheScaleDown(t *testing.T) {
	ns := cluster.NewNamespace(t)
	create(t, newStatefulSet(ns, "db", 4))
	before := snapshot(t, ns)

	patch := e2eutil.ChangeAt(t, cluster, ns, "db", types.MergePatchType, e2eutil.ColleaguePatch(3),
		func(ev progress.Event) bool { return ev.Kind == "scaled" && ev.Step == 1 })
	r := e2eutil.RunWatching(t, e2eutil.Client(cluster, ns), generous, patch,
		"scale-down", "db", "--replicas", "1", "--pvc", "delete", "--yes", "-o", "json")
	require.Equal(t, cmdutil.ExitNeedsAttention, r.Code, r.ErrOut)
	assert.Contains(t, r.ErrOut, "statefulset db was changed by someone else during the scale-down: the pod template, partition 0 → 3 (changed by colleague)")
	assert.Contains(t, r.ErrOut, "changed nothing more and undid nothing")
	assert.Contains(t, r.ErrOut, "kubectl sts status db")

	sts := e2eutil.StatefulSet(t, cluster, ns, "db")
	assert.Equal(t, "was-here", sts.Spec.Template.Annotations["colleague"], "the colleague's change is kept")
	assert.Equal(t, int32(3), *sts.Spec.Replicas, "only the first ordinal was scaled away")
	after := snapshot(t, ns)
	for _, p := range []string{"db-0", "db-1", "db-2"} {
		assert.Equal(t, before.pods[p], after.pods[p], "pod %s untouched: the next ordinal was not removed", p)
	}
	assert.Contains(t, keys(after.pvcs), "data-db-2")
	assert.Contains(t, keys(after.pvcs), "wal-db-2")
	rec := operationRecord(t, ns, "db")
	require.NotNil(t, rec)
	assert.Equal(t, journal.Running, rec.Phase, "the record stays for the person to decide")
	assert.Empty(t, rec.Holder, "the lease is released")
}
