// Package rollout is the staged partition rollout of a StatefulSet: a
// plan of steps that lower the update partition from the highest ordinal
// down, health gates between steps, automatic rollback to the previous
// ControllerRevision on failure, pauses for approval, and a record in the
// cluster (pkg/journal) from which any process can resume, abort or undo
// it.
//
// The package is silent: it reports progress as typed events to a
// progress.Sink and records Kubernetes Events on the StatefulSet; the
// command layer renders.
package rollout

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"

	"github.com/kubectl-sts/kubectl-sts/pkg/journal"
	"github.com/kubectl-sts/kubectl-sts/pkg/kube"
	"github.com/kubectl-sts/kubectl-sts/pkg/progress"
	"github.com/kubectl-sts/kubectl-sts/pkg/wait"
	"github.com/kubectl-sts/kubectl-sts/plugins"
)

// Event reasons recorded on the StatefulSet.
const (
	ReasonStarted    = "RolloutStarted"
	ReasonResumed    = "RolloutResumed"
	ReasonApplied    = "RolloutTemplateApplied"
	ReasonStep       = "RolloutStep"
	ReasonStepPassed = "RolloutStepPassed"
	ReasonPaused     = "RolloutPaused"
	ReasonGateFailed = "RolloutGateFailed"
	ReasonRollback   = "RolloutRollback"
	ReasonPodDeleted = "RolloutPodDeleted"
	ReasonRolledBack = "RolloutRolledBack"
	ReasonFailed     = "RolloutFailed"
	ReasonAborted    = "RolloutAborted"
	ReasonSucceeded  = "RolloutSucceeded"
)

// finalWriteTimeout bounds the record's last write after an interruption.
const finalWriteTimeout = 10 * time.Second

// Runner runs the rollout workflows of one StatefulSet.
type Runner struct {
	Client    kubernetes.Interface
	Exec      kube.Executor
	Namespace string
	Name      string
	Journal   *journal.Journal
	// Events records Kubernetes Events on the StatefulSet; nil records none.
	Events kube.EventRecorder
	Sink   progress.Sink
	Now    func() time.Time
	// Engines resolves --engine; nil knows no engine.
	Engines *plugins.Registry
	// Server tells what discovery says about the API server; nil (or an
	// unknown version) skips the questions only a real server answers.
	Server func(context.Context) (kube.Server, error)
	// Local runs --gate-cmd commands; nil uses ShellRunner.
	Local CommandRunner
	// Prompt, when set, is called at a pause; the channel it returns is
	// closed when the person at the terminal approves. Without it a pause
	// ends the run with a *PausedError.
	Prompt func(ctx context.Context, step, steps int) <-chan struct{}
	// Interval is how often gates that consult outside state (commands,
	// engines) are evaluated; zero means wait.DefaultInterval.
	Interval time.Duration
}

func (r *Runner) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

func (r *Runner) interval() time.Duration {
	if r.Interval != 0 {
		return r.Interval
	}
	return wait.DefaultInterval
}

// execution is one run of a rollout, from Begin to Finish or release.
type execution struct {
	r       *Runner
	rec     *journal.Record
	st      *State
	rep     progress.Reporter
	tracker *wait.Tracker
	engine  plugins.Engine
	// base is the StatefulSet as the current step left it: any later
	// change of its spec is someone else's.
	base *appsv1.StatefulSet
	// closed is set once the record is finished (or paused): nothing is
	// left to release.
	closed bool
	// begun is the step number whose partition patch, journal write and
	// Event the previous step already sent, and nextGen the generation
	// that patch gave the StatefulSet.
	begun   int
	nextGen int64
	// ahead is the step number whose partition a controller-paced run
	// already set, before the step before it passed, and aheadGen the
	// generation that patch gave the StatefulSet.
	ahead    int
	aheadGen int64
	// events are Events being recorded beside the run's other requests;
	// the run waits for them before it returns.
	events sync.WaitGroup
}

// Run executes a prepared rollout (or undo) to its end: success, a
// pause, a rollback, an abort or an interruption. The outcomes other than
// success are *PausedError, *RolledBackError, *AbortedError and
// *NeedsAttentionError; an interrupted run (ctx cancelled) releases its
// lease and returns an error wrapping context.Canceled, and the next run
// resumes where it stopped.
func (r *Runner) Run(ctx context.Context, pv *Preview) error {
	rec, resumed, err := r.Journal.Begin(ctx, Operation, pv.state)
	if err != nil {
		return err
	}
	st := pv.state
	if resumed {
		var fresh State
		if err := rec.DecodeState(&fresh); err != nil {
			return err
		}
		if fresh.ID != st.ID {
			_ = r.Journal.Release(context.WithoutCancel(ctx), rec, "")
			return refuse("another rollout of statefulset %s was recorded since the plan was made; run the command again", r.Name)
		}
		if pv.Mode == ModeUndo {
			toUndo(&fresh, r.now())
			fresh.Gates.RollbackTimeout = st.Gates.RollbackTimeout
		}
		st = &fresh
	}
	x := &execution{r: r, rec: rec, st: st, rep: progress.Reporter{Sink: r.Sink, Operation: Operation, Now: r.Now}}
	return x.run(ctx, pv, resumed)
}

