// Package badinput runs every command with bad input against a real
// StatefulSet on the test bed and asserts, for each case, the exit code,
// a message that says what is wrong and what to do, and that nothing in
// the cluster changed: the resourceVersion of every StatefulSet, pod,
// claim, config map (the operation record among them) and StatefulSet
// Event of the namespaces is the same after the run as before.
package badinput

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	cmdutil "github.com/kubectl-sts/kubectl-sts/pkg/cmd/util"
	"github.com/kubectl-sts/kubectl-sts/pkg/journal"
	"github.com/kubectl-sts/kubectl-sts/test/e2e/e2eutil"
	"github.com/kubectl-sts/kubectl-sts/test/testbed"
)

var cluster *testbed.Cluster

func TestMain(m *testing.M) {
	os.Exit(testbed.Main(m, testbed.Options{Name: "e2e-badinput"}, &cluster))
}

const generous = 3 * time.Minute

var poll = e2eutil.Poll{Timeout: generous}

// usage is what every usage error ends with: where the help is.
const usage = "--help' for usage"

// badInput is one case: args for `kubectl sts` in the test's namespace,
// the exit code, and what the error must say (what is wrong, then what to
// do).
type badInput struct {
	args []string
	code int
	want []string
}

func TestBadInputIsRefusedWithNothingChanged(t *testing.T) {
	ns := cluster.NewNamespace(t)
	other := cluster.NewNamespace(t)
	sts := e2eutil.NewStatefulSet(ns, "db", 3, "registry.example/app:v1", "data")
	sts.Spec.VolumeClaimTemplates[0].Spec.StorageClassName = ptr.To("testbed-online")
	create(t, sts)
	create(t, e2eutil.NewStatefulSet(other, "elsewhere", 1, "registry.example/app:v1", "data"))
	// A finished operation leaves its record: bad input must not touch it.
	r := e2eutil.Run(t, e2eutil.Client(cluster, ns), generous, "expand-pvc", "db", "--size", "2Gi", "--engine", "none", "--yes")
	require.Equal(t, 0, r.Code, r.ErrOut)
	rec, err := journal.New(cluster.Client, ns, "db", "reader").Load(context.Background())
	require.NoError(t, err)
	require.NotNil(t, rec)
	require.Equal(t, journal.Succeeded, rec.Phase)
	waitQuiet(t, ns)

	manifest := filepath.Join(t.TempDir(), "broken.yaml")
	require.NoError(t, os.WriteFile(manifest, []byte("kind: StatefulSet\napiVersion: apps/v1\nspec: [not, a, map\n"), 0o600))

	cases := badInputs(other, manifest)
	t.Logf("%d bad inputs", len(cases))
	before := versions(t, ns, other)
	for _, c := range cases {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			// In-process runs use a client of the namespace the args
			// give with -n, as a real run would.
			in := ns
			if len(c.args) > 1 && c.args[0] == "-n" {
				in = c.args[1]
			}
			r := e2eutil.Run(t, e2eutil.Client(cluster, in), time.Minute, c.args...)
			assert.Equal(t, c.code, r.Code, "exit code; stderr: %s", r.ErrOut)
			assert.True(t, strings.HasPrefix(r.ErrOut, "error: "), "the error is on stderr: %q", r.ErrOut)
			for _, w := range c.want {
				assert.Contains(t, r.ErrOut, w)
			}
			after := versions(t, ns, other)
			assert.Equal(t, before, after, "nothing in the cluster changed")
		})
	}
}

