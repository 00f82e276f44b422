// Package rollout tests `kubectl sts rollout` end to end against the real
// control plane of the test bed: the real StatefulSet controller moves the
// pods as the partition goes down, creates the ControllerRevisions the
// rollback restores, and waits forever for a pod that never becomes Ready.
package rollout

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/kubectl-sts/kubectl-sts/pkg/cmd"
	cmdutil "github.com/kubectl-sts/kubectl-sts/pkg/cmd/util"
	"github.com/kubectl-sts/kubectl-sts/pkg/journal"
	"github.com/kubectl-sts/kubectl-sts/pkg/kube"
	"github.com/kubectl-sts/kubectl-sts/pkg/progress"
	"github.com/kubectl-sts/kubectl-sts/pkg/rollout"
	"github.com/kubectl-sts/kubectl-sts/test/e2e/e2eutil"
	"github.com/kubectl-sts/kubectl-sts/test/testbed"
)

var cluster *testbed.Cluster

func TestMain(m *testing.M) {
	os.Exit(testbed.Main(m, testbed.Options{Name: "e2e-rollout"}, &cluster))
}

// generous bounds every wait of a test; a passing run stays far below.
const generous = 3 * time.Minute

const (
	imageV1     = "registry.example/app:v1"
	imageV2     = "registry.example/app:v2"
	imageBroken = "registry.example/app:broken"
)

var poll = e2eutil.Poll{Timeout: generous}

func newStatefulSet(ns, name string, replicas int32) *appsv1.StatefulSet {
	return e2eutil.NewStatefulSet(ns, name, replicas, imageV1)
}

// run executes `kubectl sts args...` in-process in namespace ns.
func run(t *testing.T, ns string, args ...string) e2eutil.Result {
	t.Helper()
	return e2eutil.Run(t, e2eutil.Client(cluster, ns), generous, args...)
}

// create creates the StatefulSet and waits until all its pods are Ready.
func create(t *testing.T, sts *appsv1.StatefulSet) *appsv1.StatefulSet {
	t.Helper()
	_, err := cluster.Client.AppsV1().StatefulSets(sts.Namespace).Create(context.Background(), sts, metav1.CreateOptions{})
	require.NoError(t, err)
	return poll.WaitSettled(t, cluster.Client, sts.Namespace, sts.Name)
}

