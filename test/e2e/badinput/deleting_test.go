package badinput

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	cmdutil "github.com/kubectl-sts/kubectl-sts/pkg/cmd/util"
	"github.com/kubectl-sts/kubectl-sts/test/e2e/e2eutil"
)

// TestAStatefulSetBeingDeletedIsRefusedByEveryCommand: a StatefulSet whose
// deletion a finalizer holds keeps its pods and claims, but its controller
// no longer acts on it. Every command that would change it refuses it,
// exit 1, saying so, without a plan built from what it did not read, and
// with nothing in the cluster changed; status reports it (exit 3).
func TestAStatefulSetBeingDeletedIsRefusedByEveryCommand(t *testing.T) {
	ns := cluster.NewNamespace(t)
	sts := e2eutil.NewStatefulSet(ns, "db", 3, "registry.example/app:v1", "data")
	sts.Finalizers = []string{"example.com/hold"}
	create(t, sts)
	t.Cleanup(func() {
		_, _ = cluster.Client.AppsV1().StatefulSets(ns).Patch(context.Background(), "db", types.MergePatchType,
			[]byte(`{"metadata":{"finalizers":null}}`), metav1.PatchOptions{})
	})
	require.NoError(t, cluster.Client.AppsV1().StatefulSets(ns).Delete(context.Background(), "db", metav1.DeleteOptions{}))
	poll.Until(t, "the deletion recorded", func(ctx context.Context) (bool, error) {
		s, err := cluster.Client.AppsV1().StatefulSets(ns).Get(ctx, "db", metav1.GetOptions{})
		return err == nil && s.DeletionTimestamp != nil, err
	})
	waitQuiet(t, ns)
	before := versions(t, ns)

	for _, args := range [][]string{
		{"rollout", "db", "--staged", "--image", "app=registry.example/app:v2", "--dry-run=client"},
		{"rollout", "db", "--staged", "--image", "app=registry.example/app:v2", "--dry-run=server"},
		{"rollout", "db", "--staged", "--image", "app=registry.example/app:v2", "--yes"},
		{"rollout", "undo", "db", "--yes"},
		{"scale-down", "db", "--replicas", "1", "--pvc", "delete", "--dry-run=client"},
		{"scale-down", "db", "--replicas", "1", "--pvc", "delete", "--dry-run=server"},
		{"scale-down", "db", "--replicas", "1", "--pvc", "delete", "--yes"},
		{"cleanup", "db", "--dry-run=server"},
		{"expand-pvc", "db", "--size", "2Gi", "--dry-run=server"},
		{"expand-pvc", "db", "--size", "2Gi", "--yes"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			if args[1] != "undo" {
				args = append(args, "--engine", "none")
			}
			r := e2eutil.Run(t, e2eutil.Client(cluster, ns), time.Minute, args...)
			assert.Equal(t, cmdutil.ExitFailed, r.Code, "exit code; stderr: %s", r.ErrOut)
			assert.Contains(t, r.ErrOut, "statefulset db is being deleted")
			assert.NotContains(t, r.ErrOut, "--no-update-template", "no hint that leads to the same refusal")
			assert.NotContains(t, r.Out, "Plan:", "no plan is shown for what was not read")
			assert.Equal(t, before, versions(t, ns), "nothing in the cluster changed")
		})
	}
	r := e2eutil.Run(t, e2eutil.Client(cluster, ns), time.Minute, "status", "db", "--engine", "none")
	assert.Equal(t, cmdutil.ExitDegraded, r.Code, r.ErrOut)
	assert.Contains(t, r.Out, "statefulset db is being deleted")
}
