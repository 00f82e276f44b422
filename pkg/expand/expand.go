package expand

import (
	"context"
	"errors"
	"fmt"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/kubectl-sts/kubectl-sts/pkg/journal"
	"github.com/kubectl-sts/kubectl-sts/pkg/kube"
	"github.com/kubectl-sts/kubectl-sts/pkg/progress"
	"github.com/kubectl-sts/kubectl-sts/pkg/wait"
	"github.com/kubectl-sts/kubectl-sts/plugins"
)

// Event reasons recorded on the StatefulSet.
const (
	ReasonStarted          = "ExpandPVCStarted"
	ReasonRequested        = "PVCExpansionRequested"
	ReasonPodRestarted     = "PodRestartedForResize"
	ReasonExpanded         = "PVCExpanded"
	ReasonAwaitingRestart  = "PVCResizeAwaitingRestart"
	ReasonFailed           = "PVCExpansionFailed"
	ReasonTemplateSaved    = "TemplateUpdateSaved"
	ReasonTemplateUpdated  = "VolumeClaimTemplateUpdated"
	ReasonSucceeded        = "ExpandPVCSucceeded"
	ReasonInterrupted      = "ExpandPVCInterrupted"
	ReasonTemplateRecreate = "StatefulSetRecreated"
	ReasonEvictionBlocked  = "PodEvictionBlocked"
)

// Progress event kinds.
const (
	KindStarted         = "expand-started"
	KindStepStarted     = "step-started"
	KindStepSkipped     = "step-skipped"
	KindPVCPatched      = "pvc-patched"
	KindWaiting         = "waiting"
	KindPodRestarting   = "pod-restarting"
	KindEvictionBlocked = "eviction-blocked"
	KindPodReady        = "pod-ready"
	KindPVCResized      = "pvc-resized"
	KindAwaitingRestart = "awaiting-restart"
	KindResizeFailed    = "resize-failed"
	KindTemplateSaved   = "template-saved"
	KindSTSDeleted      = "statefulset-deleted"
	KindSTSCreated      = "statefulset-created"
	KindPodsAdopted     = "pods-adopted"
	KindWarning         = "warning"
	KindDone            = "expand-done"
	KindInterrupted     = "interrupted"
)

// Config is what a run needs: the cluster, the target, the user's choices
// and where to report.
type Config struct {
	Client    kubernetes.Interface
	Exec      kube.Executor
	Namespace string
	Name      string
	Params    Params
	// EngineFor picks the database engine of the StatefulSet (nil engine:
	// none); it orders the ordinals, replicas before the primary.
	EngineFor func(*appsv1.StatefulSet) (plugins.Engine, error)
	// EngineTimeout bounds each engine query; zero is the engine default.
	EngineTimeout time.Duration
	Journal       *journal.Journal
	// Events records Kubernetes Events on the StatefulSet; may be nil.
	Events kube.EventRecorder
	// Sink receives progress events; may be nil.
	Sink progress.Sink
	Now  func() time.Time
}

// Expander runs the workflow for one StatefulSet.
type Expander struct {
	cfg Config
	rep progress.Reporter
}

// New returns an Expander; Preflight then Run.
func New(cfg Config) *Expander {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Expander{cfg: cfg, rep: progress.Reporter{Sink: cfg.Sink, Operation: Operation, Now: cfg.Now}}
}

func (e *Expander) now() time.Time { return e.cfg.Now() }

// Result says what a run did.
type Result struct {
	// Expanded are the claims verified at the new size by this run;
	// Skipped were already at it.
	Expanded []string `json:"expanded"`
	Skipped  []string `json:"skipped"`
	// Restarted are the pods restarted to finish a file system resize.
	Restarted []string `json:"restarted"`
	// AwaitingRestart are claims whose file system resize waits for a pod
	// restart that --restart never left to the user.
	AwaitingRestart []string `json:"awaitingRestart"`
	// TemplateUpdated is set when the StatefulSet was recreated with the
	// new size in its template; UID is then its new UID.
	TemplateUpdated bool      `json:"templateUpdated"`
	UID             types.UID `json:"uid,omitempty"`
	// Changed is set once anything in the cluster was changed.
	Changed bool `json:"changed"`
}

