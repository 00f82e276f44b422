package status

import (
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/types"

	"github.com/kubectl-sts/kubectl-sts/plugins"
)

// Identifiers of the JSON/YAML documents; docs/status.md describes the schema.
const (
	APIVersion = "kubectl-sts.io/v1alpha1"
	KindReport = "StatefulSetStatus"
	KindList   = "StatefulSetStatusList"
)

// Report is everything `kubectl sts status` knows about one StatefulSet. It
// is the model that -o json|yaml marshal and that the table renders.
type Report struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	// ObservedAt is the time the report was assembled; ages are relative
	// to it.
	ObservedAt  time.Time       `json:"observedAt"`
	StatefulSet StatefulSetInfo `json:"statefulSet"`
	// Ordinals has one entry per desired ordinal, missing pods included,
	// followed by pods outside the desired range that still exist (a
	// scale-down in progress).
	Ordinals []OrdinalStatus `json:"ordinals"`
	// LeftoverPVCs are claims of the StatefulSet's templates whose ordinal
	// has no pod and is outside the desired range: kept after a scale-down.
	LeftoverPVCs []PVCStatus `json:"leftoverPVCs"`
	// Engine and Members are the database's own view, present only when
	// an engine was asked.
	Engine  *EngineStatus    `json:"engine,omitempty"`
	Members []plugins.Member `json:"members,omitempty"`
	// Operation is the unfinished kubectl-sts operation recorded for the
	// StatefulSet, when there is one and its record could be read.
	Operation *OperationStatus `json:"operation,omitempty"`
	Verdict   Verdict          `json:"verdict"`
}

// List is the document printed for several StatefulSets (-A, or no name).
type List struct {
	APIVersion string    `json:"apiVersion"`
	Kind       string    `json:"kind"`
	Items      []*Report `json:"items"`
}

// NewList wraps reports in a List document.
func NewList(reports []*Report) *List {
	if reports == nil {
		reports = []*Report{}
	}
	return &List{APIVersion: APIVersion, Kind: KindList, Items: reports}
}

// StatefulSetInfo summarises the StatefulSet object itself.
type StatefulSetInfo struct {
	Namespace          string    `json:"namespace"`
	Name               string    `json:"name"`
	UID                types.UID `json:"uid"`
	CreatedAt          time.Time `json:"createdAt"`
	Generation         int64     `json:"generation"`
	ObservedGeneration int64     `json:"observedGeneration"`
	// Deleting is set when the StatefulSet has a deletion timestamp.
	Deleting bool     `json:"deleting,omitempty"`
	Replicas Replicas `json:"replicas"`
	// CurrentRevision and UpdateRevision are ControllerRevision names
	// ("<statefulset>-<hash>"); ShortRevision gives the hash.
	CurrentRevision string `json:"currentRevision"`
	UpdateRevision  string `json:"updateRevision"`
	// CurrentRevisionSource is "pods" when CurrentRevision was read from
	// the pods because the server's status.currentRevision cannot be
	// trusted (OnDelete before Kubernetes 1.37); empty when it is the
	// server's.
	CurrentRevisionSource string `json:"currentRevisionSource,omitempty"`
	// UpdateStrategy is RollingUpdate, OnDelete or Recreate.
	UpdateStrategy string `json:"updateStrategy"`
	// Partition applies to RollingUpdate: pods whose index (ordinal minus
	// ordinalsStart) is at least Partition are updated.
	Partition      int32  `json:"partition"`
	MaxUnavailable string `json:"maxUnavailable,omitempty"`
	// PodManagementPolicy is OrderedReady or Parallel.
	PodManagementPolicy string             `json:"podManagementPolicy"`
	OrdinalsStart       int32              `json:"ordinalsStart"`
	PVCRetention        PVCRetentionPolicy `json:"pvcRetentionPolicy"`
	MinReadySeconds     int32              `json:"minReadySeconds,omitempty"`
	ServiceName         string             `json:"serviceName,omitempty"`
	Selector            string             `json:"selector"`
	// VolumeClaimTemplates are the claim templates, in spec order.
	VolumeClaimTemplates []ClaimTemplate `json:"volumeClaimTemplates"`
	// Containers are the pod template's containers (the update revision's).
	Containers []Container `json:"containers"`
}

// Replicas are the StatefulSet's desired count and the controller's counts
// from its status.
type Replicas struct {
	Desired int32 `json:"desired"`
	// Existing is status.replicas: pods the controller has created.
	Existing  int32 `json:"existing"`
	Ready     int32 `json:"ready"`
	Current   int32 `json:"current"`
	Updated   int32 `json:"updated"`
	Available int32 `json:"available"`
}

// PVCRetentionPolicy is spec.persistentVolumeClaimRetentionPolicy with the
// API defaults (Retain) filled in.
type PVCRetentionPolicy struct {
	WhenDeleted string `json:"whenDeleted"`
	WhenScaled  string `json:"whenScaled"`
}

// ClaimTemplate is one volumeClaimTemplate.
type ClaimTemplate struct {
	Name         string `json:"name"`
	StorageClass string `json:"storageClass,omitempty"`
	Requested    string `json:"requested,omitempty"`
}

