package wait

import (
	"context"
	"fmt"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/types"
)

// simpleGate adapts a pure function of the snapshot to a Gate.
func simpleGate(object, condition string, check func(s Snapshot) (Verdict, string)) Gate {
	return NewGate(object, condition, func(_ context.Context, s Snapshot) (Verdict, string, error) {
		v, reason := check(s)
		return v, reason, nil
	})
}

func podObject(name string) string { return "pod " + name }

// onePodGate is a pure function of one pod of the snapshot: a PodGate.
type onePodGate struct {
	funcGate
	pod []string
}

func (g *onePodGate) Pods() []string { return g.pod }

// podGate adapts a pure function of the pod name (nil if it does not
// exist) to a PodGate.
func podGate(name, condition string, check func(pod *corev1.Pod) (Verdict, string)) Gate {
	return &onePodGate{pod: []string{name}, funcGate: funcGate{object: podObject(name), condition: condition,
		check: func(_ context.Context, s Snapshot) (Verdict, string, error) {
			v, reason := check(s.Pod(name))
			return v, reason, nil
		}}}
}

// podIs returns "pod is <state>" for an existing pod and "pod does not exist"
// for nil.
func podIs(pod *corev1.Pod) string {
	if pod == nil {
		return "pod does not exist"
	}
	return "pod is " + DescribePodState(pod)
}

// readyAt is the shared check of PodReadyAtRevision and PodReplacedReady.
func readyAt(pod *corev1.Pod, revision string) (Verdict, string) {
	switch {
	case pod == nil || pod.DeletionTimestamp != nil:
		return NotYet, podIs(pod)
	case revision != "" && PodRevision(pod) != revision:
		rev := PodRevision(pod)
		if rev == "" {
			rev = "<none>"
		}
		return NotYet, fmt.Sprintf("pod is at revision %s, not %s (%s)", rev, revision, DescribePodState(pod))
	case !IsPodReady(pod):
		return NotYet, podIs(pod)
	case revision == "":
		return Pass, "pod is Ready"
	default:
		return Pass, "pod is Ready at revision " + revision
	}
}

// PodReadyAtRevision passes when the pod exists, is not terminating, has
// Ready=True and its controller-revision-hash label equals revision. An empty
// revision accepts any revision.
func PodReadyAtRevision(name, revision string) Gate {
	cond := "to be Ready"
	if revision != "" {
		cond += " at revision " + revision
	}
	return podGate(name, cond, func(pod *corev1.Pod) (Verdict, string) {
		return readyAt(pod, revision)
	})
}

// PodGone passes when the pod no longer exists. A terminating pod (deletion
// timestamp set) is not gone.
//
// A StatefulSet recreates a deleted pod under the same name right away, so
// to wait for one specific pod object to go away use PodReplaced, which also
// accepts a successor with a different UID.
func PodGone(name string) Gate {
	return podGate(name, "to be gone", func(pod *corev1.Pod) (Verdict, string) {
		if pod == nil {
			return Pass, "pod is gone"
		}
		return NotYet, podIs(pod)
	})
}

// PodReplaced passes when the pod object with UID oldUID is gone: no pod of
// that name exists, or one exists with a different UID (the StatefulSet
// controller recreated it). The successor may still be starting; see
// PodReplacedReady.
func PodReplaced(name string, oldUID types.UID) Gate {
	return podGate(name, "to be replaced", func(pod *corev1.Pod) (Verdict, string) {
		switch {
		case pod == nil:
			return Pass, "pod is gone"
		case pod.UID != oldUID:
			return Pass, "pod was recreated (" + DescribePodState(pod) + ")"
		default:
			return NotYet, "old pod still exists: " + podIs(pod)
		}
	})
}

// PodReplacedReady passes when a pod of this name exists with a UID other
// than oldUID and is Ready at revision (empty revision: any).
func PodReplacedReady(name string, oldUID types.UID, revision string) Gate {
	cond := "to be recreated and Ready"
	if revision != "" {
		cond += " at revision " + revision
	}
	return podGate(name, cond, func(pod *corev1.Pod) (Verdict, string) {
		if pod != nil && pod.UID == oldUID {
			return NotYet, "old pod still exists: " + podIs(pod)
		}
		return readyAt(pod, revision)
	})
}

