package scaledown

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/kubectl-sts/kubectl-sts/pkg/journal"
	"github.com/kubectl-sts/kubectl-sts/pkg/kube"
	"github.com/kubectl-sts/kubectl-sts/pkg/progress"
	"github.com/kubectl-sts/kubectl-sts/pkg/wait"
	"github.com/kubectl-sts/kubectl-sts/plugins"
)

// finalWriteTimeout bounds the journal and event writes made after the
// run's context ended (Ctrl-C), so the record still says where it stopped.
const finalWriteTimeout = 10 * time.Second

// Execute carries out a plan from Prepare: one ordinal at a time, highest
// first (engine pre-removal step, scale to that ordinal, wait until its pod
// is gone, engine post-removal step, then that ordinal's claims), keeping
// its progress in the journal after every stage.
//
// It returns the record of what was done, or
//   - an error wrapping context.Canceled when ctx was cancelled: the lease
//     is released and the next run resumes at once;
//   - a *StoppedError when a step failed part-way: progress is kept and
//     the same command resumes;
//   - the journal's *HeldError or *BusyError when another run holds the
//     StatefulSet.
func Execute(ctx context.Context, p *Plan, d Deps) (*Result, error) {
	if p == nil || p.sts == nil {
		return nil, errors.New("scaledown: Execute needs a plan from Prepare")
	}
	r := &runner{plan: p, deps: d, cfg: p.cfg, result: &Result{Removed: []string{}, Deleted: []string{}, Kept: []string{}, Snapshots: []string{}}}
	r.rep = progress.Reporter{Sink: d.Sink, Operation: p.Operation, Now: d.Now}
	r.ref = kube.StatefulSetRef(p.Namespace, p.StatefulSet, p.UID)
	r.eventPrefix = "ScaleDown"
	if p.cfg.Cleanup {
		r.eventPrefix = "CleanupPVCs"
		if p.cfg.CleanupSlots {
			r.eventPrefix = "Cleanup"
		}
	}

	r.journal = d.journal(p.Namespace, p.StatefulSet)
	initial := p.initialState()
	rec, resumed, err := r.journal.Begin(ctx, p.Operation, initial)
	if err != nil {
		return nil, err
	}
	r.rec = rec
	if resumed != p.Resumed {
		r.finalRelease(ctx, resumed, "the plan was made for another state of the operation record; nothing was changed")
		return nil, fmt.Errorf("the operation record of statefulset %s changed while the plan was shown (another run started or finished): run the command again", p.StatefulSet)
	}
	r.state = initial
	if resumed {
		var st State
		if err := rec.DecodeState(&st); err != nil {
			r.finalRelease(ctx, resumed, "unreadable state")
			return nil, fmt.Errorf("reading the operation record: %w", err)
		}
		r.state = &st
	}

	held, done := r.journal.Hold(ctx, rec, func(err error) {
		r.rep.Emit(progress.Event{Kind: "journal-warning", Level: progress.Warning, Message: "renewing the operation lease failed: " + err.Error()})
	})

	verb, reason := "started", "Started"
	if resumed {
		verb, reason = "resumed", "Resumed"
	}
	r.emit(0, verb, progress.Info, "statefulset/"+p.StatefulSet, r.startMessage(verb))
	r.event(ctx, corev1.EventTypeNormal, reason, r.startMessage(verb))

	err = done(r.run(held))
	return r.finish(ctx, err)
}

func (p *Plan) initialState() *State {
	st := &State{
		UID: p.UID, From: p.From, To: p.To, OrdinalsStart: p.OrdinalsStart,
		PVC: p.PVC, SnapshotClass: p.SnapshotClass, Engine: p.Engine, SlotNames: p.cfg.SlotNames,
	}
	for _, s := range p.Steps {
		st.Ordinals = append(st.Ordinals, StepState{Ordinal: s.Ordinal, Stage: s.Stage})
	}
	return st
}

type runner struct {
	plan   *Plan
	cfg    Config
	deps   Deps
	rep    progress.Reporter
	ref    *corev1.ObjectReference
	result *Result

	eventPrefix string
	journal     *journal.Journal
	rec         *journal.Record
	state       *State
	tracker     *wait.Tracker
	engine      plugins.Engine
	done        []string
	// generation is the StatefulSet's generation after the last scale.
	generation int64
	// base is the StatefulSet as this run last wrote or read it: a newer
	// spec is someone else's change.
	base *appsv1.StatefulSet
}

