package rollout

import (
	"fmt"
)

// RefusedError is a rollout that was not started because the StatefulSet
// is not in a state it can run on; nothing was changed.
type RefusedError struct {
	Reason string
	// Input is set when the refusal is about the command line (missing or
	// contradictory flags) rather than the cluster.
	Input bool
}

func (e *RefusedError) Error() string { return e.Reason }

func refuse(format string, args ...any) error {
	return &RefusedError{Reason: fmt.Sprintf(format, args...)}
}

func refuseInput(format string, args ...any) error {
	return &RefusedError{Reason: fmt.Sprintf(format, args...), Input: true}
}

// RolledBackError reports a rollout that failed a gate (or was undone on
// request) and was rolled back cleanly: every pod is Ready on the previous
// revision.
type RolledBackError struct {
	// Step is the 1-based step that failed; 0 for an undo.
	Step, Steps int
	// Reason is why the rollback happened.
	Reason string
	// Revision is the revision every pod runs now.
	Revision string
}

func (e *RolledBackError) Error() string {
	if e.Step == 0 {
		return fmt.Sprintf("rolled back to revision %s: %s", e.Revision, e.Reason)
	}
	return fmt.Sprintf("step %d of %d failed and the rollout was rolled back to revision %s: %s", e.Step, e.Steps, e.Revision, e.Reason)
}

// NeedsAttentionError reports a rollout that stopped part-way and left
// state a person must look at: rollback disabled or itself failed, or the
// StatefulSet changed under the rollout.
type NeedsAttentionError struct {
	Message string
}

func (e *NeedsAttentionError) Error() string { return e.Message }

func needsAttention(format string, args ...any) error {
	return &NeedsAttentionError{Message: fmt.Sprintf(format, args...)}
}

// AbortedError reports a rollout stopped by `rollout abort`: pods stay as
// they are and the partition holds.
type AbortedError struct {
	Step, Steps int
	Partition   int32
}

func (e *AbortedError) Error() string {
	return fmt.Sprintf("rollout aborted during step %d of %d; the partition holds at %d and pods stay as they are (continue with kubectl sts rollout resume, or undo it)", e.Step, e.Steps, e.Partition)
}

// PausedError reports a rollout that stopped at an approval point and
// waits for `kubectl sts rollout resume`.
type PausedError struct {
	Step, Steps int
	Name        string
}

func (e *PausedError) Error() string {
	return fmt.Sprintf("paused after step %d of %d; continue with: kubectl sts rollout resume %s (or undo it with: kubectl sts rollout undo %s)", e.Step, e.Steps, e.Name, e.Name)
}
