package expand

import (
	"context"
	"fmt"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/kubectl-sts/kubectl-sts/pkg/journal"
	"github.com/kubectl-sts/kubectl-sts/pkg/wait"
	"github.com/kubectl-sts/kubectl-sts/plugins"
)

// Preflight reads the StatefulSet, its pods and claims, their
// StorageClasses, the namespace's quotas and limit ranges, the engine's
// roles and the journal record, and builds the plan. Finally the API
// server checks every change in a dry run. Nothing is changed.
func (e *Expander) Preflight(ctx context.Context) (*Plan, error) {
	c := e.cfg.Client
	ns, name := e.cfg.Namespace, e.cfg.Name
	rec, err := e.cfg.Journal.Load(ctx)
	if err != nil {
		return nil, err
	}
	if held := e.cfg.Journal.Held(rec); held != nil && !e.cfg.Journal.TakesOver() {
		return nil, held
	}
	sts, err := c.AppsV1().StatefulSets(ns).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		if plan, perr := recreatePlan(rec, ns, name, e.cfg.Params); plan != nil || perr != nil {
			return plan, perr
		}
	}
	if err != nil {
		return nil, err
	}
	in, err := e.read(ctx, sts)
	if err != nil {
		return nil, err
	}
	in.Record = rec
	plan, err := BuildPlan(*in, e.cfg.Params)
	if err != nil {
		return nil, err
	}
	if err := e.dryRun(ctx, plan); err != nil {
		return nil, err
	}
	return plan, nil
}

// read gathers the inputs of BuildPlan with a fixed number of requests
// (plus one per StorageClass). Objects that are only consulted (quotas,
// limit ranges, classes) degrade to warnings when they cannot be read.
func (e *Expander) read(ctx context.Context, sts *appsv1.StatefulSet) (*Inputs, error) {
	c := e.cfg.Client
	ns := sts.Namespace
	in := &Inputs{StatefulSet: sts, Now: e.now(), StorageClasses: map[string]*storagev1.StorageClass{}, StorageClassErrors: map[string]error{}}
	in.Server = e.server(ctx)
	objs, err := wait.ReadFor(ctx, c, sts)
	if err != nil {
		return nil, err
	}
	in.Pods, in.PVCs = objs.Pods, objs.PVCs
	classes := map[string]bool{}
	for _, pvc := range in.PVCs {
		if sc := pvc.Spec.StorageClassName; sc != nil && *sc != "" {
			classes[*sc] = true
		}
	}
	for sc := range classes {
		obj, err := c.StorageV1().StorageClasses().Get(ctx, sc, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
		case err != nil:
			in.StorageClassErrors[sc] = err
		default:
			in.StorageClasses[sc] = obj
		}
	}
	var warnings []string
	quotas, err := c.CoreV1().ResourceQuotas(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		warnings = append(warnings, fmt.Sprintf("cannot read the ResourceQuotas of namespace %s (%v); a quota could refuse a claim half-way", ns, err))
	} else {
		in.Quotas = quotas.Items
	}
	limits, err := c.CoreV1().LimitRanges(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		warnings = append(warnings, fmt.Sprintf("cannot read the LimitRanges of namespace %s (%v)", ns, err))
	} else {
		in.LimitRanges = limits.Items
	}
	if e.cfg.Params.Restart != RestartNever && e.cfg.EngineFor != nil {
		engine, err := e.cfg.EngineFor(sts)
		if err != nil {
			return nil, err
		}
		if engine != nil {
			in.Engine = engine
			in.Members, in.EngineError = e.members(ctx, engine, sts, in.Pods)
		}
	}
	in.readWarnings = warnings
	return in, nil
}

// members asks the engine for the roles of the StatefulSet's pods.
func (e *Expander) members(ctx context.Context, engine plugins.Engine, sts *appsv1.StatefulSet, pods []*corev1.Pod) ([]plugins.Member, error) {
	members, err := engine.Members(ctx, plugins.Target{StatefulSet: sts, Pods: pods, Exec: e.cfg.Exec, Timeout: e.cfg.EngineTimeout})
	if err != nil {
		return nil, err
	}
	if why := plugins.PrimaryReason(members); why != "" {
		if un := plugins.Unanswered(members); un != "" {
			why += "; " + un
		}
		return members, fmt.Errorf("%s", why)
	}
	return members, nil
}

