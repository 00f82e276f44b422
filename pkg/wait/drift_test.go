package wait

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
)

func driftBase() *appsv1.StatefulSet {
	t0 := metav1.NewTime(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	s := &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: "db", UID: "u1", Generation: 3, ManagedFields: []metav1.ManagedFieldsEntry{
			{Manager: "helm", Operation: metav1.ManagedFieldsOperationUpdate, Time: &t0},
			{Manager: "kube-controller-manager", Operation: metav1.ManagedFieldsOperationUpdate, Subresource: "status", Time: &t0},
		}},
		Spec: appsv1.StatefulSetSpec{Replicas: ptr.To(int32(3))},
	}
	return s
}

func TestDetectDriftNamesWhatChangedAndWho(t *testing.T) {
	later := metav1.NewTime(time.Date(2026, 1, 1, 0, 5, 0, 0, time.UTC))
	for _, tc := range []struct {
		name   string
		change func(s *appsv1.StatefulSet)
		want   string
	}{
		{"nothing", func(*appsv1.StatefulSet) {}, ""},
		{"only status, same generation", func(s *appsv1.StatefulSet) { s.Status.ReadyReplicas = 1 }, ""},
		{"a watch behind the run's own write", func(s *appsv1.StatefulSet) { s.Generation = 2; s.Spec.Replicas = ptr.To(int32(4)) }, ""},
		{"replicas by kubectl", func(s *appsv1.StatefulSet) {
			s.Generation++
			s.Spec.Replicas = ptr.To(int32(4))
			s.ManagedFields = append(s.ManagedFields, metav1.ManagedFieldsEntry{Manager: "kubectl-scale", Operation: metav1.ManagedFieldsOperationUpdate, Time: &later})
		}, "replicas 3 → 4 (changed by kubectl-scale)"},
		{"template and partition by helm again", func(s *appsv1.StatefulSet) {
			s.Generation++
			s.Spec.Template.Annotations = map[string]string{"a": "b"}
			s.Spec.UpdateStrategy.RollingUpdate = &appsv1.RollingUpdateStatefulSetStrategy{Partition: ptr.To(int32(2))}
			s.ManagedFields[0].Time = &later
			s.ManagedFields[1].Time = &later
		}, "the pod template, partition 0 → 2 (changed by helm)"},
		{"update strategy and claims, no managedFields", func(s *appsv1.StatefulSet) {
			s.Generation++
			s.Spec.UpdateStrategy.Type = appsv1.OnDeleteStatefulSetStrategyType
			s.Spec.VolumeClaimTemplates = append(s.Spec.VolumeClaimTemplates, []corev1.PersistentVolumeClaim{{}}...)
			s.ManagedFields = nil
		}, "the update strategy, the volumeClaimTemplates"},
		{"recreated", func(s *appsv1.StatefulSet) { s.UID = types.UID("u2"); s.Generation = 1 }, "it was deleted and recreated"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			base := driftBase()
			cur := base.DeepCopy()
			tc.change(cur)
			assert.Equal(t, tc.want, DetectDrift(base, cur).String())
		})
	}
}
