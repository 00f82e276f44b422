package kube

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
)

// EventSource is the component name on every Event the plugin records.
const EventSource = "kubectl-sts"

// EventRecorder records Kubernetes Events on an object so that
// `kubectl describe` shows what an operation did.
type EventRecorder interface {
	Event(ctx context.Context, obj *corev1.ObjectReference, eventType, reason, message string) error
}

// APIEventRecorder writes core/v1 Events synchronously: a CLI exits right
// after its last step, so a buffering broadcaster could lose the tail.
type APIEventRecorder struct {
	Client kubernetes.Interface
	Now    func() time.Time
}

// Event implements EventRecorder.
func (r APIEventRecorder) Event(ctx context.Context, obj *corev1.ObjectReference, eventType, reason, message string) error {
	now := time.Now
	if r.Now != nil {
		now = r.Now
	}
	t := metav1.NewTime(now())
	ev := &corev1.Event{
		ObjectMeta: metav1.ObjectMeta{
			GenerateName: obj.Name + ".",
			Namespace:    obj.Namespace,
		},
		InvolvedObject:      *obj,
		Reason:              reason,
		Message:             message,
		Type:                eventType,
		Source:              corev1.EventSource{Component: EventSource},
		ReportingController: EventSource,
		ReportingInstance:   EventSource,
		FirstTimestamp:      t,
		LastTimestamp:       t,
		Count:               1,
	}
	if _, err := r.Client.CoreV1().Events(obj.Namespace).Create(ctx, ev, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("recording event %s on %s/%s: %w", reason, obj.Kind, obj.Name, err)
	}
	return nil
}

// StatefulSetRef is the event reference of a StatefulSet.
func StatefulSetRef(namespace, name string, uid types.UID) *corev1.ObjectReference {
	return &corev1.ObjectReference{
		APIVersion: "apps/v1",
		Kind:       "StatefulSet",
		Namespace:  namespace,
		Name:       name,
		UID:        uid,
	}
}
