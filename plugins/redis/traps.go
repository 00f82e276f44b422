package redis

import (
	"fmt"

	"github.com/kubectl-sts/kubectl-sts/plugins"
)

var _ plugins.TrapFinder = (*Engine)(nil)

// Traps implements plugins.TrapFinder: a replica whose link to its
// primary is down is broken; one still in its initial sync is not yet
// replicating.
func (e *Engine) Traps(members []plugins.Member, _ plugins.TrapOptions) []plugins.Trap {
	var out []plugins.Trap
	for _, m := range members {
		if m.Role != plugins.RoleReplica || m.Error != "" {
			continue
		}
		switch m.State {
		case "link up":
		case "syncing":
			out = append(out, plugins.Trap{Code: plugins.TrapReplicaNotStreaming, Object: "pod/" + m.Pod,
				Message: fmt.Sprintf("replica %s is still in its initial sync from %s", m.Pod, m.Details["source"])})
		default:
			out = append(out, plugins.Trap{Code: plugins.TrapReplicationBroken, Broken: true, Object: "pod/" + m.Pod,
				Message: fmt.Sprintf("replica %s has its replication link down (master_link_status: %s, primary %s)", m.Pod, m.State, m.Details["source"]),
				Hint:    fmt.Sprintf("check that %s can reach and authenticate to its primary (masterauth) and read its log", m.Pod)})
		}
	}
	return out
}