// ResizeFailedError stops the run on a resize the storage reported as
// failed; the other ordinals were left untouched.
type ResizeFailedError struct {
	Namespace string
	PVC       string
	Size      string
	Capacity  string
	Reason    string
	// Untouched are the claims that were not changed because of the stop.
	Untouched []string
}

func (e *ResizeFailedError) Error() string {
	msg := fmt.Sprintf("the resize of pvc %s to %s failed: %s.\n", e.PVC, e.Size, e.Reason)
	if len(e.Untouched) > 0 {
		msg += fmt.Sprintf("Stopped: %s %s not touched. ", joinNames(e.Untouched), verb(len(e.Untouched), "was", "were"))
	}
	msg += fmt.Sprintf("The claim keeps its data and its capacity %s; its pod was not restarted. The storage does not retry the same request.\n"+
		"To recover, fix the cause if you can (kubectl describe pvc %s -n %s shows the driver's events), then run this command again with a --size "+
		"the storage can provide, above %s: Kubernetes 1.34 or later lets the request of %s go down to it and the resize is retried at that size "+
		"(the other claims get the same size). The request can never go back to %s or below, and clusters before 1.34 do not let it go down at all: see docs/expand-pvc.md.",
		e.Capacity, e.PVC, e.Namespace, e.Capacity, e.PVC, e.Capacity)
	return msg
}

// AttentionError stops the run in a state a person must look at.
type AttentionError struct {
	Err  error
	Hint string
}

func (e *AttentionError) Error() string {
	if e.Hint == "" {
		return e.Err.Error()
	}
	return e.Err.Error() + "\n" + e.Hint
}

func (e *AttentionError) Unwrap() error { return e.Err }

// Run executes the plan from Preflight. It records its progress in the
// journal before each change, so running the same command again after an
// interruption or a failure continues where this run stopped.
func (e *Expander) Run(ctx context.Context, plan *Plan) (*Result, error) {
	st := newState(plan)
	rec, resumed, err := e.cfg.Journal.Begin(ctx, Operation, st)
	if err != nil {
		return &Result{}, err
	}
	if resumed {
		var stored State
		if err := rec.DecodeState(&stored); err == nil && stored.sameTarget(st.Claim, st.Size) {
			st.merge(&stored)
		}
	}
	r := &run{Expander: e, plan: plan, params: plan.params, rec: rec, state: st, res: &Result{}}
	held, done := e.cfg.Journal.Hold(ctx, rec, func(err error) {
		r.warn(ctx, "", fmt.Sprintf("could not renew the lease of the operation record: %v", err))
	})
	err = r.save(held, "")
	if err == nil {
		err = r.execute(held)
	}
	return r.res, r.finish(ctx, done(err))
}

// newState is the journal state of a plan, carrying over what an earlier
// run of the same expansion remembered.
func newState(plan *Plan) *State {
	st := &State{
		Version: stateVersion, Claim: plan.Claim, Size: plan.Size, Restart: plan.Restart,
		UpdateTemplate: plan.params.UpdateTemplate, StatefulSetUID: plan.UID,
	}
	for _, o := range plan.Ordinals {
		st.Order = append(st.Order, o.Ordinal)
		c := st.claim(o.Ordinal, o.PVC)
		if o.Action == ActionDone {
			c.Status = ClaimVerified
		}
	}
	if plan.prev != nil {
		st.merge(plan.prev)
		if plan.Recreate {
			st.Order, st.Claims = plan.prev.Order, plan.prev.Claims
			st.UpdateTemplate = true
		}
	}
	return st
}

// merge takes over the memory of an earlier run: which pods it restarted,
// which claims it patched, and the template step.
func (s *State) merge(prev *State) {
	for _, pc := range prev.Claims {
		c := s.find(pc.PVC)
		if c == nil {
			continue
		}
		c.Patched = c.Patched || pc.Patched
		if c.RestartedPod == "" {
			c.RestartedPod = pc.RestartedPod
		}
		if c.Status != ClaimVerified && pc.Status != ClaimVerified {
			c.Status = pc.Status
		}
	}
	if prev.Template.pending() {
		s.Template = prev.Template
	}
}