func (r *runner) startMessage(verb string) string {
	p := r.plan
	if p.cfg.Cleanup {
		msg := fmt.Sprintf("cleanup of statefulset %s %s: claims of %d removed %s (action: %s)", p.StatefulSet, verb, len(p.Steps), plural(len(p.Steps), "ordinal", "ordinals"), p.PVC)
		if n := len(p.dropped()); n > 0 {
			msg += fmt.Sprintf(", %d replication %s (%s)", n, plural(n, "slot", "slots"), strings.Join(p.dropped(), ", "))
		}
		return msg
	}
	return fmt.Sprintf("scale-down of statefulset %s from %d to %d replicas %s (claims: %s)", p.StatefulSet, p.From, p.To, verb, p.PVC)
}

func (r *runner) run(ctx context.Context) error {
	if r.plan.cfg.Cleanup {
		return r.runCleanup(ctx)
	}
	// The engine is resolved again on the live object; Prepare already
	// checked it is the one the plan names.
	if r.deps.EngineFor != nil && r.plan.Engine != "" {
		e, err := r.deps.EngineFor(r.plan.sts)
		if err != nil {
			return err
		}
		if e == nil || e.Name() != r.plan.Engine {
			return fmt.Errorf("the %s engine planned for is no longer detected", r.plan.Engine)
		}
		r.engine = e
	}
	tctx, cancel := context.WithCancel(ctx)
	defer cancel()
	r.tracker = wait.NewTracker(r.deps.Kube, r.plan.Namespace, r.plan.StatefulSet)
	if err := r.tracker.Start(tctx); err != nil {
		return err
	}
	if uid := r.tracker.UID(); uid != r.plan.UID {
		return fmt.Errorf("statefulset %s was deleted and recreated since the plan was made", r.plan.StatefulSet)
	}
	r.base = r.tracker.Snapshot().StatefulSet
	steps := len(r.plan.Steps)
	for i, s := range r.plan.Steps {
		if err := r.removeOrdinal(ctx, i+1, steps, s); err != nil {
			return err
		}
	}
	return nil
}

// removeOrdinal takes one ordinal through its stages, skipping those an
// interrupted run finished.
func (r *runner) removeOrdinal(ctx context.Context, step, steps int, s PlanStep) error {
	st := r.state.step(s.Ordinal)
	if st == nil {
		r.state.Ordinals = append(r.state.Ordinals, StepState{Ordinal: s.Ordinal})
		st = r.state.step(s.Ordinal)
	}
	pod := s.Pod
	obj := "pod/" + pod
	if st.Stage.reached(StageDone) {
		r.emit(step, "step-skipped", progress.Info, obj, "already removed by the interrupted run")
		return nil
	}
	index := int32(s.Ordinal - r.plan.OrdinalsStart)
	engine := r.engine
	if r.plan.lastMember(s.Ordinal) {
		engine = nil
	}
	r.emit(step, "step-started", progress.Info, obj, fmt.Sprintf("removing %s (ordinal %d): replicas %d → %d", pod, s.Ordinal, index+1, index))

	if !st.Stage.reached(StagePrepared) {
		if err := r.unchanged(); err != nil {
			return err
		}
		if engine != nil {
			if err := engine.BeforeRemove(ctx, r.target(), s.Ordinal, r.removeOptions(ctx, step, s)); err != nil {
				return r.stepFailed(ctx, fmt.Errorf("%s pre-removal step for %s: %w", engine.Name(), pod, err))
			}
			r.emit(step, "engine-prepared", progress.Success, obj, fmt.Sprintf("%s pre-removal step done", engine.Name()))
		}
		if err := r.advance(ctx, st, StagePrepared, ""); err != nil {
			return err
		}
	}

	if !st.Stage.reached(StageScaled) {
		gen, changed, err := r.scaleTo(ctx, index)
		if err != nil {
			return r.stepFailed(ctx, err)
		}
		msg := fmt.Sprintf("scaled statefulset %s to %d replicas to remove pod %s", r.plan.StatefulSet, index, pod)
		if !changed {
			msg = fmt.Sprintf("statefulset %s already has %d replicas", r.plan.StatefulSet, index)
		}
		r.emit(step, "scaled", progress.Info, "statefulset/"+r.plan.StatefulSet, msg)
		r.event(ctx, corev1.EventTypeNormal, "Scaled", msg)
		r.generation = gen
		if err := r.advance(ctx, st, StageScaled, msg); err != nil {
			return err
		}
	}

	if !st.Stage.reached(StagePodGone) {
		r.emit(step, "waiting", progress.Info, obj, "waiting for the pod to be gone")
		w := wait.Waiter{Timeout: r.cfg.timeout(), Observer: r.observer(step)}
		gates := []wait.Gate{wait.PodGone(pod), wait.NotChangedElsewhere(r.plan.StatefulSet, r.base, "the "+r.plan.Operation)}
		if r.generation > 0 {
			gates = append([]wait.Gate{wait.StatefulSetObserved(r.plan.StatefulSet, r.generation)}, gates...)
		}
		if err := w.Wait(ctx, r.tracker, gates...); err != nil {
			if derr := r.unchanged(); derr != nil {
				return derr
			}
			return r.stepFailed(ctx, err)
		}
		r.result.Removed = append(r.result.Removed, pod)
		msg := fmt.Sprintf("pod %s is gone", pod)
		r.emit(step, "pod-gone", progress.Success, obj, msg)
		r.event(ctx, corev1.EventTypeNormal, "PodRemoved", msg)
		if err := r.advance(ctx, st, StagePodGone, msg); err != nil {
			return err
		}
	}

	if !st.Stage.reached(StageEngineDone) {
		if err := r.unchanged(); err != nil {
			return err
		}
		if engine != nil {
			if err := engine.AfterRemove(ctx, r.target(), s.Ordinal, r.removeOptions(ctx, step, s)); err != nil {
				return r.stepFailed(ctx, fmt.Errorf("%s post-removal step for %s: %w", engine.Name(), pod, err))
			}
			r.emit(step, "engine-cleaned", progress.Success, obj, fmt.Sprintf("%s post-removal step done", engine.Name()))
		}
		if err := r.advance(ctx, st, StageEngineDone, ""); err != nil {
			return err
		}
	}

	if err := r.unchanged(); err != nil {
		return err
	}
	if err := r.handleClaims(ctx, step, s); err != nil {
		return r.stepFailed(ctx, err)
	}
	r.done = append(r.done, "removed "+pod)
	if err := r.advance(ctx, st, StageDone, "removed "+pod); err != nil {
		return err
	}
	r.emit(step, "step-done", progress.Success, obj, fmt.Sprintf("%s removed", pod))
	return nil
}

