package rollout

import (
	"context"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
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

	var once sync.Once
	var kinds []string
	watch := func(ev progress.Event) {
		kinds = append(kinds, ev.Kind)
		if ev.Kind != "step-passed" || ev.Step != 1 {
			return
		}
		once.Do(func() {
			_, err := cluster.Client.AppsV1().StatefulSets(ns).Patch(context.Background(), "db", types.StrategicMergePatchType,
				[]byte(`{"spec":{"template":{"spec":{"containers":[{"name":"app","image":"registry.example/app:v3"}]}}}}`),
				metav1.PatchOptions{FieldManager: "colleague"})
			require.NoError(t, err)
		})
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
