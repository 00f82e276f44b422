package rollout

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// Revisions returns the ControllerRevisions owned by the StatefulSet,
// oldest first (by .revision).
func Revisions(ctx context.Context, c kubernetes.Interface, sts *appsv1.StatefulSet) ([]*appsv1.ControllerRevision, error) {
	sel, err := metav1.LabelSelectorAsSelector(sts.Spec.Selector)
	if err != nil {
		return nil, fmt.Errorf("statefulset %s has an invalid selector: %w", sts.Name, err)
	}
	list, err := c.AppsV1().ControllerRevisions(sts.Namespace).List(ctx, metav1.ListOptions{LabelSelector: sel.String()})
	if err != nil {
		return nil, fmt.Errorf("listing the controller revisions of statefulset %s: %w", sts.Name, err)
	}
	var out []*appsv1.ControllerRevision
	for i := range list.Items {
		cr := &list.Items[i]
		if ref := metav1.GetControllerOf(cr); ref != nil && ref.UID == sts.UID {
			out = append(out, cr)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Revision < out[j].Revision })
	return out, nil
}

// FindRevision returns the revision called name, or nil.
func FindRevision(revs []*appsv1.ControllerRevision, name string) *appsv1.ControllerRevision {
	for _, r := range revs {
		if r.Name == name {
			return r
		}
	}
	return nil
}

// PreviousRevision returns the newest revision older than the one called
// current, the one `kubectl rollout undo` goes back to, or nil.
func PreviousRevision(revs []*appsv1.ControllerRevision, current string) *appsv1.ControllerRevision {
	var prev *appsv1.ControllerRevision
	for _, r := range revs {
		if r.Name == current {
			continue
		}
		if prev == nil || r.Revision > prev.Revision {
			prev = r
		}
	}
	return prev
}

// rollbackPatch is the strategic merge patch that restores the pod
// template recorded in rev (the controller stores it as a patch of
// spec.template with "$patch": "replace", which is what kubectl's
// StatefulSet rollbacker applies) and sets the partition in the same
// update, so no pod is moved by an intermediate state.
func rollbackPatch(rev *appsv1.ControllerRevision, partition int32) ([]byte, error) {
	var patch map[string]any
	if err := json.Unmarshal(rev.Data.Raw, &patch); err != nil {
		return nil, fmt.Errorf("controller revision %s holds no readable template: %w", rev.Name, err)
	}
	spec, ok := patch["spec"].(map[string]any)
	if !ok || spec["template"] == nil {
		return nil, fmt.Errorf("controller revision %s holds no pod template", rev.Name)
	}
	spec["updateStrategy"] = map[string]any{
		"type":          string(appsv1.RollingUpdateStatefulSetStrategyType),
		"rollingUpdate": map[string]any{"partition": partition},
	}
	return json.Marshal(patch)
}

// partitionPatch sets the rolling update partition.
func partitionPatch(partition int32) []byte {
	return fmt.Appendf(nil, `{"spec":{"updateStrategy":{"type":"RollingUpdate","rollingUpdate":{"partition":%d}}}}`, partition)
}

// conditionalPartitionPatch is a JSON patch that sets the partition to p
// only while metadata.generation is still base's: every spec change moves
// the generation, status updates do not.
func conditionalPartitionPatch(base *appsv1.StatefulSet, p int32) []byte {
	set := fmt.Sprintf(`{"op":"add","path":"/spec/updateStrategy/rollingUpdate/partition","value":%d}`, p)
	if base.Spec.UpdateStrategy.RollingUpdate == nil {
		set = fmt.Sprintf(`{"op":"add","path":"/spec/updateStrategy/rollingUpdate","value":{"partition":%d}}`, p)
	}
	return fmt.Appendf(nil, `[{"op":"test","path":"/metadata/generation","value":%d},%s]`, base.Generation, set)
}

// Partition returns the StatefulSet's partition (0 when unset).
func Partition(sts *appsv1.StatefulSet) int32 {
	if ru := sts.Spec.UpdateStrategy.RollingUpdate; ru != nil && ru.Partition != nil {
		return *ru.Partition
	}
	return 0
}

// Replicas returns spec.replicas (1 when unset, as the API defaults it).
func Replicas(sts *appsv1.StatefulSet) int32 {
	if sts.Spec.Replicas != nil {
		return *sts.Spec.Replicas
	}
	return 1
}

// OrdinalsStart returns spec.ordinals.start.
func OrdinalsStart(sts *appsv1.StatefulSet) int32 {
	if sts.Spec.Ordinals != nil {
		return sts.Spec.Ordinals.Start
	}
	return 0
}
