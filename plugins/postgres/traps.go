package postgres

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/kubectl-sts/kubectl-sts/plugins"
)

var _ plugins.TrapFinder = (*Engine)(nil)

// Traps implements plugins.TrapFinder: replicas not streaming (broken) or
// still catching up, replay paused, a primary with no replica connected,
// and on the primary's slots: WAL lost or unreserved (broken), inactive
// slots retaining WAL over the threshold, and leftover slots of removed
// members.
func (e *Engine) Traps(members []plugins.Member, opts plugins.TrapOptions) []plugins.Trap {
	var out []plugins.Trap
	replicas := 0
	for _, m := range members {
		if m.Role != plugins.RoleReplica || m.Error != "" {
			continue
		}
		replicas++
		obj := "pod/" + m.Pod
		switch m.State {
		case "streaming":
		case StateStreamingElsewhere:
			out = append(out, plugins.Trap{Code: plugins.TrapReplicationBroken, Broken: true, Object: obj,
				Message: m.Details["streamsElsewhere"],
				Hint:    fmt.Sprintf("point the primary_conninfo of %s at the primary (after a failover it may need pg_rewind or a new base backup)", m.Pod)})
		case "catchup", "startup":
			out = append(out, plugins.Trap{Code: plugins.TrapReplicaNotStreaming, Object: obj,
				Message: fmt.Sprintf("replica %s is connected but %s, not yet streaming", m.Pod, m.State)})
		default:
			out = append(out, plugins.Trap{Code: plugins.TrapReplicationBroken, Broken: true, Object: obj,
				Message: fmt.Sprintf("replica %s is not streaming from the primary (WAL receiver: %s)", m.Pod, orNone(m.State)),
				Hint:    fmt.Sprintf("check its primary_conninfo and the server log of %s; the primary must let it connect (pg_hba.conf, max_wal_senders)", m.Pod)})
		}
		if m.Details["replayPaused"] == "true" {
			behind := ""
			if m.LagBytes != nil {
				behind = fmt.Sprintf(", %s behind", plugins.Bytes(*m.LagBytes))
			}
			out = append(out, plugins.Trap{Code: plugins.TrapReplayPaused, Object: obj,
				Message: fmt.Sprintf("replica %s has WAL replay paused%s: its lag only grows", m.Pod, behind),
				Hint:    fmt.Sprintf("resume it when intended: kubectl exec %s -- psql -c 'SELECT pg_wal_replay_resume()'", m.Pod)})
		}
	}
	for _, m := range members {
		if m.Role != plugins.RolePrimary {
			continue
		}
		if n, err := strconv.Atoi(m.Details["connectedReplicas"]); err == nil && n == 0 && replicas > 0 {
			out = append(out, plugins.Trap{Code: plugins.TrapNoReplicasConnected, Object: "pod/" + m.Pod,
				Message: fmt.Sprintf("primary %s has no replica connected although %d %s", m.Pod, replicas, plural(replicas, "replica exists", "replicas exist"))})
		}
		out = append(out, slotTraps(m, members, opts)...)
	}
	return out
}

func slotTraps(primary plugins.Member, members []plugins.Member, opts plugins.TrapOptions) []plugins.Trap {
	used := map[string]string{}
	for _, m := range members {
		if s := m.Details["slot"]; s != "" {
			used[s] = m.Pod
		}
	}
	var out []plugins.Trap
	for _, s := range primary.Slots {
		obj := "slot/" + s.Name
		retained := ""
		if s.RetainedBytes != nil {
			retained = fmt.Sprintf(", retaining %s of WAL", plugins.Bytes(*s.RetainedBytes))
		}
		switch s.WALStatus {
		case "lost", "unreserved":
			out = append(out, plugins.Trap{Code: plugins.TrapSlotWALLost, Broken: true, Object: obj,
				Message: fmt.Sprintf("replication slot %s on %s has wal_status %s: the WAL its consumer needs is gone or about to be removed", s.Name, primary.Pod, s.WALStatus),
				Hint:    "the replica or client using it must be rebuilt from a new base backup; drop the slot once nothing uses it"})
			continue
		}
		o, named := SlotOrdinal(opts.StatefulSet, s.Name)
		leftover := named && !opts.Desired(o) && used[s.Name] == "" && s.Type == "physical"
		if s.Active && leftover {
			// The removed member's server still streams though its pod is
			// gone (a lost node, a kept process): the slot holds the WAL
			// that server has not received for as long as it runs.
			out = append(out, plugins.Trap{Code: plugins.TrapLeftoverSlot, Object: obj,
				Message: fmt.Sprintf("replication slot %s on %s is named for ordinal %d, which is not a member, and is still active%s: a server without a pod streams from it", s.Name, primary.Pod, o, retained),
				Hint: fmt.Sprintf("stop that server (its connection is in pg_stat_replication on %s), then drop the slot: kubectl sts cleanup %s%s",
					primary.Pod, opts.StatefulSet, nsFlag(opts.Namespace))})
			continue
		}
		if s.Active {
			continue
		}
		if leftover {
			hint := fmt.Sprintf("drop it once nothing needs it: kubectl sts cleanup %s%s (a dry run first: --dry-run)", opts.StatefulSet, nsFlag(opts.Namespace))
			out = append(out, plugins.Trap{Code: plugins.TrapLeftoverSlot, Object: obj,
				Message: fmt.Sprintf("replication slot %s on %s is inactive and named for ordinal %d, which is not a member%s", s.Name, primary.Pod, o, retained),
				Hint:    hint})
			continue
		}
		if s.RetainedBytes != nil && *s.RetainedBytes > opts.SlotThreshold() {
			out = append(out, plugins.Trap{Code: plugins.TrapSlotRetainingWAL, Object: obj,
				Message: fmt.Sprintf("replication slot %s on %s is inactive%s (over %s): the primary keeps that WAL until the slot is used or dropped", s.Name, primary.Pod, retained, plugins.Bytes(opts.SlotThreshold())),
				Hint:    fmt.Sprintf("if nothing will use it again: SELECT pg_drop_replication_slot('%s') on %s", s.Name, primary.Pod)})
		}
	}
	return out
}

// slotOrdinalRE finds "<statefulset>_<ordinal>" at the end of a slot name,
// alone or after an underscore: pg_2, slot_pg_2, _cnpg_pg_2, standby_pg_2.
func slotOrdinalRE(statefulSet string) *regexp.Regexp {
	return regexp.MustCompile(`(^|_)` + regexp.QuoteMeta(SlotNameFromMember(statefulSet)) + `_([0-9]+)$`)
}

// SlotOrdinal returns the ordinal of the StatefulSet's member a slot is
// named for, by the conventions of SlotCandidates and names that end in
// the member's slot name (standby_pg_2); ok is false for other names
// (backup_keep).
func SlotOrdinal(statefulSet, slot string) (int, bool) {
	if statefulSet == "" {
		return 0, false
	}
	if m := slotOrdinalRE(statefulSet).FindStringSubmatch(slot); m != nil {
		n, err := strconv.Atoi(m[2])
		return n, err == nil
	}
	if rest, ok := strings.CutPrefix(slot, "repmgr_slot_"); ok {
		if n, err := strconv.Atoi(rest); err == nil && n >= 1000 {
			return n - 1000, true
		}
	}
	return 0, false
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

func nsFlag(ns string) string {
	if ns == "" {
		return ""
	}
	return " -n " + ns
}
