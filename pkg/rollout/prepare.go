package rollout

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubectl-sts/kubectl-sts/pkg/journal"
	"github.com/kubectl-sts/kubectl-sts/pkg/wait"
	"github.com/kubectl-sts/kubectl-sts/plugins"
)

// Defaults of the gates.
const (
	DefaultStepTimeout     = 10 * time.Minute
	DefaultRollbackTimeout = 10 * time.Minute
	// observeTimeout bounds the wait for the controller to observe a
	// template the user just applied.
	observeTimeout = 30 * time.Second
)

// Request is what the user asked for.
type Request struct {
	// Steps is the parsed --steps list; empty means the default plan.
	Steps []StepSpec
	// Change is the template change to apply; nil rolls out the pending
	// revision.
	Change *Change
	Gates  Gates
	// PauseAfter lists 1-based steps to pause after; Interactive pauses
	// after every step but the last.
	PauseAfter  []int
	Interactive bool
	NoRollback  bool
	// FinalPartition is the partition left when the rollout succeeds.
	FinalPartition int32
	// Resume continues the recorded rollout (rollout resume), also when it
	// is paused; a plain run only continues an interrupted one.
	Resume bool
	// Force starts although the engine reports the replica set unhealthy
	// before the first change (--force); the reasons become warnings.
	Force bool
}

// Mode is how a rollout found its new revision.
type Mode string

// Modes of a preview.
const (
	// ModePending: the new template is already applied and the partition
	// holds the pods back (the GitOps way).
	ModePending Mode = "pending"
	// ModeChange: the rollout applies the template change itself.
	ModeChange Mode = "change"
	// ModeTakeOver: the controller is already updating pods; the rollout
	// raises the partition to hold the rest and continues staged.
	ModeTakeOver Mode = "take-over"
	// ModeResume: a recorded rollout continues.
	ModeResume Mode = "resume"
	// ModeUndo: roll back to the previous revision on request.
	ModeUndo Mode = "undo"
)

// Preview is everything a rollout will do, computed without changing
// anything: what --dry-run prints and what the confirmation is about.
type Preview struct {
	Namespace   string `json:"namespace"`
	StatefulSet string `json:"statefulSet"`
	Mode        Mode   `json:"mode"`
	// From is the revision before the rollout; To the revision rolled out
	// (empty in change mode until the controller names it).
	From string `json:"from"`
	To   string `json:"to,omitempty"`
	// Partition is the partition now; Hold the partition a take-over
	// raises it to first.
	Partition           int32    `json:"partition"`
	Hold                int32    `json:"hold,omitempty"`
	FinalPartition      int32    `json:"finalPartition"`
	PodManagementPolicy string   `json:"podManagementPolicy"`
	Plan                Plan     `json:"plan"`
	Done                int      `json:"stepsDone"`
	Changes             []string `json:"changes,omitempty"`
	Gates               []string `json:"gates,omitempty"`
	PauseAfter          []int    `json:"pauseAfter,omitempty"`
	OnFailure           string   `json:"onFailure"`
	Warnings            []string `json:"warnings,omitempty"`
	// Record describes the recorded rollout a resume or undo continues.
	Record *RecordInfo `json:"record,omitempty"`
	// Stuck lists pods an undo would delete right away.
	Stuck []string `json:"stuck,omitempty"`
	// Leader is where the leader of an engine that must be rolled last
	// stands in the plan (plugins.LeaderLastEngine).
	Leader *LeaderPlan `json:"leader,omitempty"`
	// Pacing says how the steps advance: controller-paced or held at each
	// step until its gates pass.
	Pacing Pacing `json:"pacing"`

	state *State
}

// RecordInfo summarises a journal record.
type RecordInfo struct {
	Phase     journal.Phase `json:"phase"`
	Started   time.Time     `json:"started"`
	Holder    string        `json:"holder,omitempty"`
	Heartbeat time.Time     `json:"heartbeat,omitzero"`
	Stage     Stage         `json:"stage"`
	Step      int           `json:"step"`
	Steps     int           `json:"steps"`
}

// State returns the state the rollout starts (or continues) from.
func (p *Preview) State() *State { return p.state }

