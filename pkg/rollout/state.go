package rollout

import (
	"time"

	"k8s.io/apimachinery/pkg/types"
)

// Operation is the journal name of a rollout.
const Operation = "rollout"

// Stage is where a recorded rollout stands.
type Stage string

// Stages, in order; a rollback can follow any of them.
const (
	// StageApply: the new template is being applied (change mode).
	StageApply Stage = "apply"
	// StageSteps: the plan's steps are running.
	StageSteps Stage = "steps"
	// StageFinish: every step passed; waiting for the controller to
	// complete and restoring the final partition.
	StageFinish Stage = "finish"
	// StageRollback: restoring the previous revision.
	StageRollback Stage = "rollback"
)

// Gates configure the checks between steps.
type Gates struct {
	// StepTimeout bounds each step's wait (pods Ready, gates passing);
	// the soak comes on top.
	StepTimeout time.Duration `json:"stepTimeout"`
	Soak        time.Duration `json:"soak,omitempty"`
	// Exec runs in each newly updated pod (sh -c), in ExecContainer.
	Exec          string `json:"exec,omitempty"`
	ExecContainer string `json:"execContainer,omitempty"`
	// Command runs on this machine (sh -c).
	Command string `json:"command,omitempty"`
	// Engine is the --engine value; the resolved engine name once known.
	Engine        string  `json:"engine,omitempty"`
	MaxLagBytes   int64   `json:"maxLagBytes,omitempty"`
	MaxLagSeconds float64 `json:"maxLagSeconds,omitempty"`
	// RollbackTimeout bounds the rollback's wait for every pod to be
	// Ready on the previous revision.
	RollbackTimeout time.Duration `json:"rollbackTimeout"`
}

// StepState is the progress of one step.
type StepState struct {
	Started  time.Time `json:"started,omitzero"`
	Finished time.Time `json:"finished,omitzero"`
	// Skipped: the pods were already on the new revision when the rollout
	// began.
	Skipped bool `json:"skipped,omitempty"`
	// UIDs of the step's pods once it passed.
	UIDs map[string]types.UID `json:"uids,omitempty"`
}

// RollbackState is the progress of a rollback.
type RollbackState struct {
	Reason  string    `json:"reason"`
	Started time.Time `json:"started"`
	// FailedStep is the 1-based step whose gates failed; 0 for an undo.
	FailedStep int `json:"failedStep,omitempty"`
	// Target is the revision the controller gave the restored template.
	Target  string   `json:"target,omitempty"`
	Deleted []string `json:"deleted,omitempty"`
}

// State is what the journal keeps of a rollout so that any process can
// resume it.
type State struct {
	// ID identifies this rollout in the control annotations.
	ID string `json:"id"`
	// UID is the StatefulSet's; a recreated StatefulSet is another object.
	UID   types.UID `json:"uid"`
	Plan  Plan      `json:"plan"`
	Gates Gates     `json:"gates"`
	// From is the revision before the rollout (the rollback target); To
	// the revision rolled out (empty until applied in change mode).
	From string `json:"from"`
	To   string `json:"to,omitempty"`
	// OriginalPartition is the partition before the rollout, restored
	// after a rollback; FinalPartition is set when the rollout succeeds.
	OriginalPartition int32 `json:"originalPartition"`
	FinalPartition    int32 `json:"finalPartition"`
	Stage             Stage `json:"stage"`
	// Current is the index of the step running or next to run.
	Current int         `json:"current"`
	Steps   []StepState `json:"steps"`
	// PauseAfter lists 1-based steps to pause after.
	PauseAfter []int `json:"pauseAfter,omitempty"`
	// PausedAfter is the 1-based step the rollout is paused after.
	PausedAfter int  `json:"pausedAfter,omitempty"`
	NoRollback  bool `json:"noRollback,omitempty"`
	// Change is the template change of change mode, kept until applied.
	Change *Change `json:"change,omitempty"`
	// Handoff is a restart of the leader in place before a step, in
	// progress (plugins.LeaderLastEngine).
	Handoff  *HandoffState  `json:"handoff,omitempty"`
	Rollback *RollbackState `json:"rollback,omitempty"`
}

// StepNumber is the 1-based number of the current step, clamped to the
// plan.
func (s *State) StepNumber() int {
	n := s.Current + 1
	if n > len(s.Plan.Steps) {
		n = len(s.Plan.Steps)
	}
	return n
}

func (s *State) pauseWanted(step int) bool {
	for _, p := range s.PauseAfter {
		if p == step {
			return true
		}
	}
	return false
}
