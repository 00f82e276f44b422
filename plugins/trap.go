package plugins

import (
	"fmt"
	"strconv"
)

// Trap codes: the known dangers an engine names in its members. status
// turns each into a verdict reason of the same code; docs/status.md lists
// them with their states.
const (
	// TrapReplicationBroken: a replica's link to its primary is down
	// (Redis master_link_status:down, a PostgreSQL replica not streaming,
	// a MySQL/MariaDB IO or SQL thread stopped). Broken.
	TrapReplicationBroken = "ReplicationBroken"
	// TrapReplicaNotStreaming: a replica is connected but still catching
	// up, not yet streaming.
	TrapReplicaNotStreaming = "ReplicaNotStreaming"
	// TrapReplayPaused: a PostgreSQL replica receives WAL but does not
	// replay it (pg_wal_replay_pause()); its lag only grows.
	TrapReplayPaused = "ReplayPaused"
	// TrapNoReplicasConnected: the primary has no replica connected while
	// the replica set has replicas.
	TrapNoReplicasConnected = "NoReplicasConnected"
	// TrapReplicationLag: a replica's lag exceeds the bound given to status.
	TrapReplicationLag = "ReplicationLag"
	// TrapSlotRetainingWAL: an inactive replication slot retains more WAL
	// than the threshold: the primary's disk fills while nobody uses it.
	TrapSlotRetainingWAL = "SlotRetainingWAL"
	// TrapSlotWALLost: a slot's wal_status is lost or unreserved: the WAL
	// its consumer needs is gone or about to go. Broken.
	TrapSlotWALLost = "SlotWALLost"
	// TrapLeftoverSlot: an inactive slot named for an ordinal outside the
	// desired range: left behind by a removed member.
	TrapLeftoverSlot = "LeftoverSlot"
)

// Trap is one known danger an engine sees in its members.
type Trap struct {
	Code string `json:"code"`
	// Broken is set when replication is broken now (status Degraded);
	// otherwise a person should look (NeedsAttention).
	Broken bool `json:"broken,omitempty"`
	// Object names what the trap is about, e.g. "pod/pg-1" or "slot/pg_2".
	Object  string `json:"object,omitempty"`
	Message string `json:"message"`
	Hint    string `json:"hint,omitempty"`
}

// TrapOptions are what an engine needs to name traps beyond its members.
type TrapOptions struct {
	// StatefulSet, OrdinalsStart and Replicas give the desired ordinals;
	// a slot named for an ordinal outside them is a leftover.
	StatefulSet   string
	Namespace     string
	OrdinalsStart int
	Replicas      int
	// SlotRetainedBytes is how much WAL an inactive slot may retain before
	// it is named; zero means DefaultSlotRetainedBytes.
	SlotRetainedBytes int64
}

// DefaultSlotRetainedBytes is the default of TrapOptions.SlotRetainedBytes.
const DefaultSlotRetainedBytes = 256 << 20

// SlotThreshold returns SlotRetainedBytes or its default.
func (o TrapOptions) SlotThreshold() int64 {
	if o.SlotRetainedBytes > 0 {
		return o.SlotRetainedBytes
	}
	return DefaultSlotRetainedBytes
}

// Desired reports whether ordinal is within the desired range.
func (o TrapOptions) Desired(ordinal int) bool {
	return ordinal >= o.OrdinalsStart && ordinal < o.OrdinalsStart+o.Replicas
}

// TrapFinder is implemented by engines that name known traps in their
// members for status.
type TrapFinder interface {
	Traps(members []Member, opts TrapOptions) []Trap
}

// LagTraps names every replica whose lag exceeds the bounds (status
// --max-lag); nothing when no bound is set.
func LagTraps(members []Member, opts HealthOptions) []Trap {
	if opts.MaxLagBytes <= 0 && opts.MaxLagSeconds <= 0 {
		return nil
	}
	var out []Trap
	for _, m := range members {
		if m.Role != RoleReplica || m.Error != "" {
			continue
		}
		if r := LagReason(m, opts); r != "" {
			out = append(out, Trap{Code: TrapReplicationLag, Object: "pod/" + m.Pod,
				Message: fmt.Sprintf("replica lag over the bound: %s", r)})
		}
	}
	return out
}

// Bytes renders a byte count for messages, e.g. "470.0MiB".
func Bytes(n int64) string {
	const unit = 1024
	if n < unit {
		return strconv.FormatInt(n, 10) + "B"
	}
	v, i := float64(n), -1
	for v >= unit && i < 4 {
		v /= unit
		i++
	}
	return strconv.FormatFloat(v, 'f', 1, 64) + []string{"KiB", "MiB", "GiB", "TiB", "PiB"}[i]
}
