package rollout

import (
	"context"
	"fmt"
	"slices"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/kubectl-sts/kubectl-sts/pkg/kube"
	"github.com/kubectl-sts/kubectl-sts/pkg/progress"
	"github.com/kubectl-sts/kubectl-sts/pkg/wait"
	"github.com/kubectl-sts/kubectl-sts/plugins"
)

// MaxLeaderRestarts bounds the in-place restarts before one step that try
// to move the leadership of a plugins.LeaderLastEngine onto a server
// already on the new revision.
const MaxLeaderRestarts = 3

// Event reasons of the leader handoff.
const (
	ReasonLeaderRestart = "RolloutLeaderRestart"
	ReasonLeaderMoved   = "RolloutLeaderMoved"
)

// LeaderPlan is where the leader of a consensus engine that must be rolled
// last stands in the plan, as read when the plan was made.
type LeaderPlan struct {
	// Leader is the pod that leads; "" when it could not be read.
	Leader string `json:"leader,omitempty"`
	// Step is the 1-based step that rolls the leader; 0 when no step does.
	Step int `json:"step,omitempty"`
	// RestartBefore is the 1-based step before which the leader's pod is
	// restarted in place so that the leadership moves; 0 when not needed.
	RestartBefore int    `json:"restartBefore,omitempty"`
	Message       string `json:"message"`
}

// HandoffState records a leader restart in progress, so that a resumed
// run waits for it and reads the leadership again instead of restarting
// blindly.
type HandoffState struct {
	// Step is the 1-based step the restart comes before.
	Step    int       `json:"step"`
	Pod     string    `json:"pod"`
	UID     types.UID `json:"uid"`
	Attempt int       `json:"attempt"`
}

// stepOf returns the index of the step from index from on that moves pod,
// or -1.
func stepOf(plan Plan, from int, pod string) int {
	for i := from; i < len(plan.Steps); i++ {
		if slices.Contains(plan.Steps[i].Pods, pod) {
			return i
		}
	}
	return -1
}

// oldBelow returns the voters below the leader's ordinal that are not on
// the new revision: step would roll the leader before them.
func oldBelow(l plugins.Leadership, updated func(pod string) bool) []string {
	var out []string
	for _, v := range l.Voters {
		if v.Pod != "" && v.Pod != l.Leader && v.Ordinal < l.LeaderOrdinal && !updated(v.Pod) {
			out = append(out, v.Pod)
		}
	}
	slices.Sort(out)
	return out
}

// leaderMisplaced says why step must not roll the leader as it stands: it
// leads, is not on the new revision, the step moves it, and a voter below
// it would still be on the old revision. "" when the step may go on.
func leaderMisplaced(l plugins.Leadership, step Step, updated func(pod string) bool) string {
	if l.Leader == "" || updated(l.Leader) || !slices.Contains(step.Pods, l.Leader) {
		return ""
	}
	if old := oldBelow(l, updated); len(old) > 0 {
		return fmt.Sprintf("%s leads and this step would roll it while %s %s still on the old revision", l.Leader, strings.Join(old, ", "), isAre(len(old)))
	}
	return ""
}

// handoffPending says, after a leader restart, why the leadership is not
// yet where it should be: no leader, or the step would still roll the
// leader first, or the leader is on the old revision although a synced
// voter on the new revision could lead. "" when the step may go on.
func handoffPending(l plugins.Leadership, step Step, updated func(pod string) bool) string {
	if l.Leader == "" {
		return "no server leads"
	}
	if why := leaderMisplaced(l, step, updated); why != "" {
		return why
	}
	if updated(l.Leader) || len(oldBelow(l, updated)) == 0 {
		// On the new revision, or rolled last anyway.
		return ""
	}
	for _, v := range l.Voters {
		if v.Pod != "" && v.Healthy && updated(v.Pod) {
			return fmt.Sprintf("%s on the old revision leads although %s on the new revision is synced", l.Leader, v.Pod)
		}
	}
	return ""
}

func isAre(n int) string {
	if n == 1 {
		return "is"
	}
	return "are"
}

func podsAt(pods map[string]*corev1.Pod, revision string) func(string) bool {
	return func(name string) bool {
		p := pods[name]
		return revision != "" && p != nil && p.DeletionTimestamp == nil && wait.PodRevision(p) == revision
	}
}

