package rollout

import (
	"context"
	"fmt"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/kubectl-sts/kubectl-sts/pkg/progress"
	"github.com/kubectl-sts/kubectl-sts/pkg/wait"
	"github.com/kubectl-sts/kubectl-sts/plugins"
)

// Controller-paced steps.
//
// When a step's gates are exactly what the StatefulSet controller enforces
// before it replaces the next pod, holding the partition at the step's
// value until its gates pass costs one round trip through the API server
// and the controller per step and buys no safety. The rollout then moves
// the partition one step ahead as soon as the controller has begun the
// current step (its pod is gone, terminating or recreated), and still
// waits for each step's gates, records each step, and rolls back on
// failure.
//
// It rests on the controller's rolling update (pkg/controller/statefulset,
// stateful_set_control.go, in 1.32 and 1.37 alike): with OrderedReady pod
// management, updateStatefulSet first walks every replica in ordinal order
// (processReplica, monotonic) and returns, deleting nothing, while any pod
// is missing, terminating, not Running and Ready, or not yet available for
// minReadySeconds; only then does it delete the highest pod at or above the
// partition that is not on the update revision, one pod where the
// effective maxUnavailable is 1 (updateStatefulSetAfterInvariantEstablished
// where the MaxUnavailableStatefulSet feature is on). So with the partition
// one step ahead, the next pod is replaced only once the current one is
// Running and Ready (what the readiness gate checks, and a little more),
// and a pod that never becomes Ready stops the controller as the held
// partition would: the rollback finds the pods it would have found.
//
// Parallel pod management is not paced: there processReplica does not
// wait for unready pods, and in 1.37 (MaxUnavailableStatefulSet on) the
// rolling update first deletes every pod at or above the partition that
// is unavailable on the old revision, whatever the budget and whatever
// state the updated pods are in, so a partition one step ahead could
// replace a pod that the held partition would not.

// Pacing says how the steps of a rollout advance.
type Pacing struct {
	// ControllerPaced: the partition moves one step ahead and the
	// StatefulSet controller holds each next pod until the one before it
	// is Ready.
	ControllerPaced bool `json:"controllerPaced"`
	// Message says how the steps advance and, when they are not
	// controller-paced, why.
	Message string `json:"message"`
}

// pacingOf decides whether the steps of st can be controller-paced on a
// StatefulSet with policy, with engine resolved for its gates; reason says
// why not.
func pacingOf(st *State, policy appsv1.PodManagementPolicyType, engine plugins.Engine) (ok bool, reason string) {
	g := st.Gates
	pods := int32(0)
	if m := st.Plan.MaxUnavailable; m != nil {
		pods = m.Pods
	}
	multi := false
	for _, s := range st.Plan.Steps[min(st.Current, len(st.Plan.Steps)):] {
		if len(s.Pods) != 1 {
			multi = true
		}
	}
	switch {
	case len(st.Plan.Steps)-st.Current < 2:
		return false, "no step follows another"
	case engine != nil:
		return false, fmt.Sprintf("the %s engine's health gate runs between steps", engine.Name())
	case g.Soak > 0:
		return false, "--soak holds each step"
	case g.Exec != "":
		return false, "--gate-exec runs between steps"
	case g.Command != "":
		return false, "--gate-cmd runs between steps"
	case len(st.PauseAfter) > 0:
		return false, "the rollout pauses between steps"
	case multi:
		return false, "a step moves more than one pod"
	case pods != 1:
		return false, "the controller's budget (maxUnavailable) is not one pod"
	case policy == appsv1.ParallelPodManagement:
		return false, "with podManagementPolicy Parallel the controller does not wait for an updated pod to be Ready before it replaces an unavailable one"
	case st.Handoff != nil:
		return false, "the leader is restarted in place before a step"
	}
	return true, ""
}

// pacingText is the plan's line on how steps advance.
func pacingText(ok bool, reason string) string {
	if ok {
		return "steps are controller-paced: once the controller has begun a step's pod, the partition moves one step ahead; " +
			"the StatefulSet controller holds each next pod until the one before it is Ready, and each step's gates are still checked and recorded"
	}
	if reason == "no step follows another" {
		return "the partition moves once; its gates are checked"
	}
	return "each step waits for its gates before the partition moves (not controller-paced: " + reason + ")"
}

// planPacing fills in pv's pacing from st.
func planPacing(pv *Preview, st *State, engine plugins.Engine) {
	ok, reason := pacingOf(st, appsv1.PodManagementPolicyType(pv.PodManagementPolicy), engine)
	pv.Pacing = Pacing{ControllerPaced: ok, Message: pacingText(ok, reason)}
}

// controllerPaced reports whether the current step may move the partition
// ahead for the next one.
func (x *execution) controllerPaced() bool {
	if x.st.Stage != StageSteps || x.tracker == nil {
		return false
	}
	sts := x.tracker.Snapshot().StatefulSet
	if sts == nil {
		return false
	}
	ok, _ := pacingOf(x.st, sts.Spec.PodManagementPolicy, x.engine)
	return ok
}