func badInputs(other, manifest string) []badInput {
	const u, f = cmdutil.ExitUsage, cmdutil.ExitFailed
	return []badInput{
		// Every command.
		{[]string{"bogus", "db"}, u, []string{`unknown command "bogus"`, usage}},
		{[]string{"--color", "purple", "status", "db"}, u, []string{"purple", usage}},
		{[]string{"status", "db", "--no-such-flag"}, u, []string{"unknown flag: --no-such-flag", usage}},
		{[]string{"version", "extra"}, u, []string{usage}},

		// status
		{[]string{"status", "db", "-o", "xml"}, u, []string{"xml", usage}},
		{[]string{"status", "db", "extra"}, u, []string{usage}},
		{[]string{"status", "db", "--stuck-after", "-1s"}, u, []string{"--stuck-after", usage}},
		{[]string{"status", "db", "--max-lag", "5parsecs"}, u, []string{"5parsecs", usage}},
		{[]string{"status", "-A", "-l", "app in ("}, u, []string{"selector", usage}},
		{[]string{"status", "db", "--engine", "nosuch"}, u, []string{"nosuch", usage}},
		{[]string{"status", "missing"}, f, []string{`"missing" not found`, "kubectl get sts"}},
		{[]string{"status", "elsewhere"}, f, []string{`exists in namespace "` + other + `"`, "add -n " + other}},

		// rollout
		{[]string{"rollout"}, u, []string{usage}},
		{[]string{"rollout", "db", "extra", "--staged"}, u, []string{usage}},
		{[]string{"rollout", "db", "--yes"}, u, []string{usage}},
		{[]string{"rollout", "db", "--staged", "--image", "app=registry.example/app:v2", "--steps", "0", "--yes"}, u, []string{"--steps", usage}},
		{[]string{"rollout", "db", "--staged", "--image", "app=registry.example/app:v2", "--steps", "50%,25%", "--yes"}, u, []string{"--steps", usage}},
		{[]string{"rollout", "db", "--staged", "--image", "app=registry.example/app:v2", "--steps", "150%", "--yes"}, u, []string{"150%", usage}},
		{[]string{"rollout", "db", "--staged", "--image", "app=registry.example/app:v2", "--steps", "abc", "--yes"}, u, []string{"abc", usage}},
		{[]string{"rollout", "db", "--staged", "--image", "app=registry.example/app:v2", "--steps", "1,1", "--yes"}, u, []string{"--steps", usage}},
		{[]string{"rollout", "db", "--staged", "--image", "app=registry.example/app:v2", "--steps", "-1", "--yes"}, u, []string{"-1", usage}},
		{[]string{"rollout", "db", "--staged", "--image", "registry.example/app:v2", "--yes"}, u, []string{"--image", usage}},
		{[]string{"rollout", "db", "--staged", "--image", "nosuch=registry.example/app:v2", "--yes"}, u, []string{"nosuch", usage}},
		{[]string{"rollout", "db", "--staged", "--env", "NOEQUALS", "--yes"}, u, []string{"NOEQUALS", usage}},
		{[]string{"rollout", "db", "--staged", "--patch", "{bad json", "--yes"}, u, []string{"--patch", usage}},
		{[]string{"rollout", "db", "--staged", "-f", "/nonexistent/sts.yaml", "--yes"}, u, []string{"/nonexistent/sts.yaml", usage}},
		{[]string{"rollout", "db", "--staged", "-f", manifest, "--yes"}, u, []string{manifest, usage}},
		{[]string{"rollout", "db", "--staged", "--image", "app=registry.example/app:v2", "--soak", "-5s", "--yes"}, u, []string{"--soak", usage}},
		{[]string{"rollout", "db", "--staged", "--image", "app=registry.example/app:v2", "--step-timeout", "-1s", "--yes"}, u, []string{"--step-timeout", usage}},
		{[]string{"rollout", "db", "--staged", "--image", "app=registry.example/app:v2", "--rollback-timeout", "-1s", "--yes"}, u, []string{"--rollback-timeout", usage}},
		{[]string{"rollout", "db", "--staged", "--image", "app=registry.example/app:v2", "--max-lag", "10q", "--yes"}, u, []string{"10q", usage}},
		{[]string{"rollout", "db", "--staged", "--image", "app=registry.example/app:v2", "--engine", "nosuch", "--yes"}, u, []string{"nosuch", usage}},
		{[]string{"rollout", "db", "--staged", "--image", "app=registry.example/app:v2", "--pause-after", "99", "--yes"}, u, []string{"--pause-after", usage}},
		{[]string{"rollout", "db", "--staged", "--image", "app=registry.example/app:v2", "--final-partition", "-1", "--yes"}, u, []string{"--final-partition", usage}},
		{[]string{"rollout", "db", "--staged", "--image", "app=registry.example/app:v2", "--final-partition", "9", "--yes"}, u, []string{"--final-partition", usage}},
		{[]string{"rollout", "db", "--staged", "--image", "app=registry.example/app:v2", "--dry-run=maybe"}, u, []string{"maybe", usage}},
		{[]string{"rollout", "db", "--staged", "--image", "app=registry.example/app:v2", "-o", "xml", "--yes"}, u, []string{"xml", usage}},
		{[]string{"rollout", "db", "--staged", "--image", "app=registry.example/app:v2", "--field-manager", "", "--yes"}, u, []string{"--field-manager", usage}},
		{[]string{"rollout", "db", "--staged", "--image", "app=registry.example/app:v2", "--timeout-typo", "1m"}, u, []string{"unknown flag: --timeout-typo", usage}},
		{[]string{"rollout", "db", "--staged", "--image", "app=registry.example/app:v2"}, u, []string{"--yes"}},
		{[]string{"rollout", "missing", "--staged", "--image", "app=registry.example/app:v2", "--yes"}, f, []string{`"missing" not found`, "kubectl get sts"}},
		{[]string{"rollout", "elsewhere", "--staged", "--image", "app=registry.example/app:v2", "--yes"}, f, []string{`exists in namespace "` + other + `"`, "add -n " + other}},

		// rollout resume / undo / abort / status
		{[]string{"rollout", "resume"}, u, []string{usage}},
		{[]string{"rollout", "resume", "db", "extra"}, u, []string{usage}},
		{[]string{"rollout", "resume", "db", "--dry-run=maybe"}, u, []string{"maybe", usage}},
		{[]string{"rollout", "undo"}, u, []string{usage}},
		{[]string{"rollout", "undo", "db", "--rollback-timeout", "-1s", "--yes"}, u, []string{"--rollback-timeout", usage}},
		{[]string{"rollout", "undo", "db", "-o", "xml", "--yes"}, u, []string{"xml", usage}},
		{[]string{"rollout", "abort"}, u, []string{usage}},
		{[]string{"rollout", "abort", "db", "--bogus"}, u, []string{"unknown flag: --bogus", usage}},
		{[]string{"rollout", "status"}, u, []string{usage}},
		{[]string{"rollout", "status", "db", "-o", "xml"}, u, []string{"xml", usage}},

		// scale-down
		{[]string{"scale-down", "db", "--yes"}, u, []string{"--replicas", usage}},
		{[]string{"scale-down", "--replicas", "1", "--yes"}, u, []string{usage}},
		{[]string{"scale-down", "db", "--replicas", "-1", "--yes"}, u, []string{"--replicas", usage}},
		{[]string{"scale-down", "db", "--replicas", "abc", "--yes"}, u, []string{"abc", usage}},
		{[]string{"scale-down", "db", "--replicas", "5", "--yes"}, u, []string{"--replicas", "3"}},
		{[]string{"scale-down", "db", "--replicas", "0", "--yes"}, u, []string{"--allow-zero"}},
		{[]string{"scale-down", "db", "--replicas", "1", "--pvc", "shred", "--yes"}, u, []string{"shred", usage}},
		{[]string{"scale-down", "db", "--replicas", "1", "--pvc", "snapshot", "--yes"}, u, []string{"--pvc snapshot needs the VolumeSnapshot API", "choose --pvc keep or --pvc delete"}},
		{[]string{"scale-down", "db", "--replicas", "1", "--timeout", "-1s", "--yes"}, u, []string{"--timeout", usage}},
		{[]string{"scale-down", "db", "--replicas", "1", "--slot-name", "bad name;drop", "--yes"}, u, []string{"--slot-name", usage}},
		{[]string{"scale-down", "db", "--replicas", "1", "--engine", "nosuch", "--yes"}, u, []string{"nosuch", usage}},
		{[]string{"scale-down", "db", "--replicas", "1", "-o", "xml", "--yes"}, u, []string{"xml", usage}},
		{[]string{"scale-down", "db", "--replicas", "1", "--dry-run=maybe"}, u, []string{"maybe", usage}},
		{[]string{"scale-down", "db", "--replicas", "1", "--field-manager", ""}, u, []string{"--field-manager", usage}},
		{[]string{"scale-down", "db", "--replicas", "1"}, u, []string{"--yes"}},
		{[]string{"scale-down", "missing", "--replicas", "1", "--yes"}, f, []string{`"missing" not found`, "kubectl get sts"}},
		{[]string{"scale-down", "elsewhere", "--replicas", "0", "--allow-zero", "--yes"}, f, []string{`exists in namespace "` + other + `"`, "add -n " + other}},

		// expand-pvc
		{[]string{"expand-pvc", "db", "--yes"}, u, []string{"--size", usage}},
		{[]string{"expand-pvc", "--size", "3Gi", "--yes"}, u, []string{usage}},
		{[]string{"expand-pvc", "db", "--size", "abc", "--yes"}, u, []string{"abc", usage}},
		{[]string{"expand-pvc", "db", "--size", "-1Gi", "--yes"}, u, []string{"-1Gi", usage}},
		{[]string{"expand-pvc", "db", "--size", "0", "--yes"}, u, []string{"--size", usage}},
		// Refusals of the preflight, which reads the cluster: exit 1, as
		// docs/exit-codes.md says.
		{[]string{"expand-pvc", "db", "--size", "1Gi", "--yes"}, f, []string{"nothing was changed", "a volume cannot be shrunk", "pick a size at least as large"}},
		{[]string{"expand-pvc", "db", "--size", "3Gi", "--claim", "nosuch", "--yes"}, f, []string{"nothing was changed", `no volumeClaimTemplate "nosuch"; it has: data`}},
		{[]string{"expand-pvc", "db", "--size", "3Gi", "--restart", "sometimes", "--yes"}, u, []string{"sometimes", usage}},
		{[]string{"expand-pvc", "db", "--size", "3Gi", "--online-resize-wait", "-1s", "--yes"}, u, []string{"--online-resize-wait", usage}},
		{[]string{"expand-pvc", "db", "--size", "3Gi", "--timeout", "-1s", "--yes"}, u, []string{"--timeout", usage}},
		{[]string{"expand-pvc", "db", "--size", "3Gi", "--engine-timeout", "-1s", "--yes"}, u, []string{"--engine-timeout", usage}},
		{[]string{"expand-pvc", "db", "--size", "3Gi", "--update-template", "--no-update-template", "--yes"}, u, []string{"--no-update-template", usage}},
		{[]string{"expand-pvc", "db", "--size", "3Gi", "--engine", "nosuch", "--yes"}, u, []string{"nosuch", usage}},
		{[]string{"expand-pvc", "db", "--size", "3Gi", "--dry-run=maybe"}, u, []string{"maybe", usage}},
		{[]string{"expand-pvc", "db", "--size", "3Gi", "-o", "xml", "--yes"}, u, []string{"xml", usage}},
		{[]string{"expand-pvc", "db", "--size", "3Gi"}, u, []string{"--yes"}},
		{[]string{"expand-pvc", "missing", "--size", "3Gi", "--yes"}, f, []string{`"missing" not found`, "kubectl get sts"}},
		{[]string{"expand-pvc", "elsewhere", "--size", "3Gi", "--yes"}, f, []string{`exists in namespace "` + other + `"`, "add -n " + other}},
		{[]string{"-n", "no-such-namespace", "expand-pvc", "db", "--size", "3Gi", "--yes"}, f, []string{`namespace "no-such-namespace" does not exist`, "kubectl get namespaces"}},

		// cleanup-pvcs
		{[]string{"cleanup-pvcs", "--yes"}, u, []string{usage}},
		{[]string{"cleanup-pvcs", "db", "--pvc", "shred", "--yes"}, u, []string{"shred", usage}},
		{[]string{"cleanup-pvcs", "db", "--timeout", "-1s", "--yes"}, u, []string{"--timeout", usage}},
		{[]string{"cleanup-pvcs", "db", "-o", "xml", "--yes"}, u, []string{"xml", usage}},
		{[]string{"cleanup-pvcs", "missing", "--yes"}, f, []string{`"missing" not found`, "kubectl get sts"}},
	}
}

