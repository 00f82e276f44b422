package scaledown

import (
	"context"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubectl-sts/kubectl-sts/pkg/progress"
	"github.com/kubectl-sts/kubectl-sts/pkg/wait"
)

// Outcomes of a claim, as recorded in the journal.
const (
	outcomeKept        = "kept"
	outcomeSnapshotted = "snapshotted"
	outcomeDeleted     = "deleted"
	outcomeGone        = "gone"
	outcomeKubernetes  = "left to kubernetes"
)

// runCleanup deletes (or snapshots, then deletes) the claims of ordinals
// left behind by earlier scale-downs.
func (r *runner) runCleanup(ctx context.Context) error {
	steps := len(r.plan.Steps)
	for i, s := range r.plan.Steps {
		st := r.state.step(s.Ordinal)
		if st == nil {
			r.state.Ordinals = append(r.state.Ordinals, StepState{Ordinal: s.Ordinal})
			st = r.state.step(s.Ordinal)
		}
		if st.Stage.reached(StageDone) {
			continue
		}
		r.emit(i+1, "step-started", progress.Info, "pod/"+s.Pod, fmt.Sprintf("cleaning up the claims of removed ordinal %d", s.Ordinal))
		if err := r.handleClaims(ctx, i+1, s); err != nil {
			return r.stepFailed(ctx, err)
		}
		r.done = append(r.done, "claims of "+s.Pod)
		if err := r.advance(ctx, st, StageDone, "cleaned up the claims of "+s.Pod); err != nil {
			return err
		}
		r.emit(i+1, "step-done", progress.Success, "pod/"+s.Pod, fmt.Sprintf("claims of ordinal %d handled", s.Ordinal))
	}
	if steps == 0 && !r.plan.DropsSlots() {
		r.emit(0, "nothing-to-do", progress.Info, "statefulset/"+r.plan.StatefulSet, "nothing left over from removed ordinals")
	}
	return r.dropLeftovers(ctx)
}

// handleClaims applies the plan's action to one ordinal's claims, and to
// those only.
func (r *runner) handleClaims(ctx context.Context, step int, s PlanStep) error {
	for _, c := range s.PVCs {
		cs := r.state.claim(c.Name, c.UID)
		if cs == nil {
			r.state.Claims = append(r.state.Claims, ClaimState{Name: c.Name, UID: c.UID, Ordinal: s.Ordinal})
			cs = &r.state.Claims[len(r.state.Claims)-1]
		}
		if err := r.handleClaim(ctx, step, s, c, cs); err != nil {
			return err
		}
	}
	return nil
}

func (r *runner) handleClaim(ctx context.Context, step int, s PlanStep, c PlanPVC, cs *ClaimState) error {
	obj := "pvc/" + c.Name
	switch cs.Outcome {
	case outcomeDeleted, outcomeGone, outcomeKept, outcomeKubernetes:
		return nil
	}
	switch c.Action {
	case PVCKeep:
		cs.Outcome = outcomeKept
		r.result.Kept = append(r.result.Kept, c.Name)
		msg := fmt.Sprintf("kept pvc %s; a later scale-up reattaches it with its data (delete it with: kubectl sts cleanup-pvcs %s -n %s)", c.Name, r.plan.StatefulSet, r.plan.Namespace)
		r.emit(step, "pvc-kept", progress.Info, obj, msg)
		r.event(ctx, corev1.EventTypeNormal, "PVCKept", fmt.Sprintf("kept pvc %s", c.Name))
		return r.save(ctx, "kept pvc "+c.Name)
	case PVCByKubernetes:
		cs.Outcome = outcomeKubernetes
		r.result.ByKubernetes = append(r.result.ByKubernetes, c.Name)
		r.emit(step, "pvc-by-kubernetes", progress.Info, obj, fmt.Sprintf("pvc %s is deleted by Kubernetes (whenScaled: Delete)", c.Name))
		return r.save(ctx, "")
	}

	live, err := r.checkDeletable(ctx, s.Ordinal, c)
	if err != nil {
		return err
	}
	if live == nil {
		cs.Outcome = outcomeGone
		r.emit(step, "pvc-gone", progress.Info, obj, fmt.Sprintf("pvc %s no longer exists", c.Name))
		return r.save(ctx, "")
	}

	if c.Action == PVCSnapshot && cs.Outcome != outcomeSnapshotted {
		if err := r.snapshot(ctx, step, c, cs); err != nil {
			return err
		}
		// The wait may have taken long: check again right before the delete.
		if live, err = r.checkDeletable(ctx, s.Ordinal, c); err != nil {
			return err
		}
		if live == nil {
			cs.Outcome = outcomeGone
			return r.save(ctx, "")
		}
	}
	return r.deleteClaim(ctx, step, c, cs, live)
}

