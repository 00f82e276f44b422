package rollout

import (
	"context"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	cmdutil "github.com/kubectl-sts/kubectl-sts/pkg/cmd/util"
	"github.com/kubectl-sts/kubectl-sts/pkg/wait"
	"github.com/kubectl-sts/kubectl-sts/test/e2e/e2eutil"
)

// overlap follows pods and records whether all of names were unavailable
// (absent, terminating or not Ready) at one moment.
type overlap struct {
	mu    sync.Mutex
	up    map[string]bool
	names []string
	seen  bool
}

func watchOverlap(t *testing.T, ns string, names ...string) *overlap {
	t.Helper()
	o := &overlap{up: map[string]bool{}, names: names}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	w, err := cluster.Client.CoreV1().Pods(ns).Watch(ctx, metav1.ListOptions{})
	require.NoError(t, err)
	go func() {
		for ev := range w.ResultChan() {
			p, ok := ev.Object.(*corev1.Pod)
			if !ok {
				continue
			}
			o.mu.Lock()
			o.up[p.Name] = ev.Type != "DELETED" && p.DeletionTimestamp == nil && wait.IsPodReady(p)
			down := 0
			for _, n := range o.names {
				if !o.up[n] {
					down++
				}
			}
			if down == len(o.names) {
				o.seen = true
			}
			o.mu.Unlock()
		}
	}()
	return o
}

func (o *overlap) happened() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.seen
}

// On 1.37 MaxUnavailableStatefulSet is on by default: with maxUnavailable 2
// the controller replaces the two pods of a step together, and the plan
// and the steps say so.
func TestMaxUnavailableTwoReplacesTwoPodsAtOnce(t *testing.T) {
	ns := cluster.NewNamespace(t)
	sts := newStatefulSet(ns, "db", 4)
	sts.Spec.UpdateStrategy = appsv1.StatefulSetUpdateStrategy{
		Type:          appsv1.RollingUpdateStatefulSetStrategyType,
		RollingUpdate: &appsv1.RollingUpdateStatefulSetStrategy{MaxUnavailable: ptr.To(intstr.FromInt32(2))},
	}
	// A second to become Ready: one pod at a time could never have both
	// pods of the step down together.
	sts.Spec.Template.Annotations = map[string]string{"testbed.kubectl-sts.io/ready-delay": "1s"}
	got := create(t, sts)
	require.NotNil(t, got.Spec.UpdateStrategy.RollingUpdate.MaxUnavailable, "Kubernetes %s must keep maxUnavailable", cluster.ServerVersion)
	require.Equal(t, "2", got.Spec.UpdateStrategy.RollingUpdate.MaxUnavailable.String())

	args := []string{"rollout", "db", "--staged", "--image", "app=" + imageV2, "--steps", "2,100%"}
	res := run(t, ns, append(args, "--dry-run")...)
	require.Equal(t, cmdutil.ExitOK, res.Code, res.ErrOut)
	assert.Contains(t, res.Out, "maxUnavailable 2: the controller may take up to 2 pods down at once")

	step1 := watchOverlap(t, ns, "db-3", "db-2")
	res = run(t, ns, append(args, "--yes", "-o", "json")...)
	require.Equal(t, cmdutil.ExitOK, res.Code, res.ErrOut)
	assert.Contains(t, res.Out, "updating db-3, db-2 to revision ")
	assert.Contains(t, res.Out, "(2 of 4 pods, up to 2 at once (maxUnavailable 2))")
	assert.True(t, step1.happened(), "db-3 and db-2 were replaced together")
	for n, p := range e2eutil.Pods(t, cluster.Client, ns, "app=db") {
		assert.Equal(t, imageV2, p.Spec.Containers[0].Image, n)
		assert.True(t, ready(p), n)
	}
}
