// Package crashes kills each workflow with SIGKILL right after each of its
// step boundaries, runs the same command again, and asserts the end state
// of a clean run: every pod Ready on the expected revision, every claim
// that should stay present with its UID and size, no pod replaced or
// deleted more often than the plan says, no claim of a live ordinal
// deleted, the record finished.
//
// The kill points come from a clean reference run of each workflow: every
// progress event that follows a change in the cluster or a write of the
// record, named by kind and count (pod-restarting:2), and the last event
// (the record may not be closed yet). The process kills
// itself right after printing that event (KUBECTL_STS_TEST_KILL_AFTER_EVENT),
// so each point is exact and replayable.
package crashes

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/utils/ptr"

	cmdutil "github.com/kubectl-sts/kubectl-sts/pkg/cmd/util"
	"github.com/kubectl-sts/kubectl-sts/pkg/journal"
	"github.com/kubectl-sts/kubectl-sts/pkg/progress"
	"github.com/kubectl-sts/kubectl-sts/test/e2e/e2eutil"
	"github.com/kubectl-sts/kubectl-sts/test/testbed"
)

var cluster *testbed.Cluster

func TestMain(m *testing.M) {
	os.Exit(testbed.Main(m, testbed.Options{Name: "e2e-crashes"}, &cluster))
}

// generous bounds every wait of a test; a passing run stays far below.
const generous = 4 * time.Minute

// slots bounds the kill points run at once, over all workflows: most of a
// case is waiting for the killed process's lease to lapse.
var slots = make(chan struct{}, 32)

var poll = e2eutil.Poll{Timeout: generous}

// workflow is one command under test.
type workflow struct {
	// setup creates the StatefulSet in ns and waits until it is settled.
	setup func(t *testing.T, ns string)
	args  []string
	// boundaries are the event kinds that follow a change in the cluster
	// or a write of the record: the kill points.
	boundaries []string
	// check asserts the end state after the re-run, given the pods and
	// claims before the first run and the pods' history.
	check func(t *testing.T, ns string, before state, h *history)
}

// state is the identity of every pod and claim of a namespace.
type state struct {
	pods   map[string]types.UID
	claims map[string]*corev1.PersistentVolumeClaim
}

func rolloutWorkflow() workflow {
	return workflow{
		setup: func(t *testing.T, ns string) {
			create(t, e2eutil.NewStatefulSet(ns, "db", 3, "registry.example/app:v1"))
		},
		// The steps are controller-paced: partition-ahead kills the run
		// right after the partition went one step ahead.
		args:       []string{"rollout", "db", "--staged", "--image", "app=registry.example/app:v2", "--engine", "none", "--yes"},
		boundaries: []string{"started", "template-applied", "revision", "step-started", "partition-ahead", "step-passed", "done"},
		check: func(t *testing.T, ns string, before state, h *history) {
			sts := settled(t, ns, "db", 3)
			pods := list(t, ns)
			for name, uid := range before.pods {
				p := pods.pods[name]
				require.NotNil(t, p, "pod %s", name)
				assert.Equal(t, sts.Status.UpdateRevision, p.Labels[appsv1.ControllerRevisionHashLabelKey], "pod %s on the new revision", name)
				assert.Equal(t, "registry.example/app:v2", p.Spec.Containers[0].Image, "pod %s", name)
				assert.Equal(t, []types.UID{uid, p.UID}, h.of(name), "pod %s replaced exactly once", name)
			}
		},
	}
}

