package scaledown

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/kubectl-sts/kubectl-sts/pkg/kube/kubefake"
	"github.com/kubectl-sts/kubectl-sts/pkg/progress"
	"github.com/kubectl-sts/kubectl-sts/pkg/status/statustest"
	"github.com/kubectl-sts/kubectl-sts/plugins"
)

const ns = "prod"

// safety bounds tests that are expected to finish; it never elapses in a
// passing run.
const safety = 20 * time.Second

var testNow = time.Date(2026, 1, 2, 15, 4, 5, 0, time.UTC)

// fixture returns a healthy StatefulSet "db" with n pods and, per ordinal,
// claims of the templates "data" and "wal".
func fixture(n int) *statustest.Fixture {
	f := statustest.New(ns, "db", n, testNow)
	wal := f.StatefulSet.Spec.VolumeClaimTemplates[0].DeepCopy()
	wal.Name = "wal"
	f.StatefulSet.Spec.VolumeClaimTemplates = append(f.StatefulSet.Spec.VolumeClaimTemplates, *wal)
	for i := range n {
		f.PVCs = append(f.PVCs, claim("wal", "db", i, map[string]string{"app": "db"}))
	}
	return f
}

func claim(template, sts string, ordinal int, labels map[string]string) *corev1.PersistentVolumeClaim {
	name := fmt.Sprintf("%s-%s-%d", template, sts, ordinal)
	return &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, UID: types.UID("uid-" + name), Labels: labels},
		Spec: corev1.PersistentVolumeClaimSpec{
			Resources: corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}},
		},
		Status: corev1.PersistentVolumeClaimStatus{
			Phase:    corev1.ClaimBound,
			Capacity: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")},
		},
	}
}

func objects(f *statustest.Fixture, extra ...runtime.Object) []runtime.Object {
	return append(f.Objects(), extra...)
}

// fakeEngine records the order of the removal steps and checks, at each
// post-removal step, that the pod is really gone.
type fakeEngine struct {
	kube kubernetes.Interface

	mu         sync.Mutex
	calls      []string
	members    []plugins.Member
	membersErr error
	beforeErr  map[int]error
	afterErr   map[int]error
	slots      map[int][]string
	dryRuns    int
	// left names what AfterRemove leaves in place of an ordinal.
	left map[int]string
}

func (e *fakeEngine) Name() string              { return "fake" }
func (e *fakeEngine) Matches(image string) bool { return strings.Contains(image, "fakedb") }

func (e *fakeEngine) Members(context.Context, plugins.Target) ([]plugins.Member, error) {
	return e.members, e.membersErr
}

// Healthy fails when any member it is given could not be read, as the
// real engines do.
func (e *fakeEngine) Healthy(members []plugins.Member, _ plugins.HealthOptions) (bool, string) {
	for _, m := range members {
		if m.Error != "" {
			return false, "no answer from " + m.Pod
		}
	}
	// As every real engine: exactly one primary.
	if r := plugins.PrimaryReason(members); r != "" {
		return false, r
	}
	return true, ""
}

func (e *fakeEngine) BeforeRemove(ctx context.Context, t plugins.Target, ordinal int, opts plugins.RemoveOptions) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if opts.DryRun {
		e.dryRuns++
		opts.Emit(plugins.RemoveEvent{Ordinal: ordinal, Action: plugins.ActionChecked, Message: fmt.Sprintf("member %d is not the primary", ordinal)})
		return nil
	}
	e.calls = append(e.calls, fmt.Sprintf("before:%d", ordinal))
	return e.beforeErr[ordinal]
}

func (e *fakeEngine) AfterRemove(ctx context.Context, t plugins.Target, ordinal int, opts plugins.RemoveOptions) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if opts.DryRun {
		e.dryRuns++
		opts.Emit(plugins.RemoveEvent{Ordinal: ordinal, Action: plugins.ActionChanged, Pod: "db-0", Object: "slot " + strings.Join(opts.SlotNames, ","), Message: "drop slot"})
		return nil
	}
	gone := "pod-exists"
	name := fmt.Sprintf("%s-%d", t.StatefulSet.Name, ordinal)
	if _, err := e.kube.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{}); err != nil {
		gone = "pod-gone"
	}
	for _, p := range t.Pods {
		if p.Name == name {
			gone += ",in-target"
		}
	}
	e.calls = append(e.calls, fmt.Sprintf("after:%d:%s", ordinal, gone))
	if obj := e.left[ordinal]; obj != "" {
		opts.Emit(plugins.RemoveEvent{Ordinal: ordinal, Action: plugins.ActionWarning, Pod: "db-0", Object: obj, Left: true, Message: obj + " is left"})
	}
	if e.slots == nil {
		e.slots = map[int][]string{}
	}
	e.slots[ordinal] = opts.SlotNames
	if err := e.afterErr[ordinal]; err != nil {
		return err
	}
	opts.Emit(plugins.RemoveEvent{Ordinal: ordinal, Action: plugins.ActionChanged, Pod: "db-0", Object: "slot x", Message: "dropped slot"})
	return nil
}