func (x *execution) run(ctx context.Context, pv *Preview, resumed bool) error {
	r := x.r
	held, done := r.Journal.Hold(ctx, x.rec, func(err error) {
		x.emit(progress.Event{Kind: "warning", Level: progress.Warning, Message: "renewing the lease of the rollout record: " + err.Error()})
	})
	err := done(x.drive(held, pv, resumed))
	x.events.Wait()
	return x.end(ctx, err)
}

func (x *execution) drive(ctx context.Context, pv *Preview, resumed bool) error {
	r, st := x.r, x.st
	tctx, cancel := context.WithCancel(ctx)
	defer cancel()
	x.tracker = wait.NewTracker(r.Client, r.Namespace, r.Name)
	if err := x.tracker.Start(tctx); err != nil {
		return err
	}
	sts := x.tracker.Snapshot().StatefulSet
	// Prepare checked this too; the StatefulSet may have changed since.
	if err := r.checkUnchanged(sts, st); err != nil {
		return err
	}
	if st.Stage != StageRollback {
		e, err := r.engine(sts, st.Gates.Engine)
		if err != nil {
			return err
		}
		x.engine = e
	}

	steps := len(st.Plan.Steps)
	switch {
	case pv.Mode == ModeUndo:
		msg := fmt.Sprintf("undo requested: rolling back statefulset %s to revision %s", r.Name, st.From)
		if err := x.save(ctx, msg); err != nil {
			return err
		}
		x.emit(progress.Event{Kind: "undo", Message: msg})
	case resumed:
		msg := fmt.Sprintf("resuming the rollout of revision %s at step %d of %d (%s)", orNew(st.To), st.StepNumber(), steps, st.Stage)
		if st.PausedAfter > 0 {
			msg = fmt.Sprintf("resuming the rollout of revision %s after the pause at step %d of %d", orNew(st.To), st.PausedAfter, steps)
			st.PausedAfter = 0
		}
		if err := x.save(ctx, msg); err != nil {
			return err
		}
		x.emit(progress.Event{Kind: "resumed", Message: msg})
		x.event(ctx, corev1.EventTypeNormal, ReasonResumed, msg)
	default:
		msg := fmt.Sprintf("staged rollout of revision %s in %d steps started by %s", orNew(st.To), steps, x.rec.Holder)
		x.emit(progress.Event{Kind: "started", Message: msg})
		x.event(ctx, corev1.EventTypeNormal, ReasonStarted, msg)
		for _, w := range pv.Warnings {
			x.emit(progress.Event{Kind: "warning", Level: progress.Warning, Message: w})
		}
		if pv.Mode == ModeTakeOver {
			if err := x.takeOver(ctx, pv.Hold); err != nil {
				return err
			}
		}
	}
	x.clearAnnotation(ctx, AnnotationAbort, st.ID)

	for {
		switch st.Stage {
		case StageApply:
			done, err := x.apply(ctx)
			if err != nil || done {
				return err
			}
		case StageSteps:
			if st.Current >= len(st.Plan.Steps) {
				st.Stage = StageFinish
				if err := x.save(ctx, ""); err != nil {
					return err
				}
				continue
			}
			if err := x.step(ctx); err != nil {
				return err
			}
		case StageFinish:
			return x.complete(ctx)
		case StageRollback:
			return x.rollback(ctx)
		default:
			return needsAttention("the rollout record of statefulset %s has an unknown stage %q", r.Name, st.Stage)
		}
	}
}

// end releases the lease of a run that did not reach an outcome, so the
// next run resumes at once.
func (x *execution) end(ctx context.Context, err error) error {
	if x.closed || err == nil {
		return err
	}
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), finalWriteTimeout)
	defer cancel()
	where := fmt.Sprintf("step %d of %d", x.st.StepNumber(), len(x.st.Plan.Steps))
	if x.st.Stage == StageRollback {
		where = "the rollback"
	}
	var lost *journal.LeaseLostError
	if errors.As(err, &lost) {
		msg := fmt.Sprintf("stopped during %s: %v", where, err)
		if lost.Holder == "" {
			// Nobody took over: giving the lease back is safe, as the write
			// applies only over this run's own last write.
			if rerr := x.r.Journal.Release(wctx, x.rec, msg); rerr != nil {
				msg += " (the lease stays until it expires)"
			}
		}
		x.emit(progress.Event{Kind: "interrupted", Level: progress.Warning, Message: msg})
		if lost.Holder != "" {
			return err
		}
		return fmt.Errorf("%w; the rollout is recorded at %s: run kubectl sts rollout resume %s to continue", err, where, x.r.Name)
	}
	// Nobody watches the gates until the rollout is resumed: a partition
	// set ahead goes back to the step in progress.
	x.holdFrontier(wctx)
	if ctx.Err() != nil && errors.Is(err, context.Canceled) {
		msg := fmt.Sprintf("interrupted during %s; the record is kept: run kubectl sts rollout resume %s to continue", where, x.r.Name)
		if rerr := x.r.Journal.Release(wctx, x.rec, msg); rerr != nil {
			msg += " (releasing the lease failed: " + rerr.Error() + "; the next run can take over once it expires)"
		}
		x.emit(progress.Event{Kind: "interrupted", Level: progress.Warning, Message: msg})
		return fmt.Errorf("%s: %w", msg, context.Canceled)
	}
	msg := fmt.Sprintf("stopped during %s: %v", where, err)
	if rerr := x.r.Journal.Release(wctx, x.rec, msg); rerr != nil {
		return fmt.Errorf("%w (releasing the lease of the rollout record failed too: %v)", err, rerr)
	}
	return fmt.Errorf("%w; the rollout is recorded at %s: fix the cause and run kubectl sts rollout resume %s to continue, or undo it with kubectl sts rollout undo %s",
		err, where, x.r.Name, x.r.Name)
}

