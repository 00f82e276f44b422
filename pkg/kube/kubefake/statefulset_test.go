package kubefake

import (
	"context"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
)

func testSTS(replicas, partition int32) *appsv1.StatefulSet {
	labels := map[string]string{"app": "db"}
	return &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: "default", UID: "sts-db", Generation: 1},
		Spec: appsv1.StatefulSetSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "db", Image: "app:v1"}}},
			},
			PodManagementPolicy: appsv1.OrderedReadyPodManagement,
			UpdateStrategy: appsv1.StatefulSetUpdateStrategy{Type: appsv1.RollingUpdateStatefulSetStrategyType,
				RollingUpdate: &appsv1.RollingUpdateStatefulSetStrategy{Partition: &partition}},
		},
	}
}

// As the real controller (OrderedReady), the fake replaces no pod while a
// pod it already updated is not Ready: a partition below a broken pod
// releases nothing more. The controller-paced rollout relies on it.
func TestControllerHoldsTheNextPodWhileAnUpdatedPodIsNotReady(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cs := fake.NewClientset(testSTS(3, 0))
	c := NewController(cs, "default")
	c.Start(ctx, "db")
	pods := func() map[string]*corev1.Pod {
		list, err := cs.CoreV1().Pods("default").List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]*corev1.Pod{}
		for i := range list.Items {
			out[list.Items[i].Name] = &list.Items[i]
		}
		return out
	}
	until := func(what string, cond func() bool) {
		t.Helper()
		for !cond() {
			if ctx.Err() != nil {
				t.Fatalf("%s: not reached", what)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	until("3 pods Ready", func() bool {
		n := 0
		for _, p := range pods() {
			if podReady(p) {
				n++
			}
		}
		return n == 3
	})
	before := pods()["db-1"].UID

	// The new template never becomes Ready; the partition releases every
	// pod.
	patch := `{"spec":{"template":{"spec":{"containers":[{"name":"db","image":"app:broken"}]}}}}`
	if _, err := cs.AppsV1().StatefulSets("default").Patch(ctx, "db", types.StrategicMergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	until("db-2 recreated on the new template", func() bool {
		p := pods()["db-2"]
		return p != nil && p.Spec.Containers[0].Image == "app:broken"
	})
	time.Sleep(200 * time.Millisecond) // many syncs
	p := pods()["db-1"]
	if p == nil || p.UID != before || p.Spec.Containers[0].Image != "app:v1" {
		t.Fatalf("db-1 was replaced while db-2 was not Ready: %+v", p)
	}
	if len(c.PodChanges()) != 4 {
		t.Fatalf("pods created: %v, want the 3 first and db-2 once", c.PodChanges())
	}
}