// Container is one container of the pod template or of a pod.
type Container struct {
	Name  string `json:"name"`
	Image string `json:"image"`
}

// OrdinalStatus is one ordinal: its pod (nil when missing) and its claims.
type OrdinalStatus struct {
	Ordinal int    `json:"ordinal"`
	PodName string `json:"podName"`
	// Desired is false for ordinals outside the desired range whose pod
	// still exists.
	Desired bool       `json:"desired"`
	Pod     *PodStatus `json:"pod"`
	// PVCs has one entry per claim template; a claim that does not exist
	// has Missing set.
	PVCs []PVCStatus `json:"pvcs"`
	// Member is the engine's view of this pod, when an engine was asked.
	Member *plugins.Member `json:"member,omitempty"`
}

// Revision roles of a pod relative to its StatefulSet.
const (
	RevisionCurrent = "current"
	RevisionUpdate  = "update"
	RevisionOther   = "other"
)

// PodStatus is one pod.
type PodStatus struct {
	Name string    `json:"name"`
	UID  types.UID `json:"uid"`
	// Phase is the pod's status.phase.
	Phase string `json:"phase"`
	// Status is what the STATUS column shows: Terminating, a failing
	// container reason such as CrashLoopBackOff, or the phase.
	Status string `json:"status"`
	// Detail describes the state in words, e.g. "Running, not Ready
	// (containers not ready: db)".
	Detail          string `json:"detail"`
	Ready           bool   `json:"ready"`
	ReadyContainers int    `json:"readyContainers"`
	Containers      int    `json:"containers"`
	// NotReadySince is when the pod last stopped being Ready (or was
	// created, if it never was); for a terminating pod, when its deletion
	// began. Unset while Ready.
	NotReadySince *time.Time `json:"notReadySince,omitempty"`
	// Revision is the pod's controller-revision-hash label (a
	// ControllerRevision name); RevisionRole says whether it is the
	// StatefulSet's current or update revision, or another one.
	Revision     string      `json:"revision"`
	RevisionRole string      `json:"revisionRole"`
	Restarts     int32       `json:"restarts"`
	Node         string      `json:"node,omitempty"`
	PodIP        string      `json:"podIP,omitempty"`
	CreatedAt    time.Time   `json:"createdAt"`
	Terminating  bool        `json:"terminating,omitempty"`
	Images       []Container `json:"containerImages,omitempty"`
}

// Resize states of a claim.
const (
	// ResizeNone: nothing to do, capacity matches the request.
	ResizeNone = ""
	// ResizeRequested: the request exceeds the capacity and no resizer has
	// reported progress yet.
	ResizeRequested = "Requested"
	// ResizeInProgress: the controller or node side is expanding the volume.
	ResizeInProgress = "InProgress"
	// ResizePendingRestart: the volume was expanded; the file system resize
	// waits for the pod to (re)start (FileSystemResizePending).
	ResizePendingRestart = "PendingRestart"
	// ResizeFailed: the resize was refused or failed (infeasible, resize
	// error conditions).
	ResizeFailed = "Failed"
)

// PVCStatus is one PersistentVolumeClaim of an ordinal.
type PVCStatus struct {
	Name     string    `json:"name"`
	Template string    `json:"template"`
	Ordinal  int       `json:"ordinal"`
	UID      types.UID `json:"uid,omitempty"`
	// Missing is set when the claim the ordinal needs does not exist.
	Missing      bool   `json:"missing,omitempty"`
	Phase        string `json:"phase,omitempty"`
	StorageClass string `json:"storageClass,omitempty"`
	VolumeName   string `json:"volumeName,omitempty"`
	// Requested is spec.resources.requests.storage, Capacity
	// status.capacity.storage and Allocated status.allocatedResources.storage.
	Requested string `json:"requested,omitempty"`
	Capacity  string `json:"capacity,omitempty"`
	Allocated string `json:"allocated,omitempty"`
	// Resize is one of the Resize* states; ResizeDetail has the conditions
	// and messages it was derived from.
	Resize       string     `json:"resize"`
	ResizeDetail string     `json:"resizeDetail,omitempty"`
	CreatedAt    *time.Time `json:"createdAt,omitempty"`
}

// EngineStatus is the outcome of asking the database engine.
type EngineStatus struct {
	Name string `json:"name"`
	// Healthy and Reason are the engine's judgement of its members.
	Healthy bool   `json:"healthy"`
	Reason  string `json:"reason,omitempty"`
	// Error is set when the engine could not be asked at all.
	Error string `json:"error,omitempty"`
	// ReadAt is when the engine was asked; under --watch the answer is
	// reused for a while, so it can be older than ObservedAt.
	ReadAt time.Time `json:"readAt"`
	// Traps are the known dangers the engine named in its members; each
	// is also a verdict reason of the same code.
	Traps []plugins.Trap `json:"traps,omitempty"`
}

// ShortRevision returns the hash part of a ControllerRevision name
// "<statefulset>-<hash>", or the name itself when it has another form.
func ShortRevision(stsName, revision string) string {
	if h, ok := strings.CutPrefix(revision, stsName+"-"); ok && h != "" {
		return h
	}
	return revision
}
