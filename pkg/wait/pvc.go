package wait

import (
	"context"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
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
	start := time.Now()
	// The watch lives exactly as long as the wait.
	watchCtx, cancel := context.WithCancel(ctx)
	src := &pvcSource{namespace: namespace, name: name, changed: make(chan struct{}), done: make(chan struct{})}
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
	api := client.CoreV1().PersistentVolumeClaims(namespace)
	byName := fields.OneTermEqualSelector("metadata.name", name).String()
	err := startInformer(watchCtx, syncCtx, wg, informerSpec{
		what:     fmt.Sprintf("persistentvolumeclaim %s/%s", namespace, name),
		objType:  &corev1.PersistentVolumeClaim{},
		client:   client,
		lw:       filtered(api, func(o *metav1.ListOptions) { o.FieldSelector = byName }),
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
				Object:     pvcObject(name),
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

// pvcSource is the source of a WaitPVC: one claim, watched by name.
type pvcSource struct {
	namespace, name string

	mu      sync.Mutex
	synced  bool
	pvc     *corev1.PersistentVolumeClaim
	seq     uint64
	snap    Snapshot
	changed chan struct{}
	lastErr error
	errAt   time.Time
	done    chan struct{}
}

func (p *pvcSource) upsert(obj any) {
	pvc, ok := obj.(*corev1.PersistentVolumeClaim)
	if !ok || pvc.Name != p.name || pvc.Namespace != p.namespace {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.pvc = pvc
	p.publishLocked()
}

func (p *pvcSource) delete(obj any) {
	ns, name, ok := objectKey(obj)
	if !ok || name != p.name || ns != p.namespace {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.pvc = nil
	p.publishLocked()
}

func (p *pvcSource) recordError(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.lastErr, p.errAt = err, time.Now()
}

func (p *pvcSource) publishLocked() {
	if !p.synced {
		return
	}
	p.seq++
	s := Snapshot{PVCs: map[string]*corev1.PersistentVolumeClaim{}, Seq: p.seq}
	if p.pvc != nil {
		s.PVCs[p.name] = p.pvc
	}
	p.snap = s
	close(p.changed)
	p.changed = make(chan struct{})
}

func (p *pvcSource) latest() (Snapshot, <-chan struct{}, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.snap, p.changed, nil
}

func (p *pvcSource) stopped() <-chan struct{} { return p.done }

func (p *pvcSource) vanished(Snapshot, func() string) error { return nil }

func (p *pvcSource) watchError() (time.Time, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.errAt, p.lastErr
}

func (p *pvcSource) describe() string {
	return fmt.Sprintf("persistentvolumeclaim %s/%s", p.namespace, p.name)
}
