package expand

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/kubectl-sts/kubectl-sts/pkg/kube"
	"github.com/kubectl-sts/kubectl-sts/pkg/progress"
	"github.com/kubectl-sts/kubectl-sts/pkg/wait"
	"github.com/kubectl-sts/kubectl-sts/plugins"
)

// claims expands the claims one ordinal at a time, in plan order (with the
// primary moved last if the engine's roles changed meanwhile).
func (r *run) claims(ctx context.Context) error {
	tctx, cancel := context.WithCancel(ctx)
	tr := wait.NewTracker(r.cfg.Client, r.cfg.Namespace, r.cfg.Name)
	defer func() {
		cancel()
		<-tr.Done()
	}()
	if err := tr.Start(tctx); err != nil {
		return err
	}
	if tr.UID() != r.plan.UID {
		return &AttentionError{Err: fmt.Errorf("statefulset %s was replaced after the plan was made (uid %s, now %s)", r.cfg.Name, r.plan.UID, tr.UID()),
			Hint: "run the command again to plan against the new object"}
	}
	r.tracker = tr
	r.base = tr.Snapshot().StatefulSet
	var remaining []OrdinalPlan
	for _, o := range r.plan.Ordinals {
		if o.Action == ActionDone {
			r.res.Skipped = append(r.res.Skipped, o.PVC)
			r.emit(progress.Event{Kind: KindStepSkipped, Object: "pvc/" + o.PVC, Message: fmt.Sprintf("ordinal %d: pvc %s already has %s", o.Ordinal, o.PVC, o.Capacity)})
			continue
		}
		remaining = append(remaining, o)
	}
	for len(remaining) > 0 {
		i := r.pick(ctx, remaining)
		op := remaining[i]
		remaining = slices.Delete(remaining, i, i+1)
		r.step++
		untouched := make([]string, 0, len(remaining))
		for _, o := range remaining {
			untouched = append(untouched, o.PVC)
		}
		if err := r.ordinal(ctx, op, untouched); err != nil {
			return err
		}
	}
	r.tracker = nil
	return nil
}

// pick returns the index of the next ordinal: the planned one, unless the
// engine now names it the primary while replicas remain.
func (r *run) pick(ctx context.Context, remaining []OrdinalPlan) int {
	if r.plan.engine == nil || r.params.Restart == RestartNever || len(remaining) < 2 {
		return 0
	}
	s := r.tracker.Snapshot()
	if s.StatefulSet == nil {
		return 0
	}
	members, err := r.members(ctx, r.plan.engine, s.StatefulSet, s.OrderedPods())
	if err != nil {
		return 0
	}
	ordinals := make([]int, len(remaining))
	for i, o := range remaining {
		ordinals[i] = o.Ordinal
	}
	order, _ := Order(ordinals, members)
	if order[0] == remaining[0].Ordinal {
		return 0
	}
	for i, o := range remaining {
		if o.Ordinal == order[0] {
			r.warn(ctx, "pod/"+remaining[0].Pod, fmt.Sprintf("pod %s is now the primary: it goes last, pod %s next", remaining[0].Pod, o.Pod))
			return i
		}
	}
	return 0
}