func scaleDownWorkflow() workflow {
	return workflow{
		setup: func(t *testing.T, ns string) {
			create(t, e2eutil.NewStatefulSet(ns, "db", 4, "registry.example/app:v1", "data"))
		},
		args:       []string{"scale-down", "db", "--replicas", "2", "--pvc", "delete", "--engine", "none", "--yes"},
		boundaries: []string{"started", "scaled", "pod-gone", "pvc-deleted", "step-done", "succeeded"},
		check: func(t *testing.T, ns string, before state, h *history) {
			sts := settled(t, ns, "db", 2)
			assert.Equal(t, int32(2), *sts.Spec.Replicas)
			poll.Until(t, "the removed claims gone", func(context.Context) (bool, error) {
				return len(list(t, ns).claims) == 2, nil
			})
			after := list(t, ns)
			for _, name := range []string{"db-0", "db-1"} {
				require.Contains(t, after.pods, name)
				assert.Equal(t, before.pods[name], after.pods[name].UID, "pod %s untouched", name)
				assert.Equal(t, []types.UID{before.pods[name]}, h.of(name), "pod %s never replaced", name)
				c := "data-" + name
				require.Contains(t, after.claims, c, "the claim of live ordinal %s stays", name)
				assert.Equal(t, before.claims[c].UID, after.claims[c].UID, "pvc %s is the same claim", c)
			}
			for _, name := range []string{"db-2", "db-3"} {
				assert.Equal(t, []types.UID{before.pods[name]}, h.of(name), "pod %s never recreated", name)
				assert.Equal(t, 1, h.deletions(name), "pod %s deleted once", name)
			}
		},
	}
}

func expandPVCWorkflow() workflow {
	return workflow{
		setup: func(t *testing.T, ns string) {
			sts := e2eutil.NewStatefulSet(ns, "db", 2, "registry.example/app:v1", "data")
			sts.Spec.VolumeClaimTemplates[0].Spec.StorageClassName = ptr.To("testbed-offline")
			create(t, sts)
		},
		args: []string{"expand-pvc", "db", "--size", "2Gi", "--engine", "none", "--yes", "--online-resize-wait", "1s"},
		boundaries: []string{"expand-started", "pvc-patched", "pod-restarting", "pod-ready", "pvc-resized",
			"template-saved", "statefulset-deleted", "statefulset-created", "pods-adopted", "expand-done"},
		check: func(t *testing.T, ns string, before state, h *history) {
			sts := settled(t, ns, "db", 2)
			q := sts.Spec.VolumeClaimTemplates[0].Spec.Resources.Requests[corev1.ResourceStorage]
			assert.Equal(t, "2Gi", q.String(), "the template says the new size")
			after := list(t, ns)
			require.Len(t, after.claims, 2)
			for name, c := range after.claims {
				assert.Equal(t, before.claims[name].UID, c.UID, "pvc %s is the same claim", name)
				assert.Equal(t, "2Gi", c.Spec.Resources.Requests.Storage().String(), "pvc %s request", name)
				assert.Equal(t, "2Gi", c.Status.Capacity.Storage().String(), "pvc %s capacity", name)
			}
			for name, uid := range before.pods {
				p := after.pods[name]
				require.NotNil(t, p, "pod %s", name)
				assert.Equal(t, []types.UID{uid, p.UID}, h.of(name), "pod %s restarted exactly once", name)
				ref := metav1.GetControllerOf(p)
				assert.True(t, ref != nil && ref.UID == sts.UID, "pod %s owned by the recreated StatefulSet", name)
			}
		},
	}
}

// TestKilledAtEveryStep runs the three workflows side by side, whatever
// -parallel says: most of each case is waiting for a lease to lapse.
func TestKilledAtEveryStep(t *testing.T) {
	bin := e2eutil.BuildPlugin(t)
	workflows := map[string]workflow{"rollout": rolloutWorkflow(), "scale-down": scaleDownWorkflow(), "expand-pvc": expandPVCWorkflow()}
	var wg sync.WaitGroup
	for name, w := range workflows {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t.Run(name, func(t *testing.T) { runAllKills(t, bin, w) })
		}()
	}
	wg.Wait()
}

