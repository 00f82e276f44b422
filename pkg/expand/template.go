package expand

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/kubectl-sts/kubectl-sts/pkg/journal"
	"github.com/kubectl-sts/kubectl-sts/pkg/progress"
	"github.com/kubectl-sts/kubectl-sts/pkg/wait"
)

// template makes the volumeClaimTemplate say the new size. Its fields are
// immutable, so the StatefulSet is recreated: the desired object is saved
// in the journal, the StatefulSet is deleted with orphan propagation and a
// UID precondition (pods and claims stay), created again, and the pods are
// verified to be adopted without being restarted. Each pass reads where
// things stand, so a run that died anywhere in between is finished by the
// next one.
func (r *run) template(ctx context.Context) error {
	r.step++
	r.current = "in the template step"
	obj := "statefulset/" + r.cfg.Name
	r.stepEvent(KindStepStarted, progress.Info, obj,
		fmt.Sprintf("making the volumeClaimTemplate %s say %s: the StatefulSet is recreated, its pods and claims are kept", r.plan.Claim, r.plan.Size))
	tctx, cancel := context.WithTimeout(ctx, r.params.timeout())
	defer cancel()
	api := r.cfg.Client.AppsV1().StatefulSets(r.cfg.Namespace)
	for range 4 {
		ts := r.state.Template
		cur, err := api.Get(tctx, r.cfg.Name, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			if ts == nil || ts.Desired == nil {
				return &AttentionError{Err: fmt.Errorf("statefulset %s disappeared and this run saved no copy of it", r.cfg.Name),
					Hint: "its pods and claims are not owned by anything now; recreate the StatefulSet from its manifest with the new size"}
			}
			if err := r.create(tctx, ts); err != nil {
				return err
			}
			continue
		case err != nil:
			return err
		case ts.pending() && ts.NewUID != "" && cur.UID == ts.NewUID:
			return r.verifyAdoption(ctx, tctx, ts)
		case ts.pending() && ts.OldUID != "" && cur.UID != ts.OldUID:
			if !templateSays(cur, r.plan.Claim, r.params.Size) {
				return &AttentionError{
					Err: fmt.Errorf("statefulset %s was recreated by someone else (uid %s) with the old volumeClaimTemplate %s", r.cfg.Name, cur.UID, templateSize(cur, r.plan.Claim)),
					Hint: "a GitOps tool or a deployment pipeline holding the old manifest probably put it back: update the manifest to " + r.plan.Size +
						", then run the same command again (the claims are already expanded; only the template step remains)"}
			}
			ts.NewUID, ts.Step = cur.UID, TemplateCreated
			r.uid = cur.UID
			return r.verifyAdoption(ctx, tctx, ts)
		case !ts.pending() && templateSays(cur, r.plan.Claim, r.params.Size):
			r.stepEvent(KindStepSkipped, progress.Info, obj, "the volumeClaimTemplate already requests "+r.plan.Size)
			return nil
		default:
			if r.base == nil || r.base.UID != cur.UID {
				r.base = cur
			}
			if err := r.unchanged(cur); err != nil {
				return err
			}
			if err := r.deleteOrphaning(ctx, tctx, cur); err != nil {
				return err
			}
		}
	}
	return fmt.Errorf("statefulset %s kept changing while it was being recreated; run the same command again", r.cfg.Name)
}

