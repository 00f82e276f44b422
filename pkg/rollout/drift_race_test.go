package rollout

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	k8stesting "k8s.io/client-go/testing"

	"github.com/kubectl-sts/kubectl-sts/pkg/kube/kubefake"
)

// A person's change that lands just before the run's own partition patch,
// before the watch has shown it, must stop the run before its patch
// applies: nothing is changed after the person's edit, and nothing is
// rolled back.
func TestChangeLandingJustBeforeTheOwnPartitionPatchIsNoticed(t *testing.T) {
	c := setup(t, 4)
	var patches atomic.Int32
	c.ctrl.React("patch", "statefulsets", func(a k8stesting.Action) (bool, runtime.Object, error) {
		p := a.(k8stesting.PatchAction)
		if a.GetSubresource() != "" || !strings.Contains(string(p.GetPatch()), "partition") {
			return false, nil, nil
		}
		// The second partition patch is the move to step 2: the person's
		// edit is stored first, and the step's pods never become Ready.
		if patches.Add(1) != 2 {
			return false, nil, nil
		}
		c.setPaused(true)
		obj, err := c.cs.Tracker().Get(kubefake.StatefulSetGVR, a.GetNamespace(), p.GetName())
		require.NoError(t, err)
		s := obj.(*appsv1.StatefulSet).DeepCopy()
		s.Spec.Template.Spec.Containers[0].Image = "app:hotfix"
		s.Generation++
		require.NoError(t, c.cs.Tracker().Update(kubefake.StatefulSetGVR, s, a.GetNamespace()))
		return false, nil, nil
	})
	r := c.runner("me", nil)
	pv, err := r.Prepare(ctxT(t), Request{
		Change: &Change{Images: map[string]string{"db": "app:v2"}},
		Gates:  Gates{StepTimeout: 15 * time.Second, RollbackTimeout: 10 * time.Second},
	})
	require.NoError(t, err)
	start := time.Now()
	err = r.Run(ctxT(t), pv)
	require.Error(t, err)
	require.GreaterOrEqual(t, patches.Load(), int32(2), "the run reached its second partition patch")
	var na *NeedsAttentionError
	require.ErrorAs(t, err, &na, "got %v", err)
	assert.Contains(t, err.Error(), "changed by someone else")
	assert.Contains(t, err.Error(), "the pod template")
	assert.Less(t, time.Since(start), 15*time.Second, "stopped at the change, not at the step timeout")
	sts, err := c.cs.AppsV1().StatefulSets(testNS).Get(context.Background(), "db", metav1.GetOptions{})
	require.NoError(t, err)
	assert.Equal(t, "app:hotfix", sts.Spec.Template.Spec.Containers[0].Image, "the person's change stays")
	assert.Equal(t, int32(3), Partition(sts), "the partition stays where step 1 left it: nothing was changed after the person's edit")
}
