// Package statustest builds StatefulSets, pods and claims in the states the
// status verdict recognises, for tests of the status library, its
// rendering and the commands that use it.
package statustest

import (
	"fmt"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
)

// Fixture is one StatefulSet with its pods and claims. It starts healthy
// (every pod Ready on the current revision, every claim Bound at its
// requested size); the methods move it into other states.
type Fixture struct {
	Now         time.Time
	StatefulSet *appsv1.StatefulSet
	Pods        []*corev1.Pod
	PVCs        []*corev1.PersistentVolumeClaim
}

// Revision hashes of fixtures: deterministic, so rendered output is stable.
const (
	CurrentHash = "5d8f7c6b9"
	UpdateHash  = "7b6c5d4f8"
	OtherHash   = "6c9d8e7f5"
)

// Age is how long before Now a fixture's objects were created.
const Age = 3 * time.Hour

// New returns a healthy StatefulSet ns/name with replicas pods, one claim
// template "data" of 1Gi, OrderedReady, RollingUpdate with partition 0.
func New(ns, name string, replicas int, now time.Time) *Fixture {
	f := &Fixture{Now: now}
	labels := map[string]string{"app": name}
	created := metav1.NewTime(now.Add(-Age))
	f.StatefulSet = &appsv1.StatefulSet{
		TypeMeta: metav1.TypeMeta{Kind: "StatefulSet", APIVersion: "apps/v1"},
		ObjectMeta: metav1.ObjectMeta{
			Namespace: ns, Name: name, UID: uid("sts", ns, name),
			CreationTimestamp: created, Generation: 1,
		},
		Spec: appsv1.StatefulSetSpec{
			Replicas:            ptr.To(int32(replicas)),
			Selector:            &metav1.LabelSelector{MatchLabels: labels},
			ServiceName:         name,
			PodManagementPolicy: appsv1.OrderedReadyPodManagement,
			UpdateStrategy: appsv1.StatefulSetUpdateStrategy{
				Type:          appsv1.RollingUpdateStatefulSetStrategyType,
				RollingUpdate: &appsv1.RollingUpdateStatefulSetStrategy{Partition: ptr.To(int32(0))},
			},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "db", Image: "postgres:17"}}},
			},
			VolumeClaimTemplates: []corev1.PersistentVolumeClaim{{
				ObjectMeta: metav1.ObjectMeta{Name: "data"},
				Spec: corev1.PersistentVolumeClaimSpec{
					StorageClassName: ptr.To("standard"),
					AccessModes:      []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
					Resources:        corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}},
				},
			}},
		},
		Status: appsv1.StatefulSetStatus{
			ObservedGeneration: 1,
			CurrentRevision:    name + "-" + CurrentHash,
			UpdateRevision:     name + "-" + CurrentHash,
		},
	}
	for i := range replicas {
		f.Pods = append(f.Pods, f.newPod(i, f.StatefulSet.Status.CurrentRevision))
		f.PVCs = append(f.PVCs, f.newPVC("data", i, "1Gi"))
	}
	f.SyncStatus()
	return f
}

// Objects returns the fixture's objects for a fake clientset.
func (f *Fixture) Objects() []runtime.Object {
	objs := []runtime.Object{f.StatefulSet}
	for _, p := range f.Pods {
		objs = append(objs, p)
	}
	for _, c := range f.PVCs {
		objs = append(objs, c)
	}
	return objs
}

// Name returns the name of the pod of ordinal.
func (f *Fixture) Name(ordinal int) string { return fmt.Sprintf("%s-%d", f.StatefulSet.Name, ordinal) }

// Pod returns the pod of ordinal, or nil.
func (f *Fixture) Pod(ordinal int) *corev1.Pod {
	for _, p := range f.Pods {
		if p.Name == f.Name(ordinal) {
			return p
		}
	}
	return nil
}

