package scaledown

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"

	"github.com/kubectl-sts/kubectl-sts/pkg/journal"
	"github.com/kubectl-sts/kubectl-sts/pkg/kube"
	"github.com/kubectl-sts/kubectl-sts/pkg/status"
	"github.com/kubectl-sts/kubectl-sts/pkg/wait"
	"github.com/kubectl-sts/kubectl-sts/plugins"
)

// Prepare reads the cluster (Read) and computes the plan from what it
// read (BuildPlan), without changing anything. It returns
//
//   - an *InvalidError when the request cannot be carried out as asked
//     (target not below the current count, a claim action the retention
//     policy overrides, a missing VolumeSnapshot class, ...);
//   - a *SnapshotAPIMissingError for --pvc snapshot without the API;
//   - the plan together with a *RefusedError when the StatefulSet's state
//     makes the scale-down unsafe (a removed ordinal is the primary, a
//     PodDisruptionBudget would be violated, a rollout is in progress...),
//     so the caller can show what would have happened and why not; a
//     StatefulSet being deleted is refused with no plan (nothing past it
//     was read);
//   - the plan, resuming an interrupted run when the journal holds one.
func Prepare(ctx context.Context, cfg Config, d Deps) (*Plan, error) {
	in, err := Read(ctx, cfg, d)
	if err != nil {
		return nil, err
	}
	p, err := BuildPlan(*in, cfg)
	if err != nil || !p.cfg.Cleanup {
		return p, err
	}
	// A cleanup asks the engine for leftover slots only once the claims
	// are planned.
	return p.planLeftovers(ctx, d, in.Pods)
}

// Inputs are everything a scale-down plan is built from: what Read found
// in the cluster, the journal and the database engine. BuildPlan decides
// from them alone.
type Inputs struct {
	StatefulSet *appsv1.StatefulSet
	// Now is the time the state is judged at.
	Now time.Time
	// Record is the journal's record of the StatefulSet (nil when none);
	// Held is set when another live process holds it; TakeOver when this
	// run may take it over all the same.
	Record   *journal.Record
	Held     *journal.HeldError
	TakeOver bool
	// Pods and PVCs are the StatefulSet's own (wait.ReadFor).
	Pods []*corev1.Pod
	PVCs []*corev1.PersistentVolumeClaim
	// SnapshotClass is the VolumeSnapshotClass to use, or SnapshotErr why
	// there is none; read only when the plan may snapshot claims.
	SnapshotClass string
	SnapshotErr   error
	// Engine is the database engine (nil for none) or EngineErr why it
	// could not be chosen. Members (or MembersErr) is its view of the
	// members; Membership (or MembershipErr) the voting membership of a
	// consensus engine. Not read for a claim cleanup; EngineAsked is set
	// when an engine was asked for at all (Deps.EngineFor).
	EngineAsked   bool
	Engine        plugins.Engine
	EngineErr     error
	Members       []plugins.Member
	MembersErr    error
	Membership    plugins.Membership
	MembershipErr error
	// AutoscalerReason refuses the scale-down (an autoscaler manages the
	// StatefulSet); AutoscalerErr says the autoscalers could not be read.
	AutoscalerReason string
	AutoscalerErr    error
	// PDBs are the namespace's PodDisruptionBudgets (PDBsForbidden when
	// they may not be read) and PDBPods the pods of those that cover the
	// StatefulSet, each listed by its budget's selector.
	PDBs          []policyv1.PodDisruptionBudget
	PDBsForbidden bool
	PDBPods       []corev1.Pod
	// Denied are the permissions the run needs that the caller lacks
	// (AccessErr: they could not be checked).
	Denied    []kube.Access
	AccessErr error
}

