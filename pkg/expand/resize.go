package expand

import (
	"context"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/kubectl-sts/kubectl-sts/pkg/wait"
)

// Stage is where a claim stands in the resize status protocol.
type Stage string

// Stages, in protocol order, then the failures.
const (
	// StageNone: the request is not above the capacity; nothing to do.
	StageNone Stage = "None"
	// StageRequested: the request grew, no resizer has acted yet.
	StageRequested Stage = "Requested"
	// StageController: ControllerResizeInProgress or condition Resizing.
	StageController Stage = "ControllerResizing"
	// StageNode: the volume is expanded; the node still has to grow the
	// file system (FileSystemResizePending, NodeResizePending or
	// NodeResizeInProgress).
	StageNode Stage = "NodeResizePending"
	// StageDone: status.capacity reached the size.
	StageDone Stage = "Done"
	// StageInfeasible: ControllerResizeInfeasible or NodeResizeInfeasible.
	StageInfeasible Stage = "Infeasible"
)

// ResizeStage reads a claim's resize state against the target size.
// detail describes it in the claim's own words (statuses, conditions and
// their messages) for progress and errors.
func ResizeStage(pvc *corev1.PersistentVolumeClaim, size resource.Quantity) (stage Stage, detail string) {
	capacity, hasCap := capacityOf(pvc)
	if hasCap && capacity.Cmp(size) >= 0 {
		return StageDone, "capacity " + capacity.String()
	}
	detail = "capacity " + show(capacity, hasCap) + describeResize(pvc)
	status := pvc.Status.AllocatedResourceStatuses[corev1.ResourceStorage]
	switch status {
	case corev1.PersistentVolumeClaimControllerResizeInfeasible, corev1.PersistentVolumeClaimNodeResizeInfeasible:
		if !failedResize(pvc) {
			// The failure was of an earlier request; the new one is not
			// picked up yet.
			return StageRequested, detail
		}
		return StageInfeasible, detail
	case corev1.PersistentVolumeClaimNodeResizePending, corev1.PersistentVolumeClaimNodeResizeInProgress:
		return StageNode, detail
	case corev1.PersistentVolumeClaimControllerResizeInProgress:
		return StageController, detail
	}
	if hasCondition(pvc, corev1.PersistentVolumeClaimFileSystemResizePending) {
		return StageNode, detail
	}
	if hasCondition(pvc, corev1.PersistentVolumeClaimResizing) {
		return StageController, detail
	}
	req, ok := requestOf(pvc)
	if ok && hasCap && req.Cmp(capacity) <= 0 {
		return StageNone, detail
	}
	return StageRequested, detail
}

// failedResize reports whether the storage gave up on the claim's current
// request (an infeasible status for that very request).
func failedResize(pvc *corev1.PersistentVolumeClaim) bool {
	switch pvc.Status.AllocatedResourceStatuses[corev1.ResourceStorage] {
	case corev1.PersistentVolumeClaimControllerResizeInfeasible, corev1.PersistentVolumeClaimNodeResizeInfeasible:
	default:
		return false
	}
	allocated, hasAlloc := pvc.Status.AllocatedResources[corev1.ResourceStorage]
	req, ok := requestOf(pvc)
	return !hasAlloc || !ok || req.Cmp(allocated) == 0
}

// describeResize renders the resize status and true conditions, e.g.
// " (NodeResizePending; FileSystemResizePending: Waiting for user to ...)".
func describeResize(pvc *corev1.PersistentVolumeClaim) string {
	var parts []string
	if s := pvc.Status.AllocatedResourceStatuses[corev1.ResourceStorage]; s != "" {
		parts = append(parts, string(s))
	}
	parts = append(parts, wait.ResizeConditionTexts(pvc)...)
	if len(parts) == 0 {
		return ""
	}
	return " (" + strings.Join(parts, "; ") + ")"
}

func hasCondition(pvc *corev1.PersistentVolumeClaim, t corev1.PersistentVolumeClaimConditionType) bool {
	for _, c := range pvc.Status.Conditions {
		if c.Type == t && c.Status == corev1.ConditionTrue {
			return true
		}
	}
	return false
}

// failureReasons are the Warning events resizers and kubelets record when
// an expansion fails.
var failureReasons = []string{"VolumeResizeFailed", "FileSystemResizeFailed"}

// failureWatch follows the Warning events of one claim (wait.Warnings)
// and keeps the first resize failure recorded after it started.
type failureWatch struct{ warnings *wait.Warnings }

// failure returns the resize failure seen so far, or nil.
func (f *failureWatch) failure() *corev1.Event {
	if f == nil {
		return nil
	}
	return f.warnings.First()
}

// watchFailures starts following the events of claim uid until ctx ends.
// It fails when events cannot be watched, so the caller can degrade to
// relying on the claim's status alone.
func watchFailures(ctx context.Context, client kubernetes.Interface, namespace string, uid types.UID) (*failureWatch, error) {
	w, err := wait.WatchWarnings(ctx, client, namespace, uid, failureReasons...)
	if err != nil {
		return nil, err
	}
	return &failureWatch{warnings: w}, nil
}

// expandedGate passes once the controller side of the resize is done (the
// capacity reached size, or only the node's file system resize is left),
// and fails on an infeasible resize or a resize failure event.
func expandedGate(name string, size resource.Quantity, failures *failureWatch) wait.Gate {
	return resizeGate(name, "to be expanded to "+size.String()+" by the storage driver", size, failures, func(s Stage) bool {
		return s == StageDone || s == StageNode
	})
}

// capacityGate passes once status.capacity reached size, and fails like
// expandedGate.
func capacityGate(name string, size resource.Quantity, failures *failureWatch) wait.Gate {
	return resizeGate(name, "to have capacity "+size.String(), size, failures, func(s Stage) bool {
		return s == StageDone
	})
}

func resizeGate(name, condition string, size resource.Quantity, failures *failureWatch, done func(Stage) bool) wait.Gate {
	return wait.PVCCondition(name, condition, func(pvc *corev1.PersistentVolumeClaim) (wait.Verdict, string) {
		if pvc == nil {
			return wait.NotYet, "pvc does not exist"
		}
		stage, detail := ResizeStage(pvc, size)
		switch {
		case done(stage):
			return wait.Pass, detail
		case stage == StageInfeasible:
			return wait.Fail, detail
		}
		if ev := failures.failure(); ev != nil {
			return wait.Fail, fmt.Sprintf("%s; event %s: %s", detail, ev.Reason, ev.Message)
		}
		return wait.NotYet, detail
	})
}