// ordinal grows one claim and verifies it: raise the request, wait for the
// storage driver, let the node grow the file system (restarting the pod
// when it waits for one and that is allowed), wait for the capacity and the
// pod to be Ready.
func (r *run) ordinal(ctx context.Context, op OrdinalPlan, untouched []string) error {
	c := r.state.claim(op.Ordinal, op.PVC)
	obj := "pvc/" + op.PVC
	size := r.params.Size
	r.current = fmt.Sprintf("at ordinal %d (pvc %s)", op.Ordinal, op.PVC)
	r.stepEvent(KindStepStarted, progress.Info, obj, fmt.Sprintf("ordinal %d: pvc %s %s -> %s", op.Ordinal, op.PVC, op.Capacity, r.plan.Size))

	octx, cancel := context.WithTimeout(ctx, r.params.timeout())
	defer cancel()
	pvc, err := r.cfg.Client.CoreV1().PersistentVolumeClaims(r.cfg.Namespace).Get(octx, op.PVC, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("reading pvc %s: %w", op.PVC, err)
	}
	failures, err := watchFailures(octx, r.cfg.Client, r.cfg.Namespace, pvc.UID)
	if err != nil {
		if octx.Err() != nil {
			return ctx.Err()
		}
		r.warn(ctx, obj, fmt.Sprintf("cannot follow the events of pvc %s (%v): resize failures are detected from its status only", op.PVC, err))
	}

	if err := r.unchanged(nil); err != nil {
		return err
	}
	if req, ok := requestOf(pvc); !ok || req.Cmp(size) < 0 || (op.Action == ActionRetry && req.Cmp(size) != 0) {
		c.Status, c.Patched = ClaimPatched, true
		if err := r.save(ctx, fmt.Sprintf("raising the request of pvc %s to %s", op.PVC, r.plan.Size)); err != nil {
			return err
		}
		if err := r.patchRequest(octx, r.cfg.Namespace, op.PVC, pvc.UID, r.plan.Size, false); err != nil {
			return fmt.Errorf("raising the request of pvc %s to %s: %w", op.PVC, r.plan.Size, err)
		}
		r.res.Changed = true
		msg := fmt.Sprintf("requested %s for pvc %s (was %s)", r.plan.Size, op.PVC, show(req, ok))
		r.stepEvent(KindPVCPatched, progress.Info, obj, msg)
		r.event(ctx, corev1.EventTypeNormal, ReasonRequested, msg)
	} else if c.Status == ClaimPending {
		c.Status = ClaimPatched
	}

	if err := r.waitPVC(octx, op.PVC, expandedGate(op.PVC, size, failures)); err != nil {
		return r.resizeError(ctx, op, err, untouched)
	}
	pvc, err = r.cfg.Client.CoreV1().PersistentVolumeClaims(r.cfg.Namespace).Get(octx, op.PVC, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("reading pvc %s: %w", op.PVC, err)
	}
	stage, _ := ResizeStage(pvc, size)
	pod := r.tracker.Snapshot().Pod(op.Pod)

	if c.RestartedPod != "" && (pod == nil || pod.UID != c.RestartedPod) {
		// An earlier run restarted it already: never twice.
		if err := r.waitReplaced(octx, op, c.RestartedPod, failures); err != nil {
			return r.resizeError(ctx, op, err, untouched)
		}
		return r.verified(ctx, octx, op, c, true)
	}
	if stage == StageDone {
		if r.params.Restart == RestartAlways && c.Patched && c.RestartedPod == "" && pod != nil {
			return r.restart(ctx, octx, op, c, failures, untouched)
		}
		return r.verified(ctx, octx, op, c, false)
	}

	// Only the node's file system resize is left.
	if r.params.Restart == RestartAlways && pod != nil {
		return r.restart(ctx, octx, op, c, failures, untouched)
	}
	if pod == nil {
		// The pod that will mount the claim does not exist yet; when the
		// controller creates it, it finishes the resize.
		if err := r.waitTracker(octx, wait.PodReadyAtRevision(op.Pod, "")); err != nil {
			return err
		}
		if err := r.waitPVC(octx, op.PVC, capacityGate(op.PVC, size, failures)); err != nil {
			return r.resizeError(ctx, op, err, untouched)
		}
		return r.verified(ctx, octx, op, c, false)
	}
	grace := r.params.onlineResizeWait()
	r.stepEvent(KindWaiting, progress.Info, obj, fmt.Sprintf("volume expanded%s; waiting up to %s for the node to grow the file system while pod %s runs", describeResize(pvc), grace, op.Pod))
	gctx, gcancel := context.WithTimeout(octx, grace)
	err = r.waitPVC(gctx, op.PVC, capacityGate(op.PVC, size, failures))
	gcancel()
	var timeout *wait.TimeoutError
	switch {
	case err == nil:
		return r.verified(ctx, octx, op, c, false)
	case !errors.As(err, &timeout) || octx.Err() != nil:
		return r.resizeError(ctx, op, err, untouched)
	case r.params.Restart == RestartNever:
		return r.awaitingRestart(ctx, op, c)
	}
	r.stepEvent(KindWaiting, progress.Info, obj, fmt.Sprintf("the file system resize did not finish online within %s: it waits for pod %s to restart", grace, op.Pod))
	return r.restart(ctx, octx, op, c, failures, untouched)
}