// Read gathers the Inputs of a scale-down of cfg.Name: the StatefulSet,
// the journal's record, the StatefulSet's pods and claims (wait.ReadFor),
// the VolumeSnapshot class, the engine's view, autoscalers and disruption
// budgets. It reads only what the plan will consult (nothing past the
// StatefulSet when it is being deleted or the request cannot be resumed;
// no engine, autoscaler or budget for a claim cleanup). It changes
// nothing.
func Read(ctx context.Context, cfg Config, d Deps) (*Inputs, error) {
	cfg, err := cfg.normalized()
	if err != nil {
		return nil, err
	}
	sts, err := d.Kube.AppsV1().StatefulSets(cfg.Namespace).Get(ctx, cfg.Name, metav1.GetOptions{})
	if err != nil {
		return nil, err
	}
	in := &Inputs{StatefulSet: sts, Now: d.now(), TakeOver: d.TakeOver}
	if sts.DeletionTimestamp != nil {
		return in, nil
	}
	j := d.journal(sts.Namespace, sts.Name)
	if in.Record, err = j.Load(ctx); err != nil {
		return nil, err
	}
	in.Held = j.Held(in.Record)
	// The plan's own first decisions say what else is needed; when they
	// refuse, BuildPlan says so from these inputs.
	p := newPlan(sts, cfg)
	if err := p.resumeOrStart(*in); err != nil {
		return in, nil
	}
	cfg = p.cfg
	objs, err := wait.ReadFor(ctx, d.Kube, sts)
	if err != nil {
		return nil, err
	}
	in.Pods, in.PVCs = objs.Pods, objs.PVCs
	if action, err := claimAction(sts, cfg); err == nil && action == PVCSnapshot {
		in.SnapshotClass, in.SnapshotErr = checkSnapshotAPI(ctx, d.Kube.Discovery(), d.Dynamic, cfg.SnapshotClass)
	}
	if cfg.Cleanup {
		in.Denied, in.AccessErr = kube.Denied(ctx, d.Kube, sts.Namespace, accessNeeded(sts, cfg, in.Record, cfg.CleanupSlots))
		return in, nil
	}
	if d.EngineFor != nil {
		in.EngineAsked = true
		in.Engine, in.EngineErr = d.EngineFor(sts)
	}
	engine, err := p.resolveEngine(*in)
	in.Denied, in.AccessErr = kube.Denied(ctx, d.Kube, sts.Namespace, accessNeeded(sts, cfg, in.Record, err == nil && engine != nil))
	if err == nil && engine != nil {
		target := plugins.Target{StatefulSet: sts, Pods: in.Pods, Exec: d.Exec, Container: cfg.Container}
		in.Members, in.MembersErr = engine.Members(ctx, target)
		if in.MembersErr != nil && ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if q, ok := engine.(plugins.QuorumEngine); ok && in.MembersErr == nil {
			in.Membership, in.MembershipErr = q.Membership(ctx, target)
		}
	}
	in.AutoscalerReason, in.AutoscalerErr = checkAutoscalers(ctx, d, sts)
	pdbs, err := d.Kube.PolicyV1().PodDisruptionBudgets(sts.Namespace).List(ctx, metav1.ListOptions{})
	switch {
	case apierrors.IsForbidden(err):
		in.PDBsForbidden = true
	case err != nil:
		return nil, fmt.Errorf("listing poddisruptionbudgets: %w", err)
	default:
		in.PDBs = pdbs.Items
		if in.PDBPods, err = podsOfBudgets(ctx, d, sts, pdbs.Items); err != nil {
			return nil, err
		}
	}
	return in, nil
}

// accessNeeded are the permissions a run of cfg needs in the StatefulSet's
// namespace (docs/rbac.yaml grants them): checked before the first change,
// since a run that scaled down and then met a Forbidden would stop
// part-way, its record holding the StatefulSet.
func accessNeeded(sts *appsv1.StatefulSet, cfg Config, rec *journal.Record, engine bool) []kube.Access {
	var need []kube.Access
	if rec == nil {
		need = append(need, kube.Access{Verb: "create", Resource: "configmaps"})
	}
	need = append(need, kube.Access{Verb: "update", Resource: "configmaps"})
	if !cfg.Cleanup {
		need = append(need, kube.Access{Verb: "patch", Group: "apps", Resource: "statefulsets"})
	}
	if engine {
		need = append(need, kube.Access{Verb: "create", Resource: "pods", Subresource: "exec"})
	}
	switch action, _ := claimAction(sts, cfg); action {
	case PVCSnapshot:
		need = append(need, kube.Access{Verb: "create", Group: "snapshot.storage.k8s.io", Resource: "volumesnapshots"})
		fallthrough
	case PVCDelete:
		need = append(need, kube.Access{Verb: "delete", Resource: "persistentvolumeclaims"})
	}
	return need
}