func orNew(rev string) string {
	if rev == "" {
		return "(new)"
	}
	return rev
}

func (x *execution) emit(e progress.Event) { x.rep.Emit(e) }

// emitStep places an event in the current step, while steps run.
func (x *execution) emitStep(e progress.Event) {
	if x.st.Stage == StageSteps || x.st.Stage == StageFinish {
		e.Step, e.Steps = x.st.StepNumber(), len(x.st.Plan.Steps)
	}
	x.rep.Emit(e)
}

// event records a Kubernetes Event; failing to is only a warning.
func (x *execution) event(ctx context.Context, typ, reason, msg string) {
	r := x.r
	if r.Events == nil {
		return
	}
	uid := x.st.UID
	if err := r.Events.Event(ctx, kube.StatefulSetRef(r.Namespace, r.Name, uid), typ, reason, msg); err != nil && ctx.Err() == nil {
		x.emit(progress.Event{Kind: "warning", Level: progress.Warning, Message: "could not record an event on the statefulset: " + err.Error()})
	}
}

func (x *execution) save(ctx context.Context, msg string) error {
	return x.r.Journal.Save(ctx, x.rec, x.st, msg)
}

// finish ends the record with phase and returns outcome.
func (x *execution) finish(ctx context.Context, phase journal.Phase, outcome error) error {
	msg := "done"
	if outcome != nil {
		msg = outcome.Error()
	}
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), finalWriteTimeout)
	defer cancel()
	if err := x.r.Journal.Finish(wctx, x.rec, phase, msg); err != nil {
		if outcome == nil {
			return err
		}
		return fmt.Errorf("%w (recording the outcome failed: %v)", outcome, err)
	}
	x.closed = true
	return outcome
}

// patch applies a patch of type pt to the StatefulSet.
func (x *execution) patch(ctx context.Context, pt types.PatchType, data []byte) (*appsv1.StatefulSet, error) {
	sts, err := x.r.Client.AppsV1().StatefulSets(x.r.Namespace).Patch(ctx, x.r.Name, pt, data, metav1.PatchOptions{})
	if err != nil {
		return nil, fmt.Errorf("updating statefulset %s: %w", x.r.Name, err)
	}
	return sts, nil
}

// lowerPartitionFrom sets the partition to p only if the StatefulSet's
// spec is still the one of base (its generation): a change stored by
// someone else that the watch has not shown yet makes the write fail
// instead of going on from it. The run then stops having changed nothing
// more. A write that applied but whose answer was lost is recognised as the
// run's own.
func (x *execution) lowerPartitionFrom(ctx context.Context, base *appsv1.StatefulSet, p int32) (*appsv1.StatefulSet, error) {
	updated, err := x.patch(ctx, types.JSONPatchType, conditionalPartitionPatch(base, p))
	if err == nil {
		x.readBack(updated)
		return updated, nil
	}
	if ctx.Err() != nil {
		return nil, err
	}
	got, gerr := x.r.getStatefulSet(ctx)
	if gerr != nil {
		return nil, err
	}
	if got.UID != base.UID {
		return nil, x.changedElsewhere("it was deleted and recreated")
	}
	if got.Generation > base.Generation && drift(withPartition(base, p), got) == "" {
		x.readBack(got)
		return got, nil
	}
	if d := drift(base, got); d != "" {
		return nil, x.changedElsewhere(d)
	}
	return nil, err
}

func (x *execution) setPartition(ctx context.Context, p int32) (*appsv1.StatefulSet, error) {
	sts, err := x.patch(ctx, types.StrategicMergePatchType, partitionPatch(p))
	x.readBack(sts)
	if err == nil {
		// The run's own write: the watch may show it later, and it must
		// not then pass for someone else's change.
		x.base = sts
	}
	return sts, err
}

// takeOver raises the partition so that only the pods already on the new
// revision stay there; the steps then continue from them.
func (x *execution) takeOver(ctx context.Context, hold int32) error {
	if _, err := x.setPartition(ctx, hold); err != nil {
		return err
	}
	msg := fmt.Sprintf("took over the rollout: partition raised to %d to hold the pods not yet on revision %s", hold, x.st.To)
	x.emit(progress.Event{Kind: "take-over", Level: progress.Warning, Message: msg})
	return x.save(ctx, msg)
}