// planLeader reads where the leader is and says in which step it is
// rolled, and whether an in-place restart must move the leadership first.
func (r *Runner) planLeader(ctx context.Context, e plugins.LeaderLastEngine, sts *appsv1.StatefulSet, plan Plan, done int, to, container string) *LeaderPlan {
	pods, err := r.listPods(ctx, sts)
	if err != nil {
		return &LeaderPlan{Message: fmt.Sprintf("could not list the pods to find the %s leader (%v); the rollout reads it before every step", e.Name(), err)}
	}
	t := plugins.Target{StatefulSet: sts, Pods: wait.Snapshot{StatefulSet: sts, Pods: pods}.OrderedPods(), Exec: r.Exec, Container: container}
	l, err := e.Leadership(ctx, t)
	if err != nil || l.Leader == "" {
		why := "no server leads"
		if err != nil {
			why = err.Error()
		}
		return &LeaderPlan{Message: fmt.Sprintf("the %s leader could not be read (%s); the rollout reads it again before every step", e.Name(), why)}
	}
	return leaderPlanFor(l, plan, done, podsAt(pods, to), e.ElectionRule())
}

// leaderPlanFor works out the LeaderPlan from a leadership read at plan
// time: pods are updated when updated says so or an earlier step moves
// them.
func leaderPlanFor(l plugins.Leadership, plan Plan, done int, updatedNow func(string) bool, rule string) *LeaderPlan {
	lp := &LeaderPlan{Leader: l.Leader}
	total := len(plan.Steps)
	k := stepOf(plan, done, l.Leader)
	if updatedNow(l.Leader) || k < 0 {
		lp.Message = fmt.Sprintf("%s leads and is not rolled by this plan: no extra restart", l.Leader)
		return lp
	}
	lp.Step = k + 1
	updated := func(pod string) bool {
		if updatedNow(pod) {
			return true
		}
		for i := done; i < k; i++ {
			if slices.Contains(plan.Steps[i].Pods, pod) {
				return true
			}
		}
		return false
	}
	why := leaderMisplaced(l, plan.Steps[k], updated)
	if why == "" {
		lp.Message = fmt.Sprintf("%s leads and is rolled last, in step %d of %d, when every other voter is on the new revision: no extra restart", l.Leader, k+1, total)
		return lp
	}
	lp.RestartBefore = k + 1
	var target []string
	for _, v := range l.Voters {
		if v.Pod != "" && v.Pod != l.Leader && updated(v.Pod) {
			target = append(target, v.Pod)
		}
	}
	slices.Sort(target)
	lp.Message = fmt.Sprintf("%s leads and step %d of %d would roll it while %s %s still on the old revision. %s, so before step %d the rollout restarts pod %s in place, on its current revision (one extra restart, recorded in the rollout record and as an Event), and waits until another server leads and all are synced",
		l.Leader, k+1, total, strings.Join(oldBelow(l, updated), ", "), isAre(len(oldBelow(l, updated))), rule, k+1, l.Leader)
	if len(target) > 0 {
		lp.Message += fmt.Sprintf("; the new leader must be a server on the new revision (%s), else the restart is repeated (at most %d in all) before the rollout stops; %s is then rolled as a follower", strings.Join(target, ", "), MaxLeaderRestarts, l.Leader)
	} else {
		lp.Message += fmt.Sprintf("; no server is on the new revision before step %d, so the leadership goes to one on the old revision, and may have to move once more before that server's own step", k+1)
	}
	return lp
}