// refuseDenied refuses a run that lacks a permission it needs, before it
// changes anything; a check that could not be made is a warning.
func (p *Plan) refuseDenied(in Inputs, refuse *RefusedError) {
	if in.AccessErr != nil {
		p.Warnings = append(p.Warnings, fmt.Sprintf("could not check the permissions the run needs before starting: %v", in.AccessErr))
	}
	for _, a := range in.Denied {
		refuse.Reasons = append(refuse.Reasons, fmt.Sprintf(
			"missing permission: %s in namespace %s, which this run needs (without it the run would stop part-way); see docs/rbac.md for the Role kubectl-sts needs",
			a, p.Namespace))
	}
}

// normalized checks the request and fills in the default claim action.
func (c Config) normalized() (Config, error) {
	if c.Name == "" {
		return c, &InvalidError{Msg: "no StatefulSet name given"}
	}
	switch c.PVC {
	case PVCKeep, PVCDelete, PVCSnapshot:
	case "":
		c.PVC = PVCKeep
		if c.Cleanup {
			c.PVC = PVCDelete
		}
	default:
		return c, &InvalidError{Msg: fmt.Sprintf("invalid claim action %q: use keep, delete or snapshot", c.PVC)}
	}
	if c.Cleanup && c.PVC == PVCKeep && !c.CleanupSlots {
		return c, &InvalidError{Msg: "cleaning up claims with the action keep would do nothing: use delete or snapshot"}
	}
	return c, nil
}

func newPlan(sts *appsv1.StatefulSet, cfg Config) *Plan {
	return &Plan{
		Kind: PlanKind, Operation: cfg.operation(),
		Namespace: sts.Namespace, StatefulSet: sts.Name, UID: sts.UID,
		OrdinalsStart: OrdinalsStart(sts), Current: Replicas(sts),
		WhenScaled: whenScaled(sts), Steps: []PlanStep{},
		cfg: cfg, sts: sts,
	}
}

// claimAction is what happens to the claims of removed ordinals: the
// request's action, unless the retention policy leaves them to Kubernetes.
func claimAction(sts *appsv1.StatefulSet, cfg Config) (PVCAction, error) {
	if whenScaled(sts) != string(appsv1.DeletePersistentVolumeClaimRetentionPolicyType) || cfg.Cleanup {
		return cfg.PVC, nil
	}
	if cfg.PVCExplicit && cfg.PVC != PVCDelete {
		return "", &InvalidError{Msg: fmt.Sprintf(
			"--pvc %s cannot be honoured: statefulset %s has persistentVolumeClaimRetentionPolicy.whenScaled: Delete, so Kubernetes deletes the claims of removed ordinals itself. "+
				"To keep them, first set whenScaled to Retain: kubectl patch statefulset %s -n %s --type merge -p '{\"spec\":{\"persistentVolumeClaimRetentionPolicy\":{\"whenScaled\":\"Retain\"}}}'",
			cfg.PVC, sts.Name, sts.Name, sts.Namespace)}
	}
	return PVCByKubernetes, nil
}