// goAhead waits, within timeout, until the controller has begun step i
// (its pod is gone, terminating or on the new revision), failing as the
// step's own wait does on a failing pod, an abort or someone else's
// change; then it moves the partition to step i+1's. It returns how long
// it waited; an error is the outcome of the run.
func (x *execution) goAhead(ctx context.Context, i int, timeout time.Duration) (time.Duration, error) {
	r, st := x.r, x.st
	step := st.Plan.Steps[i]
	n, total := i+1, len(st.Plan.Steps)
	begun := time.Now()
	updated := UpdatedPods(r.Name, st.Plan.Replicas, st.Plan.OrdinalsStart, step.Partition)
	gates := []wait.Gate{replacedGate(step.Pods, st.To), wait.PodsNotFailing(updated, st.To), abortGate(r.Name, st.ID), driftGate(r.Name, x.base)}
	if err := (wait.Waiter{Timeout: timeout, Interval: r.interval()}).Wait(ctx, x.tracker, gates...); err != nil {
		return time.Since(begun), x.failed(ctx, err)
	}
	next := st.Plan.Steps[i+1]
	before := Partition(x.base)
	gen, err := x.lowerPartition(ctx, i+1)
	if err != nil {
		return time.Since(begun), err
	}
	x.ahead, x.aheadGen = n+1, gen
	if st.Steps[i+1].Started.IsZero() {
		st.Steps[i+1].Started = r.now()
	}
	verb := "set"
	if before <= next.Partition {
		verb = "was already"
	}
	msg := fmt.Sprintf("partition %d %s ahead for step %d of %d: %s is being replaced, and the controller replaces %s once %s is Ready",
		next.Partition, verb, n+1, total, strings.Join(step.Pods, ", "), strings.Join(next.Pods, ", "), strings.Join(step.Pods, ", "))
	x.emitStep(progress.Event{Kind: "partition-ahead", Object: "statefulset/" + r.Name, Message: msg})
	return time.Since(begun), nil
}

// replacedGate passes once the controller has begun replacing each of
// pods: the pod is gone, terminating, or on revision.
func replacedGate(pods []string, revision string) wait.Gate {
	return wait.NewGate("pods "+strings.Join(pods, ", "), "to be replaced by the controller", func(_ context.Context, s wait.Snapshot) (wait.Verdict, string, error) {
		for _, name := range pods {
			p := s.Pod(name)
			if p != nil && p.DeletionTimestamp == nil && wait.PodRevision(p) != revision {
				return wait.NotYet, fmt.Sprintf("pod %s is still on revision %s", name, wait.PodRevision(p)), nil
			}
		}
		return wait.Pass, "replaced", nil
	})
}

// holdFrontier takes back a partition set ahead for the next step while
// the controller has not begun that step, so that while no run watches
// the gates nothing moves beyond the step in progress. It returns the
// partition it set, or -1 when it left the partition as it was. The write
// applies only if the StatefulSet's spec is still the one this run last
// wrote.
func (x *execution) holdFrontier(ctx context.Context) int32 {
	st := x.st
	i := st.Current
	if st.Stage != StageSteps || i+1 >= len(st.Plan.Steps) || x.tracker == nil || x.base == nil {
		return -1
	}
	// Set ahead by this run, or by a run killed before it (found at the
	// next step's partition on resume).
	if x.ahead != i+2 && !x.controllerPaced() {
		return -1
	}
	snap := x.tracker.Snapshot()
	sts := snap.StatefulSet
	hold := st.Plan.Steps[i].Partition
	if sts == nil || drift(x.base, sts) != "" {
		// Someone else's change is theirs to settle: the run writes
		// nothing more.
		return -1
	}
	// The watch may not show the run's own last write yet.
	live := Partition(x.base)
	if sts.Generation > x.base.Generation {
		live = Partition(sts)
	}
	if live >= hold || live != st.Plan.Steps[i+1].Partition {
		return -1
	}
	for _, name := range st.Plan.Steps[i+1].Pods {
		// The controller has begun the next step: holding its pod back
		// now would only restart it on the old revision.
		if p := snap.Pod(name); p == nil || p.DeletionTimestamp != nil || wait.PodRevision(p) == st.To {
			return -1
		}
	}
	updated, err := x.patch(ctx, types.JSONPatchType, conditionalPartitionPatch(x.base, hold))
	if err != nil {
		x.emit(progress.Event{Kind: "warning", Level: progress.Warning, Message: fmt.Sprintf(
			"could not raise the partition back to %d (it stays at %d, set ahead for step %d, so the controller replaces %s once %s is Ready): %v",
			hold, live, i+2, strings.Join(st.Plan.Steps[i+1].Pods, ", "), strings.Join(st.Plan.Steps[i].Pods, ", "), err)})
		return -1
	}
	x.base, x.ahead = updated, 0
	x.emitStep(progress.Event{Kind: "partition-held", Object: "statefulset/" + x.r.Name, Message: fmt.Sprintf(
		"partition raised back to %d, set ahead for step %d before: %s stays as it is", hold, i+2, strings.Join(st.Plan.Steps[i+1].Pods, ", "))})
	return hold
}