// leaderLast runs before step i lowers the partition: when the engine's
// leader must be rolled last and step i would roll it first, it restarts
// the leader's pod in place until another server leads, preferably one on
// the new revision. A restart recorded by an interrupted run is waited for,
// and the leadership read again, before anything else is restarted.
func (x *execution) leaderLast(ctx context.Context, i int) error {
	e, ok := x.engine.(plugins.LeaderLastEngine)
	if !ok {
		return nil
	}
	r, st := x.r, x.st
	step := st.Plan.Steps[i]
	n, total := i+1, len(st.Plan.Steps)
	attempt := 0
	if h := st.Handoff; h != nil && h.Step == n {
		attempt = h.Attempt
		if p := x.tracker.Snapshot().Pod(h.Pod); p == nil || p.UID != h.UID || p.DeletionTimestamp != nil {
			if err := x.settleRestart(ctx, e, h.Pod, h.UID); err != nil {
				return err
			}
		}
	}
	for {
		snap := x.tracker.Snapshot()
		updated := podsAt(snap.Pods, st.To)
		t := plugins.Target{StatefulSet: snap.StatefulSet, Pods: snap.OrderedPods(), Exec: r.Exec, Container: st.Gates.ExecContainer}
		l, err := e.Leadership(ctx, t)
		if err != nil {
			return fmt.Errorf("reading the %s leader before step %d of %d: %w", e.Name(), n, total, err)
		}
		why := leaderMisplaced(l, step, updated)
		if attempt > 0 {
			why = handoffPending(l, step, updated)
		}
		if sts := snap.StatefulSet; why != "" && sts != nil && Partition(sts) <= step.Partition {
			// A run stopped between this step's partition patch and its
			// record: the controller is already rolling the step's pods, and
			// a restart now would only roll the leader sooner.
			x.emitStep(progress.Event{Kind: "warning", Level: progress.Warning, Message: fmt.Sprintf(
				"step %d of %d: %s, but the partition is already %d and the controller is rolling the step's pods: the leader is not moved first", n, total, why, Partition(sts))})
			return nil
		}
		if why == "" {
			if attempt > 0 {
				rev := "the old revision"
				if updated(l.Leader) {
					rev = "revision " + st.To
				}
				msg := fmt.Sprintf("step %d of %d: %s leads now, on %s, with every voter synced, after %d restart(s) of the leader in place", n, total, l.Leader, rev, attempt)
				st.Handoff = nil
				if err := x.save(ctx, msg); err != nil {
					return err
				}
				x.emit(progress.Event{Step: n, Steps: total, Kind: "leader-moved", Level: progress.Success, Object: "pod/" + l.Leader, Message: msg})
				x.event(ctx, corev1.EventTypeNormal, ReasonLeaderMoved, msg)
			}
			return nil
		}
		if attempt >= MaxLeaderRestarts {
			return needsAttention("step %d of %d not started: %s after %d restarts of the leader in place; nothing else was changed and the partition holds. "+
				"Move the leadership by hand (restart the pod that leads with kubectl delete pod), check kubectl sts status %s, then run kubectl sts rollout resume %s",
				n, total, why, attempt, r.Name, r.Name)
		}
		pod := snap.Pod(l.Leader)
		if pod == nil {
			return fmt.Errorf("the %s leader %s has no pod", e.Name(), l.Leader)
		}
		attempt++
		st.Handoff = &HandoffState{Step: n, Pod: pod.Name, UID: pod.UID, Attempt: attempt}
		msg := fmt.Sprintf("step %d of %d: %s; restarting pod %s in place on revision %s so that another server takes the leadership (restart %d of at most %d)",
			n, total, why, pod.Name, wait.PodRevision(pod), attempt, MaxLeaderRestarts)
		if err := x.save(ctx, msg); err != nil {
			return err
		}
		x.emit(progress.Event{Step: n, Steps: total, Kind: "leader-restart", Level: progress.Warning, Object: "pod/" + pod.Name, Message: msg})
		x.event(ctx, corev1.EventTypeNormal, ReasonLeaderRestart, msg)
		ev := kube.Evictor{Client: r.Client, Blocked: func(budgets []string, message string) {
			x.emit(progress.Event{Step: n, Steps: total, Kind: "warning", Level: progress.Warning, Object: "pod/" + pod.Name,
				Message: fmt.Sprintf("the eviction of %s is refused by PodDisruptionBudget %s: %s; retrying", pod.Name, strings.Join(budgets, ", "), message)})
		}}
		ectx, cancel := context.WithTimeout(ctx, st.Gates.StepTimeout)
		err = ev.Evict(ectx, r.Namespace, pod.Name, pod.UID)
		cancel()
		if err != nil {
			return err
		}
		if err := x.settleRestart(ctx, e, pod.Name, pod.UID); err != nil {
			return err
		}
	}
}

// settleRestart waits until pod, restarted from uid, is Ready again (on
// whatever revision the controller gives a pod below the partition) and
// the engine reports the ensemble healthy.
func (x *execution) settleRestart(ctx context.Context, e plugins.Engine, pod string, uid types.UID) error {
	st := x.st
	ready := wait.PodReplacedReady(pod, uid, "")
	t := plugins.Target{Exec: x.r.Exec, Container: st.Gates.ExecContainer}
	health := plugins.HealthGate(e, t, plugins.HealthOptions{MaxLagBytes: st.Gates.MaxLagBytes, MaxLagSeconds: st.Gates.MaxLagSeconds}, x.r.interval())
	gates := []wait.Gate{ready, abortGate(x.r.Name, st.ID), driftGate(x.r.Name, x.base)}
	if err := x.wait(ctx, st.Gates.StepTimeout, gates...); err != nil {
		return fmt.Errorf("waiting for pod %s to come back after its restart: %w", pod, err)
	}
	if err := x.wait(ctx, st.Gates.StepTimeout, health, abortGate(x.r.Name, st.ID)); err != nil {
		return fmt.Errorf("waiting for %s to elect a leader and sync after the restart of pod %s: %w", e.Name(), pod, err)
	}
	return nil
}

// failedHandoff handles a leader handoff that did not finish: an abort or
// someone else's change is handled as in a step; anything else stops the
// run with the record kept, to be resumed once the ensemble is healthy.
// Nothing of the step was rolled, so nothing is rolled back.
func (x *execution) failedHandoff(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return err
	}
	snap := x.tracker.Snapshot()
	if abortRequested(snap.StatefulSet, x.st.ID) {
		return x.abort(ctx)
	}
	if d := drift(x.base, snap.StatefulSet); d != "" {
		return x.changedElsewhere(d)
	}
	return err
}