// deleteOrphaning saves the desired object, then deletes cur with orphan
// propagation and waits until it is gone.
func (r *run) deleteOrphaning(ctx, tctx context.Context, cur *appsv1.StatefulSet) error {
	obj := "statefulset/" + r.cfg.Name
	ts := r.state.Template
	if !ts.pending() || ts.OldUID != cur.UID {
		pods, err := r.podMarks(tctx, cur)
		if err != nil {
			return err
		}
		ts = &TemplateState{Step: TemplateSaved, Desired: desiredStatefulSet(cur, r.plan.Claim, r.params.Size), OldUID: cur.UID, Pods: pods, UpdateRevision: cur.Status.UpdateRevision}
		r.state.Template = ts
		if err := r.save(ctx, fmt.Sprintf("saved statefulset %s with volumeClaimTemplate %s at %s before recreating it", r.cfg.Name, r.plan.Claim, r.plan.Size)); err != nil {
			return err
		}
		r.stepEvent(KindTemplateSaved, progress.Info, obj, fmt.Sprintf("saved the StatefulSet with the new template in configmap %s; if this run stops, running it again finishes the step", journal.ConfigMapName(r.cfg.Name)))
		r.event(ctx, corev1.EventTypeNormal, ReasonTemplateSaved, "recreating the StatefulSet to update volumeClaimTemplate "+r.plan.Claim+" to "+r.plan.Size+"; pods and claims are kept")
	}
	if what := wait.SpecChanges(ts.Desired, cur, false); len(what) > 0 && cur.DeletionTimestamp == nil {
		// Saved by an earlier pass or run: recreating from that copy would
		// undo the change made since.
		return r.changedElsewhere(&wait.Drift{What: what})
	}
	r.warn(ctx, obj, gitOpsWarning(managedBy(cur), r.plan.Claim, r.plan.Size))

	tr := wait.NewTracker(r.cfg.Client, r.cfg.Namespace, r.cfg.Name)
	trCtx, cancel := context.WithCancel(tctx)
	defer func() {
		cancel()
		<-tr.Done()
	}()
	if err := tr.Start(trCtx); err != nil {
		if apierrors.IsNotFound(errors.Unwrap(err)) || apierrors.IsNotFound(err) {
			return nil
		}
		return err
	}
	if tr.UID() != cur.UID {
		return nil
	}
	uid, rv := cur.UID, cur.ResourceVersion
	orphan := metav1.DeletePropagationOrphan
	err := r.cfg.Client.AppsV1().StatefulSets(r.cfg.Namespace).Delete(tctx, r.cfg.Name, metav1.DeleteOptions{
		PropagationPolicy: &orphan,
		Preconditions:     &metav1.Preconditions{UID: &uid, ResourceVersion: &rv},
	})
	switch {
	case apierrors.IsNotFound(err), apierrors.IsConflict(err):
		// Gone already, replaced, or changed since it was read (and
		// saved): the next pass looks again.
		return nil
	case err != nil:
		return fmt.Errorf("deleting statefulset %s (orphaning its pods): %w", r.cfg.Name, err)
	}
	ts.Step = TemplateDeleted
	r.res.Changed = true
	if err := r.save(ctx, fmt.Sprintf("deleted statefulset %s (uid %s) with orphan propagation; its pods and claims are kept", r.cfg.Name, uid)); err != nil {
		return err
	}
	r.stepEvent(KindSTSDeleted, progress.Info, obj, fmt.Sprintf("deleted the StatefulSet (uid %s) with orphan propagation; %d pods keep running", uid, len(ts.Pods)))
	return wait.Waiter{Observer: r.observer()}.Wait(tctx, tr, r.goneGate(uid))
}

// goneGate passes once the StatefulSet object uid is gone. Besides the
// watch it asks the API server on every tick of the wait, so a missed
// watch event cannot stall the step.
func (r *run) goneGate(uid types.UID) wait.Gate {
	watched := wait.StatefulSetGone(r.cfg.Name)
	return wait.NewGate("statefulset "+r.cfg.Name, "to be deleted", func(ctx context.Context, s wait.Snapshot) (wait.Verdict, string, error) {
		if v, reason, err := watched.Check(ctx, s); err != nil || v == wait.Pass {
			return v, reason, err
		}
		cur, err := r.cfg.Client.AppsV1().StatefulSets(r.cfg.Namespace).Get(ctx, r.cfg.Name, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			return wait.Pass, "statefulset is gone", nil
		case err != nil:
			return wait.NotYet, "cannot read it: " + err.Error(), nil
		case cur.UID != uid:
			return wait.Pass, "statefulset is gone (a new one exists)", nil
		case cur.DeletionTimestamp != nil:
			return wait.NotYet, "statefulset is terminating (its pods are being orphaned)", nil
		}
		return wait.NotYet, "statefulset still exists", nil
	})
}

