package wait

import (
	"context"
	"fmt"
	"maps"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

// TrackerOption configures a Tracker.
type TrackerOption func(*Tracker)

// WithPVCs makes the Tracker also watch the StatefulSet's
// PersistentVolumeClaims (one more watch, on the namespace's claims, as the
// claims of a StatefulSet are known by their names, see OwnsClaim) and fill
// Snapshot.PVCs with them.
func WithPVCs() TrackerOption {
	return func(t *Tracker) { t.trackPVCs = true }
}

// Tracker follows one StatefulSet, its pods and optionally its PVCs through a
// fixed number of watches and publishes an immutable Snapshot on every
// change. Create it with NewTracker, call Start once, then wait on it with
// WaitGates or a Waiter; any number of waits may run concurrently.
//
// A Tracker follows one StatefulSet object: if the StatefulSet is deleted
// (even if it is then recreated under the same name, as in an orphaning
// delete-and-recreate) Snapshot.StatefulSet becomes nil and waits with
// pending gates fail with a *StatefulSetDeletedError. Start a new Tracker to
// follow the recreated object.
type Tracker struct {
	client    kubernetes.Interface
	namespace string
	name      string
	trackPVCs bool

	mu       sync.Mutex
	state    trackerState
	uid      types.UID
	selector labels.Selector
	owner    *appsv1.StatefulSet // as first read: the ownership rules' reference
	sts      *appsv1.StatefulSet
	pods     map[string]*corev1.Pod
	pvcs     map[string]*corev1.PersistentVolumeClaim
	// podsShared and pvcsShared are set while a published snapshot holds
	// the map: the next change copies it first (copy on write), so
	// snapshots stay immutable and a burst of changes read by nobody in
	// between costs no copy.
	podsShared, pvcsShared bool
	// log names the pods changed by each sequence number after logFrom,
	// so that a wait re-evaluates only the gates of those pods.
	log     []podChange
	logFrom uint64
	seq     uint64
	// snap is the latest snapshot; stale is set when the state changed
	// since it was built.
	snap    Snapshot
	stale   bool
	changed chan struct{}
	lastErr error
	errAt   time.Time
	done    chan struct{}
}

type trackerState int

const (
	trackerNew trackerState = iota
	trackerStarting
	trackerRunning
	trackerFailed
)

// NewTracker returns a Tracker for the StatefulSet namespace/name. It does
// not contact the API server until Start.
func NewTracker(client kubernetes.Interface, namespace, name string, opts ...TrackerOption) *Tracker {
	t := &Tracker{
		client:    client,
		namespace: namespace,
		name:      name,
		pods:      map[string]*corev1.Pod{},
		changed:   make(chan struct{}),
		done:      make(chan struct{}),
	}
	for _, o := range opts {
		o(t)
	}
	return t
}

// Namespace returns the namespace of the tracked StatefulSet.
func (t *Tracker) Namespace() string { return t.namespace }

// Name returns the name of the tracked StatefulSet.
func (t *Tracker) Name() string { return t.name }

// UID returns the UID of the tracked StatefulSet; empty before Start.
func (t *Tracker) UID() types.UID {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.uid
}

// Start reads the StatefulSet, starts the watches and returns once they have
// delivered their initial state, so that the first snapshot is complete.
// The watches run until ctx is done. Start fails if the StatefulSet does not
// exist (the error satisfies apierrors.IsNotFound), if watching is not
// permitted, or if ctx ends first. A Tracker can be started only once.
func (t *Tracker) Start(ctx context.Context) error {
	t.mu.Lock()
	if t.state != trackerNew {
		t.mu.Unlock()
		return fmt.Errorf("tracker for statefulset %s/%s already started", t.namespace, t.name)
	}
	t.state = trackerStarting
	t.mu.Unlock()

	err := t.start(ctx)

	t.mu.Lock()
	defer t.mu.Unlock()
	if err != nil {
		t.state = trackerFailed
		return err
	}
	t.state = trackerRunning
	t.logFrom = t.seq + 1
	t.publishLocked("")
	return nil
}

func (t *Tracker) start(ctx context.Context) (err error) {
	// The watches run under runCtx; Done is closed once they have all
	// returned, which happens right away if starting fails.
	wg := &sync.WaitGroup{}
	runCtx, cancel := context.WithCancel(ctx)
	defer func() {
		if err != nil {
			cancel()
		}
		go func() {
			wg.Wait()
			cancel()
			close(t.done)
		}()
	}()

	// The StatefulSet's own watch comes first: its initial list gives the
	// selector of the pods' watch, with no request of its own.
	stsAPI := t.client.AppsV1().StatefulSets(t.namespace)
	byName := fields.OneTermEqualSelector("metadata.name", t.name).String()
	if err := startInformer(runCtx, runCtx, wg, informerSpec{
		what:     fmt.Sprintf("statefulset %s/%s", t.namespace, t.name),
		objType:  &appsv1.StatefulSet{},
		client:   t.client,
		lw:       filtered(stsAPI, func(o *metav1.ListOptions) { o.FieldSelector = byName }),
		onUpsert: t.upsertStatefulSet,
		onDelete: t.deleteStatefulSet,
		onError:  t.recordError,
	}); err != nil {
		return err
	}
	t.mu.Lock()
	sts := t.sts
	t.mu.Unlock()
	if sts == nil {
		return fmt.Errorf("getting statefulset %s/%s: %w", t.namespace, t.name,
			apierrors.NewNotFound(appsv1.Resource("statefulsets"), t.name))
	}
	sel, err := Selector(sts)
	if err != nil {
		return err
	}

	t.mu.Lock()
	t.uid = sts.UID
	t.selector = sel
	t.owner = sts
	if t.trackPVCs {
		t.pvcs = map[string]*corev1.PersistentVolumeClaim{}
	}
	t.mu.Unlock()

	podAPI := t.client.CoreV1().Pods(t.namespace)
	bySelector := sel.String()
	if err := startInformer(runCtx, runCtx, wg, informerSpec{
		what:     fmt.Sprintf("pods of statefulset %s/%s", t.namespace, t.name),
		objType:  &corev1.Pod{},
		client:   t.client,
		lw:       filtered(podAPI, func(o *metav1.ListOptions) { o.LabelSelector = bySelector }),
		onUpsert: t.upsertPod,
		onDelete: t.deletePod,
		onError:  t.recordError,
	}); err != nil {
		return err
	}

	if t.trackPVCs {
		pvcAPI := t.client.CoreV1().PersistentVolumeClaims(t.namespace)
		if err := startInformer(runCtx, runCtx, wg, informerSpec{
			what:     fmt.Sprintf("persistentvolumeclaims of statefulset %s/%s", t.namespace, t.name),
			objType:  &corev1.PersistentVolumeClaim{},
			client:   t.client,
			lw:       filtered(pvcAPI, func(*metav1.ListOptions) {}),
			onUpsert: t.upsertPVC,
			onDelete: t.deletePVC,
			onError:  t.recordError,
		}); err != nil {
			return err
		}
	}
	return nil
}

// Snapshot returns the latest snapshot. Before Start has returned
// successfully it is empty.
func (t *Tracker) Snapshot() Snapshot {
	s, _ := t.Latest()
	return s
}

// Latest returns the latest snapshot and a channel that is closed as soon as
// a newer snapshot is available. It lets callers that render state (for
// example a status command in watch mode) follow the tracker without
// polling.
func (t *Tracker) Latest() (Snapshot, <-chan struct{}) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.snapshotLocked(), t.changed
}