func (e *fakeEngine) Calls() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]string(nil), e.calls...)
}

// primaryAt returns members where ordinal is the primary of n.
func primaryAt(ordinal, n int) []plugins.Member {
	var ms []plugins.Member
	for i := range n {
		role := plugins.RoleReplica
		if i == ordinal {
			role = plugins.RolePrimary
		}
		ms = append(ms, plugins.Member{Pod: fmt.Sprintf("db-%d", i), Ordinal: i, Role: role})
	}
	return ms
}

// eventLog records Kubernetes Events.
type eventLog struct {
	mu      sync.Mutex
	reasons []string
	fail    bool
}

func (l *eventLog) Event(_ context.Context, _ *corev1.ObjectReference, _, reason, _ string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.fail {
		return fmt.Errorf("events are forbidden")
	}
	l.reasons = append(l.reasons, reason)
	return nil
}

func (l *eventLog) Reasons() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.reasons...)
}

// env is a fake cluster with the fake StatefulSet controller, which
// removes pods above the replica range as the real one does.
type env struct {
	t       *testing.T
	client  *fake.Clientset
	engine  *fakeEngine
	events  *eventLog
	rec     *progress.Recorder
	deleted chan string
	ctrl    *kubefake.Controller
}

func newEnv(t *testing.T, objs ...runtime.Object) *env {
	t.Helper()
	client := fake.NewClientset(objs...)
	e := &env{t: t, client: client, engine: &fakeEngine{kube: client}, events: &eventLog{}, rec: &progress.Recorder{}, deleted: make(chan string, 100)}
	// The controller's reactors come first, so that a test's own reactors
	// run before them.
	e.ctrl = kubefake.NewController(client, ns)
	return e
}

func (e *env) deps() Deps {
	return Deps{
		Kube:   e.client,
		Exec:   nil,
		Events: e.events,
		Sink:   e.rec,
		Now:    func() time.Time { return testNow },
		Holder: "test/1",
		EngineFor: func(*appsv1.StatefulSet) (plugins.Engine, error) {
			return e.engine, nil
		},
	}
}

// startController runs the fake StatefulSet controller, which removes
// the pods above the replica range, highest first, each after delay, and
// reports each on e.deleted.
func (e *env) startController(ctx context.Context, name string, delay time.Duration) {
	e.t.Helper()
	e.ctrl.ScaleDownDelay = delay
	e.ctrl.OnPodRemoved = func(pod string) { e.deleted <- pod }
	e.ctrl.Start(ctx, name)
}

// waitObserved waits until the controller has observed the StatefulSet's
// latest spec.
func (e *env) waitObserved(ctx context.Context) {
	e.t.Helper()
	require.Eventually(e.t, func() bool {
		s, err := e.client.AppsV1().StatefulSets(ns).Get(ctx, "db", metav1.GetOptions{})
		return err == nil && s.Status.ObservedGeneration == s.Generation
	}, safety, 5*time.Millisecond, "the controller did not observe the latest spec of statefulset db")
}

func (e *env) pvcNames(ctx context.Context) []string {
	list, err := e.client.CoreV1().PersistentVolumeClaims(ns).List(ctx, metav1.ListOptions{})
	require.NoError(e.t, err)
	var out []string
	for _, c := range list.Items {
		out = append(out, c.Name)
	}
	return out
}

func (e *env) podNames(ctx context.Context) []string {
	list, err := e.client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
	require.NoError(e.t, err)
	var out []string
	for _, p := range list.Items {
		out = append(out, p.Name)
	}
	return out
}

func (e *env) replicas(ctx context.Context) int32 {
	s, err := e.client.AppsV1().StatefulSets(ns).Get(ctx, "db", metav1.GetOptions{})
	require.NoError(e.t, err)
	return Replicas(s)
}

// newFixtureEnv returns an env over f's objects and extra whose engine has
// its primary on pod 0.
func newFixtureEnv(t *testing.T, f *statustest.Fixture, extra ...runtime.Object) *env {
	t.Helper()
	e := newEnv(t, objects(f, extra...)...)
	e.engine.members = primaryAt(0, len(f.Pods))
	return e
}

// newRunEnv returns newFixtureEnv's env and a context for the run, bounded
// by safety and cancelled when the test ends.
func newRunEnv(t *testing.T, f *statustest.Fixture, extra ...runtime.Object) (context.Context, *env) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), safety)
	t.Cleanup(cancel)
	return ctx, newFixtureEnv(t, f, extra...)
}
