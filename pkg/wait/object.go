package wait

import (
	"context"
	"fmt"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
)

// ObjectWatch describes one named object of any resource, typed or not,
// for Waiter.WaitObject.
type ObjectWatch struct {
	// Kind is the resource's name for messages, e.g. "volumesnapshot".
	Kind string
	// Namespace and Name name the object.
	Namespace, Name string
	// Type is an empty object of the resource's type, e.g.
	// &unstructured.Unstructured{}.
	Type runtime.Object
	// Client is the clientset (typed or dynamic) behind List and Watch; it
	// is consulted for streaming list support.
	Client any
	// ListFunc and WatchFunc are the resource's calls in Namespace; every
	// request is narrowed to metadata.name=Name.
	ListFunc  func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error)
	WatchFunc func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error)

	// snapshot fills a snapshot from the object (nil when it does not
	// exist); by default the object becomes Snapshot.Object.
	snapshot func(obj runtime.Object, s *Snapshot)
}

// object names the object in errors, as the gates on it do, e.g.
// "pvc data-db-0".
func (o ObjectWatch) object() string {
	if o.Kind == "persistentvolumeclaim" {
		return pvcObject(o.Name)
	}
	return o.Kind + " " + o.Name
}

// List calls ListFunc; with Watch it makes o a list-watch.
func (o ObjectWatch) List(ctx context.Context, lo metav1.ListOptions) (runtime.Object, error) {
	return o.ListFunc(ctx, lo)
}

// Watch calls WatchFunc.
func (o ObjectWatch) Watch(ctx context.Context, lo metav1.ListOptions) (watch.Interface, error) {
	return o.WatchFunc(ctx, lo)
}

func (o ObjectWatch) describe() string {
	return fmt.Sprintf("%s %s/%s", o.Kind, o.Namespace, o.Name)
}

// WaitObject watches the one object o names for the duration of the wait
// and evaluates gates against snapshots whose Object is that object (nil
// while it does not exist; see ObjectCondition). Results are as for Wait;
// an object that does not exist is not an error by itself.
func (w Waiter) WaitObject(ctx context.Context, o ObjectWatch, gates ...Gate) error {
	start := time.Now()
	// The watch lives exactly as long as the wait.
	watchCtx, cancel := context.WithCancel(ctx)
	src := &objectSource{spec: o, changed: make(chan struct{}), done: make(chan struct{})}
	wg := &sync.WaitGroup{}
	defer func() {
		cancel()
		wg.Wait()
	}()

	syncCtx := watchCtx
	if w.Timeout > 0 {
		var cancelSync context.CancelFunc
		syncCtx, cancelSync = context.WithDeadline(watchCtx, start.Add(w.Timeout))
		defer cancelSync()
	}
	byName := fields.OneTermEqualSelector("metadata.name", o.Name).String()
	err := startInformer(watchCtx, syncCtx, wg, informerSpec{
		what:     o.describe(),
		objType:  o.Type,
		client:   o.Client,
		lw:       filtered[runtime.Object](o, func(lo *metav1.ListOptions) { lo.FieldSelector = byName }),
		onUpsert: src.upsert,
		onDelete: src.delete,
		onError:  src.recordError,
	})
	go func() {
		<-watchCtx.Done()
		wg.Wait()
		close(src.done)
	}()
	if err != nil {
		if ctx.Err() == nil && syncCtx.Err() != nil {
			return &TimeoutError{
				Object:     o.object(),
				WaitingFor: joinNames(flatten(gates), " and "),
				LastState:  "watch did not sync",
				Timeout:    w.Timeout,
			}
		}
		return err
	}
	src.mu.Lock()
	src.synced = true
	src.publishLocked()
	src.mu.Unlock()
	return w.run(ctx, src, gates, start)
}

// ObjectCondition passes, fails or waits according to check, which
// receives the object of a WaitObject or nil if it does not exist. object
// names it (e.g. "volumesnapshot snap-1"), condition describes what is
// waited for (e.g. "to be readyToUse"). A non-nil error from check aborts
// the wait with that error wrapped.
func ObjectCondition(object, condition string, check func(obj runtime.Object) (Verdict, string, error)) Gate {
	return NewGate(object, condition, func(_ context.Context, s Snapshot) (Verdict, string, error) {
		return check(s.Object)
	})
}

// objectSource is the source of a WaitObject: one object, watched by name.
type objectSource struct {
	spec ObjectWatch

	mu      sync.Mutex
	synced  bool
	obj     runtime.Object
	seq     uint64
	snap    Snapshot
	changed chan struct{}
	lastErr error
	errAt   time.Time
	done    chan struct{}
}

func (p *objectSource) upsert(obj any) {
	o, ok := obj.(runtime.Object)
	if !ok {
		return
	}
	if ns, name, ok := objectKey(obj); !ok || name != p.spec.Name || ns != p.spec.Namespace {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.obj = o
	p.publishLocked()
}

func (p *objectSource) delete(obj any) {
	ns, name, ok := objectKey(obj)
	if !ok || name != p.spec.Name || ns != p.spec.Namespace {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.obj = nil
	p.publishLocked()
}

func (p *objectSource) recordError(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.lastErr, p.errAt = err, time.Now()
}

func (p *objectSource) publishLocked() {
	if !p.synced {
		return
	}
	p.seq++
	s := Snapshot{Seq: p.seq}
	if p.spec.snapshot != nil {
		p.spec.snapshot(p.obj, &s)
	} else {
		s.Object = p.obj
	}
	p.snap = s
	close(p.changed)
	p.changed = make(chan struct{})
}

func (p *objectSource) latest() (Snapshot, <-chan struct{}, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.snap, p.changed, nil
}

func (p *objectSource) stopped() <-chan struct{} { return p.done }

func (p *objectSource) vanished(Snapshot, func() string) error { return nil }

func (p *objectSource) watchError() (time.Time, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.errAt, p.lastErr
}

func (p *objectSource) describe() string { return p.spec.describe() }