// PodNotFailing fails when the pod (if it is at revision; empty revision:
// any) has a container stuck in CrashLoopBackOff, an image pull error or a
// container configuration error, or has phase Failed; it passes otherwise,
// including when the pod does not exist. Combine it with a readiness gate
// to fail a rollout early instead of waiting for the timeout. Restricting it
// to the new revision keeps an old, already broken pod from failing the
// rollout that is meant to fix it.
func PodNotFailing(name, revision string) Gate {
	cond := "not to be failing"
	if revision != "" {
		cond = "not to be failing at revision " + revision
	}
	return podGate(name, cond, func(pod *corev1.Pod) (Verdict, string) {
		return notFailing(pod, revision)
	})
}

// notFailing is the check of PodNotFailing.
func notFailing(pod *corev1.Pod, revision string) (Verdict, string) {
	if pod == nil || pod.DeletionTimestamp != nil {
		return Pass, podIs(pod)
	}
	if revision != "" && PodRevision(pod) != revision {
		return Pass, "pod is at revision " + PodRevision(pod)
	}
	if p := podProblem(pod); p != "" {
		return Fail, "pod is " + p
	}
	if pod.Status.Phase == corev1.PodFailed {
		return Fail, podIs(pod)
	}
	return Pass, podIs(pod)
}

func stsObject(name string) string { return "statefulset " + name }

// statefulSetIn returns the snapshot's StatefulSet if it has the given name.
func statefulSetIn(s Snapshot, name string) *appsv1.StatefulSet {
	if s.StatefulSet == nil || s.StatefulSet.Name != name {
		return nil
	}
	return s.StatefulSet
}

// StatefulSetObserved passes when the StatefulSet controller has observed the
// StatefulSet's current spec: status.observedGeneration >=
// metadata.generation, and both are at least minGeneration.
//
// Pass the generation returned by the update or patch that changed the spec
// as minGeneration: the watch may still deliver the object as it was before
// the change, whose observedGeneration already matches its own (older)
// generation. Zero disables that check.
func StatefulSetObserved(name string, minGeneration int64) Gate {
	return simpleGate(stsObject(name), "to be observed by its controller", func(s Snapshot) (Verdict, string) {
		sts := statefulSetIn(s, name)
		if sts == nil {
			return NotYet, "statefulset does not exist"
		}
		return observed(sts, minGeneration)
	})
}

func observed(sts *appsv1.StatefulSet, minGeneration int64) (Verdict, string) {
	gen := sts.Generation
	if gen < minGeneration {
		return NotYet, fmt.Sprintf("generation %d not yet seen (latest seen: %d)", minGeneration, gen)
	}
	if sts.Status.ObservedGeneration < gen {
		return NotYet, fmt.Sprintf("observedGeneration %d < generation %d", sts.Status.ObservedGeneration, gen)
	}
	return Pass, fmt.Sprintf("generation %d observed", gen)
}

// StatefulSetReady passes when the StatefulSet is observed and all of its
// spec.replicas pods exist, are Ready and available.
func StatefulSetReady(name string) Gate {
	return simpleGate(stsObject(name), "to have all replicas ready", func(s Snapshot) (Verdict, string) {
		sts := statefulSetIn(s, name)
		if sts == nil {
			return NotYet, "statefulset does not exist"
		}
		if v, reason := observed(sts, 0); v != Pass {
			return v, reason
		}
		want := int32(1)
		if sts.Spec.Replicas != nil {
			want = *sts.Spec.Replicas
		}
		st := sts.Status
		if st.Replicas != want || st.ReadyReplicas != want || st.AvailableReplicas != want {
			return NotYet, fmt.Sprintf("%d/%d ready, %d available, %d existing", st.ReadyReplicas, want, st.AvailableReplicas, st.Replicas)
		}
		return Pass, fmt.Sprintf("%d/%d ready", st.ReadyReplicas, want)
	})
}

// StatefulSetGone passes once the tracked StatefulSet has been deleted (for
// example by a delete with --cascade=orphan before recreating it).
func StatefulSetGone(name string) Gate {
	return simpleGate(stsObject(name), "to be deleted", func(s Snapshot) (Verdict, string) {
		if s.StatefulSet == nil {
			return Pass, "statefulset is gone"
		}
		if s.StatefulSet.DeletionTimestamp != nil {
			return NotYet, "statefulset is terminating"
		}
		return NotYet, "statefulset still exists"
	})
}

func pvcObject(name string) string { return "pvc " + name }