// apply sets the new template and the partition holding every pod in one
// update; done is true when the change turned out to be the current
// template (nothing to roll out).
func (x *execution) apply(ctx context.Context) (done bool, err error) {
	r, st := x.r, x.st
	sts, err := r.getStatefulSet(ctx)
	if err != nil {
		return false, err
	}
	replicas := Replicas(sts)
	if st.Change == nil {
		return false, needsAttention("the rollout record of statefulset %s lost the change it was applying; undo it with: kubectl sts rollout undo %s", r.Name, r.Name)
	}
	t, err := st.Change.Apply(sts)
	if err != nil {
		return false, x.finish(ctx, journal.Failed, &RefusedError{Reason: err.Error(), Input: true})
	}
	gen := sts.Generation
	applied := func(s *appsv1.StatefulSet) bool {
		return templateEqual(t, &s.Spec.Template) && Partition(s) == replicas && s.Spec.UpdateStrategy.Type == appsv1.RollingUpdateStatefulSetStrategyType
	}
	if !applied(sts) {
		setTemplateHoldingEveryPod(sts, t)
		updated, err := r.Client.AppsV1().StatefulSets(r.Namespace).Update(ctx, sts, metav1.UpdateOptions{})
		if apierrors.IsConflict(err) {
			// A retried update meets its own first attempt, whose answer
			// was lost: the live object then is exactly what was sent.
			if live, gerr := r.getStatefulSet(ctx); gerr == nil && live.UID == sts.UID && applied(live) {
				updated, err = live, nil
			}
		}
		if apierrors.IsConflict(err) {
			return false, fmt.Errorf("statefulset %s changed while the new template was being applied; nothing of the rollout was applied, run it again: %w", r.Name, err)
		}
		if err != nil {
			return false, fmt.Errorf("applying the new template to statefulset %s: %w", r.Name, err)
		}
		gen = updated.Generation
		msg := fmt.Sprintf("applied the new pod template (%s) with the partition at %d, holding every pod", strings.Join(st.Change.Describe(), "; "), replicas)
		x.emit(progress.Event{Kind: "template-applied", Message: msg})
		x.event(ctx, corev1.EventTypeNormal, ReasonApplied, msg)
	}
	if err := x.wait(ctx, observeTimeout, wait.StatefulSetObserved(r.Name, gen)); err != nil {
		return false, err
	}
	now := x.tracker.Snapshot().StatefulSet
	if now.Status.UpdateRevision == st.From {
		msg := fmt.Sprintf("the new template is the current revision %s: nothing to roll out", st.From)
		if _, err := x.setPartition(ctx, st.OriginalPartition); err != nil {
			return false, err
		}
		x.emit(progress.Event{Kind: "done", Level: progress.Success, Message: msg})
		return true, x.finish(ctx, journal.Succeeded, nil)
	}
	st.To = now.Status.UpdateRevision
	st.Change = nil
	st.Stage = StageSteps
	msg := fmt.Sprintf("the controller named the new template revision %s", st.To)
	x.emit(progress.Event{Kind: "revision", Message: msg})
	return false, x.save(ctx, msg)
}

func maxUnavailable(sts *appsv1.StatefulSet) *intstr.IntOrString {
	if ru := sts.Spec.UpdateStrategy.RollingUpdate; ru != nil {
		return ru.MaxUnavailable
	}
	return nil
}

// templateEqual compares pod templates as the API stores them.
func templateEqual(a, b *corev1.PodTemplateSpec) bool {
	return equality.Semantic.DeepEqual(a, b)
}

// step runs the current step: lower the partition, then wait for the gates.
// Between two steps the next partition patch goes out first, the moment the
// gates pass; one journal write and one Event then record both steps. A kill
// between the patch and the write resumes at the step that had passed: its
// gates pass again at once and the partition is already where the next step
// wants it.
func (x *execution) step(ctx context.Context) error {
	r, st := x.r, x.st
	i := st.Current
	n, total := i+1, len(st.Plan.Steps)
	gen := x.nextGen
	if x.begun != n {
		if err := x.leaderLast(ctx, i); err != nil {
			return x.failedHandoff(ctx, err)
		}
		var err error
		if gen, err = x.lowerPartition(ctx, i); err != nil {
			return err
		}
		if st.Steps[i].Started.IsZero() {
			st.Steps[i].Started = r.now()
		}
		msg := x.stepMessage(i)
		if err := x.save(ctx, msg); err != nil {
			return err
		}
		x.emitStepStarted(i)
		x.event(ctx, corev1.EventTypeNormal, ReasonStep, msg)
	}

	timeout := st.Gates.StepTimeout + st.Gates.Soak
	if n < total && x.controllerPaced() {
		// Controller-paced: the partition goes one step ahead once the
		// controller has begun this step (see pacing.go).
		took, err := x.goAhead(ctx, i, timeout)
		if err != nil {
			return err
		}
		timeout = max(timeout-took, time.Millisecond)
	}
	gates := x.stepGates(i, gen)
	err := x.wait(ctx, timeout, gates...)
	if err != nil {
		return x.failed(ctx, err)
	}

	step := st.Plan.Steps[i]
	snap := x.tracker.Snapshot()
	ss := &st.Steps[i]
	ss.Finished = r.now()
	ss.UIDs = map[string]types.UID{}
	for _, p := range step.Pods {
		if pod := snap.Pod(p); pod != nil {
			ss.UIDs[p] = pod.UID
		}
	}
	st.Current++
	passed := fmt.Sprintf("step %d of %d passed: %d of %d pods on revision %s", n, total, step.Updated, st.Plan.Replicas, st.To)
	msg := passed
	// An engine whose leader is rolled last reads the leader before the
	// next step's partition goes out.
	_, leaderLast := x.engine.(plugins.LeaderLastEngine)
	next := n < total && !st.pauseWanted(n) && !leaderLast
	switch {
	case next && x.ahead == n+1:
		// Its partition went out while this step's gates were pending.
		x.nextGen, x.begun = x.aheadGen, n+1
		msg += "; " + x.stepMessage(n) + fmt.Sprintf(" (its partition was set ahead at %s, once %s was being replaced: controller-paced)",
			st.Steps[n].Started.UTC().Format("15:04:05.000"), strings.Join(step.Pods, ", "))
	case next:
		if x.nextGen, err = x.lowerPartition(ctx, n); err != nil {
			return err
		}
		x.begun = n + 1
		st.Steps[n].Started = r.now()
		msg += "; " + x.stepMessage(n)
	}
	if err := x.save(ctx, msg); err != nil {
		return err
	}
	x.emit(progress.Event{Step: n, Steps: total, Kind: "step-passed", Level: progress.Success, Object: "statefulset/" + r.Name, Message: passed})
	if next {
		x.emitStepStarted(n)
	}
	x.event(ctx, corev1.EventTypeNormal, ReasonStepPassed, msg)
	if n < total && st.pauseWanted(n) {
		return x.pause(ctx, n)
	}
	return nil
}