// holderLive reports whether another process holds the record's lease.
func (r *Runner) holderLive(rec *journal.Record) bool {
	return r.Journal.Held(rec) != nil
}

func (r *Runner) getStatefulSet(ctx context.Context) (*appsv1.StatefulSet, error) {
	return r.Client.AppsV1().StatefulSets(r.Namespace).Get(ctx, r.Name, metav1.GetOptions{})
}

// loadUnfinished returns the unfinished rollout record and its state, or
// nils; an unfinished record of another operation is a BusyError.
func (r *Runner) loadUnfinished(ctx context.Context) (*journal.Record, *State, error) {
	rec, err := r.Journal.Load(ctx)
	if err != nil || rec == nil || rec.Phase.Finished() {
		return nil, nil, err
	}
	if rec.Operation != Operation {
		return nil, nil, r.Journal.Busy(rec)
	}
	var st State
	if err := rec.DecodeState(&st); err != nil {
		return nil, nil, needsAttention("the recorded rollout of statefulset %s cannot be read (%v); delete it with: kubectl delete configmap %s -n %s",
			r.Name, err, journal.ConfigMapName(r.Name), r.Namespace)
	}
	return rec, &st, nil
}

// abortedPartition is the partition from before the rollout that the
// journal records as aborted, when that rollout is the one an undo from
// revision from to the StatefulSet's update revision takes back: the abort
// left the partition holding the pods not yet moved, which is not where
// the undo should leave it.
func (r *Runner) abortedPartition(ctx context.Context, sts *appsv1.StatefulSet, from string) (int32, bool) {
	rec, err := r.Journal.Load(ctx)
	if err != nil || rec == nil || rec.Operation != Operation || rec.Phase != journal.Aborted {
		return 0, false
	}
	var st State
	if rec.DecodeState(&st) != nil || st.UID != sts.UID || st.From != from || st.To != sts.Status.UpdateRevision {
		return 0, false
	}
	return st.OriginalPartition, true
}

func recordInfo(rec *journal.Record, st *State) *RecordInfo {
	return &RecordInfo{Phase: rec.Phase, Started: rec.Started, Holder: rec.Holder, Heartbeat: rec.Heartbeat,
		Stage: st.Stage, Step: st.StepNumber(), Steps: len(st.Plan.Steps)}
}

// Prepare reads the StatefulSet and the journal and works out the plan.
// It changes nothing. Refusals are *RefusedError.
func (r *Runner) Prepare(ctx context.Context, req Request) (*Preview, error) {
	sts, err := r.getStatefulSet(ctx)
	if err != nil {
		return nil, err
	}
	rec, recorded, err := r.loadUnfinished(ctx)
	if err != nil {
		return nil, err
	}
	if rec != nil {
		return r.prepareResume(ctx, sts, rec, recorded, req)
	}
	if req.Resume {
		return nil, refuse("no unfinished rollout is recorded for statefulset %s; start one with: kubectl sts rollout %s --staged", r.Name, r.Name)
	}
	if err := preflight(sts); err != nil {
		return nil, err
	}
	if sts, err = r.observed(ctx, sts); err != nil {
		return nil, err
	}
	in, err := r.readStart(ctx, sts, req)
	if err != nil {
		return nil, err
	}
	return PlanStart(*in, req)
}

// StartInputs are what a new rollout is planned from: what readStart
// found in the cluster and the database.
type StartInputs struct {
	// StatefulSet is the StatefulSet as its controller observed it.
	StatefulSet *appsv1.StatefulSet
	// Pods are its pods (wait.ListPods), by name.
	Pods map[string]*corev1.Pod
	// Engine is the database engine (nil for none), or EngineErr the
	// refusal of the --engine value.
	Engine    plugins.Engine
	EngineErr error
	// Membership (or MembershipErr) is a consensus engine's voting
	// membership; Members (or MembersErr) the engine's view of its
	// members. Read only when the plan consults them.
	Membership    plugins.Membership
	MembershipErr error
	Members       []plugins.Member
	MembersErr    error
	// Leadership (or LeadershipErr) is where the leader of an engine that
	// must be rolled last stands.
	Leadership    plugins.Leadership
	LeadershipErr error
	// MaxUnavailableDropped is set when the server would not keep
	// spec.updateStrategy.rollingUpdate.maxUnavailable (its feature is off).
	MaxUnavailableDropped bool
	// Now names the rollout.
	Now time.Time
}