// BuildPlan computes the plan of a scale-down (or claim cleanup) of cfg
// from in, and nothing else: it reads no clock and makes no request.
// Results are as for Prepare.
func BuildPlan(in Inputs, cfg Config) (*Plan, error) {
	cfg, err := cfg.normalized()
	if err != nil {
		return nil, err
	}
	sts := in.StatefulSet
	refuse := &RefusedError{StatefulSet: sts.Name}
	if sts.DeletionTimestamp != nil {
		// Nothing past the StatefulSet was read, so there is no plan to
		// show: a half-built one would say "from 0 to 0 replicas".
		refuse.Reasons = append(refuse.Reasons, fmt.Sprintf("statefulset %s is being deleted", sts.Name))
		return nil, refuse
	}
	p := newPlan(sts, cfg)

	if err := p.resumeOrStart(in); err != nil {
		return nil, err
	}
	cfg = p.cfg

	owned := PodsByOrdinal(sts, in.Pods)
	claims := ClaimsByOrdinal(sts, in.PVCs)

	// Which ordinals, and what happens to their claims.
	var ordinals []int
	if cfg.Cleanup {
		if cfg.PVC != PVCKeep {
			ordinals = LeftoverOrdinals(sts, claims, owned)
		}
		p.From, p.To = p.Current, p.Current
	} else {
		ordinals = RemovedOrdinals(sts, p.From, p.To)
	}
	if p.PVC, err = claimAction(sts, cfg); err != nil {
		return nil, err
	}
	if p.PVC == PVCByKubernetes {
		p.Warnings = append(p.Warnings,
			"persistentVolumeClaimRetentionPolicy.whenScaled is Delete: Kubernetes itself deletes the claims of removed ordinals once their pods are gone; kubectl-sts leaves that to it")
	}
	if p.PVC == PVCSnapshot {
		if in.SnapshotErr != nil {
			return nil, in.SnapshotErr
		}
		p.SnapshotClass = in.SnapshotClass
	}

	if err := ValidateSlotNames(cfg.SlotNames, sts.Name, ordinals); err != nil {
		return nil, &InvalidError{Msg: err.Error()}
	}
	p.addSteps(ordinals, owned, claims)
	if cfg.Cleanup {
		if p.refuseDenied(in, refuse); len(refuse.Reasons) > 0 {
			return p, refuse
		}
		return p, nil
	}

	// The engine: who is primary, and is the replica set healthy.
	engine, members, err := p.judgeEngine(in, refuse)
	if err != nil {
		return nil, err
	}
	if in.AutoscalerErr != nil {
		p.Warnings = append(p.Warnings, in.AutoscalerErr.Error())
	} else if in.AutoscalerReason != "" {
		refuse.Reasons = append(refuse.Reasons, in.AutoscalerReason)
	}

	if in.PDBsForbidden {
		p.Warnings = append(p.Warnings, "cannot list poddisruptionbudgets (forbidden), so they were not checked")
	} else {
		for _, v := range CheckPDBs(sts, in.PDBs, in.PDBPods, p.To) {
			refuse.Reasons = append(refuse.Reasons, v.String()+fmt.Sprintf(" with %d replicas", p.To))
		}
	}

	p.judgeHealth(in, engine, members, refuse)
	p.refuseDenied(in, refuse)
	if len(refuse.Reasons) > 0 {
		return p, refuse
	}
	return p, nil
}

// addSteps adds a step for each of ordinals, highest first, with its
// claims, and what an interrupted run already did; a scale-down also
// names the pods that stay and the other leftovers.
func (p *Plan) addSteps(ordinals []int, owned map[int]*corev1.Pod, claims map[int][]Claim) {
	cfg, sts := p.cfg, p.sts
	for _, n := range ordinals {
		step := PlanStep{Ordinal: n, Pod: wait.PodName(sts.Name, n), PodExists: owned[n] != nil}
		if !cfg.Cleanup {
			step.Slots = SlotNamesFor(cfg.SlotNames, sts.Name, n)
		}
		if st := p.stateStep(n); st != nil {
			step.Stage = st.Stage
			step.Done = st.Stage == StageDone
		}
		for _, c := range claims[n] {
			pc := PlanPVC{Name: c.PVC.Name, Template: c.Template, UID: c.PVC.UID, Action: p.PVC}
			if q, ok := c.PVC.Status.Capacity[corev1.ResourceStorage]; ok {
				pc.Capacity = q.String()
			}
			if cs := p.stateClaim(c.PVC.Name, c.PVC.UID); cs != nil && cs.Snapshot != "" {
				pc.Snapshot = cs.Snapshot
			}
			step.PVCs = append(step.PVCs, pc)
		}
		if step.PVCs == nil {
			step.PVCs = []PlanPVC{}
		}
		p.Steps = append(p.Steps, step)
	}
	if !cfg.Cleanup {
		p.Stay = stayRange(sts.Name, p.OrdinalsStart, p.To)
		for _, n := range LeftoverOrdinals(sts, claims, owned) {
			if slices.Contains(ordinals, n) {
				continue
			}
			for _, c := range claims[n] {
				p.OtherLeftovers = append(p.OtherLeftovers, c.PVC.Name)
			}
		}
	}

}

