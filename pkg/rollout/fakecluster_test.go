package rollout

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/kubectl-sts/kubectl-sts/pkg/kube/kubefake"
)

const testNS = "default"

// fakeCluster is a fake clientset driven by the shared fake StatefulSet
// controller. Images tagged ":broken" never become Ready, as in the test
// bed.
type fakeCluster struct {
	t    *testing.T
	cs   *fake.Clientset
	ctrl *kubefake.Controller

	events eventLog
}

func newFakeCluster(t *testing.T, objs ...runtime.Object) *fakeCluster {
	t.Helper()
	cs := fake.NewClientset(objs...)
	return &fakeCluster{t: t, cs: cs, ctrl: kubefake.NewController(cs, testNS)}
}

// start runs the controller until the test ends.
func (c *fakeCluster) start(name string) {
	ctx, cancel := context.WithCancel(context.Background())
	c.t.Cleanup(cancel)
	c.ctrl.Start(ctx, name)
}

// setPaused stops and restarts the controller's work.
func (c *fakeCluster) setPaused(p bool) { c.ctrl.SetPaused(p) }

func (c *fakeCluster) podChanges() []string { return c.ctrl.PodChanges() }

// newSTS returns a StatefulSet with the partition holding nothing.
func newSTS(name string, replicas int32, image string) *appsv1.StatefulSet {
	labels := map[string]string{"app": name}
	return &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: testNS, UID: types.UID("sts-" + name), Generation: 1},
		Spec: appsv1.StatefulSetSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "db", Image: image}}},
			},
			PodManagementPolicy: appsv1.OrderedReadyPodManagement,
			UpdateStrategy: appsv1.StatefulSetUpdateStrategy{Type: appsv1.RollingUpdateStatefulSetStrategyType,
				RollingUpdate: &appsv1.RollingUpdateStatefulSetStrategy{Partition: new(int32)}},
		},
	}
}

// waitSettled waits until every pod of the StatefulSet is Ready at one
// revision and the status says so.
func (c *fakeCluster) waitSettled(name string) *appsv1.StatefulSet {
	c.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		sts, err := c.cs.AppsV1().StatefulSets(testNS).Get(context.Background(), name, metav1.GetOptions{})
		if err == nil && sts.Status.ObservedGeneration == sts.Generation && sts.Status.ReadyReplicas == Replicas(sts) &&
			sts.Status.UpdatedReplicas == Replicas(sts) && sts.Status.CurrentRevision == sts.Status.UpdateRevision && sts.Status.UpdateRevision != "" {
			return sts
		}
		time.Sleep(5 * time.Millisecond)
	}
	c.t.Fatalf("statefulset %s did not settle", name)
	return nil
}

func (c *fakeCluster) sts(name string) *appsv1.StatefulSet {
	c.t.Helper()
	sts, err := c.cs.AppsV1().StatefulSets(testNS).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		c.t.Fatal(err)
	}
	return sts
}

func (c *fakeCluster) pods(name string) map[string]*corev1.Pod {
	c.t.Helper()
	list, err := c.cs.CoreV1().Pods(testNS).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		c.t.Fatal(err)
	}
	out := map[string]*corev1.Pod{}
	for i := range list.Items {
		if strings.HasPrefix(list.Items[i].Name, name+"-") {
			out[list.Items[i].Name] = &list.Items[i]
		}
	}
	return out
}

// eventLog records Kubernetes Events in memory (the fake clientset does
// not implement generateName, which real Events use).
type eventLog struct {
	mu      sync.Mutex
	reasons []string
}

func (l *eventLog) Event(_ context.Context, _ *corev1.ObjectReference, _, reason, _ string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.reasons = append(l.reasons, reason)
	return nil
}

func (l *eventLog) list() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.reasons...)
}