// PVCCondition passes, fails or waits according to check, which receives the
// claim or nil if it does not exist. condition describes what is waited for,
// e.g. "to be expanded to 20Gi".
func PVCCondition(name, condition string, check func(pvc *corev1.PersistentVolumeClaim) (Verdict, string)) Gate {
	return simpleGate(pvcObject(name), condition, func(s Snapshot) (Verdict, string) {
		return check(s.PVC(name))
	})
}

// PVCBound passes when the claim is Bound and fails when it is Lost.
func PVCBound(name string) Gate {
	return PVCCondition(name, "to be Bound", func(pvc *corev1.PersistentVolumeClaim) (Verdict, string) {
		switch {
		case pvc == nil:
			return NotYet, "pvc does not exist"
		case pvc.Status.Phase == corev1.ClaimBound:
			return Pass, "pvc is Bound"
		case pvc.Status.Phase == corev1.ClaimLost:
			return Fail, "pvc is Lost"
		default:
			return NotYet, "pvc is " + string(pvc.Status.Phase)
		}
	})
}

// PVCCapacityAtLeast passes when the claim's status.capacity storage is at
// least size, i.e. the volume and (where needed) its file system have been
// expanded. It fails when Kubernetes reports the expansion as infeasible.
// While waiting, the reason lists the resize conditions (Resizing,
// FileSystemResizePending, resize errors with their messages).
func PVCCapacityAtLeast(name string, size resource.Quantity) Gate {
	return PVCCondition(name, "to have capacity "+size.String(), func(pvc *corev1.PersistentVolumeClaim) (Verdict, string) {
		if pvc == nil {
			return NotYet, "pvc does not exist"
		}
		capacity, ok := pvc.Status.Capacity[corev1.ResourceStorage]
		if ok && capacity.Cmp(size) >= 0 {
			return Pass, "pvc capacity is " + capacity.String()
		}
		have := "unknown"
		if ok {
			have = capacity.String()
		}
		switch rs := pvc.Status.AllocatedResourceStatuses[corev1.ResourceStorage]; rs {
		case corev1.PersistentVolumeClaimControllerResizeInfeasible, corev1.PersistentVolumeClaimNodeResizeInfeasible:
			return Fail, fmt.Sprintf("pvc capacity is %s; resize is %s%s", have, rs, resizeConditions(pvc))
		}
		return NotYet, fmt.Sprintf("pvc capacity is %s%s", have, resizeConditions(pvc))
	})
}

// PVCFileSystemResizePending passes when the claim has the condition
// FileSystemResizePending=True: the volume was expanded and the file system
// will be grown when a pod (re)starts with the claim mounted.
func PVCFileSystemResizePending(name string) Gate {
	return PVCCondition(name, "to be waiting for a file system resize", func(pvc *corev1.PersistentVolumeClaim) (Verdict, string) {
		if pvc == nil {
			return NotYet, "pvc does not exist"
		}
		for _, c := range pvc.Status.Conditions {
			if c.Type == corev1.PersistentVolumeClaimFileSystemResizePending && c.Status == corev1.ConditionTrue {
				return Pass, "pvc is FileSystemResizePending"
			}
		}
		capacity := pvc.Status.Capacity[corev1.ResourceStorage]
		return NotYet, fmt.Sprintf("pvc capacity is %s%s", capacity.String(), resizeConditions(pvc))
	})
}

// resizeConditions renders the claim's true conditions as " (Resizing;
// NodeResizeError: message)", or "" when there are none.
func resizeConditions(pvc *corev1.PersistentVolumeClaim) string {
	parts := ResizeConditionTexts(pvc)
	if len(parts) == 0 {
		return ""
	}
	return " (" + strings.Join(parts, "; ") + ")"
}

// ResizeConditionTexts lists the claim's true conditions, with the message
// of a resize error, e.g. ["Resizing"] or ["NodeResizeError: no space"].
func ResizeConditionTexts(pvc *corev1.PersistentVolumeClaim) []string {
	var parts []string
	for _, c := range pvc.Status.Conditions {
		if c.Status != corev1.ConditionTrue {
			continue
		}
		p := string(c.Type)
		switch c.Type {
		case corev1.PersistentVolumeClaimControllerResizeError, corev1.PersistentVolumeClaimNodeResizeError:
			if c.Message != "" {
				p += ": " + c.Message
			}
		}
		parts = append(parts, p)
	}
	return parts
}