// judgeEngine resolves the engine and adds to refuse what its view of
// the members forbids (the primary among the removed ordinals, quorum). It
// returns the engine and its members (nil when it could not be asked).
func (p *Plan) judgeEngine(in Inputs, refuse *RefusedError) (plugins.Engine, []plugins.Member, error) {
	engine, err := p.resolveEngine(in)
	if err != nil {
		return nil, nil, err
	}
	if len(p.cfg.SlotNames) > 0 && engine == nil {
		return nil, nil, &InvalidError{Msg: "--slot-name needs a database engine to drop the slots: pass --engine postgres"}
	}
	var members []plugins.Member
	if engine != nil {
		p.Engine = engine.Name()
		members, err = in.Members, in.MembersErr
		if err != nil {
			members = nil
			refuse.Reasons = append(refuse.Reasons, fmt.Sprintf(
				"cannot ask the %s engine which member is the primary: %v; fix the database, or pass --engine none to scale down without the engine's removal steps (its replication slots and membership are then not cleaned up)",
				engine.Name(), err))
		}
		if prim := plugins.Primaries(members); len(prim) == 1 {
			p.Primary = prim[0].Pod
		}
		_, isQuorum := engine.(plugins.QuorumEngine)
		if isQuorum && err == nil {
			refuse.Reasons = append(refuse.Reasons, p.checkQuorum(engine.Name(), in.Membership, in.MembershipErr)...)
		}
		for _, s := range p.Steps {
			if s.Stage.reached(StageScaled) || !s.PodExists || err != nil || isQuorum {
				continue
			}
			if p.lastMember(s.Ordinal) {
				// Scaling to zero: the lowest ordinal goes last, primary or not.
				if p.Primary == s.Pod {
					p.Warnings = append(p.Warnings, fmt.Sprintf("the primary %s is removed last; the engine's removal steps are skipped for it, as no member remains", s.Pod))
				}
				continue
			}
			if perr := plugins.RefusePrimary(members, s.Ordinal); perr != nil {
				refuse.Reasons = append(refuse.Reasons, perr.Error())
			}
		}
	}

	return engine, members, nil
}

// judgeHealth refuses while a rollout runs or pods that stay are not well,
// unless forced. Leftover claims and the ordinals being removed by an
// interrupted run are expected and do not count.
func (p *Plan) judgeHealth(in Inputs, engine plugins.Engine, members []plugins.Member, refuse *RefusedError) {
	report := status.Summarize(in.StatefulSet, in.Pods, in.PVCs, in.Now, status.Options{})
	if engine != nil && members != nil {
		// Judge the replica set that will remain: a member being removed
		// (often the very one that is broken) must not block its removal.
		judged := p.staying(members)
		if len(plugins.Primaries(judged)) == 0 && len(plugins.Primaries(members)) > 0 {
			// The primary is among the removed ordinals, which is refused
			// on its own; "no member is primary" would be untrue.
			judged = members
		}
		ok, why := engine.Healthy(judged, plugins.HealthOptions{})
		status.SetMembers(report, status.EngineStatus{Name: engine.Name(), Healthy: ok, Reason: why}, members, status.Options{})
	}
	var unhealthy []string
	for _, r := range report.Verdict.Reasons {
		if p.ignorable(r) {
			continue
		}
		msg := r.Message
		if r.Code == status.CodeEngineUnhealthy && p.Resumed {
			continue
		}
		unhealthy = append(unhealthy, msg)
	}
	if len(unhealthy) > 0 {
		if p.cfg.Force {
			for _, u := range unhealthy {
				p.Warnings = append(p.Warnings, "--force: proceeding although "+u)
			}
		} else {
			forceable := len(refuse.Reasons) == 0
			refuse.Reasons = append(refuse.Reasons, unhealthy...)
			refuse.Forceable = forceable
		}
	}
}

