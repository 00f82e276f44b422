package scaledown

import (
	"testing"

	"github.com/stretchr/testify/assert"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
)

func TestRemovedOrdinals(t *testing.T) {
	cases := []struct {
		name     string
		start    int32
		from, to int32
		want     []int
	}{
		{"5 to 3", 0, 5, 3, []int{4, 3}},
		{"ordinals start at 10", 10, 5, 3, []int{14, 13}},
		{"to zero", 0, 3, 0, []int{2, 1, 0}},
		{"one", 0, 2, 1, []int{1}},
		{"start 1, to zero", 1, 2, 0, []int{2, 1}},
		{"no change", 0, 3, 3, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			sts := fixture(1).StatefulSet
			if c.start != 0 {
				sts.Spec.Ordinals = &appsv1.StatefulSetOrdinals{Start: c.start}
			}
			assert.Equal(t, c.want, RemovedOrdinals(sts, c.from, c.to))
		})
	}
}

func TestOwnedClaimTakesOnlyTheStatefulSetsOwnClaims(t *testing.T) {
	f := fixture(3)
	sts := f.StatefulSet
	labels := map[string]string{"app": "db"}
	other := &appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Name: "db", UID: "another-uid"}}
	cases := []struct {
		name     string
		pvc      *corev1.PersistentVolumeClaim
		ok       bool
		template string
		ordinal  int
	}{
		{"first template", claim("data", "db", 4, labels), true, "data", 4},
		{"second template", claim("wal", "db", 7, labels), true, "wal", 7},
		{"extra labels are fine", claim("data", "db", 2, map[string]string{"app": "db", "team": "x"}), true, "data", 2},
		// The controller finds claims by name alone (wait.OwnsClaim).
		{"same name without the selector's labels", claim("data", "db", 4, nil), true, "data", 4},
		{"same name with other labels", claim("data", "db", 4, map[string]string{"app": "db2"}), true, "data", 4},
		{"unknown template", claim("backup", "db", 4, labels), false, "", 0},
		{"another statefulset with a longer name", claim("data", "db-archive", 4, labels), false, "", 0},
		{"another statefulset whose name ends like an ordinal", claim("data", "db-1", 0, labels), false, "", 0},
		{"suffix after the ordinal", withName(claim("data", "db", 4, labels), "data-db-4-old"), false, "", 0},
		{"leading zero", withName(claim("data", "db", 4, labels), "data-db-04"), false, "", 0},
		{"not a number", withName(claim("data", "db", 4, labels), "data-db-x"), false, "", 0},
		{"other namespace", inNamespace(claim("data", "db", 4, labels), "staging"), false, "", 0},
		{"controlled by another statefulset of the same name", controlledBy(claim("data", "db", 4, labels), other), false, "", 0},
		{"controlled by this statefulset", controlledBy(claim("data", "db", 4, labels), sts), true, "data", 4},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, ok := OwnedClaim(sts, c.pvc)
			assert.Equal(t, c.ok, ok)
			if c.ok {
				assert.Equal(t, c.template, got.Template)
				assert.Equal(t, c.ordinal, got.Ordinal)
			}
		})
	}
}

func TestOwnedClaimWithTemplatesThatArePrefixesOfEachOther(t *testing.T) {
	sts := fixture(1).StatefulSet
	sts.Spec.VolumeClaimTemplates = []corev1.PersistentVolumeClaim{
		{ObjectMeta: metav1.ObjectMeta{Name: "data"}},
		{ObjectMeta: metav1.ObjectMeta{Name: "data-db"}},
	}
	labels := map[string]string{"app": "db"}
	got, ok := OwnedClaim(sts, claim("data-db", "db", 3, labels))
	assert.True(t, ok)
	assert.Equal(t, "data-db", got.Template)
	assert.Equal(t, 3, got.Ordinal)
	got, ok = OwnedClaim(sts, claim("data", "db", 3, labels))
	assert.True(t, ok)
	assert.Equal(t, "data", got.Template)
}

func TestClaimsByOrdinalGroupsInTemplateOrder(t *testing.T) {
	f := fixture(3)
	pvcs := append([]*corev1.PersistentVolumeClaim{claim("wal", "db", 5, map[string]string{"app": "db"})}, f.PVCs...)
	pvcs = append(pvcs, claim("data", "db", 5, map[string]string{"app": "db"}), claim("data", "db", 6, nil))
	got := ClaimsByOrdinal(f.StatefulSet, pvcs)
	assert.Len(t, got, 5)
	names := func(cs []Claim) []string {
		var out []string
		for _, c := range cs {
			out = append(out, c.PVC.Name)
		}
		return out
	}
	assert.Equal(t, []string{"data-db-0", "wal-db-0"}, names(got[0]))
	assert.Equal(t, []string{"data-db-5", "wal-db-5"}, names(got[5]))
	assert.Equal(t, []string{"data-db-6"}, names(got[6]), "a claim is the statefulset's by its name, labelled or not")
}

func TestLeftoverOrdinals(t *testing.T) {
	f := fixture(5)
	f.ScaleTo(3).DeletePod(4)
	// Ordinal 3's pod still exists: a scale-down is still removing it.
	f.PVCs = append(f.PVCs, claim("data", "db", 9, map[string]string{"app": "db"}))
	claims := ClaimsByOrdinal(f.StatefulSet, f.PVCs)
	pods := PodsByOrdinal(f.StatefulSet, f.Pods)
	assert.Equal(t, []int{9, 4}, LeftoverOrdinals(f.StatefulSet, claims, pods))
}

func TestLeftoverOrdinalsWithOrdinalsStart(t *testing.T) {
	f := fixture(1)
	sts := f.StatefulSet
	sts.Spec.Ordinals = &appsv1.StatefulSetOrdinals{Start: 5}
	sts.Spec.Replicas = ptr.To(int32(2))
	labels := map[string]string{"app": "db"}
	claims := ClaimsByOrdinal(sts, []*corev1.PersistentVolumeClaim{
		claim("data", "db", 2, labels), // below start: not a scale-down leftover
		claim("data", "db", 5, labels),
		claim("data", "db", 6, labels),
		claim("data", "db", 7, labels),
		claim("wal", "db", 8, labels),
	})
	assert.Equal(t, []int{8, 7}, LeftoverOrdinals(sts, claims, nil))
}

func TestPodUsingClaim(t *testing.T) {
	pods := []corev1.Pod{
		{ObjectMeta: metav1.ObjectMeta{Name: "backup"}, Spec: corev1.PodSpec{Volumes: []corev1.Volume{{Name: "v", VolumeSource: corev1.VolumeSource{
			PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "data-db-4"}}}}}},
	}
	assert.Equal(t, "backup", podUsingClaim(pods, "data-db-4"))
	assert.Equal(t, "", podUsingClaim(pods, "data-db-3"))
}

func withName(c *corev1.PersistentVolumeClaim, name string) *corev1.PersistentVolumeClaim {
	c.Name = name
	return c
}

func inNamespace(c *corev1.PersistentVolumeClaim, namespace string) *corev1.PersistentVolumeClaim {
	c.Namespace = namespace
	return c
}

func controlledBy(c *corev1.PersistentVolumeClaim, sts *appsv1.StatefulSet) *corev1.PersistentVolumeClaim {
	c.OwnerReferences = []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "StatefulSet", Name: sts.Name, UID: types.UID(sts.UID), Controller: ptr.To(true)}}
	return c
}

// otherSTS is a StatefulSet of another name: a claim it controls is not
// db's, whatever its name.
func otherSTS() *appsv1.StatefulSet {
	return &appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Name: "archive", UID: "archive-uid"}}
}