func ready(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func record(t *testing.T, ns, name string) (*journal.Record, rollout.State) {
	t.Helper()
	rec, err := journal.New(cluster.Client, ns, name, "reader").Load(context.Background())
	require.NoError(t, err)
	require.NotNil(t, rec, "a rollout record exists")
	var st rollout.State
	require.NoError(t, rec.DecodeState(&st))
	return rec, st
}

func eventReasons(t *testing.T, ns, name string) []string {
	t.Helper()
	list, err := cluster.Client.CoreV1().Events(ns).List(context.Background(), metav1.ListOptions{
		FieldSelector: "involvedObject.kind=StatefulSet,involvedObject.name=" + name})
	require.NoError(t, err)
	var out []string
	for _, e := range list.Items {
		if e.Source.Component == kube.EventSource {
			out = append(out, e.Reason)
		}
	}
	return out
}

func count(list []string, v string) int {
	n := 0
	for _, x := range list {
		if x == v {
			n++
		}
	}
	return n
}

// podCreations watches the pods of a StatefulSet and records, in order,
// every pod created with the given revision label value (filled in later).
type podCreations struct {
	mu    sync.Mutex
	added []string // "name revision"
}

func watchCreations(t *testing.T, ns, name string) *podCreations {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	w, err := cluster.Client.CoreV1().Pods(ns).Watch(ctx, metav1.ListOptions{LabelSelector: "app=" + name})
	require.NoError(t, err)
	pc := &podCreations{}
	existing := e2eutil.Pods(t, cluster.Client, ns, "app="+name)
	go func() {
		defer w.Stop()
		for ev := range w.ResultChan() {
			p, ok := ev.Object.(*corev1.Pod)
			if !ok || ev.Type != watch.Added {
				continue
			}
			if old, seen := existing[p.Name]; seen && old.UID == p.UID {
				continue
			}
			pc.mu.Lock()
			pc.added = append(pc.added, p.Name+" "+p.Labels[appsv1.StatefulSetRevisionLabel])
			pc.mu.Unlock()
		}
	}()
	return pc
}

func (pc *podCreations) list() []string {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	return append([]string(nil), pc.added...)
}

// applyPending applies the image with the partition holding every pod,
// the way a GitOps tool would, and waits for the controller to see it.
func applyPending(t *testing.T, ns, name, image string, partition int32) *appsv1.StatefulSet {
	t.Helper()
	patch := fmt.Sprintf(`{"spec":{"template":{"spec":{"containers":[{"name":"app","image":%q}]}},"updateStrategy":{"type":"RollingUpdate","rollingUpdate":{"partition":%d}}}}`, image, partition)
	s, err := cluster.Client.AppsV1().StatefulSets(ns).Patch(context.Background(), name, types.StrategicMergePatchType, []byte(patch), metav1.PatchOptions{})
	require.NoError(t, err)
	var out *appsv1.StatefulSet
	poll.Until(t, "the new revision observed", func(ctx context.Context) (bool, error) {
		cur, err := cluster.Client.AppsV1().StatefulSets(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		out = cur
		return cur.Status.ObservedGeneration >= s.Generation && cur.Status.UpdateRevision != cur.Status.CurrentRevision, nil
	})
	return out
}

func TestStagedRolloutMovesPodsInPlannedOrder(t *testing.T) {
	ns := cluster.NewNamespace(t)
	before := create(t, newStatefulSet(ns, "db", 5))
	pending := applyPending(t, ns, "db", imageV2, 5)
	from, to := before.Status.CurrentRevision, pending.Status.UpdateRevision
	require.NotEqual(t, from, to)
	created := watchCreations(t, ns, "db")

	res := run(t, ns, "rollout", "db", "--staged", "--steps", "1,50%,100%", "--yes", "-o", "json")
	require.Equal(t, cmdutil.ExitOK, res.Code, res.ErrOut)

	// Pods changed revision from the highest ordinal down, one step at a
	// time: 4 | 3 2 | 1 0, and each was created once.
	assert.Equal(t, []string{"db-4 " + to, "db-3 " + to, "db-2 " + to, "db-1 " + to, "db-0 " + to}, created.list())

	var events []progress.Event
	for _, line := range strings.Split(strings.TrimSpace(res.Out), "\n") {
		var e progress.Event
		require.NoError(t, json.Unmarshal([]byte(line), &e), line)
		events = append(events, e)
	}
	var stepPods [][]string
	var totals []int
	for _, e := range events {
		if e.Kind == "step-started" {
			stepPods = append(stepPods, []string{e.Message})
			totals = append(totals, e.Total)
		}
	}
	require.Len(t, stepPods, 3)
	assert.Equal(t, []int{1, 2, 2}, totals, "each step-started says how many pods the step moves")
	assert.Contains(t, stepPods[0][0], "partition 4: updating db-4 ")
	assert.Contains(t, stepPods[1][0], "partition 2: updating db-3, db-2 ")
	assert.Contains(t, stepPods[2][0], "partition 0: updating db-1, db-0 ")
	assert.Equal(t, "done", events[len(events)-1].Kind)

	sts := e2eutil.StatefulSet(t, cluster, ns, "db")
	assert.Equal(t, int32(0), *sts.Spec.UpdateStrategy.RollingUpdate.Partition)
	assert.Equal(t, to, sts.Status.CurrentRevision)
	for n, p := range e2eutil.Pods(t, cluster.Client, ns, "app=db") {
		assert.Equal(t, to, p.Labels[appsv1.StatefulSetRevisionLabel], n)
		assert.True(t, ready(p), n)
		assert.Equal(t, imageV2, p.Spec.Containers[0].Image, n)
	}
	rec, _ := record(t, ns, "db")
	assert.Equal(t, journal.Succeeded, rec.Phase)
	reasons := eventReasons(t, ns, "db")
	assert.Equal(t, 3, count(reasons, rollout.ReasonStepPassed), "kubectl describe shows each step: %v", reasons)
	assert.Contains(t, reasons, rollout.ReasonSucceeded)

	// Every write named the plugin as its field manager.
	assert.Contains(t, e2eutil.FieldsOf(sts, kube.FieldManager), `"f:partition"`, "the partition is owned by kubectl-sts")
	assert.Contains(t, e2eutil.FieldsOf(e2eutil.JournalConfigMap(t, cluster, ns, "db"), kube.FieldManager), `"f:data"`)
	assertEventsManagedBy(t, ns, kube.FieldManager)
}

// assertEventsManagedBy checks that every Event the plugin recorded in ns
// was written under manager.
func assertEventsManagedBy(t *testing.T, ns, manager string) {
	t.Helper()
	events, err := cluster.Client.CoreV1().Events(ns).List(context.Background(), metav1.ListOptions{})
	require.NoError(t, err)
	var n int
	for i := range events.Items {
		if e := &events.Items[i]; e.Source.Component == kube.EventSource {
			n++
			assert.NotEmpty(t, e2eutil.FieldsOf(e, manager), "event %s (%s) managed by %s", e.Name, e.Reason, manager)
		}
	}
	assert.NotZero(t, n)
}

func TestBrokenImageIsRolledBackAutomatically(t *testing.T) {
	ns := cluster.NewNamespace(t)
	before := create(t, newStatefulSet(ns, "db", 3))
	from := before.Status.CurrentRevision
	oldUIDs := e2eutil.PodUIDs(t, cluster.Client, ns, "app=db")

	res := run(t, ns, "rollout", "db", "--staged", "--image", "app="+imageBroken, "--step-timeout", "8s", "--yes")
	require.Equal(t, cmdutil.ExitRolledBack, res.Code, res.ErrOut)
	assert.Contains(t, res.ErrOut, "rolled back to revision "+from)
	assert.Contains(t, res.Out, "deleted pod db-2")

	sts := e2eutil.StatefulSet(t, cluster, ns, "db")
	assert.Equal(t, imageV1, sts.Spec.Template.Spec.Containers[0].Image, "the old template is back")
	assert.Equal(t, from, sts.Status.UpdateRevision)
	assert.Equal(t, from, sts.Status.CurrentRevision)
	assert.Equal(t, int32(0), *sts.Spec.UpdateStrategy.RollingUpdate.Partition)
	for n, p := range e2eutil.Pods(t, cluster.Client, ns, "app=db") {
		assert.Equal(t, from, p.Labels[appsv1.StatefulSetRevisionLabel], n)
		assert.True(t, ready(p), "%s Ready on the old revision", n)
		assert.Equal(t, imageV1, p.Spec.Containers[0].Image, n)
	}
	p := e2eutil.Pods(t, cluster.Client, ns, "app=db")
	assert.NotEqual(t, oldUIDs["db-2"], p["db-2"].UID, "the broken pod was replaced")
	assert.Equal(t, oldUIDs["db-0"], p["db-0"].UID, "pods the plan never reached were not touched")
	assert.Equal(t, oldUIDs["db-1"], p["db-1"].UID, "pods the plan never reached were not touched")

	rec, st := record(t, ns, "db")
	assert.Equal(t, journal.RolledBack, rec.Phase)
	require.NotNil(t, st.Rollback)
	assert.Equal(t, []string{"db-2"}, st.Rollback.Deleted)
	reasons := eventReasons(t, ns, "db")
	for _, want := range []string{rollout.ReasonGateFailed, rollout.ReasonRollback, rollout.ReasonPodDeleted, rollout.ReasonRolledBack} {
		assert.Contains(t, reasons, want)
	}
}

// cancelWriter is the command's output stream: it reads the JSON events
// and cancels the run after the n-th passed step.
type cancelWriter struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	steps  int
	n      int
	cancel func()
}

func (w *cancelWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	for _, line := range strings.Split(string(p), "\n") {
		var e progress.Event
		if json.Unmarshal([]byte(line), &e) == nil && e.Kind == "step-passed" {
			w.steps++
			if w.steps == w.n {
				w.cancel()
			}
		}
	}
	return len(p), nil
}

// interruptAfterStep runs the rollout and kills it (cancels its context,
// as Ctrl-C does) once step n has passed.
func interruptAfterStep(t *testing.T, ns string, n int, args ...string) {
	t.Helper()
	f := e2eutil.Fake(e2eutil.Client(cluster, ns))
	ctx, cancel := context.WithTimeout(context.Background(), generous)
	defer cancel()
	w := &cancelWriter{n: n, cancel: cancel}
	f.Options.Out = w
	code := f.Run(ctx, cmd.Run, append(args, "-o", "json")...)
	t.Logf("interrupted run → exit %d\n%s%s", code, w.buf.String(), f.ErrOut.String())
	require.Equal(t, cmdutil.ExitInterrupted, code)
	require.Equal(t, n, w.steps)
}

func TestInterruptedRolloutResumesFromNextStep(t *testing.T) {
	ns := cluster.NewNamespace(t)
	create(t, newStatefulSet(ns, "db", 4))
	pending := applyPending(t, ns, "db", imageV2, 4)
	to := pending.Status.UpdateRevision
	args := []string{"rollout", "db", "--staged", "--steps", "1,50%,100%", "--yes"}

	interruptAfterStep(t, ns, 1, args...)
	rec, st := record(t, ns, "db")
	assert.Equal(t, journal.Running, rec.Phase, "the record stays for the next run")
	assert.Empty(t, rec.Holder, "the lease was released")
	assert.Equal(t, 1, st.Current)
	stepOne := st.Steps[0].UIDs
	require.Contains(t, stepOne, "db-3")

	// Running the same command again resumes at step 2.
	res := run(t, ns, args...)
	require.Equal(t, cmdutil.ExitOK, res.Code, res.ErrOut)
	assert.Contains(t, res.Out, "resume the recorded rollout")
	assert.NotContains(t, res.Out, "step 1/3", "step 1 is not run again")
	assert.Contains(t, res.Out, "step 2/3")

	p := e2eutil.Pods(t, cluster.Client, ns, "app=db")
	assert.Equal(t, stepOne["db-3"], p["db-3"].UID, "the pod of step 1 was not recreated")
	for n, pod := range p {
		assert.Equal(t, to, pod.Labels[appsv1.StatefulSetRevisionLabel], n)
		assert.True(t, ready(pod), n)
	}
	rec, _ = record(t, ns, "db")
	assert.Equal(t, journal.Succeeded, rec.Phase)
	assert.Equal(t, int32(0), *e2eutil.StatefulSet(t, cluster, ns, "db").Spec.UpdateStrategy.RollingUpdate.Partition)
}

// setHolder rewrites the record as if another process held it.
func setHolder(t *testing.T, ns, name, holder string, heartbeat time.Time) {
	t.Helper()
	cms := cluster.Client.CoreV1().ConfigMaps(ns)
	cm, err := cms.Get(context.Background(), journal.ConfigMapName(name), metav1.GetOptions{})
	require.NoError(t, err)
	var rec map[string]any
	require.NoError(t, json.Unmarshal([]byte(cm.Data["record.json"]), &rec))
	rec["holder"], rec["heartbeat"] = holder, heartbeat.UTC().Format(time.RFC3339Nano)
	raw, err := json.Marshal(rec)
	require.NoError(t, err)
	cm.Data["record.json"] = string(raw)
	_, err = cms.Update(context.Background(), cm, metav1.UpdateOptions{})
	require.NoError(t, err)
}

func TestLeaseRefusesLiveHolderAndTakesOverStaleOne(t *testing.T) {
	ns := cluster.NewNamespace(t)
	create(t, newStatefulSet(ns, "db", 3))
	applyPending(t, ns, "db", imageV2, 3)
	args := []string{"rollout", "db", "--staged", "--yes"}
	interruptAfterStep(t, ns, 1, args...)

	setHolder(t, ns, "db", "other-host/4242", time.Now())
	res := run(t, ns, args...)
	assert.Equal(t, cmdutil.ExitFailed, res.Code)
	assert.Contains(t, res.ErrOut, "is held by other-host/4242 (last heartbeat")
	rec, st := record(t, ns, "db")
	assert.Equal(t, "other-host/4242", rec.Holder, "the refused run did not touch the record")
	assert.Equal(t, 1, st.Current)

	setHolder(t, ns, "db", "other-host/4242", time.Now().Add(-10*time.Minute))
	res = run(t, ns, "rollout", "resume", "db", "--yes")
	require.Equal(t, cmdutil.ExitOK, res.Code, res.ErrOut)
	rec, _ = record(t, ns, "db")
	assert.Equal(t, journal.Succeeded, rec.Phase)
	var resumed bool
	for _, h := range rec.History {
		resumed = resumed || strings.HasPrefix(h.Message, "resumed by ")
	}
	assert.True(t, resumed, "the history records the take-over")
}

func TestDryRunChangesNothing(t *testing.T) {
	ns := cluster.NewNamespace(t)
	create(t, newStatefulSet(ns, "db", 3))
	before := e2eutil.StatefulSet(t, cluster, ns, "db")
	uids := e2eutil.PodUIDs(t, cluster.Client, ns, "app=db")

	res := run(t, ns, "rollout", "db", "--staged", "--image", "app="+imageV2, "--steps", "1,100%", "--dry-run")
	require.Equal(t, cmdutil.ExitOK, res.Code, res.ErrOut)
	assert.Contains(t, res.Out, "dry run: nothing is changed")
	assert.Contains(t, res.Out, "db-2")

	// Nothing moves afterwards either.
	time.Sleep(time.Second)
	after := e2eutil.StatefulSet(t, cluster, ns, "db")
	assert.Equal(t, before.ResourceVersion, after.ResourceVersion)
	for n, p := range e2eutil.Pods(t, cluster.Client, ns, "app=db") {
		assert.Equal(t, uids[n], p.UID, n)
	}
	_, err := cluster.Client.CoreV1().ConfigMaps(ns).Get(context.Background(), journal.ConfigMapName("db"), metav1.GetOptions{})
	assert.Error(t, err, "no record was written")
}

func TestPauseResumeAndUndo(t *testing.T) {
	ns := cluster.NewNamespace(t)
	before := create(t, newStatefulSet(ns, "db", 3))
	from := before.Status.CurrentRevision

	res := run(t, ns, "rollout", "db", "--staged", "--image", "app="+imageV2, "--pause-after", "1", "--yes")
	require.Equal(t, cmdutil.ExitPaused, res.Code, res.ErrOut)
	assert.Contains(t, res.ErrOut, "kubectl sts rollout resume db")

	res = run(t, ns, "rollout", "status", "db")
	require.Equal(t, cmdutil.ExitOK, res.Code)
	assert.Contains(t, res.Out, "Paused")
	assert.Contains(t, res.Out, "paused:     after step 1")

	res = run(t, ns, "rollout", "resume", "db", "--yes")
	require.Equal(t, cmdutil.ExitOK, res.Code, res.ErrOut)
	to := e2eutil.StatefulSet(t, cluster, ns, "db").Status.CurrentRevision
	require.NotEqual(t, from, to)

	res = run(t, ns, "rollout", "undo", "db", "--yes")
	require.Equal(t, cmdutil.ExitRolledBack, res.Code, res.ErrOut)
	sts := poll.WaitSettled(t, cluster.Client, ns, "db")
	assert.Equal(t, from, sts.Status.CurrentRevision)
	assert.Equal(t, imageV1, sts.Spec.Template.Spec.Containers[0].Image)
	for n, p := range e2eutil.Pods(t, cluster.Client, ns, "app=db") {
		assert.Equal(t, from, p.Labels[appsv1.StatefulSetRevisionLabel], n)
	}
}

// The exec gate goes through the real pods/exec path (the test bed maps a
// pod's exec to a local command, with POD set to the pod's name).
func TestGateExecRunsInEachUpdatedPod(t *testing.T) {
	ns := cluster.NewNamespace(t)
	create(t, newStatefulSet(ns, "db", 3))
	dir := t.TempDir()
	for i := 0; i < 3; i++ {
		pod := fmt.Sprintf("db-%d", i)
		require.NoError(t, cluster.MapExec(context.Background(), testbed.ExecMapping{Namespace: ns, Pod: pod, Env: map[string]string{"POD": pod}, WorkDir: dir}))
	}
	poll.Until(t, "exec mappings in effect", func(ctx context.Context) (bool, error) {
		for i := 0; i < 3; i++ {
			out, err := cluster.Kubectl(ctx, "exec", "-n", ns, fmt.Sprintf("db-%d", i), "--", "sh", "-c", `echo "$POD"`)
			if err != nil || strings.TrimSpace(out) != fmt.Sprintf("db-%d", i) {
				return false, nil
			}
		}
		return true, nil
	})

	res := run(t, ns, "rollout", "db", "--staged", "--image", "app="+imageV2, "--steps", "1,100%", "--gate-exec", `echo "$POD" >> ran.txt`, "--yes")
	require.Equal(t, cmdutil.ExitOK, res.Code, res.ErrOut)
	ran, err := os.ReadFile(dir + "/ran.txt")
	require.NoError(t, err)
	assert.Equal(t, []string{"db-2", "db-1", "db-0"}, strings.Fields(string(ran)), "once in each pod, after the step that updated it")

	// A gate that fails in the canary rolls the rollout back.
	res = run(t, ns, "rollout", "db", "--staged", "--image", "app=registry.example/app:v3", "--gate-exec", `test "$POD" != db-2`, "--step-timeout", "6s", "--yes")
	require.Equal(t, cmdutil.ExitRolledBack, res.Code, res.ErrOut)
	assert.Contains(t, res.ErrOut, "exit code 1")
	assert.Equal(t, imageV2, e2eutil.StatefulSet(t, cluster, ns, "db").Spec.Template.Spec.Containers[0].Image)
}