// create recreates the StatefulSet from the saved object.
func (r *run) create(ctx context.Context, ts *TemplateState) error {
	obj := ts.Desired.DeepCopy()
	obj.ResourceVersion = ""
	created, err := r.cfg.Client.AppsV1().StatefulSets(r.cfg.Namespace).Create(ctx, obj, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("recreating statefulset %s from the saved copy: %w (running the same command again retries)", r.cfg.Name, err)
	}
	ts.NewUID, ts.Step = created.UID, TemplateCreated
	r.uid = created.UID
	r.res.Changed = true
	msg := fmt.Sprintf("recreated statefulset %s (uid %s) with volumeClaimTemplate %s requesting %s", r.cfg.Name, created.UID, r.plan.Claim, r.plan.Size)
	if err := r.save(ctx, msg); err != nil {
		return err
	}
	r.stepEvent(KindSTSCreated, progress.Info, "statefulset/"+r.cfg.Name, msg)
	r.event(ctx, corev1.EventTypeNormal, ReasonTemplateRecreate, msg)
	return nil
}

// verifyAdoption waits until the new StatefulSet owns every pod that ran
// before, with the same UIDs, on the same revision, and all are Ready.
func (r *run) verifyAdoption(ctx, tctx context.Context, ts *TemplateState) error {
	tr := wait.NewTracker(r.cfg.Client, r.cfg.Namespace, r.cfg.Name)
	trCtx, cancel := context.WithCancel(tctx)
	defer func() {
		cancel()
		<-tr.Done()
	}()
	if err := tr.Start(trCtx); err != nil {
		return err
	}
	if tr.UID() != ts.NewUID {
		return fmt.Errorf("statefulset %s changed again (uid %s, expected %s); run the same command again", r.cfg.Name, tr.UID(), ts.NewUID)
	}
	err := wait.Waiter{Observer: r.observer()}.Wait(tctx, tr, adoptedGate(r.cfg.Name, ts), wait.StatefulSetReady(r.cfg.Name))
	var failed *wait.GateFailedError
	if errors.As(err, &failed) {
		return &AttentionError{Err: fmt.Errorf("after recreating statefulset %s: %s", r.cfg.Name, failed.Reason),
			Hint: fmt.Sprintf("look at it with: kubectl sts status %s -n %s", r.cfg.Name, r.cfg.Namespace)}
	}
	if err != nil {
		return err
	}
	s := tr.Snapshot()
	for _, m := range ts.Pods {
		if p := s.Pod(m.Name); p != nil && wait.PodRestarts(p) != m.Restarts {
			r.warn(ctx, "pod/"+m.Name, fmt.Sprintf("pod %s restarted a container meanwhile (restarts %d -> %d); recreating the StatefulSet does not do that: look at the pod", m.Name, m.Restarts, wait.PodRestarts(p)))
		}
	}
	ts.Step = TemplateVerified
	r.res.TemplateUpdated, r.res.UID = true, ts.NewUID
	msg := fmt.Sprintf("volumeClaimTemplate %s now requests %s; the new StatefulSet adopted its %d pods without restarting them", r.plan.Claim, r.plan.Size, len(ts.Pods))
	if err := r.save(ctx, msg); err != nil {
		return err
	}
	r.stepEvent(KindPodsAdopted, progress.Success, "statefulset/"+r.cfg.Name, msg)
	r.event(ctx, corev1.EventTypeNormal, ReasonTemplateUpdated, msg)
	return nil
}

// podMarks records the pods the StatefulSet controls now.
func (r *run) podMarks(ctx context.Context, sts *appsv1.StatefulSet) ([]PodMark, error) {
	sel, err := metav1.LabelSelectorAsSelector(sts.Spec.Selector)
	if err != nil {
		return nil, err
	}
	pods, err := r.cfg.Client.CoreV1().Pods(sts.Namespace).List(ctx, metav1.ListOptions{LabelSelector: sel.String()})
	if err != nil {
		return nil, fmt.Errorf("listing the pods of statefulset %s: %w", sts.Name, err)
	}
	var marks []PodMark
	for i := range pods.Items {
		p := &pods.Items[i]
		ref := metav1.GetControllerOf(p)
		if ref == nil || ref.UID != sts.UID || p.DeletionTimestamp != nil {
			continue
		}
		marks = append(marks, PodMark{Name: p.Name, UID: p.UID, Restarts: wait.PodRestarts(p), Revision: wait.PodRevision(p)})
	}
	return marks, nil
}

