package status

import (
	"sort"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubectl-sts/kubectl-sts/pkg/wait"
)

// Summarize builds the report of sts from objects already read: its pods and
// the claims of its namespace (other pods and claims are ignored, so callers
// may pass whole lists). It is a pure function of its arguments; now is the
// time ages and the stuck threshold are measured against.
func Summarize(sts *appsv1.StatefulSet, pods []*corev1.Pod, pvcs []*corev1.PersistentVolumeClaim, now time.Time, opts Options) *Report {
	r := &Report{
		APIVersion:   APIVersion,
		Kind:         KindReport,
		ObservedAt:   now,
		StatefulSet:  statefulSetInfo(sts),
		Ordinals:     []OrdinalStatus{},
		LeftoverPVCs: []PVCStatus{},
	}
	info := &r.StatefulSet
	owned := wait.FilterPods(sts, pods)
	currentRevisionFromPods(info, owned, opts.Server)
	claims := ownedPVCs(sts, pvcs)

	start := int(info.OrdinalsStart)
	end := start + int(info.Replicas.Desired) // exclusive
	byOrdinal := make(map[int]*corev1.Pod, len(owned))
	for _, p := range owned {
		n, _ := wait.PodOrdinal(sts.Name, p.Name)
		byOrdinal[n] = p
	}
	ordinals := make([]int, 0, end-start+len(owned))
	for n := start; n < end; n++ {
		ordinals = append(ordinals, n)
	}
	for n := range byOrdinal {
		if n < start || n >= end {
			ordinals = append(ordinals, n)
		}
	}
	sort.Ints(ordinals)

	rows := make(map[int]bool, len(ordinals))
	for _, n := range ordinals {
		rows[n] = true
		desired := n >= start && n < end
		o := OrdinalStatus{Ordinal: n, PodName: wait.PodName(sts.Name, n), Desired: desired, PVCs: []PVCStatus{}}
		if p := byOrdinal[n]; p != nil {
			o.Pod = podStatus(p, info)
		}
		for _, t := range sts.Spec.VolumeClaimTemplates {
			name := wait.PVCName(t.Name, sts.Name, n)
			if c, ok := claims[name]; ok {
				o.PVCs = append(o.PVCs, pvcStatus(c.pvc, t.Name, n))
			} else if desired {
				o.PVCs = append(o.PVCs, PVCStatus{Name: name, Template: t.Name, Ordinal: n, Missing: true})
			}
		}
		r.Ordinals = append(r.Ordinals, o)
	}
	for _, c := range claims {
		if !rows[c.ordinal] {
			r.LeftoverPVCs = append(r.LeftoverPVCs, pvcStatus(c.pvc, c.template, c.ordinal))
		}
	}
	sort.Slice(r.LeftoverPVCs, func(i, k int) bool {
		a, b := r.LeftoverPVCs[i], r.LeftoverPVCs[k]
		if a.Ordinal != b.Ordinal {
			return a.Ordinal < b.Ordinal
		}
		return a.Name < b.Name
	})
	r.Verdict = Judge(r, opts)
	return r
}

// SummarizeSnapshot is Summarize over a wait.Tracker snapshot; it returns
// nil when the snapshot has no StatefulSet (deleted).
func SummarizeSnapshot(s wait.Snapshot, now time.Time, opts Options) *Report {
	if s.StatefulSet == nil {
		return nil
	}
	pods := make([]*corev1.Pod, 0, len(s.Pods))
	for _, p := range s.Pods {
		pods = append(pods, p)
	}
	pvcs := make([]*corev1.PersistentVolumeClaim, 0, len(s.PVCs))
	for _, c := range s.PVCs {
		pvcs = append(pvcs, c)
	}
	return Summarize(s.StatefulSet, pods, pvcs, now, opts)
}

type ownedClaim struct {
	pvc      *corev1.PersistentVolumeClaim
	template string
	ordinal  int
}

// ownedPVCs returns the claims of sts among pvcs (see wait.OwnsClaim),
// keyed by name.
func ownedPVCs(sts *appsv1.StatefulSet, pvcs []*corev1.PersistentVolumeClaim) map[string]ownedClaim {
	out := map[string]ownedClaim{}
	for _, c := range pvcs {
		if t, n, ok := wait.OwnsClaim(sts, c); ok {
			out[c.Name] = ownedClaim{pvc: c, template: t, ordinal: n}
		}
	}
	return out
}