// run is one execution of a plan.
type run struct {
	*Expander
	plan   *Plan
	params Params
	rec    *journal.Record
	state  *State
	res    *Result

	uid     types.UID
	tracker *wait.Tracker
	step    int
	steps   int
	// current describes what the run is doing, for interruption messages.
	current string
	// base is the StatefulSet as this run first read it: a newer spec is
	// someone else's change.
	base *appsv1.StatefulSet
}

// unchanged stops the run when the StatefulSet's spec was changed by
// someone else since the run read it; cur is a fresher copy than the
// tracker's when the caller has one.
func (r *run) unchanged(cur *appsv1.StatefulSet) error {
	if cur == nil && r.tracker != nil {
		cur = r.tracker.Snapshot().StatefulSet
	}
	if d := wait.DetectDrift(r.base, cur); d != nil {
		return r.changedElsewhere(d)
	}
	return nil
}

func (r *run) changedElsewhere(d *wait.Drift) error {
	return &AttentionError{Err: fmt.Errorf("statefulset %s was changed by someone else during the expansion: %s", r.cfg.Name, d),
		Hint: fmt.Sprintf("the expansion stopped at once %s, changed nothing more and undid nothing (claims already expanded keep their size). "+
			"Look at it with: kubectl sts status %s -n %s; if the change is wanted, run the same command again to continue from the new state",
			r.where(), r.cfg.Name, r.cfg.Namespace)}
}

func (r *run) execute(ctx context.Context) error {
	r.uid = r.plan.UID
	r.steps = len(r.plan.Pending())
	if r.plan.Template.Update || r.plan.Template.Verify || r.plan.Recreate {
		r.steps++
	}
	startMsg := fmt.Sprintf("expanding claim %s of statefulset %s to %s: %d of %d claims to do", r.plan.Claim, r.plan.StatefulSet, r.plan.Size, len(r.plan.Pending()), len(r.plan.Ordinals))
	if r.plan.Resumed {
		startMsg = "continuing an interrupted run: " + startMsg
	}
	r.emit(progress.Event{Kind: KindStarted, Object: "statefulset/" + r.plan.StatefulSet, Message: startMsg})
	r.event(ctx, corev1.EventTypeNormal, ReasonStarted, startMsg)

	if !r.plan.Recreate {
		if err := r.claims(ctx); err != nil {
			return err
		}
	}
	ts := r.state.Template
	if ts.pending() && ts.Step == TemplateSaved && !r.plan.Template.Update {
		// Saved but never deleted: --no-update-template may still decline.
		r.state.Template = nil
	}
	if r.plan.Template.Update || r.plan.Template.Verify || r.plan.Recreate || r.state.Template.pending() {
		if err := r.template(ctx); err != nil {
			return err
		}
	}
	return nil
}

// finish closes the journal record and phrases the outcome.
func (r *run) finish(ctx context.Context, err error) error {
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 15*time.Second)
	defer cancel()
	j := r.cfg.Journal
	switch {
	case err == nil:
		r.state.Finished = r.now()
		if r.state.Template != nil {
			r.state.Template.Desired = nil
		}
		msg := r.summary()
		r.emit(progress.Event{Kind: KindDone, Level: progress.Success, Object: "statefulset/" + r.plan.StatefulSet, Message: msg})
		r.event(wctx, corev1.EventTypeNormal, ReasonSucceeded, msg)
		if serr := j.Save(wctx, r.rec, r.state, ""); serr != nil {
			return serr
		}
		return j.Finish(wctx, r.rec, journal.Succeeded, msg)
	case journal.IsLeaseLost(err):
		// Another process may hold the record now: change nothing more,
		// and give the lease back only when nobody took it.
		var lost *journal.LeaseLostError
		if errors.As(err, &lost) && lost.Holder == "" {
			_ = j.Release(wctx, r.rec, fmt.Sprintf("stopped %s: %v", r.where(), err))
		}
		r.emit(progress.Event{Kind: KindInterrupted, Level: progress.Warning, Object: "statefulset/" + r.plan.StatefulSet, Message: err.Error()})
		return err
	case ctx.Err() != nil:
		// Whatever failed last, the interruption is the cause.
		err = ctx.Err()
		msg := fmt.Sprintf("interrupted %s; run the same command again to continue", r.where())
		r.emit(progress.Event{Kind: KindInterrupted, Level: progress.Warning, Object: "statefulset/" + r.plan.StatefulSet, Message: msg})
		r.event(wctx, corev1.EventTypeWarning, ReasonInterrupted, msg)
		if rerr := j.Release(wctx, r.rec, msg); rerr != nil {
			return errors.Join(fmt.Errorf("%s: %w", msg, err), rerr)
		}
		return fmt.Errorf("%s: %w", msg, err)
	default:
		msg := fmt.Sprintf("stopped %s: %v", r.where(), err)
		r.event(wctx, corev1.EventTypeWarning, ReasonFailed, msg)
		var ferr error
		if r.state.Template.pending() && r.state.Template.Step == TemplateDeleted {
			// The StatefulSet is gone: leave the record unfinished so the
			// next run recreates it from the saved copy.
			ferr = j.Release(wctx, r.rec, msg)
		} else {
			ferr = j.Finish(wctx, r.rec, journal.Failed, msg)
		}
		if ferr != nil {
			return errors.Join(err, ferr)
		}
		return err
	}
}