// PVC returns the claim of template "data" for ordinal, or nil.
func (f *Fixture) PVC(ordinal int) *corev1.PersistentVolumeClaim {
	name := fmt.Sprintf("data-%s-%d", f.StatefulSet.Name, ordinal)
	for _, c := range f.PVCs {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// Revision returns the full revision name for a hash.
func (f *Fixture) Revision(hash string) string { return f.StatefulSet.Name + "-" + hash }

// StartRollout makes UpdateHash the update revision with the given
// partition, and moves the pods of the given ordinals to it (Ready).
func (f *Fixture) StartRollout(partition int32, updated ...int) *Fixture {
	s := f.StatefulSet
	s.Generation++
	s.Status.ObservedGeneration = s.Generation
	s.Spec.UpdateStrategy.RollingUpdate.Partition = ptr.To(partition)
	s.Spec.Template.Spec.Containers[0].Image = "postgres:18"
	s.Status.UpdateRevision = f.Revision(UpdateHash)
	for _, n := range updated {
		f.Pod(n).Labels[appsv1.StatefulSetRevisionLabel] = s.Status.UpdateRevision
		f.Pod(n).Spec.Containers[0].Image = "postgres:18"
	}
	f.SyncStatus()
	return f
}

// NotReady makes the pod of ordinal Running but not Ready since `since` ago.
func (f *Fixture) NotReady(ordinal int, since time.Duration) *Fixture {
	p := f.Pod(ordinal)
	t := metav1.NewTime(f.Now.Add(-since))
	for i := range p.Status.Conditions {
		if p.Status.Conditions[i].Type == corev1.PodReady || p.Status.Conditions[i].Type == corev1.ContainersReady {
			p.Status.Conditions[i].Status = corev1.ConditionFalse
			p.Status.Conditions[i].Reason = "ContainersNotReady"
			p.Status.Conditions[i].LastTransitionTime = t
		}
	}
	for i := range p.Status.ContainerStatuses {
		p.Status.ContainerStatuses[i].Ready = false
	}
	f.SyncStatus()
	return f
}

// CrashLoop puts the pod's container in CrashLoopBackOff with restarts.
func (f *Fixture) CrashLoop(ordinal int, restarts int32) *Fixture {
	p := f.Pod(ordinal)
	cs := &p.Status.ContainerStatuses[0]
	cs.RestartCount = restarts
	cs.State = corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff", Message: "back-off restarting failed container"}}
	return f
}

// Recreate replaces the pod of ordinal with a new pod at revision hash,
// created `age` ago, and Ready or not.
func (f *Fixture) Recreate(ordinal int, hash string, age time.Duration, ready bool) *Fixture {
	p := f.newPod(ordinal, f.Revision(hash))
	p.CreationTimestamp = metav1.NewTime(f.Now.Add(-age))
	p.UID = uid("pod", p.Namespace, p.Name, hash)
	f.removePod(ordinal)
	f.Pods = append(f.Pods, p)
	if hash == UpdateHash {
		p.Spec.Containers[0].Image = f.StatefulSet.Spec.Template.Spec.Containers[0].Image
	}
	if !ready {
		f.NotReady(ordinal, age)
	}
	f.SyncStatus()
	return f
}

// DeletePod removes the pod of ordinal (a missing pod).
func (f *Fixture) DeletePod(ordinal int) *Fixture {
	f.removePod(ordinal)
	f.SyncStatus()
	return f
}

// Terminating marks the pod of ordinal as being deleted since `since` ago.
func (f *Fixture) Terminating(ordinal int, since time.Duration) *Fixture {
	p := f.Pod(ordinal)
	t := metav1.NewTime(f.Now.Add(-since).Add(30 * time.Second))
	p.DeletionTimestamp = &t
	p.DeletionGracePeriodSeconds = ptr.To(int64(30))
	return f
}

// ScaleTo sets the desired replicas without touching pods or claims, as
// right after `kubectl scale` (pods above are then removed by the
// controller; use DeletePod for that).
func (f *Fixture) ScaleTo(replicas int32) *Fixture {
	f.StatefulSet.Spec.Replicas = ptr.To(replicas)
	f.SyncStatus()
	return f
}

// AddLeftoverPVC adds a claim of template "data" for ordinal with no pod.
func (f *Fixture) AddLeftoverPVC(ordinal int) *Fixture {
	f.PVCs = append(f.PVCs, f.newPVC("data", ordinal, "1Gi"))
	return f
}

// Resize sets the claim of ordinal to request `to`, in resize state
// (one of "requested", "in-progress", "pending-restart", "failed").
func (f *Fixture) Resize(ordinal int, to, state string) *Fixture {
	c := f.PVC(ordinal)
	c.Spec.Resources.Requests[corev1.ResourceStorage] = resource.MustParse(to)
	now := metav1.NewTime(f.Now.Add(-time.Minute))
	switch state {
	case "requested":
	case "in-progress":
		c.Status.AllocatedResources = corev1.ResourceList{corev1.ResourceStorage: resource.MustParse(to)}
		c.Status.AllocatedResourceStatuses = map[corev1.ResourceName]corev1.ClaimResourceStatus{corev1.ResourceStorage: corev1.PersistentVolumeClaimControllerResizeInProgress}
		c.Status.Conditions = []corev1.PersistentVolumeClaimCondition{{Type: corev1.PersistentVolumeClaimResizing, Status: corev1.ConditionTrue, LastTransitionTime: now}}
	case "pending-restart":
		c.Status.AllocatedResources = corev1.ResourceList{corev1.ResourceStorage: resource.MustParse(to)}
		c.Status.AllocatedResourceStatuses = map[corev1.ResourceName]corev1.ClaimResourceStatus{corev1.ResourceStorage: corev1.PersistentVolumeClaimNodeResizePending}
		c.Status.Conditions = []corev1.PersistentVolumeClaimCondition{{
			Type: corev1.PersistentVolumeClaimFileSystemResizePending, Status: corev1.ConditionTrue, LastTransitionTime: now,
			Message: "Waiting for user to (re-)start a pod to finish file system resize of volume on node.",
		}}
	case "failed":
		c.Status.AllocatedResources = corev1.ResourceList{corev1.ResourceStorage: resource.MustParse(to)}
		c.Status.AllocatedResourceStatuses = map[corev1.ResourceName]corev1.ClaimResourceStatus{corev1.ResourceStorage: corev1.PersistentVolumeClaimControllerResizeInfeasible}
		c.Status.Conditions = []corev1.PersistentVolumeClaimCondition{{
			Type: corev1.PersistentVolumeClaimControllerResizeError, Status: corev1.ConditionTrue, LastTransitionTime: now,
			Message: "requested size exceeds the pool",
		}}
	default:
		panic("statustest: unknown resize state " + state)
	}
	return f
}

// SyncStatus recomputes the StatefulSet's status counts from the pods, as
// the controller would.
func (f *Fixture) SyncStatus() {
	s := f.StatefulSet
	st := &s.Status
	st.Replicas, st.ReadyReplicas, st.AvailableReplicas, st.CurrentReplicas, st.UpdatedReplicas = 0, 0, 0, 0, 0
	for _, p := range f.Pods {
		if p.DeletionTimestamp != nil {
			continue
		}
		st.Replicas++
		if isReady(p) {
			st.ReadyReplicas++
			st.AvailableReplicas++
		}
		switch p.Labels[appsv1.StatefulSetRevisionLabel] {
		case st.CurrentRevision:
			st.CurrentReplicas++
		}
		if p.Labels[appsv1.StatefulSetRevisionLabel] == st.UpdateRevision {
			st.UpdatedReplicas++
		}
	}
}

func isReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func (f *Fixture) removePod(ordinal int) {
	name := f.Name(ordinal)
	out := f.Pods[:0]
	for _, p := range f.Pods {
		if p.Name != name {
			out = append(out, p)
		}
	}
	f.Pods = out
}

func (f *Fixture) newPod(ordinal int, revision string) *corev1.Pod {
	s := f.StatefulSet
	name := f.Name(ordinal)
	created := metav1.NewTime(f.Now.Add(-Age))
	labels := map[string]string{
		appsv1.StatefulSetRevisionLabel: revision,
		appsv1.StatefulSetPodNameLabel:  name,
	}
	for k, v := range s.Spec.Selector.MatchLabels {
		labels[k] = v
	}
	return &corev1.Pod{
		TypeMeta: metav1.TypeMeta{Kind: "Pod", APIVersion: "v1"},
		ObjectMeta: metav1.ObjectMeta{
			Namespace: s.Namespace, Name: name, UID: uid("pod", s.Namespace, name),
			CreationTimestamp: created, Labels: labels,
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion: "apps/v1", Kind: "StatefulSet", Name: s.Name, UID: s.UID, Controller: ptr.To(true),
			}},
		},
		Spec: corev1.PodSpec{
			NodeName:   fmt.Sprintf("node-%d", ordinal%3),
			Containers: []corev1.Container{{Name: "db", Image: s.Spec.Template.Spec.Containers[0].Image}},
			Volumes: []corev1.Volume{{Name: "data", VolumeSource: corev1.VolumeSource{
				PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: fmt.Sprintf("data-%s", name)},
			}}},
		},
		Status: corev1.PodStatus{
			Phase: corev1.PodRunning,
			PodIP: fmt.Sprintf("10.0.0.%d", 10+ordinal),
			Conditions: []corev1.PodCondition{
				{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: created},
				{Type: corev1.ContainersReady, Status: corev1.ConditionTrue, LastTransitionTime: created},
			},
			ContainerStatuses: []corev1.ContainerStatus{{
				Name: "db", Ready: true, Started: ptr.To(true), Image: s.Spec.Template.Spec.Containers[0].Image,
				State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: created}},
			}},
		},
	}
}