// checkQuorum judges the removals by the voting membership m (or err,
// why it could not be read): a consensus engine removes each member from
// it before its pod goes (moving the leadership away itself), so what
// counts is that healthy voters never fall below quorum, not which member
// leads.
func (p *Plan) checkQuorum(engine string, m plugins.Membership, err error) []string {
	if err != nil {
		return []string{fmt.Sprintf("cannot read the %s membership to check quorum: %v; fix the cluster, or pass --engine none to scale down without the membership changes (the removed members then stay voters that never answer)", engine, err)}
	}
	var ordinals []int
	for _, s := range p.Steps {
		if !p.lastMember(s.Ordinal) {
			ordinals = append(ordinals, s.Ordinal)
		}
	}
	return m.CheckRemoval(ordinals)
}

// resumeOrStart takes up the interrupted run the journal's record holds,
// setting the plan's range from it, or starts from the request.
func (p *Plan) resumeOrStart(in Inputs) error {
	cfg := p.cfg
	rec := in.Record
	if rec != nil && !rec.Phase.Finished() {
		if rec.Operation != cfg.operation() {
			return &RefusedError{StatefulSet: p.StatefulSet, Reasons: []string{(&journal.BusyError{Operation: rec.Operation, Phase: rec.Phase, Started: rec.Started, StatefulSet: p.StatefulSet, Held: in.Held}).Error()}}
		}
		if in.Held != nil && !in.TakeOver {
			return &RefusedError{StatefulSet: p.StatefulSet, Reasons: []string{in.Held.Error()}}
		}
		var st State
		if err := rec.DecodeState(&st); err != nil {
			return fmt.Errorf("the operation record %s cannot be read (%v); drop it with --abort", journal.ConfigMapName(p.StatefulSet), err)
		}
		if st.UID != "" && st.UID != p.UID {
			return &InvalidError{Msg: fmt.Sprintf("the interrupted %s was recorded for an earlier statefulset %s (it has been recreated since): drop the record with --abort", rec.Operation, p.StatefulSet)}
		}
		p.Resumed, p.state = true, &st
		if !cfg.Cleanup {
			if cfg.Replicas != st.To {
				return &InvalidError{Msg: fmt.Sprintf("an interrupted scale-down of statefulset %s from %d to %d replicas is recorded: run it again with --replicas %d to resume it, or drop the record with --abort",
					p.StatefulSet, st.From, st.To, st.To)}
			}
			if p.Current < st.To || p.Current > st.From {
				return &RefusedError{StatefulSet: p.StatefulSet, Reasons: []string{fmt.Sprintf(
					"statefulset %s has %d replicas, outside the range %d..%d of the interrupted scale-down: someone else changed its scale; check it, then drop the record with --abort",
					p.StatefulSet, p.Current, st.To, st.From)}}
			}
			p.From, p.To = st.From, st.To
		}
		if cfg.PVCExplicit && cfg.PVC != st.PVC && !(st.PVC == PVCByKubernetes && cfg.PVC == PVCDelete) {
			return &InvalidError{Msg: fmt.Sprintf("the interrupted %s handles claims with --pvc %s: resume it with the same --pvc, or drop the record with --abort", rec.Operation, st.PVC)}
		}
		if st.PVC != PVCByKubernetes {
			cfg.PVC = st.PVC
		}
		if cfg.SnapshotClass == "" {
			cfg.SnapshotClass = st.SnapshotClass
		}
		if len(cfg.SlotNames) == 0 {
			cfg.SlotNames = st.SlotNames
		}
		p.cfg = cfg
		return nil
	}
	if cfg.Cleanup {
		return nil
	}
	if cfg.Replicas == p.Current && cfg.PVCExplicit && (cfg.PVC == PVCDelete || cfg.PVC == PVCSnapshot) {
		// No replica change with a claim action: clean up leftovers.
		cfg.Cleanup = true
		p.cfg, p.Operation = cfg, CleanupOperation
		return nil
	}
	switch {
	case cfg.Replicas < 0:
		return &InvalidError{Msg: fmt.Sprintf("--replicas must not be negative, got %d", cfg.Replicas)}
	case cfg.Replicas >= p.Current:
		return &InvalidError{Msg: fmt.Sprintf("--replicas %d is not lower than the current %d replicas of statefulset %s: scale-down only removes ordinals (to delete claims left by earlier scale-downs, run: kubectl sts cleanup-pvcs %s -n %s)",
			cfg.Replicas, p.Current, p.StatefulSet, p.StatefulSet, p.Namespace)}
	case cfg.Replicas == 0 && !cfg.AllowZero:
		return &InvalidError{Msg: fmt.Sprintf("--replicas 0 removes every pod of statefulset %s and takes the database offline: pass --allow-zero if that is what you want", p.StatefulSet)}
	}
	p.From, p.To = p.Current, cfg.Replicas
	if cfg.Replicas == 0 {
		p.Warnings = append(p.Warnings, fmt.Sprintf("scaling to 0 replicas: every pod of statefulset %s is removed and the database is offline until it is scaled up again", p.StatefulSet))
	}
	return nil
}