func create(t *testing.T, sts *appsv1.StatefulSet) {
	t.Helper()
	_, err := cluster.Client.AppsV1().StatefulSets(sts.Namespace).Create(context.Background(), sts, metav1.CreateOptions{})
	require.NoError(t, err)
	poll.Until(t, "statefulset "+sts.Name+" Ready", func(ctx context.Context) (bool, error) {
		s, err := cluster.Client.AppsV1().StatefulSets(sts.Namespace).Get(ctx, sts.Name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		return s.Status.ObservedGeneration == s.Generation && s.Status.ReadyReplicas == *sts.Spec.Replicas &&
			s.Status.AvailableReplicas == *sts.Spec.Replicas, nil
	})
}

// waitQuiet waits until the namespace's objects stop changing (the
// controllers' last status writes after the setup).
func waitQuiet(t *testing.T, namespaces ...string) {
	t.Helper()
	last, stable := versions(t, namespaces...), 0
	poll.Until(t, "the namespaces quiet", func(context.Context) (bool, error) {
		time.Sleep(500 * time.Millisecond)
		now := versions(t, namespaces...)
		if equalMaps(now, last) {
			stable++
		} else {
			stable, last = 0, now
		}
		return stable >= 4, nil
	})
}

func equalMaps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// versions maps every StatefulSet, pod, claim, config map and StatefulSet
// event of the namespaces to its resourceVersion.
func versions(t *testing.T, namespaces ...string) map[string]string {
	t.Helper()
	ctx := context.Background()
	out := map[string]string{}
	add := func(kind string, items []metav1.Object) {
		for _, o := range items {
			out[kind+" "+o.GetNamespace()+"/"+o.GetName()] = o.GetResourceVersion()
		}
	}
	for _, ns := range namespaces {
		sts, err := cluster.Client.AppsV1().StatefulSets(ns).List(ctx, metav1.ListOptions{})
		require.NoError(t, err)
		add("statefulset", objects(sts.Items))
		pods, err := cluster.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
		require.NoError(t, err)
		add("pod", objects(pods.Items))
		pvcs, err := cluster.Client.CoreV1().PersistentVolumeClaims(ns).List(ctx, metav1.ListOptions{})
		require.NoError(t, err)
		add("pvc", objects(pvcs.Items))
		cms, err := cluster.Client.CoreV1().ConfigMaps(ns).List(ctx, metav1.ListOptions{})
		require.NoError(t, err)
		add("configmap", objects(cms.Items))
		// The Events the commands record are on the StatefulSet; those of
		// pods are the simulated kubelets' and change on their own.
		events, err := cluster.Client.CoreV1().Events(ns).List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.kind=StatefulSet"})
		require.NoError(t, err)
		add("event", objects(events.Items))
	}
	return out
}

func objects[T any, P interface {
	*T
	metav1.Object
}](items []T) []metav1.Object {
	out := make([]metav1.Object, len(items))
	for i := range items {
		out[i] = P(&items[i])
	}
	return out
}
