package expand

import (
	"time"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/types"
)

// Operation is the journal name of this workflow.
const Operation = "expand-pvc"

const stateVersion = 1

// RestartPolicy is --restart.
type RestartPolicy string

// Restart policies.
const (
	// RestartAuto restarts a pod only when its claim's file system resize
	// waits for one (it did not finish online within the grace period).
	RestartAuto RestartPolicy = "auto"
	// RestartAlways restarts every pod whose claim was grown, once.
	RestartAlways RestartPolicy = "always"
	// RestartNever never restarts a pod: a claim whose file system resize
	// waits for a restart is left for the user, and reported.
	RestartNever RestartPolicy = "never"
)

// ParseRestartPolicy validates a --restart value.
func ParseRestartPolicy(s string) (RestartPolicy, bool) {
	switch p := RestartPolicy(s); p {
	case RestartAuto, RestartAlways, RestartNever:
		return p, true
	}
	return "", false
}

// ClaimStatus is where one ordinal's claim stands in a run.
type ClaimStatus string

// Claim statuses.
const (
	ClaimPending ClaimStatus = "Pending"
	// ClaimPatched: the request was raised; the resize is under way.
	ClaimPatched ClaimStatus = "Patched"
	// ClaimRestarting: the pod was (or is about to be) deleted so its
	// replacement finishes the file system resize.
	ClaimRestarting ClaimStatus = "Restarting"
	// ClaimAwaitingRestart: the volume is expanded but the file system
	// resize waits for a pod restart that --restart never forbids.
	ClaimAwaitingRestart ClaimStatus = "AwaitingRestart"
	// ClaimVerified: capacity reached the size and the pod is Ready.
	ClaimVerified ClaimStatus = "Verified"
)

// ClaimState is the journal entry of one ordinal.
type ClaimState struct {
	Ordinal int         `json:"ordinal"`
	PVC     string      `json:"pvc"`
	Status  ClaimStatus `json:"status"`
	// Patched is set once this operation raised the request.
	Patched bool `json:"patched,omitempty"`
	// RestartedPod is the UID of the pod deleted to finish the resize; it
	// is recorded before the delete, so a resumed run never restarts the
	// ordinal a second time.
	RestartedPod types.UID `json:"restartedPod,omitempty"`
}

// Template step progress.
const (
	TemplateSaved    = "Saved"
	TemplateDeleted  = "Deleted"
	TemplateCreated  = "Created"
	TemplateVerified = "Verified"
)

// PodMark is a pod as it was before the StatefulSet was recreated.
type PodMark struct {
	Name     string    `json:"name"`
	UID      types.UID `json:"uid"`
	Restarts int32     `json:"restarts"`
	Revision string    `json:"revision,omitempty"`
}

// TemplateState is the journal entry of the template step. Desired is
// saved before the StatefulSet is deleted, so a run that died between the
// delete and the create is finished by the next one.
type TemplateState struct {
	Step    string              `json:"step"`
	Desired *appsv1.StatefulSet `json:"desired,omitempty"`
	OldUID  types.UID           `json:"oldUID"`
	NewUID  types.UID           `json:"newUID,omitempty"`
	Pods    []PodMark           `json:"pods,omitempty"`
	// UpdateRevision is the old StatefulSet's update revision; pods on it
	// must stay on it after the recreate.
	UpdateRevision string `json:"updateRevision,omitempty"`
}

// pending reports whether the step started and is not verified.
func (t *TemplateState) pending() bool {
	return t != nil && t.Step != "" && t.Step != TemplateVerified
}

// State is the workflow's progress as kept in the journal.
type State struct {
	Version        int           `json:"version"`
	Claim          string        `json:"claim"`
	Size           string        `json:"size"`
	Restart        RestartPolicy `json:"restart"`
	UpdateTemplate bool          `json:"updateTemplate"`
	StatefulSetUID types.UID     `json:"statefulSetUID"`
	// Order is the planned order of ordinals.
	Order    []int          `json:"order"`
	Claims   []*ClaimState  `json:"claims"`
	Template *TemplateState `json:"template,omitempty"`
	Finished time.Time      `json:"finished,omitempty"`
}

// claim returns the entry of pvc, adding it when missing.
func (s *State) claim(ordinal int, pvc string) *ClaimState {
	for _, c := range s.Claims {
		if c.PVC == pvc {
			return c
		}
	}
	c := &ClaimState{Ordinal: ordinal, PVC: pvc, Status: ClaimPending}
	s.Claims = append(s.Claims, c)
	return c
}

// find returns the entry of pvc or nil.
func (s *State) find(pvc string) *ClaimState {
	if s == nil {
		return nil
	}
	for _, c := range s.Claims {
		if c.PVC == pvc {
			return c
		}
	}
	return nil
}

// sameTarget reports whether s is a run of the same claim and size.
func (s *State) sameTarget(claim, size string) bool {
	return s != nil && s.Claim == claim && sameSize(s.Size, size)
}