// scaleTo lowers spec.replicas to n, guarded by a JSON patch test so a
// concurrent change of the scale is never overwritten.
func (r *runner) scaleTo(ctx context.Context, n int32) (generation int64, changed bool, err error) {
	api := r.deps.Kube.AppsV1().StatefulSets(r.plan.Namespace)
	sts, err := api.Get(ctx, r.plan.StatefulSet, metav1.GetOptions{})
	if err != nil {
		return 0, false, err
	}
	if sts.UID != r.plan.UID {
		return 0, false, fmt.Errorf("statefulset %s was deleted and recreated during the scale-down", r.plan.StatefulSet)
	}
	if d := wait.DetectDrift(r.base, sts); d != nil {
		return 0, false, r.changedElsewhere(d)
	}
	r.base = sts
	cur := Replicas(sts)
	switch {
	case cur == n:
		return sts.Generation, false, nil
	case cur != n+1:
		return 0, false, fmt.Errorf("statefulset %s has %d replicas where %d were expected: someone else changed its scale during the scale-down", r.plan.StatefulSet, cur, n+1)
	}
	ops := []map[string]any{
		{"op": "test", "path": "/metadata/uid", "value": string(r.plan.UID)},
	}
	if sts.Spec.Replicas != nil {
		ops = append(ops, map[string]any{"op": "test", "path": "/spec/replicas", "value": cur})
	}
	ops = append(ops, map[string]any{"op": "add", "path": "/spec/replicas", "value": n})
	patch, err := json.Marshal(ops)
	if err != nil {
		return 0, false, err
	}
	out, err := api.Patch(ctx, r.plan.StatefulSet, types.JSONPatchType, patch, metav1.PatchOptions{})
	if err != nil {
		// A retried patch whose first attempt applied fails its own test
		// of the old count: the live object then holds exactly this scale.
		if live, gerr := api.Get(ctx, r.plan.StatefulSet, metav1.GetOptions{}); gerr == nil && live.UID == r.plan.UID && Replicas(live) == n {
			r.base = live
			return live.Generation, true, nil
		}
		return 0, false, fmt.Errorf("scaling statefulset %s to %d replicas: %w", r.plan.StatefulSet, n, err)
	}
	r.base = out
	return out.Generation, true, nil
}

