package expand

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
	clienttesting "k8s.io/client-go/testing"

	"github.com/kubectl-sts/kubectl-sts/pkg/kube/kubefake"
	"github.com/kubectl-sts/kubectl-sts/pkg/wait"
)

// Test fixtures: a StatefulSet "db" with claim template "data" in
// namespace "default", and a small simulated cluster that plays the
// StatefulSet controller, the resizer and the kubelet on a fake clientset.

const (
	testNS    = "default"
	testRev   = "db-rev1"
	classOff  = "offline"
	classOn   = "online"
	classFail = "failing"
	classNone = "fixed"
	// classEvent never finishes the controller side and records a
	// VolumeResizeFailed event instead.
	classEvent = "event-failing"
	// classLimited expands online up to limitedMax and is infeasible above.
	classLimited = "limited"
	limitedMax   = "1536Mi"
)

func ptr[T any](v T) *T { return &v }

func newSTS(replicas int32, class, size string) *appsv1.StatefulSet {
	labels := map[string]string{"app": "db"}
	return &appsv1.StatefulSet{
		TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "StatefulSet"},
		ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: testNS, UID: "sts-uid-0", Labels: map[string]string{"team": "data"}},
		Spec: appsv1.StatefulSetSpec{
			Replicas:    ptr(replicas),
			Selector:    &metav1.LabelSelector{MatchLabels: labels},
			ServiceName: "db",
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "db", Image: "registry.example/db:1"}}},
			},
			VolumeClaimTemplates: []corev1.PersistentVolumeClaim{{
				ObjectMeta: metav1.ObjectMeta{Name: "data"},
				Spec: corev1.PersistentVolumeClaimSpec{
					StorageClassName: ptr(class),
					AccessModes:      []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
					Resources:        corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse(size)}},
				},
			}},
		},
		Status: appsv1.StatefulSetStatus{
			Replicas: replicas, ReadyReplicas: replicas, AvailableReplicas: replicas, CurrentReplicas: replicas, UpdatedReplicas: replicas,
			CurrentRevision: testRev, UpdateRevision: testRev,
		},
	}
}

func newPod(sts *appsv1.StatefulSet, ordinal int, uid string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name: wait.PodName(sts.Name, ordinal), Namespace: testNS, UID: types.UID(uid),
			Labels:          map[string]string{"app": "db", appsv1.StatefulSetRevisionLabel: testRev},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "StatefulSet", Name: sts.Name, UID: sts.UID, Controller: ptr(true)}},
		},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "db"}}},
		Status: corev1.PodStatus{
			Phase:             corev1.PodRunning,
			Conditions:        []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}},
			ContainerStatuses: []corev1.ContainerStatus{{Name: "db", Ready: true, State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}}},
		},
	}
}

func newPVC(ordinal int, class, request, capacity string) *corev1.PersistentVolumeClaim {
	return &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: wait.PVCName("data", "db", ordinal), Namespace: testNS, UID: types.UID(fmt.Sprintf("pvc-uid-%d", ordinal)), Labels: map[string]string{"app": "db"}},
		Spec: corev1.PersistentVolumeClaimSpec{
			StorageClassName: ptr(class),
			AccessModes:      []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			Resources:        corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse(request)}},
			VolumeName:       fmt.Sprintf("pv-%d", ordinal),
		},
		Status: corev1.PersistentVolumeClaimStatus{
			Phase:    corev1.ClaimBound,
			Capacity: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse(capacity)},
		},
	}
}

func storageClass(name string, expandable bool) *storagev1.StorageClass {
	return &storagev1.StorageClass{ObjectMeta: metav1.ObjectMeta{Name: name}, Provisioner: "example.com/sim", AllowVolumeExpansion: ptr(expandable)}
}