// restart deletes the pod once every other pod is Ready, records the old
// UID first, and waits for its replacement and the capacity.
func (r *run) restart(ctx, octx context.Context, op OrdinalPlan, c *ClaimState, failures *failureWatch, untouched []string) error {
	obj := "pod/" + op.Pod
	if err := r.waitTracker(octx, othersReady(r.cfg.Name, op.Pod)); err != nil {
		return fmt.Errorf("not restarting pod %s while another pod is not Ready: %w", op.Pod, err)
	}
	if err := r.unchanged(nil); err != nil {
		return err
	}
	pod := r.tracker.Snapshot().Pod(op.Pod)
	if pod == nil {
		return r.verifiedAfterStart(ctx, octx, op, c, failures, untouched)
	}
	uid := pod.UID
	c.Status, c.RestartedPod = ClaimRestarting, uid
	if err := r.save(ctx, fmt.Sprintf("restarting pod %s (uid %s) to finish the file system resize of pvc %s", op.Pod, uid, op.PVC)); err != nil {
		return err
	}
	how, err := r.removePod(ctx, octx, op.Pod, uid)
	if err != nil {
		return err
	}
	r.res.Changed = true
	r.res.Restarted = append(r.res.Restarted, op.Pod)
	msg := fmt.Sprintf("%s pod %s so that its replacement mounts pvc %s and finishes the file system resize", how, op.Pod, op.PVC)
	r.stepEvent(KindPodRestarting, progress.Info, obj, msg)
	r.event(ctx, corev1.EventTypeNormal, ReasonPodRestarted, msg)
	if err := r.waitReplaced(octx, op, uid, failures); err != nil {
		return r.resizeError(ctx, op, err, untouched)
	}
	return r.verified(ctx, octx, op, c, true)
}

// removePod evicts the pod, so PodDisruptionBudgets hold (waiting while
// one refuses, within the ordinal's time), or deletes it with
// --disable-eviction. It returns the verb for messages. A budget that
// still refuses at the end leaves the pod untouched and the record
// resumable.
func (r *run) removePod(ctx, octx context.Context, pod string, uid types.UID) (string, error) {
	if r.params.DisableEviction {
		err := r.cfg.Client.CoreV1().Pods(r.cfg.Namespace).Delete(octx, pod, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &uid}})
		if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
			return "", fmt.Errorf("deleting pod %s: %w", pod, err)
		}
		return "deleted", nil
	}
	ev := kube.Evictor{Client: r.cfg.Client, Retry: r.params.EvictionRetry, Blocked: func(budgets []string, message string) {
		msg := fmt.Sprintf("waiting to evict pod %s: %s does not allow it now (%s)", pod, budgetList(budgets), message)
		r.stepEvent(KindEvictionBlocked, progress.Warning, "pod/"+pod, msg)
		r.event(ctx, corev1.EventTypeWarning, ReasonEvictionBlocked, msg)
	}}
	err := ev.Evict(octx, r.cfg.Namespace, pod, uid)
	var blocked *kube.EvictionBlockedError
	if errors.As(err, &blocked) {
		return "", &AttentionError{Err: err,
			Hint: fmt.Sprintf("pod %s and its claim are as they were; when %s allows a disruption (kubectl get pdb -n %s), run the same command again to continue from this ordinal, or add --disable-eviction to delete the pod regardless of the budget",
				pod, budgetList(blocked.Budgets), r.cfg.Namespace)}
	}
	if err != nil {
		return "", err
	}
	return "evicted", nil
}

