package wait

import (
	"context"
	"fmt"
	"sync"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
)

// Warnings follows the Warning events of one object and keeps the first
// one with a given reason recorded after the watch started. Events that
// already existed are history and count only when they repeat.
type Warnings struct {
	reasons map[string]bool

	mu    sync.Mutex
	first *corev1.Event
	seen  map[string]int32
}

// WatchWarnings starts following the Warning events of the object with
// the given uid in namespace (one watch, selected by involvedObject.uid
// and type) until ctx ends, and returns once the existing events are
// known. It fails when the events cannot be listed (e.g. forbidden).
func WatchWarnings(ctx context.Context, client kubernetes.Interface, namespace string, uid types.UID, reasons ...string) (*Warnings, error) {
	w := &Warnings{reasons: map[string]bool{}, seen: map[string]int32{}}
	for _, r := range reasons {
		w.reasons[r] = true
	}
	api := client.CoreV1().Events(namespace)
	sel := fields.Set{"involvedObject.uid": string(uid), "type": corev1.EventTypeWarning}.AsSelector().String()
	// One probe first: events are an aid, and a watch that cannot start
	// must not hold the caller up while the reflector retries.
	if _, err := api.List(ctx, metav1.ListOptions{FieldSelector: sel, Limit: 1}); err != nil {
		return nil, err
	}
	err := startInformer(ctx, ctx, &sync.WaitGroup{}, informerSpec{
		what:    fmt.Sprintf("events of %s in namespace %s", uid, namespace),
		objType: &corev1.Event{},
		client:  client,
		lw:      filtered(api, func(o *metav1.ListOptions) { o.FieldSelector = sel }),
		onAdd: func(obj any, initial bool) {
			if ev, ok := obj.(*corev1.Event); ok && ev.InvolvedObject.UID == uid {
				w.observe(ev, initial)
			}
		},
		onUpsert: func(obj any) {
			if ev, ok := obj.(*corev1.Event); ok && ev.InvolvedObject.UID == uid {
				w.observe(ev, false)
			}
		},
		onDelete: func(any) {},
	})
	if err != nil {
		return nil, err
	}
	return w, nil
}

// First returns the first matching warning seen so far, or nil (also on a
// nil Warnings).
func (w *Warnings) First() *corev1.Event {
	if w == nil {
		return nil
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.first
}

func (w *Warnings) observe(ev *corev1.Event, initial bool) {
	if ev.Type != corev1.EventTypeWarning {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	prev, known := w.seen[ev.Name]
	w.seen[ev.Name] = ev.Count
	if initial || (known && ev.Count <= prev) || !w.reasons[ev.Reason] || w.first != nil {
		return
	}
	w.first = ev
}