// runAllKills runs the workflow once cleanly to find its kill points,
// then, for each, kills a run there and runs the same command again.
func runAllKills(t *testing.T, bin string, w workflow) {
	events := reference(t, bin, w)
	// A kill point is the n-th event of a boundary kind: the "waiting"
	// events between them vary from run to run.
	var kills []string
	seen := map[string]int{}
	for _, ev := range events {
		seen[ev.Kind]++
		if slices.Contains(w.boundaries, ev.Kind) {
			kills = append(kills, fmt.Sprintf("%s:%d", ev.Kind, seen[ev.Kind]))
		}
	}
	require.NotEmpty(t, kills, "no kill point among %d events", len(events))
	t.Logf("%d kill points among %d events of a clean run: %v", len(kills), len(events), kills)

	var wg sync.WaitGroup
	for _, k := range kills {
		wg.Add(1)
		go func() {
			defer wg.Done()
			slots <- struct{}{}
			defer func() { <-slots }()
			t.Run("killed after "+k, func(t *testing.T) {
				killedAt(t, bin, w, k)
			})
		}()
	}
	wg.Wait()
}

// reference runs the workflow to the end and returns its progress events.
func reference(t *testing.T, bin string, w workflow) []progress.Event {
	ns := cluster.NewNamespace(t)
	w.setup(t, ns)
	before := list(t, ns)
	h := watchPods(t, ns)
	out, err := command(bin, ns, "", w.args).Output()
	require.NoError(t, err, "the clean run: %s", out)
	var events []progress.Event
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var ev progress.Event
		if json.Unmarshal(sc.Bytes(), &ev) == nil && ev.Operation != "" && ev.Kind != "" {
			events = append(events, ev)
		}
	}
	for i, ev := range events {
		t.Logf("event %d: step %d %s %s", i+1, ev.Step, ev.Kind, ev.Message)
	}
	w.check(t, ns, before.identity(), h)
	return events
}

// killedAt kills a run right after its event k (KIND:N), runs the same
// command again once the dead process's lease has lapsed, and checks the
// end state.
func killedAt(t *testing.T, bin string, w workflow, k string) {
	ns := cluster.NewNamespace(t)
	w.setup(t, ns)
	before := list(t, ns)
	h := watchPods(t, ns)

	c := command(bin, ns, k, w.args)
	var stderr bytes.Buffer
	c.Stderr = &stderr
	out, err := c.Output()
	var exit *exec.ExitError
	require.True(t, errors.As(err, &exit), "the run was not killed (err %v): %s%s", err, out, stderr.String())
	status, ok := exit.Sys().(syscall.WaitStatus)
	require.True(t, ok && status.Signaled() && status.Signal() == syscall.SIGKILL, "the run ended with %v, not SIGKILL: %s", err, stderr.String())

	rec, err := journal.New(cluster.Client, ns, "db", "reader").Load(context.Background())
	require.NoError(t, err)
	if rec != nil && rec.Holder != "" {
		// The killed process keeps its lease until it lapses.
		time.Sleep(time.Until(rec.Heartbeat.Add(journal.DefaultLeaseDuration + time.Second)))
	}
	r := e2eutil.Run(t, e2eutil.Client(cluster, ns), generous, w.args...)
	require.Equal(t, cmdutil.ExitOK, r.Code, "the same command again finishes the operation: %s", r.ErrOut)

	w.check(t, ns, before.identity(), h)
	rec, err = journal.New(cluster.Client, ns, "db", "reader").Load(context.Background())
	require.NoError(t, err)
	require.NotNil(t, rec)
	assert.Equal(t, journal.Succeeded, rec.Phase)
	assert.Empty(t, rec.Holder)
}

// command runs the built plugin in ns with -o json, killing itself after
// event k (KIND:N) when k is set.
func command(bin, ns, k string, args []string) *exec.Cmd {
	c := exec.Command(bin, append([]string{"--kubeconfig", cluster.Kubeconfig, "-n", ns}, append(args, "-o", "json")...)...)
	c.Env = append(os.Environ(), "KUBECONFIG="+cluster.Kubeconfig)
	if k != "" {
		c.Env = append(c.Env, cmdutil.KillAfterEventEnv+"="+k)
	}
	return c
}