// cluster returns a StatefulSet of n ordinals with claims of class at size
// and every StorageClass the simulator knows.
func cluster(n int32, class, size string) []runtime.Object {
	sts := newSTS(n, class, size)
	objs := []runtime.Object{sts,
		storageClass(classOff, true), storageClass(classOn, true), storageClass(classFail, true), storageClass(classNone, false), storageClass(classEvent, true), storageClass(classLimited, true)}
	for i := 0; i < int(n); i++ {
		objs = append(objs, newPod(sts, i, fmt.Sprintf("pod-%d-a", i)), newPVC(i, class, size, size))
	}
	return objs
}

// sim drives a fake clientset like a small cluster: the fake StatefulSet
// controller (recreates deleted pods, adopts orphans, keeps the status),
// a resizer and a kubelet per StorageClass mode: offline finishes the file
// system resize only for a pod started after the volume was expanded,
// online finishes it in place, failing ends ControllerResizeInfeasible.
type sim struct {
	t  *testing.T
	cs *fake.Clientset

	ctrl *kubefake.Controller

	mu        sync.Mutex
	stsSeq    int
	deletes   map[string]int
	evictions map[string]int
	patches   map[string]int
	// refuseEvictions makes the Eviction API answer 429 as it does when a
	// PodDisruptionBudget would be violated.
	refuseEvictions bool
	stsDelete       int
	pendingBy       map[string]types.UID

	// onPodDelete and onSTSDelete run inside the delete, before it is
	// applied; they may read objects through the tracker only.
	onPodDelete func(name string)
	onSTSDelete func()
}

