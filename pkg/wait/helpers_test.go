package wait

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

const (
	testNS = "default"
	// safety bounds a test that is expected to finish; it never elapses
	// in a passing run.
	safety = 5 * time.Second
)

func newSTS(name string, generation, observed int64) *appsv1.StatefulSet {
	replicas := int32(3)
	return &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{
			Name: name, Namespace: testNS, UID: types.UID(name + "-uid"), Generation: generation,
		},
		Spec: appsv1.StatefulSetSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}},
			VolumeClaimTemplates: []corev1.PersistentVolumeClaim{
				{ObjectMeta: metav1.ObjectMeta{Name: "data"}},
			},
		},
		Status: appsv1.StatefulSetStatus{ObservedGeneration: observed},
	}
}

type podOpt func(*corev1.Pod)

func notReady(p *corev1.Pod) {
	for i := range p.Status.Conditions {
		if p.Status.Conditions[i].Type == corev1.PodReady {
			p.Status.Conditions[i].Status = corev1.ConditionFalse
		}
	}
	for i := range p.Status.ContainerStatuses {
		p.Status.ContainerStatuses[i].Ready = false
	}
}

func withRestarts(n int32) podOpt {
	return func(p *corev1.Pod) { p.Status.ContainerStatuses[0].RestartCount = n }
}

func withReadySince(t time.Time) podOpt {
	return func(p *corev1.Pod) {
		for i := range p.Status.Conditions {
			if p.Status.Conditions[i].Type == corev1.PodReady {
				p.Status.Conditions[i].LastTransitionTime = metav1.NewTime(t)
			}
		}
	}
}

// newPod returns a Running, Ready pod of StatefulSet sts at revision rev.
func newPod(sts string, ordinal int, uid, rev string, opts ...podOpt) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name: PodName(sts, ordinal), Namespace: testNS, UID: types.UID(uid),
			Labels: map[string]string{"app": sts, appsv1.StatefulSetRevisionLabel: rev},
		},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "postgres"}}},
		Status: corev1.PodStatus{
			Phase: corev1.PodRunning,
			Conditions: []corev1.PodCondition{
				{Type: corev1.PodScheduled, Status: corev1.ConditionTrue},
				{Type: corev1.PodReady, Status: corev1.ConditionTrue,
					LastTransitionTime: metav1.NewTime(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))},
			},
			ContainerStatuses: []corev1.ContainerStatus{{
				Name: "postgres", Ready: true,
				State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}},
			}},
		},
	}
	for _, o := range opts {
		o(p)
	}
	return p
}

// cluster is a fake clientset that reports when watches are registered.
// The fake does not replay a deletion that happens between an informer's
// list and the start of its watch (a real API server does, from the list's
// resource version), so tests wait for the watches before deleting objects.
type cluster struct {
	*fake.Clientset

	mu      sync.Mutex
	watches map[string]int // resource -> watches registered
	changed chan struct{}
	// customPodWatch is set by tests that install their own pod watch
	// reactor, which bypasses the registration bookkeeping.
	customPodWatch bool
}

func newCluster(objs ...runtime.Object) *cluster {
	c := &cluster{Clientset: fake.NewClientset(objs...), watches: map[string]int{}, changed: make(chan struct{})}
	c.PrependWatchReactor("*", func(a k8stesting.Action) (bool, watch.Interface, error) {
		var opts metav1.ListOptions
		if wa, ok := a.(k8stesting.WatchActionImpl); ok {
			opts = wa.ListOptions
		}
		w, err := c.Tracker().Watch(a.GetResource(), a.GetNamespace(), opts)
		if err != nil {
			return true, nil, err
		}
		c.mu.Lock()
		c.watches[a.GetResource().Resource]++
		close(c.changed)
		c.changed = make(chan struct{})
		c.mu.Unlock()
		return true, w, nil
	})
	return c
}

// awaitWatches blocks until a watch for each resource has been registered.
func (c *cluster) awaitWatches(t *testing.T, resources ...string) {
	t.Helper()
	deadline := time.After(safety)
	for {
		c.mu.Lock()
		missing := ""
		for _, r := range resources {
			if c.watches[r] == 0 {
				missing = r
			}
		}
		changed := c.changed
		c.mu.Unlock()
		if missing == "" {
			return
		}
		select {
		case <-changed:
		case <-deadline:
			t.Fatalf("no watch for %s", missing)
		}
	}
}

// startTracker starts a tracker for default/db and waits for its watches to
// be registered; the watches stop when the test ends.
func startTracker(t *testing.T, c *cluster, opts ...TrackerOption) *Tracker {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	tr := NewTracker(c, testNS, "db", opts...)
	require.NoError(t, tr.Start(ctx))
	t.Cleanup(func() {
		cancel()
		<-tr.Done()
	})
	if c.customPodWatch {
		c.awaitWatches(t, "statefulsets")
	} else {
		c.awaitWatches(t, "statefulsets", "pods")
	}
	return tr
}

// recorder collects observer events and lets a test wait for a specific one.
type recorder struct {
	mu     sync.Mutex
	events []Event
	notify chan struct{}
}

func newRecorder() *recorder { return &recorder{notify: make(chan struct{}, 1)} }

func (r *recorder) observe(e Event) {
	r.mu.Lock()
	r.events = append(r.events, e)
	r.mu.Unlock()
	select {
	case r.notify <- struct{}{}:
	default:
	}
}

// await blocks until an event satisfying match has been observed.
func (r *recorder) await(t *testing.T, what string, match func(Event) bool) Event {
	t.Helper()
	deadline := time.After(safety)
	for {
		r.mu.Lock()
		for _, e := range r.events {
			if match(e) {
				r.mu.Unlock()
				return e
			}
		}
		r.mu.Unlock()
		select {
		case <-r.notify:
		case <-deadline:
			t.Fatalf("no event %s; got %v", what, r.all())
		}
	}
}

func (r *recorder) all() []Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Event(nil), r.events...)
}

// goWait runs fn in a goroutine and returns a channel with its result.
func goWait(fn func() error) <-chan error {
	ch := make(chan error, 1)
	go func() { ch <- fn() }()
	return ch
}

func result(t *testing.T, ch <-chan error) error {
	t.Helper()
	select {
	case err := <-ch:
		return err
	case <-time.After(safety):
		t.Fatal("wait did not return")
		return nil
	}
}

func requireRunning(t *testing.T, ch <-chan error) {
	t.Helper()
	select {
	case err := <-ch:
		t.Fatalf("wait returned early: %v", err)
	default:
	}
}