// readStart reads what PlanStart needs for a new rollout of sts: its pods
// (once), its engine and the engine's view. The engine is asked only when
// the plan will consult it, as PlanStart would (valid lag bounds, quorum
// kept).
func (r *Runner) readStart(ctx context.Context, sts *appsv1.StatefulSet, req Request) (*StartInputs, error) {
	pods, err := r.listPods(ctx, sts)
	if err != nil {
		return nil, err
	}
	in := &StartInputs{StatefulSet: sts, Pods: pods, Now: r.now()}
	in.MaxUnavailableDropped = r.maxUnavailableDropped(ctx, sts)
	in.Engine, in.EngineErr = r.engine(sts, req.Gates.Engine)
	e := in.Engine
	if in.EngineErr != nil || e == nil || plugins.CheckLagBounds(e, plugins.HealthOptions{MaxLagBytes: req.Gates.MaxLagBytes, MaxLagSeconds: req.Gates.MaxLagSeconds}) != nil {
		return in, nil
	}
	t := plugins.Target{StatefulSet: sts, Pods: wait.Snapshot{StatefulSet: sts, Pods: pods}.OrderedPods(), Exec: r.Exec, Container: req.Gates.ExecContainer}
	if q, ok := e.(plugins.QuorumEngine); ok {
		in.Membership, in.MembershipErr = q.Membership(ctx, t)
		if in.MembershipErr != nil || in.Membership.LostReason() != "" {
			return in, nil
		}
	}
	in.Members, in.MembersErr = e.Members(ctx, t)
	if in.MembersErr != nil && ctx.Err() != nil {
		return nil, ctx.Err()
	}
	if ll, ok := e.(plugins.LeaderLastEngine); ok && (req.Force || unhealthy(e, in.Members, in.MembersErr) == "") {
		in.Leadership, in.LeadershipErr = ll.Leadership(ctx, t)
	}
	return in, nil
}