// adoptedGate passes when the StatefulSet controls every recorded pod, and
// fails when one was replaced or would be (its revision is no longer the
// update revision).
func adoptedGate(name string, ts *TemplateState) wait.Gate {
	return wait.NewGate("statefulset "+name, "to adopt its pods without restarting them", func(_ context.Context, s wait.Snapshot) (wait.Verdict, string, error) {
		sts := s.StatefulSet
		if sts == nil {
			return wait.NotYet, "statefulset does not exist", nil
		}
		observed := sts.Status.ObservedGeneration >= sts.Generation && sts.Status.UpdateRevision != ""
		var waiting []string
		for _, m := range ts.Pods {
			p := s.Pod(m.Name)
			switch {
			case p == nil:
				return wait.Fail, fmt.Sprintf("pod %s (uid %s) disappeared", m.Name, m.UID), nil
			case p.UID != m.UID:
				return wait.Fail, fmt.Sprintf("pod %s was replaced (uid %s -> %s)", m.Name, m.UID, p.UID), nil
			case observed && m.Revision == ts.UpdateRevision && m.Revision != "" && sts.Status.UpdateRevision != m.Revision:
				return wait.Fail, fmt.Sprintf("the recreated StatefulSet computed update revision %s but pod %s runs %s: the controller will replace the pods; compare the pod template with the old one",
					sts.Status.UpdateRevision, m.Name, m.Revision), nil
			}
			if ref := metav1.GetControllerOf(p); ref == nil || ref.UID != sts.UID {
				waiting = append(waiting, m.Name)
			}
		}
		if len(waiting) > 0 {
			return wait.NotYet, "not adopted yet: " + strings.Join(waiting, ", "), nil
		}
		return wait.Pass, fmt.Sprintf("all %d pods adopted", len(ts.Pods)), nil
	})
}

// desiredStatefulSet is cur as it must be recreated: same metadata and
// spec, the claim template requesting size, no server-set fields.
func desiredStatefulSet(cur *appsv1.StatefulSet, claim string, size resource.Quantity) *appsv1.StatefulSet {
	d := &appsv1.StatefulSet{
		TypeMeta: metav1.TypeMeta{APIVersion: "apps/v1", Kind: "StatefulSet"},
		ObjectMeta: metav1.ObjectMeta{
			Name:            cur.Name,
			Namespace:       cur.Namespace,
			Labels:          maps.Clone(cur.Labels),
			Annotations:     maps.Clone(cur.Annotations),
			OwnerReferences: append([]metav1.OwnerReference(nil), cur.OwnerReferences...),
		},
		Spec: *cur.Spec.DeepCopy(),
	}
	for i := range d.Spec.VolumeClaimTemplates {
		t := &d.Spec.VolumeClaimTemplates[i]
		t.Status = corev1.PersistentVolumeClaimStatus{}
		if t.Name != claim {
			continue
		}
		if t.Spec.Resources.Requests == nil {
			t.Spec.Resources.Requests = corev1.ResourceList{}
		}
		t.Spec.Resources.Requests[corev1.ResourceStorage] = size.DeepCopy()
	}
	return d
}

// templateSays reports whether the claim template requests size.
func templateSays(sts *appsv1.StatefulSet, claim string, size resource.Quantity) bool {
	for i := range sts.Spec.VolumeClaimTemplates {
		t := &sts.Spec.VolumeClaimTemplates[i]
		if t.Name == claim {
			q, ok := templateRequest(t)
			return ok && q.Cmp(size) == 0
		}
	}
	return false
}

func templateSize(sts *appsv1.StatefulSet, claim string) string {
	for i := range sts.Spec.VolumeClaimTemplates {
		if t := &sts.Spec.VolumeClaimTemplates[i]; t.Name == claim {
			q, ok := templateRequest(t)
			return show(q, ok)
		}
	}
	return "-"
}

// gitOpsWarning says that the old manifest will come back unless updated.
func gitOpsWarning(tools []string, claim, size string) string {
	who := "a GitOps tool, Helm or any pipeline that applies the old manifest"
	if len(tools) > 0 {
		who = strings.Join(tools, " and ") + " (marks found on the StatefulSet)"
	}
	return fmt.Sprintf("%s will try to put the old volumeClaimTemplate back: set %s to %s in the manifest too", who, claim, size)
}