// checkDeletable re-reads the cluster right before a claim is touched and
// refuses unless: the claim is the one planned (same UID) and still one of
// the StatefulSet's (wait.OwnsClaim); its ordinal is at or above
// the StatefulSet's replica range and the target; no pod of that ordinal
// exists; and no pod mounts it. It returns nil when the claim is gone.
func (r *runner) checkDeletable(ctx context.Context, ordinal int, c PlanPVC) (*corev1.PersistentVolumeClaim, error) {
	ns, name := r.plan.Namespace, r.plan.StatefulSet
	sts, err := r.deps.Kube.AppsV1().StatefulSets(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("re-reading statefulset %s before touching pvc %s: %w", name, c.Name, err)
	}
	if sts.UID != r.plan.UID {
		return nil, fmt.Errorf("statefulset %s was recreated; not touching pvc %s", name, c.Name)
	}
	end := OrdinalsStart(sts) + int(Replicas(sts))
	if ordinal < end || ordinal < r.plan.OrdinalsStart+int(r.plan.To) {
		return nil, fmt.Errorf("not touching pvc %s: its ordinal %d is inside the replica range of statefulset %s (%d replicas)", c.Name, ordinal, name, Replicas(sts))
	}
	pod := wait.PodName(name, ordinal)
	if _, err := r.deps.Kube.CoreV1().Pods(ns).Get(ctx, pod, metav1.GetOptions{}); err == nil {
		return nil, fmt.Errorf("not touching pvc %s: pod %s exists again (was the statefulset scaled up?)", c.Name, pod)
	} else if !apierrors.IsNotFound(err) {
		return nil, fmt.Errorf("checking that pod %s is gone: %w", pod, err)
	}
	pvc, err := r.deps.Kube.CoreV1().PersistentVolumeClaims(ns).Get(ctx, c.Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading pvc %s: %w", c.Name, err)
	}
	if pvc.UID != c.UID {
		return nil, fmt.Errorf("not touching pvc %s: it was recreated since the plan was made (uid %s, planned %s)", c.Name, pvc.UID, c.UID)
	}
	if owned, ok := OwnedClaim(sts, pvc); !ok || owned.Ordinal != ordinal {
		return nil, fmt.Errorf("not touching pvc %s: it is no longer a claim of statefulset %s (its name or its controller changed)", c.Name, name)
	}
	pods, err := r.deps.Kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("checking which pods use pvc %s: %w", c.Name, err)
	}
	if user := podUsingClaim(pods.Items, c.Name); user != "" {
		return nil, fmt.Errorf("not touching pvc %s: pod %s mounts it", c.Name, user)
	}
	return pvc, nil
}

func (r *runner) snapshot(ctx context.Context, step int, c PlanPVC, cs *ClaimState) error {
	if r.deps.Dynamic == nil {
		return fmt.Errorf("snapshot of pvc %s: no dynamic client configured", c.Name)
	}
	sn := snapshotter{dyn: r.deps.Dynamic, namespace: r.plan.Namespace, sts: r.plan.StatefulSet, class: r.plan.SnapshotClass}
	if cs.Snapshot == "" {
		cs.Snapshot = SnapshotName(c.Name, r.rec.Started)
		// Recorded before creating, so a resumed run looks for this name.
		if err := r.save(ctx, ""); err != nil {
			return err
		}
	}
	obj := "volumesnapshot/" + cs.Snapshot
	created, err := sn.ensure(ctx, cs.Snapshot, c.Name)
	if err != nil {
		return err
	}
	if created {
		msg := fmt.Sprintf("created volumesnapshot %s of pvc %s (class %s)", cs.Snapshot, c.Name, r.plan.SnapshotClass)
		r.emit(step, "snapshot-created", progress.Info, obj, msg)
		r.event(ctx, corev1.EventTypeNormal, "SnapshotCreated", msg)
	}
	r.emit(step, "waiting", progress.Info, obj, "waiting for the snapshot to be readyToUse")
	if err := sn.waitReady(ctx, cs.Snapshot, r.cfg.timeout()); err != nil {
		return fmt.Errorf("%w; pvc %s was not deleted", err, c.Name)
	}
	cs.Outcome = outcomeSnapshotted
	r.result.Snapshots = append(r.result.Snapshots, cs.Snapshot)
	msg := fmt.Sprintf("volumesnapshot %s of pvc %s is readyToUse", cs.Snapshot, c.Name)
	r.emit(step, "snapshot-ready", progress.Success, obj, msg)
	r.event(ctx, corev1.EventTypeNormal, "SnapshotReady", msg)
	return r.save(ctx, msg)
}

func (r *runner) deleteClaim(ctx context.Context, step int, c PlanPVC, cs *ClaimState, live *corev1.PersistentVolumeClaim) error {
	obj := "pvc/" + c.Name
	api := r.deps.Kube.CoreV1().PersistentVolumeClaims(r.plan.Namespace)
	if live.DeletionTimestamp == nil {
		uid := live.UID
		err := api.Delete(ctx, c.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &uid}})
		if err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("deleting pvc %s: %w", c.Name, err)
		}
	}
	r.emit(step, "waiting", progress.Info, obj, "waiting for the pvc to be deleted")
	gone := wait.PVCCondition(c.Name, "to be deleted", func(pvc *corev1.PersistentVolumeClaim) (wait.Verdict, string) {
		if pvc == nil {
			return wait.Pass, "pvc is gone"
		}
		if pvc.DeletionTimestamp != nil {
			return wait.NotYet, "pvc is Terminating (finalizers: " + strings.Join(pvc.Finalizers, ", ") + ")"
		}
		return wait.NotYet, "pvc still exists"
	})
	if err := wait.WaitPVC(ctx, r.deps.Kube, r.plan.Namespace, c.Name, r.cfg.timeout(), gone); err != nil {
		return err
	}
	cs.Outcome = outcomeDeleted
	r.result.Deleted = append(r.result.Deleted, c.Name)
	msg := fmt.Sprintf("deleted pvc %s", c.Name)
	if c.Capacity != "" {
		msg += " (" + c.Capacity + ")"
	}
	r.emit(step, "pvc-deleted", progress.Success, obj, msg)
	r.event(ctx, corev1.EventTypeNormal, "PVCDeleted", msg)
	return r.save(ctx, msg)
}