// PlanStart plans a new rollout from in and req alone: the steps, the
// mode (pending revision, template change, take-over), the gates, the
// pauses, and the refusals of bad input or an unhealthy engine. It makes
// no request.
func PlanStart(in StartInputs, req Request) (*Preview, error) {
	sts := in.StatefulSet
	name := sts.Name
	replicas, start := Replicas(sts), OrdinalsStart(sts)
	plan, err := BuildPlan(sts.Name, replicas, start, req.Steps)
	if err != nil {
		return nil, &RefusedError{Reason: err.Error(), Input: true}
	}
	planBudget(sts, in.MaxUnavailableDropped, &plan)
	pv := &Preview{
		Namespace: sts.Namespace, StatefulSet: name, Plan: plan,
		From: sts.Status.CurrentRevision, Partition: Partition(sts), FinalPartition: req.FinalPartition,
		PodManagementPolicy: string(sts.Spec.PodManagementPolicy),
	}
	if pv.PodManagementPolicy == "" {
		pv.PodManagementPolicy = string(appsv1.OrderedReadyPodManagement)
	}
	if sts.Spec.PodManagementPolicy == appsv1.ParallelPodManagement {
		pv.Warnings = append(pv.Warnings, "podManagementPolicy is Parallel: the controller still updates one pod at a time from the highest ordinal, "+
			"but it creates and deletes pods without waiting for their neighbours, so ordering guarantees differ from OrderedReady")
	}
	if req.FinalPartition < 0 || req.FinalPartition > replicas {
		return nil, refuseInput("--final-partition %d is outside 0..%d (the replica count)", req.FinalPartition, replicas)
	}

	pending := sts.Status.UpdateRevision != "" && sts.Status.UpdateRevision != sts.Status.CurrentRevision
	updated := int32(0)
	switch {
	case !req.Change.Empty() && pending:
		return nil, refuseInput("statefulset %s already has a pending revision %s (current %s); roll it out without --image/--env/--patch/-f, or undo it first with: kubectl sts rollout undo %s",
			name, sts.Status.UpdateRevision, sts.Status.CurrentRevision, name)
	case !req.Change.Empty():
		pv.Mode = ModeChange
		t, err := req.Change.Apply(sts)
		if err != nil {
			return nil, &RefusedError{Reason: err.Error(), Input: true}
		}
		if equality.Semantic.DeepEqual(*t, sts.Spec.Template) {
			return nil, refuseInput("the change leaves the pod template of statefulset %s as it is: nothing to roll out", name)
		}
		pv.Changes = req.Change.Describe()
	case !pending:
		return nil, refuseInput("nothing to roll out: statefulset %s has no pending revision (update revision = current revision %s) and no change was given; "+
			"give --image, --env, --patch or -f, or apply the new template with the partition at %d first",
			name, sts.Status.CurrentRevision, replicas)
	default:
		pv.To = sts.Status.UpdateRevision
		updated = topUpdated(sts, in.Pods, pv.To)
		target := max(replicas-Partition(sts), 0)
		pv.Mode = ModePending
		if target > updated {
			pv.Mode = ModeTakeOver
			pv.Hold = replicas - updated
			pv.Warnings = append(pv.Warnings, fmt.Sprintf(
				"the controller is already rolling out revision %s (partition %d lets it update %d pods, %d are done): the rollout takes over by raising the partition to %d, then continues in steps",
				pv.To, Partition(sts), target, updated, pv.Hold))
		}
	}
	pv.Done = plan.FirstPending(updated)

	engine := in.Engine
	if in.EngineErr != nil {
		return nil, in.EngineErr
	}
	gates := req.Gates
	if gates.StepTimeout <= 0 {
		gates.StepTimeout = DefaultStepTimeout
	}
	if gates.RollbackTimeout <= 0 {
		gates.RollbackTimeout = DefaultRollbackTimeout
	}
	gates.Engine = plugins.EngineNone
	if engine != nil {
		gates.Engine = engine.Name()
		if err := plugins.CheckLagBounds(engine, plugins.HealthOptions{MaxLagBytes: gates.MaxLagBytes, MaxLagSeconds: gates.MaxLagSeconds}); err != nil {
			return nil, &RefusedError{Reason: err.Error(), Input: true}
		}
		if _, ok := engine.(plugins.QuorumEngine); ok {
			if err := checkQuorum(engine.Name(), name, in.Membership, in.MembershipErr); err != nil {
				return nil, err
			}
		}
		why := unhealthy(engine, in.Members, in.MembersErr)
		switch {
		case why != "" && req.Force:
			pv.Warnings = append(pv.Warnings, fmt.Sprintf("--force: starting although %s reports the replica set unhealthy: %s", engine.Name(), why))
		case why != "":
			return nil, refuse("%s reports the replica set of statefulset %s unhealthy before any change: %s. "+
				"A rollout would fail its first engine gate after updating a pod; fix the database first, or pass --force to start anyway",
				engine.Name(), name, why)
		}
		if ll, ok := engine.(plugins.LeaderLastEngine); ok {
			pv.Leader = leaderPlanOf(ll, in.Leadership, in.LeadershipErr, in.Pods, plan, pv.Done, pv.To)
		}
	} else if gates.MaxLagBytes > 0 || gates.MaxLagSeconds > 0 {
		return nil, refuseInput("--max-lag needs a database engine, and none was detected for statefulset %s; name it with --engine", name)
	}

	pause := append([]int(nil), req.PauseAfter...)
	if req.Interactive {
		for i := 1; i < len(plan.Steps); i++ {
			pause = append(pause, i)
		}
	}
	pause = uniqueSorted(pause)
	for _, p := range pause {
		if p < 1 || p >= len(plan.Steps) {
			return nil, refuseInput("--pause-after %d is not a step after which the plan continues (the plan has %d steps; pause after 1..%d)", p, len(plan.Steps), len(plan.Steps)-1)
		}
	}
	pv.PauseAfter = pause

	st := &State{
		ID: in.Now.UTC().Format("20060102T150405.000000000Z"), UID: sts.UID, Plan: plan, Gates: gates,
		From: sts.Status.CurrentRevision, To: pv.To, OriginalPartition: Partition(sts), FinalPartition: req.FinalPartition,
		Stage: StageSteps, Current: pv.Done, Steps: make([]StepState, len(plan.Steps)),
		PauseAfter: pause, NoRollback: req.NoRollback,
	}
	for i := 0; i < pv.Done; i++ {
		st.Steps[i].Skipped = true
	}
	if pv.Mode == ModeChange {
		st.Stage = StageApply
		st.Change = req.Change
	}
	pv.state = st
	pv.Gates = describeGates(st, engine)
	pv.OnFailure = describeFailure(st)
	planPacing(pv, st, engine)
	return pv, nil
}