func create(t *testing.T, sts *appsv1.StatefulSet) {
	t.Helper()
	_, err := cluster.Client.AppsV1().StatefulSets(sts.Namespace).Create(context.Background(), sts, metav1.CreateOptions{})
	require.NoError(t, err)
	settled(t, sts.Namespace, sts.Name, *sts.Spec.Replicas)
	// Pods turn Ready before the storage simulator reports every claim
	// Bound; the preflights rightly refuse unbound claims.
	want := int(*sts.Spec.Replicas) * len(sts.Spec.VolumeClaimTemplates)
	poll.Until(t, "every claim Bound", func(ctx context.Context) (bool, error) {
		list, err := cluster.Client.CoreV1().PersistentVolumeClaims(sts.Namespace).List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, err
		}
		bound := 0
		for _, c := range list.Items {
			if c.Status.Phase == corev1.ClaimBound {
				bound++
			}
		}
		return bound == want, nil
	})
}

// settled waits until the StatefulSet has n Ready pods, all on one revision.
func settled(t *testing.T, ns, name string, n int32) *appsv1.StatefulSet {
	t.Helper()
	var out *appsv1.StatefulSet
	poll.Until(t, "statefulset "+name+" settled", func(ctx context.Context) (bool, error) {
		s, err := cluster.Client.AppsV1().StatefulSets(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		out = s
		return s.Status.ObservedGeneration == s.Generation && s.Status.ReadyReplicas == n && s.Status.Replicas == n &&
			s.Status.UpdatedReplicas == n && s.Status.CurrentRevision == s.Status.UpdateRevision, nil
	})
	return out
}

type objects struct {
	pods   map[string]*corev1.Pod
	claims map[string]*corev1.PersistentVolumeClaim
}

func (o objects) identity() state {
	s := state{pods: map[string]types.UID{}, claims: o.claims}
	for n, p := range o.pods {
		s.pods[n] = p.UID
	}
	return s
}

// list returns the pods and claims of ns that are not being deleted.
func list(t *testing.T, ns string) objects {
	t.Helper()
	ctx := context.Background()
	o := objects{pods: map[string]*corev1.Pod{}, claims: map[string]*corev1.PersistentVolumeClaim{}}
	pods, err := cluster.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
	require.NoError(t, err)
	for i := range pods.Items {
		if p := &pods.Items[i]; p.DeletionTimestamp == nil {
			o.pods[p.Name] = p
		}
	}
	pvcs, err := cluster.Client.CoreV1().PersistentVolumeClaims(ns).List(ctx, metav1.ListOptions{})
	require.NoError(t, err)
	for i := range pvcs.Items {
		if c := &pvcs.Items[i]; c.DeletionTimestamp == nil {
			o.claims[c.Name] = c
		}
	}
	return o
}

// history keeps, per pod name, every UID it had and how many pods of that
// name were deleted.
type history struct {
	mu      sync.Mutex
	uids    map[string][]types.UID
	deleted map[types.UID]bool
}

func watchPods(t *testing.T, ns string) *history {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	w, err := cluster.Client.CoreV1().Pods(ns).Watch(ctx, metav1.ListOptions{})
	require.NoError(t, err)
	h := &history{uids: map[string][]types.UID{}, deleted: map[types.UID]bool{}}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ev := range w.ResultChan() {
			p, ok := ev.Object.(*corev1.Pod)
			if !ok {
				continue
			}
			h.mu.Lock()
			if seen := h.uids[p.Name]; len(seen) == 0 || seen[len(seen)-1] != p.UID {
				h.uids[p.Name] = append(seen, p.UID)
			}
			if ev.Type == watch.Deleted {
				h.deleted[p.UID] = true
			}
			h.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		cancel()
		w.Stop()
		<-done
	})
	return h
}

func (h *history) of(name string) []types.UID {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]types.UID(nil), h.uids[name]...)
}

// deletions counts the pods of that name that were deleted.
func (h *history) deletions(name string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, uid := range h.uids[name] {
		if h.deleted[uid] {
			n++
		}
	}
	return n
}