func statefulSetInfo(sts *appsv1.StatefulSet) StatefulSetInfo {
	spec, st := sts.Spec, sts.Status
	desired := int32(1)
	if spec.Replicas != nil {
		desired = *spec.Replicas
	}
	info := StatefulSetInfo{
		Namespace:          sts.Namespace,
		Name:               sts.Name,
		UID:                sts.UID,
		CreatedAt:          sts.CreationTimestamp.Time,
		Generation:         sts.Generation,
		ObservedGeneration: st.ObservedGeneration,
		Deleting:           sts.DeletionTimestamp != nil,
		Replicas: Replicas{
			Desired:   desired,
			Existing:  st.Replicas,
			Ready:     st.ReadyReplicas,
			Current:   st.CurrentReplicas,
			Updated:   st.UpdatedReplicas,
			Available: st.AvailableReplicas,
		},
		CurrentRevision:      st.CurrentRevision,
		UpdateRevision:       st.UpdateRevision,
		UpdateStrategy:       string(spec.UpdateStrategy.Type),
		PodManagementPolicy:  string(spec.PodManagementPolicy),
		MinReadySeconds:      spec.MinReadySeconds,
		ServiceName:          spec.ServiceName,
		PVCRetention:         PVCRetentionPolicy{WhenDeleted: "Retain", WhenScaled: "Retain"},
		VolumeClaimTemplates: []ClaimTemplate{},
		Containers:           []Container{},
	}
	if info.UpdateStrategy == "" {
		info.UpdateStrategy = string(appsv1.RollingUpdateStatefulSetStrategyType)
	}
	if info.PodManagementPolicy == "" {
		info.PodManagementPolicy = string(appsv1.OrderedReadyPodManagement)
	}
	if ru := spec.UpdateStrategy.RollingUpdate; ru != nil && info.UpdateStrategy == string(appsv1.RollingUpdateStatefulSetStrategyType) {
		if ru.Partition != nil {
			info.Partition = *ru.Partition
		}
		if ru.MaxUnavailable != nil {
			info.MaxUnavailable = ru.MaxUnavailable.String()
		}
	}
	if spec.Ordinals != nil {
		info.OrdinalsStart = spec.Ordinals.Start
	}
	if p := spec.PersistentVolumeClaimRetentionPolicy; p != nil {
		if p.WhenDeleted != "" {
			info.PVCRetention.WhenDeleted = string(p.WhenDeleted)
		}
		if p.WhenScaled != "" {
			info.PVCRetention.WhenScaled = string(p.WhenScaled)
		}
	}
	if spec.Selector != nil {
		info.Selector = metav1.FormatLabelSelector(spec.Selector)
	}
	for _, t := range spec.VolumeClaimTemplates {
		ct := ClaimTemplate{Name: t.Name}
		if t.Spec.StorageClassName != nil {
			ct.StorageClass = *t.Spec.StorageClassName
		}
		if q, ok := t.Spec.Resources.Requests[corev1.ResourceStorage]; ok {
			ct.Requested = q.String()
		}
		info.VolumeClaimTemplates = append(info.VolumeClaimTemplates, ct)
	}
	for _, c := range spec.Template.Spec.Containers {
		info.Containers = append(info.Containers, Container{Name: c.Name, Image: c.Image})
	}
	return info
}

func podStatus(p *corev1.Pod, sts *StatefulSetInfo) *PodStatus {
	ps := &PodStatus{
		Name:        p.Name,
		UID:         p.UID,
		Phase:       string(p.Status.Phase),
		Detail:      wait.DescribePodState(p),
		Ready:       wait.IsPodReady(p),
		Containers:  len(p.Spec.Containers),
		Revision:    wait.PodRevision(p),
		Restarts:    wait.PodRestarts(p),
		Node:        p.Spec.NodeName,
		PodIP:       p.Status.PodIP,
		CreatedAt:   p.CreationTimestamp.Time,
		Terminating: p.DeletionTimestamp != nil,
	}
	for _, cs := range p.Status.ContainerStatuses {
		if cs.Ready {
			ps.ReadyContainers++
		}
	}
	for _, c := range p.Spec.Containers {
		ps.Images = append(ps.Images, Container{Name: c.Name, Image: c.Image})
	}
	switch {
	case ps.Revision == sts.CurrentRevision && ps.Revision != "":
		ps.RevisionRole = RevisionCurrent
	case ps.Revision == sts.UpdateRevision && ps.Revision != "":
		ps.RevisionRole = RevisionUpdate
	default:
		ps.RevisionRole = RevisionOther
	}
	ps.Status = ps.Phase
	if ps.Status == "" {
		ps.Status = string(corev1.PodPending)
	}
	if reason := failingReason(p); reason != "" {
		ps.Status = reason
	}
	switch {
	case ps.Terminating:
		ps.Status = "Terminating"
		t := p.DeletionTimestamp.Time
		// The deletion timestamp is when the grace period ends; the pod has
		// been going since the period began.
		if p.DeletionGracePeriodSeconds != nil {
			t = t.Add(-time.Duration(*p.DeletionGracePeriodSeconds) * time.Second)
		}
		ps.NotReadySince = &t
	case !ps.Ready:
		t := p.CreationTimestamp.Time
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodReady && !c.LastTransitionTime.IsZero() && c.LastTransitionTime.After(t) {
				t = c.LastTransitionTime.Time
			}
		}
		ps.NotReadySince = &t
	}
	return ps
}