// unchanged stops the run when the watch shows a change of the
// StatefulSet this run did not make; nothing more is changed.
func (r *runner) unchanged() error {
	if r.tracker == nil {
		return nil
	}
	d := wait.DetectDrift(r.base, r.tracker.Snapshot().StatefulSet)
	if d == nil {
		return nil
	}
	return r.changedElsewhere(d)
}

// changedElsewhere is the error of a run stopped by someone else's change
// of the StatefulSet: it says what changed and by whom, and that nothing
// was undone.
func (r *runner) changedElsewhere(d *wait.Drift) error {
	p := r.plan
	return &ChangedElsewhereError{StatefulSet: p.StatefulSet, Operation: p.Operation, Drift: d}
}

// target is what the engine sees: the StatefulSet and its pods now.
func (r *runner) target() plugins.Target {
	snap := r.tracker.Snapshot()
	sts := snap.StatefulSet
	if sts == nil {
		sts = r.plan.sts
	}
	return plugins.Target{StatefulSet: sts, Pods: snap.OrderedPods(), Exec: r.deps.Exec, Container: r.cfg.Container}
}

func (r *runner) removeOptions(ctx context.Context, step int, s PlanStep) plugins.RemoveOptions {
	return plugins.RemoveOptions{
		SlotNames: s.Slots,
		Wait:      r.cfg.timeout(),
		Events: func(ev plugins.RemoveEvent) {
			level := progress.Info
			switch ev.Action {
			case plugins.ActionChanged:
				level = progress.Success
			case plugins.ActionWarning:
				level = progress.Warning
			}
			obj := ev.Object
			if obj == "" && ev.Pod != "" {
				obj = "pod/" + ev.Pod
			}
			msg := ev.Message
			if ev.Pod != "" && !strings.Contains(msg, ev.Pod) {
				msg += " (on " + ev.Pod + ")"
			}
			r.emit(step, "engine-"+string(ev.Action), level, obj, msg)
			if ev.Left && ev.Object != "" && !ev.DryRun {
				if !slices.Contains(r.state.Left, ev.Object) {
					r.state.Left = append(r.state.Left, ev.Object)
				}
				if !slices.Contains(r.result.Left, ev.Object) {
					r.result.Left = append(r.result.Left, ev.Object)
				}
			}
			switch ev.Action {
			case plugins.ActionChanged:
				r.event(ctx, corev1.EventTypeNormal, "EngineStep", msg)
			case plugins.ActionWarning:
				r.event(ctx, corev1.EventTypeWarning, "EngineWarning", msg)
			}
		},
	}
}

func (r *runner) observer(step int) wait.Observer {
	return func(ev wait.Event) {
		if ev.Verdict == wait.Pass {
			return
		}
		r.emit(step, "waiting", progress.Info, strings.ReplaceAll(ev.Object, " ", "/"), "still waiting: "+ev.Reason)
	}
}

// advance records that a step reached stage. The write uses a context that
// survives Ctrl-C, so work that was done is never forgotten.
func (r *runner) advance(ctx context.Context, st *StepState, stage Stage, msg string) error {
	st.Stage = stage
	return r.save(ctx, msg)
}

func (r *runner) save(ctx context.Context, msg string) error {
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), finalWriteTimeout)
	defer cancel()
	if err := r.journal.Save(wctx, r.rec, r.state, msg); err != nil {
		return fmt.Errorf("recording progress: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return nil
}

// stepFailed prefers the cancellation over the error it caused, so an
// interrupted wait is reported as an interruption.
func (r *runner) stepFailed(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("%w (while: %v)", ctx.Err(), err)
	}
	return err
}

// finish ends the journal record and reports the outcome.
func (r *runner) finish(ctx context.Context, err error) (*Result, error) {
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), finalWriteTimeout)
	defer cancel()
	obj := "statefulset/" + r.plan.StatefulSet
	switch {
	case err == nil:
		msg := r.summary()
		if jerr := r.journal.Finish(wctx, r.rec, journal.Succeeded, msg); jerr != nil {
			r.emit(0, "journal-warning", progress.Warning, obj, "the operation succeeded but closing its record failed: "+jerr.Error())
		}
		r.emit(0, "succeeded", progress.Success, obj, msg)
		r.event(wctx, corev1.EventTypeNormal, "Succeeded", msg)
		return r.result, nil
	case ctx.Err() != nil && errors.Is(err, context.Canceled):
		msg := "interrupted; the progress is recorded: run the same command again to resume"
		if jerr := r.journal.Release(wctx, r.rec, "interrupted"); jerr != nil {
			msg += " (releasing the lease failed: " + jerr.Error() + "; the next run waits for it to expire)"
		}
		r.emit(0, "interrupted", progress.Warning, obj, msg)
		r.event(wctx, corev1.EventTypeWarning, "Interrupted", msg)
		return r.result, fmt.Errorf("%s of statefulset %s interrupted (progress recorded; run the same command again to resume): %w", r.plan.Operation, r.plan.StatefulSet, err)
	default:
		if jerr := r.journal.Release(wctx, r.rec, "stopped: "+err.Error()); jerr != nil {
			r.emit(0, "journal-warning", progress.Warning, obj, "releasing the operation lease failed: "+jerr.Error())
		}
		r.emit(0, "failed", progress.Failure, obj, err.Error())
		r.event(wctx, corev1.EventTypeWarning, "Failed", err.Error())
		return r.result, &StoppedError{StatefulSet: r.plan.StatefulSet, Err: err, Done: r.done}
	}
}