func (r *run) where() string {
	if r.current == "" {
		return "before any change"
	}
	return r.current
}

func (r *run) summary() string {
	msg := fmt.Sprintf("claim %s of statefulset %s is %s: %d expanded, %d already done, %d %s restarted",
		r.plan.Claim, r.plan.StatefulSet, r.plan.Size, len(r.res.Expanded), len(r.res.Skipped), len(r.res.Restarted), verb(len(r.res.Restarted), "pod", "pods"))
	if r.res.TemplateUpdated {
		msg += "; the volumeClaimTemplate now requests " + r.plan.Size
	}
	if n := len(r.res.AwaitingRestart); n > 0 {
		msg += fmt.Sprintf("; %d %s a pod restart to finish the file system resize (%s)", n, verb(n, "claim awaits", "claims await"), joinNames(r.res.AwaitingRestart))
	}
	return msg
}

// save writes the state to the journal before the change it announces.
func (r *run) save(ctx context.Context, message string) error {
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 15*time.Second)
	defer cancel()
	if err := r.cfg.Journal.Save(wctx, r.rec, r.state, message); err != nil {
		return fmt.Errorf("recording progress before the next change (nothing more was changed): %w", err)
	}
	return nil
}

func (r *run) emit(ev progress.Event) { r.rep.Emit(ev) }

func (r *run) stepEvent(kind string, level progress.Level, object, msg string) {
	r.emit(progress.Event{Step: r.step, Steps: r.steps, Kind: kind, Level: level, Object: object, Message: msg})
}

func (r *run) warn(_ context.Context, object, msg string) {
	r.emit(progress.Event{Step: r.step, Steps: r.steps, Kind: KindWarning, Level: progress.Warning, Object: object, Message: msg})
}

// event records a Kubernetes Event on the StatefulSet; a failure to record
// is reported, never fatal.
func (r *run) event(ctx context.Context, eventType, reason, msg string) {
	if r.cfg.Events == nil {
		return
	}
	ref := kube.StatefulSetRef(r.cfg.Namespace, r.cfg.Name, r.uid)
	if err := r.cfg.Events.Event(ctx, ref, eventType, reason, msg); err != nil && ctx.Err() == nil {
		r.warn(ctx, "statefulset/"+r.cfg.Name, fmt.Sprintf("could not record event %s: %v", reason, err))
	}
}

// observer turns a wait's gate changes into progress events.
func (r *run) observer() wait.Observer {
	return func(ev wait.Event) {
		if ev.Verdict == wait.Pass {
			return
		}
		obj := ev.Object
		r.stepEvent(KindWaiting, progress.Info, objectRef(obj), "waiting: "+ev.Reason)
	}
}

// objectRef turns "pvc data-db-0" into "pvc/data-db-0".
func objectRef(o string) string {
	for i := 0; i < len(o); i++ {
		if o[i] == ' ' {
			return o[:i] + "/" + o[i+1:]
		}
	}
	return o
}
