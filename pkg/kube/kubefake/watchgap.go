package kubefake

import (
	"strconv"
	"sync"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/kubernetes/scheme"
	k8stesting "k8s.io/client-go/testing"
)

// deliverLateDeletes makes the watches of cs see what was deleted between
// a List and the Watch that follows it, as the API server does from the
// List's resourceVersion. The fake tracker replays only the objects that
// still exist, so an informer whose List came just before a delete and
// whose Watch just after it never learns of the delete, and a wait for
// the object to be gone waits for ever.
//
// A delete first bumps the object's resourceVersion, so that it falls
// after every List that still saw the object; a watch from a List's
// resourceVersion then starts with the deletes that came after it.
func deliverLateDeletes(cs *fake.Clientset) {
	type gone struct {
		rv  int64
		ns  string
		obj runtime.Object
	}
	var mu sync.Mutex
	deleted := map[schema.GroupVersionResource][]gone{}
	tracker := cs.Tracker()

	// Deletes of pods and claims, the objects workflows wait to be gone.
	// The reactor only notes the delete and falls through to the
	// clientset's own handling (a test's reactor may refuse or change it);
	// a watch replays it only if the object is then gone.
	note := func(a k8stesting.Action) (bool, runtime.Object, error) {
		d, ok := a.(k8stesting.DeleteAction)
		if !ok || a.GetSubresource() != "" {
			return false, nil, nil
		}
		gvr, ns := a.GetResource(), a.GetNamespace()
		obj, err := tracker.Get(gvr, ns, d.GetName())
		if err != nil {
			return false, nil, nil
		}
		kinds, _, err := scheme.Scheme.ObjectKinds(obj)
		if err != nil || len(kinds) == 0 || tracker.Update(gvr, obj, ns) != nil {
			return false, nil, nil
		}
		list, err := tracker.List(gvr, kinds[0], ns)
		if err != nil {
			return false, nil, nil
		}
		rv, err := listResourceVersion(list)
		if err != nil {
			return false, nil, nil
		}
		mu.Lock()
		deleted[gvr] = append(deleted[gvr], gone{rv: rv, ns: ns, obj: obj})
		mu.Unlock()
		return false, nil, nil
	}
	cs.PrependReactor("delete", "pods", note)
	cs.PrependReactor("delete", "persistentvolumeclaims", note)

	cs.PrependWatchReactor("*", func(a k8stesting.Action) (bool, watch.Interface, error) {
		wa, ok := a.(k8stesting.WatchActionImpl)
		if !ok {
			return false, nil, nil
		}
		gvr, ns := a.GetResource(), a.GetNamespace()
		w, err := tracker.Watch(gvr, ns, wa.ListOptions)
		if err != nil || wa.ListOptions.ResourceVersion == "" {
			return true, w, err
		}
		from, err := parseResourceVersion(wa.ListOptions.ResourceVersion)
		if err != nil {
			return true, w, nil
		}
		var replay []watch.Event
		mu.Lock()
		for _, g := range deleted[gvr] {
			if g.rv > from && (ns == "" || g.ns == ns) && !stillThere(tracker, gvr, g.ns, g.obj) {
				replay = append(replay, watch.Event{Type: watch.Deleted, Object: g.obj.DeepCopyObject()})
			}
		}
		mu.Unlock()
		if len(replay) == 0 {
			return true, w, nil
		}
		return true, withReplay(replay, w), nil
	})
}

// replayWatch sends its replayed events, then the inner watch's.
type replayWatch struct {
	inner watch.Interface
	ch    chan watch.Event
	stop  chan struct{}
	once  sync.Once
}

func withReplay(events []watch.Event, inner watch.Interface) watch.Interface {
	r := &replayWatch{inner: inner, ch: make(chan watch.Event), stop: make(chan struct{})}
	go func() {
		defer close(r.ch)
		for _, e := range events {
			select {
			case r.ch <- e:
			case <-r.stop:
				return
			}
		}
		for {
			select {
			case e, ok := <-inner.ResultChan():
				if !ok {
					return
				}
				select {
				case r.ch <- e:
				case <-r.stop:
					return
				}
			case <-r.stop:
				return
			}
		}
	}()
	return r
}

func (r *replayWatch) Stop() {
	r.once.Do(func() {
		close(r.stop)
		r.inner.Stop()
	})
}

func (r *replayWatch) ResultChan() <-chan watch.Event { return r.ch }

func listResourceVersion(list runtime.Object) (int64, error) {
	acc, err := meta.ListAccessor(list)
	if err != nil {
		return 0, err
	}
	return parseResourceVersion(acc.GetResourceVersion())
}

func parseResourceVersion(s string) (int64, error) { return strconv.ParseInt(s, 10, 64) }

// stillThere tells whether obj itself (same UID) is still stored: its
// delete was refused, or has not happened.
func stillThere(tracker k8stesting.ObjectTracker, gvr schema.GroupVersionResource, ns string, obj runtime.Object) bool {
	acc, err := meta.Accessor(obj)
	if err != nil {
		return false
	}
	cur, err := tracker.Get(gvr, ns, acc.GetName())
	if err != nil {
		return false
	}
	now, err := meta.Accessor(cur)
	return err == nil && now.GetUID() == acc.GetUID()
}