// lowerPartition moves the partition down to step i's, if it is above,
// and returns the StatefulSet generation the step's pods follow.
func (x *execution) lowerPartition(ctx context.Context, i int) (int64, error) {
	r, st := x.r, x.st
	step := st.Plan.Steps[i]
	sts := x.tracker.Snapshot().StatefulSet
	if sts == nil {
		return 0, x.finish(ctx, journal.Failed, needsAttention("statefulset %s was deleted during the rollout", r.Name))
	}
	if d := drift(x.base, sts); d != "" {
		return 0, x.changedElsewhere(d)
	}
	// The watch may not show this run's own last write yet: never go back
	// to an older view than the one the run already has.
	if x.base == nil || sts.Generation > x.base.Generation {
		x.base = sts
	}
	sts = x.base
	switch live := Partition(sts); {
	case live > step.Partition:
		updated, err := x.lowerPartitionFrom(ctx, sts, step.Partition)
		if err != nil {
			return 0, err
		}
		x.base = updated
		return updated.Generation, nil
	case live < step.Partition && (i+1 >= len(st.Plan.Steps) || live < st.Plan.Steps[i+1].Partition):
		// At the next step's partition it is this rollout's own patch,
		// sent by a run stopped before its journal write.
		x.emitStep(progress.Event{Kind: "warning", Level: progress.Warning, Message: fmt.Sprintf(
			"the partition is already %d, below this step's %d: pods beyond the plan were released by someone else", live, step.Partition)})
	}
	return sts.Generation, nil
}

func (x *execution) stepMessage(i int) string {
	st := x.st
	step := st.Plan.Steps[i]
	return fmt.Sprintf("step %d of %d: partition %d, updating %s to revision %s", i+1, len(st.Plan.Steps), step.Partition, strings.Join(step.Pods, ", "), st.To)
}

func (x *execution) emitStepStarted(i int) {
	st := x.st
	step := st.Plan.Steps[i]
	x.emit(progress.Event{Step: i + 1, Steps: len(st.Plan.Steps), Total: len(step.Pods), Kind: "step-started", Object: "statefulset/" + x.r.Name,
		Message: fmt.Sprintf("partition %d: updating %s to revision %s (%d of %d pods%s)", step.Partition, strings.Join(step.Pods, ", "), st.To, step.Updated, st.Plan.Replicas, st.Plan.budgetText())})
	if x.tracker != nil {
		if blockers := budgetBlockers(x.tracker.Snapshot(), st.Plan, step); len(blockers) > 0 {
			x.emitStep(progress.Event{Kind: "warning", Level: progress.Warning, Object: "statefulset/" + x.r.Name, Message: fmt.Sprintf(
				"%s outside this step %s not Ready: the controller counts them against its budget of %d unavailable pods (maxUnavailable), so it replaces no pod of the step until they are Ready",
				strings.Join(blockers, ", "), map[bool]string{true: "is", false: "are"}[len(blockers) == 1], st.Plan.MaxUnavailable.Pods)})
		}
	}
}

func (x *execution) stepGates(i int, gen int64) []wait.Gate {
	r, st := x.r, x.st
	step := st.Plan.Steps[i]
	updated := UpdatedPods(r.Name, st.Plan.Replicas, st.Plan.OrdinalsStart, step.Partition)
	// One gate over every updated pod for each condition: it looks only at
	// the pods that changed, and reports one line per change, not one per
	// pod and step.
	gates := []wait.Gate{wait.StatefulSetObserved(r.Name, gen), wait.PodsReadyAtRevision(updated, st.To), wait.PodsNotFailing(updated, st.To)}
	if st.Gates.Soak > 0 {
		// The soak starts once the pods are Ready at the new revision, not
		// while the old pods are still Ready before their replacement.
		gates = append(gates, &readyFirst{Gate: wait.Soak(updated, st.Gates.Soak), ready: newPodsReady(updated, st.To)})
	}
	if st.Gates.Exec != "" {
		gates = append(gates, ExecGate(r.Exec, r.Namespace, step.Pods, st.Gates.ExecContainer, st.Gates.Exec, st.To, x.r.interval()))
	}
	if st.Gates.Command != "" {
		local := r.Local
		if local == nil {
			local = ShellRunner{}
		}
		env := CommandEnv{Namespace: r.Namespace, StatefulSet: r.Name, Revision: st.To, Step: i + 1, Steps: len(st.Plan.Steps),
			Partition: step.Partition, Pods: step.Pods, Updated: updated}
		gates = append(gates, LocalCommandGate(local, st.Gates.Command, env, x.r.interval()))
	}
	if x.engine != nil {
		t := plugins.Target{Exec: r.Exec, Container: st.Gates.ExecContainer}
		opts := plugins.HealthOptions{MaxLagBytes: st.Gates.MaxLagBytes, MaxLagSeconds: st.Gates.MaxLagSeconds}
		gates = append(gates, EngineGate(x.engine, t, opts, updated, st.To, x.r.interval()))
	}
	return append(gates, abortGate(r.Name, st.ID), driftGate(r.Name, x.base))
}

