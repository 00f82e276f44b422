package wait

import (
	"context"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
)

// WaitPVC watches the one PersistentVolumeClaim namespace/name (a watch
// selected by metadata.name) until all gates pass, with the given timeout
// (zero: none). See Waiter.WaitPVC.
func WaitPVC(ctx context.Context, client kubernetes.Interface, namespace, name string, timeout time.Duration, gates ...Gate) error {
	return Waiter{Timeout: timeout}.WaitPVC(ctx, client, namespace, name, gates...)
}

// WaitPVC watches the PersistentVolumeClaim namespace/name for the duration
// of the wait and evaluates gates (typically PVC gates for the same name)
// against snapshots whose PVCs map holds just that claim. It does not depend
// on a StatefulSet, so it also works while a StatefulSet is deleted and
// recreated. Results are as for Wait; a claim that does not exist is not an
// error by itself (the PVC gates treat it as NotYet).
func (w Waiter) WaitPVC(ctx context.Context, client kubernetes.Interface, namespace, name string, gates ...Gate) error {
	api := client.CoreV1().PersistentVolumeClaims(namespace)
	return w.WaitObject(ctx, ObjectWatch{
		Kind: "persistentvolumeclaim", Namespace: namespace, Name: name,
		Type: &corev1.PersistentVolumeClaim{}, Client: client,
		ListFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) { return api.List(ctx, o) },
		WatchFunc: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			return api.Watch(ctx, o)
		},
		snapshot: func(obj runtime.Object, s *Snapshot) {
			s.PVCs = map[string]*corev1.PersistentVolumeClaim{}
			if pvc, ok := obj.(*corev1.PersistentVolumeClaim); ok {
				s.PVCs[name] = pvc
			}
		},
	}, gates...)
}