// lastMember reports whether ordinal is the last member removed by a
// scale-down to zero: no member remains for the engine to act on.
func (p *Plan) lastMember(ordinal int) bool {
	return p.To == 0 && ordinal == p.OrdinalsStart
}

// resolveEngine takes the engine chosen for the StatefulSet and, on a
// resume, insists on the one the interrupted run used.
func (p *Plan) resolveEngine(in Inputs) (plugins.Engine, error) {
	e, err := in.Engine, in.EngineErr
	if !in.EngineAsked {
		if p.state != nil && p.state.Engine != "" {
			return nil, &InvalidError{Msg: fmt.Sprintf("the interrupted scale-down used the %s engine, which is not available now", p.state.Engine)}
		}
		return nil, nil
	}
	if err != nil {
		var unknown *plugins.UnknownEngineError
		if errors.As(err, &unknown) {
			return nil, &InvalidError{Msg: err.Error()}
		}
		return nil, err
	}
	if p.state != nil {
		name := ""
		if e != nil {
			name = e.Name()
		}
		if name != p.state.Engine {
			want := p.state.Engine
			if want == "" {
				want = plugins.EngineNone
			}
			return nil, &InvalidError{Msg: fmt.Sprintf("the interrupted scale-down ran with --engine %s: resume it with the same engine, or drop the record with --abort", want)}
		}
	}
	return e, nil
}

// ignorable reports verdict reasons that do not make a scale-down unsafe.
func (p *Plan) ignorable(r status.Reason) bool {
	switch r.Code {
	case status.CodeLeftoverPVCs, status.CodePVCResizePendingRestart, status.CodeUpdatePendingOnDelete, status.CodeEngineUnavailable:
		return true
	case status.CodeScaleDownInProgress:
		return p.Resumed
	case status.CodePodTerminating, status.CodePodNotReady, status.CodePodMissing, status.CodePVCMissing:
		// On a resume the pods being removed are expected to go.
		return p.Resumed && p.onlyRemoved(r.Object)
	}
	return false
}