func budgetList(budgets []string) string {
	if len(budgets) == 0 {
		return "a PodDisruptionBudget"
	}
	return "PodDisruptionBudget " + strings.Join(budgets, ", ")
}

// verifiedAfterStart waits for a missing pod to be created and Ready, which
// finishes the resize, then verifies.
func (r *run) verifiedAfterStart(ctx, octx context.Context, op OrdinalPlan, c *ClaimState, failures *failureWatch, untouched []string) error {
	if err := r.waitTracker(octx, wait.PodReadyAtRevision(op.Pod, "")); err != nil {
		return err
	}
	if err := r.waitPVC(octx, op.PVC, capacityGate(op.PVC, r.params.Size, failures)); err != nil {
		return r.resizeError(ctx, op, err, untouched)
	}
	return r.verified(ctx, octx, op, c, false)
}

// waitReplaced waits for the pod that replaced oldUID to be Ready and for
// the claim's capacity.
func (r *run) waitReplaced(ctx context.Context, op OrdinalPlan, oldUID types.UID, failures *failureWatch) error {
	if err := r.waitTracker(ctx, wait.PodReplacedReady(op.Pod, oldUID, ""), replacementNotFailing(op.Pod, oldUID)); err != nil {
		return err
	}
	r.stepEvent(KindPodReady, progress.Info, "pod/"+op.Pod, fmt.Sprintf("pod %s is back and Ready", op.Pod))
	return r.waitPVC(ctx, op.PVC, capacityGate(op.PVC, r.params.Size, failures))
}

// verified checks the end state of an ordinal (capacity, pod Ready, and
// the engine's health after a restart) and records it.
func (r *run) verified(ctx, octx context.Context, op OrdinalPlan, c *ClaimState, restarted bool) error {
	if err := r.waitPVC(octx, op.PVC, capacityGate(op.PVC, r.params.Size, nil)); err != nil {
		return err
	}
	if err := r.waitTracker(octx, wait.PodReadyAtRevision(op.Pod, "")); err != nil {
		return err
	}
	if restarted && r.plan.engine != nil {
		gate := plugins.HealthGate(r.plan.engine, plugins.Target{Exec: r.cfg.Exec, Timeout: r.cfg.EngineTimeout}, plugins.HealthOptions{}, 0)
		if err := r.waitTracker(octx, gate); err != nil {
			return fmt.Errorf("after restarting pod %s: %w", op.Pod, err)
		}
	}
	c.Status = ClaimVerified
	msg := fmt.Sprintf("pvc %s has %s and pod %s is Ready", op.PVC, r.plan.Size, op.Pod)
	if err := r.save(ctx, "verified: "+msg); err != nil {
		return err
	}
	r.res.Expanded = append(r.res.Expanded, op.PVC)
	r.stepEvent(KindPVCResized, progress.Success, "pvc/"+op.PVC, msg)
	r.event(ctx, corev1.EventTypeNormal, ReasonExpanded, msg)
	return nil
}

// awaitingRestart leaves a claim whose file system resize waits for a
// restart that --restart never forbids.
func (r *run) awaitingRestart(ctx context.Context, op OrdinalPlan, c *ClaimState) error {
	c.Status = ClaimAwaitingRestart
	msg := fmt.Sprintf("pvc %s: the volume is expanded but the file system resize waits for pod %s to restart (--restart never); restart it when it is safe: kubectl delete pod %s -n %s",
		op.PVC, op.Pod, op.Pod, r.cfg.Namespace)
	if err := r.save(ctx, msg); err != nil {
		return err
	}
	r.res.AwaitingRestart = append(r.res.AwaitingRestart, op.PVC)
	r.stepEvent(KindAwaitingRestart, progress.Warning, "pvc/"+op.PVC, msg)
	r.event(ctx, corev1.EventTypeWarning, ReasonAwaitingRestart, msg)
	return nil
}

