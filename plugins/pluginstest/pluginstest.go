// Package pluginstest holds what the engines' unit tests share: a target
// of running pods behind a fake executor, the client output recorded in
// testdata, and a fake client program that prints how an engine's shell
// script called it.
package pluginstest

import (
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubectl-sts/kubectl-sts/pkg/kube"
	"github.com/kubectl-sts/kubectl-sts/plugins"
)

// Target returns a target over StatefulSet name in namespace ns, reached
// through ex with a one-second timeout, whose pods are running, named
// pods, each with the one container c.
func Target(ex kube.Executor, name string, c corev1.Container, pods ...string) plugins.Target {
	t := plugins.Target{StatefulSet: &appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns"}}, Exec: ex, Timeout: time.Second}
	for _, p := range pods {
		t.Pods = append(t.Pods, &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: p, Namespace: "ns"},
			Spec:       corev1.PodSpec{Containers: []corev1.Container{c}},
			Status:     corev1.PodStatus{Phase: corev1.PodRunning},
		})
	}
	return t
}