// dryRun asks the API server to check every request change without making
// it: admission (StorageClass expansion, quotas, limit ranges, policies)
// answers as it would for the real change.
func (e *Expander) dryRun(ctx context.Context, plan *Plan) error {
	var problems []Problem
	for _, o := range plan.Ordinals {
		if o.Action != ActionExpand {
			continue
		}
		pvc, err := e.cfg.Client.CoreV1().PersistentVolumeClaims(plan.Namespace).Get(ctx, o.PVC, metav1.GetOptions{})
		if err == nil {
			err = e.patchRequest(ctx, plan.Namespace, o.PVC, pvc.UID, plan.Size, true)
		}
		if err != nil && !serverJudged(err) {
			// The server could not be asked (5xx, timeout): that is no
			// verdict on the change.
			return fmt.Errorf("asking the API server in a dry run to grow pvc %s to %s: %w", o.PVC, plan.Size, err)
		}
		if err != nil {
			problems = append(problems, Problem{Object: "pvc/" + o.PVC,
				Message: fmt.Sprintf("the API server refuses to grow pvc %s to %s: %v", o.PVC, plan.Size, err)})
		}
	}
	if len(problems) > 0 {
		return &PreflightError{StatefulSet: plan.StatefulSet, Problems: problems}
	}
	return nil
}

// serverJudged reports whether err is the API server's verdict on the
// request itself (invalid, forbidden, conflicting, missing), not a failure
// to reach it.
func serverJudged(err error) bool {
	return apierrors.IsInvalid(err) || apierrors.IsForbidden(err) || apierrors.IsConflict(err) ||
		apierrors.IsNotFound(err) || apierrors.IsBadRequest(err) || apierrors.IsUnauthorized(err) || apierrors.IsAlreadyExists(err)
}

// patchRequest raises a claim's request. The UID in the patch makes it
// fail on a claim that was replaced since it was read.
func (e *Expander) patchRequest(ctx context.Context, ns, name string, uid types.UID, size string, dryRun bool) error {
	patch := fmt.Sprintf(`{"metadata":{"uid":%q},"spec":{"resources":{"requests":{"storage":%q}}}}`, uid, size)
	opts := metav1.PatchOptions{}
	if dryRun {
		opts.DryRun = []string{metav1.DryRunAll}
	}
	_, err := e.cfg.Client.CoreV1().PersistentVolumeClaims(ns).Patch(ctx, name, types.MergePatchType, []byte(patch), opts)
	return err
}

// recreatePlan is the plan of a run that finds the StatefulSet missing
// after an earlier run deleted it to update its template: recreate it from
// the saved copy. It returns nil, nil when the record holds no such copy.
func recreatePlan(rec *journal.Record, ns, name string, p Params) (*Plan, error) {
	if rec == nil || rec.Operation != Operation || rec.Phase == journal.Succeeded {
		return nil, nil
	}
	var st State
	if err := rec.DecodeState(&st); err != nil || st.Template == nil || st.Template.Desired == nil || !st.Template.pending() {
		return nil, nil
	}
	if (p.Claim != "" && p.Claim != st.Claim) || !sameSize(p.Size.String(), st.Size) {
		return nil, &PreflightError{StatefulSet: name, Problems: []Problem{{
			Object: "statefulset/" + name,
			Message: fmt.Sprintf("statefulset %s is missing: an interrupted expand-pvc of claim %s to %s deleted it to update its template and saved a copy to recreate it from",
				name, st.Claim, st.Size),
			Hint: fmt.Sprintf("finish that run: kubectl sts expand-pvc %s --claim %s --size %s -n %s", name, st.Claim, st.Size, ns),
		}}}
	}
	d := st.Template.Desired
	plan := &Plan{
		Namespace: ns, StatefulSet: name, Claim: st.Claim, Size: st.Size, Restart: st.Restart,
		Ordinals: []OrdinalPlan{}, Resumed: true, Recreate: true,
		Template: TemplatePlan{Update: true, Current: st.Size, ManagedBy: managedBy(d),
			Reason: "recreated from the copy saved in configmap " + journal.ConfigMapName(name) + " at " + rec.Heartbeat.UTC().Format(time.RFC3339)},
		Warnings: []string{fmt.Sprintf("statefulset %s is missing: an interrupted run deleted it (its pods and claims were kept) and will now recreate it", name)},
		params:   p, prev: &st,
	}
	return plan, nil
}

// PendingRecreate is an expansion stopped in its template step: the
// StatefulSet may be deleted, and running the same command again recreates
// it from the copy saved in the record.
type PendingRecreate struct {
	Claim, Size string
}

// StoppedInTemplateStep returns what rec records when it is an unfinished
// expansion stopped in its template step with a saved copy of the
// StatefulSet, else nil.
func StoppedInTemplateStep(rec *journal.Record) *PendingRecreate {
	if rec == nil || rec.Operation != Operation || rec.Phase.Finished() {
		return nil
	}
	var st State
	if err := rec.DecodeState(&st); err != nil || st.Template == nil || st.Template.Desired == nil || !st.Template.pending() {
		return nil
	}
	return &PendingRecreate{Claim: st.Claim, Size: st.Size}
}

// joinNames renders a list for messages.
func joinNames(names []string) string { return strings.Join(names, ", ") }