// wait waits for gates on the tracker, reporting gate changes as events.
func (x *execution) wait(ctx context.Context, timeout time.Duration, gates ...wait.Gate) error {
	w := wait.Waiter{Timeout: timeout, Interval: x.r.interval(), Observer: x.observer()}
	return w.Wait(ctx, x.tracker, gates...)
}

// observer turns gate changes into events: every change of verdict, and
// a changed reason at most every few seconds per gate, so a soak does not
// print a line per tick.
func (x *execution) observer() wait.Observer {
	type seen struct {
		verdict wait.Verdict
		at      time.Time
	}
	last := map[string]seen{}
	return func(e wait.Event) {
		prev, ok := last[e.Gate]
		if ok && prev.verdict == e.Verdict && e.Time.Sub(prev.at) < 10*time.Second {
			return
		}
		if e.Gate == "" || (e.Verdict == wait.Pass && strings.HasSuffix(e.Gate, "not to be aborted")) {
			return
		}
		last[e.Gate] = seen{verdict: e.Verdict, at: e.Time}
		level := progress.Info
		switch e.Verdict {
		case wait.Pass:
			level = progress.Success
		case wait.Fail:
			level = progress.Failure
		}
		if e.Verdict == wait.Pass && strings.Contains(e.Gate, "not to be failing") {
			return
		}
		x.emitStep(progress.Event{Kind: "gate", Level: level, Object: strings.Replace(e.Object, " ", "/", 1), Message: e.Reason})
	}
}

// failed handles a step (or the completion) that did not pass.
func (x *execution) failed(ctx context.Context, err error) error {
	r, st := x.r, x.st
	if ctx.Err() != nil {
		return err
	}
	if abortRequested(x.tracker.Snapshot().StatefulSet, st.ID) {
		return x.abort(ctx)
	}
	if d := drift(x.base, x.tracker.Snapshot().StatefulSet); d != "" {
		// Someone else's change: never roll it back.
		return x.changedElsewhere(d)
	}
	var gf *wait.GateFailedError
	var te *wait.TimeoutError
	var gone *wait.StatefulSetDeletedError
	switch {
	case errors.As(err, &gone):
		return x.finish(ctx, journal.Failed, needsAttention("%v; nothing more was changed", err))
	case !errors.As(err, &gf) && !errors.As(err, &te):
		return err
	}
	n, total := st.StepNumber(), len(st.Plan.Steps)
	x.emitStep(progress.Event{Kind: "gate-failed", Level: progress.Failure, Object: "statefulset/" + r.Name, Message: err.Error()})
	x.event(ctx, corev1.EventTypeWarning, ReasonGateFailed, fmt.Sprintf("step %d of %d failed: %v", n, total, err))
	if st.NoRollback {
		live := x.tracker.Snapshot().StatefulSet
		if x.base != nil && x.base.Generation > live.Generation {
			live = x.base // the run's own last write, not shown yet
		}
		part := Partition(live)
		if p := x.holdFrontier(ctx); p >= 0 {
			part = p
		}
		out := needsAttention("step %d of %d failed: %v; rollback is off (--no-rollback): the pods stay as they are and the partition holds at %d. "+
			"Look at the pods (kubectl sts status %s), then undo with: kubectl sts rollout undo %s, or fix the cause and start the rollout again",
			n, total, err, part, r.Name, r.Name)
		x.event(ctx, corev1.EventTypeWarning, ReasonFailed, out.Error())
		return x.finish(ctx, journal.Failed, out)
	}
	st.Stage = StageRollback
	st.Rollback = &RollbackState{Reason: err.Error(), Started: r.now(), FailedStep: n}
	if st.Current >= len(st.Plan.Steps) {
		st.Rollback.FailedStep = 0
	}
	if err := x.save(ctx, fmt.Sprintf("step %d of %d failed, rolling back: %v", n, total, err)); err != nil {
		return err
	}
	return x.rollback(ctx)
}