func (f *Fixture) newPVC(template string, ordinal int, size string) *corev1.PersistentVolumeClaim {
	s := f.StatefulSet
	name := fmt.Sprintf("%s-%s-%d", template, s.Name, ordinal)
	return &corev1.PersistentVolumeClaim{
		TypeMeta: metav1.TypeMeta{Kind: "PersistentVolumeClaim", APIVersion: "v1"},
		ObjectMeta: metav1.ObjectMeta{
			Namespace: s.Namespace, Name: name, UID: uid("pvc", s.Namespace, name),
			CreationTimestamp: metav1.NewTime(f.Now.Add(-Age)),
			Labels:            map[string]string{"app": s.Name},
		},
		Spec: corev1.PersistentVolumeClaimSpec{
			StorageClassName: ptr.To("standard"),
			AccessModes:      []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			Resources:        corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse(size)}},
			VolumeName:       "pv-" + name,
		},
		Status: corev1.PersistentVolumeClaimStatus{
			Phase:    corev1.ClaimBound,
			Capacity: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse(size)},
		},
	}
}

// uid derives a stable UID from names, so output with UIDs is stable.
func uid(parts ...string) types.UID {
	var h uint64 = 14695981039346656037
	for _, p := range parts {
		for i := 0; i < len(p); i++ {
			h ^= uint64(p[i])
			h *= 1099511628211
		}
		h ^= '/'
	}
	return types.UID(fmt.Sprintf("%08x-%04x-%04x-%04x-%012x", uint32(h>>32), uint16(h>>16), uint16(h), uint16(h>>48), h&0xffffffffffff))
}