func newSim(t *testing.T, objs ...runtime.Object) *sim {
	t.Helper()
	s := &sim{t: t, cs: fake.NewClientset(objs...), deletes: map[string]int{}, evictions: map[string]int{}, patches: map[string]int{}, pendingBy: map[string]types.UID{}}
	tracker := s.cs.Tracker()
	apply := clienttesting.ObjectReaction(tracker)
	s.cs.PrependReactor("patch", "persistentvolumeclaims", func(a clienttesting.Action) (bool, runtime.Object, error) {
		pa := a.(clienttesting.PatchActionImpl)
		if len(pa.PatchOptions.DryRun) > 0 {
			obj, err := tracker.Get(pa.GetResource(), pa.GetNamespace(), pa.GetName())
			return true, obj, err
		}
		s.mu.Lock()
		s.patches[pa.GetName()]++
		s.mu.Unlock()
		return apply(a)
	})
	deletePod := func(a clienttesting.Action) (bool, runtime.Object, error) {
		name := a.(clienttesting.DeleteActionImpl).GetName()
		s.mu.Lock()
		s.deletes[name]++
		hook := s.onPodDelete
		s.mu.Unlock()
		if hook != nil {
			hook(name)
		}
		return apply(a)
	}
	s.cs.PrependReactor("delete", "pods", deletePod)
	// An eviction the budget allows is a deletion with its preconditions.
	s.cs.PrependReactor("create", "pods", func(a clienttesting.Action) (bool, runtime.Object, error) {
		if a.GetSubresource() != "eviction" {
			return false, nil, nil
		}
		ev := a.(clienttesting.CreateAction).GetObject().(*policyv1.Eviction)
		s.mu.Lock()
		refuse := s.refuseEvictions
		if !refuse {
			s.evictions[ev.Name]++
		}
		s.mu.Unlock()
		if refuse {
			err := apierrors.NewTooManyRequests("Cannot evict pod as it would violate the pod's disruption budget.", 0)
			err.ErrStatus.Details.Causes = []metav1.StatusCause{{Type: policyv1.DisruptionBudgetCause, Message: "The disruption budget db-pdb needs 3 healthy pods and has 3 currently"}}
			return true, nil, err
		}
		opts := metav1.DeleteOptions{}
		if ev.DeleteOptions != nil {
			opts = *ev.DeleteOptions
		}
		// Not through Invokes: the fake clientset holds its lock while a
		// reactor runs.
		_, _, err := deletePod(clienttesting.NewDeleteActionWithOptions(corev1.SchemeGroupVersion.WithResource("pods"), a.GetNamespace(), ev.Name, opts))
		return true, nil, err
	})
	s.cs.PrependReactor("delete", "statefulsets", func(a clienttesting.Action) (bool, runtime.Object, error) {
		s.mu.Lock()
		s.stsDelete++
		hook := s.onSTSDelete
		s.mu.Unlock()
		if hook != nil {
			hook()
		}
		orphan(tracker, a.(clienttesting.DeleteActionImpl))
		return apply(a)
	})
	s.ctrl = kubefake.NewController(s.cs, testNS)
	s.cs.PrependReactor("create", "statefulsets", func(a clienttesting.Action) (bool, runtime.Object, error) {
		obj := a.(clienttesting.CreateActionImpl).GetObject().(*appsv1.StatefulSet)
		s.mu.Lock()
		s.stsSeq++
		obj.UID = types.UID(fmt.Sprintf("sts-uid-%d", s.stsSeq))
		s.mu.Unlock()
		return apply(a)
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				s.reconcile(ctx)
			}
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return s
}

func (s *sim) reconcile(ctx context.Context) {
	sts, err := s.cs.AppsV1().StatefulSets(testNS).Get(ctx, "db", metav1.GetOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return
	}
	if err == nil {
		s.ctrl.Reconcile(ctx, sts.Name)
	}
	pvcs, err := s.cs.CoreV1().PersistentVolumeClaims(testNS).List(ctx, metav1.ListOptions{})
	if err != nil {
		return
	}
	for i := range pvcs.Items {
		s.resize(ctx, &pvcs.Items[i])
	}
}

// resize plays the resizer and the kubelet for one claim.
func (s *sim) resize(ctx context.Context, pvc *corev1.PersistentVolumeClaim) {
	req := pvc.Spec.Resources.Requests[corev1.ResourceStorage]
	capacity := pvc.Status.Capacity[corev1.ResourceStorage]
	class := *pvc.Spec.StorageClassName
	status := pvc.Status.AllocatedResourceStatuses[corev1.ResourceStorage]
	podName := strings.TrimPrefix(pvc.Name, "data-")
	update := func() {
		_, _ = s.cs.CoreV1().PersistentVolumeClaims(testNS).UpdateStatus(ctx, pvc, metav1.UpdateOptions{})
	}
	switch {
	case status == corev1.PersistentVolumeClaimControllerResizeInfeasible:
		// A changed request is tried again.
		allocated := pvc.Status.AllocatedResources[corev1.ResourceStorage]
		if req.Cmp(allocated) != 0 {
			pvc.Status.AllocatedResourceStatuses = nil
			pvc.Status.Conditions = nil
			update()
		}
	case req.Cmp(capacity) <= 0:
	case status == "":
		pvc.Status.AllocatedResources = corev1.ResourceList{corev1.ResourceStorage: req}
		pvc.Status.AllocatedResourceStatuses = map[corev1.ResourceName]corev1.ClaimResourceStatus{corev1.ResourceStorage: corev1.PersistentVolumeClaimControllerResizeInProgress}
		pvc.Status.Conditions = []corev1.PersistentVolumeClaimCondition{{Type: corev1.PersistentVolumeClaimResizing, Status: corev1.ConditionTrue}}
		update()
	case status == corev1.PersistentVolumeClaimControllerResizeInProgress && (class == classFail || class == classLimited && req.Cmp(resource.MustParse(limitedMax)) > 0):
		pvc.Status.AllocatedResourceStatuses[corev1.ResourceStorage] = corev1.PersistentVolumeClaimControllerResizeInfeasible
		pvc.Status.Conditions = []corev1.PersistentVolumeClaimCondition{{Type: corev1.PersistentVolumeClaimControllerResizeError, Status: corev1.ConditionTrue, Message: "simulated storage is full"}}
		update()
	case status == corev1.PersistentVolumeClaimControllerResizeInProgress && class == classEvent:
		s.mu.Lock()
		first := s.pendingBy[pvc.Name] == ""
		s.pendingBy[pvc.Name] = "event"
		s.mu.Unlock()
		if first {
			_, _ = s.cs.CoreV1().Events(testNS).Create(ctx, &corev1.Event{
				ObjectMeta:     metav1.ObjectMeta{Name: pvc.Name + ".resize", Namespace: testNS},
				InvolvedObject: corev1.ObjectReference{Kind: "PersistentVolumeClaim", Namespace: testNS, Name: pvc.Name, UID: pvc.UID},
				Type:           corev1.EventTypeWarning, Reason: "VolumeResizeFailed", Message: "rpc error: quota of the storage backend exceeded", Count: 1,
			}, metav1.CreateOptions{})
		}
	case status == corev1.PersistentVolumeClaimControllerResizeInProgress:
		pod, err := s.cs.CoreV1().Pods(testNS).Get(ctx, podName, metav1.GetOptions{})
		s.mu.Lock()
		if err == nil {
			s.pendingBy[pvc.Name] = pod.UID
		} else {
			s.pendingBy[pvc.Name] = ""
		}
		s.mu.Unlock()
		pvc.Status.AllocatedResourceStatuses[corev1.ResourceStorage] = corev1.PersistentVolumeClaimNodeResizePending
		pvc.Status.Conditions = []corev1.PersistentVolumeClaimCondition{{Type: corev1.PersistentVolumeClaimFileSystemResizePending, Status: corev1.ConditionTrue}}
		update()
	case status == corev1.PersistentVolumeClaimNodeResizePending:
		if class == classOff {
			pod, err := s.cs.CoreV1().Pods(testNS).Get(ctx, podName, metav1.GetOptions{})
			s.mu.Lock()
			mountedBefore, known := s.pendingBy[pvc.Name]
			s.mu.Unlock()
			if err != nil || !wait.IsPodReady(pod) || (known && pod.UID == mountedBefore) {
				return
			}
		}
		pvc.Status.Capacity = corev1.ResourceList{corev1.ResourceStorage: req}
		pvc.Status.AllocatedResourceStatuses = nil
		pvc.Status.Conditions = nil
		update()
	}
}

func (s *sim) evictionCount(pod string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.evictions[pod]
}

func (s *sim) setRefuseEvictions(v bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.refuseEvictions = v
}

func (s *sim) deleteCount(pod string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.deletes[pod]
}

func (s *sim) patchCount(pvc string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.patches[pvc]
}

func (s *sim) stsDeletes() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stsDelete
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }

