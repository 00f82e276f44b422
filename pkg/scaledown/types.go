package scaledown

import (
	"fmt"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"github.com/kubectl-sts/kubectl-sts/pkg/journal"
	"github.com/kubectl-sts/kubectl-sts/pkg/kube"
	"github.com/kubectl-sts/kubectl-sts/pkg/progress"
	"github.com/kubectl-sts/kubectl-sts/pkg/wait"
	"github.com/kubectl-sts/kubectl-sts/plugins"
)

// Operation names as kept in the journal and on progress events.
const (
	Operation        = "scale-down"
	CleanupOperation = "cleanup-pvcs"
)

// PlanKind is the kind of the plan document printed with -o json.
const PlanKind = "ScaleDownPlan"

// PVCAction is what happens to the claims of a removed ordinal.
type PVCAction string

// PVC actions. PVCByKubernetes is not chosen by the user: it is the
// action when the StatefulSet's retention policy (whenScaled: Delete) makes
// Kubernetes delete the claims itself.
const (
	PVCKeep         PVCAction = "keep"
	PVCDelete       PVCAction = "delete"
	PVCSnapshot     PVCAction = "snapshot"
	PVCByKubernetes PVCAction = "kubernetes"
)

// DefaultTimeout bounds each wait of a step (pod gone, slot inactive,
// snapshot ready, claim deleted).
const DefaultTimeout = 10 * time.Minute

// Config is what the user asked for.
type Config struct {
	Namespace string
	Name      string
	// Replicas is the target count. Ignored when Cleanup is set.
	Replicas int32
	// Cleanup removes the claims of ordinals at or above the current
	// replica count left by earlier scale-downs, without scaling.
	Cleanup bool
	// PVC is the claim action; PVCExplicit says the user chose it (an
	// explicit choice that cannot be honoured is refused, a default is not).
	PVC           PVCAction
	PVCExplicit   bool
	SnapshotClass string
	// AllowZero permits Replicas 0.
	AllowZero bool
	// Force skips the refusal of an unhealthy StatefulSet or one with a
	// rollout in progress. It never skips the primary, PDB or claim
	// safety checks.
	Force bool
	// Timeout bounds each wait; zero means DefaultTimeout.
	Timeout time.Duration
	// SlotNames are --slot-name templates (see ExpandSlotName).
	SlotNames []string
	// Container is the container engine commands run in ("" lets the
	// engine pick).
	Container string
	// CleanupSlots makes a cleanup also drop what removed members left on
	// the remaining ones (PostgreSQL replication slots); with it, PVC keep
	// leaves the claims alone.
	CleanupSlots bool
	// Slots are slots the user named for a cleanup (--slot): dropped
	// whatever their name or type, when inactive and used by no member.
	Slots []string
}

func (c Config) timeout() time.Duration {
	if c.Timeout <= 0 {
		return DefaultTimeout
	}
	return c.Timeout
}

func (c Config) operation() string {
	if c.Cleanup {
		return CleanupOperation
	}
	return Operation
}

// Deps are the interfaces the workflow works through.
type Deps struct {
	Kube kubernetes.Interface
	// Dynamic reaches the VolumeSnapshot API; needed only for snapshots.
	Dynamic dynamic.Interface
	Exec    kube.Executor
	// EngineFor picks the database engine of the StatefulSet; nil, or a
	// nil engine, means none.
	EngineFor func(sts *appsv1.StatefulSet) (plugins.Engine, error)
	// Events records Kubernetes Events on the StatefulSet; nil records
	// none.
	Events kube.EventRecorder
	// Sink receives progress events; nil drops them.
	Sink progress.Sink
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Holder names this process in the journal's lease.
	Holder string
	// LeaseDuration overrides the journal's lease; tests shorten it.
	LeaseDuration time.Duration
	// TakeOver takes the operation over from a process that still holds
	// its lease.
	TakeOver bool
}

// journal is the operation record of StatefulSet name, on the injected
// clock and lease.
func (d Deps) journal(ns, name string) *journal.Journal {
	lease := d.LeaseDuration
	if lease <= 0 {
		lease = journal.DefaultLeaseDuration
	}
	return journal.New(d.Kube, ns, name, d.Holder).WithClock(d.now, lease).WithTakeOver(d.TakeOver)
}

func (d Deps) now() time.Time {
	if d.Now == nil {
		return time.Now()
	}
	return d.Now()
}

