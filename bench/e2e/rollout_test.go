package e2e

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/kubectl-sts/kubectl-sts/pkg/wait"
	"github.com/kubectl-sts/kubectl-sts/test/e2e/e2eutil"
)

const (
	imageA = "registry.example/app:a"
	imageB = "registry.example/app:b"
	// bound is the longest any single benchmark run may take.
	bound = 30 * time.Minute
)

// The ways to roll out a pending template, from the physical limit to the
// runbooks.
const (
	variantPlain     = "partition patch (controller alone)"
	variantPlugin    = "kubectl sts rollout --staged"
	variantCorrected = "runbook, corrected"
	variantWritten   = "runbook as written"
	variantSleep     = "runbook with sleep 10"
)

// rolloutRun is one rollout of a pending template.
type rolloutRun struct {
	variant   string
	wall      time.Duration
	early     int // pods not yet on the new revision, or not Ready, when it finished
	notFound  int // `kubectl wait` failures on a pod in the delete/recreate gap
	reactions []time.Duration
	// deletes are the controller's reactions in the run: from a pod
	// turning Ready on the new revision to its deletion of the next pod.
	deletes []time.Duration
	reqs    []request
	maxRSS  int64
}

// rolloutBench sets up a StatefulSet of n replicas (OrderedReady) and rolls
// it out between two images with every variant in turn, repeat times.
func rolloutBench(t *testing.T, plugin string, sr sizeRepeat, variants []string) []rolloutRun {
	n, repeat := sr.replicas, sr.repeat
	ns := cluster.NewNamespace(t)
	sts := e2eutil.NewStatefulSet(ns, "db", int32(n), imageA)
	if sr.terminate > 0 {
		sts.Spec.Template.Annotations = map[string]string{"testbed.kubectl-sts.io/terminate-delay": sr.terminate.String()}
	}
	ctx := context.Background()
	_, err := cluster.Client.AppsV1().StatefulSets(ns).Create(ctx, sts, metav1.CreateOptions{})
	require.NoError(t, err)
	settle(t, ns, "db")
	image := imageA
	var runs []rolloutRun
	for r := range repeat {
		for _, v := range variants {
			if v == variantSleep && r > 0 {
				continue // ten seconds a pod: once is enough to see it
			}
			if image == imageA {
				image = imageB
			} else {
				image = imageA
			}
			to := pend(t, ns, "db", image, int32(n))
			run := rolloutOnce(t, plugin, ns, "db", to, v)
			t.Logf("rollout of %d, run %d, %s: %s (early %d, requests %d)", n, r+1, v, run.wall.Round(time.Millisecond), run.early, len(run.reqs))
			runs = append(runs, run)
		}
	}
	return runs
}

func rolloutOnce(t *testing.T, plugin, ns, name, to, variant string) rolloutRun {
	ctx, cancel := context.WithTimeout(context.Background(), bound)
	defer cancel()
	st := startStamper(t, ns, name)
	run := rolloutRun{variant: variant}
	began := time.Now()
	var p proc
	switch variant {
	case variantPlain:
		_, err := cluster.Client.AppsV1().StatefulSets(ns).Patch(ctx, name, types.MergePatchType,
			[]byte(`{"spec":{"updateStrategy":{"rollingUpdate":{"partition":0}}}}`), metav1.PatchOptions{})
		require.NoError(t, err)
	case variantPlugin:
		p = runProc(ctx, plugin, "rollout", name, "-n", ns, "--staged", "--yes", "-v=6")
		require.Equal(t, 0, p.code, "%s\n%s", p.stdout, tailLines(p.stderr, 20))
		run.reqs = requests(p.stderr)
		run.maxRSS = p.maxRSS
	default:
		script := map[string]string{variantCorrected: "rollout-corrected.sh", variantWritten: "rollout-as-written.sh", variantSleep: "rollout-sleep10.sh"}[variant]
		p = runProc(ctx, "bash", filepath.Join(repoRoot(), "bench", "runbooks", script), ns, name)
		// The runbook as written fails when its last `kubectl wait` meets
		// the delete/recreate gap: that is its race, counted below.
		if variant != variantWritten {
			require.Equal(t, 0, p.code, "%s: %s", script, p.stderr)
		}
		run.notFound = strings.Count(p.stderr, "NotFound")
	}
	exited := time.Now()
	if variant == variantWritten {
		run.early = notUpdated(t, ns, name, to)
	}
	settle(t, ns, name)
	st.close()
	switch variant {
	case variantPlain:
		run.wall = st.lastReady(to).Sub(began)
		run.reactions = reactions(st.all(), to, stampDeleted)
		run.deletes = run.reactions
	case variantWritten:
		run.wall = exited.Sub(began)
	default:
		run.wall = exited.Sub(began)
		if variant == variantPlugin {
			run.reactions = reactions(st.all(), to, stampPartition)
			run.deletes = reactions(st.all(), to, stampDeleted)
		}
		if run.early = 0; st.lastReady(to).After(exited) {
			run.early = -1 // finished before the last pod was Ready: a bug
		}
	}
	return run
}

// pend sets the template to image with the partition holding all n pods,
// as a GitOps tool would, and returns the new update revision.
func pend(t *testing.T, ns, name, image string, n int32) string {
	t.Helper()
	ctx := context.Background()
	sets := cluster.Client.AppsV1().StatefulSets(ns)
	s, err := sets.Get(ctx, name, metav1.GetOptions{})
	require.NoError(t, err)
	s.Spec.Template.Spec.Containers[0].Image = image
	s.Spec.UpdateStrategy = appsv1.StatefulSetUpdateStrategy{Type: appsv1.RollingUpdateStatefulSetStrategyType,
		RollingUpdate: &appsv1.RollingUpdateStatefulSetStrategy{Partition: &n}}
	s, err = sets.Update(ctx, s, metav1.UpdateOptions{})
	require.NoError(t, err)
	var rev string
	e2eutil.Poll{Timeout: bound}.Until(t, "the controller to see the new template", func(ctx context.Context) (bool, error) {
		got, err := sets.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		rev = got.Status.UpdateRevision
		return got.Status.ObservedGeneration >= s.Generation && rev != got.Status.CurrentRevision, nil
	})
	return rev
}

// settle waits until every pod is Ready on one revision.
func settle(t *testing.T, ns, name string) {
	t.Helper()
	e2eutil.Poll{Timeout: bound}.Until(t, "statefulset "+name+" settled", func(ctx context.Context) (bool, error) {
		s, err := cluster.Client.AppsV1().StatefulSets(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		r := *s.Spec.Replicas
		return s.Status.ObservedGeneration == s.Generation && s.Status.ReadyReplicas == r && s.Status.UpdatedReplicas == r &&
			s.Status.CurrentRevision == s.Status.UpdateRevision && s.Status.Replicas == r, nil
	})
}

// notUpdated counts the pods that are not Ready on revision rev.
func notUpdated(t *testing.T, ns, name, rev string) int {
	t.Helper()
	sts, err := cluster.Client.AppsV1().StatefulSets(ns).Get(context.Background(), name, metav1.GetOptions{})
	require.NoError(t, err)
	list, err := cluster.Client.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{LabelSelector: "app=" + name})
	require.NoError(t, err)
	ok := 0
	for i := range list.Items {
		p := &list.Items[i]
		if p.DeletionTimestamp == nil && wait.PodRevision(p) == rev && wait.IsPodReady(p) {
			ok++
		}
	}
	return int(*sts.Spec.Replicas) - ok
}

func tailLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
