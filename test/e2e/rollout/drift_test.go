package rollout

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"k8s.io/apimachinery/pkg/types"

	cmdutil "github.com/kubectl-sts/kubectl-sts/pkg/cmd/util"
	"github.com/kubectl-sts/kubectl-sts/pkg/progress"
	"github.com/kubectl-sts/kubectl-sts/test/e2e/e2eutil"
)

// A colleague's image change in the middle of a rollout stops it at once,
// names who made it, and is never rolled back.
func TestImageChangedBySomeoneElseIsNotRolledBack(t *testing.T) {
	ns := cluster.NewNamespace(t)
	create(t, newStatefulSet(ns, "db", 3))

	var kinds []string
	change := e2eutil.ChangeAt(t, cluster, ns, "db", types.StrategicMergePatchType,
		[]byte(`{"spec":{"template":{"spec":{"containers":[{"name":"app","image":"registry.example/app:v3"}]}}}}`),
		func(ev progress.Event) bool { return ev.Kind == "step-passed" && ev.Step == 1 })
	watch := func(ev progress.Event) {
		kinds = append(kinds, ev.Kind)
		change(ev)
	}
	r := e2eutil.RunWatching(t, e2eutil.Client(cluster, ns), generous, watch,
		"rollout", "db", "--staged", "--image", "app="+imageV2, "--engine", "none", "--yes", "-o", "json")
	require.Equal(t, cmdutil.ExitNeedsAttention, r.Code, r.ErrOut)
	assert.Contains(t, r.ErrOut, "statefulset db was changed by someone else during step 2 of 3 (the pod template (changed by colleague))")
	assert.Contains(t, r.ErrOut, "rolled nothing back")
	assert.NotContains(t, kinds, "rollback-started")

	sts := e2eutil.StatefulSet(t, cluster, ns, "db")
	assert.Equal(t, "registry.example/app:v3", sts.Spec.Template.Spec.Containers[0].Image, "the colleague's image is kept")
}
