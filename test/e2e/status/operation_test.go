package status

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	cmdutil "github.com/kubectl-sts/kubectl-sts/pkg/cmd/util"
	"github.com/kubectl-sts/kubectl-sts/pkg/journal"
	"github.com/kubectl-sts/kubectl-sts/pkg/kube"
	"github.com/kubectl-sts/kubectl-sts/test/e2e/e2eutil"
)

// pausedRollout is a StatefulSet db of 3 pods in a new namespace whose
// staged rollout to imageV2 paused after its first step, and the client
// of that namespace.
func pausedRollout(t *testing.T) (string, *kube.Client) {
	t.Helper()
	ns := cluster.NewNamespace(t)
	create(t, ns, "db", 3)
	client := e2eutil.ClientFor(t, ns, cluster.RESTConfig)
	res := e2eutil.RunContext(ctxFor(t), client, "rollout", "db", "--staged", "--image", "db="+imageV2,
		"--steps", "1,100%", "--pause-after", "1", "--yes")
	require.Equal(t, cmdutil.ExitPaused, res.Code, res.ErrOut+res.Out)
	return ns, client
}

// A rollout paused at its approval point holds the partition on purpose:
// status says so and points at rollout resume and undo. Before, it read
// the partition alone and proposed a new staged rollout (which the recorded
// one refuses) or a hand-made patch of the partition (which the recorded
// rollout would then stop on as someone else's change).
func TestPausedRolloutPointsAtResumeAndUndo(t *testing.T) {
	ns, client := pausedRollout(t)

	res := runIn(t, ns, "db")
	require.Equal(t, cmdutil.ExitDegraded, res.Code, res.ErrOut+res.Out)
	assert.Contains(t, res.Out, "Verdict: Progressing")
	assert.Contains(t, res.Out, "OperationUnfinished: the rollout started ")
	assert.Contains(t, res.Out, "is paused at an approval point")
	assert.Contains(t, res.Out, fmt.Sprintf("continue it with: kubectl sts rollout resume db -n %s (or undo it with: kubectl sts rollout undo db -n %s)", ns, ns))
	assert.NotContains(t, res.Out, `"partition":0`, "a hand-made partition patch is not the way on")
	assert.NotContains(t, res.Out, "kubectl sts rollout db --staged")

	res = runIn(t, ns, "db", "-o", "jsonpath={.operation.operation} {.operation.phase}")
	require.Equal(t, cmdutil.ExitDegraded, res.Code, res.ErrOut+res.Out)
	assert.Equal(t, "rollout Paused", res.Out)

	res = e2eutil.RunContext(ctxFor(t), client, "rollout", "resume", "db", "--yes")
	require.Equal(t, cmdutil.ExitOK, res.Code, res.ErrOut+res.Out)
	res = runIn(t, ns, "db")
	assert.Equal(t, cmdutil.ExitOK, res.Code, res.ErrOut+res.Out)
	assert.NotContains(t, res.Out, "OperationUnfinished")
}

// While another process holds the lease of an operation, status names it,
// says when the lease expires and what to do, and the StatefulSet is not
// Healthy even though every pod is.
func TestOperationHeldByAnotherProcessIsNamed(t *testing.T) {
	ns := cluster.NewNamespace(t)
	create(t, ns, "db", 2)

	j := journal.New(cluster.Client, ns, "db", "elsewhere/4242/abcdef")
	_, _, err := j.Begin(ctxFor(t), "expand-pvc", map[string]string{})
	require.NoError(t, err)

	res := runIn(t, ns, "db")
	require.Equal(t, cmdutil.ExitDegraded, res.Code, res.ErrOut+res.Out)
	assert.Contains(t, res.Out, "Verdict: Progressing")
	assert.Contains(t, res.Out, "OperationUnfinished: the expand-pvc started ")
	assert.Contains(t, res.Out, "is running: elsewhere/4242/abcdef holds its lease")
	assert.Contains(t, res.Out, "--take-over")

	// The process gives its lease back, as on Ctrl-C: status says no
	// process holds it and how to finish.
	rec, err := j.Load(ctxFor(t))
	require.NoError(t, err)
	require.NoError(t, j.Release(ctxFor(t), rec, "stopped"))
	res = runIn(t, ns, "db")
	require.Equal(t, cmdutil.ExitDegraded, res.Code, res.ErrOut+res.Out)
	assert.Contains(t, res.Out, "stopped part-way (Running, no process holds it)")
	assert.Contains(t, res.Out, "run the same kubectl sts expand-pvc command again to finish it")
}

// Someone else sets another image while the rollout is paused: status does
// not offer resume (the rollout refuses it) but undo or abort.
func TestPausedRolloutOverwrittenBySomeoneElse(t *testing.T) {
	ns, client := pausedRollout(t)
	patch := `{"spec":{"template":{"spec":{"containers":[{"name":"db","image":"registry.example/db:v3"}]}}}}`
	_, err := cluster.Client.AppsV1().StatefulSets(ns).Patch(ctxFor(t), "db", types.StrategicMergePatchType, []byte(patch),
		metav1.PatchOptions{FieldManager: "colleague"})
	require.NoError(t, err)

	res := runInUntil(t, ns, "the pod template changed since it started", "db")
	require.Equal(t, cmdutil.ExitDegraded, res.Code, res.ErrOut+res.Out)
	assert.Contains(t, res.Out, "OperationUnfinished: the rollout started ")
	assert.Contains(t, res.Out, "the pod template changed since it started")
	assert.Contains(t, res.Out, fmt.Sprintf("undo it with: kubectl sts rollout undo db -n %s", ns))
	assert.Contains(t, res.Out, fmt.Sprintf("abort it with: kubectl sts rollout abort db -n %s", ns))
	assert.NotContains(t, res.Out, "rollout resume")

	// resume is indeed refused, with the same ways out.
	res = e2eutil.RunContext(ctxFor(t), client, "rollout", "resume", "db", "--yes")
	assert.Equal(t, cmdutil.ExitNeedsAttention, res.Code, res.ErrOut+res.Out)
	assert.Contains(t, res.ErrOut, "undo it with: kubectl sts rollout undo db")
}
