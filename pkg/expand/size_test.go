package expand

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

func TestParseSize(t *testing.T) {
	for _, tc := range []struct {
		in, want string
	}{
		{"50Gi", "50Gi"},
		{" 2Ti ", "2Ti"},
		{"20480Mi", "20Gi"},
		{"1.5Gi", "1536Mi"},
		{"500G", "500G"},
		{"1e9", "1G"},
		{"1Mi", "1Mi"},
	} {
		q, err := ParseSize(tc.in)
		require.NoError(t, err, tc.in)
		assert.Equal(t, tc.want, q.String(), tc.in)
	}
}

func TestParseSizeRefusals(t *testing.T) {
	for _, tc := range []struct {
		in, want string
	}{
		{"", "--size is required"},
		{"big", "is not a Kubernetes quantity: use a number with a unit"},
		{"50GB", "did you mean 50Gi (binary, powers of 1024) or 50G (decimal)?"},
		{"50gi", "did you mean 50Gi"},
		{"10kb", "did you mean 10Ki (binary, powers of 1024) or 10k (decimal)?"},
		{"0", "must be larger than zero"},
		{"-5Gi", "must be larger than zero"},
		{"100m", "not a whole number of bytes"},
		{"50", "almost certainly missing a unit: use e.g. 50Gi"},
		{"1023Ki", "almost certainly missing a unit"},
	} {
		_, err := ParseSize(tc.in)
		require.Error(t, err, tc.in)
		assert.Contains(t, err.Error(), tc.want, tc.in)
	}
}

func TestQuantitiesCompareByValueNotSpelling(t *testing.T) {
	a, err := ParseSize("20Gi")
	require.NoError(t, err)
	b, err := ParseSize("20480Mi")
	require.NoError(t, err)
	assert.Zero(t, a.Cmp(b))
	c, err := ParseSize("21G")
	require.NoError(t, err)
	assert.Equal(t, 1, a.Cmp(c), "20Gi is 21.47G")
}

func pvcWith(request, capacity string, status corev1.ClaimResourceStatus, conds ...corev1.PersistentVolumeClaimConditionType) *corev1.PersistentVolumeClaim {
	p := newPVC(0, classOn, request, capacity)
	if status != "" {
		p.Status.AllocatedResourceStatuses = map[corev1.ResourceName]corev1.ClaimResourceStatus{corev1.ResourceStorage: status}
	}
	for _, c := range conds {
		p.Status.Conditions = append(p.Status.Conditions, corev1.PersistentVolumeClaimCondition{Type: c, Status: corev1.ConditionTrue, Message: "msg of " + string(c)})
	}
	return p
}

func stale(p *corev1.PersistentVolumeClaim, allocated string) *corev1.PersistentVolumeClaim {
	p.Status.AllocatedResources = corev1.ResourceList{corev1.ResourceStorage: resource.MustParse(allocated)}
	return p
}

func TestResizeStage(t *testing.T) {
	size := resource.MustParse("2Gi")
	for _, tc := range []struct {
		name string
		pvc  *corev1.PersistentVolumeClaim
		want Stage
	}{
		{"nothing asked", pvcWith("1Gi", "1Gi", ""), StageNone},
		{"asked, no resizer yet", pvcWith("2Gi", "1Gi", ""), StageRequested},
		{"controller", pvcWith("2Gi", "1Gi", corev1.PersistentVolumeClaimControllerResizeInProgress, corev1.PersistentVolumeClaimResizing), StageController},
		{"condition only", pvcWith("2Gi", "1Gi", "", corev1.PersistentVolumeClaimResizing), StageController},
		{"node pending", pvcWith("2Gi", "1Gi", corev1.PersistentVolumeClaimNodeResizePending, corev1.PersistentVolumeClaimFileSystemResizePending), StageNode},
		{"node in progress", pvcWith("2Gi", "1Gi", corev1.PersistentVolumeClaimNodeResizeInProgress), StageNode},
		{"file system pending, old cluster", pvcWith("2Gi", "1Gi", "", corev1.PersistentVolumeClaimFileSystemResizePending), StageNode},
		{"controller infeasible", pvcWith("2Gi", "1Gi", corev1.PersistentVolumeClaimControllerResizeInfeasible, corev1.PersistentVolumeClaimControllerResizeError), StageInfeasible},
		{"node infeasible", pvcWith("2Gi", "1Gi", corev1.PersistentVolumeClaimNodeResizeInfeasible), StageInfeasible},
		{"infeasible at an older request", stale(pvcWith("2Gi", "1Gi", corev1.PersistentVolumeClaimControllerResizeInfeasible), "3Gi"), StageRequested},
		{"infeasible at this request", stale(pvcWith("2Gi", "1Gi", corev1.PersistentVolumeClaimControllerResizeInfeasible), "2Gi"), StageInfeasible},
		{"done", pvcWith("2Gi", "2Gi", ""), StageDone},
		{"capacity above", pvcWith("2Gi", "3Gi", ""), StageDone},
	} {
		got, detail := ResizeStage(tc.pvc, size)
		assert.Equal(t, tc.want, got, tc.name)
		assert.NotEmpty(t, detail, tc.name)
	}
	_, detail := ResizeStage(pvcWith("2Gi", "1Gi", corev1.PersistentVolumeClaimControllerResizeInfeasible, corev1.PersistentVolumeClaimControllerResizeError), size)
	assert.Equal(t, "capacity 1Gi (ControllerResizeInfeasible; ControllerResizeError: msg of ControllerResizeError)", detail)
}