// finalRelease gives up a record that Begin returned when the run does not
// start: a record it created is closed, a resumed one released.
func (r *runner) finalRelease(ctx context.Context, resumed bool, msg string) {
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), finalWriteTimeout)
	defer cancel()
	if !resumed {
		_ = r.journal.Finish(wctx, r.rec, journal.Aborted, msg)
		return
	}
	_ = r.journal.Release(wctx, r.rec, msg)
}

func (r *runner) summary() string {
	p := r.plan
	var parts []string
	if !p.cfg.Cleanup {
		parts = append(parts, fmt.Sprintf("statefulset %s scaled from %d to %d replicas", p.StatefulSet, p.From, p.To))
	} else {
		parts = append(parts, fmt.Sprintf("cleanup of statefulset %s done", p.StatefulSet))
	}
	// Count from the journal's record, so a resumed run reports the whole
	// operation, not only what it did itself.
	var deleted, snapshots, kept, byKubernetes int
	for _, c := range r.state.Claims {
		if c.Snapshot != "" && (c.Outcome == outcomeSnapshotted || c.Outcome == outcomeDeleted) {
			snapshots++
		}
		switch c.Outcome {
		case outcomeDeleted:
			deleted++
		case outcomeKept:
			kept++
		case outcomeKubernetes:
			byKubernetes++
		}
	}
	if n := deleted; n > 0 {
		parts = append(parts, fmt.Sprintf("%d %s deleted", n, plural(n, "pvc", "pvcs")))
	}
	if n := snapshots; n > 0 {
		parts = append(parts, fmt.Sprintf("%d %s taken", n, plural(n, "snapshot", "snapshots")))
	}
	if n := kept; n > 0 {
		parts = append(parts, fmt.Sprintf("%d %s kept", n, plural(n, "pvc", "pvcs")))
	}
	if n := byKubernetes; n > 0 {
		parts = append(parts, fmt.Sprintf("%d %s left to Kubernetes (whenScaled: Delete)", n, plural(n, "pvc", "pvcs")))
	}
	if n := len(r.state.DroppedSlots); n > 0 {
		parts = append(parts, fmt.Sprintf("%d replication %s dropped (%s)", n, plural(n, "slot", "slots"), strings.Join(r.state.DroppedSlots, ", ")))
	}
	if left := p.slotsLeft(); len(left) > 0 {
		parts = append(parts, "left: "+strings.Join(left, "; "))
	}
	if len(r.state.Left) > 0 {
		parts = append(parts, fmt.Sprintf("left in place of removed members: %s (kubectl sts status %s names them until they are dropped; kubectl sts cleanup %s -n %s drops them)",
			strings.Join(r.state.Left, ", "), p.StatefulSet, p.StatefulSet, p.Namespace))
	}
	return strings.Join(parts, "; ")
}

func (r *runner) emit(step int, kind string, level progress.Level, obj, msg string) {
	e := progress.Event{Kind: kind, Level: level, Object: obj, Message: msg}
	if step > 0 {
		e.Step, e.Steps = step, len(r.plan.Steps)
	}
	r.rep.Emit(e)
}

// event records a Kubernetes Event on the StatefulSet. It is best effort:
// a failed write is reported as a warning and never fails the workflow.
func (r *runner) event(ctx context.Context, eventType, reason, msg string) {
	if r.deps.Events == nil {
		return
	}
	if err := r.deps.Events.Event(ctx, r.ref, eventType, r.eventPrefix+reason, msg); err != nil {
		r.emit(0, "event-failed", progress.Warning, "statefulset/"+r.plan.StatefulSet, "could not record a Kubernetes Event: "+err.Error())
	}
}