// checkQuorum refuses to start rolling a consensus system that has
// already lost a voter: restarting one more member may lose quorum. m is
// the membership, err why it could not be read.
func checkQuorum(engine, name string, m plugins.Membership, err error) error {
	if err != nil {
		return refuse("cannot read the %s membership of statefulset %s to check quorum: %v; fix the cluster, or pass --engine none to roll out without the engine's gates", engine, name, err)
	}
	if why := m.LostReason(); why != "" {
		return refuse("%s", why)
	}
	return nil
}

// prepareResume continues a recorded rollout.
func (r *Runner) prepareResume(ctx context.Context, sts *appsv1.StatefulSet, rec *journal.Record, st *State, req Request) (*Preview, error) {
	if sts.DeletionTimestamp != nil {
		return nil, refuseDeleting(sts)
	}
	info := recordInfo(rec, st)
	switch {
	case !req.Change.Empty() && !r.sameChange(sts, st, req.Change):
		return nil, refuseInput("an unfinished rollout of statefulset %s (%s, step %d of %d, started %s) is recorded; continue it with: kubectl sts rollout resume %s, or undo it with: kubectl sts rollout undo %s, before rolling out another change",
			r.Name, rec.Phase, info.Step, info.Steps, rec.Started.UTC().Format(time.RFC3339), r.Name, r.Name)
	case rec.Phase == journal.Paused && !req.Resume:
		return nil, refuse("the rollout of statefulset %s is paused after step %d of %d, waiting for approval; continue it with: kubectl sts rollout resume %s (or undo it with: kubectl sts rollout undo %s)",
			r.Name, st.PausedAfter, len(st.Plan.Steps), r.Name, r.Name)
	case r.holderLive(rec) && !r.Journal.TakesOver():
		return nil, r.Journal.Held(rec)
	}
	if err := r.checkUnchanged(sts, st); err != nil {
		return nil, err
	}
	pv := &Preview{
		Namespace: r.Namespace, StatefulSet: r.Name, Mode: ModeResume, From: st.From, To: st.To,
		Partition: Partition(sts), FinalPartition: st.FinalPartition, PodManagementPolicy: string(sts.Spec.PodManagementPolicy),
		Plan: st.Plan, Done: st.Current, PauseAfter: st.PauseAfter, Record: info, state: st,
	}
	if st.Change != nil {
		pv.Changes = st.Change.Describe()
	}
	if len(req.Steps) > 0 {
		if p, err := BuildPlan(sts.Name, Replicas(sts), OrdinalsStart(sts), req.Steps); err != nil || !p.Equal(st.Plan) {
			pv.Warnings = append(pv.Warnings, "the recorded plan is resumed; --steps given now is ignored")
		}
	}
	engine, err := r.engine(sts, st.Gates.Engine)
	if err != nil {
		return nil, err
	}
	if ll, ok := engine.(plugins.LeaderLastEngine); ok && st.Stage == StageSteps {
		pv.Leader = r.planLeader(ctx, ll, sts, st.Plan, st.Current, st.To, st.Gates.ExecContainer)
	}
	pv.Gates = describeGates(st, engine)
	pv.OnFailure = describeFailure(st)
	if st.Stage == StageSteps || st.Stage == StageApply {
		planPacing(pv, st, engine)
	}
	return pv, nil
}

