package scaledown

import (
	"context"
	"encoding/json"
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/kubectl-sts/kubectl-sts/pkg/journal"
	"github.com/kubectl-sts/kubectl-sts/pkg/kube"
)

// ServerDryRun sends the writes the plan's first step makes (the record,
// the scale to one ordinal fewer, the deletion of that ordinal's claims)
// with dryRun=All, so RBAC, admission and quota judge them; nothing is
// persisted. Snapshots are not sent: their API may not be installed, and
// the preflight already checks it.
func ServerDryRun(ctx context.Context, p *Plan, d Deps) []kube.DryRunWrite {
	out := []kube.DryRunWrite{kube.DryRunConfigMap(ctx, d.Kube, p.Namespace, journal.ConfigMapName(p.StatefulSet))}
	var step *PlanStep
	for i := range p.Steps {
		if !p.Steps[i].Done {
			step = &p.Steps[i]
			break
		}
	}
	if step == nil {
		return out
	}
	if n := int32(step.Ordinal - p.OrdinalsStart); !p.cfg.Cleanup && n < p.Current {
		patch, _ := json.Marshal([]map[string]any{
			{"op": "test", "path": "/metadata/uid", "value": string(p.UID)},
			{"op": "add", "path": "/spec/replicas", "value": n},
		})
		_, err := d.Kube.AppsV1().StatefulSets(p.Namespace).Patch(ctx, p.StatefulSet, types.JSONPatchType, patch, metav1.PatchOptions{DryRun: kube.DryRunAll()})
		out = append(out, kube.NewDryRunWrite(fmt.Sprintf("patch statefulset %s (replicas %d)", p.StatefulSet, n), err))
	}
	for _, c := range step.PVCs {
		if c.Action != PVCDelete {
			continue
		}
		uid := c.UID
		err := d.Kube.CoreV1().PersistentVolumeClaims(p.Namespace).Delete(ctx, c.Name, metav1.DeleteOptions{DryRun: kube.DryRunAll(), Preconditions: &metav1.Preconditions{UID: &uid}})
		out = append(out, kube.NewDryRunWrite("delete pvc "+c.Name, err))
	}
	return out
}