// failingReason returns the waiting reason of the first container that
// cannot start or keeps crashing, or "".
func failingReason(p *corev1.Pod) string {
	for _, statuses := range [][]corev1.ContainerStatus{p.Status.InitContainerStatuses, p.Status.ContainerStatuses} {
		for _, cs := range statuses {
			if w := cs.State.Waiting; w != nil {
				switch w.Reason {
				case "CrashLoopBackOff", "ImagePullBackOff", "ErrImagePull", "InvalidImageName",
					"CreateContainerConfigError", "CreateContainerError", "RunContainerError":
					return w.Reason
				}
			}
		}
	}
	return ""
}

func pvcStatus(c *corev1.PersistentVolumeClaim, template string, ordinal int) PVCStatus {
	ps := PVCStatus{
		Name:       c.Name,
		Template:   template,
		Ordinal:    ordinal,
		UID:        c.UID,
		Phase:      string(c.Status.Phase),
		VolumeName: c.Spec.VolumeName,
	}
	if c.Spec.StorageClassName != nil {
		ps.StorageClass = *c.Spec.StorageClassName
	}
	if !c.CreationTimestamp.IsZero() {
		t := c.CreationTimestamp.Time
		ps.CreatedAt = &t
	}
	req, hasReq := c.Spec.Resources.Requests[corev1.ResourceStorage]
	capacity, hasCap := c.Status.Capacity[corev1.ResourceStorage]
	if hasReq {
		ps.Requested = req.String()
	}
	if hasCap {
		ps.Capacity = capacity.String()
	}
	if q, ok := c.Status.AllocatedResources[corev1.ResourceStorage]; ok {
		ps.Allocated = q.String()
	}
	ps.Resize, ps.ResizeDetail = resizeState(c, hasReq && hasCap && req.Cmp(capacity) > 0)
	return ps
}

// resizeState reads the resize protocol: conditions, allocatedResourceStatuses
// and the request against the capacity.
func resizeState(c *corev1.PersistentVolumeClaim, requestAboveCapacity bool) (string, string) {
	var failed, pending, progress bool
	var details []string
	for _, cond := range c.Status.Conditions {
		if cond.Status != corev1.ConditionTrue {
			continue
		}
		d := string(cond.Type)
		switch cond.Type {
		case corev1.PersistentVolumeClaimControllerResizeError, corev1.PersistentVolumeClaimNodeResizeError:
			failed = true
		case corev1.PersistentVolumeClaimFileSystemResizePending:
			pending = true
		case corev1.PersistentVolumeClaimResizing:
			progress = true
		default:
			continue
		}
		if cond.Message != "" && cond.Type != corev1.PersistentVolumeClaimFileSystemResizePending {
			d += ": " + cond.Message
		}
		details = append(details, d)
	}
	if s, ok := c.Status.AllocatedResourceStatuses[corev1.ResourceStorage]; ok {
		switch s {
		case corev1.PersistentVolumeClaimControllerResizeInfeasible, corev1.PersistentVolumeClaimNodeResizeInfeasible:
			failed = true
		case corev1.PersistentVolumeClaimNodeResizePending:
			pending = true
		case corev1.PersistentVolumeClaimControllerResizeInProgress, corev1.PersistentVolumeClaimNodeResizeInProgress:
			progress = true
		}
		details = append(details, string(s))
	}
	d := strings.Join(details, "; ")
	switch {
	case failed:
		return ResizeFailed, d
	case pending:
		return ResizePendingRestart, d
	case progress:
		return ResizeInProgress, d
	case requestAboveCapacity:
		return ResizeRequested, d
	}
	return ResizeNone, d
}