// sameChange reports whether change is the one the record is rolling out:
// still to apply and equal, or applied, so that applying it again to the
// live template changes nothing. Running the same command again then
// continues the rollout.
func (r *Runner) sameChange(sts *appsv1.StatefulSet, st *State, change *Change) bool {
	if st.Change != nil {
		a, errA := json.Marshal(st.Change)
		b, errB := json.Marshal(change)
		return errA == nil && errB == nil && bytes.Equal(a, b)
	}
	if st.To == "" || sts.Status.UpdateRevision != st.To {
		return false
	}
	tmpl, err := change.Apply(sts.DeepCopy())
	return err == nil && equality.Semantic.DeepEqual(*tmpl, sts.Spec.Template)
}

// checkUnchanged refuses to continue a rollout whose StatefulSet was
// changed under it in a way the record cannot account for.
func (r *Runner) checkUnchanged(sts *appsv1.StatefulSet, st *State) error {
	if sts.UID != st.UID {
		return needsAttention("statefulset %s was deleted and recreated since the rollout started; the record no longer applies: check the pods, then delete the record with: kubectl delete configmap %s -n %s",
			r.Name, journal.ConfigMapName(r.Name), r.Namespace)
	}
	if st.Stage == StageRollback {
		return nil
	}
	if st.Plan.Replicas != Replicas(sts) {
		return needsAttention("statefulset %s was scaled from %d to %d replicas during the rollout; the plan no longer fits: undo it with: kubectl sts rollout undo %s, or abort it with: kubectl sts rollout abort %s",
			r.Name, st.Plan.Replicas, Replicas(sts), r.Name, r.Name)
	}
	if st.To != "" && sts.Status.ObservedGeneration >= sts.Generation && sts.Status.UpdateRevision != st.To {
		return needsAttention("the pod template of statefulset %s changed during the rollout (update revision now %s, the rollout was rolling out %s); undo it with: kubectl sts rollout undo %s, or abort it with: kubectl sts rollout abort %s",
			r.Name, sts.Status.UpdateRevision, st.To, r.Name, r.Name)
	}
	return nil
}

// PrepareUndo works out a rollback to the previous revision: the one the
// recorded rollout started from, or else the current revision of a
// rollout in progress, or else the revision before the current one.
// A positive timeout overrides the rollback timeout.
func (r *Runner) PrepareUndo(ctx context.Context, timeout time.Duration) (*Preview, error) {
	sts, err := r.getStatefulSet(ctx)
	if err != nil {
		return nil, err
	}
	if sts.DeletionTimestamp != nil {
		return nil, refuseDeleting(sts)
	}
	if sts.Spec.UpdateStrategy.Type == appsv1.OnDeleteStatefulSetStrategyType {
		return nil, refuse("statefulset %s uses updateStrategy OnDelete, which this rollback does not drive; use kubectl rollout undo statefulset/%s and delete the pods yourself", r.Name, r.Name)
	}
	rec, st, err := r.loadUnfinished(ctx)
	if err != nil {
		return nil, err
	}
	pv := &Preview{Namespace: r.Namespace, StatefulSet: r.Name, Mode: ModeUndo, Partition: Partition(sts),
		PodManagementPolicy: string(sts.Spec.PodManagementPolicy)}
	if rec != nil {
		if held := r.Journal.Held(rec); held != nil && !r.Journal.TakesOver() {
			return nil, held
		}
		if sts.UID != st.UID {
			return nil, r.checkUnchanged(sts, st)
		}
		pv.Record = recordInfo(rec, st)
		toUndo(st, r.now())
	} else {
		if sts, err = r.observed(ctx, sts); err != nil {
			return nil, err
		}
		from := sts.Status.CurrentRevision
		if sts.Status.UpdateRevision == sts.Status.CurrentRevision {
			revs, err := Revisions(ctx, r.Client, sts)
			if err != nil {
				return nil, err
			}
			prev := PreviousRevision(revs, sts.Status.UpdateRevision)
			if prev == nil {
				return nil, refuse("statefulset %s has no revision before %s to roll back to", r.Name, sts.Status.UpdateRevision)
			}
			from = prev.Name
		}
		st = &State{ID: r.now().UTC().Format("20060102T150405.000000000Z"), UID: sts.UID, From: from, To: sts.Status.UpdateRevision,
			OriginalPartition: Partition(sts), Gates: Gates{RollbackTimeout: DefaultRollbackTimeout}}
		if original, ok := r.abortedPartition(ctx, sts, from); ok {
			st.OriginalPartition = original
		}
		st.Plan = Plan{StatefulSet: r.Name, Replicas: Replicas(sts), OrdinalsStart: OrdinalsStart(sts)}
		toUndo(st, r.now())
	}
	if timeout > 0 {
		st.Gates.RollbackTimeout = timeout
	}
	pv.From, pv.To, pv.FinalPartition = st.From, st.To, st.OriginalPartition
	pv.Plan = st.Plan
	pods, err := r.listPods(ctx, sts)
	if err != nil {
		return nil, err
	}
	for _, p := range sortedPods(pods) {
		if wait.PodRevision(p) != st.From && p.DeletionTimestamp == nil && !wait.IsPodReady(p) {
			pv.Stuck = append(pv.Stuck, p.Name)
		}
	}
	pv.OnFailure = describeFailure(st)
	pv.state = st
	return pv, nil
}

