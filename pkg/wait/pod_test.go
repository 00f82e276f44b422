package wait

import (
	"testing"

	"github.com/stretchr/testify/assert"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestPodOrdinal(t *testing.T) {
	cases := []struct {
		sts, pod string
		ord      int
		ok       bool
	}{
		{"db", "db-0", 0, true},
		{"db", "db-12", 12, true},
		{"db-1", "db-1-3", 3, true},
		{"db", "db-1-3", 0, false},
		{"db", "db-", 0, false},
		{"db", "db-01", 0, false},
		{"db", "db-x", 0, false},
		{"db", "dbx-0", 0, false},
		{"db", "db", 0, false},
		{"", "-0", 0, false},
		{"db", "db-99999999999999999999", 0, false},
	}
	for _, c := range cases {
		ord, ok := PodOrdinal(c.sts, c.pod)
		assert.Equal(t, c.ok, ok, "%s/%s", c.sts, c.pod)
		assert.Equal(t, c.ord, ord, "%s/%s", c.sts, c.pod)
	}
	assert.Equal(t, "db-3", PodName("db", 3))
	assert.Equal(t, "data-db-3", PVCName("data", "db", 3))
}

func TestPodRestartsCountsContainersAndSidecars(t *testing.T) {
	always := corev1.ContainerRestartPolicyAlways
	p := newPod("db", 0, "u0", "r1", withRestarts(2))
	p.Spec.InitContainers = []corev1.Container{{Name: "init"}, {Name: "proxy", RestartPolicy: &always}}
	p.Status.InitContainerStatuses = []corev1.ContainerStatus{
		{Name: "init", RestartCount: 5},
		{Name: "proxy", RestartCount: 1},
	}
	p.Status.ContainerStatuses = append(p.Status.ContainerStatuses, corev1.ContainerStatus{Name: "exporter", RestartCount: 4})
	assert.Equal(t, int32(2+4+1), PodRestarts(p))
	assert.Equal(t, int32(0), PodRestarts(nil))
}

func TestIsPodReadyAndRevision(t *testing.T) {
	assert.True(t, IsPodReady(newPod("db", 0, "u", "r1")))
	assert.False(t, IsPodReady(newPod("db", 0, "u", "r1", notReady)))
	assert.False(t, IsPodReady(&corev1.Pod{}))
	assert.False(t, IsPodReady(nil))
	assert.Equal(t, "r1", PodRevision(newPod("db", 0, "u", "r1")))
	assert.Equal(t, "", PodRevision(nil))
}

func TestDescribePodState(t *testing.T) {
	now := metav1.Now()
	waiting := func(reason string) podOpt {
		return func(p *corev1.Pod) {
			p.Status.ContainerStatuses[0].State = corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: reason}}
		}
	}
	pending := func(p *corev1.Pod) { p.Status.Phase = corev1.PodPending }

	cases := []struct {
		name string
		pod  *corev1.Pod
		want string
	}{
		{"nil", nil, "NotFound"},
		{"ready", newPod("db", 0, "u", "r"), "Running, Ready"},
		{"not ready", newPod("db", 0, "u", "r", notReady), "Running, not Ready (containers not ready: postgres)"},
		{"terminating", newPod("db", 0, "u", "r", func(p *corev1.Pod) { p.DeletionTimestamp = &now }), "Terminating"},
		{"crashloop", newPod("db", 0, "u", "r", notReady, waiting("CrashLoopBackOff")), "CrashLoopBackOff (container postgres)"},
		{"image pull", newPod("db", 0, "u", "r", pending, waiting("ImagePullBackOff")), "ImagePullBackOff (container postgres)"},
		{"creating", newPod("db", 0, "u", "r", pending, notReady, waiting("ContainerCreating")), "Pending (ContainerCreating)"},
		{"unschedulable", newPod("db", 0, "u", "r", pending, func(p *corev1.Pod) {
			p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Reason: "Unschedulable"}}
			p.Status.ContainerStatuses = nil
		}), "Pending (Unschedulable)"},
		{"init", newPod("db", 0, "u", "r", pending, func(p *corev1.Pod) {
			p.Spec.InitContainers = []corev1.Container{{Name: "a"}, {Name: "b"}}
			p.Status.InitContainerStatuses = []corev1.ContainerStatus{
				{Name: "a", State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 0}}},
				{Name: "b", State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}},
			}
		}), "Pending (Init:1/2)"},
		{"readiness gate", newPod("db", 0, "u", "r", func(p *corev1.Pod) {
			p.Spec.ReadinessGates = []corev1.PodReadinessGate{{ConditionType: "example.com/in-lb"}}
			p.Status.Conditions[1].Status = corev1.ConditionFalse
		}), "Running, not Ready (readiness gates not passed: example.com/in-lb)"},
		{"evicted", newPod("db", 0, "u", "r", func(p *corev1.Pod) {
			p.Status.Phase, p.Status.Reason = corev1.PodFailed, "Evicted"
		}), "Failed (Evicted)"},
		{"succeeded", newPod("db", 0, "u", "r", func(p *corev1.Pod) { p.Status.Phase = corev1.PodSucceeded }), "Succeeded"},
		{"no status yet", &corev1.Pod{}, "Pending"},
	}
	for _, c := range cases {
		assert.Equal(t, c.want, DescribePodState(c.pod), c.name)
	}
}