// resizeError turns a failed wait into the run's error: a failed resize
// stops the sequence with what to do; other errors pass through.
func (r *run) resizeError(ctx context.Context, op OrdinalPlan, err error, untouched []string) error {
	var failed *wait.GateFailedError
	if !errors.As(err, &failed) || !strings.HasPrefix(failed.Object, "pvc ") {
		var timeout *wait.TimeoutError
		if errors.As(err, &timeout) {
			return &AttentionError{Err: fmt.Errorf("ordinal %d: %w", op.Ordinal, err),
				Hint: fmt.Sprintf("nothing is undone; look at the claim and pod (kubectl describe pvc %s -n %s; kubectl describe pod %s -n %s), then run the same command again to continue from this ordinal",
					op.PVC, r.cfg.Namespace, op.Pod, r.cfg.Namespace)}
		}
		return err
	}
	capacity := "its current capacity"
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if pvc, gerr := r.cfg.Client.CoreV1().PersistentVolumeClaims(r.cfg.Namespace).Get(rctx, op.PVC, metav1.GetOptions{}); gerr == nil {
		q, ok := capacityOf(pvc)
		capacity = show(q, ok)
	}
	ferr := &ResizeFailedError{Namespace: r.cfg.Namespace, PVC: op.PVC, Size: r.plan.Size, Capacity: capacity, Reason: failed.Reason, Untouched: untouched}
	r.stepEvent(KindResizeFailed, progress.Failure, "pvc/"+op.PVC, fmt.Sprintf("resize of pvc %s to %s failed: %s", op.PVC, r.plan.Size, failed.Reason))
	r.event(rctx, corev1.EventTypeWarning, ReasonFailed, fmt.Sprintf("resize of pvc %s to %s failed: %s; the other claims were left untouched", op.PVC, r.plan.Size, failed.Reason))
	return ferr
}

func (r *run) waitPVC(ctx context.Context, name string, gates ...wait.Gate) error {
	err := wait.Waiter{Observer: r.observer()}.WaitPVC(ctx, r.cfg.Client, r.cfg.Namespace, name, gates...)
	if derr := r.unchanged(nil); derr != nil {
		return derr
	}
	return err
}

// waitTracker waits for gates on the StatefulSet's watch, stopping at once
// when someone else changes the StatefulSet.
func (r *run) waitTracker(ctx context.Context, gates ...wait.Gate) error {
	if r.base != nil {
		gates = append(gates, wait.NotChangedElsewhere(r.cfg.Name, r.base, "the expansion"))
	}
	err := wait.Waiter{Observer: r.observer()}.Wait(ctx, r.tracker, gates...)
	if derr := r.unchanged(nil); err != nil && derr != nil {
		return derr
	}
	return err
}

// othersReady passes when every desired pod but exclude exists and is
// Ready, so restarting exclude leaves the rest serving.
func othersReady(sts, exclude string) wait.Gate {
	return wait.NewGate("statefulset "+sts, "to have every pod but "+exclude+" Ready", func(_ context.Context, s wait.Snapshot) (wait.Verdict, string, error) {
		if s.StatefulSet == nil {
			return wait.NotYet, "statefulset does not exist", nil
		}
		var down []string
		for _, n := range ordinalRange(s.StatefulSet) {
			name := wait.PodName(sts, n)
			if name == exclude {
				continue
			}
			if p := s.Pod(name); p == nil || p.DeletionTimestamp != nil || !wait.IsPodReady(p) {
				down = append(down, name+" is "+wait.DescribePodState(p))
			}
		}
		if len(down) > 0 {
			return wait.NotYet, strings.Join(down, "; "), nil
		}
		return wait.Pass, "the other pods are Ready", nil
	})
}

// replacementNotFailing fails when the pod that replaced oldUID is
// crash-looping or cannot pull its image; the old pod is not judged.
func replacementNotFailing(name string, oldUID types.UID) wait.Gate {
	inner := wait.PodNotFailing(name, "")
	return wait.NewGate("pod "+name, "replacement not to be failing", func(ctx context.Context, s wait.Snapshot) (wait.Verdict, string, error) {
		if p := s.Pod(name); p == nil || p.UID == oldUID {
			return wait.Pass, "no replacement yet", nil
		}
		return inner.Check(ctx, s)
	})
}