// Done returns a channel that is closed once the watches have stopped after
// the context passed to Start ended (or Start failed).
func (t *Tracker) Done() <-chan struct{} { return t.done }

func (t *Tracker) recordError(err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.lastErr, t.errAt = err, time.Now()
}

// maxPodLog is how many pod changes a Tracker remembers for incremental
// gate evaluation; a wait that falls further behind re-evaluates every gate.
const maxPodLog = 4096

// publishLocked records a change (of the pod named pod; "" for any other
// object) and wakes the waiters. The snapshot itself is built when it is
// read. Nothing is published before Start has succeeded, so that a waiter
// never sees a partially synced state.
func (t *Tracker) publishLocked(pod string) {
	if t.state != trackerRunning {
		return
	}
	t.seq++
	if pod != "" {
		if len(t.log) >= 2*maxPodLog {
			keep := t.log[len(t.log)-maxPodLog:]
			t.logFrom = keep[0].seq - 1
			t.log = append(make([]podChange, 0, 2*maxPodLog), keep...)
		}
		t.log = append(t.log, podChange{seq: t.seq, name: pod})
	}
	t.stale = true
	close(t.changed)
	t.changed = make(chan struct{})
}

// snapshotLocked returns the latest snapshot, building it if the state
// changed since it was last read.
func (t *Tracker) snapshotLocked() Snapshot {
	if !t.stale {
		return t.snap
	}
	s := Snapshot{Pods: t.pods, PVCs: t.pvcs, Seq: t.seq,
		log: t.log[:len(t.log):len(t.log)], logFrom: t.logFrom, logged: true}
	t.podsShared, t.pvcsShared = true, true
	if t.sts != nil {
		if t.sts.UID == t.uid {
			s.StatefulSet = t.sts
		} else {
			s.recreated = true
		}
	}
	t.snap, t.stale = s, false
	return s
}

// podsForWriteLocked returns the pod map, copied first if a snapshot
// holds it.
func (t *Tracker) podsForWriteLocked() map[string]*corev1.Pod {
	if t.podsShared {
		t.pods, t.podsShared = maps.Clone(t.pods), false
		if t.pods == nil {
			t.pods = map[string]*corev1.Pod{}
		}
	}
	return t.pods
}

