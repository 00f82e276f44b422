// Package plugins holds the database engines kubectl-sts understands, one
// package each, behind the small Engine interface in this file. status,
// the rollout gates and scale-down talk to databases only through it.
package plugins

import (
	"context"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/kubectl-sts/kubectl-sts/pkg/kube"
)

// AnnotationEngine on a StatefulSet names its engine explicitly.
const AnnotationEngine = "kubectl-sts.io/engine"

// Role is a member's place in the replica set.
type Role string

// Roles every engine maps its own terms onto.
const (
	RolePrimary Role = "primary"
	RoleReplica Role = "replica"
	RoleArbiter Role = "arbiter"
	RoleUnknown Role = "unknown"
)

// Member is one pod as the database sees it.
type Member struct {
	Pod     string `json:"pod"`
	Ordinal int    `json:"ordinal"`
	Role    Role   `json:"role"`
	// State is the engine's replication state in its own words
	// (e.g. "streaming", "Yes/Yes", "online").
	State string `json:"state,omitempty"`
	// LagBytes and LagSeconds are how far a replica is behind, where the
	// engine measures them; nil when unknown or not applicable.
	LagBytes   *int64   `json:"lagBytes,omitempty"`
	LagSeconds *float64 `json:"lagSeconds,omitempty"`
	// Slots are replication slots held on this member (PostgreSQL).
	Slots []Slot `json:"slots,omitempty"`
	// Details are further engine-specific facts (positions, errors).
	Details map[string]string `json:"details,omitempty"`
	// Error says why the member could not be read; Role is then unknown.
	Error string `json:"error,omitempty"`
}

// Slot is a replication slot on a member.
type Slot struct {
	Name          string `json:"name"`
	Type          string `json:"type,omitempty"`
	Active        bool   `json:"active"`
	RetainedBytes *int64 `json:"retainedBytes,omitempty"`
	WALStatus     string `json:"walStatus,omitempty"`
}

// Target is the StatefulSet an engine works on and how to reach its pods.
type Target struct {
	StatefulSet *appsv1.StatefulSet
	// Pods are the StatefulSet's existing pods, any order.
	Pods []*corev1.Pod
	Exec kube.Executor
	// Container is the container to run commands in; empty means the
	// engine picks (the one whose image matched, else the first).
	Container string
	// Parallel bounds concurrent queries; Timeout bounds each one.
	Parallel int
	Timeout  time.Duration
}

// HealthOptions are the bounds of Engine.Healthy.
type HealthOptions struct {
	// MaxLagBytes and MaxLagSeconds bound replica lag; zero means no bound.
	MaxLagBytes   int64
	MaxLagSeconds float64
}

// RemoveOptions tune the scale-down steps.
type RemoveOptions struct {
	// SlotNames overrides the engine's slot naming rules (--slot-name).
	SlotNames []string
	// Wait bounds how long AfterRemove waits for e.g. a slot to go inactive.
	Wait time.Duration
	// DryRun reads the databases and reports, as events, what the step
	// would change, without changing anything.
	DryRun bool
	// Events, if set, receives a record of every change made (or, in a
	// dry run, planned) and of every wait, in order.
	Events func(RemoveEvent)
}

// RemoveAction is the kind of a RemoveEvent.
type RemoveAction string

// Actions reported by the scale-down steps.
const (
	// ActionChecked: a precondition was verified (e.g. the member is not
	// the primary).
	ActionChecked RemoveAction = "checked"
	// ActionChanged: the database was changed (a slot dropped, a member
	// removed from the replica set); in a dry run, it would be.
	ActionChanged RemoveAction = "changed"
	// ActionWaiting: the step is waiting for the database (e.g. a slot is
	// still active).
	ActionWaiting RemoveAction = "waiting"
	// ActionSkipped: nothing to do (e.g. the slot is already gone).
	ActionSkipped RemoveAction = "skipped"
	// ActionWarning: something a person should look at; the step goes on.
	ActionWarning RemoveAction = "warning"
)

// RemoveEvent records one thing a scale-down step did or saw.
type RemoveEvent struct {
	Ordinal int          `json:"ordinal"`
	Action  RemoveAction `json:"action"`
	// Pod is where the command ran (e.g. the primary).
	Pod string `json:"pod,omitempty"`
	// Object names what was acted on, e.g. "slot pg_1" or a member host.
	Object  string `json:"object,omitempty"`
	Message string `json:"message"`
	DryRun  bool   `json:"dryRun,omitempty"`
	// Left is set on a warning about something of the removed member the
	// step left in place (e.g. a replication slot it could not match):
	// the scale-down summary lists it.
	Left bool `json:"left,omitempty"`
}

// Emit sends ev to opts.Events, if set, marked with opts.DryRun.
func (opts RemoveOptions) Emit(ev RemoveEvent) {
	if opts.Events == nil {
		return
	}
	ev.DryRun = opts.DryRun
	opts.Events(ev)
}

// Engine is one database engine.
type Engine interface {
	// Name is the engine's --engine value, e.g. "postgres".
	Name() string
	// Matches reports whether a container image belongs to this engine.
	Matches(image string) bool
	// Members reads every pod's view; a pod that does not answer yields a
	// Member with RoleUnknown and Error set, not an error.
	Members(ctx context.Context, t Target) ([]Member, error)
	// Healthy judges the replica set; reason explains a false verdict.
	Healthy(members []Member, opts HealthOptions) (ok bool, reason string)
	// BeforeRemove runs before the pod of ordinal is removed (e.g. MongoDB
	// rs.remove); it refuses when ordinal is the primary.
	BeforeRemove(ctx context.Context, t Target, ordinal int, opts RemoveOptions) error
	// AfterRemove runs once the pod of ordinal is gone (e.g. drop its
	// PostgreSQL replication slot); running it again is not an error.
	AfterRemove(ctx context.Context, t Target, ordinal int, opts RemoveOptions) error
}