// pause stops after step n: waits for approval when someone can give it
// here, or ends the run with the record paused.
func (x *execution) pause(ctx context.Context, n int) error {
	r, st := x.r, x.st
	total := len(st.Plan.Steps)
	st.PausedAfter = n
	msg := fmt.Sprintf("paused after step %d of %d; continue with: kubectl sts rollout resume %s", n, total, r.Name)
	// Without a prompt the Finish below records the message.
	saveMsg := msg
	if r.Prompt == nil {
		saveMsg = ""
	}
	if err := x.save(ctx, saveMsg); err != nil {
		return err
	}
	x.emit(progress.Event{Step: n, Steps: total, Kind: "paused", Message: msg})
	x.event(ctx, corev1.EventTypeNormal, ReasonPaused, msg)
	if r.Prompt == nil {
		return x.finish(ctx, journal.Paused, &PausedError{Step: n, Steps: total, Name: r.Name})
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	approved := make(chan error, 1)
	go func() {
		approved <- wait.Waiter{Interval: -1}.Wait(wctx, x.tracker, approvedGate(r.Name, st.ID, n), abortGate(r.Name, st.ID))
	}()
	select {
	case <-r.Prompt(wctx, n, total):
		cancel()
		<-approved
	case err := <-approved:
		if err != nil {
			if ctx.Err() != nil {
				return err
			}
			if abortRequested(x.tracker.Snapshot().StatefulSet, st.ID) {
				return x.abort(ctx)
			}
			return err
		}
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	st.PausedAfter = 0
	msg = fmt.Sprintf("resumed after step %d of %d", n, total)
	if err := x.save(ctx, msg); err != nil {
		return err
	}
	x.emit(progress.Event{Step: n, Steps: total, Kind: "resumed", Message: msg})
	x.event(ctx, corev1.EventTypeNormal, ReasonResumed, msg)
	return nil
}

// abort stops the plan: the partition is raised to hold exactly the pods
// already on the new revision, and nothing else moves.
func (x *execution) abort(ctx context.Context) error {
	st := x.st
	snap := x.tracker.Snapshot()
	p, err := holdPods(ctx, snap, st.To, func(p int32) error {
		_, err := x.setPartition(ctx, p)
		return err
	})
	if err != nil {
		return err
	}
	out := &AbortedError{Step: st.StepNumber(), Steps: len(st.Plan.Steps), Partition: p}
	x.emit(progress.Event{Kind: "aborted", Level: progress.Warning, Message: out.Error()})
	x.event(ctx, corev1.EventTypeWarning, ReasonAborted, out.Error())
	x.clearAnnotation(ctx, AnnotationAbort, st.ID)
	return x.finish(ctx, journal.Aborted, out)
}

// holdPods raises the partition (never lowers it) so that the pods at the
// top already on revision stay and no other pod moves; it returns the
// partition.
func holdPods(_ context.Context, snap wait.Snapshot, revision string, set func(int32) error) (int32, error) {
	sts := snap.StatefulSet
	if sts == nil {
		return 0, fmt.Errorf("the statefulset is gone")
	}
	hold := Replicas(sts) - topUpdated(sts, snap.Pods, revision)
	live := Partition(sts)
	if hold <= live || revision == "" {
		return live, nil
	}
	return hold, set(hold)
}

// complete waits for the controller to finish, then sets the final
// partition and ends the record.
func (x *execution) complete(ctx context.Context) error {
	r, st := x.r, x.st
	if err := x.wait(ctx, st.Gates.StepTimeout, completeGate(r.Name, st.To), abortGate(r.Name, st.ID)); err != nil {
		return x.failed(ctx, err)
	}
	if st.FinalPartition != Partition(x.tracker.Snapshot().StatefulSet) {
		if _, err := x.setPartition(ctx, st.FinalPartition); err != nil {
			return err
		}
	}
	x.clearAnnotation(ctx, AnnotationResume, "")
	msg := fmt.Sprintf("rolled out revision %s to all %d pods in %d steps; partition %d", st.To, st.Plan.Replicas, len(st.Plan.Steps), st.FinalPartition)
	x.emit(progress.Event{Kind: "done", Level: progress.Success, Object: "statefulset/" + r.Name, Message: msg})
	// The Event and the record's last write go out together.
	x.events.Go(func() { x.event(ctx, corev1.EventTypeNormal, ReasonSucceeded, msg) })
	err := x.finish(ctx, journal.Succeeded, nil)
	x.events.Wait()
	return err
}

// rollback restores the previous revision: its template with the
// partition at 0, in one patch; then deletes the pods stuck off it (the
// controller will not replace a pod that never becomes Ready), waits until
// every pod is Ready on it, and sets the partition back.
func (x *execution) rollback(ctx context.Context) error {
	r, st := x.r, x.st
	rb := st.Rollback
	x.emit(progress.Event{Kind: "rollback-started", Level: progress.Warning, Object: "statefulset/" + r.Name,
		Message: fmt.Sprintf("rolling back to revision %s: %s", st.From, rb.Reason)})
	x.event(ctx, corev1.EventTypeWarning, ReasonRollback, fmt.Sprintf("rolling back to revision %s: %s", st.From, rb.Reason))

	sts := x.tracker.Snapshot().StatefulSet
	if sts == nil {
		return x.finish(ctx, journal.Failed, needsAttention("statefulset %s is gone; nothing to roll back", r.Name))
	}
	revs, err := Revisions(ctx, r.Client, sts)
	if err != nil {
		return err
	}
	rev := FindRevision(revs, st.From)
	if rev == nil {
		return x.finish(ctx, journal.Failed, needsAttention("cannot roll back statefulset %s: its controller revision %s no longer exists (revisionHistoryLimit?); restore the template by hand",
			r.Name, st.From))
	}
	data, err := rollbackPatch(rev, 0)
	if err != nil {
		return x.finish(ctx, journal.Failed, needsAttention("cannot roll back statefulset %s: %v", r.Name, err))
	}
	updated, err := x.patch(ctx, types.StrategicMergePatchType, data)
	if err != nil {
		return err
	}
	deadline := r.now().Add(st.Gates.RollbackTimeout)
	if err := x.wait(ctx, st.Gates.RollbackTimeout, wait.StatefulSetObserved(r.Name, updated.Generation)); err != nil {
		return x.rollbackFailed(ctx, err)
	}
	target := x.tracker.Snapshot().StatefulSet.Status.UpdateRevision
	if rb.Target != target {
		rb.Target = target
		msg := fmt.Sprintf("restored the template of revision %s with the partition at 0", st.From)
		if target != st.From {
			msg += fmt.Sprintf("; the controller named it %s", target)
		}
		if err := x.save(ctx, msg); err != nil {
			return err
		}
		x.emit(progress.Event{Kind: "template-restored", Message: msg})
	}

	deleted := map[types.UID]bool{}
	for {
		for _, p := range stuckPods(x.tracker.Snapshot(), target) {
			if deleted[p.UID] {
				continue
			}
			if err := x.deletePod(ctx, p); err != nil {
				return err
			}
			deleted[p.UID] = true
			rb.Deleted = append(rb.Deleted, p.Name)
			if err := x.save(ctx, fmt.Sprintf("deleted pod %s, stuck on revision %s", p.Name, wait.PodRevision(p))); err != nil {
				return err
			}
		}
		left := time.Until(deadline)
		if left <= 0 {
			left = time.Millisecond
		}
		err := x.wait(ctx, left, wait.Any(completeGate(r.Name, target), stuckGate(r.Name, target, deleted)))
		if err != nil {
			return x.rollbackFailed(ctx, err)
		}
		if len(stuckNotDeleted(x.tracker.Snapshot(), target, deleted)) == 0 {
			if v, _, _ := completeGate(r.Name, target).Check(ctx, x.tracker.Snapshot()); v == wait.Pass {
				break
			}
		}
	}
	if st.OriginalPartition != 0 {
		if _, err := x.setPartition(ctx, st.OriginalPartition); err != nil {
			return err
		}
	}
	x.clearAnnotation(ctx, AnnotationResume, "")
	out := &RolledBackError{Step: rb.FailedStep, Steps: len(st.Plan.Steps), Reason: rb.Reason, Revision: target}
	msg := fmt.Sprintf("rolled back: every pod is Ready on revision %s", target)
	if len(rb.Deleted) > 0 {
		msg += "; deleted stuck " + strings.Join(rb.Deleted, ", ")
	}
	if st.OriginalPartition != 0 {
		msg += fmt.Sprintf("; partition back at %d", st.OriginalPartition)
	}
	x.emit(progress.Event{Kind: "rolled-back", Level: progress.Warning, Object: "statefulset/" + r.Name, Message: msg})
	x.event(ctx, corev1.EventTypeWarning, ReasonRolledBack, msg+" ("+rb.Reason+")")
	return x.finish(ctx, journal.RolledBack, out)
}

func stuckNotDeleted(s wait.Snapshot, revision string, deleted map[types.UID]bool) []*corev1.Pod {
	var out []*corev1.Pod
	for _, p := range stuckPods(s, revision) {
		if !deleted[p.UID] {
			out = append(out, p)
		}
	}
	return out
}

func (x *execution) deletePod(ctx context.Context, p *corev1.Pod) error {
	r := x.r
	uid := p.UID
	err := r.Client.CoreV1().Pods(r.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &uid}})
	if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("deleting pod %s stuck on revision %s: %w", p.Name, wait.PodRevision(p), err)
	}
	msg := fmt.Sprintf("deleted pod %s, stuck on revision %s (%s): the controller recreates it from the restored template",
		p.Name, wait.PodRevision(p), wait.DescribePodState(p))
	x.emit(progress.Event{Kind: "pod-deleted", Level: progress.Warning, Object: "pod/" + p.Name, Message: msg})
	x.event(ctx, corev1.EventTypeWarning, ReasonPodDeleted, msg)
	return nil
}