func resourceQuantity(s string) *resource.Quantity {
	q := resource.MustParse(s)
	return &q
}

// orphan does what the garbage collector does before an orphaning delete
// of a StatefulSet completes: it removes the StatefulSet's controller
// reference from its pods, so they are nobody's until adopted again.
func orphan(tracker clienttesting.ObjectTracker, a clienttesting.DeleteActionImpl) {
	if a.DeleteOptions.PropagationPolicy == nil || *a.DeleteOptions.PropagationPolicy != metav1.DeletePropagationOrphan {
		return
	}
	obj, err := tracker.Get(a.GetResource(), a.GetNamespace(), a.GetName())
	if err != nil {
		return
	}
	sts := obj.(*appsv1.StatefulSet)
	podsGVR := corev1.SchemeGroupVersion.WithResource("pods")
	list, err := tracker.List(podsGVR, corev1.SchemeGroupVersion.WithKind("Pod"), a.GetNamespace())
	if err != nil {
		return
	}
	for i := range list.(*corev1.PodList).Items {
		pod := &list.(*corev1.PodList).Items[i]
		if ref := metav1.GetControllerOf(pod); ref != nil && ref.UID == sts.UID {
			pod.OwnerReferences = nil
			_ = tracker.Update(podsGVR, pod, a.GetNamespace())
		}
	}
}
