package wait

import (
	"fmt"
	"strconv"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
)

// PodOrdinal returns the ordinal of a pod named "<stsName>-<ordinal>", and
// false if podName is not a pod name the StatefulSet stsName would create.
func PodOrdinal(stsName, podName string) (int, bool) {
	rest, ok := strings.CutPrefix(podName, stsName+"-")
	if !ok || rest == "" || stsName == "" {
		return 0, false
	}
	if len(rest) > 1 && rest[0] == '0' {
		return 0, false
	}
	for _, c := range rest {
		if c < '0' || c > '9' {
			return 0, false
		}
	}
	n, err := strconv.Atoi(rest)
	if err != nil {
		return 0, false
	}
	return n, true
}

// PodName returns the name of the pod with the given ordinal of StatefulSet
// stsName.
func PodName(stsName string, ordinal int) string {
	return fmt.Sprintf("%s-%d", stsName, ordinal)
}

// PVCName returns the name of the PersistentVolumeClaim created from volume
// claim template "template" for the pod with the given ordinal of StatefulSet
// stsName: "<template>-<stsName>-<ordinal>".
func PVCName(template, stsName string, ordinal int) string {
	return fmt.Sprintf("%s-%s-%d", template, stsName, ordinal)
}

// IsPodReady reports whether pod has the condition Ready=True. A nil pod is
// not ready.
func IsPodReady(pod *corev1.Pod) bool {
	c := podCondition(pod, corev1.PodReady)
	return c != nil && c.Status == corev1.ConditionTrue
}

// IsPodTerminating reports whether pod has a deletion timestamp.
func IsPodTerminating(pod *corev1.Pod) bool {
	return pod != nil && pod.DeletionTimestamp != nil
}

// PodRevision returns the StatefulSet controller revision the pod was created
// from (its controller-revision-hash label), or "" if it has none.
func PodRevision(pod *corev1.Pod) string {
	if pod == nil {
		return ""
	}
	return pod.Labels[appsv1.StatefulSetRevisionLabel]
}

// PodRestarts returns the pod's restart count the way kubectl's RESTARTS
// column counts it: the restarts of all regular containers plus those of
// restartable init containers (sidecars). Ordinary init containers are not
// counted because they only run before the pod becomes Ready.
func PodRestarts(pod *corev1.Pod) int32 {
	if pod == nil {
		return 0
	}
	var n int32
	for _, cs := range pod.Status.ContainerStatuses {
		n += cs.RestartCount
	}
	for _, cs := range pod.Status.InitContainerStatuses {
		if isSidecar(pod, cs.Name) {
			n += cs.RestartCount
		}
	}
	return n
}

func isSidecar(pod *corev1.Pod, name string) bool {
	for _, c := range pod.Spec.InitContainers {
		if c.Name == name {
			return c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways
		}
	}
	return false
}

func podCondition(pod *corev1.Pod, t corev1.PodConditionType) *corev1.PodCondition {
	if pod == nil {
		return nil
	}
	for i := range pod.Status.Conditions {
		if pod.Status.Conditions[i].Type == t {
			return &pod.Status.Conditions[i]
		}
	}
	return nil
}

// failingWaitingReason reports whether a container waiting reason means the
// container cannot start or keeps crashing, as opposed to normal start-up.
func failingWaitingReason(reason string) bool {
	switch reason {
	case "CrashLoopBackOff", "ImagePullBackOff", "ErrImagePull", "InvalidImageName",
		"CreateContainerConfigError", "CreateContainerError", "RunContainerError":
		return true
	}
	return false
}

// podProblem returns a description such as "CrashLoopBackOff (container db)"
// for the first container of pod that is stuck in a failing waiting state,
// or "".
func podProblem(pod *corev1.Pod) string {
	check := func(statuses []corev1.ContainerStatus) string {
		for _, cs := range statuses {
			if w := cs.State.Waiting; w != nil && failingWaitingReason(w.Reason) {
				return fmt.Sprintf("%s (container %s)", w.Reason, cs.Name)
			}
		}
		return ""
	}
	if p := check(pod.Status.InitContainerStatuses); p != "" {
		return p
	}
	return check(pod.Status.ContainerStatuses)
}

// DescribePodState returns a short human readable description of a pod's
// state, for progress and error messages. Examples:
//
//	Pending (Unschedulable)
//	Pending (ContainerCreating)
//	Pending (Init:1/2)
//	Running, Ready
//	Running, not Ready (containers not ready: postgres)
//	CrashLoopBackOff (container postgres)
//	Terminating
//	Failed (Evicted)
//
// A nil pod is described as "NotFound".
func DescribePodState(pod *corev1.Pod) string {
	if pod == nil {
		return "NotFound"
	}
	if pod.DeletionTimestamp != nil {
		return "Terminating"
	}
	if p := podProblem(pod); p != "" {
		return p
	}
	switch pod.Status.Phase {
	case corev1.PodPending:
		if c := podCondition(pod, corev1.PodScheduled); c != nil && c.Status == corev1.ConditionFalse {
			reason := c.Reason
			if reason == "" {
				reason = "not scheduled"
			}
			return "Pending (" + reason + ")"
		}
		if d := describeInit(pod); d != "" {
			return "Pending (" + d + ")"
		}
		for _, cs := range pod.Status.ContainerStatuses {
			if w := cs.State.Waiting; w != nil && w.Reason != "" {
				return "Pending (" + w.Reason + ")"
			}
		}
		return "Pending"
	case corev1.PodRunning:
		if IsPodReady(pod) {
			return "Running, Ready"
		}
		var notReady []string
		for _, cs := range pod.Status.ContainerStatuses {
			if !cs.Ready {
				notReady = append(notReady, cs.Name)
			}
		}
		if len(notReady) > 0 {
			return "Running, not Ready (containers not ready: " + strings.Join(notReady, ", ") + ")"
		}
		var gates []string
		for _, g := range pod.Spec.ReadinessGates {
			if c := podCondition(pod, g.ConditionType); c == nil || c.Status != corev1.ConditionTrue {
				gates = append(gates, string(g.ConditionType))
			}
		}
		if len(gates) > 0 {
			return "Running, not Ready (readiness gates not passed: " + strings.Join(gates, ", ") + ")"
		}
		return "Running, not Ready"
	case corev1.PodSucceeded:
		return "Succeeded"
	case corev1.PodFailed:
		if pod.Status.Reason != "" {
			return "Failed (" + pod.Status.Reason + ")"
		}
		return "Failed"
	case "":
		return "Pending"
	default:
		return string(pod.Status.Phase)
	}
}

// describeInit returns "Init:<done>/<total>" while ordinary init containers
// are still running, or "".
func describeInit(pod *corev1.Pod) string {
	total := 0
	for _, c := range pod.Spec.InitContainers {
		if c.RestartPolicy == nil || *c.RestartPolicy != corev1.ContainerRestartPolicyAlways {
			total++
		}
	}
	if total == 0 {
		return ""
	}
	done := 0
	for _, cs := range pod.Status.InitContainerStatuses {
		if isSidecar(pod, cs.Name) {
			continue
		}
		if t := cs.State.Terminated; t != nil && t.ExitCode == 0 {
			done++
		}
	}
	if done >= total {
		return ""
	}
	return fmt.Sprintf("Init:%d/%d", done, total)
}