// toUndo turns a state into a rollback requested by the user.
func toUndo(st *State, now time.Time) {
	if st.Stage == StageRollback && st.Rollback != nil {
		return
	}
	st.Stage = StageRollback
	st.Rollback = &RollbackState{Reason: "undo requested with kubectl sts rollout undo", Started: now}
	if st.Gates.RollbackTimeout <= 0 {
		st.Gates.RollbackTimeout = DefaultRollbackTimeout
	}
}

// refuseDeleting refuses a StatefulSet being deleted: its controller no
// longer updates or replaces pods, so no step would move and a rollback
// would delete pods that never come back.
func refuseDeleting(sts *appsv1.StatefulSet) error {
	return refuse("statefulset %s is being deleted", sts.Name)
}

// preflight refuses StatefulSets a staged rollout cannot drive.
func preflight(sts *appsv1.StatefulSet) error {
	if sts.DeletionTimestamp != nil {
		return refuseDeleting(sts)
	}
	if sts.Spec.UpdateStrategy.Type == appsv1.OnDeleteStatefulSetStrategyType {
		return refuse("statefulset %s uses updateStrategy OnDelete: the controller moves no pod by itself and the partition has no effect, so a staged rollout cannot drive it. "+
			"Switch it to RollingUpdate with the partition holding every pod, then run the rollout: kubectl patch statefulset %s -n %s -p '{\"spec\":{\"updateStrategy\":{\"type\":\"RollingUpdate\",\"rollingUpdate\":{\"partition\":%d}}}}'",
			sts.Name, sts.Name, sts.Namespace, Replicas(sts))
	}
	if Replicas(sts) == 0 {
		return refuse("statefulset %s has 0 replicas: there are no pods to roll out (scale it up first, or change the template directly)", sts.Name)
	}
	return nil
}

// observed returns the StatefulSet once its controller has observed the
// latest spec, so the revisions in its status are current: a template
// applied a moment ago may not have been seen yet.
func (r *Runner) observed(ctx context.Context, sts *appsv1.StatefulSet) (*appsv1.StatefulSet, error) {
	if sts.Status.ObservedGeneration >= sts.Generation {
		return sts, nil
	}
	tctx, cancel := context.WithCancel(ctx)
	defer cancel()
	tr := wait.NewTracker(r.Client, r.Namespace, r.Name)
	if err := tr.Start(tctx); err != nil {
		return nil, err
	}
	if err := wait.WaitGates(tctx, tr, observeTimeout, wait.StatefulSetObserved(r.Name, sts.Generation)); err != nil {
		var te *wait.TimeoutError
		if errors.As(err, &te) {
			return nil, refuse("the StatefulSet controller has not observed generation %d of statefulset %s (%s); is kube-controller-manager running?", sts.Generation, r.Name, te.LastState)
		}
		return nil, err
	}
	return tr.Snapshot().StatefulSet, nil
}

// listPods reads the pods of sts (wait.ListPods), keyed by name.
func (r *Runner) listPods(ctx context.Context, sts *appsv1.StatefulSet) (map[string]*corev1.Pod, error) {
	pods, err := wait.ListPods(ctx, r.Client, sts)
	if err != nil {
		return nil, err
	}
	out := make(map[string]*corev1.Pod, len(pods))
	for _, p := range pods {
		out[p.Name] = p
	}
	return out, nil
}