// Plan is what a run will do, computed before anything changes. It is
// JSON-tagged: -o json prints it.
type Plan struct {
	Kind        string    `json:"kind"`
	Operation   string    `json:"operation"`
	Namespace   string    `json:"namespace"`
	StatefulSet string    `json:"statefulSet"`
	UID         types.UID `json:"uid"`
	// From is spec.replicas when the operation started, To the target.
	From          int32 `json:"from"`
	To            int32 `json:"to"`
	OrdinalsStart int   `json:"ordinalsStart"`
	// Current is spec.replicas now; it differs from From on a resume.
	Current int32 `json:"current"`
	// Engine is the database engine's name, "" without one.
	Engine string `json:"engine,omitempty"`
	// Primary is the pod the engine reports as primary, if it does.
	Primary       string    `json:"primary,omitempty"`
	PVC           PVCAction `json:"pvcAction"`
	SnapshotClass string    `json:"snapshotClass,omitempty"`
	WhenScaled    string    `json:"whenScaled"`
	// Steps are the ordinals to handle, in order (highest first).
	Steps []PlanStep `json:"steps"`
	// Stay names the pods that stay, e.g. "db-0..db-2".
	Stay     string   `json:"stay,omitempty"`
	Warnings []string `json:"warnings,omitempty"`
	// Resumed is set when an interrupted run is being continued.
	Resumed bool `json:"resumed,omitempty"`
	// OtherLeftovers are claims of ordinals outside the plan left over by
	// earlier scale-downs; cleanup-pvcs removes them.
	OtherLeftovers []string `json:"otherLeftovers,omitempty"`
	// Leftovers are what removed members left on the remaining ones
	// (replication slots), for a cleanup: each says whether it is
	// dropped, and why or why not.
	Leftovers []plugins.Leftover `json:"leftovers,omitempty"`
	// CleanupSlots is set on a cleanup that also handles replication
	// slots (cleanup, not its alias cleanup-pvcs).
	CleanupSlots bool `json:"cleanupSlots,omitempty"`
	// DryRun is set on plans printed by --dry-run.
	DryRun bool `json:"dryRun,omitempty"`

	cfg   Config
	sts   *appsv1.StatefulSet
	state *State
}

// PlanStep is one ordinal.
type PlanStep struct {
	Ordinal int    `json:"ordinal"`
	Pod     string `json:"pod"`
	// PodExists is whether the pod exists now.
	PodExists bool `json:"podExists"`
	// Slots are the expanded --slot-name values for this ordinal.
	Slots []string  `json:"slots,omitempty"`
	PVCs  []PlanPVC `json:"pvcs"`
	// Done is set for steps an interrupted run finished.
	Done bool `json:"done,omitempty"`
	// Stage is how far an interrupted run got with this step.
	Stage Stage `json:"stage,omitempty"`
}

// PlanPVC is one claim of a step.
type PlanPVC struct {
	Name     string    `json:"name"`
	Template string    `json:"template"`
	UID      types.UID `json:"uid"`
	Capacity string    `json:"capacity,omitempty"`
	Action   PVCAction `json:"action"`
	// Snapshot is the VolumeSnapshot's name for PVCSnapshot.
	Snapshot string `json:"snapshot,omitempty"`
}

// Stage is how far one ordinal's removal has got; stages only move
// forward.
type Stage string

// Stages of one ordinal, in order.
const (
	StagePending    Stage = ""
	StagePrepared   Stage = "prepared"    // engine's BeforeRemove done
	StageScaled     Stage = "scaled"      // spec.replicas lowered past it
	StagePodGone    Stage = "pod-gone"    // the pod no longer exists
	StageEngineDone Stage = "engine-done" // engine's AfterRemove done
	StageDone       Stage = "done"        // claims handled
)

// stageUnknownOrder sorts a stage this version does not know after all.
const stageUnknownOrder = 99

func (s Stage) order() int {
	switch s {
	case StagePending:
		return 0
	case StagePrepared:
		return 1
	case StageScaled:
		return 2
	case StagePodGone:
		return 3
	case StageEngineDone:
		return 4
	case StageDone:
		return 5
	}
	return stageUnknownOrder
}

// reached reports whether s is at or past t.
func (s Stage) reached(t Stage) bool { return s.order() >= t.order() }

// State is the progress kept in the journal, enough to resume.
type State struct {
	UID           types.UID    `json:"uid"`
	From          int32        `json:"from"`
	To            int32        `json:"to"`
	OrdinalsStart int          `json:"ordinalsStart"`
	PVC           PVCAction    `json:"pvcAction"`
	SnapshotClass string       `json:"snapshotClass,omitempty"`
	Engine        string       `json:"engine,omitempty"`
	SlotNames     []string     `json:"slotNames,omitempty"`
	Ordinals      []StepState  `json:"ordinals"`
	Claims        []ClaimState `json:"claims,omitempty"`
	// Left are what the engine steps left in place of removed members
	// (e.g. "slot standby_db_2"), for the summary of the whole operation.
	Left []string `json:"left,omitempty"`
	// DroppedSlots are the slots a cleanup dropped.
	DroppedSlots []string `json:"droppedSlots,omitempty"`
}