func (x *execution) rollbackFailed(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return err
	}
	var te *wait.TimeoutError
	var gf *wait.GateFailedError
	if !errors.As(err, &te) && !errors.As(err, &gf) {
		return err
	}
	out := needsAttention("the rollback of statefulset %s to revision %s did not finish: %v. The template is restored and the partition is 0; "+
		"look at the pods (kubectl sts status %s) and run kubectl sts rollout undo %s again once the cause is fixed", x.r.Name, x.st.From, err, x.r.Name, x.r.Name)
	x.emit(progress.Event{Kind: "rollback-failed", Level: progress.Failure, Message: out.Error()})
	x.event(ctx, corev1.EventTypeWarning, ReasonFailed, out.Error())
	return x.finish(ctx, journal.Failed, out)
}

// clearAnnotation removes a control annotation (only if it holds a value
// starting with prefix); best effort.
func (r *Runner) clearAnnotation(ctx context.Context, key, prefix string) {
	sts, err := r.getStatefulSet(ctx)
	if err != nil {
		return
	}
	r.clearAnnotationOf(ctx, sts, key, prefix)
}

// clearAnnotation is Runner.clearAnnotation on the StatefulSet as the
// run's watch last saw it, without reading it again.
func (x *execution) clearAnnotation(ctx context.Context, key, prefix string) {
	if sts := x.tracker.Snapshot().StatefulSet; sts != nil {
		x.r.clearAnnotationOf(ctx, sts, key, prefix)
	}
}

func (r *Runner) clearAnnotationOf(ctx context.Context, sts *appsv1.StatefulSet, key, prefix string) {
	v, ok := sts.Annotations[key]
	if !ok || !strings.HasPrefix(v, prefix) {
		return
	}
	patch := fmt.Appendf(nil, `{"metadata":{"annotations":{%q:null}}}`, key)
	_, _ = r.Client.AppsV1().StatefulSets(r.Namespace).Patch(ctx, r.Name, types.MergePatchType, patch, metav1.PatchOptions{})
}