func sortedPods(pods map[string]*corev1.Pod) []*corev1.Pod {
	out := make([]*corev1.Pod, 0, len(pods))
	for _, p := range pods {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// topUpdated counts the pods from the highest ordinal down that exist at
// revision, stopping at the first that does not: the pods a partition of
// replicas minus that count would leave where they are.
func topUpdated(sts *appsv1.StatefulSet, pods map[string]*corev1.Pod, revision string) int32 {
	replicas, start := Replicas(sts), OrdinalsStart(sts)
	n := int32(0)
	for idx := replicas - 1; idx >= 0; idx-- {
		p := pods[wait.PodName(sts.Name, int(start+idx))]
		if p == nil || p.DeletionTimestamp != nil || wait.PodRevision(p) != revision {
			break
		}
		n++
	}
	return n
}

// unhealthy says why the engine finds the replica set unhealthy (or
// could not be read), "" when healthy.
func unhealthy(e plugins.Engine, members []plugins.Member, err error) string {
	if err != nil {
		return "cannot read the database: " + err.Error()
	}
	if ok, why := e.Healthy(members, plugins.HealthOptions{}); !ok {
		return why
	}
	return ""
}

func (r *Runner) engine(sts *appsv1.StatefulSet, name string) (plugins.Engine, error) {
	if r.Engines == nil {
		switch strings.ToLower(name) {
		case "", plugins.EngineAuto, plugins.EngineNone:
			return nil, nil
		}
		return nil, refuseInput("unknown engine %q: no database engines are available in this build (use --engine auto or none)", name)
	}
	e, err := r.Engines.Detect(sts, name)
	if err != nil {
		return nil, &RefusedError{Reason: err.Error(), Input: true}
	}
	return e, nil
}

func uniqueSorted(in []int) []int {
	sort.Ints(in)
	var out []int
	for i, v := range in {
		if i == 0 || v != in[i-1] {
			out = append(out, v)
		}
	}
	return out
}

func describeGates(st *State, engine plugins.Engine) []string {
	g := st.Gates
	rev := "revision " + st.To
	if st.To == "" {
		rev = "the new revision"
	}
	out := []string{
		fmt.Sprintf("every pod at or above the partition Ready at %s, none crash-looping, the controller has observed the change (timeout %s per step)", rev, g.StepTimeout),
	}
	if g.Soak > 0 {
		out = append(out, fmt.Sprintf("those pods stay Ready with unchanged restart counts for %s", g.Soak))
	}
	if g.Exec != "" {
		where := ""
		if g.ExecContainer != "" {
			where = " (container " + g.ExecContainer + ")"
		}
		out = append(out, fmt.Sprintf("in each pod the step updated, sh -c %q exits 0%s", g.Exec, where))
	}
	if g.Command != "" {
		out = append(out, fmt.Sprintf("on this machine, sh -c %q exits 0 (environment: KUBECTL_STS_NAMESPACE, KUBECTL_STS_STATEFULSET, KUBECTL_STS_STEP, KUBECTL_STS_PODS, ...)", g.Command))
	}
	if engine != nil {
		h := fmt.Sprintf("%s reports the replica set healthy", engine.Name())
		var bounds []string
		if g.MaxLagBytes > 0 {
			bounds = append(bounds, fmt.Sprintf("%d bytes", g.MaxLagBytes))
		}
		if g.MaxLagSeconds > 0 {
			bounds = append(bounds, fmt.Sprintf("%gs", g.MaxLagSeconds))
		}
		if len(bounds) > 0 {
			h += " with replication lag under " + strings.Join(bounds, " and ")
		}
		out = append(out, h)
	}
	return out
}

func describeFailure(st *State) string {
	if st.NoRollback {
		return "stop and leave the pods as they are, the partition holding the rest (--no-rollback); exit code 5"
	}
	return fmt.Sprintf("roll back to revision %s: restore its pod template with the partition at 0, delete the pods stuck on another revision, wait until every pod is Ready on it (timeout %s), then set the partition back to %d; exit code 4",
		st.From, st.Gates.RollbackTimeout, st.OriginalPartition)
}