// StepState is one ordinal's progress.
type StepState struct {
	Ordinal int   `json:"ordinal"`
	Stage   Stage `json:"stage"`
}

// ClaimState records what was done to one claim, so a resumed run neither
// repeats nor forgets it.
type ClaimState struct {
	Name     string    `json:"name"`
	UID      types.UID `json:"uid"`
	Ordinal  int       `json:"ordinal"`
	Snapshot string    `json:"snapshot,omitempty"`
	// Outcome is "kept", "deleted", "snapshotted" (snapshot ready, claim
	// not yet deleted), "gone" (deleted by someone else) or "left to
	// kubernetes".
	Outcome string `json:"outcome,omitempty"`
}

func (s *State) step(ordinal int) *StepState {
	for i := range s.Ordinals {
		if s.Ordinals[i].Ordinal == ordinal {
			return &s.Ordinals[i]
		}
	}
	return nil
}

// claim returns the record of the claim name with uid: a claim recreated
// under the same name is another claim.
func (s *State) claim(name string, uid types.UID) *ClaimState {
	for i := range s.Claims {
		if s.Claims[i].Name == name && s.Claims[i].UID == uid {
			return &s.Claims[i]
		}
	}
	return nil
}

// InvalidError is a request that cannot be carried out as asked, found
// before anything changed: the command reports it as bad input.
type InvalidError struct{ Msg string }

func (e *InvalidError) Error() string { return e.Msg }

// RefusedError lists why the scale-down is unsafe now. Nothing was
// changed.
type RefusedError struct {
	StatefulSet string
	Reasons     []string
	// Forceable is set when every reason can be overridden with --force.
	Forceable bool
}

func (e *RefusedError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "refusing to change statefulset %s; nothing was changed:", e.StatefulSet)
	for _, r := range e.Reasons {
		b.WriteString("\n  - " + r)
	}
	if e.Forceable {
		b.WriteString("\nwait until it is healthy, or pass --force to proceed anyway")
	}
	return b.String()
}

// StoppedError is a run that stopped part-way, with the progress it made
// kept in the journal: running the same command again resumes it.
type StoppedError struct {
	StatefulSet string
	Err         error
	// Done lists what was completed before the stop.
	Done []string
}

func (e *StoppedError) Error() string {
	msg := fmt.Sprintf("scale-down of statefulset %s stopped: %v", e.StatefulSet, e.Err)
	if len(e.Done) > 0 {
		msg += "\ncompleted before the stop: " + strings.Join(e.Done, "; ")
	}
	return msg + "\nthe progress is recorded in the cluster: fix the cause and run the same command again to resume"
}

func (e *StoppedError) Unwrap() error { return e.Err }

// ChangedElsewhereError stops a run when someone else changed the
// StatefulSet (template, replicas, update strategy, volumeClaimTemplates)
// while it ran: nothing more was changed and nothing was undone.
type ChangedElsewhereError struct {
	StatefulSet string
	Operation   string
	Drift       *wait.Drift
}

func (e *ChangedElsewhereError) Error() string {
	return fmt.Sprintf("statefulset %s was changed by someone else during the %s: %s; the %s stopped at once, changed nothing more and undid nothing. "+
		"Look at it with: kubectl sts status %s; if the change is wanted, run the same command again to continue from the new state",
		e.StatefulSet, e.Operation, e.Drift, e.Operation, e.StatefulSet)
}

// Result is the record of a finished run.
type Result struct {
	// Removed are the pods removed, in order.
	Removed []string `json:"removed"`
	// Deleted, Kept and Snapshots are claims deleted, kept, and the
	// VolumeSnapshots taken.
	Deleted   []string `json:"deleted"`
	Kept      []string `json:"kept"`
	Snapshots []string `json:"snapshots"`
	// ByKubernetes are claims left to the retention policy.
	ByKubernetes []string `json:"byKubernetes,omitempty"`
	// Left are what the engine steps left in place of removed members,
	// e.g. "slot standby_db_2".
	Left []string `json:"left,omitempty"`
	// DroppedSlots are the replication slots a cleanup dropped.
	DroppedSlots []string `json:"droppedSlots,omitempty"`
}
