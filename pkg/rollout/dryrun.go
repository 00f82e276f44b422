package rollout

import (
	"context"
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/kubectl-sts/kubectl-sts/pkg/journal"
	"github.com/kubectl-sts/kubectl-sts/pkg/kube"
)

// ServerDryRun sends the writes a run of pv starts with (the record, then
// the new template or the first step's partition) with dryRun=All, so that
// validation, RBAC, quota and admission judge them; nothing is persisted.
// The answers are returned, refusals included; err is for reads that failed.
func (r *Runner) ServerDryRun(ctx context.Context, pv *Preview) ([]kube.DryRunWrite, error) {
	if pv.Mode == ModeUndo || (pv.state != nil && pv.state.Stage == StageRollback) {
		return nil, refuseInput("--dry-run=server is not implemented for a rollback: its first write restores a recorded template; use --dry-run=client to see the plan")
	}
	out := []kube.DryRunWrite{kube.DryRunConfigMap(ctx, r.Client, r.Namespace, journal.ConfigMapName(r.Name))}
	sts, err := r.getStatefulSet(ctx)
	if err != nil {
		return nil, err
	}
	if pv.state != nil && pv.state.Change != nil {
		t, err := pv.state.Change.Apply(sts)
		if err != nil {
			return nil, refuseInput("%v", err)
		}
		setTemplateHoldingEveryPod(sts, t)
		_, err = r.Client.AppsV1().StatefulSets(r.Namespace).Update(ctx, sts, metav1.UpdateOptions{DryRun: kube.DryRunAll()})
		out = append(out, kube.NewDryRunWrite(fmt.Sprintf("update statefulset %s (new pod template, partition %d)", r.Name, Replicas(sts)), err))
		return out, nil
	}
	p, ok := firstPartition(pv)
	if !ok {
		return out, nil
	}
	_, err = r.Client.AppsV1().StatefulSets(r.Namespace).Patch(ctx, r.Name, types.StrategicMergePatchType, partitionPatch(p), metav1.PatchOptions{DryRun: kube.DryRunAll()})
	out = append(out, kube.NewDryRunWrite(fmt.Sprintf("patch statefulset %s (partition %d)", r.Name, p), err))
	return out, nil
}

// firstPartition is the partition the run's first write sets: the hold
// of a take-over, else the next step's.
func firstPartition(pv *Preview) (int32, bool) {
	if pv.Mode == ModeTakeOver {
		return pv.Hold, true
	}
	if pv.Done >= len(pv.Plan.Steps) {
		return 0, false
	}
	return pv.Plan.Steps[pv.Done].Partition, true
}

// setTemplateHoldingEveryPod sets the new template with the partition at the
// replica count, so that no pod moves until the first step.
func setTemplateHoldingEveryPod(sts *appsv1.StatefulSet, t *corev1.PodTemplateSpec) {
	replicas := Replicas(sts)
	sts.Spec.Template = *t
	sts.Spec.UpdateStrategy = appsv1.StatefulSetUpdateStrategy{
		Type:          appsv1.RollingUpdateStatefulSetStrategyType,
		RollingUpdate: &appsv1.RollingUpdateStatefulSetStrategy{Partition: &replicas, MaxUnavailable: maxUnavailable(sts)},
	}
}