func (t *Tracker) pvcsForWriteLocked() map[string]*corev1.PersistentVolumeClaim {
	if t.pvcsShared {
		t.pvcs, t.pvcsShared = maps.Clone(t.pvcs), false
		if t.pvcs == nil {
			t.pvcs = map[string]*corev1.PersistentVolumeClaim{}
		}
	}
	return t.pvcs
}

func (t *Tracker) upsertStatefulSet(obj any) {
	sts, ok := obj.(*appsv1.StatefulSet)
	if !ok || sts.Name != t.name || sts.Namespace != t.namespace {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.sts = sts
	t.publishLocked("")
}

func (t *Tracker) deleteStatefulSet(obj any) {
	ns, name, _ := objectKey(obj)
	if name != t.name || ns != t.namespace {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if sts, ok := unwrapTombstone(obj).(*appsv1.StatefulSet); ok && t.sts != nil && sts.UID != "" && sts.UID != t.sts.UID {
		// A delete of an older object; the current one is still there.
		return
	}
	t.sts = nil
	t.publishLocked("")
}

func (t *Tracker) ownsPod(pod *corev1.Pod) bool {
	_, ok := ownsPod(t.owner, t.selector, pod)
	return ok
}

func (t *Tracker) upsertPod(obj any) {
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.ownsPod(pod) {
		// It may have stopped matching (labels changed).
		if _, had := t.pods[pod.Name]; had && pod.Namespace == t.namespace {
			delete(t.podsForWriteLocked(), pod.Name)
			t.publishLocked(pod.Name)
		}
		return
	}
	t.podsForWriteLocked()[pod.Name] = pod
	t.publishLocked(pod.Name)
}

func (t *Tracker) deletePod(obj any) {
	ns, name, ok := objectKey(obj)
	if !ok || ns != t.namespace {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	cur, had := t.pods[name]
	if !had {
		return
	}
	if pod, ok := unwrapTombstone(obj).(*corev1.Pod); ok && pod.UID != "" && pod.UID != cur.UID {
		return
	}
	delete(t.podsForWriteLocked(), name)
	t.publishLocked(name)
}

func (t *Tracker) ownsPVC(pvc *corev1.PersistentVolumeClaim) bool {
	_, _, ok := OwnsClaim(t.owner, pvc)
	return ok
}

func (t *Tracker) upsertPVC(obj any) {
	pvc, ok := obj.(*corev1.PersistentVolumeClaim)
	if !ok {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.ownsPVC(pvc) {
		// It may have stopped being one (its controller changed).
		if _, had := t.pvcs[pvc.Name]; had && pvc.Namespace == t.namespace {
			delete(t.pvcsForWriteLocked(), pvc.Name)
			t.publishLocked("")
		}
		return
	}
	t.pvcsForWriteLocked()[pvc.Name] = pvc
	t.publishLocked("")
}

func (t *Tracker) deletePVC(obj any) {
	ns, name, ok := objectKey(obj)
	if !ok || ns != t.namespace {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, had := t.pvcs[name]; !had {
		return
	}
	delete(t.pvcsForWriteLocked(), name)
	t.publishLocked("")
}

// The tracker implements source for the Waiter.

func (t *Tracker) latest() (Snapshot, <-chan struct{}, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	switch t.state {
	case trackerRunning:
		return t.snapshotLocked(), t.changed, nil
	case trackerFailed:
		return Snapshot{}, nil, fmt.Errorf("tracker for statefulset %s/%s failed to start", t.namespace, t.name)
	default:
		return Snapshot{}, nil, fmt.Errorf("tracker for statefulset %s/%s not started", t.namespace, t.name)
	}
}

func (t *Tracker) stopped() <-chan struct{} { return t.done }

func (t *Tracker) vanished(s Snapshot, waitingFor func() string) error {
	if s.StatefulSet != nil {
		return nil
	}
	return &StatefulSetDeletedError{
		Namespace:  t.namespace,
		Name:       t.name,
		Recreated:  s.recreated,
		WaitingFor: waitingFor(),
	}
}

func (t *Tracker) watchError() (time.Time, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.errAt, t.lastErr
}

func (t *Tracker) describe() string {
	return fmt.Sprintf("statefulset %s/%s", t.namespace, t.name)
}

// StatefulSetDeletedError is returned by a wait whose gates were still
// pending when the tracked StatefulSet was deleted.
type StatefulSetDeletedError struct {
	Namespace, Name string
	// Recreated is set when a new StatefulSet with the same name already
	// exists.
	Recreated bool
	// WaitingFor describes what was being waited for.
	WaitingFor string
}

func (e *StatefulSetDeletedError) Error() string {
	what := "was deleted"
	if e.Recreated {
		what = "was deleted and recreated"
	}
	return fmt.Sprintf("statefulset %s/%s %s while waiting for %s", e.Namespace, e.Name, what, e.WaitingFor)
}

func objectKey(obj any) (namespace, name string, ok bool) {
	key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj)
	if err != nil {
		return "", "", false
	}
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return "", "", false
	}
	return ns, name, true
}

func unwrapTombstone(obj any) any {
	if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		return d.Obj
	}
	return obj
}