// onlyRemoved reports whether every "pod/NAME" or "pvc/NAME" in obj
// belongs to an ordinal this plan removes.
func (p *Plan) onlyRemoved(obj string) bool {
	if obj == "" {
		return false
	}
	for _, o := range strings.Split(obj, ",") {
		o = strings.TrimSpace(o)
		name, ok := strings.CutPrefix(o, "pod/")
		if !ok {
			name, ok = strings.CutPrefix(o, "pvc/")
			if !ok {
				return false
			}
		}
		found := false
		for _, s := range p.Steps {
			if name == s.Pod {
				found = true
			}
			for _, c := range s.PVCs {
				if name == c.Name {
					found = true
				}
			}
		}
		if !found {
			return false
		}
	}
	return true
}

func (p *Plan) stateStep(n int) *StepState {
	if p.state == nil {
		return nil
	}
	return p.state.step(n)
}

func (p *Plan) stateClaim(name string, uid types.UID) *ClaimState {
	if p.state == nil {
		return nil
	}
	return p.state.claim(name, uid)
}

// checkAutoscalers refuses when a HorizontalPodAutoscaler manages the
// StatefulSet's scale: it would undo the scale-down. An error means the
// check could not be made.
func checkAutoscalers(ctx context.Context, d Deps, sts *appsv1.StatefulSet) (string, error) {
	hpas, err := d.Kube.AutoscalingV2().HorizontalPodAutoscalers(sts.Namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return "", fmt.Errorf("cannot list horizontalpodautoscalers (%v), so they were not checked", err)
	}
	for _, h := range hpas.Items {
		ref := h.Spec.ScaleTargetRef
		if ref.Kind == "StatefulSet" && ref.Name == sts.Name {
			return fmt.Sprintf("horizontalpodautoscaler %s manages the replicas of statefulset %s and would undo the scale-down: lower its minReplicas/maxReplicas or remove it first", h.Name, sts.Name), nil
		}
	}
	return "", nil
}

func whenScaled(sts *appsv1.StatefulSet) string {
	if p := sts.Spec.PersistentVolumeClaimRetentionPolicy; p != nil && p.WhenScaled != "" {
		return string(p.WhenScaled)
	}
	return string(appsv1.RetainPersistentVolumeClaimRetentionPolicyType)
}

func stayRange(sts string, start int, to int32) string {
	switch to {
	case 0:
		return ""
	case 1:
		return wait.PodName(sts, start)
	}
	return wait.PodName(sts, start) + ".." + wait.PodName(sts, start+int(to)-1)
}

// podsOfBudgets lists, by each budget's own selector, the pods of the
// budgets among pdbs that cover sts's pods: what CheckPDBs counts. A
// budget that covers nothing of sts costs no request.
func podsOfBudgets(ctx context.Context, d Deps, sts *appsv1.StatefulSet, pdbs []policyv1.PodDisruptionBudget) ([]corev1.Pod, error) {
	seen := map[types.UID]bool{}
	var out []corev1.Pod
	for i := range pdbs {
		sel, err := metav1.LabelSelectorAsSelector(pdbs[i].Spec.Selector)
		if err != nil || !sel.Matches(labels.Set(sts.Spec.Template.Labels)) {
			continue
		}
		list, err := d.Kube.CoreV1().Pods(sts.Namespace).List(ctx, metav1.ListOptions{LabelSelector: sel.String()})
		if err != nil {
			return nil, fmt.Errorf("listing the pods of poddisruptionbudget %s: %w", pdbs[i].Name, err)
		}
		for _, p := range list.Items {
			if !seen[p.UID] {
				seen[p.UID] = true
				out = append(out, p)
			}
		}
	}
	return out, nil
}

// staying returns the members whose ordinals the scale-down keeps.
func (p *Plan) staying(members []plugins.Member) []plugins.Member {
	removed := map[int]bool{}
	for _, s := range p.Steps {
		removed[s.Ordinal] = true
	}
	var out []plugins.Member
	for _, m := range members {
		if !removed[m.Ordinal] {
			out = append(out, m)
		}
	}
	return out
}
